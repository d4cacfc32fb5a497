//! `msp-fleet status` rendering and exit codes against the stand-in FleetQuery (ops_standin).

mod ops_standin;

use chrono::{DateTime, Utc};
use msp_fleet::model::{Scope, Silence};
use msp_fleet::status;
use ops_standin::{host, StandIn};

fn now() -> DateTime<Utc> {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

fn fleet() -> StandIn {
    let q = StandIn::default();
    q.put("clinic-b", None, host("clinic-b", "srv-2"));
    q.put("clinic-a", None, host("clinic-a", "srv-1"));
    q.put("clinic-a", None, host("clinic-a", "srv-0"));
    q
}

#[test]
fn all_good_is_exit_0_and_the_table_lists_every_host_sorted() {
    let q = fleet();
    let (view, hosts) = status::collect(&q, &Scope::Operator, now()).unwrap();
    assert_eq!(status::exit_code(&hosts), 0);
    let out = status::render(&view, &hosts, false);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "as of 2026-12-01T12:00:00Z; last poll 2026-12-01T00:00:00Z"
    );
    assert!(lines[1].starts_with("CLIENT    HOST   SILENCE"), "{out}");
    assert!(
        lines[2].starts_with(
            "clinic-a  srv-0  reporting  2026-11-30T23:50:00Z  3/0/0/0/0  0 open, 0 failed  ok"
        ),
        "{out}"
    );
    assert!(lines[3].starts_with("clinic-a  srv-1"), "{out}");
    assert!(lines[4].starts_with("clinic-b  srv-2"), "{out}");
    assert_eq!(lines[5], "3 hosts, 0 need attention (P/F/S/E/I = controls passing/failing/stale/excepted/integrity error)");
}

#[test]
fn silent_failing_or_integrity_error_is_exit_1() {
    for (what, f) in [
        (
            "warn",
            Box::new(|q: &StandIn| {
                q.set(
                    "clinic-a",
                    "srv-1",
                    Silence::Warn,
                    Some("2026-12-01T10:00:00Z"),
                )
            }) as Box<dyn Fn(&StandIn)>,
        ),
        (
            "page",
            Box::new(|q: &StandIn| {
                q.set(
                    "clinic-a",
                    "srv-1",
                    Silence::Page,
                    Some("2026-12-01T06:00:00Z"),
                )
            }),
        ),
        (
            "never seen",
            Box::new(|q: &StandIn| q.set("clinic-a", "srv-1", Silence::NeverSeen, None)),
        ),
        (
            "failing",
            Box::new(|q: &StandIn| {
                let mut h = host("clinic-a", "srv-1");
                h.summary.controls.failing = 1;
                q.put("clinic-a", None, h);
            }),
        ),
        (
            "integrity control",
            Box::new(|q: &StandIn| {
                let mut h = host("clinic-a", "srv-1");
                h.summary.controls.integrity_error = 1;
                q.put("clinic-a", None, h);
            }),
        ),
        (
            "integrity object",
            Box::new(|q: &StandIn| {
                let mut h = host("clinic-a", "srv-1");
                h.summary.integrity_errors = 2;
                q.put("clinic-a", None, h);
            }),
        ),
    ] {
        let q = fleet();
        f(&q);
        let (view, hosts) = status::collect(&q, &Scope::Operator, now()).unwrap();
        assert_eq!(status::exit_code(&hosts), 1, "{what}");
        let out = status::render(&view, &hosts, false);
        assert!(out.contains("3 hosts, 1 need attention"), "{what}: {out}");
        // A client's scope sees only its hosts; clinic-b is fine.
        let (v, h) = status::collect(&q, &Scope::Client("clinic-b".into()), now()).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(status::exit_code(&h), 0, "{what}");
        assert!(!status::render(&v, &h, false).contains("clinic-a"));
    }
    let q = fleet();
    q.set("clinic-a", "srv-1", Silence::NeverSeen, None);
    let (view, hosts) = status::collect(&q, &Scope::Operator, now()).unwrap();
    let out = status::render(&view, &hosts, false);
    assert!(
        out.lines()
            .any(|l| l.starts_with("clinic-a  srv-1  NEVER-SEEN") && l.contains(" - ")),
        "{out}"
    );
}

#[test]
fn json_is_a_stable_object() {
    let q = fleet();
    q.set(
        "clinic-b",
        "srv-2",
        Silence::Page,
        Some("2026-12-01T01:00:00Z"),
    );
    let (view, hosts) = status::collect(&q, &Scope::Operator, now()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&status::render(&view, &hosts, true)).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["as_of", "hosts", "last_poll_at", "ok"]);
    assert_eq!(v["as_of"], "2026-12-01T12:00:00Z");
    assert_eq!(v["ok"], false);
    let hs = v["hosts"].as_array().unwrap();
    assert_eq!(
        hs.iter()
            .map(|h| h["host_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["srv-0", "srv-1", "srv-2"]
    );
    assert_eq!(hs[2]["silence"], "page");
    assert_eq!(hs[2]["last_evidence_at"], "2026-12-01T01:00:00Z");
    assert_eq!(hs[0]["controls"]["passing"], 3);
}
