//! `msp-agent packet` end to end on a generated month of evidence (`packet::sample`): the
//! figures in the manifest, HTML and PDF checked against the generator's own tally; the PDF
//! rendered to PNG pages with the real `pdftoppm` into `target/test-artifacts/packet/`; the
//! manifest verified with the real `ssh-keygen`, `openssl`, `sha256sum` and `jq` using the
//! commands printed in the packet; every bundle listed once; tampering, deleting or adding a
//! bundle makes `evidence verify manifest.json` fail naming it; stale and missing evidence
//! fails controls; hostile strings are escaped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use msp_agent::packet::period::Month;
use msp_agent::packet::sample::{write_month, MonthSpec, Tally};
use serde_json::Value;

const MONTH: &str = "2026-10";
const AT: &str = "2026-11-05T00:00:00Z";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msp-agent"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn baseline_identity() -> (String, String) {
    let text = msp_agent::packet::EMBEDDED_BASELINE.1;
    let mut f = msp_agent::baseline::report::Findings::default();
    let b = msp_agent::baseline::model::load("b", text, &mut f).unwrap();
    (b.version, msp_agent::baseline::model::sha256_hex(text.as_bytes()))
}

struct World {
    _dir: tempfile::TempDir,
    keys: PathBuf,
    evidence: PathBuf,
    tally: Tally,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let evidence = dir.path().join("evidence");
    let month = Month::parse(MONTH).unwrap();
    msp_agent::keys::generate(&keys, month.start() - Duration::days(30)).unwrap();
    let signer = msp_agent::keys::Signer::load(&keys).unwrap();
    let (version, sha) = baseline_identity();
    let spec = MonthSpec::new(month, &version, &sha);
    let tally = write_month(&evidence, &spec, &signer).unwrap();
    World {
        _dir: dir,
        keys,
        evidence,
        tally,
    }
}

fn packet(w: &World, out: &Path, extra: &[&str]) -> Output {
    run(bin()
        .args(["packet", "--month", MONTH, "--at", AT, "--evidence-dir"])
        .arg(&w.evidence)
        .arg("--key-dir")
        .arg(&w.keys)
        .arg("--out")
        .arg(out)
        .args(extra))
}

fn verify_manifest(w: &World, out: &Path) -> Output {
    run(bin()
        .args(["evidence", "verify", "--keys"])
        .arg(&w.keys)
        .arg(out.join("manifest.json"))
        .arg(&w.evidence))
}

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/test-artifacts/packet")
}

/// The packet's figures, independently counted: from the generator's tally, and by reading
/// every bundle file again here with plain JSON (not the packet's code).
#[test]
fn a_month_of_evidence_makes_a_packet_whose_figures_match_the_bundles() {
    let w = world();
    let out = w.evidence.parent().unwrap().join("packet");
    let o = packet(&w, &out, &[]);
    assert_eq!(o.status.code(), Some(0));
    let m = manifest(&out);
    let s = &m["summary"];
    let t = &w.tally;

    // Recount from the files with serde_json::Value only.
    let mut incidents = 0usize;
    let mut sla = (0usize, 0usize);
    let mut auto_fixed = 0usize;
    let mut mttr: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
    let mut backup_days = std::collections::BTreeSet::new();
    let mut restores = 0usize;
    let mut files = 0usize;
    for e in walk(&w.evidence.join("2026/10")) {
        files += 1;
        let b: Value = serde_json::from_slice(&fs::read(&e).unwrap()).unwrap();
        let et = b["incident"]["event_type"].as_str().unwrap();
        let rt = b["execution"]["resolution_type"].as_str().unwrap();
        let st = b["outputs"]["resolution_status"].as_str().unwrap();
        if et == "backup_completed" {
            backup_days.insert(b["generated_at"].as_str().unwrap()[..10].to_string());
        }
        if rt == "recorded" {
            continue;
        }
        if b["runbook"]["runbook_id"] == "RB-RESTORE-001" {
            restores += 1;
            continue;
        }
        incidents += 1;
        if rt == "automatic" && st == "resolved" {
            auto_fixed += 1;
        }
        if rt != "suppressed" {
            sla.1 += 1;
            if b["execution"]["sla_met"].as_bool().unwrap() {
                sla.0 += 1;
            }
        }
        if st == "resolved" {
            let e = mttr
                .entry(b["incident"]["severity"].as_str().unwrap().to_string())
                .or_default();
            e.0 += 1;
            e.1 += b["execution"]["mttr_seconds"].as_f64().unwrap();
        }
    }
    assert_eq!(files, t.bundles);
    assert_eq!(incidents, t.incidents);
    assert_eq!(sla, t.sla);
    assert_eq!(auto_fixed, t.auto_fixed);
    assert_eq!(restores, t.restore_tests);
    assert_eq!(backup_days.len(), t.backup_days);

    assert_eq!(s["incidents"], incidents);
    assert_eq!(s["auto_fixed"], auto_fixed);
    assert_eq!(s["escalated"], t.escalated);
    assert_eq!(s["suppressed"], t.suppressed);
    assert_eq!(s["critical_incidents"], t.critical.0);
    assert_eq!(s["critical_unresolved"], t.critical.1);
    assert_eq!(s["sla_met"], sla.0);
    assert_eq!(s["sla_counted"], sla.1);
    assert_eq!(s["heartbeats"], t.heartbeats);
    assert_eq!(s["backups_completed"], t.backups);
    assert_eq!(s["backup_days"], 31);
    assert_eq!(s["backup_days_ok"], 30);
    assert_eq!(s["restore_tests"], 5);
    assert_eq!(s["restore_tests_passed"], 5);
    for (sev, (n, sum)) in &mttr {
        let got = &s["mttr_seconds_by_severity"][sev];
        assert_eq!(got["resolved"], *n, "{sev}");
        assert!((got["mean"].as_f64().unwrap() - sum / *n as f64).abs() < 1e-6, "{sev}");
        let tally_mean = t.mttr[sev].iter().sum::<f64>() / t.mttr[sev].len() as f64;
        assert!((tally_mean - sum / *n as f64).abs() < 1e-6, "{sev}");
    }

    // The same figures, as printed, in the HTML and the PDF.
    let html = fs::read_to_string(out.join("packet.html")).unwrap();
    let sla_pct = format!("{:.1} % ({} of {} incidents acted on)", 100.0 * sla.0 as f64 / sla.1 as f64, sla.0, sla.1);
    let backup = format!("{:.1} % (30 of 31 days with a completed backup", 100.0 * 30.0 / 31.0);
    let restores_line = "5 passed of 5 run";
    let auto = format!("{} ({} auto-fixed, {} escalated, {} suppressed)", incidents, auto_fixed, t.escalated, t.suppressed);
    for needle in [sla_pct.as_str(), backup.as_str(), restores_line, auto.as_str()] {
        assert!(html.contains(needle), "HTML lacks {needle:?}");
    }
    assert!(html.contains("organisational (not assessed by the server)"));
    // Controls: heartbeat rule broken by the outage, backup rule by the missed night; the
    // restore and provenance rules hold.
    let row = |id: &str| row(&html, id);
    assert!(row("§164.312(b)").contains("FAILING: gap"), "{}", row("§164.312(b)"));
    assert!(row("§164.308(a)(7)(ii)(A)").contains("FAILING: gap"));
    assert!(row("§164.308(a)(7)(ii)(D)").contains("PASSING"));
    assert!(row("§164.312(a)(1)").contains("PASSING"));
    assert!(row("§164.308(a)(1)(ii)(A)").contains("organisational (not assessed by the server)"));
    assert_eq!(s["controls_assessed"], 39);
    let failing = html.matches("FAILING").count();
    assert_eq!(
        s["controls_passing"].as_u64().unwrap() as usize + failing,
        39,
        "every assessed control is either PASSING or FAILING"
    );
    // The heartbeat gap, from the last heartbeat before the outage to the first after it.
    let hb = heartbeat_times(Month::parse(MONTH).unwrap());
    let before = hb.iter().rev().find(|x| **x <= t.outage.0).unwrap();
    let after = hb.iter().find(|x| **x >= t.outage.1).unwrap();
    let gap_row = format!(
        "<td>heartbeat</td><td>1</td><td>{}</td><td>{}</td>",
        before.format("%Y-%m-%d %H:%M"),
        after.format("%Y-%m-%d %H:%M")
    );
    assert!(html.contains(&gap_row), "no heartbeat gap row {gap_row}");
    let missed = t.missed_backup_day.format("%Y-%m-%d").to_string();
    assert!(html.contains(&format!("<td>backup_completed</td><td>26</td><td>{}", (t.missed_backup_day - chrono::Days::new(1)).format("%Y-%m-%d"))), "backup gap around {missed}");
    assert!(html.contains("/etc/ssh/sshd_config"), "drift row");
    assert!(html.contains("EXC-clinic-001-001"), "exceptions");

    // Every bundle listed once, with its hash.
    let listed: Vec<&str> = m["bundles"].as_array().unwrap().iter().map(|b| b["path"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), t.bundles);
    let mut uniq = listed.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), listed.len(), "a bundle listed twice");
    assert!(m["bundles"].as_array().unwrap().iter().all(|b| b["verified"] == true));
    assert_eq!(m["signing"]["key_id"].as_str().unwrap().len(), 50);

    // The PDF: its text says the same, and its pages are rendered for a person to look at.
    let pdf = out.join("packet.pdf");
    if have("pdftotext") {
        let o = Command::new("pdftotext").args(["-layout"]).arg(&pdf).arg("-").output().unwrap();
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        for needle in ["Controls passing", restores_line, "Attestation", "Security Official", "ssh-keygen -Y verify"] {
            assert!(text.contains(needle), "PDF lacks {needle:?}");
        }
        assert!(text.contains(&format!("{:.1} %", 100.0 * sla.0 as f64 / sla.1 as f64)));
    } else {
        eprintln!("SKIPPED: pdftotext not installed (apt-get install poppler-utils); PDF text not checked");
    }
    if have("pdftoppm") {
        let dir = artifacts_dir();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(&pdf, dir.join("packet.pdf")).unwrap();
        fs::copy(out.join("packet.html"), dir.join("packet.html")).unwrap();
        let o = Command::new("pdftoppm").args(["-png", "-r", "60"]).arg(&pdf).arg(dir.join("page")).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let pages = fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".png")).count();
        assert!(pages >= 3, "{pages} pages");
        eprintln!("packet pages rendered to {} ({pages} PNG pages)", dir.display());
    } else {
        eprintln!("SKIPPED: pdftoppm not installed (apt-get install poppler-utils); no PNG pages rendered");
    }

    // The manifest verifies with our verifier and with the stock tools, using the packet's
    // own printed commands.
    assert_eq!(verify_manifest(&w, &out).status.code(), Some(0));
    stock_tools(&w, &out);
}

fn stock_tools(w: &World, out: &Path) {
    for tool in ["ssh-keygen", "openssl", "jq", "sha256sum"] {
        if !have(tool) {
            eprintln!("SKIPPED: {tool} not installed; the printed stock-tool commands were not run");
            return;
        }
    }
    let script = msp_agent::packet::doc::verification_commands()
        .join("\n")
        .replace("jq -r '.bundles[].path' manifest.json |", "jq -r '.bundles[].path' manifest.json | sed -n 1,40p |")
        .replace("msp-agent evidence verify", &format!("{} evidence verify", env!("CARGO_BIN_EXE_msp-agent")))
        .replace("KEYS", &w.keys.display().to_string())
        .replace("EVIDENCE", &w.evidence.display().to_string());
    let o = run(Command::new("bash").args(["-euo", "pipefail", "-c"]).arg(format!("{script}\n")).current_dir(out));
    assert!(o.status.success(), "stock-tool commands failed");
    let stdout = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!stdout.contains("BAD "), "{stdout}");
    assert!(stdout.contains("Good \"msp-evidence\" signature"), "{stdout}");
    assert!(stdout.contains("Signature Verified Successfully"), "{stdout}");
    assert!(stdout.contains("packet.pdf: OK"), "{stdout}");
}

fn heartbeat_times(month: Month) -> Vec<DateTime<Utc>> {
    let mut v = Vec::new();
    let mut t = month.start() + Duration::minutes(4);
    while t < month.end() {
        v.push(t);
        t += Duration::seconds(900);
    }
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn tampering_deleting_or_adding_a_bundle_fails_the_manifest_check() {
    let w = world();
    let out = w.evidence.parent().unwrap().join("packet");
    assert_eq!(packet(&w, &out, &[]).status.code(), Some(0));
    let m = manifest(&out);
    let bundles = m["bundles"].as_array().unwrap();
    let month_dir = w.evidence.join("2026/10");

    // Every listed bundle, one byte changed, in a sample spread over the month (all of them
    // would take minutes in a debug build): each time the first bad bundle is named.
    let n = bundles.len();
    for i in [0, 1, n / 3, n / 2, n - 2, n - 1] {
        let rel = bundles[i]["path"].as_str().unwrap();
        let p = w.evidence.join(rel);
        let orig = fs::read(&p).unwrap();
        let mut bad = orig.clone();
        let k = bad.len() / 2;
        bad[k] ^= 0x01;
        make_writable(&p);
        fs::write(&p, &bad).unwrap();
        let o = verify_manifest(&w, &out);
        assert_eq!(o.status.code(), Some(1), "tampered {rel}");
        let name = rel.rsplit('/').next().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(&format!("first bad bundle {name}: ")), "{stderr}");
        assert!(stderr.contains("(modified)"), "{stderr}");
        fs::write(&p, &orig).unwrap();
    }
    assert_eq!(verify_manifest(&w, &out).status.code(), Some(0), "restored");

    // Deleted.
    let rel = bundles[n / 4]["path"].as_str().unwrap();
    let p = w.evidence.join(rel);
    let orig = fs::read(&p).unwrap();
    fs::remove_file(&p).unwrap();
    let o = verify_manifest(&w, &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing (deleted)"));
    fs::write(&p, &orig).unwrap();

    // Added after the packet was made (a copy under a new name).
    let extra = month_dir.join("EB-20261031-9999.json");
    fs::write(&extra, &orig).unwrap();
    let o = verify_manifest(&w, &out);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("EB-20261031-9999.json") && stderr.contains("not listed in the manifest"), "{stderr}");
    fs::remove_file(&extra).unwrap();

    // The manifest itself edited (a hash swapped): its signature fails.
    let text = fs::read_to_string(out.join("manifest.json")).unwrap();
    let h = bundles[5]["sha256"].as_str().unwrap();
    let edited = text.replacen(h, &"0".repeat(64), 1);
    fs::write(out.join("manifest.json"), edited).unwrap();
    let o = verify_manifest(&w, &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not verify: manifest or signature modified"));
    fs::write(out.join("manifest.json"), text).unwrap();

    // The packet PDF edited.
    let mut pdf = fs::read(out.join("packet.pdf")).unwrap();
    let k = pdf.len() - 10;
    pdf[k] ^= 0x20;
    fs::write(out.join("packet.pdf"), pdf).unwrap();
    let o = verify_manifest(&w, &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("packet.pdf: sha256 does not match the manifest (modified)"));
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
}

/// A bundle that does not verify counts for nothing and is named; evidence that stops before
/// the end of the month makes the controls stale; a month with none at all fails every
/// assessed control; hostile strings never become markup.
#[test]
fn invalid_stale_and_missing_evidence_never_passes() {
    let w = world();
    let month_dir = w.evidence.join("2026/10");
    let files = walk(&month_dir);

    // The last three days deleted (the tail of the chain: nothing after it to notice) → stale.
    let cutoff = "EB-20261029-0000.json";
    for f in &files {
        if f.file_name().unwrap().to_str().unwrap() > cutoff {
            for suffix in ["", ".sig", ".sshsig"] {
                let mut s = f.as_os_str().to_owned();
                s.push(suffix);
                fs::remove_file(PathBuf::from(s)).unwrap();
            }
        }
    }
    // One bundle's signature broken; one hostname made hostile (breaks its signature too).
    let remaining = walk(&month_dir);
    let victim = &remaining[100];
    let sig = victim.with_extension("json.sig");
    make_writable(&sig);
    let mut s = fs::read(&sig).unwrap();
    s[0] ^= 0xff;
    fs::write(&sig, s).unwrap();
    let hostile = &remaining[200];
    make_writable(hostile);
    let text = fs::read_to_string(hostile).unwrap().replacen(
        "\"hostname\": \"clinic-001-srv-primary\"",
        "\"hostname\": \"<script>alert(1)</script>\"",
        1,
    );
    fs::write(hostile, text).unwrap();

    let out = w.evidence.parent().unwrap().join("packet");
    assert_eq!(packet(&w, &out, &[]).status.code(), Some(0));
    let m = manifest(&out);
    let listed = m["bundles"].as_array().unwrap();
    let bad: Vec<&Value> = listed.iter().filter(|b| b["verified"] == false).collect();
    let names: Vec<&str> = bad.iter().map(|b| b["path"].as_str().unwrap().rsplit('/').next().unwrap()).collect();
    let victim_name = victim.file_name().unwrap().to_str().unwrap();
    let hostile_name = hostile.file_name().unwrap().to_str().unwrap();
    assert!(names.contains(&victim_name), "{names:?}");
    assert!(names.contains(&hostile_name), "{names:?}");
    let html = fs::read_to_string(out.join("packet.html")).unwrap();
    assert!(!html.contains("<script>"), "hostile string became markup");
    assert!(html.contains(&format!("2026/10/{victim_name}")), "invalid bundle not listed");
    // Heartbeats stopped on the 29th: every heartbeat and provenance control is stale.
    assert!(html.matches("FAILING: stale").count() >= 20, "stale controls");
    for id in ["§164.312(b)", "§164.312(a)(1)", "§164.308(a)(7)(ii)(A)"] {
        assert!(row(&html, id).contains("FAILING: stale"), "{id}: {}", row(&html, id));
    }

    // A month with no evidence at all: every assessed control fails, none passes.
    let out2 = w.evidence.parent().unwrap().join("packet-empty");
    let o = run(bin()
        .args(["packet", "--month", "2026-09", "--client", "clinic-001", "--at", AT, "--evidence-dir"])
        .arg(&w.evidence)
        .arg("--key-dir")
        .arg(&w.keys)
        .arg("--out")
        .arg(&out2));
    assert_eq!(o.status.code(), Some(0));
    let m = manifest(&out2);
    assert_eq!(m["summary"]["controls_passing"], 0);
    assert_eq!(m["summary"]["controls_assessed"], 39);
    let html = fs::read_to_string(out2.join("packet.html")).unwrap();
    assert_eq!(html.matches("FAILING: no evidence").count(), 39);
}

/// §164.308(a)(7)(ii)(B) and (D) need the month's WORM restore test beside the weekly restore
/// runbook: the same month without it fails both rows and names the missing rule, while every
/// other row (backups, §164.308(a)(7)(ii)(A), among them) keeps its verdict.
#[test]
fn a_month_without_a_worm_restore_test_fails_the_contingency_rows() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let month = Month::parse(MONTH).unwrap();
    msp_agent::keys::generate(&keys, month.start() - Duration::days(30)).unwrap();
    let signer = msp_agent::keys::Signer::load(&keys).unwrap();
    let (version, sha) = baseline_identity();
    let rows = |worm_restore_test: bool| {
        let evidence = dir.path().join(format!("evidence-{worm_restore_test}"));
        let mut spec = MonthSpec::new(month, &version, &sha);
        spec.worm_restore_test = worm_restore_test;
        let tally = write_month(&evidence, &spec, &signer).unwrap();
        assert_eq!(tally.worm_restore_tests, usize::from(worm_restore_test));
        let out = dir.path().join(format!("packet-{worm_restore_test}"));
        let o = run(bin()
            .args(["packet", "--month", MONTH, "--at", AT, "--evidence-dir"])
            .arg(&evidence)
            .arg("--key-dir")
            .arg(&keys)
            .arg("--out")
            .arg(&out));
        assert_eq!(o.status.code(), Some(0));
        let html = fs::read_to_string(out.join("packet.html")).unwrap();
        let m = manifest(&out);
        (html, m["summary"]["controls_passing"].as_u64().unwrap())
    };
    let (with, passing_with) = rows(true);
    let (without, passing_without) = rows(false);
    for id in ["§164.308(a)(7)(ii)(B)", "§164.308(a)(7)(ii)(D)"] {
        assert!(row(&with, id).contains("PASSING"), "{id} with the test: {}", row(&with, id));
        let r = row(&without, id);
        assert!(r.contains("FAILING"), "{id} without the test: {r}");
        assert!(r.contains("worm_restore_test"), "{id}: the missing rule is named: {r}");
    }
    // Only those two rows depend on the WORM restore test.
    assert_eq!(passing_with - passing_without, 2, "exactly (B) and (D) flip");
    for id in ["§164.308(a)(7)(i)", "§164.308(a)(7)(ii)(A)", "§164.312(b)"] {
        assert_eq!(row(&with, id), row(&without, id), "{id} does not depend on the WORM restore test");
    }
}

/// The HTML table row of a control.
fn row(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("<td>{id}</td>"))
        .unwrap_or_else(|| panic!("{id} row"));
    html[start..start + html[start..].find("</tr>").unwrap()].to_string()
}

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(bin().args(["packet", "--month", "2026-13", "--evidence-dir"]).arg(dir.path()).arg("--key-dir").arg(dir.path()));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2026-13"));
    let o = run(bin().args(["packet", "--month", "2026-10", "--key-dir"]).arg(dir.path()).arg("--evidence-dir").arg(dir.path().join("nope")));
    assert_eq!(o.status.code(), Some(2));
}

/// Every listed bundle, one at a time, with one byte changed: the manifest check names exactly
/// that bundle first. A smaller month (heartbeats every 6 hours, ~260 bundles) so all of them
/// can be tried in-process.
#[test]
fn every_listed_bundle_tampered_fails_the_manifest_check() {
    use msp_agent::evidence::keyring::Keyring;
    use msp_agent::packet::{generate, manifest, Options, Source, EMBEDDED_BASELINE, EMBEDDED_CONTROLS};
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let evidence = dir.path().join("evidence");
    let month = Month::parse(MONTH).unwrap();
    msp_agent::keys::generate(&keys, month.start() - Duration::days(1)).unwrap();
    let signer = msp_agent::keys::Signer::load(&keys).unwrap();
    let (version, sha) = baseline_identity();
    let mut spec = MonthSpec::new(month, &version, &sha);
    spec.heartbeat_interval = 6 * 3600;
    spec.incidents_per_day = 2;
    // Evidence fields are hostile input: a signed, valid bundle can still carry markup.
    spec.hostname = "<script>alert('x')</script>&".into();
    let tally = write_month(&evidence, &spec, &signer).unwrap();
    let out = dir.path().join("packet");
    let g = generate(&Options {
        month,
        client: None,
        evidence_dir: evidence.clone(),
        key_dir: keys.clone(),
        keys: None,
        out: Some(out.clone()),
        controls: Source { name: EMBEDDED_CONTROLS.0.into(), text: EMBEDDED_CONTROLS.1.into() },
        baseline: Source { name: EMBEDDED_BASELINE.0.into(), text: EMBEDDED_BASELINE.1.into() },
        exceptions: None,
        now: DateTime::parse_from_rfc3339(AT).unwrap().with_timezone(&Utc),
    })
    .unwrap();
    assert_eq!(g.bundles, tally.bundles);
    assert_eq!(g.invalid, 0);
    // The private key alone in its directory (as a systemd credential) plus --keys for the
    // public keys: the same packet.
    let cred = dir.path().join("credentials");
    fs::create_dir_all(&cred).unwrap();
    fs::copy(keys.join("evidence-signing.key"), cred.join("evidence-signing.key")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(cred.join("evidence-signing.key"), fs::Permissions::from_mode(0o400)).unwrap();
    }
    let o = run(bin()
        .args(["packet", "--month", MONTH, "--at", AT, "--evidence-dir"])
        .arg(&evidence)
        .arg("--key-dir")
        .arg(&cred)
        .arg("--keys")
        .arg(&keys)
        .arg("--out")
        .arg(dir.path().join("packet-cred")));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(manifest(&dir.path().join("packet-cred"))["summary"], manifest(&out)["summary"]);
    let o = run(bin()
        .args(["packet", "--month", MONTH, "--at", AT, "--evidence-dir"])
        .arg(&evidence)
        .arg("--key-dir")
        .arg(&cred)
        .arg("--out")
        .arg(dir.path().join("packet-nokeys")));
    assert_eq!(o.status.code(), Some(2), "no public keys beside the credential: a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("loading public keys from"));

    let html = fs::read_to_string(out.join("packet.html")).unwrap();
    assert!(!html.contains("<script>"), "a hostile hostname became markup");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"), "hostname not shown escaped");
    let ring = Keyring::load(&keys).unwrap();
    let mpath = out.join("manifest.json");
    let clean = manifest::verify(&mpath, &ring, None).unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(clean.bundles_ok, tally.bundles);
    let m = manifest(&out);
    for b in m["bundles"].as_array().unwrap() {
        let rel = b["path"].as_str().unwrap();
        let p = evidence.join(rel);
        let orig = fs::read(&p).unwrap();
        let mut bad = orig.clone();
        let k = orig.len() - 3;
        bad[k] ^= 0x04;
        fs::write(&p, &bad).unwrap();
        let r = manifest::verify(&mpath, &ring, None).unwrap();
        let name = rel.rsplit('/').next().unwrap();
        assert_eq!(r.problems.len(), 1, "{rel}: {:?}", r.problems);
        assert_eq!(r.problems[0].0, name);
        assert!(r.problems[0].1.contains("(modified)"));
        fs::write(&p, &orig).unwrap();
    }
}
