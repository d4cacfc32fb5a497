//! The local evidence store: `ROOT/YYYY/MM/EB-YYYYMMDD-NNNN.json` plus `.json.sig`,
//! `.json.sshsig` and an `EB-YYYYMMDD-NNNN.artifacts/` directory, written once, hash-chained.
//!
//! Write protocol of [`EvidenceStore::append`] (see `ARCHITECTURE.md`, "Evidence and keys",
//! for the crash reasoning):
//!
//! 1. artifacts are copied into `EB-….artifacts/` (each file write-once, fsynced);
//! 2. `.json.sig` and `.json.sshsig` are published with [`fsutil::write_once_all`] (both
//!    fsynced, linked, one directory fsync);
//! 3. the bundle `.json` is published with [`fsutil::write_once`]: **this is the commit point**;
//! 4. `head.json` (a hint naming the last bundle) is updated with [`fsutil::replace`].
//!
//! A crash before 3 leaves signatures/artifacts without a bundle: [`EvidenceStore::open`] moves
//! them to `ROOT/.orphans/` (never deletes them) and the next append reuses the name. A crash
//! between 3 and 4 leaves `head.json` one bundle behind; `open` notices the scan's last bundle
//! extends it and continues from there. A published bundle therefore always has both
//! signatures, and the chain never has a partial link.
//!
//! Other files in ROOT: `.lock` (flock held by the single writer), `head.json`, `.orphans/`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bundle::{
    Action, Artifact, ArtifactFile, Bundle, Chain, ExecutionSection, IncidentSection, Outputs, Provenance,
    RunbookSection, Signing, BUNDLE_VERSION, GENESIS_PREV_HASH,
};
use crate::fsutil;
use crate::keys::{Signer, ALGORITHM};

/// Lock file name inside ROOT.
pub const LOCK_FILE: &str = ".lock";
/// Directory inside ROOT holding the signed chain head: `head.json`, `head.json.sig`,
/// `head.json.sshsig`, replaced together in one atomic exchange ([`fsutil::replace_dir`]).
pub const HEAD_DIR: &str = "head";
/// The signed head record, relative to ROOT.
pub const HEAD_FILE: &str = "head/head.json";
/// The unsigned head hint stores written before heads were signed kept in ROOT (migrated to
/// [`HEAD_FILE`] by the first append or [`EvidenceStore::sign_legacy_head`]).
pub const LEGACY_HEAD_FILE: &str = "head.json";
/// `head_version` of a signed head record.
pub const HEAD_VERSION: u32 = 2;
/// Where `open` moves signatures and artifacts whose bundle was never published.
pub const ORPHANS_DIR: &str = ".orphans";
/// Suffix of the raw Ed25519 signature file (`EB-….json.sig`).
pub const SIG_SUFFIX: &str = ".sig";
/// Suffix of the SSHSIG file (`EB-….json.sshsig`).
pub const SSHSIG_SUFFIX: &str = ".sshsig";
/// Suffix of the artifacts directory (`EB-….artifacts`).
pub const ARTIFACTS_SUFFIX: &str = ".artifacts";
/// Mode of every write-once evidence file.
const EVIDENCE_FILE_MODE: u32 = 0o444;

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
    /// The `planner` section (only when the advisor was consulted).
    pub planner: Option<serde_json::Value>,
    pub outputs: Outputs,
    pub provenance: Provenance,
    /// Files to store beside the bundle (scrubbed copies of `$MSP_ARTIFACTS` files, with the
    /// PHI filter's record); copied, hashed, listed.
    pub artifact_files: Vec<ArtifactFile>,
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

/// A parsed bundle file name `EB-YYYYMMDD-NNNN.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleName {
    /// `YYYYMMDD` as a number (sorts like the date).
    pub day: u32,
    /// Per-day counter, from 1.
    pub n: u64,
}

impl BundleName {
    /// Parse `EB-YYYYMMDD-NNNN.json` (NNNN: at least 4 digits); `None` for any other name.
    pub fn parse_file_name(name: &str) -> Option<BundleName> {
        BundleName::parse_id(name.strip_suffix(".json")?)
    }
    /// Parse a bundle id `EB-YYYYMMDD-NNNN`.
    pub fn parse_id(id: &str) -> Option<BundleName> {
        let rest = id.strip_prefix("EB-")?;
        let (day, n) = rest.split_once('-')?;
        if day.len() != 8
            || n.len() < 4
            || !day.bytes().all(|b| b.is_ascii_digit())
            || !n.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let n: u64 = n.parse().ok()?;
        if n == 0 {
            return None;
        }
        Some(BundleName {
            day: day.parse().ok()?,
            n,
        })
    }
    /// `EB-YYYYMMDD-NNNN`.
    pub fn id(&self) -> String {
        format!("EB-{:08}-{:04}", self.day, self.n)
    }
    /// `YYYY/MM` directory relative to the store root.
    pub fn month_dir(&self) -> PathBuf {
        PathBuf::from(format!("{:04}", self.day / 10000))
            .join(format!("{:02}", self.day / 100 % 100))
    }
}

/// `head/head.json`: which bundle is the chain head, signed (`.sig`, `.sshsig` beside it,
/// like a bundle) so that deleting the newest bundles and rewriting the head to an earlier
/// one is detected. Rewritten after every append; checked against the files by `open` and
/// against the key by `append` and `evidence verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadRecord {
    /// [`HEAD_VERSION`].
    pub head_version: u32,
    pub sequence: u64,
    /// Path relative to ROOT, e.g. `2026/11/EB-20261122-0003.json`.
    pub bundle: String,
    /// SHA-256 (hex) of the head bundle's bytes.
    pub sha256: String,
    /// The head bundle's `generated_at` (the next bundle may not be earlier).
    pub generated_at: String,
    /// When this record was written (RFC 3339 UTC).
    pub written_at: String,
    /// Key that signed this record (`SHA256:…`).
    pub key_id: String,
    /// Since when this store's heads are signed.
    pub signed_since: SignedSince,
}

/// Where a store's signed heads begin: at its first bundle, or at the one-time migration of
/// an unsigned head left by an older agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSince {
    /// The chain sequence of the first signed head.
    pub sequence: u64,
    /// When it was written.
    pub at: String,
    /// True when the first signed head replaced an unsigned `head.json` of an older agent.
    pub migrated_from_unsigned: bool,
}

/// The unsigned `ROOT/head.json` of stores written before heads were signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyHead {
    pub sequence: u64,
    pub bundle: String,
    pub sha256: String,
}

/// Which head record the store found at `open`.
#[derive(Debug, Clone)]
enum HeadState {
    /// No head record (empty store, or a crash before the first head was written).
    None,
    /// An older agent's unsigned `head.json`.
    Legacy,
    /// A signed record: its bytes and raw signature, checked before the chain is extended.
    Signed { record: Box<HeadRecord>, bytes: Vec<u8>, raw_sig: Vec<u8> },
}

/// The chain head as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    name: BundleName,
    sequence: u64,
    sha256: String,
    generated_at: DateTime<Utc>,
}

/// Only the part of a bundle `open` needs (so a scan does not depend on every field).
#[derive(Deserialize)]
struct ChainOnly {
    chain: Chain,
    generated_at: String,
}

/// The store. One writer at a time per root (enforced with a lock file).
pub struct EvidenceStore {
    root: PathBuf,
    _lock: Flock<File>,
    head: Option<Head>,
    head_state: HeadState,
}

impl std::fmt::Debug for EvidenceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceStore")
            .field("root", &self.root)
            .field("head", &self.head)
            .finish()
    }
}

/// Refuse an evidence directory another user owns or others can write (they could delete,
/// replace or fork the chain; the group may write so an operators' group can run `runbook
/// run`). Called at start by the daemon, `runbook run` and `packet`.
pub fn check_evidence_dir(root: &Path) -> Result<()> {
    fsutil::check_owner_and_mode(root, "evidence directory", fsutil::Strictness::NoOtherWrite)
}

/// Refuse a state directory another user owns or group/others can write: the guard state
/// (cooldowns), the journal cursor and the incident counter live there, so whoever can write
/// it can suppress repairs or make entries be skipped.
pub fn check_state_dir(dir: &Path) -> Result<()> {
    fsutil::check_owner_and_mode(dir, "state directory", fsutil::Strictness::NoGroupOrOtherWrite)
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The exact bytes a bundle is stored as: pretty JSON plus a trailing newline.
pub fn serialize_bundle(bundle: &Bundle) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(bundle).context("serialising bundle")?;
    bytes.push(b'\n');
    Ok(bytes)
}

impl EvidenceStore {
    /// Open (creating if needed) the store at `root`, finding the chain's head. Takes the
    /// writer lock (fails at once if another process holds it), moves orphaned signatures and
    /// artifacts of a bundle that was never published to `ROOT/.orphans/`, removes stale
    /// temporaries, and refuses a store whose `head.json` names a bundle that is gone
    /// (evidence deleted).
    pub fn open(root: &Path) -> Result<EvidenceStore> {
        Self::open_inner(root, None, false)
    }

    /// Give a chain restored from WORM storage (`worm restore`, which cannot download a head:
    /// heads are local) its signed head, so the agent can continue it and `evidence verify`
    /// checks it like any store. Only the signing key's holder can do this, after the restore
    /// compared the bucket with the receipts; the head then vouches for the restored newest
    /// bundle. Forks and gaps are refused as by [`EvidenceStore::open`]. Returns the sealed
    /// sequence, or `None` for a store that already has a head or holds no bundles.
    pub fn seal_restored(root: &Path, signer: &Signer, now: DateTime<Utc>) -> Result<Option<u64>> {
        let mut store = Self::open_inner(root, None, true)?;
        if !matches!(store.head_state, HeadState::None) {
            return Ok(None);
        }
        let Some(head) = store.head.clone() else {
            return Ok(None);
        };
        store.write_head(&head, signer, now)?;
        Ok(Some(head.sequence))
    }

    /// [`EvidenceStore::open`], waiting up to `timeout` for another writer to finish instead
    /// of failing at once. Writers that share a store (the daemon, `runbook run` from a timer
    /// or an operator) hold it only for one append and open it with this.
    pub fn open_waiting(root: &Path, timeout: std::time::Duration) -> Result<EvidenceStore> {
        Self::open_inner(root, Some(timeout), false)
    }

    /// The chain head as `head.json` records it (sequence 0 for an empty store), read without
    /// taking the writer's lock: the file is replaced atomically, so it is always whole.
    pub fn read_head_sequence(root: &Path) -> Result<u64> {
        for rel in [HEAD_FILE, LEGACY_HEAD_FILE] {
            let path = root.join(rel);
            if let Some(b) = fsutil::read_regular_opt(&path, fsutil::limits::SMALL)? {
                let v: serde_json::Value = serde_json::from_slice(&b).with_context(|| format!("parsing {}", path.display()))?;
                return Ok(v.get("sequence").and_then(|s| s.as_u64()).unwrap_or(0));
            }
        }
        Ok(0)
    }

    fn open_inner(root: &Path, wait: Option<std::time::Duration>, headless: bool) -> Result<EvidenceStore> {
        fsutil::create_dir_all(root, 0o755)?;
        let lock_path = root.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        let deadline = wait.map(|w| std::time::Instant::now() + w);
        let mut lock_file = lock_file;
        let lock = loop {
            match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => break l,
                Err((f, errno)) => match deadline {
                    Some(d) if std::time::Instant::now() < d => {
                        lock_file = f;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    _ => anyhow::bail!(
                        "evidence store {} is in use by another writer (lock {} held: {errno})",
                        root.display(),
                        lock_path.display()
                    ),
                },
            }
        };
        let mut store = EvidenceStore {
            root: root.to_path_buf(),
            _lock: lock,
            head: None,
            head_state: HeadState::None,
        };
        fsutil::remove_stale_tmp_dirs(root, HEAD_DIR)?;
        let names = store.scan_and_clean()?;
        store.head = store.find_head(&names, headless)?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// (sequence, SHA-256 hex) of the last bundle, `None` for an empty store.
    pub fn head(&self) -> Option<(u64, &str)> {
        self.head.as_ref().map(|h| (h.sequence, h.sha256.as_str()))
    }

    /// Path of a bundle file in this store.
    pub fn bundle_path(&self, name: &BundleName) -> PathBuf {
        self.root
            .join(name.month_dir())
            .join(format!("{}.json", name.id()))
    }

    /// List every published bundle (sorted by name); clean up orphans and temporaries.
    fn scan_and_clean(&self) -> Result<Vec<BundleName>> {
        let mut names = Vec::new();
        for year in read_dir_names(&self.root)? {
            if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let ydir = self.root.join(&year);
            if !ydir.is_dir() {
                continue;
            }
            for month in read_dir_names(&ydir)? {
                if month.len() != 2 || !month.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let mdir = ydir.join(&month);
                if mdir.is_dir() {
                    self.scan_month(&mdir, &mut names)?;
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn scan_month(&self, mdir: &Path, names: &mut Vec<BundleName>) -> Result<()> {
        let entries = read_dir_names(mdir)?;
        let present: std::collections::HashSet<&str> = entries.iter().map(String::as_str).collect();
        for entry in &entries {
            if entry.starts_with(fsutil::TMP_PREFIX) {
                // Only this (locked) writer creates temporaries here: a left-over one is from a
                // crash before its publishing link, so it never held published evidence.
                let p = mdir.join(entry);
                fs::remove_file(&p)
                    .with_context(|| format!("removing stale temporary {}", p.display()))?;
                continue;
            }
            if let Some(name) = BundleName::parse_file_name(entry) {
                names.push(name);
                for suffix in [SIG_SUFFIX, SSHSIG_SUFFIX] {
                    if !present.contains(format!("{entry}{suffix}").as_str()) {
                        // Never produced by a crash (signatures are published first): damage.
                        tracing::error!(bundle = %mdir.join(entry).display(), "bundle has no {suffix} file; `evidence verify` will reject it");
                    }
                }
                continue;
            }
            // A companion (`.json.sig`, `.json.sshsig`, `.artifacts`) whose bundle is missing.
            let stem = entry
                .strip_suffix(&format!(".json{SIG_SUFFIX}"))
                .or_else(|| entry.strip_suffix(&format!(".json{SSHSIG_SUFFIX}")))
                .or_else(|| entry.strip_suffix(ARTIFACTS_SUFFIX));
            if let Some(stem) = stem {
                if BundleName::parse_id(stem).is_some()
                    && !present.contains(format!("{stem}.json").as_str())
                {
                    self.quarantine(&mdir.join(entry))?;
                }
            }
        }
        fsutil::sync_dir(mdir)
    }

    /// Move a companion of an unpublished bundle to `ROOT/.orphans/` (kept, not deleted, so
    /// nothing that looks like evidence ever disappears silently).
    fn quarantine(&self, path: &Path) -> Result<()> {
        let odir = self.root.join(ORPHANS_DIR);
        fsutil::create_dir_all(&odir, 0o755)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut target = odir.join(&name);
        let mut i = 1;
        while target.exists() {
            target = odir.join(format!("{name}.{i}"));
            i += 1;
        }
        tracing::warn!(orphan = %path.display(), to = %target.display(), "moving signature/artifacts of an unpublished bundle aside");
        fs::rename(path, &target)
            .with_context(|| format!("moving orphan {} to {}", path.display(), target.display()))?;
        fsutil::sync_dir(&odir)
    }

    /// (sequence, prev_bundle_sha256, own sha256, generated_at) of a bundle.
    fn read_chain(&self, name: &BundleName) -> Result<(u64, String, String, DateTime<Utc>)> {
        let path = self.bundle_path(name);
        let bytes = fsutil::read_regular(&path, fsutil::limits::BUNDLE)?;
        let c: ChainOnly = serde_json::from_slice(&bytes).with_context(|| {
            format!("{}: not an evidence bundle (chain section)", path.display())
        })?;
        let at = DateTime::parse_from_rfc3339(&c.generated_at)
            .with_context(|| format!("{}: generated_at {:?}", path.display(), c.generated_at))?
            .with_timezone(&Utc);
        Ok((
            c.chain.sequence,
            c.chain.prev_bundle_sha256,
            sha256_hex(&bytes),
            at,
        ))
    }

    /// Read the head record: the signed `head/head.json` (its signature files must be there;
    /// whether they verify is checked by `append` against the key), else an older agent's
    /// unsigned `head.json`. Returns (sequence, bundle, sha256) of the head it names.
    fn read_head_record(&mut self) -> Result<Option<(u64, String, String)>> {
        let path = self.root.join(HEAD_FILE);
        if let Some(bytes) = fsutil::read_regular_opt(&path, fsutil::limits::SMALL)? {
            let record: HeadRecord = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?;
            if record.head_version != HEAD_VERSION {
                bail!("{}: head_version {} is not {HEAD_VERSION}", path.display(), record.head_version);
            }
            let sig_path = self.root.join(format!("{HEAD_FILE}{SIG_SUFFIX}"));
            let sshsig_path = self.root.join(format!("{HEAD_FILE}{SSHSIG_SUFFIX}"));
            let raw_sig = fsutil::read_regular_opt(&sig_path, fsutil::limits::RAW_SIG)?;
            let sshsig = fsutil::read_regular_opt(&sshsig_path, fsutil::limits::SSHSIG)?;
            let (Some(raw_sig), Some(_)) = (raw_sig, sshsig) else {
                bail!(
                    "{} has no {} or {}: the signed chain head was tampered with; refusing to continue the chain",
                    path.display(),
                    sig_path.display(),
                    sshsig_path.display()
                );
            };
            let named = (record.sequence, record.bundle.clone(), record.sha256.clone());
            self.head_state = HeadState::Signed { record: Box::new(record), bytes, raw_sig };
            return Ok(Some(named));
        }
        let legacy = self.root.join(LEGACY_HEAD_FILE);
        if let Some(bytes) = fsutil::read_regular_opt(&legacy, fsutil::limits::SMALL)? {
            let h: LegacyHead = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", legacy.display()))?;
            tracing::warn!(head = %legacy.display(), "unsigned chain head of an older agent; the next append (or the daemon's start) replaces it with a signed one");
            self.head_state = HeadState::Legacy;
            return Ok(Some((h.sequence, h.bundle, h.sha256)));
        }
        Ok(None)
    }

    /// The chain head. Fast path: the head record names the last bundle by name (or the one
    /// before it, after a crash between publishing and updating the head), and the store
    /// holds exactly `sequence` bundles. Otherwise every bundle's chain section is read: two
    /// bundles with one sequence (a fork, anywhere in the chain) or a missing sequence make
    /// `open` refuse, and the highest sequence is the head.
    /// `headless`: a store restored from WORM storage, which has no head yet
    /// ([`EvidenceStore::seal_restored`]); every other check still applies.
    fn find_head(&mut self, names: &[BundleName], headless: bool) -> Result<Option<Head>> {
        let hint = self.read_head_record()?;
        let head_path = self.root.join(match self.head_state {
            HeadState::Legacy => LEGACY_HEAD_FILE,
            _ => HEAD_FILE,
        });
        if let Some((seq, bundle, _)) = &hint {
            let named = self.root.join(bundle);
            if !named.is_file() {
                bail!(
                    "{} names {} (sequence {seq}) but that bundle is missing: evidence was deleted; \
                     refusing to continue the chain",
                    head_path.display(),
                    named.display(),
                );
            }
        }
        let Some(last) = names.last() else {
            return Ok(None);
        };
        let (seq, prev, sha, at) = self.read_chain(last)?;
        if hint.is_none() && !headless && !(names.len() == 1 && seq == 1) {
            // Only a crash right after the very first bundle leaves bundles without a head.
            bail!(
                "evidence store {} holds {} bundle(s) but no chain head ({}): the head and perhaps the newest bundles were deleted; refusing to continue the chain",
                self.root.display(),
                names.len(),
                self.root.join(HEAD_FILE).display()
            );
        }
        let last_rel = last.month_dir().join(format!("{}.json", last.id()));
        let fast = match &hint {
            Some((hseq, hbundle, hsha)) => {
                let same = Path::new(hbundle) == last_rel && *hseq == seq && *hsha == sha;
                let one_ahead = seq == hseq + 1 && prev == *hsha;
                same || one_ahead
            }
            None => true,
        };
        // Sequences count from 1 with no gaps, so a whole store has exactly `seq` bundles;
        // any other count is a fork or a deletion somewhere in the middle. A pruned store
        // starts at the first sequence its newest prune record retained (`evidence prune`;
        // that record's signature, and that the retained bundle links to the pruned one, are
        // checked by `evidence verify`; the pruned bundles are in WORM storage).
        let floor = crate::pruned::latest_record(&self.root)?.map_or(1, |(_, r, _)| r.first_retained_sequence.max(1));
        if fast && names.len() as u64 == (seq + 1).saturating_sub(floor) {
            return Ok(Some(Head { name: *last, sequence: seq, sha256: sha, generated_at: at }));
        }
        // Slow path (no hint, names out of chain order after the clock went backwards under
        // an older agent, or a count that does not add up).
        let mut by_seq: BTreeMap<u64, BundleName> = BTreeMap::new();
        let mut best: Option<Head> = None;
        for name in names {
            let (seq, _, sha, at) = self.read_chain(name)?;
            if let Some(other) = by_seq.insert(seq, *name) {
                bail!(
                    "evidence store {} has two bundles with sequence {seq} ({} and {}): the chain is forked; refusing to continue it",
                    self.root.display(),
                    other.id(),
                    name.id()
                );
            }
            if best.as_ref().is_none_or(|b| seq > b.sequence) {
                best = Some(Head { name: *name, sequence: seq, sha256: sha, generated_at: at });
            }
        }
        if let (Some((hseq, _, _)), Some(b)) = (&hint, &best) {
            if b.sequence < *hseq {
                bail!(
                    "{} says the chain reached sequence {hseq} but the highest bundle is {} (sequence {}): evidence was deleted",
                    head_path.display(),
                    b.name.id(),
                    b.sequence
                );
            }
        }
        if let Some(b) = &best {
            if let Some(missing) = (floor..=b.sequence).find(|s| !by_seq.contains_key(s)) {
                bail!(
                    "evidence store {} has no bundle with sequence {missing} (the head {} is sequence {}, {} bundle(s) present): evidence was deleted; refusing to continue the chain",
                    self.root.display(),
                    b.name.id(),
                    b.sequence,
                    names.len()
                );
            }
        }
        Ok(best)
    }

    /// Check the signed head against the signer's key directory before extending the chain:
    /// a head whose signature does not verify was rewritten (e.g. to an earlier bundle after
    /// the newest were deleted).
    fn check_head_signature(&self, signer: &Signer) -> Result<()> {
        let HeadState::Signed { record, bytes, raw_sig } = &self.head_state else {
            return Ok(());
        };
        let path = self.root.join(HEAD_FILE);
        let Some(key) = signer.known_key(&record.key_id) else {
            bail!(
                "{} is signed by key {}, which this key directory never held: refusing to continue the chain",
                path.display(),
                record.key_id
            );
        };
        let ok = <[u8; 64]>::try_from(raw_sig.as_slice())
            .ok()
            .map(|s| ed25519_dalek::Signature::from_bytes(&s))
            .is_some_and(|s| key.verify_strict(bytes, &s).is_ok());
        if !ok {
            bail!(
                "{}{SIG_SUFFIX} does not verify with key {}: the chain head was rewritten; refusing to continue the chain",
                path.display(),
                record.key_id
            );
        }
        Ok(())
    }

    /// The one-time migration of an older agent's unsigned `head.json`: write a signed head
    /// for the same bundle (`signed_since.migrated_from_unsigned: true`) and remove the old
    /// file. Returns whether it did. The daemon calls it at start, so from then on the
    /// store's heads are signed and its heartbeats say so (`head_signed`).
    pub fn sign_legacy_head(&mut self, signer: &Signer, now: DateTime<Utc>) -> Result<bool> {
        if !matches!(self.head_state, HeadState::Legacy) {
            return Ok(false);
        }
        let Some(head) = self.head.clone() else {
            return Ok(false);
        };
        self.write_head(&head, signer, now)?;
        tracing::info!(root = %self.root.display(), sequence = head.sequence, "unsigned chain head of an older agent replaced by a signed one (one-time migration)");
        Ok(true)
    }

    /// Write the signed head record for `head` (record and both signatures in one atomic
    /// directory exchange), then remove an older agent's unsigned `head.json`.
    fn write_head(&mut self, head: &Head, signer: &Signer, now: DateTime<Utc>) -> Result<()> {
        let now_s = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let signed_since = match &self.head_state {
            HeadState::Signed { record, .. } => record.signed_since.clone(),
            HeadState::Legacy => SignedSince { sequence: head.sequence, at: now_s.clone(), migrated_from_unsigned: true },
            HeadState::None => SignedSince { sequence: head.sequence, at: now_s.clone(), migrated_from_unsigned: false },
        };
        let record = HeadRecord {
            head_version: HEAD_VERSION,
            sequence: head.sequence,
            bundle: head.name.month_dir().join(format!("{}.json", head.name.id())).to_string_lossy().into_owned(),
            sha256: head.sha256.clone(),
            generated_at: head.generated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            written_at: now_s,
            key_id: signer.key_id().to_string(),
            signed_since,
        };
        let mut bytes = serde_json::to_vec_pretty(&record).context("serialising the chain head")?;
        bytes.push(b'\n');
        let raw = signer.sign_raw(&bytes);
        let sshsig = signer.sign_sshsig(&bytes)?;
        let json_name = "head.json";
        fsutil::replace_dir(
            &self.root.join(HEAD_DIR),
            &[
                (&format!("{json_name}{SIG_SUFFIX}"), &raw[..]),
                (&format!("{json_name}{SSHSIG_SUFFIX}"), sshsig.as_bytes()),
                (json_name, &bytes),
            ],
            EVIDENCE_FILE_MODE,
        )?;
        let was_legacy = matches!(self.head_state, HeadState::Legacy);
        self.head_state = HeadState::Signed { record: Box::new(record), bytes, raw_sig: raw.to_vec() };
        let legacy = self.root.join(LEGACY_HEAD_FILE);
        if was_legacy || legacy.exists() {
            match fs::remove_file(&legacy) {
                Ok(()) => fsutil::sync_dir(&self.root)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", legacy.display())),
            }
        }
        Ok(())
    }

    /// The name for the next bundle written on `day`.
    fn next_name(&self, day: u32) -> BundleName {
        let mut n = match &self.head {
            Some(h) if h.name.day == day => h.name.n + 1,
            _ => 1,
        };
        // Only reached with more names after the clock went back to a day that has bundles.
        loop {
            let name = BundleName { day, n };
            let json = self.bundle_path(&name);
            let taken = json.exists()
                || json.with_extension(format!("json{SIG_SUFFIX}")).exists()
                || json.with_extension(format!("json{SSHSIG_SUFFIX}")).exists()
                || self.artifacts_dir(&name).exists();
            if !taken {
                return name;
            }
            n += 1;
        }
    }

    fn artifacts_dir(&self, name: &BundleName) -> PathBuf {
        self.root
            .join(name.month_dir())
            .join(format!("{}{ARTIFACTS_SUFFIX}", name.id()))
    }

    /// Assign id, sequence and previous hash, store artifacts, sign, write durably.
    /// `now` sets the bundle id's date and `generated_at` (UTC, whole seconds); a clock that
    /// went back before the head's `generated_at` is held at that time, so time never goes
    /// backwards along the chain (`evidence verify` rejects a chain where it does: that is
    /// how a retired key back-dating a bundle is caught). The signed head is checked against
    /// the key directory first.
    pub fn append(
        &mut self,
        new: NewBundle,
        signer: &Signer,
        now: DateTime<Utc>,
    ) -> Result<Written> {
        self.check_head_signature(signer)?;
        let mut now = now.trunc_subsecs(0);
        if let Some(h) = &self.head {
            if now < h.generated_at {
                tracing::warn!(clock = %now, head = %h.generated_at, "the clock is behind the chain head; the bundle is dated at the head's time");
                now = h.generated_at;
            }
        }
        let day = now.year() as u32 * 10000 + now.month() * 100 + now.day();
        let name = self.next_name(day);
        let mdir = self.root.join(name.month_dir());
        if !mdir.is_dir() {
            fsutil::create_dir_all(&mdir, 0o755)?;
            // Make the new YYYY and YYYY/MM entries themselves durable.
            if let Some(ydir) = mdir.parent() {
                fsutil::sync_dir(ydir)?;
            }
            fsutil::sync_dir(&self.root)?;
        }
        let result = self.write_bundle(&name, &mdir, new, signer, now);
        if result.is_err() {
            // Leave nothing half-written under the name. The companions were made by this
            // call, under the lock, for a bundle that was never published (its link is the
            // commit point): they are copies of nothing that exists, so they are removed, not
            // moved to `.orphans/` — a retry on a full disk must not pile them up there.
            // (Companions found by `open` come from a crash and are kept in `.orphans/`.)
            let json = self.bundle_path(&name);
            if !json.exists() {
                for p in [
                    json.with_extension(format!("json{SIG_SUFFIX}")),
                    json.with_extension(format!("json{SSHSIG_SUFFIX}")),
                ] {
                    let _ = fs::remove_file(&p);
                }
                let adir = self.artifacts_dir(&name);
                if adir.exists() {
                    let _ = fs::remove_dir_all(&adir);
                }
                let _ = fsutil::sync_dir(&mdir);
            }
        }
        result
    }

    fn write_bundle(
        &mut self,
        name: &BundleName,
        mdir: &Path,
        new: NewBundle,
        signer: &Signer,
        now: DateTime<Utc>,
    ) -> Result<Written> {
        let id = name.id();
        let artifacts = self.store_artifacts(name, &new.artifact_files)?;
        let (sequence, prev) = match &self.head {
            Some(h) => (h.sequence + 1, h.sha256.clone()),
            None => (1, GENESIS_PREV_HASH.to_string()),
        };
        let bundle = Bundle {
            bundle_id: id.clone(),
            bundle_version: BUNDLE_VERSION.to_string(),
            client_id: new.client_id,
            hostname: new.hostname,
            generated_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            generator: format!("msp-agent {}", crate::VERSION),
            incident: new.incident,
            runbook: new.runbook,
            execution: new.execution,
            actions_taken: new.actions_taken,
            rollback: new.rollback,
            artifacts,
            verification: new.verification,
            planner: new.planner,
            outputs: new.outputs,
            provenance: new.provenance,
            chain: Chain {
                sequence,
                prev_bundle_sha256: prev,
            },
            signing: Signing {
                key_id: signer.key_id().to_string(),
                algorithm: ALGORITHM.to_string(),
            },
        };
        let bytes = serialize_bundle(&bundle)?;
        let sha256 = sha256_hex(&bytes);
        let raw = signer.sign_raw(&bytes);
        let sshsig = signer.sign_sshsig(&bytes)?;
        let path = mdir.join(format!("{id}.json"));
        // Both signatures durable (one directory fsync) before the bundle is published.
        let sig_path = mdir.join(format!("{id}.json{SIG_SUFFIX}"));
        let sshsig_path = mdir.join(format!("{id}.json{SSHSIG_SUFFIX}"));
        fsutil::write_once_all(
            &[(&sig_path, &raw[..]), (&sshsig_path, sshsig.as_bytes())],
            EVIDENCE_FILE_MODE,
        )?;
        // Commit point: from here on the bundle is part of the chain.
        fsutil::write_once(&path, &bytes, EVIDENCE_FILE_MODE)?;
        let head = Head {
            name: *name,
            sequence,
            sha256: sha256.clone(),
            generated_at: now,
        };
        self.head = Some(head.clone());
        // The bundle is committed: a head that cannot be written (disk full) is one behind,
        // which `open` accepts (the scan's last bundle extends it), so this is not a failure
        // of the append — reporting one would make the caller think the evidence was lost.
        if let Err(e) = self.write_head(&head, signer, now) {
            tracing::error!(bundle = %id, "bundle written but the chain head could not be updated (it stays one behind until the next append): {e:#}");
        }
        Ok(Written {
            bundle_id: id,
            path,
            sequence,
            sha256,
        })
    }

    /// Copy artifact files into `EB-….artifacts/`, returning their listing (sorted by name).
    fn store_artifacts(&self, name: &BundleName, files: &[ArtifactFile]) -> Result<Vec<Artifact>> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_name: BTreeMap<String, &ArtifactFile> = BTreeMap::new();
        for af in files {
            let f = &af.path;
            let fname = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .with_context(|| format!("artifact {} has no file name", f.display()))?;
            if !valid_artifact_name(&fname) {
                bail!("artifact {}: file name {fname:?} is not allowed (plain name, no leading dot, no control characters)", f.display());
            }
            if let Some(other) = by_name.insert(fname.clone(), af) {
                bail!(
                    "artifacts {} and {} have the same file name {fname:?}",
                    other.path.display(),
                    f.display()
                );
            }
        }
        let adir = self.artifacts_dir(name);
        fs::create_dir(&adir).with_context(|| format!("creating {}", adir.display()))?;
        let mut out = Vec::with_capacity(by_name.len());
        for (fname, af) in by_name {
            let src = &af.path;
            let bytes = fsutil::read_regular(src, fsutil::limits::ARTIFACT)
                .with_context(|| format!("reading artifact {}", src.display()))?;
            fsutil::write_once(&adir.join(&fname), &bytes, EVIDENCE_FILE_MODE)?;
            out.push(Artifact {
                filename: fname,
                sha256: sha256_hex(&bytes),
                size_bytes: bytes.len() as u64,
                scrubbed: af.scrub.is_some(),
                redactions: af.scrub.as_ref().map(|s| s.redactions.clone()).unwrap_or_default(),
                original_size_bytes: af.scrub.as_ref().map(|s| s.original_size_bytes),
            });
        }
        if let Some(parent) = adir.parent() {
            fsutil::sync_dir(parent)?;
        }
        Ok(out)
    }
}

/// Artifact file names are plain names: no path separators, no leading dot (so they never
/// look like temporaries), no control characters, at most 255 bytes.
pub fn valid_artifact_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in
        fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_names_parse_and_print() {
        let n = BundleName::parse_file_name("EB-20261122-0003.json").unwrap();
        assert_eq!(
            n,
            BundleName {
                day: 20261122,
                n: 3
            }
        );
        assert_eq!(n.id(), "EB-20261122-0003");
        assert_eq!(n.month_dir(), PathBuf::from("2026/11"));
        assert_eq!(BundleName::parse_id("EB-20261122-12345").unwrap().n, 12345);
        for bad in [
            "EB-2026112-0003.json",
            "EB-20261122-003.json",
            "EB-20261122-0000.json",
            "EB-20261122-0003.json.sig",
            ".tmp-EB-20261122-0003.json",
        ] {
            assert!(BundleName::parse_file_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn artifact_names_are_plain() {
        assert!(valid_artifact_name("df.txt"));
        for bad in ["", ".hidden", "a/b", "a\nb", ".tmp-x"] {
            assert!(!valid_artifact_name(bad), "{bad:?}");
        }
    }
}
