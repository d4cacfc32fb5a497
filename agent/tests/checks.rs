//! The agent checks (registry in `agent/src/checks/`): the probes against real parts (chrony
//! on loopback, `openssl s_server` with and without TLS 1.1, a real generation-link tree with
//! real mtimes), the start-time configuration errors, and the packet failing a control whose
//! check is disabled.

mod common {
    pub mod agent_fixture;
    #[path = "../fixtures/journal/helpers.rs"]
    pub mod helpers;
    pub mod stock;
}

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::agent_fixture::{crash_entry, now_usec, publish_journal, sha256_hex, sigterm_and_wait, wait_until, Fixture};
use msp_agent::checks::{clock, system_age, tls};
use msp_agent::packet::period::Month;
use msp_agent::packet::sample::{write_month, MonthSpec};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A free loopback TCP port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A free loopback UDP port.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the child (our own process, by its pid) when dropped.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- packet: a disabled check

#[test]
fn a_disabled_check_fails_its_controls_in_the_packet_with_the_reason() {
    use msp_agent::packet::{generate, Options, Source, EMBEDDED_BASELINE, EMBEDDED_CONTROLS};
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let month = Month::parse("2026-10").unwrap();
    msp_agent::keys::generate(&keys, month.start() - chrono::Duration::days(1)).unwrap();
    let signer = msp_agent::keys::Signer::load(&keys).unwrap();
    let text = EMBEDDED_BASELINE.1;
    let mut f = msp_agent::baseline::report::Findings::default();
    let b = msp_agent::baseline::model::load("b", text, &mut f).unwrap();
    let sha = msp_agent::baseline::model::sha256_hex(text.as_bytes());
    let at = DateTime::parse_from_rfc3339("2026-11-05T00:00:00Z").unwrap().with_timezone(&Utc);

    let make = |name: &str, disabled: &[&str]| {
        let evidence = dir.path().join(name).join("evidence");
        let mut spec = MonthSpec::new(month, &b.version, &sha);
        spec.heartbeat_interval = 3600;
        spec.incidents_per_day = 1;
        spec.disabled_checks = disabled.iter().map(|s| s.to_string()).collect();
        write_month(&evidence, &spec, &signer).unwrap();
        let out = dir.path().join(name).join("packet");
        generate(&Options {
            month,
            client: None,
            evidence_dir: evidence,
            key_dir: keys.clone(),
            keys: None,
            out: Some(out.clone()),
            controls: Source { name: EMBEDDED_CONTROLS.0.into(), text: EMBEDDED_CONTROLS.1.into() },
            baseline: Source { name: EMBEDDED_BASELINE.0.into(), text: EMBEDDED_BASELINE.1.into() },
            exceptions: None,
            now: at,
        })
        .unwrap()
    };
    let all = make("all", &[]);
    let row = |g: &msp_agent::packet::Generated, id: &str| {
        g.assessment.controls.iter().find(|c| c.control_id == id).unwrap().clone()
    };
    // §164.312(b) cites time.max_drift_ms (check clock_drift) and is fed by heartbeats.
    let with = row(&all, "§164.312(b)");
    let control_ok = with.verdict;
    let without = make("no-clock", &["clock_drift"]);
    let c = row(&without, "§164.312(b)");
    assert_eq!(c.verdict, msp_agent::packet::assess::Verdict::FailingCheckNoRecord, "{c:?} (with the check: {control_ok:?})");
    assert_eq!(c.reason.as_deref(), Some("no heartbeat in the month records check clock_drift (time.max_drift_ms) running"));
    assert_ne!(control_ok, c.verdict);
    let html = fs::read_to_string(dir.path().join("no-clock/packet/packet.html")).unwrap();
    assert!(html.contains("FAILING: check left no record: no heartbeat in the month records check clock_drift (time.max_drift_ms) running"), "reason not shown in the packet");
    // A control that does not cite the rule is unaffected.
    let other = |g: &msp_agent::packet::Generated| row(g, "§164.312(a)(2)(iii)").verdict;
    assert_eq!(other(&all), other(&without));
    assert!(without.assessment.summary.controls_passing <= all.assessment.summary.controls_passing);

    // A control that passes with every check recorded (§164.312(e)(1), provenance, cites
    // encryption.tls_min_version) fails once the TLS check is disabled, and only it changes.
    use msp_agent::packet::assess::Verdict;
    assert_eq!(row(&all, "§164.312(e)(1)").verdict, Verdict::Passing);
    let no_tls = make("no-tls", &["tls_min_version"]);
    let c = row(&no_tls, "§164.312(e)(1)");
    assert_eq!(c.verdict, Verdict::FailingCheckNoRecord);
    assert_eq!(c.reason.as_deref(), Some("no heartbeat in the month records check tls_min_version (encryption.tls_min_version) running"));
    let changed: Vec<String> = all
        .assessment
        .controls
        .iter()
        .zip(&no_tls.assessment.controls)
        .filter(|(a, b)| a.verdict != b.verdict)
        .map(|(a, _)| a.control_id.clone())
        .collect();
    assert_eq!(changed, ["§164.312(e)(1)", "§164.312(e)(2)(ii)"]);
}

// ---------------------------------------------------------------- clock: real chrony

/// A chronyd pair on loopback: a server (`local stratum 8`) and a client that never touches
/// the system clock (`-x`) and reads its own command socket in `dir`. `offset` is chrony's
/// per-source correction (`server ... offset S`): the client measures the server over real
/// NTP packets and reports the system clock `S` seconds off — the test's way to get a real
/// tracking output with a drift, without changing this machine's clock.
struct Chrony {
    _server: Killed,
    _client: Killed,
    socket: PathBuf,
}

fn chrony(dir: &Path, offset: f64) -> Option<Chrony> {
    if !have("chronyd") || !have("chronyc") {
        eprintln!("SKIPPED: chronyd/chronyc not installed (scripts/setup-machine installs chrony)");
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    let port = free_udp_port();
    let mut procs = vec![];
    for (name, conf) in [
        ("srv", format!("local stratum 8\nallow 127.0.0.1\nbindaddress 127.0.0.1\nport {port}\ncmdport 0\n")),
        ("cli", format!("server 127.0.0.1 port {port} iburst minpoll -4 maxpoll -4 offset {offset}\nport 0\ncmdport 0\n")),
    ] {
        let d = dir.join(name);
        fs::create_dir_all(&d).unwrap();
        // chronyd refuses a socket directory others can write to.
        fs::set_permissions(&d, fs::Permissions::from_mode(0o770)).unwrap();
        let conf = format!(
            "{conf}bindcmdaddress {d}/cmd.sock\npidfile {d}/chronyd.pid\ndriftfile {d}/drift\n",
            d = d.display()
        );
        fs::write(d.join("chrony.conf"), conf).unwrap();
        let child = Command::new("chronyd")
            .args(["-d", "-x", "-u", "root", "-f"])
            .arg(d.join("chrony.conf"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("chronyd.log")).unwrap())
            .spawn()
            .unwrap();
        procs.push(Killed(child));
        std::thread::sleep(Duration::from_millis(300));
    }
    let client = procs.pop().unwrap();
    let server = procs.pop().unwrap();
    Some(Chrony { _server: server, _client: client, socket: dir.join("cli/cmd.sock") })
}

/// Poll the probe until chrony has synchronised (iburst at 1/16 s: a few seconds).
fn read_synced(probe: &clock::ClockProbe) -> clock::Reading {
    let t0 = std::time::Instant::now();
    loop {
        match probe.read() {
            Ok(r) => return r,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(30), "chrony never synchronised: {e:#}");
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

#[test]
fn clock_offset_read_from_a_real_chronyd() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = chrony(dir.path(), 0.0) else { return };
    let probe = clock::ClockProbe { source: Some(clock::TimeSource::Chrony), chronyc_socket: Some(c.socket.clone()) };
    let r = read_synced(&probe);
    assert_eq!(r.source, "chrony");
    assert_eq!(r.reference, "127.0.0.1");
    assert!(r.offset_ms < 50.0, "loopback offset should be tiny: {r:?}");
    drop(c);

    let dir = tempfile::tempdir().unwrap();
    let Some(c) = chrony(dir.path(), 2.0) else { return };
    let probe = clock::ClockProbe { source: Some(clock::TimeSource::Chrony), chronyc_socket: Some(c.socket.clone()) };
    let r = read_synced(&probe);
    assert!((r.offset_ms - 2000.0).abs() < 50.0, "2 s drift expected: {r:?}");
    // No daemon at that socket: an error, never a pass.
    let gone = clock::ClockProbe { source: Some(clock::TimeSource::Chrony), chronyc_socket: Some(dir.path().join("nothing.sock")) };
    assert!(gone.read().is_err());
}

// ---------------------------------------------------------------- TLS: real openssl s_server

fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (k, c) = (dir.join("key.pem"), dir.join("cert.pem"));
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    (k, c)
}

/// `openssl s_server` on a free loopback port; `old_ok` lets TLS 1.0/1.1 through (security
/// level 0), otherwise they are switched off (`-no_tls1 -no_tls1_1`).
fn s_server(dir: &Path, old_ok: bool) -> (Killed, String) {
    let (k, c) = self_signed(dir);
    let port = free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-quiet", "-accept"]).arg(format!("127.0.0.1:{port}")).arg("-key").arg(&k).arg("-cert").arg(&c);
    cmd.args(["-cipher", "DEFAULT@SECLEVEL=0"]);
    if !old_ok {
        cmd.args(["-no_tls1", "-no_tls1_1"]);
    }
    let child = Killed(cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("127.0.0.1:{port}"))
}

#[test]
fn tls_probe_against_real_openssl_servers() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (_old, old_ep) = s_server(d1.path(), true);
    let (_new, new_ep) = s_server(d2.path(), false);
    let t = Duration::from_secs(5);
    assert_eq!(tls::probe(&old_ep, None, (1, 2), t).unwrap(), tls::Verdict::Accepts(vec!["TLSv1".into(), "TLSv1.1".into()]));
    assert_eq!(tls::probe(&new_ep, None, (1, 2), t).unwrap(), tls::Verdict::Refuses { modern: "TLSv1.3".into() });
    // With a 1.3 minimum, the refusing server's TLS 1.2 is outdated too.
    assert_eq!(tls::probe(&new_ep, None, (1, 3), t).unwrap(), tls::Verdict::Accepts(vec!["TLSv1.2".into()]));
    // Nothing listening: cannot tell, so an error rather than "refuses".
    let closed = format!("127.0.0.1:{}", free_port());
    let e = format!("{:#}", tls::probe(&closed, None, (1, 2), t).unwrap_err());
    assert!(e.contains("no TLS handshake completed"), "{e}");
    assert!(tls::probe("127.0.0.1:443; rm -rf /", None, (1, 2), t).is_err());
}

// ---------------------------------------------------------------- system age: real links

fn touch_link(link: &Path, when: &str) {
    let st = Command::new("touch").args(["-h", "-d", when]).arg(link).status().unwrap();
    assert!(st.success());
}

#[test]
fn system_age_from_the_generation_link_of_the_running_system() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    let (old, new) = (store.join("aaaa-nixos-system-srv-26.05"), store.join("bbbb-nixos-system-srv-26.05"));
    fs::create_dir_all(&old).unwrap();
    fs::create_dir_all(&new).unwrap();
    let profiles = d.path().join("profiles");
    fs::create_dir_all(&profiles).unwrap();
    std::os::unix::fs::symlink(&old, profiles.join("system-41-link")).unwrap();
    std::os::unix::fs::symlink(&new, profiles.join("system-42-link")).unwrap();
    std::os::unix::fs::symlink("system-42-link", profiles.join("system")).unwrap();
    touch_link(&profiles.join("system-41-link"), "40 days ago");
    touch_link(&profiles.join("system-42-link"), "2 days ago");
    let current = d.path().join("current-system");
    std::os::unix::fs::symlink(&old, &current).unwrap();
    let now = Utc::now();
    // Running the old generation (a switch that never happened, or a rollback).
    let a = system_age::measure(&current, &profiles, now).unwrap();
    assert_eq!(a.from, "system-41-link");
    assert_eq!(a.age_days, 40);
    assert_eq!(a.system, old.display().to_string());
    // Running the new one.
    fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&new, &current).unwrap();
    assert_eq!(system_age::measure(&current, &profiles, now).unwrap().age_days, 2);
    // No generation link names it: the current-system link's own mtime.
    let lone = store.join("cccc-nixos-system-test");
    fs::create_dir_all(&lone).unwrap();
    fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&lone, &current).unwrap();
    touch_link(&current, "10 days ago");
    let a = system_age::measure(&current, &profiles, Utc::now()).unwrap();
    assert_eq!((a.from.as_str(), a.age_days), ("current-system link", 10));
    assert!(system_age::measure(&d.path().join("absent"), &profiles, now).is_err());
}

// ---------------------------------------------------------------- the daemon

/// Insert `text` right after the fixture config's `probes:` line.
fn probes_config(f: &Fixture, text: &str) {
    let cfg = fs::read_to_string(&f.config).unwrap().replacen("probes:\n", &format!("probes:\n{text}"), 1);
    fs::write(&f.config, cfg).unwrap();
}

fn run_config_error(f: &Fixture) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_msp-agent")).args(["run", "--config"]).arg(&f.config).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_configuration_weaker_than_the_baseline_is_refused_at_start_naming_the_key() {
    let baseline = msp_agent::packet::EMBEDDED_BASELINE.1;
    let sha = msp_agent::baseline::model::sha256_hex(baseline.as_bytes());
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            "worm:\n  bucket: evidence\n  retention_days: 365\n".into(),
            vec!["worm.retention_days: 365 is below the baseline's logging.evidence_worm_retention_days (2190".into()],
        ),
        (
            "evidence_excerpt_max_bytes: 4096\n".into(),
            vec!["evidence_excerpt_max_bytes: 4096 is above the baseline's phi.evidence_excerpt_max_bytes (2048".into()],
        ),
        (
            "heartbeat:\n  interval_seconds: 3600\n".into(),
            vec!["heartbeat.interval_seconds: 3600 is longer than the baseline's incident.heartbeat_interval_minutes (15 min = 900 s".into()],
        ),
        (
            format!("baseline:\n  sha256: {}\n", "0".repeat(64)),
            vec![format!("baseline.sha256 is {}", "0".repeat(64)), format!("has SHA-256 {sha}")],
        ),
    ];
    for (extra, wants) in cases {
        let f = Fixture::new(0, 300);
        f.add_config(&extra);
        let (code, stderr) = run_config_error(&f);
        assert_eq!(code, 2, "{extra}: {stderr}");
        for w in wants {
            assert!(stderr.contains(&w), "{extra}: expected {w:?} in:\n{stderr}");
        }
        assert!(!f.evidence.join("2026").exists() && common::stock::bundles(&f.evidence).is_empty(), "nothing may run");
    }
    // A baseline file of the host's own (stricter heartbeat) with the right hash: accepted,
    // and its values are the ones enforced.
    let f = Fixture::new(0, 300);
    let own = f.root.join("hipaa-v1.yaml");
    let text = baseline.replace("      heartbeat_interval_minutes:\n        value: 15\n", "      heartbeat_interval_minutes:\n        value: 5\n");
    assert_ne!(text, baseline);
    fs::write(&own, &text).unwrap();
    let own_sha = msp_agent::baseline::model::sha256_hex(text.as_bytes());
    f.add_config(&format!("baseline:\n  file: {}\n  sha256: {own_sha}\nheartbeat:\n  interval_seconds: 600\n", own.display()));
    let (code, stderr) = run_config_error(&f);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("(5 min = 300 s"), "{stderr}");
    assert!(stderr.contains(&own.display().to_string()), "names the baseline file: {stderr}");
}

#[test]
fn violated_checks_become_signed_incidents_and_holding_ones_heartbeat_records() {
    let f = Fixture::new(0, 300);
    // Clock: a real chronyd pair with a 2 s drift.
    let chrony_dir = f.root.join("chrony");
    let Some(c) = chrony(&chrony_dir, 2.0) else { return };
    read_synced(&clock::ClockProbe { source: Some(clock::TimeSource::Chrony), chronyc_socket: Some(c.socket.clone()) });
    // TLS: one endpoint accepting TLS 1.1, one refusing it.
    let d1 = f.root.join("tls-old");
    let d2 = f.root.join("tls-new");
    fs::create_dir_all(&d1).unwrap();
    fs::create_dir_all(&d2).unwrap();
    let (_old, old_ep) = s_server(&d1, true);
    let (_new, new_ep) = s_server(&d2, false);
    // System: the running generation was built 40 days ago.
    let store = f.root.join("store/aaaa-nixos-system-srv-26.05");
    fs::create_dir_all(&store).unwrap();
    let profiles = f.root.join("profiles");
    fs::create_dir_all(&profiles).unwrap();
    std::os::unix::fs::symlink(&store, profiles.join("system-7-link")).unwrap();
    touch_link(&profiles.join("system-7-link"), "40 days ago");
    let current = f.root.join("current-system");
    std::os::unix::fs::symlink(&store, &current).unwrap();
    // Backup: the unit's last backup_completed record (a real signed record in the store)
    // is from a run 30 hours ago.
    let signer = msp_agent::keys::Signer::load(&f.keys).unwrap();
    let prov = msp_agent::runbook::provenance();
    let ctx = msp_agent::daemon::records::RecordContext { client_id: "clinic-test", hostname: "test-host", provenance: &prov };
    let ran = now_usec() - 30 * 3600 * 1_000_000;
    let b = msp_agent::detect::backup_completed::BackupCompleted {
        unit: "restic-backups-daily.service".into(),
        journal_cursor: "s=test;i=1".into(),
        journal_realtime_usec: ran,
    };
    msp_agent::evidence::store::EvidenceStore::open(&f.evidence)
        .unwrap()
        .append(msp_agent::daemon::records::backup_completed(&ctx, &b, Utc::now()), &signer, Utc::now())
        .unwrap();
    probes_config(
        &f,
        &format!(
            "  policy_interval_seconds: 1\n  clock: {{source: chrony, chronyc_socket: {}}}\n  system_age: {{profiles_dir: {}}}\n  backup_age: {{units: [restic-backups-daily.service]}}\n  tls: {{endpoints: [\"{old_ep}\", \"{new_ep}\"]}}\n",
            c.socket.display(),
            profiles.display()
        ),
    );
    f.add_config(&format!("heartbeat:\n  interval_seconds: 1\nprovenance:\n  current_system_link: {}\n  booted_system_link: {}\n", current.display(), current.display()));
    let agent = f.spawn();
    let want = ["clock_drift", "system_outdated", "backup_stale", "tls_outdated"];
    wait_until(&f, "an incident of each violated check and a later heartbeat", Duration::from_secs(60), || {
        let b = f.bundles();
        want.iter().all(|w| b.iter().any(|x| x["incident"]["event_type"] == *w))
            && f.heartbeats().iter().any(|h| h["incident"]["details"]["checks"]["tls_min_version"]["status"] == "violated")
    });
    // Several rounds more: a standing violation is not raised again within the repeat window.
    std::thread::sleep(Duration::from_secs(3));
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());

    let bundles = f.bundles();
    for w in want {
        let hits: Vec<&serde_json::Value> = bundles.iter().filter(|b| b["incident"]["event_type"] == w).collect();
        assert_eq!(hits.len(), 1, "{w}: exactly one incident while it stands: {hits:#?}");
        let b = hits[0];
        // No runbook in this fixture answers these: escalated to a person, signed.
        assert_eq!(b["execution"]["resolution_type"], "escalated", "{w}");
        assert!(b["incident"]["source"].as_str().unwrap().contains("probe"), "{b:#}");
    }
    let by = |w: &str| bundles.iter().find(|b| b["incident"]["event_type"] == w).unwrap()["incident"]["details"].clone();
    let d = by("clock_drift");
    assert!((d["offset_ms"].as_f64().unwrap() - 2000.0).abs() < 50.0 && d["max_drift_ms"] == 500 && d["source"] == "chrony", "{d}");
    let d = by("system_outdated");
    assert_eq!((d["age_days"].as_i64(), d["from"].as_str(), d["max_system_age_days"].as_i64()), (Some(40), Some("system-7-link"), Some(35)), "{d}");
    let d = by("backup_stale");
    assert_eq!(d["unit"], "restic-backups-daily.service");
    assert_eq!(d["counted_from"], "last backup_completed record");
    assert!((d["age_hours"].as_f64().unwrap() - 30.0).abs() < 0.5, "{d}");
    let d = by("tls_outdated");
    assert_eq!(d["endpoint"], old_ep.as_str());
    assert_eq!(d["accepted_protocols"], serde_json::json!(["TLSv1", "TLSv1.1"]));
    // The last heartbeat's board: every registry check, with what was measured.
    let hb = f.heartbeats().pop().unwrap();
    let checks = &hb["incident"]["details"]["checks"];
    assert_eq!(checks.as_object().unwrap().len(), msp_agent::checks::ids().len(), "{checks:#}");
    assert_eq!(checks["clock_drift"]["status"], "violated");
    assert!(
        f.heartbeats().iter().any(|h| h["incident"]["details"]["checks"]["tls_min_version"]["detail"][&new_ep]["negotiated"] == "TLSv1.3"),
        "the refusing endpoint is recorded as refusing: {checks:#}"
    );
    assert_eq!(checks["excerpt_bound"]["detail"]["max_bytes"], 2048);
    assert_eq!(checks["heartbeat"]["status"], "holds");
    assert_eq!(checks["worm_retention"]["status"], "error", "no worm section: not a pass");
    assert_eq!(hb["incident"]["details"]["baseline_sha256"], msp_agent::baseline::model::sha256_hex(msp_agent::packet::EMBEDDED_BASELINE.1.as_bytes()));
    assert!(common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence) > 0);
    drop(c);
}

#[test]
fn an_incident_unresolved_at_its_sla_deadline_is_escalated_at_the_deadline() {
    // RB-TEST-001 sleeps 75 s; its SLA is made 1 minute (the smallest a runbook can say).
    let f = Fixture::new(75, 300);
    let rb_path = f.root.join("runbooks/RB-TEST-001.yaml");
    let orig = fs::read_to_string(&rb_path).unwrap();
    let rb = orig.replace("sla_minutes: 15\n", "sla_minutes: 1\n").replacen("timeout_seconds: 30\n", "timeout_seconds: 120\n", 1);
    assert_ne!(rb, orig);
    fs::write(&rb_path, &rb).unwrap();
    let old = sha256_hex(orig.as_bytes());
    let cfg = fs::read_to_string(&f.config).unwrap().replace(&old, &sha256_hex(rb.as_bytes()));
    fs::write(&f.config, cfg).unwrap();
    let agent = f.spawn();
    publish_journal(&f, "crash.journal", &crash_entry(b"test-slow.service", now_usec()));
    wait_until(&f, "the SLA escalation", Duration::from_secs(120), || {
        f.bundles().iter().any(|b| b["incident"]["event_type"] == "sla_breach")
    });
    let esc = f.bundles().into_iter().find(|b| b["incident"]["event_type"] == "sla_breach").unwrap();
    // At the deadline, while the run was still going: the marker is not written yet.
    assert!(!f.marker.exists() || fs::read_to_string(&f.marker).unwrap().is_empty(), "escalated only after the run ended");
    let detected = DateTime::parse_from_rfc3339(esc["incident"]["detected_at"].as_str().unwrap()).unwrap();
    let at = DateTime::parse_from_rfc3339(esc["generated_at"].as_str().unwrap()).unwrap();
    let late = (at - detected).num_milliseconds();
    // `generated_at` has whole seconds; the deadline is detection + 60 s.
    assert!((59_000..65_000).contains(&late), "escalated {late} ms after detection, deadline 60 000");
    let deadline = DateTime::parse_from_rfc3339(esc["incident"]["details"]["sla_deadline"].as_str().unwrap()).unwrap();
    assert_eq!((deadline - detected).num_seconds(), 60);
    assert!(at.timestamp() >= deadline.timestamp() - 1, "escalated before the deadline");
    let i = &esc["incident"];
    assert_eq!(i["details"]["original_event_type"], "service_crash");
    assert_eq!(i["details"]["sla_minutes"], 1);
    assert_eq!(esc["execution"]["resolution_type"], "escalated");
    assert!(esc["verification"]["reason"].as_str().unwrap().contains("its runbook is still running"), "{esc:#}");
    assert_eq!(esc["runbook"]["runbook_id"], "RB-TEST-001");
    // The run then finishes and is recorded (resolved, SLA missed).
    wait_until(&f, "the run's bundle", Duration::from_secs(60), || {
        f.bundles().iter().any(|b| b["runbook"]["runbook_id"] == "RB-TEST-001" && b["outputs"]["resolution_status"] == "resolved")
    });
    let status = sigterm_and_wait(agent);
    assert!(status.success());
    let run = f.bundles().into_iter().find(|b| b["outputs"]["resolution_status"] == "resolved").unwrap();
    assert_eq!(run["incident"]["incident_id"], i["incident_id"], "the escalation names the same incident");
    assert_eq!(run["execution"]["sla_met"], false);
    assert!(f.log_text().contains("SLA deadline passed; escalated"));
    assert!(common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence) > 0);
}
