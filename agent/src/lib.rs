//! `msp-agent`: the HIPAA compliance agent that runs on every clinic server.
//!
//! The data flow (see `ARCHITECTURE.md` at the repository root for the full map):
//! journald and probes → [`detect`] → [`incident`] → runbook plan → guard →
//! [`runbook`] execution → [`evidence`] bundle, signed with [`keys`] → local store →
//! [`worm`] upload. The [`baseline`] module checks and renders the HIPAA baseline that the
//! NixOS modules enforce.
//!
//! Every module here owns one concern; the binary (`main.rs`) only parses the command line
//! ([`cli`]) and maps results onto the exit codes in [`exit`].

pub mod advisor;
pub mod alert;
pub mod baseline;
pub mod checks;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod cli;
pub mod detect;
pub mod drift;
pub mod evidence;
pub mod exit;
pub mod glob;
pub mod guard;
pub mod incident;
pub mod journal;
pub mod keys;
pub mod packet;
pub mod paths;
pub mod plan;
pub mod policy;
pub mod runbook;
pub mod scrub;
pub mod worm;

// Shared with the fleet view through the evidence contract crate.
pub use msp_evidence::{fsutil, yamlutil};

/// The agent's version, recorded in every evidence bundle's `provenance.agent_version`.
pub const AGENT_VERSION: &str = msp_evidence::VERSION;
