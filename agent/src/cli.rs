//! Command-line definitions. Each command group's arguments live in the module that owns the
//! concern (`keys`, `evidence`, `runbook`, ...); this file only lists them.

use clap::{Parser, Subcommand};

use crate::exit::Exit;

/// HIPAA compliance agent for clinic servers.
#[derive(Debug, Parser)]
#[command(name = "msp-agent", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands (DESIGN.md 3, "CLI").
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: follow the journal, run probes, remediate, record evidence.
    Run(crate::daemon::RunCmd),
    /// The main job on embedded defaults: keys, runbooks, a run by hand, stock-tool verification.
    Demo(crate::demo::DemoCmd),
    /// Evidence signing keys: generate, rotate.
    #[command(subcommand)]
    Key(crate::keys::KeyCmd),
    /// Evidence bundles: verify signatures, chain, artifacts and runbook hashes.
    #[command(subcommand)]
    Evidence(crate::evidence::EvidenceCmd),
    /// Runbooks: lint, run one by hand.
    #[command(subcommand)]
    Runbook(crate::runbook::RunbookCmd),
    /// Show what the agent would do with a journal: one line per incident, nothing executed.
    Detect(crate::detect::DetectCmd),
    /// Show which runbook an incident (a `detect --json` line) would get and why; nothing is
    /// executed. `--advisor URL` consults an LLM advisor when planning is unsure.
    Plan(crate::plan::PlanCmd),
    /// HIPAA baseline: consistency check, render the Nix data.
    #[command(subcommand)]
    Baseline(crate::baseline::BaselineCmd),
    /// Monthly compliance packet: HTML, PDF and a signed manifest of the month's evidence.
    Packet(crate::packet::PacketCmd),
    /// WORM storage: upload the outbox to S3 Object Lock, verify what the bucket holds.
    #[command(subcommand)]
    Worm(crate::worm::WormCmd),
}

impl Command {
    /// Run the command. `Ok` carries the verdict; `Err` is a usage, configuration or I/O error.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self {
            Command::Run(c) => c.run(),
            Command::Demo(c) => c.run(),
            Command::Key(c) => c.run(),
            Command::Evidence(c) => c.run(),
            Command::Runbook(c) => c.run(),
            Command::Detect(c) => c.run(),
            Command::Plan(c) => c.run(),
            Command::Baseline(c) => c.run(),
            Command::Worm(c) => c.run(),
            Command::Packet(c) => c.run(),
        }
    }
}

/// Log to the journal (native protocol, structured fields) when stderr is connected to it —
/// systemd sets `JOURNAL_STREAM` to stderr's device and inode for its services —, else to
/// stderr. `RUST_LOG` wins over `-v`.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("msp-agent".into()))
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `JOURNAL_STREAM` names stderr's device and inode (systemd.exec(5)).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else { return false };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else { return false };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}
