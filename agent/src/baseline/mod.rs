//! The HIPAA baseline: strict loading, consistency check, rendering to Nix data.
//! SKELETON: bodies to be written.

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::exit::Exit;

/// `msp-agent baseline ...`
#[derive(Debug, Subcommand)]
pub enum BaselineCmd {
    /// Check baseline, controls map and exceptions for consistency and expiry.
    Check,
    /// Render the Nix data and the drift manifest.
    Render,
}

impl BaselineCmd {
    pub fn run(self) -> Result<Exit> {
        bail!("baseline commands are not implemented yet")
    }
}
