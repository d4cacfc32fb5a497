//! The local evidence store: `ROOT/YYYY/MM/EB-YYYYMMDD-NNNN.json` plus `.sig`, `.sshsig` and
//! an `.artifacts/` directory, written once, hash-chained.
//! SKELETON: the API below is the contract other modules code against; bodies to be written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};

use super::bundle::{Action, ExecutionSection, IncidentSection, Outputs, Provenance, RunbookSection};
use crate::keys::Signer;

/// Everything a bundle says except what the store assigns (id, chain, signing, artifacts'
/// hashes, generated_at).
#[derive(Debug, Clone)]
pub struct NewBundle {
    pub client_id: String,
    pub hostname: String,
    pub incident: IncidentSection,
    pub runbook: RunbookSection,
    pub execution: ExecutionSection,
    pub actions_taken: Vec<Action>,
    pub rollback: Vec<Action>,
    pub verification: serde_json::Value,
    pub outputs: Outputs,
    pub provenance: Provenance,
    /// Files to store beside the bundle (from `$MSP_ARTIFACTS`); copied, hashed, listed.
    pub artifact_files: Vec<PathBuf>,
}

/// What [`EvidenceStore::append`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub bundle_id: String,
    pub path: PathBuf,
    pub sequence: u64,
    /// SHA-256 (hex) of the bundle file's bytes.
    pub sha256: String,
}

/// The store. One writer at a time per root (enforced with a lock file).
pub struct EvidenceStore {
    _root: PathBuf,
}

impl EvidenceStore {
    /// Open (creating if needed) the store at `root`, finding the chain's head.
    pub fn open(root: &Path) -> Result<EvidenceStore> {
        bail!("evidence store at {} is not implemented yet", root.display())
    }
    /// Assign id, sequence and previous hash, store artifacts, sign, write durably.
    pub fn append(&mut self, _new: NewBundle, _signer: &Signer, _now: DateTime<Utc>) -> Result<Written> {
        bail!("not implemented yet")
    }
}
