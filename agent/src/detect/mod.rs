//! Detection: journal entries and probe readings in, incidents out.
//! SKELETON: bodies to be written.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::exit::Exit;

/// `msp-agent detect`
#[derive(Debug, Args)]
pub struct DetectCmd {
    /// Journal files to read (as `journalctl --file`).
    #[arg(long = "journal-file", value_name = "FILE")]
    pub journal_files: Vec<PathBuf>,
    /// Journal directories to read (as `journalctl --directory`).
    #[arg(long = "journal-dir", value_name = "DIR")]
    pub journal_dirs: Vec<PathBuf>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

impl DetectCmd {
    pub fn run(self) -> Result<Exit> {
        bail!("detect is not implemented yet")
    }
}
