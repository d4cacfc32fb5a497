//! WORM storage: durable outbox, S3 Object Lock uploads, read-back, receipts.
//! SKELETON: bodies to be written.

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::exit::Exit;

/// `msp-agent worm ...`
#[derive(Debug, Subcommand)]
pub enum WormCmd {
    /// Upload the outbox now.
    Sync,
    /// Compare what the bucket holds for this host with the local chain.
    Verify,
}

impl WormCmd {
    pub fn run(self) -> Result<Exit> {
        bail!("worm commands are not implemented yet")
    }
}
