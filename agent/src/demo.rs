//! `msp-agent demo --out DIR`: the main job on embedded defaults.
//!
//! It needs nothing but this binary (and, to show the auditor's side, `ssh-keygen` and
//! `openssl`): it writes signing keys and the embedded runbooks under DIR, runs the template
//! runbook by hand — the one runbook that is safe on any machine, it only prints —, and
//! verifies the resulting evidence both with this agent and with the stock tools, printing
//! every command so that a person can repeat it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;

use crate::exit::Exit;
use crate::runbook::model::Runbook;

/// The runbooks compiled into the binary: `(file name, contents)`.
pub const EMBEDDED_RUNBOOKS: &[(&str, &str)] = &[
    ("RB-BACKUP-001.yaml", include_str!("../../runbooks/RB-BACKUP-001.yaml")),
    ("RB-CERT-001.yaml", include_str!("../../runbooks/RB-CERT-001.yaml")),
    ("RB-CPU-001.yaml", include_str!("../../runbooks/RB-CPU-001.yaml")),
    ("RB-DISK-001.yaml", include_str!("../../runbooks/RB-DISK-001.yaml")),
    ("RB-DRIFT-001.yaml", include_str!("../../runbooks/RB-DRIFT-001.yaml")),
    ("RB-RESTORE-001.yaml", include_str!("../../runbooks/RB-RESTORE-001.yaml")),
    ("RB-SERVICE-001.yaml", include_str!("../../runbooks/RB-SERVICE-001.yaml")),
];

/// The template: it only prints, so it is the runbook the demo runs by hand.
const TEMPLATE: (&str, &str) =
    ("RB-TEMPLATE-001.yaml", include_str!("../../runbooks/templates/runbook-template.yaml"));

/// `msp-agent demo`
#[derive(Debug, Args)]
pub struct DemoCmd {
    /// Where to put `keys/`, `runbooks/` and `evidence/` (created; reused on a second run).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

impl DemoCmd {
    /// Run the demo; exit 0 when the evidence verifies with every verifier available.
    pub fn run(self) -> Result<Exit> {
        let out = &self.out;
        crate::fsutil::create_dir_all(out, 0o755)?;
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

        step("2. Runbooks (embedded in the binary)");
        crate::fsutil::create_dir_all(&runbooks, 0o755)?;
        for (name, text) in EMBEDDED_RUNBOOKS.iter().chain(std::iter::once(&TEMPLATE)) {
            let path = runbooks.join(name);
            let rb = Runbook::from_bytes(&path, text.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::fsutil::replace(&path, text.as_bytes(), 0o644)?;
            println!("   {:<16} {:<8} {}", rb.id, rb.severity.to_string(), rb.name);
        }

        step("3. Run RB-TEMPLATE-001 by hand (safe anywhere: it only prints)");
        let template = Runbook::load_file(&runbooks.join(TEMPLATE.0)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let state = out.join("state");
        let dirs = crate::runbook::ManualDirs { evidence: &evidence, keys: &keys, state: &state };
        let (report, written) = crate::runbook::run_by_hand(&template, &[], &dirs, "demo-clinic", &crate::runbook::hostname())?;
        println!("   result      {}", report.status.as_str());
        println!("   MTTR        {:.3} s (SLA {} s, met: {})", report.mttr_seconds, report.sla_target_seconds, report.sla_met);
        println!("   bundle      {}", written.path.display());
        println!("   chain       sequence {}, sha256 {}", written.sequence, written.sha256);

        step("4. Verify, as an auditor would (stock tools only)");
        let mut ok = true;
        let ssh = vec![
            "ssh-keygen".to_string(), "-Y".into(), "verify".into(), "-f".into(), path_str(&keys.join("allowed_signers")),
            "-I".into(), "msp-evidence".into(), "-n".into(), "msp-evidence".into(), "-s".into(),
            format!("{}.sshsig", written.path.display()),
        ];
        ok &= run_shown(&ssh, Some(&written.path))?;
        let ossl = vec![
            "openssl".to_string(), "pkeyutl".into(), "-verify".into(), "-pubin".into(), "-inkey".into(),
            path_str(&keys.join("evidence-signing.pub.pem")), "-rawin".into(), "-in".into(), path_str(&written.path),
            "-sigfile".into(), format!("{}.sig", written.path.display()),
        ];
        ok &= run_shown(&ossl, None)?;

        step("5. Verify the whole store (signatures, chain, artifacts, runbook hashes)");
        let exe = std::env::current_exe().context("locating this binary")?;
        let verify = vec![
            path_str(&exe), "evidence".into(), "verify".into(), "--keys".into(), path_str(&keys), "--runbooks".into(),
            path_str(&runbooks), path_str(&evidence),
        ];
        ok &= run_shown(&verify, None)?;

        println!();
        if ok {
            println!("All evidence in {} verified.", evidence.display());
            Ok(Exit::Ok)
        } else {
            println!("Some verification FAILED (see above).");
            Ok(Exit::CheckFailed)
        }
    }
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Print `argv` as a shell line (with `< stdin` when given), run it, print its verdict.
/// A missing stock tool is reported, not fatal: the agent's own verifier still runs.
fn run_shown(argv: &[String], stdin: Option<&Path>) -> Result<bool> {
    let mut line = argv.join(" ");
    if let Some(s) = stdin {
        line.push_str(&format!(" < {}", s.display()));
    }
    println!("   $ {line}");
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some(s) = stdin {
        cmd.stdin(std::fs::File::open(s).with_context(|| format!("opening {}", s.display()))?);
    }
    match cmd.output() {
        Ok(o) => {
            for l in String::from_utf8_lossy(&o.stdout).lines().chain(String::from_utf8_lossy(&o.stderr).lines()) {
                println!("     {l}");
            }
            println!("   -> {}", if o.status.success() { "OK" } else { "FAILED" });
            Ok(o.status.success())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("   -> SKIPPED: {} is not installed (scripts/setup-machine installs it)", argv[0]);
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("running {}", argv[0])),
    }
}
