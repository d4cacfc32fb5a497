//! The fleet's view model: what every page, every JSON API answer and `msp-fleet status` show.
//!
//! The index fills these ([`FleetQuery`]); the web layer and the CLI only render them, so a
//! status means the same thing on the fleet page, in the API and in a script. Everything here
//! is metadata (ids, times, states, hashes, object keys): never a journal line or a file's text
//! (DESIGN.md §4c).

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Who is asking: an MSP operator sees every client, a clinic's token only its own hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every client and host.
    Operator,
    /// One client's hosts, read only.
    Client(String),
}

impl Scope {
    /// Whether this scope may see `client`.
    pub fn sees(&self, client: &str) -> bool {
        match self {
            Scope::Operator => true,
            Scope::Client(c) => c == client,
        }
    }
}

/// The state of one control on one host, judged only from verified evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlState {
    /// A verified qualifying bundle is within the control's `freshness_hours`.
    Passing,
    /// No qualifying evidence, or the newest relevant evidence is a failure.
    Failing,
    /// Qualifying evidence exists but is older than `freshness_hours`.
    Stale,
    /// An unexpired, signed-off exception covers the control.
    Excepted,
    /// Evidence the control depends on failed verification (signature, key window, chain).
    IntegrityError,
}

/// Whether a host is still sending evidence (judged off the box, from the bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Silence {
    /// New evidence within the heartbeat allowance.
    Reporting,
    /// No new evidence for at least `warn_after_intervals` heartbeat intervals.
    Warn,
    /// No new evidence for at least `page_after_intervals` heartbeat intervals.
    Page,
    /// In the inventory, but no evidence from it has ever been indexed.
    NeverSeen,
}

/// A pointer to the signed object behind a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleRef {
    /// `EB-YYYYMMDD-NNNN`.
    pub bundle_id: String,
    /// The bucket (or mirror) key of the bundle's JSON object.
    pub object_key: String,
    /// The bundle's `generated_at`, RFC 3339 UTC.
    pub generated_at: String,
    /// The bundle's incident event type (`heartbeat`, `backup_completed`, ...).
    pub event_type: String,
}

/// An exception that covers a control (approver and expiry are what an auditor asks for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExceptionRef {
    /// The exception's id in the MSP's flake.
    pub id: String,
    /// Who signed it off.
    pub approver: String,
    /// Last day it applies (UTC date).
    pub expires: String,
}

/// Counts of control states (for summaries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub passing: usize,
    pub failing: usize,
    pub stale: usize,
    pub excepted: usize,
    pub integrity_error: usize,
}

/// One host in a list (fleet and client pages).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSummary {
    pub client_id: String,
    pub host_id: String,
    pub silence: Silence,
    /// Newest verified evidence of any kind, RFC 3339.
    pub last_evidence_at: Option<String>,
    /// Newest heartbeat bundle, RFC 3339.
    pub last_heartbeat_at: Option<String>,
    pub controls: StateCounts,
    /// Objects of this host that failed verification.
    pub integrity_errors: usize,
    /// Incidents escalated or still open (no resolved bundle after them) this month.
    pub open_incidents: usize,
    /// Remediations that failed this month.
    pub failed_incidents: usize,
    /// Drift bundles this month.
    pub drift_events: usize,
    /// Seconds between a bundle's `generated_at` and its object's appearance in the bucket
    /// (newest bundle), when the source reports object times; `None` otherwise.
    pub worm_lag_seconds: Option<i64>,
}

/// One client in the fleet list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientSummary {
    pub client_id: String,
    pub name: Option<String>,
    pub hosts: usize,
    pub silent_hosts: usize,
    pub controls: StateCounts,
    pub integrity_errors: usize,
    pub open_incidents: usize,
}

/// The fleet page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetView {
    /// When this view was computed (the `now` it was judged at), RFC 3339.
    pub as_of: String,
    /// When the index last finished a poll of the source, RFC 3339.
    pub last_poll_at: Option<String>,
    pub clients: Vec<ClientSummary>,
    /// Hosts needing attention (silent, failing, integrity errors), worst first.
    pub attention: Vec<HostSummary>,
}

/// A client's page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientView {
    pub summary: ClientSummary,
    pub hosts: Vec<HostSummary>,
    /// Months (`YYYY-MM`) with evidence, newest first, for the packets list.
    pub months: Vec<String>,
}

/// One control's line on a host page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlLine {
    /// `§164.312(b)`.
    pub control_id: String,
    pub title: String,
    pub state: ControlState,
    /// The controls map's evidence rule (`heartbeat`, `backup_completed`, ...).
    pub evidence_rule: String,
    pub freshness_hours: Option<u32>,
    /// The bundle that justifies the state, when there is one.
    pub evidence: Option<BundleRef>,
    pub exception: Option<ExceptionRef>,
    /// Why, in one line (e.g. "newest qualifying bundle is 31 h old, allowed 26 h").
    pub reason: String,
}

/// One incident line on a host page (metadata only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentLine {
    pub bundle: BundleRef,
    pub runbook_id: Option<String>,
    /// `resolved`, `escalated`, `failed`, ...
    pub status: String,
}

/// A host's page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostView {
    pub summary: HostSummary,
    pub heartbeat_interval_seconds: u64,
    pub controls: Vec<ControlLine>,
    /// Open, escalated and failed incidents, newest first.
    pub incidents: Vec<IncidentLine>,
    /// Objects that failed verification, with the reason.
    pub integrity: Vec<IntegrityLine>,
    /// Key ids registered for the host in the inventory.
    pub key_ids: Vec<String>,
}

/// An object that failed verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrityLine {
    pub object_key: String,
    pub bundle_id: Option<String>,
    /// What failed ("signature does not verify with SHA256:...", "chain: prev_hash ...").
    pub problem: String,
}

/// A control's page: its line plus the history of qualifying bundles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlView {
    pub client_id: String,
    pub host_id: String,
    pub line: ControlLine,
    /// Qualifying bundles, newest first (bounded).
    pub history: Vec<BundleRef>,
}

/// A bundle's page: the object and how to check it with stock tools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleView {
    pub client_id: String,
    pub host_id: String,
    pub bundle: BundleRef,
    /// `verified` or the integrity problem.
    pub verification: String,
    pub key_id: String,
    /// Object keys of the bundle's signature files.
    pub signature_objects: Vec<String>,
    /// The bundle JSON as stored (metadata by construction of the agent's evidence), fetched
    /// from the source on demand; never stored in the index.
    pub json: String,
    /// Shell commands an auditor runs to verify this bundle with `ssh-keygen` / `openssl`.
    pub stock_commands: Vec<String>,
}

/// What the index answers; implemented by the SQLite index, rendered by web, API and CLI.
pub trait FleetQuery: Send + Sync {
    /// The fleet page for `scope`.
    fn fleet(&self, scope: &Scope, now: DateTime<Utc>) -> Result<FleetView>;
    /// A client's page; `None` if unknown or outside `scope`.
    fn client(&self, scope: &Scope, client: &str, now: DateTime<Utc>) -> Result<Option<ClientView>>;
    /// A host's page; `None` if unknown or outside `scope`.
    fn host(&self, scope: &Scope, client: &str, host: &str, now: DateTime<Utc>) -> Result<Option<HostView>>;
    /// A control's page; `None` if unknown or outside `scope`.
    fn control(&self, scope: &Scope, client: &str, host: &str, control_id: &str, now: DateTime<Utc>) -> Result<Option<ControlView>>;
    /// A bundle's page; `None` if unknown or outside `scope`.
    fn bundle(&self, scope: &Scope, client: &str, host: &str, bundle_id: &str) -> Result<Option<BundleView>>;
}
