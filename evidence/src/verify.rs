//! `msp-agent evidence verify`: signatures, chain, artifacts and runbook hashes.
//!
//! Algorithm (one read of each file, see `ARCHITECTURE.md`, "Evidence and keys"):
//! 1. collect `EB-YYYYMMDD-NNNN.json` files from the given paths (recursive; `.tmp-*` and
//!    hidden directories skipped);
//! 2. check each bundle on its own (in parallel): parse, id vs file name and directory, key
//!    chosen by `signing.key_id` and its window covering `generated_at`, raw signature and
//!    SSHSIG with `verify_strict`, artifacts, runbook hash;
//! 3. check each chain (bundles grouped by client and host, ordered by sequence): starts at 1
//!    with the genesis hash, no gaps, no two bundles with one sequence or one predecessor,
//!    each `prev_bundle_sha256` equal to the SHA-256 of the previous file, and not shorter
//!    than a store's `head.json` says;
//! 4. sort problems by bundle name: the first one is "the first bad bundle".

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use ed25519_dalek::Signature;
use serde::Serialize;
use ssh_key::{HashAlg, SshSig};

use crate::batch::{verify_all, SigCheck};
use crate::bundle::{Bundle, GENESIS_PREV_HASH};
use crate::heartbeat::{Beat, Gap};
use crate::keyring::Keyring;
use crate::store::{
    sha256_hex, BundleName, ARTIFACTS_SUFFIX, SIG_SUFFIX, SSHSIG_SUFFIX,
};
use crate::fsutil::{self, TMP_PREFIX};
use crate::keys::{ALGORITHM, NAMESPACE};

/// What verification checks against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Trusted keys with their windows.
    pub keys: Keyring,
    /// `runbook_id` → SHA-256 of every runbook file with that id, when `--runbooks` is given.
    pub runbooks: Option<HashMap<String, Vec<String>>>,
    /// Accept a chain that does not start at sequence 1 (checking part of a chain).
    pub partial: bool,
    /// Worker threads for the per-bundle checks (0 = one per core).
    pub threads: usize,
    /// Heartbeat gaps longer than this are errors (`--max-heartbeat-gap`); without it they
    /// are warnings (see [`crate::heartbeat`]).
    pub max_heartbeat_gap: Option<std::time::Duration>,
}

/// One thing wrong with one bundle.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// File name, e.g. `EB-20261122-0003.json`.
    pub bundle: String,
    pub path: PathBuf,
    pub reason: String,
    #[serde(skip)]
    /// Bundles by name first, then other files (the chain head, receipts).
    order: (bool, Option<BundleName>, PathBuf),
}

/// Summary of one chain (one client and host).
#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    pub client_id: String,
    pub hostname: String,
    pub bundles: usize,
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// SHA-256 of the last bundle's file.
    pub head_sha256: String,
}

/// The outcome of a verification run (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub bundles_checked: usize,
    pub bundles_invalid: usize,
    /// The first bad bundle (by name) and why.
    pub first_problem: Option<Problem>,
    /// Every problem found, first bad bundle first.
    pub problems: Vec<Problem>,
    pub chains: Vec<ChainSummary>,
    /// Gaps between heartbeats longer than the rule (see [`crate::heartbeat`]).
    pub heartbeat_gaps: Vec<Gap>,
    /// Things worth saying that are not integrity failures (an older agent's unsigned head).
    pub warnings: Vec<String>,
}

/// A store root among the verified directories: its chain head and upload receipts are
/// checked (see [`crate::storecheck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRoot {
    pub root: PathBuf,
    /// `Some("YYYY/MM")`: only this month was verified (the packet), so the head is checked
    /// only when it names a bundle of the month, and only the month's receipts are checked.
    pub month: Option<String>,
    /// The newest bundle id a valid signed prune record of this store names as pruned
    /// (`evidence::prune`): receipts of bundles up to it name evidence kept in WORM only.
    pub pruned_through: Option<String>,
}

/// The last bundle of each chain (for the gap after the last heartbeat).
fn chain_ends(links: &[Link]) -> Vec<crate::heartbeat::ChainEnd> {
    let mut ends: BTreeMap<(String, String), &Link> = BTreeMap::new();
    for l in links {
        let e = ends.entry(l.chain_key.clone()).or_insert(l);
        if l.sequence > e.sequence {
            *e = l;
        }
    }
    ends.into_values()
        .filter_map(|l| {
            Some(crate::heartbeat::ChainEnd {
                chain_key: l.chain_key.clone(),
                sequence: l.sequence,
                bundle_id: l.file_name.trim_end_matches(".json").to_string(),
                at: l.generated_at?,
            })
        })
        .collect()
}

/// Per-bundle facts the chain check needs.
#[derive(Debug, Clone)]
struct Link {
    path: PathBuf,
    file_name: String,
    name: Option<BundleName>,
    sha256: String,
    chain_key: (String, String),
    sequence: u64,
    prev: String,
    /// Set for heartbeat bundles.
    beat: Option<Beat>,
    generated_at: Option<DateTime<Utc>>,
    key_id: String,
}

/// Collect bundle files from files and directories (recursive). Returns the files and the
/// store roots among the directories (whose chain head and upload receipts are checked, see
/// [`crate::storecheck`]). A named path that does not exist is an error.
pub fn collect(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<StoreRoot>)> {
    let mut files = Vec::new();
    let mut heads = Vec::new();
    for p in paths {
        let meta = fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
        if meta.is_dir() {
            if crate::storecheck::is_store_root(p) {
                heads.push(StoreRoot { root: p.clone(), month: None, pruned_through: None });
            }
            walk(p, &mut files)?;
        } else {
            // Named files too: `verify 2026/11/*` passes the signatures and artifacts as well.
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if BundleName::parse_file_name(&name).is_some() {
                files.push(p.clone());
            } else {
                tracing::debug!(file = %p.display(), "not an EB-YYYYMMDD-NNNN.json bundle, ignored");
            }
        }
    }
    files.sort();
    files.dedup();
    Ok((files, heads))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in
        fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            // `.tmp-*` temporaries, `.orphans/`, `.lock`: never evidence.
            continue;
        }
        let ft = entry
            .file_type()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        if ft.is_dir() {
            if !name.ends_with(ARTIFACTS_SUFFIX) {
                walk(&entry.path(), out)?;
            }
        } else if BundleName::parse_file_name(&name).is_some() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Read a runbook directory (recursive): every `*.yaml`/`*.yml` with a top-level `id:`.
pub fn runbook_index(dir: &Path) -> Result<HashMap<String, Vec<String>>> {
    fn visit(dir: &Path, idx: &mut HashMap<String, Vec<String>>) -> Result<()> {
        for entry in fs::read_dir(dir)
            .with_context(|| format!("reading runbook directory {}", dir.display()))?
        {
            let entry =
                entry.with_context(|| format!("reading runbook directory {}", dir.display()))?;
            let path = entry.path();
            if entry
                .file_type()
                .with_context(|| format!("reading {}", path.display()))?
                .is_dir()
            {
                visit(&path, idx)?;
                continue;
            }
            let is_yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if !is_yaml {
                continue;
            }
            let bytes = fsutil::read_regular(&path, fsutil::limits::RUNBOOK)
                .with_context(|| format!("reading runbook {}", path.display()))?;
            let doc: serde_yaml_ng::Value = match serde_yaml_ng::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(runbook = %path.display(), "not YAML, ignored: {e}");
                    continue;
                }
            };
            match doc.get("id").and_then(|v| v.as_str()) {
                Some(id) => idx
                    .entry(id.to_string())
                    .or_default()
                    .push(sha256_hex(&bytes)),
                None => tracing::warn!(runbook = %path.display(), "no top-level `id:`, ignored"),
            }
        }
        Ok(())
    }
    let mut idx = HashMap::new();
    visit(dir, &mut idx)?;
    Ok(idx)
}

/// Verify bundle files (see the module docs). `Err` only for I/O errors on the bundles
/// themselves; everything wrong with the evidence is a [`Problem`] in the report.
pub fn verify_files(files: &[PathBuf], heads: &[StoreRoot], opts: &VerifyOptions) -> Result<Report> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
    .min(files.len() / 64 + 1)
    .max(1);
    let results: Vec<Result<(Vec<Problem>, Vec<Link>)>> = if threads == 1 {
        vec![check_files(files, opts)]
    } else {
        let chunk = files.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|c| s.spawn(move || check_files(c, opts)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut problems = Vec::new();
    let mut links = Vec::with_capacity(files.len());
    for r in results {
        let (p, l) = r?;
        problems.extend(p);
        links.extend(l);
    }
    let beats: Vec<Beat> = links.iter().filter_map(|l| l.beat.clone()).collect();
    let mut heartbeat_gaps = crate::heartbeat::gaps(beats.clone(), opts.max_heartbeat_gap);
    let ends: Vec<crate::heartbeat::ChainEnd> = chain_ends(&links);
    heartbeat_gaps.extend(crate::heartbeat::tail_gaps(&beats, &ends, opts.max_heartbeat_gap));
    let seen: Vec<crate::storecheck::Seen> = links
        .iter()
        .map(|l| crate::storecheck::Seen { file_name: l.file_name.clone(), path: l.path.clone(), sha256: l.sha256.clone(), sequence: l.sequence, chain_key: l.chain_key.clone() })
        .collect();
    for (path, reason) in crate::heartbeat::position_problems(&beats, &seen) {
        problems.push(problem(&path, reason));
    }
    let chains = check_chains(links, opts, &mut problems)?;
    let mut warnings = Vec::new();
    for (path, reason) in crate::storecheck::check(heads, &seen, &beats, &chains, &opts.keys, &mut warnings)? {
        problems.push(problem(&path, reason));
    }
    problems.sort_by(|a, b| a.order.cmp(&b.order));
    let mut bad: Vec<&Path> = problems.iter().map(|p| p.path.as_path()).collect();
    bad.sort();
    bad.dedup();
    Ok(Report {
        warnings,
        ok: problems.is_empty() && !heartbeat_gaps.iter().any(|g| g.error),
        heartbeat_gaps,
        bundles_checked: files.len(),
        bundles_invalid: bad.len(),
        first_problem: problems.first().cloned(),
        problems,
        chains,
    })
}

fn problem(path: &Path, reason: String) -> Problem {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = BundleName::parse_file_name(&file_name);
    Problem {
        bundle: file_name,
        path: path.to_path_buf(),
        reason,
        order: (name.is_none(), name, path.to_path_buf()),
    }
}

/// Read a companion file (signature, artifact) of at most `limit` bytes; `None` when it does
/// not exist or is refused (a FIFO, device, symlink or oversized file: the reason is pushed
/// to `refused`, to be reported as a problem of the bundle).
fn read_companion(path: &Path, limit: u64, refused: &mut Vec<String>) -> Result<Option<Vec<u8>>> {
    match fsutil::read_regular_opt(path, limit) {
        Ok(b) => Ok(b),
        Err(e) => match fsutil::refused(&e) {
            Some(why) => {
                refused.push(format!("not read: {why}"));
                Ok(None)
            }
            None => Err(e),
        },
    }
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Per-bundle checks of some files, signatures verified in batches at the end.
fn check_files(files: &[PathBuf], opts: &VerifyOptions) -> Result<(Vec<Problem>, Vec<Link>)> {
    let mut problems = Vec::new();
    let mut links = Vec::with_capacity(files.len());
    let mut sigs = Vec::with_capacity(2 * files.len());
    let mut on_failure = Vec::with_capacity(2 * files.len());
    for f in files {
        let (p, link) = check_bundle(f, opts, &mut |check, problem| {
            sigs.push(check);
            on_failure.push(problem);
        })?;
        problems.extend(p);
        links.extend(link);
    }
    for (ok, problem) in verify_all(&sigs).into_iter().zip(on_failure) {
        if !ok {
            problems.push(problem);
        }
    }
    Ok((problems, links))
}

/// All checks of one bundle that need no other bundle. Signature checks are handed to
/// `defer` with the problem to report if the signature turns out invalid.
fn check_bundle(
    path: &Path,
    opts: &VerifyOptions,
    defer: &mut dyn FnMut(SigCheck, Problem),
) -> Result<(Vec<Problem>, Option<Link>)> {
    let mut problems = Vec::new();
    let bytes = match fsutil::read_regular(path, fsutil::limits::BUNDLE) {
        Ok(b) => b,
        Err(e) => match fsutil::refused(&e) {
            // A FIFO, device, symlink or giant named like a bundle: named, never read.
            Some(why) => {
                problems.push(problem(path, format!("not read: {why}")));
                return Ok((problems, None));
            }
            None => return Err(e),
        },
    };
    let sha256 = sha256_hex(&bytes);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = BundleName::parse_file_name(&file_name);
    let mut unreadable = Vec::new();
    let raw_sig = read_companion(&companion(path, SIG_SUFFIX), fsutil::limits::RAW_SIG, &mut unreadable)?;

    let bundle: Bundle = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            // Say whether the bytes are still what was signed: they rarely are.
            let signed_by = raw_sig.as_deref().and_then(|s| {
                let sig = Signature::from_slice(s).ok()?;
                opts.keys
                    .keys
                    .values()
                    .find(|k| k.key.verify_strict(&bytes, &sig).is_ok())
            });
            let why = match signed_by {
                Some(k) => format!("validly signed by {} but not a valid bundle: {e}", k.info.key_id),
                None => format!("not a valid bundle ({e}) and its raw signature does not verify with any trusted key: the file was modified"),
            };
            problems.push(problem(path, why));
            return Ok((problems, None));
        }
    };
    let sig_refused = !unreadable.is_empty();
    let mut bad = |reason: String| problems.push(problem(path, reason));
    for why in unreadable.drain(..) {
        bad(why);
    }

    // Identity: the id is the file name, the file sits in its YYYY/MM directory.
    if Some(bundle.bundle_id.as_str()) != file_name.strip_suffix(".json") {
        bad(format!(
            "bundle_id {} does not match the file name (renamed, moved or reordered)",
            bundle.bundle_id
        ));
    }
    if let Some(n) = name {
        let month = path.parent();
        let year = month.and_then(Path::parent);
        let as_num = |p: Option<&Path>, len: usize| {
            p.and_then(Path::file_name)
                .and_then(|s| s.to_str())
                .filter(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_string)
        };
        if let (Some(y), Some(m)) = (as_num(year, 4), as_num(month, 2)) {
            if PathBuf::from(&y).join(&m) != n.month_dir() {
                bad(format!(
                    "is in directory {y}/{m}, not {}",
                    n.month_dir().display()
                ));
            }
        }
    }
    let generated_at = match DateTime::parse_from_rfc3339(&bundle.generated_at) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            bad(format!(
                "generated_at {:?} is not an RFC 3339 time: {e}",
                bundle.generated_at
            ));
            None
        }
    };
    if let (Some(t), Some(n)) = (generated_at, BundleName::parse_id(&bundle.bundle_id)) {
        let day: u32 = t.format("%Y%m%d").to_string().parse().unwrap_or(0);
        if day != n.day {
            bad(format!(
                "generated_at {} is not on the day in bundle_id {}",
                bundle.generated_at, bundle.bundle_id
            ));
        }
    }

    // Signatures, with the key named by the bundle and valid at its time.
    let key = opts.keys.get(&bundle.signing.key_id);
    if bundle.signing.algorithm != ALGORITHM {
        bad(format!(
            "signing.algorithm is {:?}, expected {ALGORITHM:?}",
            bundle.signing.algorithm
        ));
    }
    match (key, generated_at) {
        (None, _) => bad(format!(
            "signed by unknown key {} (not in the key directory)",
            bundle.signing.key_id
        )),
        (Some(k), Some(t)) if k.compromised_since.is_some_and(|c| t > c) => bad(format!(
            "signed by key {} after its compromise at {}: generated_at {} (key revoked; untrusted)",
            k.info.key_id,
            k.info.compromised_since.as_deref().unwrap_or("?"),
            bundle.generated_at
        )),
        (Some(k), Some(t)) if !k.covers(t) => bad(format!(
            "signed by key {} outside its validity window ({} to {}): generated_at {}",
            k.info.key_id,
            k.info.valid_from,
            k.info.valid_until.as_deref().unwrap_or("now"),
            bundle.generated_at
        )),
        _ => {}
    }
    if let Some(k) = key {
        match raw_sig.as_deref().map(<[u8; 64]>::try_from) {
            None if sig_refused => {}
            None => bad(format!("missing {file_name}{SIG_SUFFIX}")),
            Some(Err(_)) => bad(format!(
                "{file_name}{SIG_SUFFIX} is {} bytes, not a 64-byte Ed25519 signature",
                raw_sig.as_ref().map_or(0, Vec::len)
            )),
            Some(Ok(sig)) => defer(
                SigCheck::new(k.key, &sig, &bytes),
                problem(
                    path,
                    format!(
                        "raw signature ({file_name}{SIG_SUFFIX}) does not verify with key {}: bundle or signature modified",
                        k.info.key_id
                    ),
                ),
            ),
        }
        let sshsig = read_companion(&companion(path, SSHSIG_SUFFIX), fsutil::limits::SSHSIG, &mut unreadable)?;
        let sshsig_refused = !unreadable.is_empty();
        for why in unreadable.drain(..) {
            bad(why);
        }
        match sshsig {
            None if sshsig_refused => {}
            None => bad(format!("missing {file_name}{SSHSIG_SUFFIX}")),
            Some(s) => match prepare_sshsig(&s, &bytes, &k.key) {
                Err(why) => bad(format!("SSH signature ({file_name}{SSHSIG_SUFFIX}) {why}")),
                Ok(check) => defer(
                    check,
                    problem(
                        path,
                        format!("SSH signature ({file_name}{SSHSIG_SUFFIX}) does not verify: bundle or signature modified"),
                    ),
                ),
            },
        }
    }

    check_artifacts(path, &bundle, &mut bad)?;

    if let Some(idx) = &opts.runbooks {
        let rb = &bundle.runbook;
        // Records that ran no runbook (escalations, suppressions, heartbeats, backup records)
        // name the runbook "none"; there is no file to compare with, but they must not claim
        // to have executed anything.
        let ran_nothing = rb.runbook_id == crate::bundle::NO_RUNBOOK_ID;
        match idx.get(&rb.runbook_id) {
            None if ran_nothing && rb.steps_executed == 0 && bundle.actions_taken.is_empty() => {}
            None => bad(format!(
                "runbook {} is not in the runbook directory",
                rb.runbook_id
            )),
            Some(hashes) if !hashes.contains(&rb.runbook_hash) => bad(format!(
                "runbook_hash {} of {} matches no runbook file with that id (runbook changed?)",
                rb.runbook_hash, rb.runbook_id
            )),
            Some(_) => {}
        }
    }

    let link = Link {
        beat: Beat::of(&bundle),
        path: path.to_path_buf(),
        file_name,
        name,
        sha256,
        chain_key: (bundle.client_id, bundle.hostname),
        sequence: bundle.chain.sequence,
        prev: bundle.chain.prev_bundle_sha256,
        generated_at,
        key_id: bundle.signing.key_id,
    };
    Ok((problems, Some(link)))
}

/// Check an armoured SSHSIG's envelope (namespace, key, hash) and prepare the check of its
/// Ed25519 signature over the SSHSIG signed data for `msg`.
pub fn prepare_sshsig(
    armoured: &[u8],
    msg: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> std::result::Result<SigCheck, String> {
    let sig = crate::keys::sshsig_from_canonical_pem(armoured)?;
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "has namespace {:?}, expected {NAMESPACE:?}",
            sig.namespace()
        ));
    }
    let Some(pk) = sig.public_key().ed25519() else {
        return Err("is not an Ed25519 signature".into());
    };
    if pk.0 != key.to_bytes() {
        return Err("was made by a different key than signing.key_id names".into());
    }
    if !matches!(sig.hash_alg(), HashAlg::Sha512 | HashAlg::Sha256) {
        return Err("uses an unsupported hash".into());
    }
    // `SshSig::signed_data` builds exactly what ssh-keygen signs; the reserved field is
    // always empty in signatures we accept.
    if !sig.reserved().is_empty() {
        return Err("has a non-empty reserved field".into());
    }
    let data = SshSig::signed_data(NAMESPACE, sig.hash_alg(), msg).map_err(|e| e.to_string())?;
    let raw = <[u8; 64]>::try_from(sig.signature_bytes())
        .map_err(|_| "has a malformed Ed25519 signature".to_string())?;
    Ok(SigCheck::new(*key, &raw, &data))
}

fn check_artifacts(path: &Path, bundle: &Bundle, bad: &mut impl FnMut(String)) -> Result<()> {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".json").unwrap_or(&stem);
    let adir = path.with_file_name(format!("{stem}{ARTIFACTS_SUFFIX}"));
    // A symlinked artifacts directory would lead out of the store.
    if fs::symlink_metadata(&adir).is_ok_and(|m| !m.is_dir()) {
        bad(format!("{stem}{ARTIFACTS_SUFFIX} is not a directory (a symlink or a file); not followed"));
        return Ok(());
    }
    let mut on_disk: Vec<String> = match fs::read_dir(&adir) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                let e = e.with_context(|| format!("reading {}", adir.display()))?;
                let n = e.file_name().to_string_lossy().into_owned();
                if !n.starts_with(TMP_PREFIX) {
                    v.push(n);
                }
            }
            v
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", adir.display())),
    };
    for a in &bundle.artifacts {
        if !crate::store::valid_artifact_name(&a.filename) {
            bad(format!(
                "artifact name {:?} is not a plain file name",
                a.filename
            ));
            continue;
        }
        let ap = adir.join(&a.filename);
        let mut refused = Vec::new();
        let read = read_companion(&ap, fsutil::limits::ARTIFACT, &mut refused)?;
        for why in refused {
            bad(format!("artifact {}: {why}", a.filename));
        }
        match read {
            None if fs::symlink_metadata(&ap).is_ok() => {}
            None => bad(format!("artifact {} is missing", a.filename)),
            Some(b) if b.len() as u64 != a.size_bytes => bad(format!(
                "artifact {} is {} bytes, the bundle says {}",
                a.filename,
                b.len(),
                a.size_bytes
            )),
            Some(b) if sha256_hex(&b) != a.sha256 => bad(format!(
                "artifact {} sha256 does not match (modified)",
                a.filename
            )),
            Some(_) => {}
        }
        on_disk.retain(|n| n != &a.filename);
    }
    on_disk.sort();
    for extra in on_disk {
        bad(format!(
            "artifact {extra} in {stem}{ARTIFACTS_SUFFIX}/ is not listed in the bundle (inserted)"
        ));
    }
    Ok(())
}

/// Chain rules over the parsed bundles; problems are pushed, summaries returned.
///
/// Bundles are grouped by (client_id, hostname) and then by sequence. When two bundles share
/// a sequence (a fork), the one the next bundle links to is taken as the chain's and the other
/// is named; with no successor to decide, the later name is named.
fn check_chains(
    links: Vec<Link>,
    opts: &VerifyOptions,
    problems: &mut Vec<Problem>,
) -> Result<Vec<ChainSummary>> {
    let mut groups: BTreeMap<(String, String), Vec<Link>> = BTreeMap::new();
    for l in links {
        groups.entry(l.chain_key.clone()).or_default().push(l);
    }
    let mut summaries = Vec::new();
    for ((client_id, hostname), mut chain) in groups {
        chain.sort_by(|a, b| (a.sequence, a.name, &a.path).cmp(&(b.sequence, b.name, &b.path)));
        let mut by_seq: BTreeMap<u64, Vec<&Link>> = BTreeMap::new();
        for l in &chain {
            by_seq.entry(l.sequence).or_default().push(l);
        }
        // Forks: one sequence used twice. `kept` is the bundle the chain continues from.
        let mut kept: BTreeMap<u64, &Link> = BTreeMap::new();
        for (seq, same) in &by_seq {
            let linked: Vec<&Link> = match by_seq.get(&(seq + 1)) {
                Some(next) => same
                    .iter()
                    .copied()
                    .filter(|l| next.iter().any(|n| n.prev == l.sha256))
                    .collect(),
                None => Vec::new(),
            };
            let keep = linked.first().copied().unwrap_or(same[0]);
            kept.insert(*seq, keep);
            for l in same.iter().filter(|l| l.path != keep.path) {
                problems.push(problem(
                    &l.path,
                    format!("fork: sequence {seq} is also used by {}", keep.file_name),
                ));
            }
        }
        // Forks: one predecessor claimed twice (with different sequences).
        let mut by_prev: HashMap<&str, &Link> = HashMap::new();
        for l in &chain {
            if let Some(other) = by_prev.insert(l.prev.as_str(), l) {
                if other.sequence != l.sequence {
                    problems.push(problem(
                        &l.path,
                        format!("fork: same prev_bundle_sha256 as {} (two bundles claim one predecessor)", other.file_name),
                    ));
                }
            }
        }
        // Links between consecutive sequences.
        let mut prev_seq: Option<(u64, &Link)> = None;
        for (seq, same) in &by_seq {
            for l in same {
                match prev_seq {
                    None => {
                        if *seq == 1 && l.prev != GENESIS_PREV_HASH {
                            problems.push(problem(
                                &l.path,
                                "chain broken: sequence 1 must have the genesis prev_bundle_sha256"
                                    .into(),
                            ));
                        } else if *seq != 1 && !opts.partial {
                            problems.push(problem(
                                &l.path,
                                format!(
                                    "chain broken: the chain starts at sequence {seq} (bundles 1 to {} missing or not given; --partial checks part of a chain)",
                                    seq - 1
                                ),
                            ));
                        }
                    }
                    Some((pseq, named)) => {
                        if *seq > pseq + 1 {
                            problems.push(problem(
                                &l.path,
                                format!(
                                    "chain broken: sequence {seq} follows sequence {pseq} ({}): {} bundle(s) missing",
                                    named.file_name,
                                    seq - pseq - 1
                                ),
                            ));
                        } else if named.sha256 != l.prev {
                            problems.push(problem(
                                &l.path,
                                format!(
                                    "chain broken: prev_bundle_sha256 does not match {}",
                                    named.file_name
                                ),
                            ));
                        }
                        if l.prev == GENESIS_PREV_HASH {
                            problems.push(problem(
                                &l.path,
                                "chain broken: a second genesis bundle".into(),
                            ));
                        }
                        // Time never goes backwards along the chain (the writer holds a clock
                        // that went back at the head's time), so a bundle dated before its
                        // predecessor was not written by this chain's writer in order: e.g. a
                        // retired key back-dating a bundle into its old window.
                        if let (Some(a), Some(b)) = (named.generated_at, l.generated_at) {
                            if b < a {
                                problems.push(problem(
                                    &l.path,
                                    format!(
                                        "time goes backwards: generated_at {} is before {} of {} (sequence {pseq})",
                                        crate::rfc3339(b),
                                        crate::rfc3339(a),
                                        named.file_name
                                    ),
                                ));
                            }
                        }
                        // Same day: the per-day number must grow with the sequence.
                        if let (Some(a), Some(n)) = (named.name, l.name) {
                            if a.day == n.day && n.n < a.n {
                                problems.push(problem(
                                    &l.path,
                                    format!(
                                        "out of order: sequence {seq} has a lower number than {} (sequence {pseq})",
                                        named.file_name
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            prev_seq = kept.get(seq).map(|k| (*seq, *k));
        }
        // A retired key never signs after its successor has: once a bundle signed by a key
        // with a later window is in the chain, a later bundle signed by an earlier key is a
        // back-dated extension (its window may still cover the date it claims).
        let mut newest: Option<(&Link, DateTime<Utc>)> = None;
        for (seq, k) in &kept {
            let Some(key) = opts.keys.get(&k.key_id) else { continue };
            match newest {
                Some((n, from)) if key.valid_from < from => problems.push(problem(
                    &k.path,
                    format!(
                        "signed by retired key {} after its successor {} signed {} (sequence {}); this is sequence {seq}",
                        k.key_id, n.key_id, n.file_name, n.sequence
                    ),
                )),
                Some((_, from)) if key.valid_from <= from => {}
                _ => newest = Some((k, key.valid_from)),
            }
        }
        compromised_after(&kept, opts, problems);
        if let (Some(first), Some(last)) = (chain.first(), chain.last()) {
            summaries.push(ChainSummary {
                client_id,
                hostname,
                bundles: chain.len(),
                first_sequence: first.sequence,
                last_sequence: last.sequence,
                head_sha256: last.sha256.clone(),
            });
        }
    }
    Ok(summaries)
}

/// A revoked key's bundles after its compromise, judged by chain position rather than by the
/// `generated_at` the signer chose: once the chain holds a bundle dated after the compromise
/// time (by any key), every later bundle signed by the revoked key is untrusted, whatever date
/// it claims. (A bundle it dates after the time is named by the window check; one it dates
/// before the time but places after a later-dated bundle is also "time goes backwards".)
fn compromised_after(kept: &BTreeMap<u64, &Link>, opts: &VerifyOptions, problems: &mut Vec<Problem>) {
    for key in opts.keys.keys.values() {
        let Some(since) = key.compromised_since else { continue };
        let mut first_after: Option<&Link> = None;
        for l in kept.values() {
            if let Some(f) = first_after {
                if l.key_id == key.info.key_id && l.generated_at.is_some_and(|t| t <= since) {
                    problems.push(problem(
                        &l.path,
                        format!(
                            "signed by key {} after its compromise at {}: it follows {} (sequence {}, dated after the compromise) in the chain",
                            key.info.key_id,
                            key.info.compromised_since.as_deref().unwrap_or("?"),
                            f.file_name,
                            f.sequence
                        ),
                    ));
                }
            } else if l.generated_at.is_some_and(|t| t > since) {
                first_after = Some(l);
            }
        }
    }
}
