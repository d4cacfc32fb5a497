//! The alert webhook's JSON body, shared by the agent (escalations, failed remediations, WORM
//! outages) and the fleet view (silence), so one receiver handles both.
//!
//! Alerts are notifications, not evidence, and they leave the host: every field is metadata
//! (kinds, ids, times, counts); the agent passes `summary` through its PHI filter first.

use serde::{Deserialize, Serialize};

/// One alert, as POSTed to the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// `escalation`, `remediation_failed`, `worm_outage`, `journal_source_failed`, ... (agent);
    /// `host_silent_warn`, `host_silent_page`, `host_reporting_again`, `client_silent` (fleet).
    pub kind: String,
    /// The client.
    pub client_id: String,
    /// The host (`*` for a fleet alert about a whole client).
    pub host: String,
    /// The incident, when the alert is about one.
    pub incident_id: Option<String>,
    /// The runbook, when one ran.
    pub runbook_id: Option<String>,
    /// The evidence bundle that records it, when there is one.
    pub bundle_id: Option<String>,
    /// One line for a person.
    pub summary: String,
    /// RFC 3339 UTC.
    pub at: String,
}
