//! `fleet.yaml`: where the evidence is, where the index lives, who may log in, where alerts go.
//!
//! Strict: an unknown field is an error that names the file, line and field (serde_yaml_ng's
//! location), so a typo never silently turns a setting off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Where the agents' evidence is read from.
    pub source: SourceConfig,
    /// The SQLite index (disposable; rebuilt from the source).
    pub index: PathBuf,
    /// Clients, hosts and their public keys.
    pub inventory: PathBuf,
    /// The controls map; the baseline's embedded `controls-map.csv` when absent.
    #[serde(default)]
    pub controls_map: Option<PathBuf>,
    /// Signed-off exceptions (the baseline's `exceptions/` layout), optional.
    #[serde(default)]
    pub exceptions_dir: Option<PathBuf>,
    /// Address of the web UI and API; loopback by default.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Seconds between two polls of the source in `serve`.
    #[serde(default = "default_poll")]
    pub poll_interval_seconds: u64,
    /// Operator and client tokens.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Silence tiers and the webhook.
    #[serde(default)]
    pub alerts: AlertsConfig,
}

/// Exactly one of `s3` and `local`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The WORM bucket, read with read-only credentials.
    #[serde(default)]
    pub s3: Option<S3SourceConfig>,
    /// A directory with the bucket's layout (`PREFIX/CLIENT/HOST/YYYY/MM/FILE`).
    #[serde(default)]
    pub local: Option<PathBuf>,
    /// The key prefix the agents upload under (the agent's `worm.prefix`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

/// The bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3SourceConfig {
    /// `https://s3.REGION.amazonaws.com` or any S3-compatible endpoint.
    pub endpoint: String,
    /// SigV4 region.
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Credentials file, in the agent's worm credentials format (a systemd credential).
    pub credentials_file: PathBuf,
}

/// Who may log in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// One `SCOPE SHA256HEX` per line (`operator` or `client:ID`, hex SHA-256 of the token).
    /// Without it nobody can log in (the server still refuses every page but `/healthz`).
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
}

/// Silence detection and where its alerts go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// A file holding the webhook URL (a credential: URLs often embed a secret).
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Heartbeat intervals without new evidence before a `host_silent` warning.
    #[serde(default = "default_warn")]
    pub warn_after_intervals: u32,
    /// Heartbeat intervals without new evidence before a `host_silent` page.
    #[serde(default = "default_page")]
    pub page_after_intervals: u32,
    /// Share of a client's hosts silent together that raises a `client_silent` alert.
    #[serde(default = "default_share")]
    pub fleet_silent_share: f64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook_url_file: None,
            warn_after_intervals: default_warn(),
            page_after_intervals: default_page(),
            fleet_silent_share: default_share(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8427))
}
fn default_poll() -> u64 {
    300
}
fn default_prefix() -> String {
    "msp-evidence".to_string()
}
fn default_warn() -> u32 {
    2
}
fn default_page() -> u32 {
    4
}
fn default_share() -> f64 {
    0.5
}

impl FleetConfig {
    /// Reads and checks `path`; errors name the file, and the line and field where YAML says.
    pub fn load(path: &Path) -> Result<FleetConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading fleet config {}", path.display()))?;
        let cfg: FleetConfig = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{}: invalid fleet config", path.display()))?;
        cfg.check().with_context(|| format!("{}: invalid fleet config", path.display()))?;
        Ok(cfg)
    }

    /// Cross-field rules serde cannot express.
    pub fn check(&self) -> Result<()> {
        match (&self.source.s3, &self.source.local) {
            (Some(_), Some(_)) => bail!("source: set exactly one of `s3` and `local`, not both"),
            (None, None) => bail!("source: set one of `s3` (the bucket) or `local` (a mirror directory)"),
            _ => {}
        }
        let a = &self.alerts;
        if a.warn_after_intervals == 0 || a.page_after_intervals <= a.warn_after_intervals {
            bail!(
                "alerts: need 0 < warn_after_intervals < page_after_intervals (got {} and {})",
                a.warn_after_intervals,
                a.page_after_intervals
            );
        }
        if !(a.fleet_silent_share > 0.0 && a.fleet_silent_share <= 1.0) {
            bail!("alerts.fleet_silent_share: must be in (0, 1], got {}", a.fleet_silent_share);
        }
        if self.poll_interval_seconds == 0 {
            bail!("poll_interval_seconds: must be at least 1");
        }
        Ok(())
    }
}
