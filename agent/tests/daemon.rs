//! The daemon end to end on real journal files: `msp-agent run` follows a journal directory
//! written by `systemd-journal-remote`, remediates with a real runbook, and writes evidence
//! that stock `ssh-keygen` and `openssl` verify. Covers: exactly-once across `kill -9` at
//! random points, a 10,000-failure storm, and hostile journal fields.

mod common {
    pub mod agent_fixture;
    #[path = "../fixtures/journal/helpers.rs"]
    pub mod helpers;
    pub mod stock;
}

#[path = "worm_support/mod.rs"]
mod worm_support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::agent_fixture::{crash_entry, files_under, now_usec, publish_journal, sigterm_and_wait, wait_until, Fixture};

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
        publish_journal(&f, &format!("round-{round}.journal"), &batch);
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
    assert_eq!(common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence), f.all_bundles().len());
    // A heartbeat at the starts that were waited for (a start killed early may have none).
    assert!(!f.heartbeats().is_empty(), "no heartbeat in 7 starts");
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
    publish_journal(&f, "storm.journal", &storm);
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
    publish_journal(&f, "hostile.journal", &batch);
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

#[test]
fn evidence_written_by_the_daemon_reaches_worm_storage_with_a_receipt() {
    let moto = worm_support::Moto::start();
    let mut f = Fixture::new(0, 300);
    let mut cfg = std::fs::read_to_string(&f.config).unwrap();
    cfg.push_str(&format!("worm:\n  endpoint: {}\n  bucket: {}\n  path_style: true\n", moto.endpoint(), worm_support::BUCKET));
    std::fs::write(&f.config, cfg).unwrap();
    f.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
    ];
    let agent = f.spawn();
    publish_journal(&f, "crash.journal", &crash_entry(b"test-worm.service", now_usec()));
    let receipts = f.evidence.join("receipts");
    // The heartbeat written at start and the crash's bundle, each with a receipt.
    wait_until(&f, "two signed upload receipts", Duration::from_secs(90), || {
        common::stock::bundles(&f.evidence).len() == 2
            && files_under(&receipts).iter().filter(|p| p.to_string_lossy().ends_with(".receipt.json")).count() == 2
    });
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());
    let bundle = common::stock::bundles(&f.evidence)
        .into_iter()
        .find(|p| serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap()["incident"]["event_type"] != "heartbeat")
        .unwrap();
    let id = bundle.file_stem().unwrap().to_string_lossy().into_owned();
    let receipt = files_under(&receipts)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".receipt.json") && std::fs::read_to_string(p).unwrap().contains(&id))
        .unwrap();
    let text = std::fs::read_to_string(&receipt).unwrap();
    assert!(text.contains(&id), "receipt names {id}: {text}");
    common::stock::openssl_verify(&f.keys, &receipt).unwrap();
    f.verify_cli();
}


#[test]
fn a_manual_run_while_the_daemon_runs_shares_the_evidence_chain() {
    let f = Fixture::new(0, 300);
    let agent = f.spawn();
    publish_journal(&f, "crash.journal", &crash_entry(b"test-auto.service", now_usec()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msp-agent"))
        .args(["runbook", "run", "RB-TEST-001", "--param", "unit=test-manual.service"])
        .args(["--client-id", "clinic-test", "--host", "test-host", "--runbooks"])
        .arg(f.root.join("runbooks"))
        .arg("--evidence-dir")
        .arg(&f.evidence)
        .arg("--key-dir")
        .arg(&f.keys)
        .arg("--state-dir")
        .arg(f.root.join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "manual run beside the daemon: {}", String::from_utf8_lossy(&out.stderr));
    wait_until(&f, "the daemon's run", Duration::from_secs(60), || {
        executions_by_unit(&f.bundles()).contains_key("test-auto.service")
    });
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());
    let bundles = f.bundles();
    assert_eq!(bundles.len(), 2, "one automatic and one manual bundle");
    assert!(bundles.iter().any(|b| b["execution"]["resolution_type"] == "manual"));
    // Both took their INC-YYYYMMDD-NNNN from the one counter: two different ids, no gap.
    let mut ids: Vec<String> = bundles.iter().map(|b| b["incident"]["incident_id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    let day = chrono::Utc::now().format("%Y%m%d");
    assert_eq!(ids, [format!("INC-{day}-0001"), format!("INC-{day}-0002")], "incident ids of the daemon and the manual run");
    common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    f.verify_cli();
}

/// A three-step runbook whose first step is slow, to stop the agent in the middle of it.
fn three_step_runbook(marker: &std::path::Path, root: &std::path::Path) -> String {
    let step = |n: u32, sleep: u32| {
        format!(
            "  - id: step{n}\n    action: Step {n}\n    timeout_seconds: 60\n    script: |\n      sleep {sleep}\n      printf '%s\\n' \"$MSP_PARAM_UNIT {n}\" >> \"$MSP_PARAM_MARKER\"\n"
        )
    };
    format!(
        "id: RB-TEST-001\nname: Three steps\nversion: \"1.0.0\"\ndescription: Test runbook in three steps.\n\
         hipaa_controls: [\"§164.308(a)(1)(ii)(D)\"]\nseverity: high\nsla_minutes: 15\nparameters:\n  unit:\n    type: unit\n    required: true\n    from_incident: unit\n  \
         marker:\n    type: path\n    default: \"{m}\"\n    allowed_roots: [\"{r}\"]\n\
         trigger_conditions:\n  event_types: [service_crash]\n  unit_patterns: [\"test-*.service\"]\nsteps:\n{s1}{s2}{s3}rollback: []\n\
         verification:\n  id: check\n  action: All three steps ran\n  timeout_seconds: 10\n  script: test \"$(grep -c -- \"$MSP_PARAM_UNIT\" \"$MSP_PARAM_MARKER\")\" = 3\n",
        m = marker.display(),
        r = root.display(),
        s1 = step(1, 3),
        s2 = step(2, 0),
        s3 = step(3, 0),
    )
}

#[test]
fn sigterm_mid_runbook_finishes_the_step_and_the_next_start_resumes_without_repeating() {
    let f = Fixture::new(0, 300);
    let rb = three_step_runbook(&f.marker, &f.root);
    let old_hash = {
        let text = std::fs::read(f.root.join("runbooks/RB-TEST-001.yaml")).unwrap();
        common::agent_fixture::sha256_hex(&text)
    };
    std::fs::write(f.root.join("runbooks/RB-TEST-001.yaml"), &rb).unwrap();
    let cfg = std::fs::read_to_string(&f.config).unwrap().replace(&old_hash, &common::agent_fixture::sha256_hex(rb.as_bytes()));
    std::fs::write(&f.config, cfg).unwrap();

    let agent = f.spawn();
    publish_journal(&f, "crash.journal", &crash_entry(b"test-resume.service", now_usec()));
    // Stop while step 1 (3 s) runs.
    wait_until(&f, "step 1 to start", Duration::from_secs(60), || f.log_text().contains("running runbook"));
    std::thread::sleep(Duration::from_millis(500));
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "exit after SIGTERM: {status:?}\n{}", f.log_text());
    let bundles = f.bundles();
    assert_eq!(bundles.len(), 1, "the interrupted run is recorded");
    let b = &bundles[0];
    assert_eq!(b["outputs"]["resolution_status"], "interrupted", "{b}");
    let results: Vec<_> = b["actions_taken"].as_array().unwrap().iter().map(|a| a["result"].as_str().unwrap().to_string()).collect();
    assert_eq!(results, ["success", "skipped", "skipped"], "the running step finished, the rest waited");
    assert_eq!(std::fs::read_to_string(&f.marker).unwrap(), "test-resume.service 1\n");

    // The next start resumes at step 2.
    let agent = f.spawn();
    wait_until(&f, "the resumed run", Duration::from_secs(60), || f.bundles().len() == 2);
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());
    let b = &f.bundles()[1];
    assert_eq!(b["outputs"]["resolution_status"], "resolved", "{b}");
    assert_eq!(b["incident"]["incident_id"], f.bundles()[0]["incident"]["incident_id"], "same incident");
    assert_eq!(b["incident"]["details"]["resumed_at_step"], 2);
    let results: Vec<_> = b["actions_taken"].as_array().unwrap().iter().map(|a| a["result"].as_str().unwrap().to_string()).collect();
    assert_eq!(results, ["skipped", "success", "success"]);
    assert_eq!(
        std::fs::read_to_string(&f.marker).unwrap(),
        "test-resume.service 1\ntest-resume.service 2\ntest-resume.service 3\n",
        "each step ran exactly once"
    );
    assert!(!f.root.join("state/resume").read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".json")));
    common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    f.verify_cli();
}

/// The sd_notify protocol as the agent speaks it, read from a datagram socket standing in for
/// systemd's notify socket (the real systemd is exercised by the clinic-box test): READY=1
/// once started, WATCHDOG=1 with STATUS= counters at half of WATCHDOG_USEC, no pings while
/// the process is frozen (what makes systemd's watchdog restart it), STOPPING=1 on SIGTERM.
#[test]
fn sd_notify_ready_watchdog_status_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let mut f = Fixture::new(0, 300);
    let sock_path = f.root.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    f.env = vec![
        ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
        ("WATCHDOG_USEC".into(), "1000000".into()),
    ];
    let agent = f.spawn();
    let pid = nix::unistd::Pid::from_raw(agent.0.id() as i32);
    let mut buf = [0u8; 4096];
    let mut recv_for = |d: Duration| {
        let t0 = std::time::Instant::now();
        let mut msgs = Vec::new();
        while t0.elapsed() < d {
            if let Ok(n) = sock.recv(&mut buf) {
                msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        msgs
    };
    let msgs = recv_for(Duration::from_secs(2));
    assert!(msgs[0].contains("READY=1"), "{msgs:?}");
    let pings = msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 2, "a ping every 0.5 s for a 1 s watchdog: {msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("STATUS=entries 0")), "{msgs:?}");
    // Frozen: no pings, so systemd would kill and restart it.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let _ = recv_for(Duration::from_millis(300)); // what was already queued
    let frozen = recv_for(Duration::from_millis(1500));
    assert!(frozen.iter().all(|m| !m.contains("WATCHDOG=1")), "pinged while stopped: {frozen:?}");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(recv_for(Duration::from_secs(2)).iter().any(|m| m.contains("WATCHDOG=1")), "pings resume");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let stopping = recv_for(Duration::from_secs(2));
    assert!(stopping.iter().any(|m| m.contains("STOPPING=1")), "{stopping:?}");
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());
}

#[test]
fn a_journal_source_down_for_long_is_one_signed_escalation_and_nothing_after_it_is_lost() {
    let f = Fixture::new(0, 300);
    let cfg = std::fs::read_to_string(&f.config).unwrap().replace("journal:\n", "journal:\n  down_record_after_seconds: 2\n");
    std::fs::write(&f.config, cfg).unwrap();
    let agent = f.spawn();
    // The journal's storage goes away and the reader dies (journalctl killed): every restart
    // (every 5 s) now fails, until the storage is back.
    let away = f.root.join("journal.away");
    std::fs::rename(&f.journal, &away).unwrap();
    let pid = agent.0.id();
    let children: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .flat_map(|t| std::fs::read_to_string(t.path().join("children")).unwrap_or_default().split_whitespace().map(|c| c.parse::<i32>().unwrap()).collect::<Vec<_>>())
        .collect();
    let readers: Vec<i32> = children
        .into_iter()
        .filter(|c| std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default().trim() == "journalctl")
        .collect();
    assert_eq!(readers.len(), 1, "one journalctl reader");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(readers[0]), nix::sys::signal::Signal::SIGKILL).unwrap();
    let down = |f: &Fixture| f.bundles().into_iter().filter(|b| b["incident"]["event_type"] == "journal_source_down").collect::<Vec<_>>();
    wait_until(&f, "the journal_source_down record", Duration::from_secs(30), || down(&f).len() == 1);
    // More failed retries in the same outage add no record.
    std::thread::sleep(Duration::from_secs(11));
    let records = down(&f);
    assert_eq!(records.len(), 1, "one record per outage");
    let r = &records[0];
    assert_eq!(r["execution"]["resolution_type"], "escalated");
    assert_eq!(r["incident"]["source"], "probe:journal_source");
    assert_eq!(r["incident"]["severity"], "high");
    assert!(r["incident"]["incident_id"].as_str().unwrap().starts_with("INC-"), "{r}");
    assert!(r["incident"]["details"]["down_since"].is_string(), "{r}");
    // The journal comes back: what it holds is handled.
    std::fs::rename(&away, &f.journal).unwrap();
    publish_journal(&f, "crash.journal", &crash_entry(b"test-back.service", now_usec()));
    wait_until(&f, "the run after the outage", Duration::from_secs(60), || {
        executions_by_unit(&f.bundles()).contains_key("test-back.service")
    });
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());
    assert_eq!(down(&f).len(), 1);
    common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    f.verify_cli();
}

/// Break-glass use is a person's to review: even with an approved, automatic runbook whose
/// trigger names `break_glass_login`, the daemon writes a signed escalation (critical, who,
/// when, from where) and runs nothing.
#[test]
fn break_glass_login_is_always_a_signed_escalation_never_a_runbook() {
    use common::helpers::text;
    let f = Fixture::new(0, 300);
    let glass = common::agent_fixture::test_runbook(&f.marker, &f.root, 0)
        .replace("id: RB-TEST-001", "id: RB-GLASS-001")
        .replace("event_types: [service_crash]\n  unit_patterns: [\"test-*.service\"]", "event_types: [break_glass_login]")
        .replace("    required: true\n    from_incident: unit", "    default: x.service");
    assert!(glass.contains("[break_glass_login]"), "{glass}");
    std::fs::write(f.root.join("runbooks/RB-GLASS-001.yaml"), &glass).unwrap();
    let cfg = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace("approved_runbooks:\n", &format!("approved_runbooks:\n  RB-GLASS-001: {}\n", common::agent_fixture::sha256_hex(glass.as_bytes())))
        .replace("client_permissions:\n", "client_permissions:\n  RB-GLASS-001: auto\n");
    std::fs::write(&f.config, cfg).unwrap();
    let child = f.spawn();
    let t = now_usec();
    let mut e = vec![];
    for (k, v) in [
        ("__REALTIME_TIMESTAMP", t.to_string()), ("__MONOTONIC_TIMESTAMP", (t % 1_000_000_000_000).to_string()),
        ("_BOOT_ID", common::helpers::BOOT_A.to_string()), ("_TRANSPORT", "syslog".into()), ("SYSLOG_IDENTIFIER", "sshd".into()),
        ("_PID", "2211".into()), ("_UID", "0".into()), ("_COMM", "sshd".into()), ("_EXE", "/usr/sbin/sshd".into()),
        ("_SYSTEMD_UNIT", "ssh.service".into()),
        ("MESSAGE", "Accepted publickey for msp-breakglass from 198.51.100.23 port 50412 ssh2: ED25519 SHA256:abc".into()),
    ] {
        e.extend(text(k, &v));
    }
    e.push(b'\n');
    publish_journal(&f, "glass.journal", &e);
    wait_until(&f, "the break-glass escalation", Duration::from_secs(30), || {
        f.bundles().iter().any(|b| b["incident"]["event_type"] == "break_glass_login")
    });
    let status = sigterm_and_wait(child);
    assert!(status.success(), "{}", f.log_text());
    let bundles = f.bundles();
    let glass: Vec<_> = bundles.iter().filter(|b| b["incident"]["event_type"] == "break_glass_login").collect();
    assert_eq!(glass.len(), 1, "{bundles:#?}");
    let b = glass[0];
    assert_eq!(b["execution"]["resolution_type"], "escalated");
    assert_eq!(b["runbook"]["runbook_id"], "none");
    assert_eq!(b["incident"]["severity"], "critical");
    let d = &b["incident"]["details"];
    assert_eq!((d["account"].as_str(), d["source_address"].as_str(), d["method"].as_str()), (Some("msp-breakglass"), Some("198.51.100.23"), Some("publickey")));
    assert!(!f.marker.exists(), "a runbook ran for break-glass use");
    assert!(f.log_text().contains("break-glass account was used"), "{}", f.log_text());
    common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    f.verify_cli();
}
