//! Polling: list each host prefix after its cursor (one LIST per host when nothing changed),
//! record the new objects, then verify every new bundle in chain order and record it as
//! evidence or as an integrity error.
//!
//! A bundle counts only when: its raw `.sig` is a valid Ed25519 signature of its exact bytes by
//! a key registered for the host, whose window covers `generated_at` and that was not
//! compromised before it; its `client_id`/`hostname` are the key path's; its name and month
//! directory match its `bundle_id`; and it extends the host's chain (sequence +1,
//! `prev_bundle_sha256` = SHA-256 of the previous bundle's bytes). Anything else is an
//! integrity error (object key + problem), never evidence.
//!
//! Chain bookkeeping: a bundle whose signature verifies takes its sequence in the host's chain
//! even when its link is wrong (the error is recorded on it), so one deleted bundle is one
//! error, not an error on every later bundle; a bundle whose signature fails never enters the
//! chain, so a planted object cannot break the genuine chain. A `.json` whose `.sig` is not
//! listed yet is pending while it is the host's newest bundle (the uploader PUTs the JSON
//! first), and an integrity error once a later bundle exists (the uploader confirms bundles in
//! order). Hosts in the bucket but not in the inventory are not listed at all.

use std::collections::HashSet;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use ed25519_dalek::Signature;
use msp_evidence::bundle::{Bundle, GENESIS_PREV_HASH};
use msp_evidence::fsutil::limits;
use msp_evidence::layout::{host_prefix, parse_object_key};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::controls::RuleFields;
use super::Index;
use crate::inventory::Host;
use crate::source::Source;

/// Bundles recorded per SQLite transaction while indexing.
const RECORD_BATCH: usize = 256;

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Hosts polled.
    pub hosts: usize,
    /// Listing calls made (one per host, more only for paged answers).
    pub list_calls: usize,
    /// Objects the listings returned (only keys after each host's cursor).
    pub listed: usize,
    /// Objects new to the index.
    pub new_objects: usize,
    /// Bundles verified and indexed as evidence.
    pub bundles_indexed: usize,
    /// Objects recorded as integrity errors.
    pub integrity_errors: usize,
    /// Bundles waiting for their signature object.
    pub pending: usize,
}

/// `EB-YYYYMMDD-NNNN.json` → (YYYYMMDD, NNNN) for chain order (NNNN may widen past 9999).
pub(crate) fn bundle_order(file: &str) -> Option<(u32, u64)> {
    let id = file.strip_suffix(".json")?.strip_prefix("EB-")?;
    let (day, n) = id.split_once('-')?;
    if day.len() != 8 || n.len() < 4 || !day.bytes().all(|b| b.is_ascii_digit()) || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((day.parse().ok()?, n.parse().ok()?))
}

/// A verified bundle or why not (with the bundle, when it parsed, so the query side knows
/// which controls the failure affects).
struct Checked {
    bundle: Option<Bundle>,
    sha256: String,
    problem: Option<String>,
}

impl Index {
    /// Poll `source` once: new objects of every inventory host, then their bundles. Errors
    /// are the source's (unreachable, denied) or the index file's; a bad object is never an
    /// error here, it is recorded as an integrity error.
    pub fn poll(&self, source: &dyn Source, now: DateTime<Utc>) -> Result<PollReport> {
        let mut report = PollReport::default();
        for host in self.inventory.hosts() {
            report.hosts += 1;
            self.poll_host(source, host, &mut report)
                .with_context(|| format!("polling {} for {}/{}", source.describe(), host.client_id, host.id))?;
        }
        let conn = self.lock()?;
        conn.execute(
            "INSERT OR REPLACE INTO meta (k, v) VALUES ('last_poll_at', ?1)",
            [now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)],
        )
        .context("recording the poll time")?;
        Ok(report)
    }

    fn poll_host(&self, source: &dyn Source, host: &Host, report: &mut PollReport) -> Result<()> {
        let hp = host_prefix(source.prefix(), &host.client_id, &host.id);
        let cursor: Option<String> = {
            let conn = self.lock()?;
            conn.query_row(
                "SELECT start_after FROM cursors WHERE client_id = ?1 AND host_id = ?2",
                params![host.client_id, host.id],
                |r| r.get(0),
            )
            .optional()?
        };
        // Listing happens without the lock: the web server keeps answering meanwhile.
        let listed = source.list_after(&hp, cursor.as_deref())?;
        report.list_calls += 1;
        report.listed += listed.len();
        {
            let mut conn = self.lock()?;
            let tx = conn.transaction()?;
            for o in &listed {
                if !o.key.starts_with(&hp) {
                    continue;
                }
                let n = tx.execute(
                    "INSERT OR IGNORE INTO objects (key, client_id, host_id, size, last_modified) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        o.key,
                        host.client_id,
                        host.id,
                        o.size as i64,
                        o.last_modified.map(|t| t.timestamp())
                    ],
                )?;
                report.new_objects += n;
            }
            if let Some(last) = listed.iter().map(|o| o.key.as_str()).max() {
                if cursor.as_deref().is_none_or_lt(last) {
                    tx.execute(
                        "INSERT OR REPLACE INTO cursors (client_id, host_id, start_after) VALUES (?1, ?2, ?3)",
                        params![host.client_id, host.id, last],
                    )?;
                }
            }
            tx.commit()?;
        }
        let id = (host.client_id.clone(), host.id.clone());
        let settled = |s: &Index| s.settled.lock().unwrap_or_else(|p| p.into_inner()).contains(&id);
        if listed.is_empty() && settled(self) {
            return Ok(());
        }
        let before = (report.bundles_indexed, report.integrity_errors);
        self.process_host(source, host, report)?;
        if before != (report.bundles_indexed, report.integrity_errors) {
            self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.settled.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        Ok(())
    }

    fn process_host(&self, source: &dyn Source, host: &Host, report: &mut PollReport) -> Result<()> {
        let prefix = source.prefix().to_string();
        // Every bundle object of the host, in chain order, and which are done.
        let (mut all, done, keys): (Vec<((u32, u64), String, i64)>, HashSet<String>, HashSet<String>) = {
            let conn = self.lock()?;
            let mut st = conn.prepare("SELECT key, size FROM objects WHERE client_id = ?1 AND host_id = ?2")?;
            let rows = st.query_map(params![host.client_id, host.id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut all = Vec::new();
            let mut keys = HashSet::new();
            for row in rows {
                let (key, size) = row?;
                if let Some(ok) = parse_object_key(&prefix, &key) {
                    if !ok.file.contains('/') {
                        if let Some(order) = bundle_order(ok.file) {
                            all.push((order, key.clone(), size));
                        }
                    }
                }
                keys.insert(key);
            }
            let mut done = HashSet::new();
            for table in ["bundles", "integrity"] {
                let mut st = conn.prepare(&format!("SELECT object_key FROM {table} WHERE client_id = ?1 AND host_id = ?2"))?;
                for k in st.query_map(params![host.client_id, host.id], |r| r.get::<_, String>(0))? {
                    done.insert(k?);
                }
            }
            (all, done, keys)
        };
        all.sort();
        let newest = all.last().map(|(o, k, _)| (*o, k.clone()));
        // What each new bundle object needs, decided in chain order; `None`: pending (the
        // newest bundle whose signature object has not been uploaded yet).
        let judge = |order: &(u32, u64), key: &str, size: i64| -> Result<Option<Checked>> {
            let sig_key = format!("{key}.sig");
            let is_newest = newest.as_ref().is_some_and(|(o, k)| o == order && k == key);
            Ok(Some(if !keys.contains(&sig_key) {
                if is_newest {
                    return Ok(None);
                }
                Checked {
                    bundle: None,
                    sha256: String::new(),
                    problem: Some(format!(
                        "signature object {sig_key} is missing, and later bundles of the host were uploaded"
                    )),
                }
            } else if size as u64 > limits::BUNDLE {
                Checked {
                    bundle: None,
                    sha256: String::new(),
                    problem: Some(format!("object is {size} bytes, over the {} byte bundle limit", limits::BUNDLE)),
                }
            } else {
                let bytes = source.get(key)?;
                let sig = source.get(&sig_key)?;
                check_bundle(&prefix, host, key, &bytes, &sig)
            }))
        };
        let todo: Vec<&((u32, u64), String, i64)> = all.iter().filter(|(_, k, _)| !done.contains(k)).collect();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        for chunk in todo.chunks(RECORD_BATCH) {
            // Fetching and signature checks run on every core; recording stays in chain order,
            // one transaction per batch.
            let per = chunk.len().div_ceil(workers).max(1);
            let judged: Vec<Result<Vec<Option<Checked>>>> = std::thread::scope(|sc| {
                let handles: Vec<_> = chunk
                    .chunks(per)
                    .map(|part| sc.spawn(|| part.iter().map(|(o, k, sz)| judge(o, k, *sz)).collect::<Result<Vec<_>>>()))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a bundle check thread panicked"))))
                    .collect()
            });
            let mut batch: Vec<(String, Checked)> = Vec::with_capacity(chunk.len());
            let mut results = Vec::with_capacity(chunk.len());
            for part in judged {
                results.extend(part?);
            }
            for ((_, key, _), checked) in chunk.iter().zip(results) {
                match checked {
                    Some(c) => batch.push((key.clone(), c)),
                    None => report.pending += 1,
                }
            }
            self.record_batch(host, &mut batch, report)?;
        }
        Ok(())
    }

    fn record_batch(&self, host: &Host, batch: &mut Vec<(String, Checked)>, report: &mut PollReport) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        for (key, checked) in batch.drain(..) {
            match record(&tx, host, &key, checked)? {
                true => report.bundles_indexed += 1,
                false => report.integrity_errors += 1,
            }
        }
        tx.commit()?;
        Ok(())
    }
}

trait CursorExt {
    fn is_none_or_lt(&self, other: &str) -> bool;
}
impl CursorExt for Option<&str> {
    fn is_none_or_lt(&self, other: &str) -> bool {
        match self {
            None => true,
            Some(s) => *s < other,
        }
    }
}

/// Signature, key, window, names; not the chain (that needs the index).
fn check_bundle(prefix: &str, host: &Host, key: &str, bytes: &[u8], sig: &[u8]) -> Checked {
    let sha256 = hex::encode(Sha256::digest(bytes));
    let fail = |bundle: Option<Bundle>, p: String| Checked {
        bundle,
        sha256: sha256.clone(),
        problem: Some(p),
    };
    let b: Bundle = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => return fail(None, format!("not an evidence bundle: {e}")),
    };
    let Some(ok) = parse_object_key(prefix, key) else {
        return fail(Some(b), "object key is not laid out as PREFIX/CLIENT/HOST/YYYY/MM/FILE".into());
    };
    if ok.file != format!("{}.json", b.bundle_id) {
        return fail(
            Some(b.clone()),
            format!("bundle_id {} does not match the object name {}", b.bundle_id, ok.file),
        );
    }
    if b.bundle_id.get(3..7) != Some(ok.year) || b.bundle_id.get(7..9) != Some(ok.month) {
        return fail(
            Some(b.clone()),
            format!("bundle {} is in the month directory {}/{}", b.bundle_id, ok.year, ok.month),
        );
    }
    if b.client_id != host.client_id || b.hostname != host.id {
        return fail(
            Some(b.clone()),
            format!(
                "bundle says client_id {} hostname {}, but it is stored under {}/{}",
                b.client_id, b.hostname, host.client_id, host.id
            ),
        );
    }
    let t = match DateTime::parse_from_rfc3339(&b.generated_at) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => return fail(Some(b.clone()), format!("generated_at {:?}: {e}", b.generated_at)),
    };
    let Some(k) = host.keyring.get(&b.signing.key_id) else {
        return fail(
            Some(b.clone()),
            format!(
                "signed by key {}, which is not registered for host {}/{}",
                b.signing.key_id, host.client_id, host.id
            ),
        );
    };
    if let Some(c) = k.compromised_since {
        if t > c {
            return fail(
                Some(b.clone()),
                format!(
                    "key {} is compromised since {}; a bundle dated {} is untrusted",
                    k.info.key_id,
                    c.to_rfc3339(),
                    b.generated_at
                ),
            );
        }
    }
    if !k.covers(t) {
        return fail(
            Some(b.clone()),
            format!(
                "generated_at {} is outside the window of key {} ({} to {})",
                b.generated_at,
                k.info.key_id,
                k.info.valid_from,
                k.info.valid_until.as_deref().unwrap_or("open")
            ),
        );
    }
    let sig = match Signature::from_slice(sig) {
        Ok(s) => s,
        Err(_) => {
            return fail(
                Some(b.clone()),
                format!("{key}.sig is {} bytes, not a 64-byte Ed25519 signature", sig.len()),
            )
        }
    };
    if k.key.verify_strict(bytes, &sig).is_err() {
        return fail(
            Some(b.clone()),
            format!("signature {key}.sig does not verify with key {}", k.info.key_id),
        );
    }
    Checked {
        bundle: Some(b),
        sha256,
        problem: None,
    }
}

/// Place a checked bundle in the chain and store it; `true` when it counts as evidence.
fn record(tx: &Connection, host: &Host, key: &str, c: Checked) -> Result<bool> {
    let mut problem = c.problem;
    if let (None, Some(b)) = (&problem, &c.bundle) {
        let seq = b.chain.sequence as i64;
        let held: Option<(String, String)> = tx
            .query_row(
                "SELECT sha256, object_key FROM chain WHERE client_id = ?1 AND host_id = ?2 AND sequence = ?3",
                params![host.client_id, host.id, seq],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((_, other)) = held {
            problem = Some(format!("chain fork: sequence {seq} is already held by {other}"));
        } else {
            let link_problem = if seq < 1 {
                Some(format!("chain: sequence {seq} (sequences start at 1)"))
            } else if seq == 1 {
                (b.chain.prev_bundle_sha256 != GENESIS_PREV_HASH).then(|| {
                    format!(
                        "chain: sequence 1 has prev_bundle_sha256 {}, not the genesis hash",
                        b.chain.prev_bundle_sha256
                    )
                })
            } else {
                let prev: Option<(String, String)> = tx
                    .query_row(
                        "SELECT sha256, object_key FROM chain WHERE client_id = ?1 AND host_id = ?2 AND sequence = ?3",
                        params![host.client_id, host.id, seq - 1],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                match prev {
                    None => {
                        let before: Option<(i64, String)> = tx
                            .query_row(
                                "SELECT sequence, object_key FROM chain WHERE client_id = ?1 AND host_id = ?2 AND sequence < ?3 ORDER BY sequence DESC LIMIT 1",
                                params![host.client_id, host.id, seq],
                                |r| Ok((r.get(0)?, r.get(1)?)),
                            )
                            .optional()?;
                        Some(match before {
                            Some((s, k)) => format!(
                                "chain gap: sequence {seq} follows {k} (sequence {s}); sequence {} is missing",
                                seq - 1
                            ),
                            None => format!("chain gap: sequence {seq} but no bundle with sequence {} was indexed", seq - 1),
                        })
                    }
                    Some((sha, k)) if sha != b.chain.prev_bundle_sha256 => Some(format!(
                        "chain: prev_bundle_sha256 {} does not match SHA-256 {sha} of {k} (sequence {})",
                        b.chain.prev_bundle_sha256,
                        seq - 1
                    )),
                    Some(_) => None,
                }
            };
            // A signed bundle takes its place even with a broken link (see the module doc).
            tx.execute(
                "INSERT INTO chain (client_id, host_id, sequence, sha256, object_key) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![host.client_id, host.id, seq, c.sha256, key],
            )?;
            problem = link_problem;
        }
    }
    let fields = c.bundle.as_ref().map(RuleFields::of);
    let at = c
        .bundle
        .as_ref()
        .and_then(|b| DateTime::parse_from_rfc3339(&b.generated_at).ok())
        .map(|t| t.timestamp());
    match (problem, c.bundle) {
        (None, Some(b)) => {
            let f = fields.unwrap_or_default();
            tx.execute(
                "INSERT INTO bundles (object_key, client_id, host_id, bundle_id, sequence, generated_at, gen_ts, incident_id, event_type,
                   severity, runbook_id, resolution_status, detail_result, current_system, hb_baseline_sha256, sha256, key_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                params![
                    key,
                    host.client_id,
                    host.id,
                    b.bundle_id,
                    b.chain.sequence as i64,
                    b.generated_at,
                    at.unwrap_or(0),
                    b.incident.incident_id,
                    f.event_type,
                    b.incident.severity,
                    f.runbook_id,
                    f.resolution_status,
                    f.detail_result,
                    f.current_system,
                    f.baseline_sha256,
                    c.sha256,
                    b.signing.key_id
                ],
            )?;
            Ok(true)
        }
        (problem, bundle) => {
            let problem = problem.unwrap_or_else(|| "not a bundle".into());
            tracing::warn!(object = key, %problem, "integrity error");
            let f = fields.unwrap_or_default();
            let parsed = bundle.is_some();
            tx.execute(
                "INSERT INTO integrity (object_key, client_id, host_id, bundle_id, problem, at_claimed, event_type, runbook_id,
                   resolution_status, detail_result, current_system, hb_baseline_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    key,
                    host.client_id,
                    host.id,
                    bundle.as_ref().map(|b| b.bundle_id.clone()),
                    problem,
                    at,
                    parsed.then_some(f.event_type.clone()),
                    parsed.then_some(f.runbook_id.clone()),
                    parsed.then_some(f.resolution_status.clone()),
                    f.detail_result,
                    f.current_system,
                    f.baseline_sha256
                ],
            )?;
            Ok(false)
        }
    }
}
