//! The public keys `evidence verify` trusts: the current key and every archived key of a key
//! directory, each with its validity window (see [`crate::keys`]).

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
            ring.keys.insert(
                info.key_id.clone(),
                TrustedKey {
                    info,
                    key,
                    valid_from,
                    valid_until,
                },
            );
        }
        Ok(ring)
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
