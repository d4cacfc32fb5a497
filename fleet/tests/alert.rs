//! Silence escalation against a stand-in FleetQuery (ops_standin: the real index is another
//! helper's) and a REAL HTTP webhook sink on loopback that records every body.

mod ops_standin;
mod webhook_sink;

use std::net::TcpListener;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use msp_fleet::alert::{self, Escalator};
use msp_fleet::config::AlertsConfig;
use msp_fleet::model::Silence;
use ops_standin::{host, StandIn};
use webhook_sink::{sink, Sink};

fn t0() -> DateTime<Utc> {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

fn k(kind: &str, host: &str) -> (String, String) {
    (kind.to_string(), host.to_string())
}

#[test]
fn one_warn_one_page_per_outage_reporting_again_and_a_second_outage() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("alert-ledger.json");
    let s = sink();
    let q = StandIn::default();
    q.put("clinic-001", None, host("clinic-001", "srv-a"));
    q.put("clinic-001", None, host("clinic-001", "srv-b"));
    q.put("clinic-001", None, host("clinic-001", "srv-c"));
    let cfg = AlertsConfig::default();
    let mut e = Escalator::open(&ledger, Some(s.url.clone()), &cfg).unwrap();

    assert!(
        e.run_once(&q, t0()).unwrap().is_empty(),
        "all reporting: nothing to say"
    );
    q.set(
        "clinic-001",
        "srv-a",
        Silence::Warn,
        Some("2026-12-01T11:00:00Z"),
    );
    let sent = e.run_once(&q, t0()).unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, "host_silent_warn");
    // Same outage, several runs: no second warning.
    e.run_once(&q, t0() + Duration::minutes(5)).unwrap();
    e.run_once(&q, t0() + Duration::minutes(10)).unwrap();
    q.set(
        "clinic-001",
        "srv-a",
        Silence::Page,
        Some("2026-12-01T11:00:00Z"),
    );
    e.run_once(&q, t0() + Duration::minutes(30)).unwrap();
    e.run_once(&q, t0() + Duration::minutes(35)).unwrap();
    assert_eq!(
        s.kinds(),
        vec![
            k("host_silent_warn", "srv-a"),
            k("host_silent_page", "srv-a")
        ]
    );

    // The webhook body is the agent's Alert JSON, exactly these fields, metadata only.
    let body = s.bodies.lock().unwrap()[1].clone();
    let mut fields: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "at",
            "bundle_id",
            "client_id",
            "host",
            "incident_id",
            "kind",
            "runbook_id",
            "summary"
        ]
    );
    assert_eq!(body["client_id"], "clinic-001");
    assert_eq!(body["at"], "2026-12-01T12:30:00Z");
    assert!(body["bundle_id"].is_null());
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .contains("2026-12-01T11:00:00Z"),
        "{body}"
    );

    // New evidence: reporting again, once; the outage is closed.
    q.set(
        "clinic-001",
        "srv-a",
        Silence::Reporting,
        Some("2026-12-01T12:40:00Z"),
    );
    e.run_once(&q, t0() + Duration::minutes(41)).unwrap();
    e.run_once(&q, t0() + Duration::minutes(46)).unwrap();
    // A second outage alerts again, warn and page.
    q.set(
        "clinic-001",
        "srv-a",
        Silence::Warn,
        Some("2026-12-01T13:00:00Z"),
    );
    e.run_once(&q, t0() + Duration::hours(2)).unwrap();
    q.set(
        "clinic-001",
        "srv-a",
        Silence::Page,
        Some("2026-12-01T13:00:00Z"),
    );
    e.run_once(&q, t0() + Duration::hours(3)).unwrap();
    e.run_once(&q, t0() + Duration::hours(4)).unwrap();
    assert_eq!(
        s.kinds(),
        vec![
            k("host_silent_warn", "srv-a"),
            k("host_silent_page", "srv-a"),
            k("host_reporting_again", "srv-a"),
            k("host_silent_warn", "srv-a"),
            k("host_silent_page", "srv-a"),
        ]
    );
    // Evidence arrived and the host went silent again between two runs (never seen
    // reporting): that is a new outage, alerted again.
    q.set(
        "clinic-001",
        "srv-a",
        Silence::Warn,
        Some("2026-12-01T17:00:00Z"),
    );
    e.run_once(&q, t0() + Duration::hours(7)).unwrap();
    assert_eq!(s.kinds().last().unwrap(), &k("host_silent_warn", "srv-a"));
    assert_eq!(s.kinds().len(), 6);
}

#[test]
fn restart_does_not_resend_and_a_failed_send_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("alert-ledger.json");
    let s = sink();
    let q = StandIn::default();
    q.put("clinic-002", None, host("clinic-002", "srv-a"));
    let cfg = AlertsConfig::default();
    let mut e = Escalator::open(&ledger, Some(s.url.clone()), &cfg).unwrap();
    q.set(
        "clinic-002",
        "srv-a",
        Silence::Warn,
        Some("2026-12-01T11:00:00Z"),
    );
    assert_eq!(e.run_once(&q, t0()).unwrap().len(), 1);
    assert!(ledger.exists());
    drop(e);

    // A restart (re-open the ledger) sends nothing new for the same outage.
    let mut e = Escalator::open(&ledger, Some(s.url.clone()), &cfg).unwrap();
    assert!(e
        .run_once(&q, t0() + Duration::minutes(5))
        .unwrap()
        .is_empty());
    assert_eq!(s.kinds().len(), 1);

    // The page fails (500): not recorded, retried next run, delivered once.
    q.set(
        "clinic-002",
        "srv-a",
        Silence::Page,
        Some("2026-12-01T11:00:00Z"),
    );
    s.status.store(500, Ordering::SeqCst);
    assert!(e
        .run_once(&q, t0() + Duration::minutes(30))
        .unwrap()
        .is_empty());
    assert_eq!(e.failed().len(), 1);
    assert_eq!(e.failed()[0].0.kind, "host_silent_page");
    assert!(e.failed()[0].1.contains("500"), "{:?}", e.failed());
    drop(e);
    // ... even across a restart.
    let mut e = Escalator::open(&ledger, Some(s.url.clone()), &cfg).unwrap();
    assert!(e
        .run_once(&q, t0() + Duration::minutes(35))
        .unwrap()
        .is_empty());
    s.status.store(200, Ordering::SeqCst);
    let sent = e.run_once(&q, t0() + Duration::minutes(40)).unwrap();
    assert_eq!(sent.len(), 1);
    assert!(e.failed().is_empty());
    e.run_once(&q, t0() + Duration::minutes(45)).unwrap();
    assert_eq!(
        s.kinds(),
        vec![
            k("host_silent_warn", "srv-a"),
            k("host_silent_page", "srv-a")
        ]
    );

    // An unreachable webhook (nothing listening) is a failure too, not an error of the run.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let ledger2 = dir.path().join("other.json");
    let mut e2 = Escalator::open(&ledger2, Some(dead_url), &cfg).unwrap();
    assert!(e2.run_once(&q, t0()).unwrap().is_empty());
    assert_eq!(e2.failed().len(), 1);
    assert!(!ledger2.exists() || !std::fs::read_to_string(&ledger2).unwrap().contains("srv-a"));
}

#[test]
fn client_silent_once_per_episode() {
    let dir = tempfile::tempdir().unwrap();
    let s = sink();
    let q = StandIn::default();
    for h in ["srv-a", "srv-b", "srv-c", "srv-d"] {
        q.put("clinic-003", Some("Clinic 3"), host("clinic-003", h));
    }
    // A single-host client is never "client_silent".
    q.put("clinic-004", None, host("clinic-004", "only"));
    let cfg = AlertsConfig::default(); // share 0.5
    let mut e = Escalator::open(&dir.path().join("l.json"), Some(s.url.clone()), &cfg).unwrap();
    q.set(
        "clinic-004",
        "only",
        Silence::Page,
        Some("2026-12-01T01:00:00Z"),
    );
    q.set(
        "clinic-003",
        "srv-a",
        Silence::Warn,
        Some("2026-12-01T11:00:00Z"),
    );
    e.run_once(&q, t0()).unwrap();
    let client_silent = |s: &Sink| {
        s.kinds()
            .iter()
            .filter(|(k, _)| k == "client_silent")
            .count()
    };
    assert_eq!(client_silent(&s), 0, "1 of 4 is below half");
    q.set("clinic-003", "srv-b", Silence::NeverSeen, None);
    e.run_once(&q, t0() + Duration::minutes(5)).unwrap();
    assert_eq!(client_silent(&s), 1, "2 of 4 is half");
    q.set(
        "clinic-003",
        "srv-c",
        Silence::Warn,
        Some("2026-12-01T11:10:00Z"),
    );
    e.run_once(&q, t0() + Duration::minutes(10)).unwrap();
    // Restart in the episode: still once.
    let mut e = Escalator::open(&dir.path().join("l.json"), Some(s.url.clone()), &cfg).unwrap();
    e.run_once(&q, t0() + Duration::minutes(15)).unwrap();
    assert_eq!(client_silent(&s), 1);
    let body = s
        .bodies
        .lock()
        .unwrap()
        .iter()
        .find(|v| v["kind"] == "client_silent")
        .cloned()
        .unwrap();
    assert_eq!(body["client_id"], "clinic-003");
    assert_eq!(body["host"], alert::ALL_HOSTS);
    // Episode ends (back below half), a new one alerts again.
    for h in ["srv-a", "srv-b", "srv-c"] {
        q.set(
            "clinic-003",
            h,
            Silence::Reporting,
            Some("2026-12-01T12:20:00Z"),
        );
    }
    e.run_once(&q, t0() + Duration::minutes(25)).unwrap();
    q.set(
        "clinic-003",
        "srv-c",
        Silence::Warn,
        Some("2026-12-01T12:20:00Z"),
    );
    q.set(
        "clinic-003",
        "srv-d",
        Silence::Warn,
        Some("2026-12-01T12:20:00Z"),
    );
    e.run_once(&q, t0() + Duration::hours(2)).unwrap();
    assert_eq!(client_silent(&s), 2);
    // The never-seen host got one warning and no page; reporting_again went to the hosts
    // that had been warned.
    let kinds = s.kinds();
    assert_eq!(
        kinds
            .iter()
            .filter(|x| **x == k("host_silent_warn", "srv-b"))
            .count(),
        1
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|x| x.0 == "host_reporting_again")
            .count(),
        3
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|x| **x == k("host_silent_page", "only"))
            .count(),
        1
    );
}

#[test]
fn without_a_webhook_alerts_are_returned_and_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let q = StandIn::default();
    q.put("clinic-005", None, host("clinic-005", "srv-a"));
    q.set(
        "clinic-005",
        "srv-a",
        Silence::Page,
        Some("2026-12-01T01:00:00Z"),
    );
    let mut e =
        Escalator::open(&dir.path().join("l.json"), None, &AlertsConfig::default()).unwrap();
    let sent = e.run_once(&q, t0()).unwrap();
    assert_eq!(
        sent.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        ["host_silent_page"]
    );
    assert!(e.run_once(&q, t0()).unwrap().is_empty());
}

#[test]
fn webhook_file_ledger_path_and_a_corrupt_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("webhook-url");
    std::fs::write(&f, "  https://hooks.example.invalid/abc \n").unwrap();
    let cfg = AlertsConfig {
        webhook_url_file: Some(f.clone()),
        ..Default::default()
    };
    assert_eq!(
        alert::webhook_from_config(&cfg).unwrap().as_deref(),
        Some("https://hooks.example.invalid/abc")
    );
    assert_eq!(
        alert::webhook_from_config(&AlertsConfig::default()).unwrap(),
        None
    );
    let missing = AlertsConfig {
        webhook_url_file: Some(dir.path().join("nope")),
        ..Default::default()
    };
    let err = format!("{:#}", alert::webhook_from_config(&missing).unwrap_err());
    assert!(err.contains("nope"), "{err}");
    std::fs::write(&f, "\n").unwrap();
    let err = format!("{:#}", alert::webhook_from_config(&cfg).unwrap_err());
    assert!(
        err.contains("webhook-url") && err.contains("empty"),
        "{err}"
    );

    assert_eq!(
        alert::default_ledger_path(std::path::Path::new("/var/lib/msp-fleet/index.sqlite")),
        std::path::Path::new("/var/lib/msp-fleet/alert-ledger.json")
    );
    let bad = dir.path().join("ledger.json");
    std::fs::write(&bad, "{not json").unwrap();
    let err = format!(
        "{:#}",
        Escalator::open(&bad, None, &AlertsConfig::default())
            .err()
            .unwrap()
    );
    assert!(err.contains("ledger.json"), "{err}");
}
