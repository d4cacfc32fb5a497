//! Prune records: the signed statement that a store's oldest bundles were removed locally
//! after the WORM bucket confirmed them (written by `msp-agent evidence prune`).
//!
//! They are part of the evidence contract because verification reads them: with a record whose
//! signature verifies, a chain may start after sequence 1, but it must reach back to the
//! record's first retained sequence, and the bundle there must link to the record's last
//! pruned SHA-256 ([`check_pruned_start`]). Anything else is deletion.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use crate::keyring::Keyring;
use crate::store::SIG_SUFFIX;

/// Directory of prune records inside the store root.
pub const PRUNED_DIR: &str = "pruned";
/// Prune record format version.
pub const PRUNE_RECORD_VERSION: u32 = 1;
/// The signed statement "the chain's history before `first_retained_sequence` was pruned
/// locally; it is in the WORM bucket".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRecord {
    pub prune_record_version: u32,
    pub client_id: String,
    pub hostname: String,
    /// The oldest sequence still kept locally.
    pub first_retained_sequence: u64,
    /// Its bundle id.
    pub first_retained_bundle: String,
    /// The newest pruned bundle id and its sequence.
    pub last_pruned_bundle: String,
    pub last_pruned_sequence: u64,
    /// SHA-256 of the newest pruned bundle's file (what the first retained bundle links to).
    pub last_pruned_sha256: String,
    /// Bundles pruned by this run.
    pub pruned_now: u64,
    pub pruned_at: DateTime<Utc>,
    pub local_retention_days: u32,
    /// Key id of the signing key.
    pub key_id: String,
    /// The store root the record was read from (not part of the signed record).
    #[serde(skip)]
    pub found_in: PathBuf,
}

fn companion(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The newest prune record in `root` whose file parses, with its path; `None` if there is none.
pub fn latest_record(root: &Path) -> Result<Option<(PathBuf, PruneRecord, Vec<u8>)>> {
    let dir = root.join(PRUNED_DIR);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut best: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(n) = name.strip_prefix("PR-").and_then(|r| r.strip_suffix(".json")).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        if best.as_ref().map(|(b, _)| n > *b).unwrap_or(true) {
            best = Some((n, e.path()));
        }
    }
    let Some((_, path)) = best else { return Ok(None) };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let rec: PruneRecord = serde_json::from_slice(&bytes).with_context(|| format!("parsing prune record {}", path.display()))?;
    Ok(Some((path, rec, bytes)))
}

/// Check a prune record's raw Ed25519 signature (`.sig`) with the key it names, inside that
/// key's window. The SSHSIG beside it is for the stock tools.
pub fn verify_record(path: &Path, rec: &PruneRecord, bytes: &[u8], keys: &Keyring) -> Result<(), String> {
    let sig_path = companion(path, SIG_SUFFIX);
    let sig = std::fs::read(&sig_path).map_err(|e| format!("{}: {e}", sig_path.display()))?;
    let sig = <[u8; 64]>::try_from(sig.as_slice()).map_err(|_| format!("{} is not a 64-byte signature", sig_path.display()))?;
    let key = keys.get(&rec.key_id).ok_or_else(|| format!("signed by key {} which is not trusted", rec.key_id))?;
    if !key.covers(rec.pruned_at) {
        return Err(format!("pruned_at {} is outside the validity window of key {}", rec.pruned_at, rec.key_id));
    }
    key.key
        .verify_strict(bytes, &Signature::from_bytes(&sig))
        .map_err(|_| "signature does not verify: record modified".to_string())
}

/// The start of a pruned chain, checked against the store's prune record. `first` is the
/// chain's lowest sequence with its bundle's `prev_bundle_sha256`, as read from the files.
/// Returns the problem to report, if any.
pub fn check_pruned_start(rec: &PruneRecord, first_seq: u64, first_prev: &str, first_name: &str) -> Option<String> {
    if first_seq > rec.first_retained_sequence {
        return Some(format!(
            "chain broken: the chain starts at sequence {first_seq} but the prune record keeps history from sequence {} ({}): bundles {} to {} deleted",
            rec.first_retained_sequence,
            rec.first_retained_bundle,
            rec.first_retained_sequence,
            first_seq - 1
        ));
    }
    if first_seq == rec.first_retained_sequence && first_prev != rec.last_pruned_sha256 {
        return Some(format!(
            "chain broken: {first_name} does not link to the last pruned bundle {} named by the prune record",
            rec.last_pruned_bundle
        ));
    }
    None
}

