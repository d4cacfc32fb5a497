//! Issue 17 item 1, key age: the running daemon checks its signing key's age
//! (`keys.max_age_days`, `keys.end_of_life_days`) and raises signed incidents, verified with
//! the stock tools. The key is generated with a `created` time in the past
//! (`keys::generate(dir, past)`, the library's clock argument), not edited.

mod common {
    pub mod agent_fixture;
    #[path = "../fixtures/journal/helpers.rs"]
    pub mod helpers;
    pub mod stock;
}

use std::fs;
use std::time::Duration;

use chrono::Utc;
use common::agent_fixture::{sigterm_and_wait, wait_until, Fixture};

/// Policy rounds every second, every other policy probe off.
fn only_key_age_checks(f: &Fixture) {
    let cfg = fs::read_to_string(&f.config).unwrap().replacen(
        "probes:\n",
        "probes:\n  policy_interval_seconds: 1\n  clock: {enabled: false}\n  system_age: {enabled: false}\n  backup_age: {enabled: false}\n  tls: {enabled: false}\n",
        1,
    );
    fs::write(&f.config, cfg).unwrap();
}

/// A daemon whose key was created `age_days` ago, every other probe off.
fn run_with_key_age(age_days: i64, want_event: &str) -> (Fixture, Vec<serde_json::Value>) {
    let f = Fixture::new(0, 300);
    fs::remove_dir_all(&f.keys).unwrap();
    msp_agent::keys::generate(&f.keys, Utc::now() - chrono::Duration::days(age_days)).unwrap();
    only_key_age_checks(&f);
    f.add_config("heartbeat:\n  interval_seconds: 1\nkeys:\n  max_age_days: 330\n  end_of_life_days: 365\n");
    let agent = f.spawn();
    wait_until(&f, "the key age incident and a heartbeat showing it", Duration::from_secs(60), || {
        f.bundles().iter().any(|b| b["incident"]["event_type"] == want_event)
            && f.heartbeats().iter().any(|h| h["incident"]["details"]["checks"]["signing_key_age"]["status"] == "violated")
    });
    let status = sigterm_and_wait(agent);
    assert!(status.success(), "{}", f.log_text());
    let hits: Vec<serde_json::Value> = f.bundles().into_iter().filter(|b| b["incident"]["event_type"] == want_event).collect();
    assert!(common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence) > 0);
    f.verify_cli();
    (f, hits)
}

#[test]
fn an_old_key_is_a_signed_medium_incident_and_shows_on_the_heartbeat() {
    let (f, hits) = run_with_key_age(340, "signing_key_old");
    assert_eq!(hits.len(), 1, "one incident while it stands: {hits:#?}");
    let b = &hits[0];
    assert_eq!(b["incident"]["severity"], "medium", "{b:#}");
    assert_eq!(b["execution"]["resolution_type"], "escalated", "{b:#}");
    let d = &b["incident"]["details"];
    assert_eq!((d["age_days"].as_i64(), d["max_age_days"].as_i64(), d["verdict"].as_str()), (Some(340), Some(330), Some("old")), "{d}");
    assert!(!f.bundles().iter().any(|b| b["incident"]["event_type"] == "signing_key_end_of_life"));
    let hb = f.heartbeats().pop().unwrap();
    assert_eq!(hb["incident"]["details"]["checks"]["signing_key_age"]["detail"]["age_days"], 340, "{hb:#}");
}

#[test]
fn a_key_past_its_end_of_life_is_a_critical_incident() {
    let (_f, hits) = run_with_key_age(400, "signing_key_end_of_life");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0]["incident"]["severity"], "critical", "{:#}", hits[0]);
    assert_eq!(hits[0]["incident"]["details"]["age_days"], 400);
}

#[test]
fn a_young_key_holds() {
    let f = Fixture::new(0, 300);
    only_key_age_checks(&f);
    f.add_config("heartbeat:\n  interval_seconds: 1\n");
    let agent = f.spawn();
    wait_until(&f, "a heartbeat with the key age holding", Duration::from_secs(60), || {
        f.heartbeats().iter().any(|h| h["incident"]["details"]["checks"]["signing_key_age"]["status"] == "holds")
    });
    assert!(sigterm_and_wait(agent).success(), "{}", f.log_text());
    assert!(!f.bundles().iter().any(|b| b["incident"]["event_type"].as_str().is_some_and(|e| e.starts_with("signing_key_"))));
}
