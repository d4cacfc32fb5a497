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
        let text = crate::yamlutil::read_text(path).context("reading the config")?;
        let mut config = Config::parse(path, &text)?;
        config.source_path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse and validate `text`; `path` is used in error messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let (config, lines): (Config, _) = crate::yamlutil::from_str_with_lines(path, text)?;
        config.validate(path, &lines)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, lines: &crate::yamlutil::KeyLines) -> Result<()> {
        let at = |key: &str| lines.at(path, key);
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
                let key = format!("approved_runbooks.{id}");
                bail!("{}: {key}: expected a SHA-256 in hex (64 characters)", at(&key));
            }
        }
        for (key, value, range) in self.bounded_numbers() {
            if !range.contains(&value) {
                bail!(
                    "{}: {key}: {value} is outside the allowed range {}..={}",
                    at(key),
                    range.start(),
                    range.end()
                );
            }
        }
        if let Some(url) = &self.alert.webhook_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("{}: alert.webhook_url: must be an http(s) URL", at("alert.webhook_url"));
            }
        }
        if let Some(b) = &self.baseline {
            if let Some(v) = &b.version {
                if !valid_version(v) {
                    bail!(
                        "{}: baseline.version: {v:?} must be a version like 1.0.0 (1-32 characters of 0-9 A-Z a-z . + -)",
                        at("baseline.version")
                    );
                }
            }
            if let Some(h) = &b.sha256 {
                if h.len() != 64 || !h.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                    bail!("{}: baseline.sha256: expected 64 lower-case hex digits (a SHA-256)", at("baseline.sha256"));
                }
            }
        }
        if let Some(w) = &self.worm {
            // The section's own checks name the key (`worm.retention_days: ...`); the line
            // comes from the first key of the section that the message names.
            if let Err(e) = w.validate() {
                let msg = format!("{e:#}");
                let key = msg.split(':').next().unwrap_or("worm");
                bail!("{}: {msg}", at(key));
            }
        }
        Ok(())
    }

    /// Every duration and count with the range it must lie in. The upper bounds keep every
    /// later computation (`Instant + Duration`, chrono arithmetic, backoff products) far from
    /// overflow: values near `u64::MAX` passed the old checks and then panicked the daemon (a
    /// crash loop) or the webhook thread.
    fn bounded_numbers(&self) -> Vec<(&'static str, u64, std::ops::RangeInclusive<u64>)> {
        const DAY: u64 = 86_400;
        vec![
            ("guard.cooldown_seconds", self.guard.cooldown_seconds, 0..=365 * DAY),
            ("guard.max_backoff_multiplier", u64::from(self.guard.max_backoff_multiplier), 1..=1024),
            ("max_concurrent_runbooks", self.max_concurrent_runbooks as u64, 1..=64),
            ("journal.dedupe_window_seconds", self.journal.dedupe_window_seconds, 1..=DAY),
            ("journal.down_record_after_seconds", self.journal.down_record_after_seconds, 0..=7 * DAY),
            ("probes.interval_seconds", self.probes.interval_seconds, 1..=DAY),
            ("probes.disk.threshold_percent", u64::from(self.probes.disk.threshold_percent), 1..=100),
            ("probes.cpu.threshold_percent", u64::from(self.probes.cpu.threshold_percent), 1..=100_000),
            ("probes.cpu.sustained_seconds", self.probes.cpu.sustained_seconds, 0..=DAY),
            ("probes.certs.warn_days", u64::from(self.probes.certs.warn_days), 0..=3650),
            ("probes.restore_test.interval_days", u64::from(self.probes.restore_test.interval_days), 1..=366),
            ("alert.retries", u64::from(self.alert.retries), 0..=20),
            ("alert.timeout_seconds", self.alert.timeout_seconds, 0..=600),
            ("heartbeat.interval_seconds", self.heartbeat.interval_seconds, 1..=DAY),
            ("drift.settle_millis", self.drift.settle_millis, 0..=500),
        ]
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

/// A version string that goes into heartbeats and bundles: short, and only characters a
/// version uses (`1.0.0`, `2026.05-rc1+nix`), so a hostile value cannot smuggle text in.
pub(crate) fn valid_version(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".+-".contains(&b))
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
        assert!(format!("{err:#}").contains("journal.dedupe_window_seconds: 0 is outside the allowed range 1..=86400"), "{err:#}");
    }

    #[test]
    fn missing_client_id_is_an_error() {
        let err = parse("hostname: srv\n").unwrap_err();
        assert!(format!("{err:#}").contains("missing field `client_id`"), "{err:#}");
    }
}
