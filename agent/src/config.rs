//! The daemon's configuration file (`/etc/msp/agent.yaml`): strict YAML, every key documented
//! in the README ("Configuration"), every section optional except `client_id`.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default in a compliance
//! product), and every error names the file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::guard::{GuardConfig, Permission};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The clinic this host belongs to, e.g. `clinic-001`. Appears in every bundle.
    pub client_id: String,
    /// Host name recorded in evidence; default: the kernel host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Directory of runbook YAML files.
    #[serde(default = "default_runbooks_dir")]
    pub runbooks_dir: PathBuf,
    /// The MSP-approved set: runbook id → SHA-256 of the exact runbook file.
    #[serde(default)]
    pub approved_runbooks: BTreeMap<String, String>,
    /// What this client allows per runbook: `auto`, `manual` or `deny`. Missing = not permitted.
    #[serde(default)]
    pub client_permissions: BTreeMap<String, Permission>,
    /// This host's settings per runbook: runbook id → parameter name → value. They replace
    /// the runbook's defaults (the host's restic repository, its certificate renewal unit)
    /// and are validated like every parameter; incident bindings still take precedence.
    #[serde(default)]
    pub runbook_parameters: BTreeMap<String, BTreeMap<String, String>>,
    /// Root of the evidence store.
    #[serde(default = "default_evidence_dir")]
    pub evidence_dir: PathBuf,
    /// Cursor, guard state, incident counters, outbox.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The private signing key. Default: `$CREDENTIALS_DIRECTORY/evidence-signing.key` when
    /// systemd passed it as a credential, else `/etc/msp/signing-keys/evidence-signing.key`.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// Cooldown and backoff.
    #[serde(default)]
    pub guard: GuardConfig,
    /// How many runbooks may run at once (on different targets).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_runbooks: usize,
    /// The journal source.
    #[serde(default)]
    pub journal: JournalConfig,
    /// Periodic probes.
    #[serde(default)]
    pub probes: ProbesConfig,
    /// Where escalations and failed remediations are sent.
    #[serde(default)]
    pub alert: AlertConfig,
    /// WORM storage (S3 Object Lock); absent = evidence stays local only. Keys as in
    /// `worm sync` (README, "WORM storage"); `client_id` and `host` default to the ones above.
    #[serde(default)]
    pub worm: Option<crate::worm::config::WormConfig>,
    /// The baseline this host was built against, recorded in every bundle's provenance.
    #[serde(default)]
    pub baseline: Option<BaselineRef>,
    /// The periodic signed "alive" record.
    #[serde(default)]
    pub heartbeat: HeartbeatConfig,
    /// Where the running and booted NixOS generations are read from.
    #[serde(default)]
    pub provenance: ProvenanceConfig,
    /// The watcher of governed files (drift detection).
    #[serde(default)]
    pub drift: DriftConfig,
    /// The LLM advisor the planner may consult when it is unsure (default: off).
    #[serde(default)]
    pub advisor: AdvisorConfig,
    /// The file this configuration was read from (set by [`Config::load`]; the drift watcher
    /// governs it).
    #[serde(skip)]
    pub source_path: Option<PathBuf>,
}

/// `heartbeat:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    /// Seconds between two heartbeat bundles (the first is written at start).
    pub interval_seconds: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig { interval_seconds: 900 }
    }
}

/// `provenance:` section: the symlinks NixOS keeps to the running and booted systems. Only
/// tests (and non-NixOS hosts) change these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvenanceConfig {
    /// Symlink to the running system's store path.
    pub current_system_link: PathBuf,
    /// Symlink to the store path of the system the host booted.
    pub booted_system_link: PathBuf,
}

impl Default for ProvenanceConfig {
    fn default() -> Self {
        ProvenanceConfig {
            current_system_link: PathBuf::from("/run/current-system"),
            booted_system_link: PathBuf::from("/run/booted-system"),
        }
    }
}

/// `drift:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Watch the governed files (manifest files, this config, runbooks, signing keys).
    pub enabled: bool,
    /// Passed to RB-DRIFT-001 as `reapply`: run the current generation's
    /// `switch-to-configuration switch` to put governed files back.
    pub reapply: bool,
    /// A change is hashed once the file has been quiet this long (a writer's several
    /// `write()` calls are one change).
    pub settle_millis: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig { enabled: true, reapply: false, settle_millis: 50 }
    }
}

/// `baseline:` section (the NixOS module fills it from the rendered baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRef {
    /// e.g. `1.0.0`.
    #[serde(default)]
    pub version: Option<String>,
    /// SHA-256 of `hipaa-v1.yaml`'s exact bytes.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The expected-state manifest for drift detection.
    #[serde(default)]
    pub manifest: Option<PathBuf>,
}

/// `journal:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Read the system journal (false: probes only).
    pub enabled: bool,
    /// Read this journal directory instead of the system journal (replay, tests).
    pub directory: Option<PathBuf>,
    /// Unit-name globs whose failures are backup failures rather than service crashes.
    pub backup_unit_patterns: Vec<String>,
    /// Journal lines about the same failure (event type and unit) within this many seconds
    /// of the first are one incident (systemd logs several lines per failure).
    pub dedupe_window_seconds: u64,
    /// A journal source down this many seconds in a row is recorded as a signed
    /// `journal_source_down` escalation (and alerted); shorter hiccups are only alerted.
    pub down_record_after_seconds: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            enabled: true,
            directory: None,
            backup_unit_patterns: vec!["restic-backups-*.service".into(), "*backup*.service".into()],
            dedupe_window_seconds: 60,
            down_record_after_seconds: 30,
        }
    }
}

/// `probes:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbesConfig {
    /// Seconds between probe rounds.
    pub interval_seconds: u64,
    pub disk: DiskProbe,
    pub cpu: CpuProbe,
    pub certs: CertProbe,
    pub restore_test: RestoreTestProbe,
}

impl Default for ProbesConfig {
    fn default() -> Self {
        ProbesConfig {
            interval_seconds: 30,
            disk: DiskProbe::default(),
            cpu: CpuProbe::default(),
            certs: CertProbe::default(),
            restore_test: RestoreTestProbe::default(),
        }
    }
}

/// `probes.disk`: filesystem usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskProbe {
    pub enabled: bool,
    /// Incident when a mount's used space is at or over this percentage.
    pub threshold_percent: u8,
    /// Mount points to watch.
    pub mounts: Vec<PathBuf>,
}

impl Default for DiskProbe {
    fn default() -> Self {
        DiskProbe { enabled: true, threshold_percent: 90, mounts: vec![PathBuf::from("/")] }
    }
}

/// `probes.cpu`: sustained CPU load, attributed to a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuProbe {
    pub enabled: bool,
    /// Percentage of one core's time a single unit may use before it counts as a hog.
    pub threshold_percent: u32,
    /// How long the load must last.
    pub sustained_seconds: u64,
}

impl Default for CpuProbe {
    fn default() -> Self {
        CpuProbe { enabled: true, threshold_percent: 90, sustained_seconds: 120 }
    }
}

/// `probes.certs`: certificate expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertProbe {
    pub enabled: bool,
    /// Files or directories of PEM certificates.
    pub paths: Vec<PathBuf>,
    /// Incident when a certificate expires within this many days.
    pub warn_days: u32,
}

impl Default for CertProbe {
    fn default() -> Self {
        CertProbe { enabled: true, paths: vec![PathBuf::from("/etc/ssl/msp")], warn_days: 14 }
    }
}

/// `probes.restore_test`: the weekly restore test schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreTestProbe {
    pub enabled: bool,
    /// The test is due this many days after the last one.
    pub interval_days: u32,
}

impl Default for RestoreTestProbe {
    fn default() -> Self {
        RestoreTestProbe { enabled: true, interval_days: 7 }
    }
}

/// `alert:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// JSON POST target for escalations and failed remediations; none = journal only.
    pub webhook_url: Option<String>,
    /// Attempts per alert (with exponential backoff between them).
    pub retries: u32,
    /// Per-attempt timeout.
    pub timeout_seconds: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig { webhook_url: None, retries: 3, timeout_seconds: 10 }
    }
}

/// `advisor.policy`: what the planner does with the advisor's choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvisorPolicy {
    /// Never consult it: the deterministic planner alone (the default).
    #[default]
    Off,
    /// Consult it when planning is unsure; its choice goes into the escalation record and the
    /// alert, and a person runs the runbook.
    Suggest,
    /// Consult it when planning is unsure; a choice at or above `confidence_threshold` runs
    /// (through the guard, like any plan).
    Auto,
}

/// `advisor:` section: an OpenAI-compatible chat-completions endpoint that may choose among
/// the approved runbooks when the deterministic planner finds none or several (see
/// [`crate::advisor`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdvisorConfig {
    /// `off`, `suggest` or `auto`.
    pub policy: AdvisorPolicy,
    /// Base URL of the API (`http://127.0.0.1:8080/v1`); requests go to `URL/chat/completions`.
    pub url: Option<String>,
    /// The `model` field of every request.
    pub model: String,
    /// File holding the API key (sent as `Authorization: Bearer`). Default:
    /// `$CREDENTIALS_DIRECTORY/advisor-api-key` when systemd passed it, else no key.
    pub api_key_file: Option<PathBuf>,
    /// `auto` runs the advisor's choice only at or above this confidence (0-1].
    pub confidence_threshold: f64,
    /// Per-attempt timeout (connect and answer), 1-60 s.
    pub timeout_seconds: u64,
    /// Further attempts after a timeout, a connection error, a 429 or a 5xx (0-3).
    pub retries: u32,
    /// Sampling temperature sent with the request.
    pub temperature: f64,
    /// Upper bound on the answer's tokens.
    pub max_tokens: u32,
}

impl Default for AdvisorConfig {
    fn default() -> Self {
        AdvisorConfig {
            policy: AdvisorPolicy::Off,
            url: None,
            model: "local".into(),
            api_key_file: None,
            confidence_threshold: 0.8,
            timeout_seconds: 10,
            retries: 1,
            temperature: 0.0,
            max_tokens: 256,
        }
    }
}

impl AdvisorConfig {
    /// The checks [`Config::parse`] applies; `at` names the key's file and line.
    pub fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<()> {
        if let Some(url) = &self.url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("{}: advisor.url: must be an http(s) URL", at("url"));
            }
        } else if self.policy != AdvisorPolicy::Off {
            bail!("{}: advisor.url: required when advisor.policy is not off", at("policy"));
        }
        if !(self.confidence_threshold > 0.0 && self.confidence_threshold <= 1.0) {
            bail!("{}: advisor.confidence_threshold: must be in (0, 1]", at("confidence_threshold"));
        }
        if !(1..=60).contains(&self.timeout_seconds) {
            bail!("{}: advisor.timeout_seconds: must be 1-60", at("timeout_seconds"));
        }
        if self.retries > 3 {
            bail!("{}: advisor.retries: at most 3", at("retries"));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            bail!("{}: advisor.temperature: must be 0-2", at("temperature"));
        }
        if !(16..=4096).contains(&self.max_tokens) {
            bail!("{}: advisor.max_tokens: must be 16-4096", at("max_tokens"));
        }
        Ok(())
    }

    /// Where the API key is, per the rules documented on `api_key_file`.
    pub fn effective_api_key_file(&self) -> Option<PathBuf> {
        if let Some(p) = &self.api_key_file {
            return Some(p.clone());
        }
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
        let p = Path::new(&dir).join(crate::advisor::client::CREDENTIAL_NAME);
        p.exists().then_some(p)
    }
}

fn default_runbooks_dir() -> PathBuf {
    PathBuf::from(crate::paths::RUNBOOK_DIR)
}
fn default_evidence_dir() -> PathBuf {
    PathBuf::from(crate::paths::EVIDENCE_DIR)
}
fn default_state_dir() -> PathBuf {
    PathBuf::from(crate::paths::STATE_DIR)
}
fn default_max_concurrent() -> usize {
    2
}

impl Config {
    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut config = Config::parse(path, &text)?;
        config.source_path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse and validate `text`; `path` is used in error messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let config: Config = crate::yamlutil::from_str(path, text)?;
        config.validate(path, text)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<()> {
        let at = |key: &str| crate::yamlutil::key_location(path, text, key);
        if !valid_name(&self.client_id) {
            bail!("{}: client_id: {:?} must be 1-64 characters of A-Z a-z 0-9 . _ -", at("client_id"), self.client_id);
        }
        if let Some(h) = &self.hostname {
            if !valid_name(h) {
                bail!("{}: hostname: {h:?} must be 1-64 characters of A-Z a-z 0-9 . _ -", at("hostname"));
            }
        }
        for (id, hash) in &self.approved_runbooks {
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("{}: approved_runbooks.{id}: expected a SHA-256 in hex (64 characters)", at(id));
            }
        }
        if self.max_concurrent_runbooks == 0 {
            bail!("{}: max_concurrent_runbooks: must be at least 1", at("max_concurrent_runbooks"));
        }
        if self.journal.dedupe_window_seconds == 0 {
            bail!("{}: journal.dedupe_window_seconds: must be at least 1 (systemd logs several lines per failure)", at("dedupe_window_seconds"));
        }
        if self.probes.interval_seconds == 0 {
            bail!("{}: probes.interval_seconds: must be at least 1", at("interval_seconds"));
        }
        if !(1..=100).contains(&self.probes.disk.threshold_percent) {
            bail!("{}: probes.disk.threshold_percent: must be 1-100", at("threshold_percent"));
        }
        if self.heartbeat.interval_seconds == 0 {
            bail!("{}: heartbeat.interval_seconds: must be at least 1", at("interval_seconds"));
        }
        if self.drift.settle_millis > 500 {
            bail!("{}: drift.settle_millis: at most 500 (drift evidence is due within a second)", at("settle_millis"));
        }
        self.advisor.validate(&at)?;
        if let Some(url) = &self.alert.webhook_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("{}: alert.webhook_url: must be an http(s) URL", at("webhook_url"));
            }
        }
        Ok(())
    }

    /// The host name to record: configured, else the kernel's.
    pub fn effective_hostname(&self) -> Result<String> {
        if let Some(h) = &self.hostname {
            return Ok(h.clone());
        }
        let h = nix::unistd::gethostname().context("reading the host name")?;
        Ok(h.to_string_lossy().into_owned())
    }

    /// Where the private signing key is, per the rules documented on `signing_key_file`.
    pub fn effective_signing_key_file(&self) -> PathBuf {
        if let Some(p) = &self.signing_key_file {
            return p.clone();
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let p = Path::new(&dir).join(crate::keys::PRIVATE_KEY_FILE);
            if p.exists() {
                return p;
            }
        }
        Path::new(crate::paths::KEY_DIR).join(crate::keys::PRIVATE_KEY_FILE)
    }
}

/// Client ids and host names: they end up in file names and S3 keys.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/msp/agent.yaml"), text)
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = parse("client_id: clinic-001\n").unwrap();
        assert_eq!(c.guard.cooldown_seconds, 300);
        assert_eq!(c.evidence_dir, PathBuf::from("/var/lib/msp/evidence"));
        assert_eq!(c.probes.disk.threshold_percent, 90);
        assert!(c.journal.enabled);
        assert_eq!(c.heartbeat.interval_seconds, 900);
        assert_eq!(c.provenance.current_system_link, PathBuf::from("/run/current-system"));
        assert!(c.drift.enabled && !c.drift.reapply);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("client_id: c\nguard:\n  cooldown_secs: 5\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("/etc/msp/agent.yaml:3:"), "{msg}");
        assert!(msg.contains("guard: unknown field `cooldown_secs`"), "{msg}");
    }

    #[test]
    fn wrong_type_names_file_line_and_key() {
        let err = parse("client_id: c\nprobes:\n  disk:\n    threshold_percent: lots\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("/etc/msp/agent.yaml:4:"), "{msg}");
        assert!(msg.contains("probes.disk.threshold_percent"), "{msg}");
    }

    #[test]
    fn semantic_errors_name_the_line() {
        let err = parse("client_id: c\napproved_runbooks:\n  RB-DISK-001: abc\n").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "/etc/msp/agent.yaml:3: approved_runbooks.RB-DISK-001: expected a SHA-256 in hex (64 characters)"
        );
        let err = parse("client_id: \"bad id; rm -rf /\"\n").unwrap_err();
        assert!(format!("{err:#}").starts_with("/etc/msp/agent.yaml:1: client_id:"), "{err:#}");
    }

    #[test]
    fn dedupe_window_and_runbook_parameters() {
        let c = parse("client_id: c\njournal:\n  dedupe_window_seconds: 3\nrunbook_parameters:\n  RB-CERT-001:\n    renew_unit: a.service\n").unwrap();
        assert_eq!(c.journal.dedupe_window_seconds, 3);
        assert_eq!(c.runbook_parameters["RB-CERT-001"]["renew_unit"], "a.service");
        assert_eq!(parse("client_id: c\n").unwrap().journal.dedupe_window_seconds, 60);
        let err = parse("client_id: c\njournal:\n  dedupe_window_seconds: 0\n").unwrap_err();
        assert!(format!("{err:#}").contains("journal.dedupe_window_seconds: must be at least 1"), "{err:#}");
    }

    #[test]
    fn advisor_section_defaults_off_and_is_checked() {
        assert_eq!(parse("client_id: c\n").unwrap().advisor.policy, AdvisorPolicy::Off);
        let c = parse("client_id: c\nadvisor:\n  policy: auto\n  url: http://127.0.0.1:8080/v1\n  confidence_threshold: 0.9\n").unwrap();
        assert_eq!(c.advisor.policy, AdvisorPolicy::Auto);
        let off = parse("client_id: c\nadvisor:\n  policy: off\n").unwrap();
        assert_eq!(off.advisor.policy, AdvisorPolicy::Off);
        let err = parse("client_id: c\nadvisor:\n  policy: suggest\n").unwrap_err();
        assert!(format!("{err:#}").contains("/etc/msp/agent.yaml:3: advisor.url: required"), "{err:#}");
        let err = parse("client_id: c\nadvisor:\n  url: http://x/v1\n  confidence_threshold: 1.5\n").unwrap_err();
        assert!(format!("{err:#}").contains("advisor.confidence_threshold"), "{err:#}");
        let err = parse("client_id: c\nadvisor:\n  api_key: sk-123\n").unwrap_err();
        assert!(format!("{err:#}").contains("unknown field `api_key`"), "{err:#}");
    }

    #[test]
    fn missing_client_id_is_an_error() {
        let err = parse("hostname: srv\n").unwrap_err();
        assert!(format!("{err:#}").contains("missing field `client_id`"), "{err:#}");
    }
}
