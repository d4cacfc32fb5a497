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

/// The incident types detection emits; runbooks name them in `trigger_conditions.event_types`.
pub mod event_type {
    /// A systemd service failed: "Main process exited", "Failed with result", restart limit.
    pub const SERVICE_CRASH: &str = "service_crash";
    /// A backup (restic) unit failed.
    pub const BACKUP_FAILURE: &str = "backup_failure";
    /// A filesystem is over its usage threshold or the kernel reported ENOSPC.
    pub const DISK_FULL: &str = "disk_full";
    /// A certificate under the watched path expires within the threshold, or TLS errors.
    pub const CERT_EXPIRY: &str = "cert_expiry";
    /// Sustained CPU load over the threshold.
    pub const HIGH_CPU: &str = "high_cpu";
    /// The weekly restore test is due.
    pub const RESTORE_TEST_DUE: &str = "restore_test_due";
    /// A file the baseline governs no longer has its expected SHA-256 (the drift watcher).
    pub const CONFIG_DRIFT: &str = "config_drift";
    /// The journal source stayed down past `journal.down_record_after_seconds`.
    pub const JOURNAL_SOURCE_DOWN: &str = "journal_source_down";
    /// Record (not an incident): the agent is alive (`daemon::records::heartbeat`).
    pub const HEARTBEAT: &str = "heartbeat";
    /// Record (not an incident): a backup unit finished successfully.
    pub const BACKUP_COMPLETED: &str = "backup_completed";
    /// The baseline's break-glass account logged in (always escalated to a person).
    pub const BREAK_GLASS_LOGIN: &str = "break_glass_login";
    /// A burst of failed log-ins from one source address.
    pub const LOGIN_FAILURES: &str = "login_failures";
    /// The clock's offset from its time source is above `time.max_drift_ms`.
    pub const CLOCK_DRIFT: &str = "clock_drift";
    /// The running NixOS generation is older than `patching.max_system_age_days`.
    pub const SYSTEM_OUTDATED: &str = "system_outdated";
    /// No successful backup of a backup unit for `backup.max_age_hours` (RB-BACKUP-001).
    pub const BACKUP_STALE: &str = "backup_stale";
    /// A configured TLS endpoint accepted a protocol below `encryption.tls_min_version`.
    pub const TLS_OUTDATED: &str = "tls_outdated";
    /// An incident was still unresolved at its SLA deadline (`incident.sla_minutes_*`).
    pub const SLA_BREACH: &str = "sla_breach";
    /// A runbook `incident.runbooks` lists is not loaded.
    pub const RUNBOOK_MISSING: &str = "runbook_missing";
    /// Record (not an incident): the monthly WORM restore test (`worm restore-test`).
    pub const WORM_RESTORE_TEST: &str = "worm_restore_test";
    /// Record (not an incident): local copies of confirmed bundles were pruned.
    pub const EVIDENCE_PRUNED: &str = "evidence_pruned";
    /// Record (not an incident): the evidence file system passed its usage threshold.
    pub const EVIDENCE_DISK_HIGH: &str = "evidence_disk_high";
    /// The active signing key is older than `keys.max_age_days`: rotate it.
    pub const SIGNING_KEY_OLD: &str = "signing_key_old";
    /// The active signing key is past its end of life (`keys.end_of_life_days`, or a
    /// `valid_until` in its `key-info.json`).
    pub const SIGNING_KEY_END_OF_LIFE: &str = "signing_key_end_of_life";
}

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
