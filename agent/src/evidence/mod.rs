//! Evidence bundles: the types ([`bundle`]), the write-once hash-chained store ([`store`]) and
//! verification ([`verify`]).
//! SKELETON: bodies to be written.

pub mod bundle;
pub mod store;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::exit::Exit;

/// `msp-agent evidence ...`
#[derive(Debug, Subcommand)]
pub enum EvidenceCmd {
    /// Check signatures, chain continuity, artifact and runbook hashes.
    Verify {
        /// Directory with the public keys (`allowed_signers`, archived keys).
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        keys: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Bundles or directories of bundles.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

impl EvidenceCmd {
    pub fn run(self) -> Result<Exit> {
        bail!("evidence verify is not implemented yet")
    }
}
