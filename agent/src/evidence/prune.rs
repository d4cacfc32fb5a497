//! Local retention: remove local copies of old bundles that the WORM bucket holds, leave a
//! signed prune record so `evidence verify` can tell pruned history from deletion, and watch
//! the evidence file system's usage.
//!
//! Rules (`msp-agent evidence prune`):
//! * only a *prefix* of the chain is pruned, oldest first, so the kept part stays one
//!   contiguous chain;
//! * a bundle is pruned only if `worm::outbox::local_copy_removable` allows it (confirmed in
//!   the bucket and older than `--local-retention-days`, by its signed `generated_at`), its
//!   signed upload receipt exists, and it is not the chain's head;
//! * before anything is removed, a prune record `ROOT/pruned/PR-<SEQ>.json` (+ `.sig`,
//!   `.sshsig`, written once) names the first retained sequence and bundle and the SHA-256 of
//!   the last pruned bundle; the removal of each bundle starts with its `.json` (its
//!   companions become orphans that the store moves to `.orphans/` and a later prune removes);
//! * receipts are kept (small, and the proof that the bucket holds what was removed).
//!
//! How `evidence verify` treats a pruned store ([`check_pruned_start`]): with a prune record
//! whose signature verifies, the chain may start after sequence 1, but it must reach back to
//! the record's first retained sequence, and the bundle there must link to the record's last
//! pruned SHA-256. A chain that starts later (more was removed than the record covers), a
//! record with a bad signature, or a link that does not match is reported as deletion.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::bundle::Bundle;
use super::keyring::Keyring;
use super::store::{sha256_hex, EvidenceStore, ARTIFACTS_SUFFIX, ORPHANS_DIR, SIG_SUFFIX, SSHSIG_SUFFIX};
use crate::fsutil;
use crate::keys::Signer;
use crate::worm::local::{self, id_order};
use crate::worm::outbox::{local_copy_removable, Outbox};
pub use msp_evidence::pruned::{check_pruned_start, latest_record, verify_record, PruneRecord, PRUNED_DIR, PRUNE_RECORD_VERSION};

/// Default local retention (days) before a confirmed bundle's local copy may go.
pub const DEFAULT_LOCAL_RETENTION_DAYS: u32 = 90;
/// Default disk usage (percent) of the evidence file system that raises the alert.
pub const DEFAULT_DISK_ALERT_PERCENT: u8 = 80;

/// What a prune run did.
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    /// Bundle ids removed locally, oldest first.
    pub pruned: Vec<String>,
    /// The prune record written (if anything was pruned).
    pub record: Option<PathBuf>,
    /// The chained `evidence_pruned` record appended (bundle id).
    pub record_bundle: Option<String>,
    /// Left-over companions of earlier pruned bundles removed (after a crash mid-prune).
    pub leftovers_removed: usize,
    /// Why pruning stopped where it did (first bundle kept).
    pub stopped_at: Option<String>,
}

fn companion(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// What the pruner and the chain-start check read from a bundle file.
struct ChainFacts {
    sequence: u64,
    prev: String,
    sha256: String,
    generated_at: DateTime<Utc>,
    client_id: String,
    hostname: String,
}

/// Read the chain fields of a bundle file.
fn chain_of(path: &Path) -> Result<ChainFacts> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let b: Bundle = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let at = DateTime::parse_from_rfc3339(&b.generated_at)
        .with_context(|| format!("{}: field generated_at", path.display()))?
        .with_timezone(&Utc);
    Ok(ChainFacts {
        sequence: b.chain.sequence,
        prev: b.chain.prev_bundle_sha256,
        sha256: sha256_hex(&bytes),
        generated_at: at,
        client_id: b.client_id,
        hostname: b.hostname,
    })
}

/// Remove what an earlier, interrupted prune left: companions (in the month directories or
/// moved to `.orphans/` by the store) of bundles at or before `last_pruned`.
fn remove_leftovers(root: &Path, last_pruned: &str) -> Result<usize> {
    let Some(limit) = id_order(last_pruned) else { return Ok(0) };
    let covered = |name: &str| -> bool {
        let stem = name.split('.').next().unwrap_or("");
        id_order(stem).is_some_and(|o| o <= limit)
    };
    let mut dirs = vec![root.join(ORPHANS_DIR)];
    for y in dir_names(root)?.into_iter().filter(|n| n.len() == 4 && n.bytes().all(|c| c.is_ascii_digit())) {
        for m in dir_names(&root.join(&y))? {
            dirs.push(root.join(&y).join(m));
        }
    }
    let mut n = 0;
    for d in dirs {
        if !d.is_dir() {
            continue;
        }
        for name in dir_names(&d)? {
            // Never a bundle file itself here: a `.json` at or before the limit is only
            // removed by the prune loop, after its checks. And never a companion of a bundle
            // whose `.json` is still there: a run killed after writing the record but before
            // removing that bundle left it whole, and whole it must stay (the next run prunes
            // it properly, or it stays, verifiable).
            if !covered(&name) || name.ends_with(".json") {
                continue;
            }
            let stem = name.split('.').next().unwrap_or("");
            if d.join(format!("{stem}.json")).exists() {
                continue;
            }
            let p = d.join(&name);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            } else {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
            n += 1;
        }
        fsutil::sync_dir(&d)?;
    }
    Ok(n)
}

/// The entry names of `dir`, sorted; empty when it is not a directory.
pub(crate) fn dir_names(dir: &Path) -> Result<Vec<String>> {
    let mut v = Vec::new();
    if !dir.is_dir() {
        return Ok(v);
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        v.push(e.with_context(|| format!("listing {}", dir.display()))?.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}

/// Prune the store at `root` (see the module docs). Holds the store's writer lock for the
/// whole run, so no bundle is appended meanwhile.
pub fn prune(root: &Path, state_dir: &Path, signer: &Signer, local_retention_days: u32, now: DateTime<Utc>) -> Result<PruneReport> {
    let mut store = EvidenceStore::open_waiting(root, crate::daemon::STORE_WAIT)?;
    let mut report = PruneReport::default();
    let previous = latest_record(root)?;
    if let Some((_, rec, _)) = &previous {
        report.leftovers_removed = remove_leftovers(root, &rec.last_pruned_bundle)?;
    }
    let Some((head_seq, _)) = store.head().map(|(s, h)| (s, h.to_string())) else {
        return Ok(report);
    };
    let outbox = Outbox::open(state_dir)?;
    if outbox.fresh {
        report.stopped_at = Some("no outbox state: nothing is known to be in the bucket".into());
        return Ok(report);
    }
    let bundles = local::scan(root)?;
    let mut chosen: Vec<(local::LocalBundle, u64, String)> = Vec::new();
    let mut first_kept: Option<(String, u64, String, String, String)> = None;
    for b in &bundles {
        let ChainFacts { sequence: seq, prev, sha256: sha, generated_at: at, client_id: client, hostname: host } = chain_of(b.json_path())?;
        let receipted = crate::worm::receipt::read(root, b)?.is_some_and(|r| r.bundle_sha256 == sha);
        let why_not = if seq >= head_seq {
            Some("the chain's head")
        } else if !outbox.is_confirmed(&b.id) {
            Some("not confirmed in the bucket")
        } else if !receipted {
            Some("no upload receipt matching its bytes")
        } else if !local_copy_removable(&outbox, &b.id, at, local_retention_days, now) {
            Some("younger than the local retention")
        } else {
            None
        };
        if let Some(why) = why_not {
            report.stopped_at = Some(format!("{}: {why}", b.id));
            first_kept = Some((b.id.clone(), seq, prev, client, host));
            break;
        }
        chosen.push((b.clone(), seq, sha));
    }
    let (Some((last, last_seq, last_sha)), Some((kept_id, kept_seq, kept_prev, client_id, hostname))) = (chosen.last().cloned(), first_kept) else {
        return Ok(report);
    };
    if kept_prev != last_sha || kept_seq != last_seq + 1 {
        bail!(
            "{}: the chain does not continue from {} (sequence {last_seq}); refusing to prune a broken chain (run `evidence verify`)",
            kept_id,
            last.id
        );
    }
    let rec = PruneRecord {
        prune_record_version: PRUNE_RECORD_VERSION,
        client_id: client_id.clone(),
        hostname: hostname.clone(),
        first_retained_sequence: kept_seq,
        first_retained_bundle: kept_id.clone(),
        last_pruned_bundle: last.id.clone(),
        last_pruned_sequence: last_seq,
        last_pruned_sha256: last_sha.clone(),
        pruned_now: chosen.len() as u64,
        pruned_at: now,
        local_retention_days,
        key_id: signer.key_id().to_string(),
        found_in: root.to_path_buf(),
    };
    let dir = root.join(PRUNED_DIR);
    fsutil::create_dir_all(&dir, 0o755)?;
    let path = dir.join(format!("PR-{kept_seq:012}.json"));
    if !path.exists() {
        let mut bytes = serde_json::to_vec_pretty(&rec).context("serialising the prune record")?;
        bytes.push(b'\n');
        let raw = signer.sign_raw(&bytes);
        let ssh = signer.sign_sshsig(&bytes).context("SSH-signing the prune record")?;
        let (sig, sshsig) = (companion(&path, SIG_SUFFIX), companion(&path, SSHSIG_SUFFIX));
        // A crash may have left signatures of a record that was never published: replace them.
        let _ = std::fs::remove_file(&sig);
        let _ = std::fs::remove_file(&sshsig);
        fsutil::write_once_all(&[(sig.as_path(), raw.as_slice()), (sshsig.as_path(), ssh.as_bytes())], 0o444)?;
        fsutil::write_once(&path, &bytes, 0o444)?;
    }
    for (b, _, _) in &chosen {
        let json = b.json_path().to_path_buf();
        let mdir = json.parent().context("bundle path has no directory")?.to_path_buf();
        std::fs::remove_file(&json).with_context(|| format!("removing {}", json.display()))?;
        fsutil::sync_dir(&mdir)?;
        for p in [companion(&json, SIG_SUFFIX), companion(&json, SSHSIG_SUFFIX), mdir.join(format!("{}{ARTIFACTS_SUFFIX}", b.id))] {
            if p.is_dir() {
                std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            } else if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        fsutil::sync_dir(&mdir)?;
        report.pruned.push(b.id.clone());
    }
    report.record = Some(path);
    let provenance = crate::runbook::provenance();
    let ctx = crate::daemon::records::RecordContext { client_id: &client_id, hostname: &hostname, provenance: &provenance };
    let details = serde_json::json!({
        "pruned": chosen.len(),
        "first_pruned_bundle": chosen.first().map(|c| c.0.id.clone()),
        "last_pruned_bundle": last.id,
        "last_pruned_sha256": last_sha,
        "first_retained_sequence": kept_seq,
        "first_retained_bundle": kept_id,
        "local_retention_days": local_retention_days,
    });
    let nb = crate::daemon::records::store_observation(
        &ctx,
        crate::incident::event_type::EVIDENCE_PRUNED,
        "PRN",
        "low",
        &crate::daemon::records::RETENTION_CONTROLS,
        details,
        now,
    );
    report.record_bundle = Some(store.append(nb, signer, now)?.bundle_id);
    Ok(report)
}

/// Disk usage of the file system holding `path`, in percent of the space available to
/// unprivileged users (what `df` shows).
pub fn disk_usage_percent(path: &Path) -> Result<f64> {
    let s = nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    let blocks = s.blocks() as f64;
    let free = s.blocks_free() as f64;
    let avail = s.blocks_available() as f64;
    let used = blocks - free;
    if used + avail <= 0.0 {
        return Ok(0.0);
    }
    Ok(used * 100.0 / (used + avail))
}

/// A problem: (the bundle, record or chain it is about, the reason).
pub type Named = (String, String);

/// The valid prune records of the verified store roots, and a problem for each record
/// whose signature does not verify (its pruned history then counts as deleted).
pub fn load_records(roots: &[PathBuf], keys: &Keyring) -> Result<(Vec<PruneRecord>, Vec<Named>)> {
    let mut problems = Vec::new();
    let mut records = Vec::new();
    for root in roots {
        if let Some((path, rec, bytes)) = latest_record(root)? {
            match verify_record(&path, &rec, &bytes, keys) {
                Ok(()) => records.push(PruneRecord { found_in: root.clone(), ..rec }),
                Err(e) => problems.push((path.display().to_string(), format!("prune record: {e}; the pruned history counts as deleted"))),
            }
        }
    }
    Ok((records, problems))
}

/// With valid prune records (verification then ran with `partial`): every chain that starts
/// after sequence 1 must be covered by its host's record ([`check_pruned_start`]). Returns
/// the problems as `(bundle or chain, reason)`.
/// Tell each store root the newest bundle its valid prune record names as pruned, so the
/// receipt cross-check does not report those bundles as deleted.
pub fn mark_pruned(records: &[PruneRecord], heads: &mut [super::verify::StoreRoot]) {
    for h in heads {
        h.pruned_through = records.iter().find(|r| r.found_in == h.root).map(|r| r.last_pruned_bundle.clone());
    }
}

pub fn check_starts(records: &[PruneRecord], files: &[PathBuf], chains: &[super::verify::ChainSummary]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for c in chains.iter().filter(|c| c.first_sequence != 1) {
        let rec = records.iter().find(|r| r.client_id == c.client_id && r.hostname == c.hostname);
        let Some(rec) = rec else {
            problems.push((
                format!("{}/{}", c.client_id, c.hostname),
                format!(
                    "chain broken: the chain starts at sequence {} (bundles 1 to {} missing, and no valid prune record covers them; --partial checks part of a chain)",
                    c.first_sequence,
                    c.first_sequence - 1
                ),
            ));
            continue;
        };
        // The chain's first bundle: normally the first file by name, so this reads one or two.
        let mut first = None;
        for f in files {
            if let Ok(cf) = chain_of(f) {
                if cf.sequence == c.first_sequence && cf.client_id == c.client_id && cf.hostname == c.hostname {
                    first = Some((cf.prev, f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
                    break;
                }
            }
        }
        let (prev, name) = first.unwrap_or_default();
        if let Some(why) = check_pruned_start(rec, c.first_sequence, &prev, &name) {
            problems.push((name, why));
        }
    }
    problems
}

/// The `alert:` section of an agent config; default (journal only) when the file or the
/// section is absent. A section that does not parse is an error naming the file.
pub(crate) fn alert_config(path: &std::path::Path) -> Result<crate::config::AlertConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match doc.get("alert") {
        None => Ok(Default::default()),
        Some(v) => serde_yaml_ng::from_value(v.clone()).with_context(|| format!("{}: section alert", path.display())),
    }
}

/// `msp-agent evidence prune` (see `EvidenceCmd::Prune`).
pub fn run(
    evidence_dir: PathBuf,
    state_dir: PathBuf,
    key_dir: PathBuf,
    local_retention_days: u32,
    disk_alert_percent: u8,
    config: PathBuf,
    now: Option<String>,
) -> Result<crate::exit::Exit> {
    let now: DateTime<Utc> = match now {
        Some(s) => DateTime::parse_from_rfc3339(&s).context("--now must be an RFC 3339 time")?.with_timezone(&Utc),
        None => Utc::now(),
    };
    let alerts = alert_config(&config)?;
    let signer = crate::keys::Signer::load(&key_dir)?;
    let r = prune(&evidence_dir, &state_dir, &signer, local_retention_days, now)?;
    eprintln!(
        "evidence prune: {} bundle(s) pruned{}{}{}",
        r.pruned.len(),
        r.pruned.first().map(|f| format!(" ({f} to {})", r.pruned.last().unwrap_or(f))).unwrap_or_default(),
        r.stopped_at.as_ref().map(|s| format!("; kept from {s}")).unwrap_or_default(),
        if r.leftovers_removed > 0 { format!("; {} left-over file(s) of an interrupted prune removed", r.leftovers_removed) } else { String::new() }
    );
    let used = disk_usage_percent(&evidence_dir)?;
    if used <= f64::from(disk_alert_percent) {
        return Ok(crate::exit::Exit::Ok);
    }
    // Over the threshold: a signed record, then the alert (journal at crit, webhook if set).
    let head = crate::worm::local::scan(&evidence_dir)?;
    let (client_id, hostname) = match head.last() {
        Some(b) => {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(b.json_path()).with_context(|| format!("reading {}", b.json_path().display()))?)
                .with_context(|| format!("parsing {}", b.json_path().display()))?;
            let f = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
            (f("client_id"), f("hostname"))
        }
        None => (String::new(), String::new()),
    };
    let provenance = crate::runbook::provenance();
    let ctx = crate::daemon::records::RecordContext { client_id: &client_id, hostname: &hostname, provenance: &provenance };
    let details = serde_json::json!({
        "used_percent": (used * 10.0).round() / 10.0,
        "threshold_percent": disk_alert_percent,
        "pruned_now": r.pruned.len(),
        "local_retention_days": local_retention_days,
    });
    let nb = crate::daemon::records::store_observation(
        &ctx,
        crate::incident::event_type::EVIDENCE_DISK_HIGH,
        "EDH",
        "high",
        &crate::daemon::records::RETENTION_CONTROLS,
        details,
        now,
    );
    let mut store = EvidenceStore::open_waiting(&evidence_dir, crate::daemon::STORE_WAIT)?;
    let w = store.append(nb, &signer, now)?;
    drop(store);
    let summary = format!(
        "evidence file system at {} is {used:.1}% full (threshold {disk_alert_percent}%); pruning cannot free more until bundles are confirmed and older than {local_retention_days} days",
        evidence_dir.display()
    );
    let alerter = crate::alert::Alerter::new(&alerts)?;
    alerter.raise(crate::alert::Alert {
        kind: "evidence_disk_high".into(),
        client_id,
        host: hostname,
        incident_id: None,
        runbook_id: None,
        bundle_id: Some(w.bundle_id.clone()),
        summary: summary.clone(),
        at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    alerter.shutdown();
    eprintln!("evidence prune: ALERT {summary} (recorded as {})", w.bundle_id);
    Ok(crate::exit::Exit::CheckFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> PruneRecord {
        PruneRecord {
            prune_record_version: 1,
            client_id: "c".into(),
            hostname: "h".into(),
            first_retained_sequence: 10,
            first_retained_bundle: "EB-20261122-0010".into(),
            last_pruned_bundle: "EB-20261122-0009".into(),
            last_pruned_sequence: 9,
            last_pruned_sha256: "aa".into(),
            pruned_now: 9,
            pruned_at: Utc::now(),
            local_retention_days: 90,
            key_id: "k".into(),
            found_in: PathBuf::new(),
        }
    }

    #[test]
    fn pruned_start_accepts_the_record_and_names_more_deletion() {
        let r = rec();
        assert_eq!(check_pruned_start(&r, 10, "aa", "EB-20261122-0010.json"), None);
        // An interrupted prune: older bundles still there.
        assert_eq!(check_pruned_start(&r, 7, "bb", "EB-20261122-0007.json"), None);
        let e = check_pruned_start(&r, 12, "cc", "EB-20261122-0012.json").unwrap();
        assert!(e.contains("bundles 10 to 11 deleted"), "{e}");
        let e = check_pruned_start(&r, 10, "zz", "EB-20261122-0010.json").unwrap();
        assert!(e.contains("does not link"), "{e}");
    }

    #[test]
    fn disk_usage_is_a_percentage() {
        let p = disk_usage_percent(Path::new("/")).unwrap();
        assert!((0.0..=100.0).contains(&p), "{p}");
    }
}
