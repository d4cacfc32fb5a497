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
    /// Log-in monitoring: break-glass use and failed log-in bursts.
    #[serde(default)]
    pub logins: LoginsConfig,
    /// Bound of each stdout/stderr excerpt in evidence, bytes; default and ceiling: the
    /// baseline's `phi.evidence_excerpt_max_bytes` (a larger value is refused at start).
    #[serde(default)]
    pub evidence_excerpt_max_bytes: Option<usize>,
    /// The LLM advisor the planner may consult when it is unsure (default: off).
    #[serde(default)]
    pub advisor: AdvisorConfig,
    /// Age limits of the active signing key (`keys.max_age_days`, `keys.end_of_life_days`).
    #[serde(default)]
    pub keys: KeysConfig,
    /// The file this configuration was read from (set by [`Config::load`]; the drift watcher
    /// governs it).
    #[serde(skip)]
    pub source_path: Option<PathBuf>,
}

/// `keys:` section: the age of the active evidence signing key (check `signing_key_age`,
/// [`crate::checks::key_age`]; no baseline rule, so not a packet claim).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Whether the daemon checks the key's age on each `probes.policy_interval_seconds` round.
    pub check_age: bool,
    /// Older than this: an alert and a signed `signing_key_old` incident (rotate).
    pub max_age_days: u32,
    /// Older than this (or past the key's `valid_until`): a signed `signing_key_end_of_life`
    /// incident, critical.
    pub end_of_life_days: u32,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig { check_age: true, max_age_days: 330, end_of_life_days: 365 }
    }
}

/// `heartbeat:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    /// Seconds between two heartbeat bundles (the first is written at start). Default and
    /// ceiling: the baseline's `incident.heartbeat_interval_minutes` (shorter is allowed,
    /// longer is refused at start); resolved by [`Config::check_policy`].
    pub interval_seconds: Option<u64>,
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

/// `logins:` section: log-in monitoring (§164.308(a)(5)(ii)(C)) and break-glass use
/// (§164.312(a)(2)(ii)). The account and the alert switch come from the baseline
/// (`access.break_glass_account`, `access.break_glass_login_alert`) through
/// [`Config::check_policy`]; set here they may only repeat the baseline, never weaken it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginsConfig {
    /// The break-glass account whose every log-in is a critical incident (default: the
    /// baseline's `access.break_glass_account`).
    pub break_glass_account: Option<String>,
    /// Raise `break_glass_login` incidents (default: the baseline's
    /// `access.break_glass_login_alert`; `false` is refused while the baseline says `true`).
    pub break_glass_alert: Option<bool>,
    /// Failed log-ins from one source address within `failure_window_seconds` that make one
    /// `login_failures` incident.
    pub failure_threshold: u32,
    /// The window for `failure_threshold`; a source quiet this long ends its burst.
    pub failure_window_seconds: u64,
}

impl Default for LoginsConfig {
    fn default() -> Self {
        LoginsConfig { break_glass_account: None, break_glass_alert: None, failure_threshold: 5, failure_window_seconds: 120 }
    }
}

impl LoginsConfig {
    /// The detector's rules for this section (after [`Config::check_policy`] filled the
    /// baseline's values; before it, the embedded baseline's defaults).
    pub fn rules(&self) -> crate::detect::logins::LoginRules {
        let account = self.break_glass_account.clone().unwrap_or_else(|| "msp-breakglass".into());
        crate::detect::logins::LoginRules {
            break_glass_account: self.break_glass_alert.unwrap_or(true).then_some(account),
            failure_threshold: self.failure_threshold,
            failure_window_secs: self.failure_window_seconds,
        }
    }
}

/// A POSIX-portable user name as useradd accepts it: 1-32 of `a-z 0-9 _ -`, not starting with `-`.
fn is_user_name(a: &str) -> bool {
    (1..=32).contains(&a.len())
        && a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
        && !a.starts_with('-')
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
    /// The baseline YAML the host was built with: the agent reads every value it enforces
    /// from it ([`crate::policy::AgentPolicy`]); when `sha256` is set too, the file must have
    /// that hash. Default: the baseline compiled into the binary.
    #[serde(default)]
    pub file: Option<PathBuf>,
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
    /// Seconds between rounds of the baseline checks below (clock, system age, backup age,
    /// TLS); they also run at start.
    pub policy_interval_seconds: u64,
    /// A check that stays violated raises its incident again after this many minutes (a
    /// change from holding to violated raises it at once).
    pub violation_repeat_minutes: u64,
    pub clock: ClockCheck,
    pub system_age: SystemAgeCheck,
    pub backup_age: BackupAgeCheck,
    pub tls: TlsCheck,
}

impl Default for ProbesConfig {
    fn default() -> Self {
        ProbesConfig {
            interval_seconds: 30,
            disk: DiskProbe::default(),
            cpu: CpuProbe::default(),
            certs: CertProbe::default(),
            restore_test: RestoreTestProbe::default(),
            policy_interval_seconds: 300,
            violation_repeat_minutes: 60,
            clock: ClockCheck::default(),
            system_age: SystemAgeCheck::default(),
            backup_age: BackupAgeCheck::default(),
            tls: TlsCheck::default(),
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
    /// The test is due this many days after the last one. Default and ceiling: the
    /// baseline's `backup.restore_test_interval_days`.
    pub interval_days: Option<u32>,
}

impl Default for RestoreTestProbe {
    fn default() -> Self {
        RestoreTestProbe { enabled: true, interval_days: None }
    }
}

/// `probes.clock`: offset from the time source (`time.max_drift_ms`, check `clock_drift`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockCheck {
    pub enabled: bool,
    /// `auto` (chrony when `chronyc` is installed, else timesyncd), `chrony` or `timesyncd`.
    pub source: crate::checks::clock::TimeSource,
    /// chronyc's command socket (`chronyc -h`), when not its default.
    pub chronyc_socket: Option<PathBuf>,
}

impl Default for ClockCheck {
    fn default() -> Self {
        ClockCheck { enabled: true, source: crate::checks::clock::TimeSource::Auto, chronyc_socket: None }
    }
}

/// `probes.system_age`: age of the running NixOS generation (`patching.max_system_age_days`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemAgeCheck {
    pub enabled: bool,
    /// Where the `system-N-link` generation links are.
    pub profiles_dir: PathBuf,
}

impl Default for SystemAgeCheck {
    fn default() -> Self {
        SystemAgeCheck { enabled: true, profiles_dir: PathBuf::from("/nix/var/nix/profiles") }
    }
}

/// `probes.backup_age`: time since each backup unit's last `backup_completed` record
/// (`backup.max_age_hours`, check `backup_age`, incident `backup_stale`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupAgeCheck {
    pub enabled: bool,
    /// The backup units that must succeed; empty: every unit with a `backup_completed` record.
    pub units: Vec<String>,
}

impl Default for BackupAgeCheck {
    fn default() -> Self {
        BackupAgeCheck { enabled: true, units: Vec::new() }
    }
}

/// `probes.tls`: local TLS endpoints that must refuse protocols below the baseline's
/// `encryption.tls_min_version` (check `tls_min_version`, incident `tls_outdated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsCheck {
    pub enabled: bool,
    /// `host:port` of each endpoint (e.g. `127.0.0.1:443`).
    pub endpoints: Vec<String>,
    /// Per-handshake timeout.
    pub timeout_seconds: u64,
}

impl Default for TlsCheck {
    fn default() -> Self {
        TlsCheck { enabled: true, endpoints: Vec::new(), timeout_seconds: 5 }
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
    /// The checks [`Config::parse`] applies; `at` maps a key path (`advisor.url`) to its
    /// `FILE:LINE`.
    pub fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<()> {
        if let Some(url) = &self.url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("{}: advisor.url: must be an http(s) URL", at("advisor.url"));
            }
        } else if self.policy != AdvisorPolicy::Off {
            bail!("{}: advisor.url: required when advisor.policy is not off", at("advisor.policy"));
        }
        if !(self.confidence_threshold > 0.0 && self.confidence_threshold <= 1.0) {
            bail!("{}: advisor.confidence_threshold: must be in (0, 1]", at("advisor.confidence_threshold"));
        }
        if !(1..=60).contains(&self.timeout_seconds) {
            bail!("{}: advisor.timeout_seconds: must be 1-60", at("advisor.timeout_seconds"));
        }
        if self.retries > 3 {
            bail!("{}: advisor.retries: at most 3", at("advisor.retries"));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            bail!("{}: advisor.temperature: must be 0-2", at("advisor.temperature"));
        }
        if !(16..=4096).contains(&self.max_tokens) {
            bail!("{}: advisor.max_tokens: must be 16-4096", at("advisor.max_tokens"));
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
        let l = &self.logins;
        if let Some(a) = &l.break_glass_account {
            if !is_user_name(a) {
                bail!("{}: logins.break_glass_account: {a:?} is not a user name (1-32 of a-z 0-9 _ -)", at("logins.break_glass_account"));
            }
        }
        for e in &self.probes.tls.endpoints {
            if !crate::checks::tls::valid_endpoint(e) {
                bail!("{}: probes.tls.endpoints: {e:?} is not host:port", at("probes.tls.endpoints"));
            }
        }
        for u in &self.probes.backup_age.units {
            if !crate::detect::unit_name::is_valid_unit_name(u) {
                bail!("{}: probes.backup_age.units: {u:?} is not a unit name", at("probes.backup_age.units"));
            }
        }
        self.advisor.validate(&at)?;
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
            ("probes.restore_test.interval_days", self.probes.restore_test.interval_days.map_or(7, u64::from), 1..=366),
            ("probes.policy_interval_seconds", self.probes.policy_interval_seconds, 1..=DAY),
            ("probes.violation_repeat_minutes", self.probes.violation_repeat_minutes, 0..=366 * 24 * 60),
            ("probes.tls.timeout_seconds", self.probes.tls.timeout_seconds, 0..=600),
            ("logins.failure_threshold", u64::from(self.logins.failure_threshold), 2..=1000),
            ("logins.failure_window_seconds", self.logins.failure_window_seconds, 1..=DAY),
            ("evidence_excerpt_max_bytes", self.evidence_excerpt_max_bytes.map_or(0, |n| n as u64), 0..=1 << 20),
            ("alert.retries", u64::from(self.alert.retries), 0..=20),
            ("alert.timeout_seconds", self.alert.timeout_seconds, 0..=600),
            ("heartbeat.interval_seconds", self.heartbeat.interval_seconds.unwrap_or(900), 1..=DAY),
            ("drift.settle_millis", self.drift.settle_millis, 0..=500),
            ("keys.max_age_days", u64::from(self.keys.max_age_days), 1..=3650),
            ("keys.end_of_life_days", u64::from(self.keys.end_of_life_days), 1..=3650),
        ]
    }

    /// Check this configuration against the baseline's agent rules and fill the values the
    /// baseline provides (heartbeat interval, restore-test interval, excerpt bound). A value
    /// that would weaken a rule is a configuration error naming the key and the rule (the
    /// daemon exits 2), never a silent downgrade.
    pub fn check_policy(&mut self, policy: &crate::policy::AgentPolicy) -> Result<()> {
        let text = self.source_path.as_deref().and_then(|p| crate::yamlutil::read_text(p).ok()).unwrap_or_default();
        let path = self.source_path.clone().unwrap_or_else(|| PathBuf::from("(configuration)"));
        // The file was scanned when it was loaded; a failure here only costs the line number.
        let lines = crate::yamlutil::scan(&text).unwrap_or_default();
        let at = |key: &str| lines.at(&path, key);
        let src = &policy.source;
        let hb_max = u64::from(policy.heartbeat_interval_minutes) * 60;
        match self.heartbeat.interval_seconds {
            Some(s) if s > hb_max => bail!(
                "{}: heartbeat.interval_seconds: {s} is longer than the baseline's incident.heartbeat_interval_minutes ({} min = {hb_max} s, {src}); it may be shorter, never longer",
                at("heartbeat.interval_seconds"), policy.heartbeat_interval_minutes
            ),
            Some(_) => {}
            None => self.heartbeat.interval_seconds = Some(hb_max),
        }
        match self.probes.restore_test.interval_days {
            Some(d) if d > policy.restore_test_interval_days => bail!(
                "{}: probes.restore_test.interval_days: {d} is longer than the baseline's backup.restore_test_interval_days ({}, {src})",
                at("probes.restore_test.interval_days"), policy.restore_test_interval_days
            ),
            Some(_) => {}
            None => self.probes.restore_test.interval_days = Some(policy.restore_test_interval_days),
        }
        match self.evidence_excerpt_max_bytes {
            Some(n) if n > policy.evidence_excerpt_max_bytes => bail!(
                "{}: evidence_excerpt_max_bytes: {n} is above the baseline's phi.evidence_excerpt_max_bytes ({}, {src})",
                at("evidence_excerpt_max_bytes"), policy.evidence_excerpt_max_bytes
            ),
            Some(_) => {}
            None => self.evidence_excerpt_max_bytes = Some(policy.evidence_excerpt_max_bytes),
        }
        if let Some(w) = &self.worm {
            if u64::from(w.retention_days) < u64::from(policy.worm_retention_days_min) {
                bail!(
                    "{}: worm.retention_days: {} is below the baseline's logging.evidence_worm_retention_days ({}, {src})",
                    at("worm.retention_days"), w.retention_days, policy.worm_retention_days_min
                );
            }
        }
        match &self.logins.break_glass_account {
            Some(a) if *a != policy.break_glass_account => bail!(
                "{}: logins.break_glass_account: {a:?} is not the baseline's access.break_glass_account ({:?}, {src}); change the baseline, not the agent",
                at("logins.break_glass_account"), policy.break_glass_account
            ),
            Some(_) => {}
            None => {
                if !is_user_name(&policy.break_glass_account) {
                    bail!("{src}: access.break_glass_account: {:?} is not a user name (1-32 of a-z 0-9 _ -)", policy.break_glass_account);
                }
                self.logins.break_glass_account = Some(policy.break_glass_account.clone());
            }
        }
        match self.logins.break_glass_alert {
            Some(false) if policy.break_glass_login_alert => bail!(
                "{}: logins.break_glass_alert: false, but the baseline's access.break_glass_login_alert is true ({src}); it may not be turned off here",
                at("logins.break_glass_alert")
            ),
            Some(_) => {}
            None => self.logins.break_glass_alert = Some(policy.break_glass_login_alert),
        }
        // Rules the agent implements one way only: a baseline asking for another is refused.
        if !policy.login_failure_alert {
            bail!("{src}: access.login_failure_alert: the agent always monitors failed log-ins, the baseline asks for false");
        }
        if policy.evidence_signing != crate::keys::ALGORITHM {
            bail!("{src}: logging.evidence_signing: the agent signs with {}, the baseline asks for {:?}", crate::keys::ALGORITHM, policy.evidence_signing);
        }
        if policy.phi_boundary != "metadata-only" {
            bail!("{src}: phi.boundary: the agent implements metadata-only, the baseline asks for {:?}", policy.phi_boundary);
        }
        Ok(())
    }

    /// The heartbeat interval after [`Config::check_policy`] (the baseline's before it).
    pub fn heartbeat_interval_seconds(&self) -> u64 {
        self.heartbeat.interval_seconds.unwrap_or(900)
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
        assert_eq!(c.heartbeat.interval_seconds, None);
        assert_eq!(c.probes.restore_test.interval_days, None);
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
    fn logins_defaults_and_bounds() {
        let policy = crate::policy::AgentPolicy::embedded().unwrap();
        let mut c = parse("client_id: c\n").unwrap();
        c.check_policy(&policy).unwrap();
        assert_eq!((c.logins.break_glass_account.as_deref(), c.logins.failure_threshold, c.logins.failure_window_seconds), (Some("msp-breakglass"), 5, 120));
        assert_eq!(c.logins.break_glass_alert, Some(true));
        // The baseline names the account and turns the alert on; the config cannot weaken either.
        let mut c = parse("client_id: c\nlogins:\n  break_glass_account: other\n").unwrap();
        let e = format!("{:#}", c.check_policy(&policy).unwrap_err());
        assert!(e.contains("logins.break_glass_account: \"other\" is not the baseline's access.break_glass_account"), "{e}");
        let mut c = parse("client_id: c\nlogins:\n  break_glass_alert: false\n").unwrap();
        let e = format!("{:#}", c.check_policy(&policy).unwrap_err());
        assert!(e.contains("logins.break_glass_alert: false, but the baseline's access.break_glass_login_alert is true"), "{e}");
        let err = parse("client_id: c\nlogins:\n  failure_threshold: 1\n").unwrap_err();
        assert!(format!("{err:#}").starts_with("/etc/msp/agent.yaml:3: logins.failure_threshold: 1 is outside the allowed range 2..=1000"), "{err:#}");
        let err = parse("client_id: c\nlogins:\n  break_glass_account: \"a b\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("logins.break_glass_account"), "{err:#}");
        assert_eq!(c.logins.rules().break_glass_account, None, "an explicit false (refused above) turns the detector rule off");
    }

    #[test]
    fn baseline_values_fill_the_defaults_and_bound_the_settings() {
        let policy = crate::policy::AgentPolicy::embedded().unwrap();
        let mut c = parse("client_id: c\n").unwrap();
        c.check_policy(&policy).unwrap();
        assert_eq!(c.heartbeat.interval_seconds, Some(900));
        assert_eq!(c.probes.restore_test.interval_days, Some(7));
        assert_eq!(c.evidence_excerpt_max_bytes, Some(2048));
        // Stricter than the baseline is allowed.
        let mut c = parse("client_id: c\nheartbeat:\n  interval_seconds: 60\nevidence_excerpt_max_bytes: 512\nprobes:\n  restore_test:\n    interval_days: 1\n").unwrap();
        c.check_policy(&policy).unwrap();
        assert_eq!((c.heartbeat.interval_seconds, c.evidence_excerpt_max_bytes), (Some(60), Some(512)));
        // Looser is not.
        let mut c = parse("client_id: c\nprobes:\n  restore_test:\n    interval_days: 8\n").unwrap();
        let e = format!("{:#}", c.check_policy(&policy).unwrap_err());
        assert!(e.contains("probes.restore_test.interval_days: 8 is longer than the baseline's backup.restore_test_interval_days (7"), "{e}");
        let e = parse("client_id: c\nprobes:\n  tls:\n    endpoints: [\"127.0.0.1:443; reboot\"]\n").unwrap_err();
        assert!(format!("{e:#}").starts_with("/etc/msp/agent.yaml:4: probes.tls.endpoints:"), "{e:#}");
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
