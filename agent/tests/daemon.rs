//! The daemon end to end on real journal files: `msp-agent run` follows a journal directory
//! written by `systemd-journal-remote`, remediates with a real runbook, and writes evidence
//! that stock `ssh-keygen` and `openssl` verify. Covers: exactly-once across `kill -9` at
//! random points, a 10,000-failure storm, and hostile journal fields.

#[path = "fixtures/journal/helpers.rs"]
mod helpers;
mod common {
    pub mod stock;
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use helpers::{text, write_journal, BOOT_A};

const BIN: &str = env!("CARGO_BIN_EXE_msp-agent");

/// A test runbook for `service_crash` on `test-*.service`: appends the unit to a marker file
/// (a path parameter inside the test's directory), optionally sleeping first.
fn test_runbook(marker: &Path, root: &Path, sleep_secs: u32) -> String {
    format!(
        r#"id: RB-TEST-001
name: Record a crashed test service
version: "1.0.0"
description: Test runbook; records the unit it was asked to handle.
hipaa_controls: ["§164.308(a)(1)(ii)(D)"]
severity: high
sla_minutes: 15
parameters:
  unit:
    type: unit
    required: true
    from_incident: unit
  marker:
    type: path
    default: "{marker}"
    allowed_roots: ["{root}"]
trigger_conditions:
  event_types: [service_crash]
  unit_patterns: ["test-*.service"]
steps:
  - id: record
    action: Append the unit to the marker file
    timeout_seconds: 30
    script: |
      sleep {sleep_secs}
      printf '%s\n' "$MSP_PARAM_UNIT" >> "$MSP_PARAM_MARKER"
rollback: []
verification:
  id: check
  action: The unit is in the marker file
  timeout_seconds: 10
  script: grep -qxF -- "$MSP_PARAM_UNIT" "$MSP_PARAM_MARKER"
"#,
        marker = marker.display(),
        root = root.display(),
    )
}

/// A running agent, killed if the test ends (or panics) while it still runs.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    keys: PathBuf,
    evidence: PathBuf,
    journal: PathBuf,
    marker: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

impl Fixture {
    fn new(sleep_secs: u32, cooldown_seconds: u64) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let keys = root.join("keys");
        let st = Command::new(BIN).args(["key", "generate", "--out"]).arg(&keys).status().unwrap();
        assert!(st.success());
        let runbooks = root.join("runbooks");
        std::fs::create_dir(&runbooks).unwrap();
        let marker = root.join("marker.log");
        let rb = test_runbook(&marker, &root, sleep_secs);
        std::fs::write(runbooks.join("RB-TEST-001.yaml"), &rb).unwrap();
        let hash = sha256_hex(rb.as_bytes());
        let journal = root.join("journal");
        std::fs::create_dir(&journal).unwrap();
        let evidence = root.join("evidence");
        let config = root.join("agent.yaml");
        std::fs::write(
            &config,
            format!(
                "client_id: clinic-test\nhostname: test-host\nrunbooks_dir: {rb}\nevidence_dir: {ev}\nstate_dir: {st}\n\
                 signing_key_file: {key}\napproved_runbooks:\n  RB-TEST-001: {hash}\nclient_permissions:\n  RB-TEST-001: auto\n\
                 max_concurrent_runbooks: 2\nguard:\n  cooldown_seconds: {cooldown_seconds}\njournal:\n  directory: {j}\n\
                 probes:\n  disk: {{enabled: false}}\n  cpu: {{enabled: false}}\n  certs: {{enabled: false}}\n  restore_test: {{enabled: false}}\n",
                rb = runbooks.display(),
                ev = evidence.display(),
                st = root.join("state").display(),
                key = keys.join("evidence-signing.key").display(),
                j = journal.display(),
            ),
        )
        .unwrap();
        let log = root.join("agent.log");
        Fixture { _tmp: tmp, root, keys, evidence, journal, marker, config, log }
    }

    /// Start the agent and wait until it says it is ready (its journal reader is running).
    fn spawn(&self) -> Agent {
        let before = self.log_text().matches("msp-agent ready").count();
        let child = self.spawn_nowait();
        wait_until(self, "the agent to be ready", Duration::from_secs(60), || {
            self.log_text().matches("msp-agent ready").count() > before
        });
        child
    }

    fn spawn_nowait(&self) -> Agent {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        Agent(Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Parsed bundles, in path order.
    fn bundles(&self) -> Vec<serde_json::Value> {
        common::stock::bundles(&self.evidence)
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    fn verify_cli(&self) {
        let out = Command::new(BIN).args(["evidence", "verify", "--keys"]).arg(&self.keys).arg(&self.evidence).output().unwrap();
        assert!(
            out.status.success(),
            "evidence verify failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

fn now_usec() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

/// A PID 1 "Main process exited" entry for `unit` at realtime `t` (µs), as systemd writes it.
fn crash_entry(unit_field: &[u8], t: u64) -> Vec<u8> {
    let mut e = vec![];
    e.extend(text("__REALTIME_TIMESTAMP", &t.to_string()));
    e.extend(text("__MONOTONIC_TIMESTAMP", &(t % 1_000_000_000_000).to_string()));
    e.extend(text("_BOOT_ID", BOOT_A));
    e.extend(text("_TRANSPORT", "journal"));
    e.extend(text("PRIORITY", "5"));
    e.extend(text("SYSLOG_IDENTIFIER", "systemd"));
    e.extend(text("_PID", "1"));
    e.extend(text("_COMM", "systemd"));
    e.extend(text("_SYSTEMD_UNIT", "init.scope"));
    e.extend(text("MESSAGE_ID", "98e322203f7a4ed290d09fe03c09fe15"));
    e.extend(helpers::binary("UNIT", unit_field));
    let mut msg = unit_field.to_vec();
    msg.extend_from_slice(b": Main process exited, code=exited, status=1/FAILURE");
    e.extend(helpers::binary("MESSAGE", &msg));
    e.extend(text("EXIT_CODE", "exited"));
    e.extend(text("EXIT_STATUS", "1"));
    e.push(b'\n');
    e
}

fn wait_until(fx: &Fixture, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}; agent log:\n{}", fx.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm_and_wait(mut agent: Agent) -> std::process::ExitStatus {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(st) = agent.0.try_wait().unwrap() {
            return st;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "agent did not stop within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Execution bundles (not suppressions/escalations) per unit.
fn executions_by_unit(bundles: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for b in bundles {
        if b["execution"]["resolution_type"] == "automatic" {
            let unit = b["incident"]["details"]["unit"].as_str().unwrap_or("?").to_string();
            *m.entry(unit).or_insert(0) += 1;
        }
    }
    m
}

#[test]
fn every_crash_is_handled_exactly_once_across_kill_9_at_random_points() {
    let f = Fixture::new(0, 300);
    let mut seed = now_usec() ^ 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    eprintln!("kill-9 test: log at {}", f.log.display());
    let mut total = 0usize;
    let mut child = f.spawn();
    for round in 0..6 {
        // A batch of crashes of distinct units, into a new journal file (as after a rotation).
        let n = 5 + rand(6) as usize;
        let mut batch = vec![];
        let t0 = now_usec();
        for i in 0..n {
            batch.extend(crash_entry(format!("test-r{round}-{i}.service").as_bytes(), t0 + i as u64 * 10));
        }
        total += n;
        write_journal(&f.journal.join(format!("round-{round}.journal")), &batch);
        // Kill at a random point: before, during or after handling.
        std::thread::sleep(Duration::from_millis(rand(1500)));
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        // Every other restart is not waited for, so later kills also land during start-up.
        child = if round % 2 == 0 { f.spawn_nowait() } else { f.spawn() };
        std::thread::sleep(Duration::from_millis(rand(300)));
    }
    wait_until(&f, "every crash handled", Duration::from_secs(90), || {
        executions_by_unit(&f.bundles()).len() >= total
    });
    let status = sigterm_and_wait(child);
    assert!(status.success(), "agent exit after SIGTERM: {status:?}\n{}", f.log_text());

    let bundles = f.bundles();
    let by_unit = executions_by_unit(&bundles);
    assert_eq!(by_unit.len(), total, "units handled: {by_unit:?}");
    for (unit, count) in &by_unit {
        assert_eq!(*count, 1, "{unit} handled {count} times\n{}", f.log_text());
    }
    // Each cursor once.
    let mut cursors = BTreeMap::new();
    for b in &bundles {
        if let Some(c) = b["incident"]["details"]["journal_cursor"].as_str() {
            *cursors.entry(c.to_string()).or_insert(0) += 1;
        }
    }
    assert!(cursors.values().all(|&c| c == 1), "a cursor has two bundles: {cursors:?}");
    // The system side: the runbook really ran for every unit (a kill during a run may have
    // made it run twice; it never ran zero times).
    let marker = std::fs::read_to_string(&f.marker).unwrap();
    for unit in by_unit.keys() {
        assert!(marker.lines().any(|l| l == unit), "{unit} missing from the marker file");
    }
    assert_eq!(common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence), bundles.len());
    f.verify_cli();
}

#[test]
fn a_storm_of_10000_identical_failures_runs_once_and_writes_few_records() {
    // Long enough that the whole storm is read inside one window even on a loaded machine.
    let cooldown = 30;
    let f = Fixture::new(2, cooldown);
    let child = f.spawn();
    // 10,000 crash lines of one unit, 61 s apart in journal time so that the detector's
    // 60 s dedupe does not merge them: each is a separate incident for the guard to stop.
    let t0 = now_usec();
    let mut storm = Vec::with_capacity(10_000 * 400);
    for i in 0..10_000u64 {
        storm.extend(crash_entry(b"test-storm.service", t0 + i * 61_000_000));
    }
    write_journal(&f.journal.join("storm.journal"), &storm);
    wait_until(&f, "the storm to be read and the window summary written", Duration::from_secs(120), || {
        f.bundles().iter().any(|b| b["incident"]["event_type"] == "suppression_summary")
    });
    let status = sigterm_and_wait(child);
    assert!(status.success(), "{}", f.log_text());

    let bundles = f.bundles();
    let runs = executions_by_unit(&bundles);
    assert_eq!(runs.get("test-storm.service"), Some(&1), "{runs:?}");
    let suppressions: Vec<_> = bundles.iter().filter(|b| b["execution"]["resolution_type"] == "suppressed").collect();
    assert!(suppressions.len() <= 3, "{} suppression records", suppressions.len());
    let counted: u64 = suppressions.iter().map(|b| b["verification"]["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 9_999, "every suppressed failure is accounted for exactly once");
    assert_eq!(std::fs::read_to_string(&f.marker).unwrap().lines().count(), 1, "the runbook ran once");
    assert!(bundles.len() <= 4, "{} bundles for a storm", bundles.len());
    common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    f.verify_cli();
}

#[test]
fn hostile_unit_names_escalate_and_never_reach_a_shell() {
    let f = Fixture::new(0, 300);
    let child = f.spawn();
    let pwned = f.root.join("pwned");
    let hostile: Vec<Vec<u8>> = vec![
        format!("test-x.service; touch {}", pwned.display()).into_bytes(),
        format!("test-$(touch {}).service", pwned.display()).into_bytes(),
        format!("test-`touch {}`.service", pwned.display()).into_bytes(),
        b"test-a.service\nUNIT=test-b.service".to_vec(),
        vec![b't', b'e', b's', b't', b'-', 0xff, 0xfe, b'.', b's', b'e', b'r', b'v', b'i', b'c', b'e'],
        [b"test-".as_slice(), &vec![b'a'; 1 << 20], b".service"].concat(),
    ];
    let t0 = now_usec();
    let mut batch = vec![];
    for (i, h) in hostile.iter().enumerate() {
        batch.extend(crash_entry(h, t0 + i as u64 * 120_000_000));
    }
    // One honest crash after them proves the agent is still working.
    batch.extend(crash_entry(b"test-honest.service", t0 + 10 * 120_000_000));
    write_journal(&f.journal.join("hostile.journal"), &batch);
    wait_until(&f, "the honest crash handled", Duration::from_secs(60), || {
        executions_by_unit(&f.bundles()).contains_key("test-honest.service")
    });
    let status = sigterm_and_wait(child);
    assert!(status.success(), "{}", f.log_text());
    assert!(!pwned.exists(), "a journal field reached a shell");
    let bundles = f.bundles();
    let runs = executions_by_unit(&bundles);
    assert_eq!(runs.keys().collect::<Vec<_>>(), ["test-honest.service"], "only the honest unit ran");
    let escalations = bundles.iter().filter(|b| b["execution"]["resolution_type"] == "escalated").count();
    assert!(escalations >= 1, "hostile units are escalated to a person");
    assert_eq!(std::fs::read_to_string(&f.marker).unwrap(), "test-honest.service\n");
    common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    f.verify_cli();
}
