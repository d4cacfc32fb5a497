//! Upload receipts: a signed record, written once, saying that every object of a bundle was
//! uploaded and read back under COMPLIANCE retention.
//!
//! Receipts live in `EVIDENCE_ROOT/receipts/YYYY/MM/EB-YYYYMMDD-NNNN.receipt.json` with the
//! same two signatures as bundles (`.sig` raw Ed25519, `.sshsig` SSHSIG namespace
//! `msp-evidence`). They are outside the bundle chain on purpose: a receipt is not itself
//! uploaded as evidence, so there is no receipt-of-a-receipt loop, and bundles are never
//! rewritten to add what was learned later.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::local::LocalBundle;
use crate::fsutil;
use crate::keys::Signer;

/// Receipt format version.
pub const RECEIPT_VERSION: u32 = 1;

/// One uploaded object as read back from the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptObject {
    /// File name relative to the bundle's `YYYY/MM` directory.
    pub file: String,
    /// Object key in the bucket.
    pub key: String,
    /// Version id the bucket assigned (empty if the server returned none).
    pub version_id: String,
    pub size_bytes: u64,
    /// SHA-256 (hex) of the local file, equal to the object's checksum.
    pub sha256: String,
    /// Retain-until the bucket reported on read-back.
    pub retain_until: DateTime<Utc>,
}

/// The receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub receipt_version: u32,
    pub bundle_id: String,
    /// SHA-256 (hex) of the bundle file's bytes, as in the next bundle's `prev_bundle_sha256`.
    pub bundle_sha256: String,
    pub endpoint: String,
    pub bucket: String,
    /// Always `COMPLIANCE`.
    pub lock_mode: String,
    /// The earliest retain-until among the objects.
    pub retain_until: DateTime<Utc>,
    pub confirmed_at: DateTime<Utc>,
    pub objects: Vec<ReceiptObject>,
    /// How the upload was confirmed (for the auditor reading the receipt).
    pub verification: String,
    pub signing: ReceiptSigning,
}

/// Which key signed the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptSigning {
    pub key_id: String,
    pub algorithm: String,
}

/// Where the receipt of `bundle` lives.
pub fn receipt_path(evidence_root: &Path, bundle: &LocalBundle) -> PathBuf {
    evidence_root
        .join("receipts")
        .join(&bundle.year)
        .join(&bundle.month)
        .join(format!("{}.receipt.json", bundle.id))
}

/// Read the receipt of `bundle` if one was written (a crash between writing it and saving
/// the outbox state leaves one behind).
pub fn read(evidence_root: &Path, bundle: &LocalBundle) -> Result<Option<Receipt>> {
    let p = receipt_path(evidence_root, bundle);
    let Some(bytes) = fsutil::read_regular_opt(&p, fsutil::limits::RECEIPT)? else {
        return Ok(None);
    };
    let r =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing receipt {}", p.display()))?;
    Ok(Some(r))
}

/// Sign and write the receipt once. If the receipt file already exists it is kept as it is
/// and only missing signature files are added.
pub fn write(
    evidence_root: &Path,
    bundle: &LocalBundle,
    receipt: &Receipt,
    signer: &Signer,
) -> Result<PathBuf> {
    let path = receipt_path(evidence_root, bundle);
    let dir = path.parent().context("receipt path has no directory")?;
    fsutil::create_dir_all(dir, 0o755)?;
    let bytes = if path.exists() {
        fsutil::read_regular(&path, fsutil::limits::RECEIPT)?
    } else {
        let mut b = serde_json::to_vec_pretty(receipt).context("serialising receipt")?;
        b.push(b'\n');
        fsutil::write_once(&path, &b, 0o644)?;
        b
    };
    let sig = with_suffix(&path, ".sig");
    if !sig.exists() {
        fsutil::write_once(&sig, &signer.sign_raw(&bytes), 0o644)?;
    }
    let sshsig = with_suffix(&path, ".sshsig");
    if !sshsig.exists() {
        let armored = signer
            .sign_sshsig(&bytes)
            .context("SSH-signing the receipt")?;
        fsutil::write_once(&sshsig, armored.as_bytes(), 0o644)?;
    }
    Ok(path)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
