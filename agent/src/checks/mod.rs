//! The registry of agent checks: for every `enforced_by: agent` rule of the baseline, the
//! check that enforces it ([`REGISTRY`], the one place; ARCHITECTURE.md "Agent checks" lists
//! it). `baseline check` fails on an agent rule no row names, and the monthly packet fails a
//! control whose agent rule has no check, or whose check left no record in the month.
//!
//! Every check's latest outcome is on the [`Board`]; each heartbeat carries the board
//! (`details.checks`), so the periodic signed record of a check that holds is the heartbeat,
//! and a violation is an incident (signed evidence and an alert) of the row's event type.
//!
//! The probes themselves: [`clock`] (chrony / timesyncd offset), [`system_age`] (the running
//! NixOS generation), [`backup_age`] (from the `backup_completed` records), [`tls`] (a real
//! handshake at each configured endpoint with a protocol below the minimum).

pub mod backup_age;
pub mod clock;
pub mod key_age;
pub mod system_age;
pub mod tls;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// How a check enforces its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// A probe the daemon runs every `probes.interval_seconds`; an incident when violated.
    Probe,
    /// A journal rule: every entry is matched as it is read; an incident when seen.
    Journal,
    /// Checked when the daemon starts: a configuration that contradicts the rule is refused
    /// (exit 2, naming the key); the agent cannot run violating it.
    AtStart,
    /// Part of the daemon's loop (the heartbeat timer, the SLA timer, escalation).
    Daemon,
}

impl Enforcement {
    /// The spelling used in ARCHITECTURE.md and the heartbeat.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Probe => "probe",
            Enforcement::Journal => "journal",
            Enforcement::AtStart => "at_start",
            Enforcement::Daemon => "daemon",
        }
    }
}

/// One row of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The check's id (the key in the heartbeat's `details.checks`).
    pub id: &'static str,
    /// The baseline rule it enforces (`<section>.<rule>`).
    pub rule: &'static str,
    /// The incident's event type when the rule is violated (`None`: a violation cannot
    /// happen while the agent runs, because start refuses it).
    pub event_type: Option<&'static str>,
    /// How it is enforced.
    pub enforcement: Enforcement,
    /// The module that implements it.
    pub module: &'static str,
}

/// Event types of violations: the one home for event-type names is
/// [`crate::incident::event_type`]; re-exported here for the registry below.
pub use crate::incident::event_type;

/// Check ids.
pub mod id {
    pub const BREAK_GLASS_LOGIN: &str = "break_glass_login";
    pub const LOGIN_FAILURES: &str = "login_failures";
    pub const TLS_MIN_VERSION: &str = "tls_min_version";
    pub const WORM_RETENTION: &str = "worm_retention";
    pub const EVIDENCE_SIGNING: &str = "evidence_signing";
    pub const CLOCK_DRIFT: &str = "clock_drift";
    pub const SYSTEM_AGE: &str = "system_age";
    pub const BACKUP_AGE: &str = "backup_age";
    pub const RESTORE_SCHEDULE: &str = "restore_schedule";
    pub const PHI_BOUNDARY: &str = "phi_boundary";
    pub const EXCERPT_BOUND: &str = "excerpt_bound";
    pub const SCRUB_PATTERNS: &str = "scrub_patterns";
    pub const RUNBOOKS_LOADED: &str = "runbooks_loaded";
    pub const SLA_CLOCK: &str = "sla_clock";
    pub const ESCALATION: &str = "escalation";
    pub const HEARTBEAT: &str = "heartbeat";
    /// Not a baseline rule's check (see [`super::UNBASELINED`]).
    pub const SIGNING_KEY_AGE: &str = "signing_key_age";
}

/// Checks the agent runs and records on the heartbeat board that enforce no baseline rule
/// (the baseline has none for them), so no packet control rests on them.
pub const UNBASELINED: &[&str] = &[id::SIGNING_KEY_AGE];

use Enforcement::*;

/// Rule → check. The journal rows (`break_glass_login`, `login_failures`) are implemented in
/// `detect/` by the journal rules; the rest in this module and the daemon.
pub const REGISTRY: &[Check] = &[
    Check { id: id::BREAK_GLASS_LOGIN, rule: "access.break_glass_login_alert", event_type: Some(event_type::BREAK_GLASS_LOGIN), enforcement: Journal, module: "detect (journal rules)" },
    Check { id: id::LOGIN_FAILURES, rule: "access.login_failure_alert", event_type: Some(event_type::LOGIN_FAILURES), enforcement: Journal, module: "detect (journal rules)" },
    Check { id: id::TLS_MIN_VERSION, rule: "encryption.tls_min_version", event_type: Some(event_type::TLS_OUTDATED), enforcement: Probe, module: "checks::tls" },
    Check { id: id::WORM_RETENTION, rule: "logging.evidence_worm_retention_days", event_type: None, enforcement: AtStart, module: "config::check_policy" },
    Check { id: id::EVIDENCE_SIGNING, rule: "logging.evidence_signing", event_type: None, enforcement: AtStart, module: "keys::Signer (every bundle signed)" },
    Check { id: id::CLOCK_DRIFT, rule: "time.max_drift_ms", event_type: Some(event_type::CLOCK_DRIFT), enforcement: Probe, module: "checks::clock" },
    Check { id: id::SYSTEM_AGE, rule: "patching.max_system_age_days", event_type: Some(event_type::SYSTEM_OUTDATED), enforcement: Probe, module: "checks::system_age" },
    Check { id: id::BACKUP_AGE, rule: "backup.max_age_hours", event_type: Some(event_type::BACKUP_STALE), enforcement: Probe, module: "checks::backup_age" },
    Check { id: id::RESTORE_SCHEDULE, rule: "backup.restore_test_interval_days", event_type: Some(crate::incident::event_type::RESTORE_TEST_DUE), enforcement: Probe, module: "detect::probes::RestoreSchedule" },
    Check { id: id::PHI_BOUNDARY, rule: "phi.boundary", event_type: None, enforcement: AtStart, module: "config::check_policy" },
    Check { id: id::EXCERPT_BOUND, rule: "phi.evidence_excerpt_max_bytes", event_type: None, enforcement: AtStart, module: "config::check_policy" },
    Check { id: id::SCRUB_PATTERNS, rule: "phi.scrub_patterns", event_type: None, enforcement: AtStart, module: "daemon (start: the scrubber must redact a sample of each listed pattern)" },
    Check { id: id::RUNBOOKS_LOADED, rule: "incident.runbooks", event_type: None, enforcement: AtStart, module: "daemon (start: a missing runbook is alerted as runbook_missing and shown violated on the heartbeat board)" },
    Check { id: id::SLA_CLOCK, rule: "incident.sla_minutes_critical", event_type: Some(event_type::SLA_BREACH), enforcement: Daemon, module: "daemon (SLA timer)" },
    Check { id: id::SLA_CLOCK, rule: "incident.sla_minutes_high", event_type: Some(event_type::SLA_BREACH), enforcement: Daemon, module: "daemon (SLA timer)" },
    Check { id: id::SLA_CLOCK, rule: "incident.sla_minutes_medium", event_type: Some(event_type::SLA_BREACH), enforcement: Daemon, module: "daemon (SLA timer)" },
    Check { id: id::SLA_CLOCK, rule: "incident.sla_minutes_low", event_type: Some(event_type::SLA_BREACH), enforcement: Daemon, module: "daemon (SLA timer)" },
    Check { id: id::ESCALATION, rule: "incident.escalate_failed_remediation", event_type: None, enforcement: Daemon, module: "daemon (remediation_failed alert + escalation records)" },
    Check { id: id::HEARTBEAT, rule: "incident.heartbeat_interval_minutes", event_type: None, enforcement: AtStart, module: "config::check_policy + daemon (heartbeat timer)" },
];

/// The check that enforces baseline rule `rule`, if any.
pub fn for_rule(rule: &str) -> Option<&'static Check> {
    REGISTRY.iter().find(|c| c.rule == rule)
}

/// Distinct check ids, in registry order.
pub fn ids() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for c in REGISTRY.iter().map(|c| c.id).chain(UNBASELINED.iter().copied()) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// A check's latest outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The rule held when last checked.
    Holds,
    /// The rule was violated when last checked (an incident was raised).
    Violated,
    /// A journal check: its rule is loaded and the journal source is being read.
    Watching,
    /// The check could not run (the reason is in `detail`); not evidence that the rule holds.
    Error,
    /// Turned off in the configuration; not evidence.
    Disabled,
}

impl Status {
    /// The spelling in the heartbeat.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Holds => "holds",
            Status::Violated => "violated",
            Status::Watching => "watching",
            Status::Error => "error",
            Status::Disabled => "disabled",
        }
    }

    /// Whether a heartbeat reporting this status is a record that the check ran.
    pub fn ran(s: &str) -> bool {
        matches!(s, "holds" | "violated" | "watching")
    }
}

/// One check's outcome on the board.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Latest status.
    pub status: Status,
    /// When it was decided.
    pub checked_at: String,
    /// What was measured or configured (metadata only: numbers, unit and mount names).
    pub detail: Value,
}

/// Every check's latest outcome, by check id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Board {
    outcomes: BTreeMap<String, Outcome>,
}

impl Board {
    /// Set `id`'s outcome.
    pub fn set(&mut self, id: &str, status: Status, at: DateTime<Utc>, detail: Value) {
        self.outcomes.insert(id.to_string(), Outcome { status, checked_at: crate::runbook::exec::rfc3339(at), detail });
    }

    /// `id`'s outcome.
    pub fn get(&self, id: &str) -> Option<&Outcome> {
        self.outcomes.get(id)
    }

    /// The board as the heartbeat's `details.checks`: every registry id, `error` with
    /// "not run yet" for a check that has no outcome yet (so a missing check is visible).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for id in ids() {
            let v = match self.outcomes.get(id) {
                Some(o) => serde_json::to_value(o).unwrap_or(Value::Null),
                None => serde_json::json!({ "status": "error", "detail": "not run yet" }),
            };
            m.insert(id.to_string(), v);
        }
        Value::Object(m)
    }
}

/// The statuses of check `id` in a heartbeat's details (`details.checks.<id>.status`).
pub fn status_in_heartbeat<'a>(details: &'a Value, id: &str) -> Option<&'a str> {
    details.get("checks")?.get(id)?.get("status")?.as_str()
}

/// Run a probe's helper program (`chronyc`, `timedatectl`, `openssl`) with stdin closed, its
/// output captured, killed after `timeout`. Arguments are passed as argv elements: nothing
/// reaches a shell.
pub fn run_bounded(cmd: &mut std::process::Command, timeout: std::time::Duration) -> anyhow::Result<std::process::Output> {
    use anyhow::Context;
    use std::io::Read;
    use std::process::Stdio;
    let shown = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    // Drain both pipes on threads so a chatty program cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.take(1 << 20).read_to_end(&mut b);
        }
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.take(1 << 20).read_to_end(&mut b);
        }
        b
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().with_context(|| format!("waiting for {shown}"))? {
            break s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{shown} did not finish within {} ms", timeout.as_millis());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Ok(std::process::Output { status, stdout, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_rule_of_the_embedded_baseline_has_a_check_and_every_row_a_rule() {
        let mut f = crate::baseline::report::Findings::default();
        let (name, text) = crate::packet::EMBEDDED_BASELINE;
        let b = crate::baseline::model::load(name, text, &mut f).unwrap();
        for r in b.rules.values().filter(|r| r.enforced_by == crate::baseline::model::EnforcedBy::Agent) {
            assert!(for_rule(&r.key).is_some(), "{} has no check", r.key);
        }
        for c in REGISTRY {
            let r = b.rules.get(c.rule).unwrap_or_else(|| panic!("{} names missing rule {}", c.id, c.rule));
            assert_eq!(r.enforced_by, crate::baseline::model::EnforcedBy::Agent, "{}", c.rule);
        }
    }

    #[test]
    fn board_lists_every_check_and_marks_missing_ones() {
        let mut b = Board::default();
        b.set(id::CLOCK_DRIFT, Status::Holds, Utc::now(), serde_json::json!({"offset_ms": 1.5}));
        let j = b.to_json();
        assert_eq!(status_in_heartbeat(&serde_json::json!({"checks": j.clone()}), id::CLOCK_DRIFT), Some("holds"));
        assert_eq!(j[id::SYSTEM_AGE]["status"], "error");
        assert_eq!(j.as_object().unwrap().len(), ids().len());
        assert!(Status::ran("holds") && Status::ran("violated") && !Status::ran("error") && !Status::ran("disabled"));
    }
}
