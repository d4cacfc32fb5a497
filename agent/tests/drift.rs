//! Drift detection end to end: the real daemon (`msp-agent run`) watches real files with
//! inotify; each change (edit in place, replace by rename, delete, a new file in the key
//! directory) becomes exactly one `config_drift` bundle naming the path and both hashes,
//! RB-DRIFT-001 runs, the alert reaches a real webhook, a restore is not drift, and the
//! evidence verifies with stock `ssh-keygen` and `openssl`. Latency from the change to the
//! durable bundle is measured and printed.

mod common {
    pub mod agent_fixture;
    #[path = "../fixtures/journal/helpers.rs"]
    pub mod helpers;
    pub mod stock;
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent_fixture::{files_under, sha256_hex, sigterm_and_wait, Fixture};

/// A loopback webhook that answers 204 and keeps every body.
fn webhook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    keep.lock().unwrap().push(v);
                }
            }
            let _ = write!(s, "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

/// The fixture plus governed files, a filled expected-state manifest, RB-DRIFT-001 approved.
struct DriftFixture {
    f: Fixture,
    etc: PathBuf,
}

const SSHD: &str = "PasswordAuthentication no\nPermitRootLogin no\n";
const AUDIT: &str = "-w /etc/shadow -p wa -k identity\n";
const JOURNALD: &str = "[Journal]\nStorage=persistent\n";
const MODPROBE: &str = "blacklist usb-storage\n";

fn drift_fixture(webhook_url: &str) -> DriftFixture {
    let f = Fixture::new(0, 300);
    let etc = f.root.join("etc");
    let files = [
        ("ssh/sshd_config", SSHD),
        ("audit/audit.rules", AUDIT),
        ("systemd/journald.conf", JOURNALD),
        ("modprobe.d/nixos.conf", MODPROBE),
    ];
    for (p, text) in files {
        std::fs::create_dir_all(etc.join(p).parent().unwrap()).unwrap();
        std::fs::write(etc.join(p), text).unwrap();
    }
    f.govern(&files.map(|(p, text)| (etc.join(p), text)));
    // Changed while the agent was not running: found at start.
    std::fs::write(etc.join("modprobe.d/nixos.conf"), "# emptied\n").unwrap();
    f.add_config(&format!("alert:\n  webhook_url: {webhook_url}\n  retries: 1\n"));
    DriftFixture { f, etc }
}

fn drift_bundles(f: &Fixture) -> Vec<serde_json::Value> {
    f.bundles().into_iter().filter(|b| b["incident"]["event_type"] == "config_drift").collect()
}

/// Run `change`, then wait (polling every 2 ms) for the `config_drift` bundle about `path`;
/// returns it and the time from just before the change to the bundle being on disk.
fn change_and_wait(f: &Fixture, path: &Path, change: impl FnOnce()) -> (serde_json::Value, Duration) {
    let before = drift_bundles(f).len();
    let t0 = Instant::now();
    change();
    loop {
        let all = drift_bundles(f);
        if all.len() > before {
            let elapsed = t0.elapsed();
            assert_eq!(all.len(), before + 1, "one change, one bundle: {:?}", &all[before..]);
            let b = all[before].clone();
            assert_eq!(b["incident"]["details"]["path"], path.to_str().unwrap(), "{b}");
            return (b, elapsed);
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no drift bundle for {}; log:\n{}", path.display(), f.log_text());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The artifact `drift-state.txt` of a bundle.
fn drift_state(f: &Fixture, b: &serde_json::Value) -> String {
    let id = b["bundle_id"].as_str().unwrap();
    let bundle = common::stock::bundles(&f.evidence).into_iter().find(|p| p.file_stem().unwrap() == id).unwrap();
    std::fs::read_to_string(bundle.with_file_name(format!("{id}.artifacts/drift-state.txt"))).unwrap()
}

#[test]
fn each_change_to_a_governed_file_is_one_drift_bundle_with_both_hashes_within_a_second() {
    let (url, hooks) = webhook();
    let DriftFixture { f, etc } = drift_fixture(&url);
    let agent = f.spawn();
    let mut latencies = Vec::new();

    // 0. The file changed before the start is reported without any event.
    let modprobe = etc.join("modprobe.d/nixos.conf");
    common::agent_fixture::wait_until(&f, "the drift found at start", Duration::from_secs(30), || drift_bundles(&f).len() == 1);
    let b = &drift_bundles(&f)[0];
    assert_eq!(b["incident"]["details"]["path"], modprobe.to_str().unwrap());
    assert_eq!(b["incident"]["details"]["expected_sha256"], sha256_hex(MODPROBE.as_bytes()));
    assert_eq!(b["incident"]["details"]["actual_sha256"], sha256_hex(b"# emptied\n"));

    // 1. Edited in place (truncate and write, as `echo >>` or most editors' :w).
    let sshd = etc.join("ssh/sshd_config");
    let edited = "PasswordAuthentication yes\nPermitRootLogin no\n";
    let (b, t) = change_and_wait(&f, &sshd, || std::fs::write(&sshd, edited).unwrap());
    latencies.push(("edit in place", t));
    let d = &b["incident"]["details"];
    assert_eq!(d["expected_sha256"], sha256_hex(SSHD.as_bytes()));
    assert_eq!(d["actual_sha256"], sha256_hex(edited.as_bytes()));
    assert_eq!(d["expected_from"], "manifest");
    assert_eq!(b["incident"]["source"], "inotify");
    assert_eq!(b["incident"]["severity"], "high");
    assert_eq!(b["runbook"]["runbook_id"], "RB-DRIFT-001");
    assert_eq!(b["incident"]["hipaa_controls"], serde_json::json!(["§164.312(c)(1)", "§164.308(a)(1)(ii)(D)"]));
    // Nothing re-applied it (drift.reapply is false), so the verification says still drifted.
    assert_eq!(b["outputs"]["resolution_status"], "failed", "{b}");
    let state = drift_state(&f, &b);
    assert!(state.contains(&format!("sha256_now: {}", sha256_hex(edited.as_bytes()))), "{state}");
    assert!(!state.contains("PasswordAuthentication"), "the file's content is never copied: {state}");

    // 2. Replaced by rename (how NixOS activation, editors and config tools write).
    let audit = etc.join("audit/audit.rules");
    let replaced = "-D\n";
    let (b, t) = change_and_wait(&f, &audit, || {
        let tmp = etc.join("audit/.audit.rules.tmp");
        std::fs::write(&tmp, replaced).unwrap();
        std::fs::rename(&tmp, &audit).unwrap();
    });
    latencies.push(("replace by rename", t));
    assert_eq!(b["incident"]["details"]["expected_sha256"], sha256_hex(AUDIT.as_bytes()));
    assert_eq!(b["incident"]["details"]["actual_sha256"], sha256_hex(replaced.as_bytes()));

    // 3. Deleted.
    let journald = etc.join("systemd/journald.conf");
    let (b, t) = change_and_wait(&f, &journald, || std::fs::remove_file(&journald).unwrap());
    latencies.push(("delete", t));
    assert_eq!(b["incident"]["details"]["expected_sha256"], sha256_hex(JOURNALD.as_bytes()));
    assert_eq!(b["incident"]["details"]["actual_sha256"], "absent");
    assert!(drift_state(&f, &b).contains("sha256_now: absent"));

    // 4. A new file in the signing-key directory: expected absent; the key is never copied.
    let extra = f.keys.join("extra.key");
    let secret = "-----BEGIN PRIVATE KEY-----\nNOT-A-REAL-KEY-BUT-SECRET\n-----END PRIVATE KEY-----\n";
    let (b, t) = change_and_wait(&f, &extra, || std::fs::write(&extra, secret).unwrap());
    latencies.push(("new key file", t));
    assert_eq!(b["incident"]["details"]["expected_sha256"], "absent");
    assert_eq!(b["incident"]["details"]["expected_from"], "startup");
    assert_eq!(b["incident"]["details"]["actual_sha256"], sha256_hex(secret.as_bytes()));
    let id = b["bundle_id"].as_str().unwrap().to_string();
    for p in files_under(&f.evidence) {
        if p.to_string_lossy().contains(&id) {
            assert!(!std::fs::read_to_string(&p).unwrap_or_default().contains("NOT-A-REAL-KEY"), "key material in {}", p.display());
        }
    }

    // 5. Restoring the expected content is not drift (and touching an ungoverned file in a
    // watched directory is nothing either).
    let count = drift_bundles(&f).len();
    std::fs::write(&sshd, SSHD).unwrap();
    std::fs::write(etc.join("ssh/ssh_known_hosts"), "x").unwrap();
    std::fs::write(f.root.join("notes.txt"), "x").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(drift_bundles(&f).len(), count, "a restore or an ungoverned file made a drift bundle");

    // The alert reached the webhook, once per drift.
    let t0 = Instant::now();
    while hooks.lock().unwrap().iter().filter(|h| h["kind"] == "config_drift").count() < 5 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());
    let alerts: Vec<_> = hooks.lock().unwrap().iter().filter(|h| h["kind"] == "config_drift").cloned().collect();
    assert_eq!(alerts.len(), 5, "{alerts:?}");
    assert!(alerts[1]["summary"].as_str().unwrap().contains("sshd_config drifted"), "{alerts:?}");

    assert_eq!(drift_bundles(&f).len(), 5);
    let schema: serde_json::Value = serde_json::from_str(include_str!("../schema/evidence-bundle.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for b in f.all_bundles() {
        let errors: Vec<String> = validator.iter_errors(&b).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", b["bundle_id"]);
    }
    let n = common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    assert!(n >= 6, "{n} bundles (heartbeat + 5 drifts)");
    f.verify_cli();
    for (what, t) in &latencies {
        eprintln!("drift latency ({what}): {:.0} ms from the change to the durable bundle", t.as_secs_f64() * 1000.0);
    }
    // The target is one second; the bench (BENCHMARKS.md) measures p50/p99 on a quiet machine.
    // Here, on a machine shared with other test runs, the median must meet it and none may be
    // far off.
    let mut ts: Vec<Duration> = latencies.iter().map(|(_, t)| *t).collect();
    ts.sort();
    assert!(ts[ts.len() / 2] < Duration::from_secs(1), "median {:?}: {latencies:?}", ts[ts.len() / 2]);
    assert!(ts.iter().all(|t| *t < Duration::from_secs(3)), "{latencies:?}");
}

