//! WORM configuration (`worm:` section of the agent config, or `worm sync` flags) and
//! credentials.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Default retention of uploaded objects: 2555 days (7 years), the usual HIPAA documentation
/// retention (§164.316(b)(2)(i) asks for 6 years; 7 covers a year of audit lag).
pub const DEFAULT_RETENTION_DAYS: u32 = 2555;
/// Shortest retention `worm.retention_days` / `--retention-days` accept.
pub const MIN_RETENTION_DAYS: u64 = 1;
/// Longest retention accepted: 100 years (S3 itself stops at 100 years of retention too).
pub const MAX_RETENTION_DAYS: u64 = 36_500;
/// Default: alert when uploads have failed for an hour.
pub const DEFAULT_OUTAGE_ALERT_AFTER_SECONDS: u64 = 3600;
/// Default object key prefix.
pub const DEFAULT_PREFIX: &str = "msp-evidence";

/// Where and how evidence is uploaded. Every key is documented in `ARCHITECTURE.md`
/// ("WORM storage", Config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WormConfig {
    /// S3 endpoint URL, e.g. `https://s3.eu-central-1.amazonaws.com` or `http://127.0.0.1:9000`.
    /// Empty means AWS: `https://s3.<region>.amazonaws.com`.
    #[serde(default)]
    pub endpoint: String,
    /// Bucket name; the bucket must have Object Lock (and therefore versioning) enabled.
    pub bucket: String,
    /// Signing region (`us-east-1` for most S3-compatible servers).
    #[serde(default = "default_region")]
    pub region: String,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`) instead of virtual-host style
    /// (`BUCKET.ENDPOINT/KEY`). Most S3-compatible servers need it.
    #[serde(default)]
    pub path_style: bool,
    /// First component of every object key: `PREFIX/CLIENT/HOST/YYYY/MM/FILE`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// COMPLIANCE retention in days from the upload time.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// AWS-style credentials file (`[default]` with `aws_access_key_id`,
    /// `aws_secret_access_key`, optional `aws_session_token`). Unset: the `AWS_*` environment
    /// variables. The NixOS module passes it as a systemd credential.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Client (clinic) identifier used in object keys. Empty: taken from each bundle's `client_id`.
    #[serde(default)]
    pub client_id: String,
    /// Host name used in object keys. Empty: taken from each bundle's `hostname`.
    #[serde(default)]
    pub host: String,
    /// Uploads failing for longer than this raise an alert (see `SyncReport::alert`).
    #[serde(default = "default_outage_alert")]
    pub outage_alert_after_seconds: u64,
    /// Per-request timeout in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_seconds: u64,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_prefix() -> String {
    DEFAULT_PREFIX.into()
}
fn default_retention_days() -> u32 {
    DEFAULT_RETENTION_DAYS
}
fn default_outage_alert() -> u64 {
    DEFAULT_OUTAGE_ALERT_AFTER_SECONDS
}
fn default_timeout() -> u64 {
    30
}

impl WormConfig {
    /// A configuration with defaults for everything but the bucket.
    pub fn new(bucket: &str) -> WormConfig {
        WormConfig {
            endpoint: String::new(),
            bucket: bucket.to_string(),
            region: default_region(),
            path_style: false,
            prefix: default_prefix(),
            retention_days: DEFAULT_RETENTION_DAYS,
            credentials_file: None,
            client_id: String::new(),
            host: String::new(),
            outage_alert_after_seconds: DEFAULT_OUTAGE_ALERT_AFTER_SECONDS,
            request_timeout_seconds: default_timeout(),
        }
    }

    /// Reject values that cannot work, naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.bucket.is_empty() {
            bail!("worm.bucket: must not be empty");
        }
        if !self
            .bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            bail!(
                "worm.bucket: {:?} is not a valid S3 bucket name",
                self.bucket
            );
        }
        let scheme_ok =
            self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://");
        if !(self.endpoint.is_empty() || scheme_ok) {
            bail!(
                "worm.endpoint: {:?} must start with http:// or https://",
                self.endpoint
            );
        }
        if self.region.is_empty() {
            bail!("worm.region: must not be empty");
        }
        // Upper bounds keep `now + retention` inside chrono's calendar (99,999,999 days
        // panicked) and the timeouts inside what `Instant` arithmetic can hold.
        for (key, value, range) in [
            ("retention_days", u64::from(self.retention_days), MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS),
            ("outage_alert_after_seconds", self.outage_alert_after_seconds, 0..=365 * 86_400),
            ("request_timeout_seconds", self.request_timeout_seconds, 0..=3600),
        ] {
            if !range.contains(&value) {
                bail!(
                    "worm.{key}: {value} is outside the allowed range {}..={}",
                    range.start(),
                    range.end()
                );
            }
        }
        for (name, v) in [
            ("prefix", &self.prefix),
            ("client_id", &self.client_id),
            ("host", &self.host),
        ] {
            check_key_part(v).with_context(|| format!("worm.{name}"))?;
        }
        Ok(())
    }

    /// The endpoint with AWS's default filled in, without a trailing slash.
    pub fn endpoint_url(&self) -> String {
        if self.endpoint.is_empty() {
            format!("https://s3.{}.amazonaws.com", self.region)
        } else {
            self.endpoint.trim_end_matches('/').to_string()
        }
    }
}

/// Object key components must be plain: no `/` inside (except in the prefix), no `..`, no
/// control characters. Hostile values could otherwise write outside this host's prefix.
pub(crate) fn check_key_part(v: &str) -> Result<()> {
    if v.split('/').any(|seg| seg == ".." || seg == ".")
        || v.chars().any(|c| c.is_control() || c == '\\')
    {
        bail!("{v:?} is not allowed in an object key (no '.', '..', control characters or backslashes)");
    }
    Ok(())
}

pub use msp_evidence::s3::Credentials;

impl WormConfig {
    /// The credentials: from `worm.credentials_file` if set, otherwise from the environment.
    pub fn credentials(&self) -> Result<Credentials> {
        match &self.credentials_file {
            Some(p) => Credentials::from_file(p),
            None => Credentials::from_env(),
        }
    }

    /// The bucket connection the S3 client needs, after [`WormConfig::validate`].
    pub fn s3_endpoint(&self) -> Result<msp_evidence::s3::Endpoint> {
        self.validate()?;
        Ok(msp_evidence::s3::Endpoint {
            url: self.endpoint_url(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            request_timeout_seconds: self.request_timeout_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: WormConfig = serde_yaml_ng::from_str("bucket: evidence-bucket\n").unwrap();
        assert_eq!(c.retention_days, 2555);
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.endpoint_url(), "https://s3.us-east-1.amazonaws.com");
        c.validate().unwrap();
        let err = serde_yaml_ng::from_str::<WormConfig>("bucket: b\nretention: 3\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `retention`"),
            "{err}"
        );
    }

    #[test]
    fn validate_names_the_key() {
        let mut c = WormConfig::new("evidence");
        c.host = "../other".into();
        let err = format!("{:#}", c.validate().unwrap_err());
        assert!(err.contains("worm.host"), "{err}");
        let mut c = WormConfig::new("Bad_Bucket");
        c.endpoint = "http://127.0.0.1:1".into();
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("worm.bucket"));
    }

    #[test]
    fn credentials_file_sections() {
        let c = Credentials::parse("[default]\naws_access_key_id = AK\naws_secret_access_key=SK\n")
            .unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AK", "SK")
        );
        assert!(c.session_token.is_none());
        let c = Credentials::parse(
            "aws_access_key_id=A\naws_secret_access_key=S\naws_session_token=T\n",
        )
        .unwrap();
        assert_eq!(c.session_token.as_deref(), Some("T"));
        let err = Credentials::parse("[default]\naws_access_key_id=A\n").unwrap_err();
        assert!(format!("{err:#}").contains("aws_secret_access_key"));
        let err = Credentials::parse("[default]\nnonsense\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"));
        let c = Credentials::parse("aws_access_key_id=AKID\naws_secret_access_key=TOPSECRET\n")
            .unwrap();
        assert!(!format!("{c:?}").contains("TOPSECRET"));
    }
}
