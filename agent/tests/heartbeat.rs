//! The daemon's observation records, end to end: signed heartbeats with their provenance
//! fields (the NixOS symlinks pointed at temporary ones by config), a heartbeat gap reported
//! by `evidence verify` (human and `--json`, warning by default, an error with
//! `--max-heartbeat-gap`), and a `backup_completed` record for a successful backup run in a
//! real journal file — exactly one, across a `kill -9` and a restart — which `msp-agent
//! detect` does not report as an incident.

mod common {
    pub mod agent_fixture;
    #[path = "../fixtures/journal/helpers.rs"]
    pub mod helpers;
    pub mod stock;
}

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::agent_fixture::{now_usec, publish_journal, sigterm_and_wait, wait_until, Fixture};
use common::helpers::text;
use msp_agent::daemon::records::{self, RecordContext};
use msp_agent::evidence::bundle::Provenance;
use msp_agent::evidence::store::EvidenceStore;

const BIN: &str = env!("CARGO_BIN_EXE_msp-agent");

#[test]
fn heartbeats_carry_version_generations_and_baseline_at_the_configured_interval() {
    let f = Fixture::new(0, 300);
    let current = f.root.join("current-system");
    std::os::unix::fs::symlink("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-srv-24.11", &current).unwrap();
    let booted = f.root.join("booted-system"); // absent: recorded as null
    // The embedded baseline's hash: the agent refuses a `baseline.sha256` that differs.
    let baseline_sha = msp_agent::baseline::model::sha256_hex(msp_agent::packet::EMBEDDED_BASELINE.1.as_bytes());
    f.add_config(&format!(
        "heartbeat:\n  interval_seconds: 1\nprovenance:\n  current_system_link: {}\n  booted_system_link: {}\n\
         baseline:\n  version: \"1.0.0\"\n  sha256: {baseline_sha}\n",
        current.display(),
        booted.display()
    ));
    let t0 = Utc::now();
    let agent = f.spawn();
    wait_until(&f, "three heartbeats", Duration::from_secs(30), || f.heartbeats().len() >= 3);
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());

    let beats = f.heartbeats();
    let mut prev: Option<DateTime<Utc>> = None;
    for b in &beats {
        let i = &b["incident"];
        assert_eq!(i["event_type"], "heartbeat");
        assert_eq!(i["severity"], "low");
        assert_eq!(i["source"], "agent");
        assert!(i["incident_id"].as_str().unwrap().starts_with("HB-"), "{b}");
        assert_eq!(i["hipaa_controls"], serde_json::json!(["§164.312(b)", "§164.308(a)(1)(ii)(D)"]));
        let d = &i["details"];
        assert_eq!(d["agent_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(d["current_system"], "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-srv-24.11");
        assert!(d["booted_system"].is_null(), "{d}");
        assert_eq!(d["baseline_version"], "1.0.0");
        assert_eq!(d["baseline_sha256"], baseline_sha.as_str());
        assert_eq!(d["interval_seconds"], 1);
        // The chain position (issue 18 item 2): exactly the head this heartbeat extends,
        // read under the writer's lock, and the mark that this agent signs the chain head.
        assert_eq!(d["chain_head_sequence"].as_u64(), b["chain"]["sequence"].as_u64().map(|s| s - 1), "{b}");
        assert_eq!(d["chain_head_sha256"], b["chain"]["prev_bundle_sha256"], "{b}");
        assert_eq!(d["head_signed"], true, "{b}");
        let started: DateTime<Utc> = d["agent_started_at"].as_str().unwrap().parse().unwrap();
        assert!(started >= t0 - chrono::Duration::seconds(1), "{started} vs {t0}");
        assert_eq!(b["execution"]["resolution_type"], "recorded");
        assert_eq!(b["outputs"]["resolution_status"], "recorded");
        assert_eq!(b["runbook"]["runbook_id"], "none");
        assert_eq!(b["runbook"]["steps_total"], 0);
        assert_eq!(b["provenance"]["nixos_system"], d["current_system"]);
        let at: DateTime<Utc> = i["detected_at"].as_str().unwrap().parse().unwrap();
        if let Some(p) = prev {
            let gap = (at - p).num_milliseconds();
            assert!((900..3000).contains(&gap), "heartbeats {gap} ms apart for a 1 s interval");
        }
        prev = Some(at);
    }
    common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    // The signed chain head, with the stock tools too.
    let head = f.evidence.join("head/head.json");
    common::stock::ssh_keygen_verify(&f.keys, &head).unwrap();
    common::stock::openssl_verify(&f.keys, &head).unwrap();
    f.verify_cli();
    // Schema-valid, with the "recorded" values (and a wrong chain position is not).
    let mut wrong = beats[0].clone();
    wrong["incident"]["details"]["chain_head_sha256"] = "not-a-hash".into();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/evidence-bundle.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for b in &beats {
        let errors: Vec<String> = validator.iter_errors(b).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
    assert!(!validator.is_valid(&wrong), "the schema accepted a heartbeat with a bad chain_head_sha256");
}

/// A store with heartbeats at the given minutes after noon yesterday, signed by a key valid
/// from then.
fn hand_built_chain(minutes: &[i64]) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let evidence = tmp.path().join("evidence");
    // Noon yesterday: the chain stays within one day, so ids end in -0001, -0002, ...
    let start = (Utc::now() - chrono::Duration::days(1)).date_naive().and_hms_opt(12, 0, 0).unwrap().and_utc();
    msp_agent::keys::generate(&keys, start).unwrap();
    let signer = msp_agent::keys::Signer::load(&keys).unwrap();
    let mut store = EvidenceStore::open(&evidence).unwrap();
    let prov = Provenance { agent_version: "0.1.0".into(), nixos_system: None, baseline_version: None, baseline_sha256: None };
    let ctx = RecordContext { client_id: "clinic-test", hostname: "test-host", provenance: &prov };
    for m in minutes {
        let at = start + chrono::Duration::minutes(*m) + chrono::Duration::seconds(5);
        let details = serde_json::json!({
            "agent_version": "0.1.0", "current_system": null, "booted_system": null,
            "baseline_version": null, "baseline_sha256": null, "interval_seconds": 900,
            "agent_started_at": msp_agent::runbook::exec::rfc3339(start),
        });
        store.append(records::heartbeat(&ctx, details, at), &signer, at).unwrap();
    }
    (tmp, keys, evidence)
}

fn verify(keys: &std::path::Path, evidence: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN).args(["evidence", "verify", "--keys"]).arg(keys).args(extra).arg(evidence).output().unwrap()
}

#[test]
fn evidence_verify_names_the_heartbeats_around_a_gap() {
    // Every 15 minutes, one beat missed at 45 (tolerated: 30 min), then nothing from 60 to 150.
    let (_tmp, keys, evidence) = hand_built_chain(&[0, 15, 30, 60, 150, 165]);
    let out = verify(&keys, &evidence, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a gap is a warning by default: {stdout}{stderr}");
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.contains("heartbeat gap")).collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    // Sequences 4 and 5.
    assert!(warnings[0].starts_with("warning: heartbeat gap on clinic-test/test-host: EB-"), "{}", warnings[0]);
    assert!(warnings[0].contains("-0004 (") && warnings[0].contains("-0005 ("), "{}", warnings[0]);
    assert!(warnings[0].contains("1h30m without a heartbeat (allowed 1h)"), "{}", warnings[0]);
    assert!(stderr.contains("OK, 6 bundle(s) verified (1 heartbeat gap warning(s))"), "{stderr}");

    let out = verify(&keys, &evidence, &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let gaps = report["heartbeat_gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0]["gap_seconds"], 5400);
    assert_eq!(gaps[0]["allowed_seconds"], 3600);
    assert_eq!(gaps[0]["error"], false);
    assert!(gaps[0]["before"].as_str().unwrap().ends_with("-0004"));
    assert!(gaps[0]["after"].as_str().unwrap().ends_with("-0005"));

    // Enforced: --max-heartbeat-gap 20m makes both the 30-minute and the 90-minute gap errors.
    let out = verify(&keys, &evidence, &["--max-heartbeat-gap", "20m"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("error: heartbeat gap")).count(), 2, "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 heartbeat gap(s) exceed --max-heartbeat-gap"));
    let out = verify(&keys, &evidence, &["--max-heartbeat-gap", "2h"]);
    assert_eq!(out.status.code(), Some(0));
    let out = verify(&keys, &evidence, &["--max-heartbeat-gap", "soon"]);
    assert_eq!(out.status.code(), Some(2), "a bad duration is a usage error");

    // No gap: nothing reported.
    let (_tmp2, keys, evidence) = hand_built_chain(&[0, 15, 30, 45]);
    let out = verify(&keys, &evidence, &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["heartbeat_gaps"], serde_json::json!([]));
}

/// One PID 1 line about `unit` at realtime `t`.
fn pid1_entry(unit: &str, message: &str, message_id: Option<&str>, job_result: Option<&str>, t: u64) -> Vec<u8> {
    let mut e = common::agent_fixture::pid1_header("6", t);
    if let Some(id) = message_id {
        e.extend(text("MESSAGE_ID", id));
    }
    if let Some(r) = job_result {
        e.extend(text("JOB_TYPE", "start"));
        e.extend(text("JOB_RESULT", r));
    }
    e.extend(text("UNIT", unit));
    e.extend(text("MESSAGE", message));
    e.push(b'\n');
    e
}

/// What systemd 252 logs for one successful run of a restic backup timer's service.
fn successful_backup_run(t: u64) -> Vec<u8> {
    let u = "restic-backups-daily.service";
    let mut j = vec![];
    j.extend(pid1_entry(u, "Starting restic-backups-daily.service - restic backup daily...", Some("7d4958e842da4a758f6c1cdc7b36dcc5"), None, t));
    j.extend(pid1_entry(u, "restic-backups-daily.service: Deactivated successfully.", Some("7ad2d189f7e94e70a38c781354912448"), None, t + 40_000_000));
    j.extend(pid1_entry(u, "Finished restic-backups-daily.service - restic backup daily.", Some("39f53479d3a045ac8e11786248231fbf"), Some("done"), t + 40_000_100));
    j.extend(pid1_entry(u, "restic-backups-daily.service: Consumed 12.345s CPU time.", Some("ae8f7b866b0347b9af31fe1c80b127c0"), None, t + 40_000_200));
    j
}

fn backup_records(f: &Fixture) -> Vec<serde_json::Value> {
    f.bundles().into_iter().filter(|b| b["incident"]["event_type"] == "backup_completed").collect()
}

#[test]
fn a_successful_backup_run_is_one_record_across_kill_9_and_restart_and_not_an_incident() {
    let f = Fixture::new(0, 300);
    let mut agent = f.spawn();
    let t = now_usec();
    publish_journal(&f, "backup.journal", &successful_backup_run(t));
    // Kill the moment the record is on disk: usually before the cursor (flushed every second)
    // has passed the entry, so the restart reads it again and must recognise it as handled.
    let t0 = Instant::now();
    while backup_records(&f).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no backup record; log:\n{}", f.log_text());
        std::thread::sleep(Duration::from_millis(2));
    }
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    let agent = f.spawn();
    std::thread::sleep(Duration::from_secs(2));
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());
    eprintln!(
        "after kill -9 the restart {}",
        if f.log_text().contains("already handled before a restart") {
            "read the entry again and skipped it as handled"
        } else {
            "started past the entry (the cursor was committed before the kill)"
        }
    );

    let recs = backup_records(&f);
    assert_eq!(recs.len(), 1, "one run, one record: {recs:?}");
    let r = &recs[0];
    assert_eq!(r["incident"]["severity"], "low");
    assert_eq!(r["incident"]["source"], "journal");
    assert_eq!(r["incident"]["hipaa_controls"], serde_json::json!(["§164.308(a)(7)(ii)(A)", "§164.310(d)(2)(iv)"]));
    let d = &r["incident"]["details"];
    assert_eq!(d["unit"], "restic-backups-daily.service");
    assert_eq!(d["journal_realtime_usec"], t + 40_000_000, "the Deactivated line");
    assert!(d["journal_cursor"].as_str().unwrap().starts_with("s="), "{d}");
    assert_eq!(r["execution"]["resolution_type"], "recorded");
    assert_eq!(r["outputs"]["resolution_status"], "recorded");
    // Nothing else: no incident, no runbook, no escalation.
    assert_eq!(f.bundles().len(), 1, "{:?}", f.bundles());
    let schema: serde_json::Value = serde_json::from_str(include_str!("../schema/evidence-bundle.schema.json")).unwrap();
    let errors: Vec<String> =
        jsonschema::validator_for(&schema).unwrap().iter_errors(r).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:?}");
    common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    f.verify_cli();

    // `msp-agent detect` on the same journal: no incident.
    let out = Command::new(BIN).args(["detect", "--journal-dir"]).arg(&f.journal).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "a successful backup is not an incident");
}
