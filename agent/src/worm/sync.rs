//! The uploader: drains the outbox in chain order, one bundle at a time, each object put
//! with COMPLIANCE retention, read back with HEAD, then receipted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use md5::Md5;
use sha2::{Digest, Sha256};

use super::config::{check_key_part, Credentials, WormConfig};
use super::local::{self, id_order, LocalBundle};
use super::outbox::{Backoff, Outbox};
use super::receipt::{self, Receipt, ReceiptObject, ReceiptSigning};
use super::s3::{ObjectHead, S3Client};
use crate::keys::Signer;

/// What one [`Uploader::sync_once`] pass did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Bundles confirmed in this pass, in order.
    pub confirmed: Vec<String>,
    /// Objects uploaded with PutObject.
    pub objects_put: u64,
    /// Objects found already in the bucket (from an attempt whose answer was lost) and
    /// confirmed without a second PUT.
    pub objects_found: u64,
    /// Bundles still waiting after this pass.
    pub pending: usize,
    /// Why the pass stopped early (the full error chain), if it did.
    pub error: Option<String>,
    /// Start of the current outage, if uploads are failing.
    pub failing_since: Option<DateTime<Utc>>,
    /// The outage has lasted longer than `outage_alert_after_seconds`.
    pub alert: bool,
}

/// Uploads one host's evidence store to one bucket. Owned by one thread.
pub struct Uploader {
    cfg: WormConfig,
    client: S3Client,
    evidence_dir: PathBuf,
    outbox: Outbox,
    signer: Arc<Signer>,
    /// Object keys that may already exist in the bucket although no success was seen: a PUT
    /// whose answer was lost, and every key of the first pending bundle after a start (a
    /// crash may have happened mid-bundle). These get a HEAD before any PUT, so a locked
    /// bucket never ends up with two versions of one object.
    uncertain: HashSet<String>,
    /// Set once the next pending bundle's keys have been marked uncertain for this process.
    started: bool,
    bucket_checked: bool,
}

impl Uploader {
    /// Set up an uploader; nothing is sent until [`Uploader::sync_once`] or
    /// [`Uploader::check_bucket`].
    pub fn new(
        cfg: WormConfig,
        creds: Credentials,
        evidence_dir: &Path,
        state_dir: &Path,
        signer: Arc<Signer>,
    ) -> Result<Uploader> {
        let client = S3Client::new(&cfg.s3_endpoint()?, creds)?;
        let outbox = Outbox::open(state_dir)?;
        Ok(Uploader {
            cfg,
            client,
            evidence_dir: evidence_dir.to_path_buf(),
            outbox,
            signer,
            uncertain: HashSet::new(),
            started: false,
            bucket_checked: false,
        })
    }

    /// The S3 client (request counter, direct calls for tools and tests).
    pub fn client(&self) -> &S3Client {
        &self.client
    }

    /// The outbox state.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Startup check: the bucket exists, has versioning and Object Lock enabled. The error
    /// names everything that is missing.
    pub fn check_bucket(&self) -> Result<()> {
        check_bucket(&self.client, &self.cfg)
    }

    /// Upload every pending bundle in order until done or the first failure. `Err` only for
    /// local problems (reading the store, writing state or receipts); upload failures are
    /// reported in [`SyncReport::error`] and recorded for the outage alert.
    pub fn sync_once(&mut self) -> Result<SyncReport> {
        let bundles = local::scan(&self.evidence_dir)?;
        let last = self
            .outbox
            .state
            .last_confirmed
            .as_deref()
            .and_then(id_order);
        let pending: Vec<LocalBundle> = bundles
            .into_iter()
            .filter(|b| {
                // `Option::is_none_or` needs Rust 1.82; the workspace says 1.80.
                match &last {
                    None => true,
                    Some(l) => id_order(&b.id).as_ref() > Some(l),
                }
            })
            .collect();
        let mut report = SyncReport {
            pending: pending.len(),
            ..Default::default()
        };
        if pending.is_empty() {
            self.record_success()?;
            return Ok(report);
        }
        if !self.bucket_checked {
            if let Err(e) = self.check_bucket() {
                self.record_failure(&mut report, format!("{e:#}"))?;
                return Ok(report);
            }
            self.bucket_checked = true;
        }
        for bundle in &pending {
            match self.confirm_bundle(bundle, &mut report) {
                Ok(()) => {
                    self.outbox.state.last_confirmed = Some(bundle.id.clone());
                    self.outbox.state.confirmed_count += 1;
                    self.outbox.save()?;
                    report.confirmed.push(bundle.id.clone());
                    report.pending -= 1;
                }
                Err(e) => {
                    self.record_failure(&mut report, format!("bundle {}: {e:#}", bundle.id))?;
                    return Ok(report);
                }
            }
        }
        self.record_success()?;
        Ok(report)
    }

    /// Upload (or find) every object of `bundle`, read each back, write the receipt.
    fn confirm_bundle(&mut self, bundle: &LocalBundle, report: &mut SyncReport) -> Result<()> {
        if let Some(r) = receipt::read(&self.evidence_dir, bundle)? {
            // Confirmed before a crash that came before the outbox was saved; make sure both
            // signatures are there and move on.
            receipt::write(&self.evidence_dir, bundle, &r, &self.signer)?;
            return Ok(());
        }
        let bundle_bytes = crate::fsutil::read_regular(bundle.json_path(), crate::fsutil::limits::BUNDLE)?;
        let (client, host) = self.key_owner(&bundle_bytes, bundle)?;
        let written_at: DateTime<Utc> = std::fs::metadata(bundle.json_path())
            .and_then(|m| m.modified())
            .with_context(|| format!("reading the mtime of {}", bundle.json_path().display()))?
            .into();
        if !self.started || self.outbox.fresh {
            for f in &bundle.files {
                self.uncertain
                    .insert(object_key(&self.cfg.prefix, &client, &host, bundle, &f.rel));
            }
            self.started = true;
        }
        let retain_until =
            (Utc::now() + TimeDelta::days(i64::from(self.cfg.retention_days))).trunc_subsecs(0);
        let mut objects = Vec::with_capacity(bundle.files.len());
        for f in &bundle.files {
            let key = object_key(&self.cfg.prefix, &client, &host, bundle, &f.rel);
            let bytes = if f.rel == bundle.files[0].rel {
                bundle_bytes.clone()
            } else {
                crate::fsutil::read_regular(&f.path, crate::fsutil::limits::ARTIFACT)?
            };
            let sums = Sums::of(&bytes);
            let head = self.put_or_find(&key, bytes, &sums, retain_until, written_at, report)?;
            self.uncertain.remove(&key);
            objects.push(ReceiptObject {
                file: f.rel.clone(),
                key,
                version_id: head.version_id.unwrap_or_default(),
                size_bytes: head.size,
                sha256: sums.sha256_hex.clone(),
                retain_until: head.retain_until.unwrap_or(retain_until),
            });
        }
        let r = Receipt {
            receipt_version: receipt::RECEIPT_VERSION,
            bundle_id: bundle.id.clone(),
            bundle_sha256: hex::encode(Sha256::digest(&bundle_bytes)),
            endpoint: self.cfg.endpoint_url(),
            bucket: self.cfg.bucket.clone(),
            lock_mode: "COMPLIANCE".into(),
            retain_until: objects.iter().map(|o| o.retain_until).min().unwrap_or(retain_until),
            confirmed_at: Utc::now(),
            objects,
            verification: "each object read back with HeadObject after PutObject: size, x-amz-checksum-sha256 \
                           (or ETag = MD5), x-amz-object-lock-mode = COMPLIANCE, retain-until"
                .into(),
            signing: ReceiptSigning { key_id: self.signer.key_id().to_string(), algorithm: "ed25519".into() },
        };
        receipt::write(&self.evidence_dir, bundle, &r, &self.signer)?;
        Ok(())
    }

    /// PUT the object unless it may already exist and HEAD finds it intact; then read back.
    fn put_or_find(
        &mut self,
        key: &str,
        bytes: Vec<u8>,
        sums: &Sums,
        retain_until: DateTime<Utc>,
        written_at: DateTime<Utc>,
        report: &mut SyncReport,
    ) -> Result<ObjectHead> {
        if self.uncertain.contains(key) {
            if let Some(h) = self.client.head_object(key)? {
                // That version was put by an earlier attempt, which came after the bundle
                // was written: its retention must reach at least that far. (Not from its
                // Last-Modified: a PUT delayed inside a stalled server is stored later
                // than it was sent.)
                let min_retain = (written_at + TimeDelta::days(i64::from(self.cfg.retention_days)))
                    .trunc_subsecs(0)
                    - TimeDelta::seconds(1);
                check_readback(&h, sums, min_retain).with_context(|| {
                    format!(
                        "{key} already exists in the bucket but does not match the local file; \
                         refusing to add a second version"
                    )
                })?;
                report.objects_found += 1;
                return Ok(h);
            }
        }
        let put = match self.client.put_object(key, bytes, retain_until) {
            Ok(p) => p,
            Err(e) => {
                if e.outcome_unknown() {
                    self.uncertain.insert(key.to_string());
                }
                return Err(e.into());
            }
        };
        report.objects_put += 1;
        // From here on the object exists: whatever happens, the next attempt must HEAD first.
        self.uncertain.insert(key.to_string());
        let h = self.client.head_object(key)?.ok_or_else(|| {
            anyhow!("read-back of {key}: HeadObject found no object right after PutObject")
        })?;
        check_readback(&h, sums, retain_until).with_context(|| format!("read-back of {key}"))?;
        if let (Some(pv), Some(hv)) = (&put.version_id, &h.version_id) {
            if pv != hv {
                bail!("read-back of {key}: latest version is {hv}, but PutObject created {pv}");
            }
        }
        Ok(h)
    }

    /// Client and host for object keys: configured, or from the bundle itself.
    fn key_owner(&self, bundle_bytes: &[u8], bundle: &LocalBundle) -> Result<(String, String)> {
        let mut client = self.cfg.client_id.clone();
        let mut host = self.cfg.host.clone();
        if client.is_empty() || host.is_empty() {
            let v: serde_json::Value = serde_json::from_slice(bundle_bytes)
                .with_context(|| format!("parsing {}", bundle.json_path().display()))?;
            let field = |name: &str| -> Result<String> {
                v.get(name)
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
                    .with_context(|| {
                        format!(
                            "{}: field {name} is missing (set worm.client_id / worm.host)",
                            bundle.json_path().display()
                        )
                    })
            };
            if client.is_empty() {
                client = field("client_id")?;
            }
            if host.is_empty() {
                host = field("hostname")?;
            }
        }
        for (name, v) in [("client_id", &client), ("hostname", &host)] {
            if v.is_empty() || v.contains('/') {
                bail!(
                    "{}: {name} {v:?} cannot be used in an object key",
                    bundle.json_path().display()
                );
            }
            check_key_part(v)
                .with_context(|| format!("{}: {name}", bundle.json_path().display()))?;
        }
        Ok((client, host))
    }

    fn record_failure(&mut self, report: &mut SyncReport, msg: String) -> Result<()> {
        let now = Utc::now();
        let st = &mut self.outbox.state;
        let since = *st.failing_since.get_or_insert(now);
        let alert = (now - since).num_seconds() >= self.cfg.outage_alert_after_seconds as i64;
        if alert && !st.alert_raised {
            st.alert_raised = true;
            tracing::error!(since = %since, pending = report.pending, error = %msg,
                "WORM uploads have been failing for longer than {} s", self.cfg.outage_alert_after_seconds);
        } else {
            tracing::warn!(error = %msg, "WORM upload failed; will retry with backoff");
        }
        st.last_error = Some(msg.clone());
        self.outbox.save()?;
        report.error = Some(msg);
        report.failing_since = Some(since);
        report.alert = alert;
        Ok(())
    }

    fn record_success(&mut self) -> Result<()> {
        let st = &mut self.outbox.state;
        if let Some(since) = st.failing_since.take() {
            tracing::info!(since = %since, "WORM uploads recovered");
            st.alert_raised = false;
            st.last_error = None;
            self.outbox.save()?;
        }
        self.outbox.fresh = false;
        Ok(())
    }
}

/// The startup check, usable without an uploader (`worm verify`).
pub fn check_bucket(client: &S3Client, cfg: &WormConfig) -> Result<()> {
    let p = client
        .bucket_protection()
        .map_err(|e| match e.code() {
            Some("NoSuchBucket") => anyhow!(
                "bucket {:?} does not exist at {}",
                cfg.bucket,
                cfg.endpoint_url()
            ),
            _ => anyhow!(e),
        })
        .with_context(|| format!("checking bucket {:?}", cfg.bucket))?;
    let mut missing = Vec::new();
    if p.versioning.as_deref() != Some("Enabled") {
        missing.push(format!(
            "versioning is not enabled (status: {})",
            p.versioning.as_deref().unwrap_or("never enabled")
        ));
    }
    if !p.object_lock_enabled {
        missing.push("Object Lock is not enabled (it can only be turned on for a bucket created with Object Lock)".to_string());
    }
    if !missing.is_empty() {
        bail!(
            "bucket {:?} at {} cannot hold WORM evidence: {}",
            cfg.bucket,
            cfg.endpoint_url(),
            missing.join("; ")
        );
    }
    Ok(())
}

pub use msp_evidence::layout::host_prefix;

/// `PREFIX/CLIENT/HOST/YYYY/MM/FILE` for a file of a local bundle.
pub fn object_key(
    prefix: &str,
    client: &str,
    host: &str,
    bundle: &LocalBundle,
    rel: &str,
) -> String {
    msp_evidence::layout::object_key(prefix, client, host, &bundle.year, &bundle.month, rel)
}

/// Checksums of a local file, in the forms S3 uses.
pub(crate) struct Sums {
    pub size: u64,
    pub sha256_hex: String,
    pub sha256_b64: String,
    pub md5_hex: String,
}

impl Sums {
    pub fn of(bytes: &[u8]) -> Sums {
        let sha = Sha256::digest(bytes);
        Sums {
            size: bytes.len() as u64,
            sha256_hex: hex::encode(sha),
            sha256_b64: base64::engine::general_purpose::STANDARD.encode(sha),
            md5_hex: hex::encode(Md5::digest(bytes)),
        }
    }
}

/// Does HEAD show the object we meant: same size and checksum, COMPLIANCE, retained until at
/// least `min_retain`?
fn check_readback(h: &ObjectHead, sums: &Sums, min_retain: DateTime<Utc>) -> Result<()> {
    if h.size != sums.size {
        bail!("size is {} bytes, expected {}", h.size, sums.size);
    }
    match &h.checksum_sha256 {
        Some(c) if *c != sums.sha256_b64 => bail!("x-amz-checksum-sha256 is {c}, expected {}", sums.sha256_b64),
        Some(_) => {}
        None if is_plain_md5(&h.etag) => {
            if !h.etag.eq_ignore_ascii_case(&sums.md5_hex) {
                bail!("ETag is {}, expected MD5 {}", h.etag, sums.md5_hex);
            }
        }
        None => bail!("the server returned neither x-amz-checksum-sha256 nor an MD5 ETag (ETag {:?}); cannot confirm the content", h.etag),
    }
    if h.lock_mode.as_deref() != Some("COMPLIANCE") {
        bail!(
            "object lock mode is {:?}, expected COMPLIANCE",
            h.lock_mode.as_deref().unwrap_or("none")
        );
    }
    match h.retain_until {
        Some(t) if t >= min_retain => Ok(()),
        Some(t) => bail!("retain-until is {t}, expected at least {min_retain}"),
        None => bail!("no retain-until date on the object"),
    }
}

fn is_plain_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Run the uploader until `stop` is set: a pass, then wait `poll` after success or the
/// backoff delay after a failure. For the daemon's WORM thread. Returns the last report.
pub fn run_until_stopped(
    uploader: &mut Uploader,
    stop: &AtomicBool,
    poll: Duration,
    mut backoff: Backoff,
) -> Result<SyncReport> {
    let mut last = SyncReport::default();
    while !stop.load(Ordering::Relaxed) {
        last = uploader.sync_once()?;
        let wait = if last.error.is_some() {
            backoff.next_delay()
        } else {
            backoff.reset();
            poll
        };
        let until = std::time::Instant::now() + wait;
        while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50).min(wait));
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(
        size: u64,
        sha: Option<&str>,
        etag: &str,
        mode: Option<&str>,
        retain: Option<&str>,
    ) -> ObjectHead {
        ObjectHead {
            size,
            checksum_sha256: sha.map(str::to_string),
            etag: etag.into(),
            version_id: None,
            lock_mode: mode.map(str::to_string),
            retain_until: retain
                .map(|r| DateTime::parse_from_rfc3339(r).unwrap().with_timezone(&Utc)),
            last_modified: None,
        }
    }

    #[test]
    fn readback_checks_each_property() {
        let s = Sums::of(b"hello");
        let min = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ok = head(
            5,
            Some(&s.sha256_b64),
            "x",
            Some("COMPLIANCE"),
            Some("2030-01-01T00:00:00Z"),
        );
        check_readback(&ok, &s, min).unwrap();
        let md5_only = head(
            5,
            None,
            &s.md5_hex,
            Some("COMPLIANCE"),
            Some("2031-01-01T00:00:00Z"),
        );
        check_readback(&md5_only, &s, min).unwrap();
        let cases = [
            (
                head(
                    4,
                    Some(&s.sha256_b64),
                    "x",
                    Some("COMPLIANCE"),
                    Some("2030-01-01T00:00:00Z"),
                ),
                "size",
            ),
            (
                head(
                    5,
                    Some("AAAA"),
                    "x",
                    Some("COMPLIANCE"),
                    Some("2030-01-01T00:00:00Z"),
                ),
                "checksum",
            ),
            (
                head(
                    5,
                    None,
                    "abc-2",
                    Some("COMPLIANCE"),
                    Some("2030-01-01T00:00:00Z"),
                ),
                "neither",
            ),
            (
                head(
                    5,
                    Some(&s.sha256_b64),
                    "x",
                    Some("GOVERNANCE"),
                    Some("2030-01-01T00:00:00Z"),
                ),
                "GOVERNANCE",
            ),
            (
                head(
                    5,
                    Some(&s.sha256_b64),
                    "x",
                    Some("COMPLIANCE"),
                    Some("2029-12-31T23:59:59Z"),
                ),
                "retain-until",
            ),
            (
                head(
                    5,
                    Some(&s.sha256_b64),
                    "x",
                    None,
                    Some("2030-01-01T00:00:00Z"),
                ),
                "none",
            ),
        ];
        for (h, want) in cases {
            let e = format!("{:#}", check_readback(&h, &s, min).unwrap_err());
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
