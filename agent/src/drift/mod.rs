//! Drift detection: the files the baseline governs are watched with inotify and each change
//! is compared, by SHA-256, with what is expected.
//!
//! * [`WatchSet`]: which paths are governed and what each must hash to — the expected-state
//!   manifest's files (`baseline.manifest`, hashes filled at NixOS build time), the agent's
//!   own config file and the signing-key directory (hashes taken at start), and the runbook
//!   directory (the approved hashes from the config). Nothing else: the agent's state and
//!   evidence directories are never governed, so the agent's own writes cannot fire.
//! * [`watcher`]: the thread that receives inotify events for the *parent directories* (so a
//!   replace-by-rename, a delete and a re-create are all seen), waits for a change to settle,
//!   hashes and reports a [`Drift`] once per drifted state.

pub mod watcher;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `actual_sha256` (and `expected_sha256`) of a file that does not exist.
pub const ABSENT: &str = "absent";

/// Where an expected hash comes from (`details.expected_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedFrom {
    /// The expected-state manifest (`sha256` filled by the NixOS build).
    Manifest,
    /// Hashed when the agent started (its config, the signing keys, manifest files whose
    /// hash is not filled).
    Startup,
    /// `approved_runbooks` in the config.
    ApprovedRunbooks,
}

impl ExpectedFrom {
    /// The value recorded in evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedFrom::Manifest => "manifest",
            ExpectedFrom::Startup => "startup",
            ExpectedFrom::ApprovedRunbooks => "approved_runbooks",
        }
    }
}

/// What a governed file must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Hex SHA-256, or [`ABSENT`] for a file that must not exist.
    pub sha256: String,
    pub from: ExpectedFrom,
}

/// One observed drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub path: PathBuf,
    pub expected: Expected,
    /// Hex SHA-256, or [`ABSENT`].
    pub actual_sha256: String,
    pub observed_at: DateTime<Utc>,
}

/// The governed paths and their expected hashes.
#[derive(Debug, Clone, Default)]
pub struct WatchSet {
    files: HashMap<PathBuf, Expected>,
    runbooks_dir: Option<(PathBuf, BTreeMap<String, String>)>,
    key_dir: Option<PathBuf>,
}

/// What the set is built from.
pub struct Sources<'a> {
    /// The expected-state manifest file (`baseline.manifest`).
    pub manifest: Option<&'a Path>,
    /// The agent's config file.
    pub config_file: Option<&'a Path>,
    /// The runbook directory and the approved hashes (id → SHA-256).
    pub runbooks_dir: &'a Path,
    pub approved_runbooks: &'a BTreeMap<String, String>,
    /// The directory of the signing key.
    pub key_dir: Option<&'a Path>,
}

#[derive(Deserialize)]
struct ManifestDoc {
    files: Vec<ManifestFile>,
}
#[derive(Deserialize)]
struct ManifestFile {
    path: String,
    #[serde(default)]
    hash_at_build: bool,
    #[serde(default)]
    sha256: Option<String>,
}

impl WatchSet {
    /// Build the set: read the manifest, hash the files whose expected hash is "as at start".
    pub fn build(src: &Sources<'_>) -> Result<WatchSet> {
        let mut set = WatchSet::default();
        if let Some(m) = src.manifest {
            let text = std::fs::read(m).with_context(|| format!("reading expected-state manifest {}", m.display()))?;
            let doc: ManifestDoc = serde_json::from_slice(&text)
                .with_context(|| format!("{}: not an expected-state manifest (baseline render)", m.display()))?;
            for f in doc.files {
                // /proc values are not files inotify can watch; the baseline checks them by probe.
                if !f.hash_at_build {
                    continue;
                }
                let path = PathBuf::from(&f.path);
                let expected = match f.sha256 {
                    Some(h) if is_sha256_hex(&h) => Expected { sha256: h.to_ascii_lowercase(), from: ExpectedFrom::Manifest },
                    Some(h) => anyhow::bail!("{}: files[{}].sha256: {h:?} is not a SHA-256 in hex", m.display(), f.path),
                    None => {
                        tracing::warn!(file = %f.path, "the manifest has no hash for this file (hashes not filled): comparing with its hash at start");
                        Expected { sha256: hash_file(&path)?, from: ExpectedFrom::Startup }
                    }
                };
                set.files.insert(path, expected);
            }
        }
        if let Some(c) = src.config_file {
            set.files.insert(absolute(c)?, Expected { sha256: hash_file(c)?, from: ExpectedFrom::Startup });
        }
        set.runbooks_dir = Some((absolute(src.runbooks_dir)?, src.approved_runbooks.clone()));
        if let Some(k) = src.key_dir {
            let k = absolute(k)?;
            let rd = std::fs::read_dir(&k).with_context(|| format!("listing signing-key directory {}", k.display()))?;
            for e in rd {
                let e = e.with_context(|| format!("listing {}", k.display()))?;
                if e.file_type().with_context(|| format!("reading {}", e.path().display()))?.is_file() {
                    let p = e.path();
                    set.files.insert(p.clone(), Expected { sha256: hash_file(&p)?, from: ExpectedFrom::Startup });
                }
            }
            set.key_dir = Some(k);
        }
        Ok(set)
    }

    /// The expected hash of `path`, or `None` when it is not governed.
    pub fn expected_for(&self, path: &Path) -> Option<Expected> {
        if let Some(e) = self.files.get(path) {
            return Some(e.clone());
        }
        let parent = path.parent()?;
        let name = path.file_name()?.to_str()?;
        if name.starts_with('.') {
            return None;
        }
        if let Some((dir, approved)) = &self.runbooks_dir {
            if parent == dir {
                let stem = name.strip_suffix(".yaml").or_else(|| name.strip_suffix(".yml"))?;
                let sha256 = approved.get(stem).cloned().unwrap_or_else(|| ABSENT.to_string());
                return Some(Expected { sha256, from: ExpectedFrom::ApprovedRunbooks });
            }
        }
        if self.key_dir.as_deref() == Some(parent) {
            // A key file that was not there at start.
            return Some(Expected { sha256: ABSENT.to_string(), from: ExpectedFrom::Startup });
        }
        None
    }

    /// Directories to watch: the parents of governed files and the governed directories.
    pub fn directories(&self) -> BTreeSet<PathBuf> {
        let mut dirs: BTreeSet<PathBuf> = self.files.keys().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
        if let Some((d, _)) = &self.runbooks_dir {
            dirs.insert(d.clone());
        }
        if let Some(d) = &self.key_dir {
            dirs.insert(d.clone());
        }
        dirs
    }

    /// Every individually governed file (checked again after an inotify queue overflow).
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.keys()
    }

    /// Check `path` now: `Some(actual)` when it differs from what is expected.
    pub fn check(&self, path: &Path) -> Result<Option<(Expected, String)>> {
        let Some(expected) = self.expected_for(path) else { return Ok(None) };
        let actual = hash_file(path)?;
        Ok((actual != expected.sha256).then_some((expected, actual)))
    }
}

/// SHA-256 of a file's bytes in hex, or [`ABSENT`] when it does not exist.
pub fn hash_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ABSENT.to_string()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `p` made absolute against the working directory (not resolved: inotify reports paths
/// under the directory as it was named).
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("making {} absolute", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn governed_paths_and_their_expected_hashes() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("rb")).unwrap();
        std::fs::create_dir(d.join("keys")).unwrap();
        std::fs::write(d.join("keys/evidence-signing.key"), b"k").unwrap();
        std::fs::write(d.join("agent.yaml"), b"client_id: c\n").unwrap();
        std::fs::write(d.join("sshd_config"), b"PasswordAuthentication no\n").unwrap();
        let manifest = d.join("expected-state.json");
        let filled = "a".repeat(64);
        std::fs::write(
            &manifest,
            serde_json::json!({"files": [
                {"path": d.join("sshd_config"), "hash_at_build": true, "sha256": filled},
                {"path": "/proc/sys/fs/suid_dumpable", "hash_at_build": false, "sha256": null},
            ]})
            .to_string(),
        )
        .unwrap();
        let approved: BTreeMap<String, String> = [("RB-X-001".to_string(), "b".repeat(64))].into();
        let set = WatchSet::build(&Sources {
            manifest: Some(&manifest),
            config_file: Some(&d.join("agent.yaml")),
            runbooks_dir: &d.join("rb"),
            approved_runbooks: &approved,
            key_dir: Some(&d.join("keys")),
        })
        .unwrap();
        let e = set.expected_for(&d.join("sshd_config")).unwrap();
        assert_eq!((e.sha256.as_str(), e.from), (filled.as_str(), ExpectedFrom::Manifest));
        assert_eq!(set.expected_for(&d.join("agent.yaml")).unwrap().sha256, hash_file(&d.join("agent.yaml")).unwrap());
        assert_eq!(set.expected_for(&d.join("rb/RB-X-001.yaml")).unwrap().sha256, "b".repeat(64));
        assert_eq!(set.expected_for(&d.join("rb/RB-NEW-001.yaml")).unwrap().sha256, ABSENT);
        assert!(set.expected_for(&d.join("rb/notes.txt")).is_none());
        assert_eq!(set.expected_for(&d.join("keys/new.key")).unwrap().sha256, ABSENT);
        assert!(set.expected_for(&d.join("agent.log")).is_none(), "the agent's own files are not governed");
        assert!(set.expected_for(Path::new("/proc/sys/fs/suid_dumpable")).is_none());
        // Unchanged config: no drift; a changed manifest file: drift with both hashes.
        assert!(set.check(&d.join("agent.yaml")).unwrap().is_none());
        let (exp, actual) = set.check(&d.join("sshd_config")).unwrap().unwrap();
        assert_eq!((exp.sha256, actual), (filled, hash_file(&d.join("sshd_config")).unwrap()));
        std::fs::remove_file(d.join("agent.yaml")).unwrap();
        assert_eq!(set.check(&d.join("agent.yaml")).unwrap().unwrap().1, ABSENT);
    }
}
