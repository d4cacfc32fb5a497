//! WORM storage: durable outbox, S3 Object Lock uploads, read-back, receipts.
//!
//! * [`config`]: `WormConfig` (the `worm:` section of the agent config) and credentials.
//! * [`s3`]: a small blocking S3 client signed with SigV4.
//! * [`local`]: which bundles the local store holds, in chain order.
//! * [`outbox`]: the durable high-water mark and the retry backoff.
//! * [`sync`]: the uploader (`Uploader::sync_once`, `run_until_stopped` for the daemon).
//! * [`receipt`]: signed upload receipts.
//! * [`verify`]: compare the bucket with the local store.
//!
//! See `ARCHITECTURE.md`, "WORM storage", for the data flow and the invariants.

pub mod config;
pub mod local;
pub mod outbox;
pub mod receipt;
pub mod s3;
pub mod sync;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

pub use config::{Credentials, WormConfig};
pub use sync::{run_until_stopped, SyncReport, Uploader};

use crate::exit::Exit;

/// `msp-agent worm ...`
#[derive(Debug, Subcommand)]
pub enum WormCmd {
    /// Upload every pending bundle now (for operators and timers); exit 0 when all are
    /// confirmed, 2 with the S3 error otherwise.
    Sync {
        #[command(flatten)]
        conn: ConnArgs,
        /// Directory with the signing key (upload receipts are signed).
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
    },
    /// Compare what the bucket holds for this host with the local store: exit 0 if it
    /// matches, 1 naming missing, extra or differing objects.
    Verify {
        #[command(flatten)]
        conn: ConnArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Where the evidence is and which bucket to use. Flags override the `worm:` section of
/// `--config`; with `--bucket` no config file is needed. Credentials come from
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` unless the config names a
/// credentials file.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Agent config file with a `worm:` section (read only when given, or when no --bucket).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Evidence store root.
    #[arg(long, value_name = "DIR", default_value = crate::paths::EVIDENCE_DIR)]
    pub evidence_dir: PathBuf,
    /// State directory (the outbox lives in `worm/outbox.json` below it).
    #[arg(long, value_name = "DIR", default_value = crate::paths::STATE_DIR)]
    pub state_dir: PathBuf,
    /// S3 endpoint URL (default: AWS for the region).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Bucket (must have Object Lock enabled).
    #[arg(long, value_name = "B")]
    pub bucket: Option<String>,
    /// Signing region.
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Path-style addressing (most S3-compatible servers).
    #[arg(long)]
    pub path_style: bool,
    /// Object key prefix.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Client id in object keys (default: from the bundles).
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// Host name in object keys (default: from the bundles).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// COMPLIANCE retention in days (1-36500).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(
        config::MIN_RETENTION_DAYS as i64..=config::MAX_RETENTION_DAYS as i64))]
    pub retention_days: Option<u32>,
    /// AWS-style credentials file instead of the environment.
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
}

impl ConnArgs {
    /// The effective configuration: config file section (if any), then flags.
    pub fn config(&self) -> Result<WormConfig> {
        let file = match (&self.config, &self.bucket) {
            (Some(p), _) => Some(p.clone()),
            (None, None) => Some(PathBuf::from(crate::paths::CONFIG_FILE)),
            (None, Some(_)) => None,
        };
        let mut cfg = match &file {
            Some(p) => load_config_section(p)?,
            None => WormConfig::new(self.bucket.as_deref().unwrap_or_default()),
        };
        if let Some(v) = &self.bucket {
            cfg.bucket = v.clone();
        }
        if let Some(v) = &self.endpoint {
            cfg.endpoint = v.clone();
        }
        if let Some(v) = &self.region {
            cfg.region = v.clone();
        }
        if self.path_style {
            cfg.path_style = true;
        }
        if let Some(v) = &self.prefix {
            cfg.prefix = v.clone();
        }
        if let Some(v) = &self.client {
            cfg.client_id = v.clone();
        }
        if let Some(v) = &self.host {
            cfg.host = v.clone();
        }
        if let Some(v) = self.retention_days {
            cfg.retention_days = v;
        }
        if let Some(v) = &self.credentials_file {
            cfg.credentials_file = Some(v.clone());
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Read the `worm:` section of an agent config file (other sections are other modules').
pub fn load_config_section(path: &Path) -> Result<WormConfig> {
    let text = crate::yamlutil::read_text(path).context("(or pass --bucket and --endpoint)")?;
    let doc: serde_yaml_ng::Value = crate::yamlutil::from_str(path, &text)?;
    let Some(section) = doc.get("worm") else {
        bail!("{}: no `worm:` section", path.display());
    };
    serde_yaml_ng::from_value(section.clone())
        .with_context(|| format!("{}: section worm", path.display()))
}

impl WormCmd {
    /// Run `worm sync` or `worm verify`.
    pub fn run(self) -> Result<Exit> {
        match self {
            WormCmd::Sync { conn, key_dir } => {
                let cfg = conn.config()?;
                let creds = Credentials::load(&cfg)?;
                let signer = crate::keys::Signer::load(&key_dir)?;
                let mut up = Uploader::new(
                    cfg,
                    creds,
                    &conn.evidence_dir,
                    &conn.state_dir,
                    Arc::new(signer),
                )?;
                let r = up.sync_once()?;
                println!(
                    "worm sync: {} confirmed ({} objects put, {} found already uploaded), {} pending",
                    r.confirmed.len(),
                    r.objects_put,
                    r.objects_found,
                    r.pending
                );
                if let Some(e) = r.error {
                    let since = r
                        .failing_since
                        .map(|t| format!(" (failing since {t})"))
                        .unwrap_or_default();
                    bail!("{e}{since}");
                }
                Ok(Exit::Ok)
            }
            WormCmd::Verify { conn, json } => {
                let cfg = conn.config()?;
                let creds = Credentials::load(&cfg)?;
                let client = s3::S3Client::new(&cfg, creds)?;
                sync::check_bucket(&client, &cfg)?;
                let r = verify::verify(&client, &cfg, &conn.evidence_dir, &conn.state_dir)?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&r).context("serialising the report")?
                    );
                } else {
                    for (what, list) in [
                        ("missing", &r.missing),
                        ("extra", &r.extra),
                        ("differing", &r.differing),
                        ("pending", &r.pending),
                    ] {
                        for k in list {
                            println!("{what}: {k}");
                        }
                    }
                    println!(
                        "worm verify: {} objects checked, {} missing, {} extra, {} differing, {} pending upload",
                        r.checked,
                        r.missing.len(),
                        r.extra.len(),
                        r.differing.len(),
                        r.pending.len()
                    );
                }
                Ok(if r.ok() { Exit::Ok } else { Exit::CheckFailed })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_section_is_read_and_unknown_keys_are_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("agent.yaml");
        std::fs::write(&p, "journal: {}\nworm:\n  bucket: evidence\n  endpoint: http://127.0.0.1:9000\n  path_style: true\n  retention_days: 10\n").unwrap();
        let c = load_config_section(&p).unwrap();
        assert_eq!(
            (c.bucket.as_str(), c.retention_days, c.path_style),
            ("evidence", 10, true)
        );
        std::fs::write(&p, "worm:\n  bucket: evidence\n  retain_days: 10\n").unwrap();
        let e = format!("{:#}", load_config_section(&p).unwrap_err());
        assert!(
            e.contains("agent.yaml") && e.contains("section worm") && e.contains("retain_days"),
            "{e}"
        );
        std::fs::write(&p, "journal: {}\n").unwrap();
        assert!(
            format!("{:#}", load_config_section(&p).unwrap_err()).contains("no `worm:` section")
        );
    }
}
