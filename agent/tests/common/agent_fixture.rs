//! A running `msp-agent run` on a journal directory, for the daemon tests and bench: keys,
//! a test runbook, a strict config, journal entries as systemd writes them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::helpers::{self, text, BOOT_A};

const BIN: &str = env!("CARGO_BIN_EXE_msp-agent");

/// A test runbook for `service_crash` on `test-*.service`: appends the unit to a marker file
/// (a path parameter inside the test's directory), optionally sleeping first.
pub fn test_runbook(marker: &Path, root: &Path, sleep_secs: u32) -> String {
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
pub struct Agent(pub Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub keys: PathBuf,
    pub evidence: PathBuf,
    pub journal: PathBuf,
    pub marker: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Extra environment for the agent process.
    pub env: Vec<(String, String)>,
}

impl Fixture {
    pub fn new(sleep_secs: u32, cooldown_seconds: u64) -> Fixture {
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
        Fixture { _tmp: tmp, root, keys, evidence, journal, marker, config, log, env: Vec::new() }
    }

    /// Start the agent and wait until it says it is ready (its journal reader is running).
    pub fn spawn(&self) -> Agent {
        let before = self.log_text().matches("msp-agent ready").count();
        let child = self.spawn_nowait();
        wait_until(self, "the agent to be ready", Duration::from_secs(60), || {
            self.log_text().matches("msp-agent ready").count() > before
        });
        child
    }

    pub fn spawn_nowait(&self) -> Agent {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        Agent(Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Parsed bundles, in path order, without the heartbeats the agent writes at every start
    /// (the tests that count bundles count what the agent did about the journal).
    pub fn bundles(&self) -> Vec<serde_json::Value> {
        self.all_bundles().into_iter().filter(|b| b["incident"]["event_type"] != "heartbeat").collect()
    }

    /// Every parsed bundle, heartbeats included, in path order.
    pub fn all_bundles(&self) -> Vec<serde_json::Value> {
        super::stock::bundles(&self.evidence)
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// The heartbeat bundles, in path order.
    pub fn heartbeats(&self) -> Vec<serde_json::Value> {
        self.all_bundles().into_iter().filter(|b| b["incident"]["event_type"] == "heartbeat").collect()
    }

    /// Govern `files` (path, expected content) through an expected-state manifest with
    /// filled hashes (as the NixOS module installs it), and approve RB-DRIFT-001 (the shipped
    /// file) for automatic runs. Adds a `baseline:` section to the config.
    pub fn govern(&self, files: &[(PathBuf, &str)]) {
        let entries: Vec<serde_json::Value> = files
            .iter()
            .map(|(p, text)| serde_json::json!({"path": p, "format": "x", "etc_name": null, "hash_at_build": true, "sha256": sha256_hex(text.as_bytes()), "checks": []}))
            .collect();
        let manifest = serde_json::json!({
            "manifest_version": 1, "baseline_name": "hipaa-clinic-server", "baseline_version": "1.0.0",
            "baseline_sha256": "0".repeat(64), "client_id": null, "exceptions_sha256": null, "hashes_filled": true,
            "files": entries, "agent_rules": [],
        });
        let manifest_path = self.root.join("expected-state.json");
        std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let rb = std::fs::read(repo.join("runbooks/RB-DRIFT-001.yaml")).unwrap();
        std::fs::write(self.root.join("runbooks/RB-DRIFT-001.yaml"), &rb).unwrap();
        let cfg = std::fs::read_to_string(&self.config)
            .unwrap()
            .replace("approved_runbooks:\n", &format!("approved_runbooks:\n  RB-DRIFT-001: {}\n", sha256_hex(&rb)))
            .replace("client_permissions:\n", "client_permissions:\n  RB-DRIFT-001: auto\n");
        std::fs::write(&self.config, cfg).unwrap();
        self.add_config(&format!("baseline:\n  version: \"1.0.0\"\n  manifest: {}\n", manifest_path.display()));
    }

    /// Append `text` to the agent's config file (before `spawn`).
    pub fn add_config(&self, text: &str) {
        let mut cfg = std::fs::read_to_string(&self.config).unwrap();
        cfg.push_str(text);
        std::fs::write(&self.config, cfg).unwrap();
    }

    /// `msp-agent evidence verify` over the whole store, runbook hashes included (records that
    /// ran no runbook, such as escalations and heartbeats, must pass that check too).
    pub fn verify_cli(&self) {
        let out = Command::new(BIN)
            .args(["evidence", "verify", "--keys"])
            .arg(&self.keys)
            .arg("--runbooks")
            .arg(self.root.join("runbooks"))
            .arg(&self.evidence)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "evidence verify failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every file below `dir` (recursively); empty when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

pub fn now_usec() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Write `export` as a new journal file `name` in the watched directory, atomically: made by
/// `systemd-journal-remote` beside the directory, then renamed in. A file that
/// `systemd-journal-remote` is still creating can be read by a following journalctl with an
/// entry's fields missing (seen in CI: a crash line without its `UNIT`, which the agent then
/// rightly escalated instead of guessing); these tests are about the agent, not that race.
pub fn publish_journal(fx: &Fixture, name: &str, export: &[u8]) {
    let staging = fx.root.join(format!("staging-{name}"));
    super::helpers::write_journal(&staging, export);
    std::fs::rename(&staging, fx.journal.join(name)).unwrap();
}

/// The fields every entry PID 1 writes, at realtime `t` (µs) and syslog `priority`.
pub fn pid1_header(priority: &str, t: u64) -> Vec<u8> {
    let mut e = vec![];
    e.extend(text("__REALTIME_TIMESTAMP", &t.to_string()));
    e.extend(text("__MONOTONIC_TIMESTAMP", &(t % 1_000_000_000_000).to_string()));
    e.extend(text("_BOOT_ID", BOOT_A));
    e.extend(text("_TRANSPORT", "journal"));
    e.extend(text("PRIORITY", priority));
    e.extend(text("SYSLOG_IDENTIFIER", "systemd"));
    e.extend(text("_PID", "1"));
    e.extend(text("_COMM", "systemd"));
    e.extend(text("_SYSTEMD_UNIT", "init.scope"));
    e
}

/// A PID 1 "Main process exited" entry for `unit` at realtime `t` (µs), as systemd writes it.
pub fn crash_entry(unit_field: &[u8], t: u64) -> Vec<u8> {
    let mut e = pid1_header("5", t);
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

pub fn wait_until(fx: &Fixture, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}; agent log:\n{}", fx.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn sigterm_and_wait(mut agent: Agent) -> std::process::ExitStatus {
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

