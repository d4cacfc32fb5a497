//! The command line. Each subcommand lives in its own module; this file only parses and
//! maps results onto exit codes (0 good, 1 something to look at, 2 could not run).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::FleetConfig;

/// `msp-fleet`: the MSP's view of every clinic, from the signed evidence in S3.
#[derive(Debug, Parser)]
#[command(name = "msp-fleet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a fleet config (and the files it names) without starting anything: exit 0 if
    /// it is valid, 2 with the file, line and field otherwise.
    CheckConfig {
        /// `fleet.yaml`.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { config } => FleetConfig::load(&config).map(|_| {
            println!("{}: ok", config.display());
            ExitCode::SUCCESS
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("msp-fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}
