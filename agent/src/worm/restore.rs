//! `worm restore` and `worm restore-test`: download a host's evidence from the bucket (every
//! GET checked against the server's checksum, and against the signed receipt where one
//! exists), write it as an evidence store, and say what is missing or different.
//!
//! Which version is restored: the one the local receipt names; without a receipt, the oldest
//! live version (the uploader never puts an object twice, so a later version is something
//! else's write). Any key with more than one live version, or whose latest version is a
//! delete marker, is named as tampered, whatever was restored.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::config::WormConfig;
use super::local::{self, id_order, LocalBundle};
use super::receipt::{self, Receipt};
use super::s3::{ObjectVersion, S3Client};
use super::sync::host_prefix;
use crate::evidence::keyring::Keyring;
use crate::evidence::verify;
use crate::fsutil;

/// What a restore found.
#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Objects downloaded and written.
    pub restored: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Objects a receipt or the (confirmed) local store names that the bucket does not hold.
    pub missing: Vec<String>,
    /// Objects whose bytes differ from the receipt or the local copy, or whose download did
    /// not match the server's checksum.
    pub differing: Vec<String>,
    /// Keys with more than one live version or a delete marker on top (named, with why).
    pub tampered: Vec<String>,
    /// Keys under the host prefix that are not evidence files (not written).
    pub skipped: Vec<String>,
    /// `evidence verify` over the restored store: the first problem, if any.
    pub verify_problem: Option<String>,
    /// Bundles the restored store verified.
    pub bundles_verified: usize,
    /// Receipts copied from the local store into the restored one.
    pub receipts_copied: usize,
    /// The sequence the restored chain's new signed head names (`None`: no signing key in
    /// `--keys`, so the copy has no head and `evidence verify` reports that).
    pub head_sealed: Option<u64>,
}

impl RestoreReport {
    /// Nothing missing, different or tampered, and the restored store verifies.
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.differing.is_empty()
            && self.tampered.is_empty()
            && self.verify_problem.is_none()
    }
}

/// One evidence file in the bucket: its key, its path below the store root (`YYYY/MM/rel`),
/// the bundle it belongs to, and its versions (newest first, as S3 lists them).
#[derive(Debug)]
pub struct RemoteFile {
    pub key: String,
    pub year: String,
    pub month: String,
    /// File name relative to the month directory (`EB-….json`, `EB-….artifacts/x`).
    pub rel: String,
    pub bundle_id: String,
    pub versions: Vec<ObjectVersion>,
}

impl RemoteFile {
    /// The store path below the root.
    pub fn store_rel(&self) -> PathBuf {
        Path::new(&self.year).join(&self.month).join(&self.rel)
    }
    /// A bundle stand-in for the receipt path functions.
    pub fn bundle(&self) -> LocalBundle {
        LocalBundle { id: self.bundle_id.clone(), year: self.year.clone(), month: self.month.clone(), files: vec![] }
    }
    /// Live (non-delete-marker) versions.
    pub fn live(&self) -> Vec<&ObjectVersion> {
        self.versions.iter().filter(|v| !v.delete_marker).collect()
    }
    /// Why this key looks tampered with, if it does.
    pub fn tamper_reason(&self) -> Option<String> {
        let live = self.live().len();
        if self.versions.iter().any(|v| v.is_latest && v.delete_marker) {
            return Some(format!("{}: latest version is a delete marker", self.key));
        }
        if live > 1 {
            return Some(format!("{}: {live} versions, the uploader writes exactly one", self.key));
        }
        None
    }
}

/// Parse `YYYY/MM/REL` below the host prefix; `None` for anything that is not an evidence
/// file name (keys are hostile input: no `..`, no absolute paths, no odd bundle ids).
fn parse_rel(rest: &str) -> Option<(String, String, String, String)> {
    let mut parts = rest.splitn(3, '/');
    let (y, m, rel) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) || m.len() != 2 || !m.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !Path::new(rel).components().all(|c| matches!(c, Component::Normal(_))) || rel.contains('\\') {
        return None;
    }
    let first = rel.split('/').next()?;
    let id = first
        .strip_suffix(".json")
        .or_else(|| first.strip_suffix(".json.sig"))
        .or_else(|| first.strip_suffix(".json.sshsig"))
        .or_else(|| first.strip_suffix(".artifacts"))?;
    id_order(id)?;
    let depth = rel.split('/').count();
    let artifacts = first.ends_with(".artifacts");
    if (artifacts && depth < 2) || (!artifacts && depth != 1) || rel.split('/').any(|s| s.starts_with('.')) {
        return None;
    }
    Some((y.into(), m.into(), rel.into(), id.into()))
}

/// List the host's evidence files in the bucket (optionally one month, `YYYY/MM`), grouped
/// by key. Keys that are not evidence files go to `skipped`.
pub fn list_remote(
    client: &S3Client,
    cfg: &WormConfig,
    client_id: &str,
    host: &str,
    month: Option<&str>,
    skipped: &mut Vec<String>,
) -> Result<Vec<RemoteFile>> {
    let hp = host_prefix(&cfg.prefix, client_id, host);
    let prefix = match month {
        Some(m) => format!("{hp}{m}/"),
        None => hp.clone(),
    };
    let versions = client.list_object_versions(&prefix).context("listing the bucket")?;
    let mut by_key: BTreeMap<String, Vec<ObjectVersion>> = BTreeMap::new();
    for v in versions {
        by_key.entry(v.key.clone()).or_default().push(v);
    }
    let mut out = Vec::new();
    for (key, versions) in by_key {
        let Some((year, month, rel, bundle_id)) = key.strip_prefix(&hp).and_then(parse_rel) else {
            skipped.push(key);
            continue;
        };
        out.push(RemoteFile { key, year, month, rel, bundle_id, versions });
    }
    out.sort_by(|a, b| (id_order(&a.bundle_id), &a.rel).cmp(&(id_order(&b.bundle_id), &b.rel)));
    Ok(out)
}

/// Receipts of the local store, by bundle id (unreadable ones are an error naming the file).
fn local_receipts(evidence_dir: Option<&Path>, files: &[RemoteFile], bundles: &[LocalBundle]) -> Result<BTreeMap<String, Receipt>> {
    let mut out = BTreeMap::new();
    let Some(dir) = evidence_dir else { return Ok(out) };
    let mut candidates: Vec<LocalBundle> = files.iter().map(RemoteFile::bundle).collect();
    candidates.extend(bundles.iter().cloned());
    for b in candidates {
        if out.contains_key(&b.id) {
            continue;
        }
        if let Some(r) = receipt::read(dir, &b)? {
            out.insert(b.id.clone(), r);
        }
    }
    Ok(out)
}

/// `YYYY-MM` → `YYYY/MM`.
pub fn month_path(m: &str) -> Result<String> {
    let ok = m.len() == 7
        && m.as_bytes()[4] == b'-'
        && m[..4].bytes().all(|b| b.is_ascii_digit())
        && m[5..].bytes().all(|b| b.is_ascii_digit())
        && (1..=12).contains(&m[5..].parse::<u32>().unwrap_or(0));
    if !ok {
        bail!("--month {m:?}: expected YYYY-MM");
    }
    Ok(format!("{}/{}", &m[..4], &m[5..]))
}

/// Restore the host's evidence (or one month of it) into `to` and compare it with the local
/// store and receipts at `evidence_dir` (when there is one; its outbox in `state_dir` says
/// which local bundles are confirmed). `to` must be empty or absent.
// The arguments are the command's flags; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn restore(
    client: &S3Client,
    cfg: &WormConfig,
    client_id: &str,
    host: &str,
    to: &Path,
    month: Option<&str>,
    evidence_dir: Option<&Path>,
    state_dir: Option<&Path>,
    keys: &Keyring,
    signer: Option<&crate::keys::Signer>,
) -> Result<RestoreReport> {
    if to.exists() && std::fs::read_dir(to).with_context(|| format!("reading {}", to.display()))?.next().is_some() {
        bail!("{} is not empty; restore writes a fresh store (pick a new directory)", to.display());
    }
    fsutil::create_dir_all(to, 0o755)?;
    let mut report = RestoreReport::default();
    let files = list_remote(client, cfg, client_id, host, month, &mut report.skipped)?;
    let local_bundles = match evidence_dir {
        Some(d) => local::scan(d)?,
        None => Vec::new(),
    };
    let receipts = local_receipts(evidence_dir, &files, &local_bundles)?;

    let mut present = std::collections::BTreeSet::new();
    for f in &files {
        present.insert(f.key.clone());
        if let Some(why) = f.tamper_reason() {
            report.tampered.push(why);
        }
        let receipted = receipts.get(&f.bundle_id).and_then(|r| r.objects.iter().find(|o| o.key == f.key));
        let live = f.live();
        let chosen = match receipted.filter(|o| !o.version_id.is_empty()) {
            Some(o) => match live.iter().find(|v| v.version_id == o.version_id) {
                Some(v) => Some(*v),
                None => {
                    report.missing.push(format!("{}: version {} named in the receipt is not in the bucket", f.key, o.version_id));
                    live.last().copied()
                }
            },
            None => live.last().copied(),
        };
        let Some(v) = chosen else {
            report.missing.push(format!("{}: only delete markers", f.key));
            continue;
        };
        let got = match client.get_object(&f.key, Some(&v.version_id).filter(|s| !s.is_empty()).map(String::as_str)) {
            Ok(g) => g,
            Err(e) if e.code() == Some("ChecksumMismatch") => {
                report.differing.push(format!("{}: {e}", f.key));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("downloading {}", f.key)),
        };
        if let Some(o) = receipted {
            if o.sha256 != got.sha256_hex {
                report.differing.push(format!("{}: sha256 {} but the receipt says {}", f.key, got.sha256_hex, o.sha256));
            }
        }
        if let Some(d) = evidence_dir {
            let local_path = d.join(f.store_rel());
            if let Ok(bytes) = std::fs::read(&local_path) {
                let sha = crate::evidence::store::sha256_hex(&bytes);
                if sha != got.sha256_hex {
                    report.differing.push(format!("{}: sha256 {} but the local copy {} is {sha}", f.key, got.sha256_hex, local_path.display()));
                }
            }
        }
        let dest = to.join(f.store_rel());
        let dir = dest.parent().context("restore path has no directory")?;
        fsutil::create_dir_all(dir, 0o755)?;
        fsutil::write_once(&dest, &got.body, 0o444).with_context(|| format!("writing {}", dest.display()))?;
        report.restored += 1;
        report.bytes += got.body.len() as u64;
    }

    // What the receipts and the confirmed local store say should be there.
    let want_month = month.map(str::to_string);
    for r in receipts.values() {
        for o in &r.objects {
            let in_scope = match want_month.as_deref() {
                Some(m) => o.key.contains(&format!("/{m}/")),
                None => true,
            };
            if in_scope && !present.contains(&o.key) {
                report.missing.push(format!("{}: named in receipt of {} but not in the bucket", o.key, r.bundle_id));
            }
        }
    }
    if let Some(d) = evidence_dir {
        let outbox = match state_dir {
            Some(s) => Some(super::outbox::Outbox::open(s)?).filter(|o| !o.fresh),
            None => None,
        };
        for b in &local_bundles {
            if want_month.as_deref().is_some_and(|m| format!("{}/{}", b.year, b.month) != m) {
                continue;
            }
            let confirmed = outbox.as_ref().is_some_and(|o| o.is_confirmed(&b.id)) || receipts.contains_key(&b.id);
            if !confirmed {
                continue;
            }
            for lf in &b.files {
                let key = super::sync::object_key(&cfg.prefix, client_id, host, b, &lf.rel);
                if !present.contains(&key) && !report.missing.iter().any(|m| m.starts_with(&key)) {
                    report.missing.push(format!("{key}: the local store has it (confirmed) but the bucket does not"));
                }
            }
        }
        // Receipts are not uploaded (they are outside the chain); carry them over.
        let rdir = d.join("receipts");
        if rdir.is_dir() {
            report.receipts_copied = copy_receipts(&rdir, &to.join("receipts"), want_month.as_deref())?;
        }
    }
    report.missing.sort();
    report.missing.dedup();

    // A whole restored chain with nothing missing or different gets a signed head when the
    // signing key is at hand (the operator on the host), so it verifies and the agent can
    // continue it; a copy restored elsewhere, with public keys only, stays headless.
    // (Tampered keys do not stop it: the receipted, original version is what was restored.)
    if month.is_none() && report.missing.is_empty() && report.differing.is_empty() {
        if let Some(signer) = signer {
            report.head_sealed = crate::evidence::store::EvidenceStore::seal_restored(to, signer, chrono::Utc::now())?;
        }
    }
    // Does the restored store verify? One month alone is part of a chain.
    let (vfiles, mut heads) = verify::collect(&[to.to_path_buf()])?;
    if report.head_sealed.is_none() {
        // A headless copy: its bundles, signatures and chain are checked; that none of the
        // newest is missing rests on the bucket listing and receipts compared above.
        heads.clear();
    }
    if vfiles.is_empty() {
        report.verify_problem = Some("no bundles restored".into());
    } else {
        let opts = verify::VerifyOptions { keys: keys.clone(), partial: month.is_some(), ..Default::default() };
        let v = verify::verify_files(&vfiles, &heads, &opts)?;
        report.bundles_verified = v.bundles_checked;
        report.verify_problem = v.first_problem.map(|p| format!("{}: {}", p.bundle, p.reason));
    }
    Ok(report)
}

/// Copy `receipts/YYYY/MM/*.receipt.json{,.sig,.sshsig}` (one month or all).
fn copy_receipts(from: &Path, to: &Path, month: Option<&str>) -> Result<usize> {
    let mut n = 0;
    for y in crate::evidence::prune::dir_names(from)? {
        for m in crate::evidence::prune::dir_names(&from.join(&y))? {
            if month.is_some_and(|want| format!("{y}/{m}") != want) {
                continue;
            }
            let src = from.join(&y).join(&m);
            if !src.is_dir() {
                continue;
            }
            let dst = to.join(&y).join(&m);
            fsutil::create_dir_all(&dst, 0o755)?;
            for name in crate::evidence::prune::dir_names(&src)? {
                if !name.contains(".receipt.json") || name.starts_with('.') {
                    continue;
                }
                let bytes = std::fs::read(src.join(&name)).with_context(|| format!("reading {}", src.join(&name).display()))?;
                fsutil::write_once(&dst.join(&name), &bytes, 0o444)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// What one restore test did (the details of its signed record).
#[derive(Debug, Default, Serialize)]
pub struct RestoreTestReport {
    /// Bundles available to sample (all of the host's bundles in the bucket).
    pub bundles_in_bucket: usize,
    /// Bundle ids sampled.
    pub sampled: Vec<String>,
    /// Objects downloaded and checked.
    pub objects: usize,
    pub bytes: u64,
    /// What failed, named (empty: the test passed).
    pub failures: Vec<String>,
}

/// The scheduled restore test: download every object of `sample` bundles picked at random,
/// check each GET against the server's checksum and the receipt, and verify each bundle's
/// signatures and artifacts (as its own one-bundle chain) with `keys`. Downloads go to
/// `scratch`, which the caller removes.
// The arguments are the command's flags; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn restore_test(
    client: &S3Client,
    cfg: &WormConfig,
    client_id: &str,
    host: &str,
    sample: usize,
    evidence_dir: &Path,
    keys: &Keyring,
    scratch: &Path,
) -> Result<RestoreTestReport> {
    use rand_core::{OsRng, RngCore};
    let mut report = RestoreTestReport::default();
    let mut skipped = Vec::new();
    let files = list_remote(client, cfg, client_id, host, None, &mut skipped)?;
    let mut by_bundle: BTreeMap<String, Vec<&RemoteFile>> = BTreeMap::new();
    for f in &files {
        by_bundle.entry(f.bundle_id.clone()).or_default().push(f);
    }
    report.bundles_in_bucket = by_bundle.len();
    let mut ids: Vec<String> = by_bundle.keys().cloned().collect();
    // Partial Fisher-Yates: the first `sample` entries are a uniform random choice.
    let n = sample.min(ids.len());
    for i in 0..n {
        let j = i + (OsRng.next_u64() % (ids.len() - i) as u64) as usize;
        ids.swap(i, j);
    }
    ids.truncate(n);
    ids.sort_by_key(|i| id_order(i));
    if ids.is_empty() {
        report.failures.push("the bucket holds no evidence for this host".into());
        return Ok(report);
    }
    for id in &ids {
        let parts = &by_bundle[id];
        let rec = receipt::read(evidence_dir, &parts[0].bundle())?;
        let mut json_path = None;
        let mut ok = true;
        for f in parts {
            if let Some(why) = f.tamper_reason() {
                report.failures.push(why);
                ok = false;
            }
            let receipted = rec.as_ref().and_then(|r| r.objects.iter().find(|o| o.key == f.key));
            let live = f.live();
            let v = match receipted.filter(|o| !o.version_id.is_empty()) {
                Some(o) => live.iter().find(|v| v.version_id == o.version_id).copied(),
                None => live.last().copied(),
            };
            let Some(v) = v else {
                report.failures.push(format!("{}: the receipted version is not in the bucket", f.key));
                ok = false;
                continue;
            };
            let got = match client.get_object(&f.key, Some(v.version_id.as_str()).filter(|s| !s.is_empty())) {
                Ok(g) => g,
                Err(e) => {
                    report.failures.push(format!("{}: {e}", f.key));
                    ok = false;
                    continue;
                }
            };
            if let Some(o) = receipted {
                if o.sha256 != got.sha256_hex {
                    report.failures.push(format!("{}: sha256 {} but the receipt says {}", f.key, got.sha256_hex, o.sha256));
                    ok = false;
                }
            }
            let dest = scratch.join(f.store_rel());
            fsutil::create_dir_all(dest.parent().context("no directory")?, 0o700)?;
            std::fs::write(&dest, &got.body).with_context(|| format!("writing {}", dest.display()))?;
            if f.rel.ends_with(".json") {
                json_path = Some(dest);
            }
            report.objects += 1;
            report.bytes += got.body.len() as u64;
        }
        if let Some(rec) = &rec {
            for o in &rec.objects {
                if !parts.iter().any(|f| f.key == o.key) {
                    report.failures.push(format!("{}: named in the receipt but not in the bucket", o.key));
                    ok = false;
                }
            }
        }
        match json_path {
            None => report.failures.push(format!("{id}: the bucket has no {id}.json")),
            Some(p) if ok => {
                let opts = verify::VerifyOptions { keys: keys.clone(), partial: true, threads: 1, ..Default::default() };
                let v = verify::verify_files(&[p], &[], &opts)?;
                if let Some(p) = v.first_problem {
                    report.failures.push(format!("{}: {}", p.bundle, p.reason));
                }
            }
            Some(_) => {}
        }
        report.sampled.push(id.clone());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_are_not_evidence_paths() {
        assert!(parse_rel("2026/11/EB-20261122-0001.json").is_some());
        assert!(parse_rel("2026/11/EB-20261122-0001.artifacts/df.txt").is_some());
        for bad in [
            "2026/11/../../etc/passwd",
            "2026/11/EB-20261122-0001.artifacts/../../x",
            "2026/11/EB-20261122-0001.json/x",
            "2026/11/notes.txt",
            "26/11/EB-20261122-0001.json",
            "2026/11/EB-20261122-0001.artifacts",
            "2026/11/EB-20261122-0001.artifacts/.hidden",
        ] {
            assert!(parse_rel(bad).is_none(), "{bad}");
        }
        assert_eq!(month_path("2026-11").unwrap(), "2026/11");
        assert!(month_path("2026-13").is_err() && month_path("202611").is_err());
    }
}
