//! The agent checks (registry in `agent/src/checks/`): the probes against real parts (chrony
//! on loopback, `openssl s_server` with and without TLS 1.1, a real generation-link tree with
//! real mtimes), the start-time configuration errors, and the packet failing a control whose
//! check is disabled.



use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
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
