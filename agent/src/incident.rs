//! Incidents: what detection hands to planning. An incident is the agent's claim that
//! something on the host needs a runbook; it becomes the `incident` section of the evidence
//! bundle that records what was done about it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Severity levels shared by incidents and runbooks (DESIGN.md 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        })
    }
}

/// Incident and record event types (the evidence contract's list).
pub use msp_evidence::event_type;

/// Where an incident came from: a journal entry or a periodic probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentSource {
    /// A journal entry; `cursor` is its `__CURSOR`, `realtime_usec` its `__REALTIME_TIMESTAMP`.
    Journal { cursor: String, realtime_usec: u64 },
    /// A periodic probe (disk, cpu, certificates, restore schedule).
    Probe { probe: String },
    /// Started by hand (`msp-agent runbook run`).
    Manual,
    /// The drift watcher saw a governed file change (inotify).
    Inotify,
}

/// One incident. `details` holds the fields that matched (already bounded and scrubbed);
/// values from the journal are hostile input and are never interpolated into a script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `INC-YYYYMMDD-NNNN`.
    pub incident_id: String,
    /// One of [`event_type`].
    pub event_type: String,
    pub severity: Severity,
    pub host: String,
    pub detected_at: DateTime<Utc>,
    pub source: IncidentSource,
    /// The systemd unit concerned, when there is one (the usual runbook target).
    pub unit: Option<String>,
    /// The matched fields and measured values, e.g. `{"mount": "/srv/data", "used_pct": 93}`.
    pub details: BTreeMap<String, serde_json::Value>,
}
