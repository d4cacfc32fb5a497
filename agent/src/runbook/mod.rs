//! Runbooks: the strict loader, parameter validation, success criteria and the executor.
//! SKELETON: bodies to be written.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::exit::Exit;

/// `msp-agent runbook ...`
#[derive(Debug, Subcommand)]
pub enum RunbookCmd {
    /// Check runbook files: strict schema, expressions, step ids.
    Lint {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run one runbook by hand (evidence `resolution_type: manual`).
    Run {
        /// Runbook id, e.g. RB-DISK-001.
        id: String,
        /// Parameter override, `name=value`; validated like any other parameter.
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        #[arg(long, value_name = "DIR", default_value = crate::paths::RUNBOOK_DIR)]
        runbooks: PathBuf,
        #[arg(long, value_name = "DIR", default_value = crate::paths::EVIDENCE_DIR)]
        evidence_dir: PathBuf,
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
    },
}

impl RunbookCmd {
    pub fn run(self) -> Result<Exit> {
        bail!("runbook commands are not implemented yet")
    }
}
