//! `msp-agent demo --out DIR`: the main job. A clinic server is booted on this machine (the
//! clinic box, `checks/box/clinic-box.sh`, embedded in this binary): systemd as PID 1 in its
//! own namespaces, this very binary installed as `msp-agent.service`, a restic backup, a TLS
//! portal, a small /var/log. Six incidents are caused for real, the agent repairs them, and
//! every repair is checked on the system. Then the evidence is verified here with the stock
//! tools, printing every command so that a person can repeat it, and a one-screen summary
//! (incident, runbook, result, MTTR) is printed.
//!
//! Needs root (namespaces, mounts). The first run builds the base system once with
//! debootstrap into `/var/cache/msp-flake/`; later runs reuse it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;

use crate::exit::Exit;
use crate::runbook::model::Runbook;

/// The runbooks compiled into the binary: `(file name, contents)`. The demo installs and
/// approves every one of them in the box (tests/demo.rs checks this list covers
/// `runbooks/RB-*.yaml`).
pub const EMBEDDED_RUNBOOKS: &[(&str, &str)] = &[
    ("RB-BACKUP-001.yaml", include_str!("../../runbooks/RB-BACKUP-001.yaml")),
    ("RB-CERT-001.yaml", include_str!("../../runbooks/RB-CERT-001.yaml")),
    ("RB-CPU-001.yaml", include_str!("../../runbooks/RB-CPU-001.yaml")),
    ("RB-DISK-001.yaml", include_str!("../../runbooks/RB-DISK-001.yaml")),
    ("RB-DRIFT-001.yaml", include_str!("../../runbooks/RB-DRIFT-001.yaml")),
    ("RB-RESTORE-001.yaml", include_str!("../../runbooks/RB-RESTORE-001.yaml")),
    ("RB-SERVICE-001.yaml", include_str!("../../runbooks/RB-SERVICE-001.yaml")),
];

/// The clinic box script (see its header for what it does).
pub const CLINIC_BOX: &str = include_str!("../../checks/box/clinic-box.sh");

/// `msp-agent demo`
#[derive(Debug, Args)]
pub struct DemoCmd {
    /// Where to put `keys/`, `runbooks/` and `evidence/` (keys are reused on a second run; an
    /// earlier run's evidence is moved aside, never overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

impl DemoCmd {
    /// Run the demo; exit 0 when all six incidents were repaired and the evidence verifies.
    pub fn run(self) -> Result<Exit> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "msp-agent demo: needs root. It boots a clinic server on this machine (systemd as PID 1 \
                 in its own namespaces, with overlay and tmpfs mounts) and breaks it six ways.\n\
                 Run it as root, e.g.: sudo {} demo --out {}",
                std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "msp-agent".into()),
                self.out.display()
            );
            return Ok(Exit::Error);
        }
        let out = std::path::absolute(&self.out).with_context(|| format!("resolving {}", self.out.display()))?;
        crate::fsutil::create_dir_all(&out, 0o755)?;
        let keys = out.join("keys");
        let runbooks = out.join("runbooks");
        let evidence = out.join("evidence");

        step("1. Signing keys");
        if keys.join(crate::keys::PRIVATE_KEY_FILE).exists() {
            println!("   reusing {}", keys.display());
        } else {
            let info = crate::keys::generate(&keys, chrono::Utc::now())?;
            println!("   generated {} in {}", info.key_id, keys.display());
        }

        step("2. Runbooks (embedded in the binary; all approved in the box by SHA-256)");
        crate::fsutil::create_dir_all(&runbooks, 0o755)?;
        for (name, text) in EMBEDDED_RUNBOOKS {
            let path = runbooks.join(name);
            let rb = Runbook::from_bytes(&path, text.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::fsutil::replace(&path, text.as_bytes(), 0o644)?;
            println!("   {:<16} {:<8} {}", rb.id, rb.severity.to_string(), rb.name);
        }

        if evidence.exists() {
            let aside = out.join(format!("evidence.{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
            std::fs::rename(&evidence, &aside)
                .with_context(|| format!("moving the previous run's {} aside", evidence.display()))?;
            println!("   the previous run's evidence is now {}", aside.display());
        }
        for stale in ["box-summary.tsv", "box-service.txt", "box-detections.tsv", "box-agent-journal.txt", "box-console.log"] {
            let _ = std::fs::remove_file(out.join(stale));
        }

        step("3. The clinic box: boot a clinic server, break it six ways, let msp-agent.service repair it");
        let script_dir = tempfile::Builder::new().prefix("msp-demo-").tempdir().context("creating a temporary directory")?;
        let script = script_dir.path().join("clinic-box.sh");
        std::fs::File::create(&script)
            .and_then(|mut f| f.write_all(CLINIC_BOX.as_bytes()))
            .with_context(|| format!("writing {}", script.display()))?;
        let exe = std::env::current_exe().context("locating this binary")?;
        let status = Command::new("bash")
            .arg(&script)
            .arg("run")
            .arg("--agent")
            .arg(&exe)
            .arg("--keys")
            .arg(&keys)
            .arg("--runbooks")
            .arg(&runbooks)
            .arg("--out")
            .arg(&out)
            .status()
            .context("running bash (the clinic box script)")?;
        if !status.success() {
            println!("\nThe clinic box FAILED (exit {status}); what it left is in {}.", out.display());
            return Ok(if status.code() == Some(2) { Exit::Error } else { Exit::CheckFailed });
        }

        step("4. Verify, as an auditor would (stock tools; run from the output directory)");
        let bundles = bundle_files(&evidence)?;
        println!("   $ cd {}", out.display());
        println!("   $ for f in evidence/*/*/EB-*.json; do");
        println!("       ssh-keygen -Y verify -f keys/allowed_signers -I msp-evidence -n msp-evidence -s $f.sshsig < $f");
        println!("       openssl pkeyutl -verify -pubin -inkey keys/evidence-signing.pub.pem -rawin -in $f -sigfile $f.sig");
        println!("     done");
        let mut ok = true;
        let (mut ssh_ok, mut ossl_ok) = (0, 0);
        for b in &bundles {
            let ssh = Command::new("ssh-keygen")
                .args(["-Y", "verify", "-f"])
                .arg(keys.join("allowed_signers"))
                .args(["-I", "msp-evidence", "-n", "msp-evidence", "-s"])
                .arg(format!("{}.sshsig", b.display()))
                .stdin(std::fs::File::open(b).with_context(|| format!("opening {}", b.display()))?)
                .output()
                .context("running ssh-keygen")?;
            let ossl = Command::new("openssl")
                .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
                .arg(keys.join("evidence-signing.pub.pem"))
                .args(["-rawin", "-in"])
                .arg(b)
                .arg("-sigfile")
                .arg(format!("{}.sig", b.display()))
                .output()
                .context("running openssl")?;
            ssh_ok += usize::from(ssh.status.success());
            ossl_ok += usize::from(ossl.status.success());
            if !ssh.status.success() || !ossl.status.success() {
                ok = false;
                println!("   FAILED: {}", b.display());
            }
        }
        println!("   -> ssh-keygen: {ssh_ok}/{n} Good, openssl: {ossl_ok}/{n} Signature Verified Successfully", n = bundles.len());
        let verify = Command::new(&exe)
            .args(["evidence", "verify", "--keys"])
            .arg(&keys)
            .arg("--runbooks")
            .arg(&runbooks)
            .arg(&evidence)
            .output()
            .context("running msp-agent evidence verify")?;
        println!("   $ msp-agent evidence verify --keys keys --runbooks runbooks evidence");
        for l in String::from_utf8_lossy(&verify.stdout).lines().chain(String::from_utf8_lossy(&verify.stderr).lines()) {
            println!("     {l}");
        }
        println!("   -> {}", if verify.status.success() { "OK" } else { "FAILED" });
        ok &= verify.status.success();

        step("5. The auditor's packet for this month (signed manifest, HTML, PDF)");
        ok &= make_packet(&exe, &out, &keys, &evidence)?;

        step("6. Summary");
        print_summary(&out.join("box-summary.tsv"), &bundles)?;
        print_detections(&out.join("box-detections.tsv"))?;
        let service = out.join("box-service.txt");
        let service = std::fs::read_to_string(&service).with_context(|| format!("reading {}", service.display()))?;
        println!("   the agent as a service:");
        for l in service.lines() {
            println!("     {l}");
        }
        println!();
        if ok {
            println!("All six kinds of incident repaired and checked; all {} bundles in {} verified.", bundles.len(), evidence.display());
            Ok(Exit::Ok)
        } else {
            println!("Some verification FAILED (see above).");
            Ok(Exit::CheckFailed)
        }
    }
}

/// `msp-agent packet` over the box's evidence, then the manifest checked the way an auditor
/// would; true when both succeed.
fn make_packet(exe: &Path, out: &Path, keys: &Path, evidence: &Path) -> Result<bool> {
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let packet_dir = out.join("packet");
    if packet_dir.exists() {
        std::fs::remove_dir_all(&packet_dir).with_context(|| format!("removing the previous {}", packet_dir.display()))?;
    }
    println!("   $ msp-agent packet --month {month} --evidence-dir evidence --key-dir keys --out packet");
    let made = Command::new(exe)
        .args(["packet", "--month", &month, "--evidence-dir"])
        .arg(evidence)
        .arg("--key-dir")
        .arg(keys)
        .arg("--out")
        .arg(&packet_dir)
        .output()
        .context("running msp-agent packet")?;
    for l in String::from_utf8_lossy(&made.stderr).lines().filter(|l| l.starts_with("packet:")) {
        println!("     {l}");
    }
    println!("   $ msp-agent evidence verify --keys keys packet/manifest.json evidence");
    let checked = Command::new(exe)
        .args(["evidence", "verify", "--keys"])
        .arg(keys)
        .arg(packet_dir.join("manifest.json"))
        .arg(evidence)
        .output()
        .context("running msp-agent evidence verify (manifest)")?;
    for l in String::from_utf8_lossy(&checked.stdout).lines().chain(String::from_utf8_lossy(&checked.stderr).lines()) {
        println!("     {l}");
    }
    let ok = made.status.success() && checked.status.success();
    if ok {
        println!("   -> {}: packet.html, packet.pdf, manifest.json (+ .sig, .sshsig)", packet_dir.display());
        println!("   Most controls show FAILING: the box has lived for minutes, so the heartbeat, backup and");
        println!("   provenance evidence a month needs is missing. Stale or missing evidence never passes.");
    } else {
        println!("   -> FAILED: {}", String::from_utf8_lossy(&made.stderr).trim());
    }
    Ok(ok)
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// `EB-*.json` bundles under `root` (not receipts or artifacts), in chain order.
fn bundle_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e.with_context(|| format!("reading {}", d.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if p.is_dir() {
                if !name.starts_with('.') && !name.ends_with(".artifacts") && name != "receipts" {
                    stack.push(p);
                }
            } else if name.starts_with("EB-") && name.ends_with(".json") && !name.ends_with(".receipt.json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What the box's log-in phases caused and the agent detected and escalated (its
/// `box-detections.tsv`: what happened, event type, bundle, details).
fn print_detections(tsv: &Path) -> Result<()> {
    let text = std::fs::read_to_string(tsv).with_context(|| format!("reading {}", tsv.display()))?;
    println!("   detected and escalated to a person (signed escalation + alert):");
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let [what, event, bundle, details] = f[..] else {
            anyhow::bail!("{}:{}: expected 4 tab-separated fields, found {}", tsv.display(), n + 1, f.len());
        };
        println!("     {what:<40} {event:<18} {bundle}");
        println!("     {:<40} {details}", "");
    }
    Ok(())
}

/// The incidents the box caused (its `box-summary.tsv`: incident, runbook, result, MTTR,
/// SLA target, SLA met, bundle, what was checked) and a count of every other record.
fn print_summary(tsv: &Path, bundles: &[PathBuf]) -> Result<()> {
    let text = std::fs::read_to_string(tsv).with_context(|| format!("reading {}", tsv.display()))?;
    println!("   {:<38} {:<15} {:<9} {:>8} {:>8}  bundle", "incident", "runbook", "result", "MTTR", "SLA");
    let mut shown = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let [incident, runbook, result, mttr, sla, met, bundle, checked] = f[..] else {
            anyhow::bail!("{}:{}: expected 8 tab-separated fields, found {}", tsv.display(), n + 1, f.len());
        };
        let mttr: f64 = mttr.parse().with_context(|| format!("{}:{}: MTTR {mttr:?}", tsv.display(), n + 1))?;
        let sla_s: f64 = sla.parse().with_context(|| format!("{}:{}: SLA {sla:?}", tsv.display(), n + 1))?;
        let sla = format!("{}m{}", sla_s / 60.0, if met == "true" { " met" } else { " MISSED" });
        println!("   {incident:<38} {runbook:<15} {result:<9} {:>7.1}s {sla:>8}  {bundle}", mttr);
        println!("   {:<38} checked: {checked}", "");
        shown.insert(bundle.to_string());
    }
    // Everything else the agent recorded along the way (the escalated NAS outage, the runs
    // interrupted and resumed by restarts, the agent refusing to restart itself after the
    // watchdog killed it, suppressions), by kind.
    let mut others: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for b in bundles {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(b).with_context(|| format!("reading {}", b.display()))?)
            .with_context(|| format!("parsing {}", b.display()))?;
        let id = v["bundle_id"].as_str().unwrap_or_default();
        if shown.contains(id) {
            continue;
        }
        let d = &v["incident"]["details"];
        let target = ["unit", "mount", "path"].iter().find_map(|k| d[k].as_str()).unwrap_or("host");
        let key = format!(
            "{} {} on {target}: {}",
            v["runbook"]["runbook_id"].as_str().unwrap_or("?"),
            v["incident"]["event_type"].as_str().unwrap_or("?"),
            v["outputs"]["resolution_status"].as_str().unwrap_or("?")
        );
        *others.entry(key).or_default() += 1;
    }
    if !others.is_empty() {
        println!("   also recorded:");
        for (k, n) in others {
            println!("     {n} x {k}");
        }
    }
    Ok(())
}
