//! The evidence bundle: the JSON record of one incident and what was done about it
//! (DESIGN.md 3, "Evidence bundle"). The field names are a contract with auditors and the
//! JSON Schema in `agent/schema/evidence-bundle.schema.json`; change them only with a
//! `bundle_version` bump.

use serde::{Deserialize, Serialize};

/// Current `bundle_version`. 1.1 added the PHI filter's record on each artifact
/// (`scrubbed`, `redactions`, `original_size_bytes`); 1.0 bundles still parse and verify
/// (the fields default to "not scrubbed", see ARCHITECTURE.md, "Bundle versions").
pub const BUNDLE_VERSION: &str = "1.1";

/// Versions this build reads (and `evidence verify` checks).
pub const KNOWN_BUNDLE_VERSIONS: [&str; 2] = ["1.0", BUNDLE_VERSION];

/// A complete bundle as written to `EB-YYYYMMDD-NNNN.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub bundle_id: String,
    pub bundle_version: String,
    pub client_id: String,
    pub hostname: String,
    /// RFC 3339 UTC.
    pub generated_at: String,
    /// `msp-agent <version>`.
    pub generator: String,
    pub incident: IncidentSection,
    pub runbook: RunbookSection,
    pub execution: ExecutionSection,
    pub actions_taken: Vec<Action>,
    pub rollback: Vec<Action>,
    pub artifacts: Vec<Artifact>,
    /// The closed-loop verification step's outcome (empty object when the runbook has none).
    pub verification: serde_json::Value,
    /// How the runbook was chosen, present only when the advisor was consulted
    /// (the agent's `advisor::planner_section`); absent bundles were planned deterministically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<serde_json::Value>,
    pub outputs: Outputs,
    pub provenance: Provenance,
    pub chain: Chain,
    pub signing: Signing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSection {
    pub incident_id: String,
    pub event_type: String,
    pub severity: String,
    pub detected_at: String,
    /// `journal`, `probe:<name>` or `manual`.
    pub source: String,
    pub details: serde_json::Value,
    pub hipaa_controls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookSection {
    pub runbook_id: String,
    pub runbook_version: String,
    /// SHA-256 (hex) of the runbook file's exact bytes.
    pub runbook_hash: String,
    pub steps_total: u32,
    pub steps_executed: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSection {
    pub timestamp_start: String,
    pub timestamp_end: String,
    /// `msp-agent` for automatic runs, the invoking user for manual ones.
    pub operator: String,
    /// Detection to resolution, in seconds.
    pub mttr_seconds: f64,
    pub sla_target_seconds: u64,
    pub sla_met: bool,
    /// `automatic`, `manual`, `escalated` or `suppressed`.
    pub resolution_type: String,
}

/// One executed step (or rollback step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// 1-based position in the runbook.
    pub step: u32,
    pub step_id: String,
    pub action: String,
    /// SHA-256 of the script text as run.
    pub script_hash: String,
    /// `success`, `failed`, `timeout` or `skipped`.
    pub result: String,
    pub exit_code: Option<i32>,
    pub timestamp: String,
    pub duration_ms: u64,
    /// Bounded and PHI-scrubbed.
    pub stdout_excerpt: String,
    pub stderr_excerpt: String,
    /// SHA-256 of the full stdout followed by the full stderr, as captured.
    pub output_hash: String,
    pub error_message: Option<String>,
}

/// A file a step left in `$MSP_ARTIFACTS`, stored beside the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub filename: String,
    /// SHA-256 of the stored (scrubbed) file.
    pub sha256: String,
    /// Size of the stored (scrubbed) file.
    pub size_bytes: u64,
    /// The file went through the PHI filter before it was stored (absent, i.e. `false`, in
    /// 1.0 bundles: their artifacts were stored as the step wrote them).
    #[serde(default)]
    pub scrubbed: bool,
    /// What the filter removed, by kind (`email`, `phone`, `ssn`, `mrn`, `dob`, `digits`);
    /// only non-zero counts.
    #[serde(default)]
    pub redactions: std::collections::BTreeMap<String, u64>,
    /// Size as the step wrote it; larger than `size_bytes` when the artifact bound cut it
    /// (absent in 1.0 bundles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_size_bytes: Option<u64>,
}

/// A file to store with a new bundle, and what the PHI filter did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFile {
    /// Where the (already scrubbed) file is.
    pub path: std::path::PathBuf,
    /// `None` for a file that did not pass the filter (test fixtures); recorded as
    /// `scrubbed: false`.
    pub scrub: Option<ArtifactScrub>,
}

/// The PHI filter's record of one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactScrub {
    /// Non-zero counts by kind name.
    pub redactions: std::collections::BTreeMap<String, u64>,
    /// Size before scrubbing and bounding.
    pub original_size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// `resolved`, `failed`, `rolled_back`, `escalated` or `suppressed`.
    pub resolution_status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub agent_version: String,
    /// `/run/current-system` store path when on NixOS, else `null`.
    pub nixos_system: Option<String>,
    pub baseline_version: Option<String>,
    pub baseline_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    /// Counts up from 1 per host with no gaps.
    pub sequence: u64,
    /// SHA-256 (hex) of the previous bundle file's bytes; 64 zeros for sequence 1.
    pub prev_bundle_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// `SHA256:<base64>` fingerprint of the signing public key, as `ssh-keygen -l` prints it.
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
}

/// `prev_bundle_sha256` of the first bundle in a chain.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// `runbook.runbook_id` of records that ran no runbook (escalations, suppressions, heartbeats,
/// backup records): there is no runbook file behind them, and they claim no executed step.
pub const NO_RUNBOOK_ID: &str = "none";
