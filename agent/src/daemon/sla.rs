//! SLA clocks (`incident.sla_minutes_*`): every incident a runbook was started for, and every
//! suppressed repeat, has a deadline (its detection time plus the stricter of the runbook's
//! `sla_minutes` and the baseline's SLA for its severity). The owner thread asks
//! [`SlaClock::due`] on every turn of its loop; an incident still unresolved at its deadline
//! (a long run, a failed run waiting for its retry, a suppressed repeat) is escalated then,
//! with a signed record and an alert, not only counted as missed afterwards. A resolved run
//! stops the clocks of its target (the same runbook and target): the repeats it fixed too.
//! Incidents escalated at detection (no runbook, refused) have no clock: a person has them.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::guard::GuardKey;
use crate::incident::Incident;
use crate::policy::AgentPolicy;
use crate::runbook::model::Runbook;

/// Where an incident is when its deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its runbook is running.
    Running,
    /// Its runbook ended without resolving it (the guard's backoff decides on a retry).
    Failed,
    /// A repeat the guard suppressed (cooldown, backoff, rate limit).
    Suppressed,
}

impl State {
    /// Words for the escalation reason.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "its runbook is still running",
            State::Failed => "its runbook ended without resolving it",
            State::Suppressed => "it was a repeat the guard suppressed",
        }
    }
}

/// One incident's clock.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The incident (without an id for a suppressed repeat that left no record; numbered when
    /// it escalates).
    pub incident: Incident,
    /// The runbook planned for it.
    pub runbook_id: Option<String>,
    /// Its guard key (runbook and target).
    pub key: GuardKey,
    /// SLA, minutes.
    pub sla_minutes: u64,
    /// Detection time + SLA.
    pub deadline: DateTime<Utc>,
    /// Where it is.
    pub state: State,
}

/// The open clocks, by incident id.
#[derive(Debug, Default)]
pub struct SlaClock {
    watches: BTreeMap<String, Watch>,
}

impl SlaClock {
    /// Start `incident`'s clock: once per incident id, or for an incident without an id yet
    /// (a suppressed repeat), once per runbook and target: the first repeat's deadline is the
    /// earliest, and a storm of repeats costs one clock, not one each.
    pub fn watch(&mut self, incident: &Incident, rb: Option<&Runbook>, key: &GuardKey, policy: &AgentPolicy, state: State) {
        let id = if incident.incident_id.is_empty() {
            format!("repeat:{}:{}", key.runbook_id, key.target)
        } else {
            incident.incident_id.clone()
        };
        if self.watches.contains_key(&id) {
            return;
        }
        let baseline = u64::from(policy.sla_minutes.of(incident.severity));
        let sla_minutes = rb.map_or(baseline, |r| r.sla_minutes.min(baseline));
        let deadline = incident.detected_at + Duration::minutes(sla_minutes as i64);
        self.watches.entry(id).or_insert_with(|| Watch {
            incident: incident.clone(),
            runbook_id: rb.map(|r| r.id.clone()),
            key: key.clone(),
            sla_minutes,
            deadline,
            state,
        });
    }

    /// A run on `key` resolved `incident`: its clock and those of earlier repeats on the same
    /// target stop.
    pub fn resolved(&mut self, key: &GuardKey, incident: &Incident) {
        self.watches.remove(&incident.incident_id);
        self.watches.retain(|_, w| !(w.key == *key && w.incident.detected_at <= Utc::now()));
    }

    /// A run ended without resolving `incident_id`.
    pub fn failed(&mut self, incident_id: &str) {
        if let Some(w) = self.watches.get_mut(incident_id) {
            w.state = State::Failed;
        }
    }

    /// The clocks whose deadline is at or before `now` (removed: each escalates once).
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Watch> {
        let ids: Vec<String> = self.watches.iter().filter(|(_, w)| w.deadline <= now).map(|(id, _)| id.clone()).collect();
        ids.into_iter().filter_map(|id| self.watches.remove(&id)).collect()
    }

    /// Open clocks.
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// No open clock.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentSource, Severity};

    fn incident(id: &str, severity: Severity, minutes_ago: i64) -> Incident {
        Incident {
            incident_id: id.into(),
            event_type: "service_crash".into(),
            severity,
            host: "h".into(),
            detected_at: Utc::now() - Duration::minutes(minutes_ago),
            source: IncidentSource::Probe { probe: "t".into() },
            unit: Some("a.service".into()),
            details: Default::default(),
        }
    }

    fn key(target: &str) -> GuardKey {
        GuardKey { client_id: "c".into(), host: "h".into(), runbook_id: "RB-X-001".into(), target: target.into() }
    }

    #[test]
    fn deadlines_by_severity_and_state_and_what_a_resolved_run_clears() {
        let policy = AgentPolicy::embedded().unwrap();
        let mut c = SlaClock::default();
        // No runbook: the baseline's SLA of the severity (high: 60 min).
        c.watch(&incident("INC-1", Severity::High, 59), None, &key("a"), &policy, State::Running);
        // A suppressed repeat of another target, past the critical SLA (15 min); more repeats
        // of it (no id yet) share its clock.
        c.watch(&incident("INC-2", Severity::Critical, 16), None, &key("b"), &policy, State::Suppressed);
        c.watch(&incident("", Severity::Critical, 5), None, &key("b"), &policy, State::Suppressed);
        c.watch(&incident("", Severity::Critical, 4), None, &key("b"), &policy, State::Suppressed);
        // A failed run waiting for its retry.
        c.watch(&incident("INC-3", Severity::Medium, 241), None, &key("c"), &policy, State::Running);
        c.failed("INC-3");
        let due = c.due(Utc::now());
        let got: Vec<(String, State, u64)> = due.iter().map(|w| (w.incident.incident_id.clone(), w.state, w.sla_minutes)).collect();
        assert_eq!(got, vec![("INC-2".into(), State::Suppressed, 15), ("INC-3".into(), State::Failed, 240)]);
        assert!(c.due(Utc::now()).is_empty(), "each clock escalates once");
        assert_eq!(c.len(), 2, "INC-1 and one clock for the unnumbered repeats of b");
        // The repeats' clock runs from the first repeat (5 min ago + 15 = in 10 min).
        assert!(c.due(Utc::now() + Duration::minutes(9)).iter().all(|w| w.incident.incident_id == "INC-1"));
        let rest = c.due(Utc::now() + Duration::minutes(11));
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].incident.incident_id.as_str(), rest[0].state), ("", State::Suppressed));
        c.watch(&incident("INC-1", Severity::High, 59), None, &key("a"), &policy, State::Running);
        // A resolved run on the same target stops that target's clocks, repeats included.
        c.watch(&incident("INC-4", Severity::High, 1), None, &key("a"), &policy, State::Suppressed);
        c.resolved(&key("a"), &incident("INC-5", Severity::High, 0));
        assert!(c.is_empty());
        assert!(c.due(Utc::now() + Duration::hours(2)).is_empty());
    }
}
