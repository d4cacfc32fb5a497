//! The public keys `evidence verify` trusts: the current key and every archived key of a key
//! directory, each with its validity window (see [`crate::keys`]), and the signed revocation
//! records of `revocations/` (`key revoke`), checked against the archive both ways: a record
//! whose signature does not verify with another key of the ring, a revoked key whose info
//! does not say so (the revocation edited away), or an info claiming a revocation no record
//! backs, makes [`Keyring::load`] fail naming the file.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use ssh_key::PublicKey;

use crate::keys::{self, KeyInfo};

/// One trusted key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub info: KeyInfo,
    pub key: VerifyingKey,
    pub valid_from: DateTime<Utc>,
    /// `None`: the current key, open-ended.
    pub valid_until: Option<DateTime<Utc>>,
    /// Set for a revoked key: anything it signed after this second is untrusted.
    pub compromised_since: Option<DateTime<Utc>>,
}

impl TrustedKey {
    /// Whether `t` is inside the key's window (inclusive at both ends, like `ssh-keygen`).
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        t >= self.valid_from && self.valid_until.is_none_or(|u| t <= u)
    }
}

/// Keys by `key_id`.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    pub keys: HashMap<String, TrustedKey>,
}

impl Keyring {
    /// Read `key-info.json` and `archive/*.json` from a key directory. Each info's
    /// `public_key` must hash to its `key_id`.
    pub fn load(dir: &Path) -> Result<Keyring> {
        let current = keys::read_key_info(&dir.join(keys::KEY_INFO_FILE))?;
        let mut ring = Keyring::default();
        for info in keys::read_archive(dir)?
            .into_iter()
            .chain(std::iter::once(current))
        {
            let key = public_key_of(&info)?;
            let valid_from = info.valid_from_time()?;
            let valid_until = info.valid_until_time()?;
            let compromised_since = info
                .compromised_since
                .as_deref()
                .map(|c| DateTime::parse_from_rfc3339(c).map(|t| t.with_timezone(&Utc)))
                .transpose()
                .with_context(|| format!("key {}: compromised_since", info.key_id))?;
            ring.keys.insert(
                info.key_id.clone(),
                TrustedKey {
                    info,
                    key,
                    valid_from,
                    valid_until,
                    compromised_since,
                },
            );
        }
        // Any failure here is the key directory's integrity, not a usage error.
        ring.check_revocations(dir).map_err(|e| revocation_problem(format!("{e:#}")))?;
        Ok(ring)
    }

    /// Check every `revocations/REV-*.json` (signature by another key of the ring, covering
    /// its `revoked_at`) against the revoked key's info, and that every info with
    /// `compromised_since` has its record.
    fn check_revocations(&self, dir: &Path) -> Result<()> {
        let rdir = dir.join(keys::REVOCATIONS_DIR);
        let mut seen = Vec::new();
        let rd = match std::fs::read_dir(&rdir) {
            Ok(rd) => Some(rd),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", rdir.display())),
        };
        for entry in rd.into_iter().flatten() {
            let entry = entry.with_context(|| format!("reading {}", rdir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") || name.starts_with(crate::fsutil::TMP_PREFIX) {
                continue;
            }
            let path = entry.path();
            let r = keys::read_revocation(&path)?;
            if path != keys::revocation_path(dir, &r.key_id) {
                bail!("{}: names key {}, whose record is {}", path.display(), r.key_id, keys::revocation_path(dir, &r.key_id).display());
            }
            let bytes = crate::fsutil::read_regular(&path, crate::fsutil::limits::SMALL)?;
            let sig_path = dir.join(keys::REVOCATIONS_DIR).join(format!("{name}.sig"));
            let sig = crate::fsutil::read_regular(&sig_path, crate::fsutil::limits::SMALL)
                .with_context(|| format!("{}: the revocation's signature", path.display()))?;
            let Some(signer) = self.get(&r.signed_by).filter(|_| r.signed_by != r.key_id) else {
                bail!("{}: signed_by {} is not another key of this key directory", path.display(), r.signed_by);
            };
            let sig = ed25519_dalek::Signature::from_slice(&sig)
                .with_context(|| format!("{}: not a 64-byte Ed25519 signature", sig_path.display()))?;
            if signer.key.verify_strict(&bytes, &sig).is_err() {
                bail!("{}: signature does not verify with key {}: the revocation record was modified", path.display(), r.signed_by);
            }
            let revoked_at = DateTime::parse_from_rfc3339(&r.revoked_at)
                .with_context(|| format!("{}: revoked_at", path.display()))?
                .with_timezone(&Utc);
            if !signer.covers(revoked_at) {
                bail!("{}: signed by {} at {}, outside that key's window", path.display(), r.signed_by, r.revoked_at);
            }
            let since = DateTime::parse_from_rfc3339(&r.compromised_since)
                .with_context(|| format!("{}: compromised_since", path.display()))?
                .with_timezone(&Utc);
            let Some(k) = self.get(&r.key_id) else {
                bail!("{}: revokes key {}, which is not in this key directory", path.display(), r.key_id);
            };
            let ends_by_then = k.valid_until.is_some_and(|u| u <= since);
            if k.compromised_since != Some(since) || !ends_by_then {
                bail!(
                    "{}: key {} is revoked since {}, but its key info says compromised_since {} and valid_until {}: the revocation was edited away or not completed (run `msp-agent key revoke --key-id {} --compromised-since {}` again)",
                    path.display(),
                    r.key_id,
                    r.compromised_since,
                    k.info.compromised_since.as_deref().unwrap_or("none"),
                    k.info.valid_until.as_deref().unwrap_or("none"),
                    r.key_id,
                    r.compromised_since
                );
            }
            seen.push(r.key_id);
        }
        for k in self.keys.values() {
            if k.compromised_since.is_some() && !seen.contains(&k.info.key_id) {
                bail!(
                    "key {} says compromised_since {} but {} is missing: the signed revocation record was removed",
                    k.info.key_id,
                    k.info.compromised_since.as_deref().unwrap_or(""),
                    keys::revocation_path(dir, &k.info.key_id).display()
                );
            }
        }
        Ok(())
    }

    /// The key with this id.
    pub fn get(&self, key_id: &str) -> Option<&TrustedKey> {
        self.keys.get(key_id)
    }
}

/// The Ed25519 key of `info`, checked against its `key_id` (the fingerprint).
pub fn public_key_of(info: &KeyInfo) -> Result<VerifyingKey> {
    let pk = PublicKey::from_openssh(info.public_key.trim()).with_context(|| {
        format!(
            "key {}: public_key is not an OpenSSH public key",
            info.key_id
        )
    })?;
    let fp = pk.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    if fp != info.key_id {
        bail!(
            "key info says key_id {} but its public_key has fingerprint {fp}",
            info.key_id
        );
    }
    let Some(ed) = pk.key_data().ed25519() else {
        bail!("key {}: not an Ed25519 key", info.key_id);
    };
    VerifyingKey::from_bytes(&ed.0)
        .with_context(|| format!("key {}: invalid Ed25519 public key", info.key_id))
}

/// A revocation record that does not match the key directory (forged, edited, removed or
/// half-written): an integrity failure of the key directory itself, which `evidence verify`
/// reports as a failed check (exit 1, alerting) rather than as a usage error.
#[derive(Debug)]
pub struct RevocationProblem(pub String);

impl std::fmt::Display for RevocationProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RevocationProblem {}

fn revocation_problem(msg: String) -> anyhow::Error {
    anyhow::Error::new(RevocationProblem(msg))
}
