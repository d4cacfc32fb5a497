//! `msp-agent key ...`: generate, rotate and revoke evidence signing keys.
//!
//! The key formats and operations are the evidence contract's ([`msp_evidence::keys`], re-exported
//! here so `crate::keys::...` keeps working); this module is only the command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::Utc;
use clap::Subcommand;

pub use msp_evidence::keys::*;

use crate::exit::Exit;

/// `msp-agent key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create a new signing key and its public forms in DIR.
    Generate {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Replace the signing key in DIR, archiving the old public key with its validity window.
    Rotate {
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
    },
    /// Mark a key as compromised since TIME: its window ends at TIME, every bundle it signed
    /// after TIME is untrusted. Revoking the active key (the default) rotates first, so a new
    /// key keeps signing; the record is signed by that successor.
    Revoke {
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
        /// RFC 3339 time from which the key is suspected stolen (not in the future, not
        /// before the key's own `valid_from`).
        #[arg(long, value_name = "TIME")]
        compromised_since: String,
        /// The key to revoke (`SHA256:...`); default: the active key.
        #[arg(long, value_name = "ID")]
        key_id: Option<String>,
    },
}

impl KeyCmd {
    /// Run the key command.
    pub fn run(self) -> Result<Exit> {
        let now = Utc::now();
        match self {
            KeyCmd::Generate { out } => {
                let info = generate(&out, now)?;
                println!("generated {} in {}", info.key_id, out.display());
            }
            KeyCmd::Rotate { key_dir } => {
                let (old, new) = rotate(&key_dir, now)?;
                println!(
                    "rotated {}: archived {} (valid until {}), new key {}",
                    key_dir.display(),
                    old.key_id,
                    old.valid_until.as_deref().unwrap_or("?"),
                    new.key_id
                );
            }
            KeyCmd::Revoke { key_dir, compromised_since, key_id } => {
                let since = parse_time(&compromised_since)
                    .context("--compromised-since")?;
                let out = revoke(&key_dir, key_id.as_deref(), since, now)?;
                if let Some(new) = &out.rotated_to {
                    println!("rotated {}: new active key {}", key_dir.display(), new.key_id);
                }
                println!(
                    "revoked {}: compromised since {}; bundles it signed after that are untrusted \
                     (record {}, signed by {}). Restart the daemon now.",
                    out.record.key_id,
                    out.record.compromised_since,
                    out.record_path.display(),
                    out.record.signed_by
                );
            }
        }
        Ok(Exit::Ok)
    }
}

