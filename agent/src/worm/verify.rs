//! `worm verify`: compare what the bucket holds for this host with the local store and the
//! receipts. Names every missing, extra or differing object.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::config::WormConfig;
use super::local;
use super::outbox::Outbox;
use super::receipt;
use super::s3::{ObjectVersion, S3Client};
use super::sync::{host_prefix, object_key, Sums};

/// What `worm verify` found. Empty problem lists mean the bucket matches.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Objects compared.
    pub checked: usize,
    /// Objects of confirmed bundles that the bucket does not hold.
    pub missing: Vec<String>,
    /// Objects of bundles not confirmed yet that are not in the bucket (normal before a sync).
    pub pending: Vec<String>,
    /// Objects in the bucket under this host's prefix that no local file accounts for.
    pub extra: Vec<String>,
    /// Objects whose size, ETag, version count or receipted version differ, with why.
    pub differing: Vec<String>,
    /// Objects in the bucket of bundles pruned locally (covered by the store's prune record):
    /// expected, not extra.
    pub pruned: usize,
}

impl VerifyReport {
    /// True when nothing is missing, extra or differing.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.differing.is_empty()
    }
}

/// Compare the bucket with the local store at `evidence_dir` for `client`/`host` (from the
/// config or, if empty there, from the bundles).
pub fn verify(
    client: &S3Client,
    cfg: &WormConfig,
    evidence_dir: &Path,
    state_dir: &Path,
) -> Result<VerifyReport> {
    let bundles = local::scan(evidence_dir)?;
    let outbox = Outbox::open(state_dir)?;
    let (client_id, host) = owner(cfg, &bundles)?;
    let host_prefix = host_prefix(&cfg.prefix, &client_id, &host);

    let versions = client
        .list_object_versions(&host_prefix)
        .context("listing the bucket")?;
    let mut by_key: BTreeMap<String, Vec<ObjectVersion>> = BTreeMap::new();
    for v in versions {
        by_key.entry(v.key.clone()).or_default().push(v);
    }

    let mut report = VerifyReport::default();
    let mut expected = BTreeSet::new();
    for b in &bundles {
        let confirmed = outbox.is_confirmed(&b.id);
        let rec = receipt::read(evidence_dir, b)?;
        for f in &b.files {
            let key = object_key(&cfg.prefix, &client_id, &host, b, &f.rel);
            expected.insert(key.clone());
            report.checked += 1;
            let Some(vs) = by_key.get(&key) else {
                if confirmed || rec.is_some() {
                    report.missing.push(key);
                } else {
                    report.pending.push(key);
                }
                continue;
            };
            let bytes = crate::fsutil::read_regular(&f.path, crate::fsutil::limits::ARTIFACT)?;
            let sums = Sums::of(&bytes);
            let live: Vec<&ObjectVersion> = vs.iter().filter(|v| !v.delete_marker).collect();
            if live.len() > 1 {
                report
                    .differing
                    .push(format!("{key}: {} versions, expected 1", live.len()));
            }
            match vs.iter().find(|v| v.is_latest) {
                Some(v) if v.delete_marker => report
                    .differing
                    .push(format!("{key}: latest version is a delete marker")),
                Some(v) if v.size != sums.size => report.differing.push(format!(
                    "{key}: {} bytes in the bucket, {} locally",
                    v.size, sums.size
                )),
                Some(v) if v.etag.len() == 32 && !v.etag.eq_ignore_ascii_case(&sums.md5_hex) => {
                    report.differing.push(format!(
                        "{key}: ETag {} but the local file's MD5 is {}",
                        v.etag, sums.md5_hex
                    ))
                }
                _ => {}
            }
            if let Some(r) = &rec {
                match r.objects.iter().find(|o| o.key == key) {
                    Some(o) if o.sha256 != sums.sha256_hex => report.differing.push(format!(
                        "{key}: receipt says sha256 {}, local file is {}",
                        o.sha256, sums.sha256_hex
                    )),
                    Some(o)
                        if !o.version_id.is_empty()
                            && !vs.iter().any(|v| v.version_id == o.version_id) =>
                    {
                        report.differing.push(format!(
                            "{key}: receipt names version {} which the bucket does not hold",
                            o.version_id
                        ))
                    }
                    Some(_) => {}
                    None => report.differing.push(format!(
                        "{key}: not named in receipt {}",
                        receipt::receipt_path(evidence_dir, b).display()
                    )),
                }
            }
        }
    }
    // Bundles pruned locally (evidence/prune.rs) are still in the bucket: not extra.
    let pruned_upto = crate::evidence::prune::latest_record(evidence_dir)?
        .and_then(|(_, r, _)| local::id_order(&r.last_pruned_bundle));
    for k in by_key.into_keys().filter(|k| !expected.contains(k)) {
        let id = k.rsplit('/').next().unwrap_or("").split('.').next().unwrap_or("");
        let id = if k.contains(".artifacts/") {
            k.split('/').rev().nth(1).unwrap_or("").split('.').next().unwrap_or("")
        } else {
            id
        };
        match (&pruned_upto, local::id_order(id)) {
            (Some(limit), Some(o)) if o <= *limit => report.pruned += 1,
            _ => report.extra.push(k),
        }
    }
    Ok(report)
}

/// Client and host for object keys: configured, or from the first local bundle.
pub(crate) fn owner(cfg: &WormConfig, bundles: &[local::LocalBundle]) -> Result<(String, String)> {
    let mut client = cfg.client_id.clone();
    let mut host = cfg.host.clone();
    if client.is_empty() || host.is_empty() {
        let Some(first) = bundles.first() else {
            bail!("no local bundles to tell the client and host from; pass --client and --host");
        };
        let text = crate::fsutil::read_regular(first.json_path(), crate::fsutil::limits::BUNDLE)?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("parsing {}", first.json_path().display()))?;
        let get = |f: &str| v.get(f).and_then(|x| x.as_str()).map(str::to_string);
        if client.is_empty() {
            client = get("client_id").with_context(|| {
                format!(
                    "{}: field client_id is missing",
                    first.json_path().display()
                )
            })?;
        }
        if host.is_empty() {
            host = get("hostname").with_context(|| {
                format!("{}: field hostname is missing", first.json_path().display())
            })?;
        }
    }
    Ok((client, host))
}
