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
    /// The incident (numbered).
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
    /// Start `incident`'s clock (once per incident id).
    pub fn watch(&mut self, incident: &Incident, rb: Option<&Runbook>, key: &GuardKey, policy: &AgentPolicy, state: State) {
        let baseline = u64::from(policy.sla_minutes.of(incident.severity));
        let sla_minutes = rb.map_or(baseline, |r| r.sla_minutes.min(baseline));
        let deadline = incident.detected_at + Duration::minutes(sla_minutes as i64);
        self.watches.entry(incident.incident_id.clone()).or_insert_with(|| Watch {
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
