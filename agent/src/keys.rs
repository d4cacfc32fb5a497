//! Evidence signing keys (DESIGN.md 3, "Signing keys"): generation, rotation, loading.
//! SKELETON: the API below is the contract other modules code against; bodies to be written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::exit::Exit;

/// `msp-agent key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create a new signing key and its public forms in DIR.
    Generate {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Replace the signing key in DIR, archiving the old public key with its validity window.
    Rotate {
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
    },
}

impl KeyCmd {
    pub fn run(self) -> Result<Exit> {
        bail!("key commands are not implemented yet")
    }
}

/// The loaded private signing key.
pub struct Signer {
    _private: (),
}

impl Signer {
    /// Load `evidence-signing.key` from `key_dir`, refusing a key readable by group or others.
    pub fn load(key_dir: &Path) -> Result<Signer> {
        bail!("loading keys from {} is not implemented yet", key_dir.display())
    }
    /// `SHA256:...` fingerprint, as `ssh-keygen -l` prints it.
    pub fn key_id(&self) -> &str {
        ""
    }
    /// Raw 64-byte Ed25519 signature of `msg` (verifiable with `openssl pkeyutl -rawin`).
    pub fn sign_raw(&self, _msg: &[u8]) -> [u8; 64] {
        [0; 64]
    }
    /// SSHSIG (PEM armoured) over `msg` with namespace `msp-evidence`.
    pub fn sign_sshsig(&self, _msg: &[u8]) -> Result<String> {
        bail!("not implemented yet")
    }
}
