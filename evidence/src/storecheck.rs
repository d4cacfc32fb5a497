//! Checks of a store root beyond its bundles, for `evidence verify` and the packet: the
//! signed chain head (`head/head.json` with `.sig`/`.sshsig`, see [`crate::store`]) and the
//! upload receipts (`receipts/YYYY/MM/EB-….receipt.json`).
//!
//! * The head must be signed by a trusted key (raw Ed25519 and SSHSIG, like a bundle), and
//!   the chain must reach it (fewer bundles = deletion at the end).
//! * A store root holding bundles but no head is an error: deleting the newest bundles
//!   together with the head is exactly what an unsigned, optional head let through. (One
//!   exception: a single genesis bundle, a crash between the first bundle and the first head.)
//! * An older agent's unsigned `head.json` is a warning, until the chain holds a heartbeat
//!   written by an agent that signs heads (`head_signed: true`): from then on an unsigned
//!   head means the signed one was removed, an error.
//! * Every receipt must name a bundle that is in the store with the hash that was uploaded:
//!   a receipt for a missing bundle is evidence deleted after upload, named with both files.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ed25519_dalek::Signature;

use crate::batch::verify_all;
use crate::heartbeat::Beat;
use crate::keyring::Keyring;
use crate::store::{HeadRecord, LegacyHead, HEAD_DIR, HEAD_FILE, LEGACY_HEAD_FILE, LOCK_FILE, SIG_SUFFIX, SSHSIG_SUFFIX};
use crate::verify::{ChainSummary, StoreRoot};
use crate::fsutil;

/// What the per-bundle pass saw of one bundle.
#[derive(Debug, Clone)]
pub struct Seen {
    pub file_name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub sequence: u64,
    /// (client_id, hostname).
    pub chain_key: (String, String),
}

/// Whether `dir` is a store root (not a month or year directory of one): it has the
/// writer's lock file, a head, or `YYYY` directories.
pub fn is_store_root(dir: &Path) -> bool {
    if dir.join(LOCK_FILE).exists() || dir.join(HEAD_DIR).exists() || dir.join(LEGACY_HEAD_FILE).exists() {
        return true;
    }
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()) && e.file_type().is_ok_and(|t| t.is_dir())
        })
    })
}

fn read(path: &Path, limit: u64, problems: &mut Vec<(PathBuf, String)>) -> Result<Option<Vec<u8>>> {
    match fsutil::read_regular_opt(path, limit) {
        Ok(b) => Ok(b),
        Err(e) => match fsutil::refused(&e) {
            Some(why) => {
                problems.push((path.to_path_buf(), format!("not read: {why}")));
                Ok(None)
            }
            None => Err(e),
        },
    }
}

/// Check a signed file's raw signature and SSHSIG with the key `key_id` names. Returns the
/// reason when either does not verify.
fn check_signatures(path: &Path, bytes: &[u8], key_id: &str, keys: &Keyring, problems: &mut Vec<(PathBuf, String)>) -> Result<Option<String>> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(key) = keys.get(key_id) else {
        return Ok(Some(format!("signed by unknown key {key_id} (not in the key directory)")));
    };
    let mut sig_path = path.as_os_str().to_owned();
    sig_path.push(SIG_SUFFIX);
    let raw = read(Path::new(&sig_path), fsutil::limits::RAW_SIG, problems)?;
    match raw.as_deref().map(<[u8; 64]>::try_from) {
        None => return Ok(Some(format!("missing {name}{SIG_SUFFIX}"))),
        Some(Err(_)) => return Ok(Some(format!("{name}{SIG_SUFFIX} is not a 64-byte Ed25519 signature"))),
        Some(Ok(sig)) => {
            if key.key.verify_strict(bytes, &Signature::from_bytes(&sig)).is_err() {
                return Ok(Some(format!("raw signature ({name}{SIG_SUFFIX}) does not verify with key {key_id}: rewritten")));
            }
        }
    }
    let mut ssh_path = path.as_os_str().to_owned();
    ssh_path.push(SSHSIG_SUFFIX);
    let Some(armoured) = read(Path::new(&ssh_path), fsutil::limits::SSHSIG, problems)? else {
        return Ok(Some(format!("missing {name}{SSHSIG_SUFFIX}")));
    };
    match crate::verify::prepare_sshsig(&armoured, bytes, &key.key) {
        Err(why) => Ok(Some(format!("SSH signature ({name}{SSHSIG_SUFFIX}) {why}"))),
        Ok(check) => Ok((!verify_all(&[check]).first().copied().unwrap_or(false))
            .then(|| format!("SSH signature ({name}{SSHSIG_SUFFIX}) does not verify: rewritten"))),
    }
}

/// Check every store root (see the module docs). Returns problems as (file, reason); notes
/// that are not integrity failures go to `warnings`.
pub fn check(
    stores: &[StoreRoot],
    seen: &[Seen],
    beats: &[Beat],
    chains: &[ChainSummary],
    keys: &Keyring,
    warnings: &mut Vec<String>,
) -> Result<Vec<(PathBuf, String)>> {
    let mut problems = Vec::new();
    for store in stores {
        check_head(store, seen, beats, chains, keys, warnings, &mut problems)?;
        check_receipts(store, seen, keys, &mut problems)?;
    }
    Ok(problems)
}

fn reached(chains: &[ChainSummary], seq: u64, sha: &str) -> bool {
    chains.iter().any(|c| c.last_sequence > seq || (c.last_sequence == seq && c.head_sha256 == sha))
}

#[allow(clippy::too_many_arguments)]
fn check_head(
    store: &StoreRoot,
    seen: &[Seen],
    beats: &[Beat],
    chains: &[ChainSummary],
    keys: &Keyring,
    warnings: &mut Vec<String>,
    problems: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    let root = &store.root;
    let in_store: Vec<&Seen> = seen.iter().filter(|s| s.path.starts_with(root)).collect();
    let applies = |bundle: &str| store.month.as_ref().is_none_or(|m| bundle.starts_with(&format!("{m}/")));
    let signed_path = root.join(HEAD_FILE);
    let legacy_path = root.join(LEGACY_HEAD_FILE);
    let (seq, sha, bundle, shown) = if let Some(bytes) = read(&signed_path, fsutil::limits::SMALL, problems)? {
        let record: HeadRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                problems.push((signed_path.clone(), format!("not a chain head record: {e}")));
                return Ok(());
            }
        };
        if !applies(&record.bundle) {
            return Ok(());
        }
        if let Some(why) = check_signatures(&signed_path, &bytes, &record.key_id, keys, problems)? {
            problems.push((signed_path.clone(), format!("chain head {why}: the head was rewritten or replaced")));
        }
        (record.sequence, record.sha256, record.bundle, signed_path.clone())
    } else if let Some(bytes) = read(&legacy_path, fsutil::limits::SMALL, problems)? {
        let h: LegacyHead = match serde_json::from_slice(&bytes) {
            Ok(h) => h,
            Err(e) => {
                problems.push((legacy_path.clone(), format!("not a chain head: {e}")));
                return Ok(());
            }
        };
        if !applies(&h.bundle) {
            return Ok(());
        }
        match beats.iter().filter(|b| b.head_signed).min_by_key(|b| b.sequence) {
            Some(b) => problems.push((
                legacy_path.clone(),
                format!(
                    "the chain head is unsigned, but heartbeat {} (sequence {}) was written by an agent that signs it: the signed head ({HEAD_FILE}) was removed or replaced",
                    b.bundle_id, b.sequence
                ),
            )),
            None => warnings.push(format!(
                "{}: unsigned chain head of an agent older than signed heads; the agent replaces it with a signed one at its next start or append",
                legacy_path.display()
            )),
        }
        (h.sequence, h.sha256, h.bundle, legacy_path.clone())
    } else {
        let genesis_only = in_store.len() == 1 && in_store[0].sequence == 1;
        if genesis_only {
            warnings.push(format!("{}: no chain head yet beside the first bundle (written at the next append)", root.display()));
        } else if !in_store.is_empty() {
            problems.push((
                signed_path,
                format!(
                    "the store {} holds {} bundle(s) but no chain head: the head and perhaps the newest bundles were deleted",
                    root.display(),
                    in_store.len()
                ),
            ));
        }
        return Ok(());
    };
    if !reached(chains, seq, &sha) {
        problems.push((
            root.join(&bundle),
            format!("chain truncated: {} says the chain reached sequence {seq} with this bundle, which is missing or different", shown.display()),
        ));
    }
    Ok(())
}

fn check_receipts(store: &StoreRoot, seen: &[Seen], keys: &Keyring, problems: &mut Vec<(PathBuf, String)>) -> Result<()> {
    let rdir = store.root.join("receipts");
    let mut files = Vec::new();
    for year in numeric_dirs(&rdir, 4)? {
        for month in numeric_dirs(&year, 2)? {
            let rel = format!(
                "{}/{}",
                year.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                month.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            );
            if store.month.as_ref().is_some_and(|m| *m != rel) {
                continue;
            }
            for e in std::fs::read_dir(&month).map_err(|e| anyhow::anyhow!("reading {}: {e}", month.display()))? {
                let e = e.map_err(|e| anyhow::anyhow!("reading {}: {e}", month.display()))?;
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".receipt.json") && !n.starts_with(fsutil::TMP_PREFIX) {
                    files.push(e.path());
                }
            }
        }
    }
    files.sort();
    for path in files {
        let Some(bytes) = read(&path, fsutil::limits::RECEIPT, problems)? else { continue };
        let v: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                problems.push((path.clone(), format!("not an upload receipt: {e}")));
                continue;
            }
        };
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let (id, sha) = (field("bundle_id"), field("bundle_sha256"));
        let key_id = v.pointer("/signing/key_id").and_then(|x| x.as_str()).unwrap_or("");
        if let Some(why) = check_signatures(&path, &bytes, key_id, keys, problems)? {
            problems.push((path.clone(), format!("upload receipt {why}")));
        }
        let want = format!("{id}.json");
        let in_store: Vec<&Seen> = seen.iter().filter(|s| s.file_name == want && s.path.starts_with(&store.root)).collect();
        // Bundle ids sort in chain order (time never goes backwards along a chain).
        let pruned = store.pruned_through.as_deref().is_some_and(|last| id.as_str() <= last);
        match in_store.first() {
            None if pruned => {}
            None => problems.push((
                path.clone(),
                format!(
                    "upload receipt {} says bundle {id} (sha256 {sha}) was uploaded, but {want} is not in the store {}: evidence deleted after upload",
                    path.display(),
                    store.root.display()
                ),
            )),
            Some(s) if !in_store.iter().any(|s| s.sha256 == sha) => problems.push((
                s.path.clone(),
                format!("sha256 {} differs from {} uploaded according to receipt {}", s.sha256, sha, path.display()),
            )),
            Some(_) => {}
        }
    }
    Ok(())
}

fn numeric_dirs(dir: &Path, len: usize) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.len() == len && n.bytes().all(|b| b.is_ascii_digit()) && e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}
