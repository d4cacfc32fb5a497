//! `msp-agent evidence ...`: verify, prune, export, and a synthetic bundle for tests and
//! benchmarks ([`sample`]). The bundle types ([`bundle`]), the write-once hash-chained store
//! ([`store`]), the trusted keys ([`keyring`]) and verification ([`verify`], with batched
//! signature checks in [`batch`]) are the evidence contract, in the `msp-evidence` crate.

pub mod export;
pub mod prune;
pub mod sample;
pub mod sample_month;

// The format, store, keyring and verification are the evidence contract (`msp-evidence`,
// shared with the fleet view); re-exported so `crate::evidence::...` names them here.
pub use msp_evidence::{batch, bundle, heartbeat, keyring, store, storecheck, verify};

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::exit::Exit;

/// `msp-agent evidence ...`
#[derive(Debug, Subcommand)]
pub enum EvidenceCmd {
    /// Check signatures, chain continuity, artifact and runbook hashes.
    ///
    /// Exit 0: everything valid; 1: something invalid (the first bad bundle and the reason
    /// are printed); 2: usage or I/O error. Gaps between heartbeats longer than max(1 h,
    /// 2 × interval) are reported as warnings (exit 0) unless `--max-heartbeat-gap` is given.
    Verify {
        /// Directory with the public keys (`key-info.json`, `archive/`).
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        keys: PathBuf,
        /// Also check each bundle's runbook_id/runbook_hash against the runbook files in DIR.
        #[arg(long, value_name = "DIR")]
        runbooks: Option<PathBuf>,
        /// Machine-readable output (a JSON report on stdout).
        #[arg(long)]
        json: bool,
        /// Accept a chain that does not start at sequence 1 (checking part of a chain).
        #[arg(long)]
        partial: bool,
        /// Fail (exit 1) when two consecutive heartbeats of a host are further apart than
        /// this (e.g. `90m`, `2h`, `1d`). Without it, gaps longer than max(1 h, 2 × the
        /// heartbeat interval) are printed as warnings only.
        #[arg(long, value_name = "DURATION", value_parser = heartbeat::parse_duration)]
        max_heartbeat_gap: Option<std::time::Duration>,
        /// A packet manifest to check instead of bundles (also recognised as a path named
        /// `manifest.json`); a directory among PATH is then the evidence directory.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// On a failed verification (exit 1) raise an `evidence_verify_failed` alert through
        /// the `alert:` section of this agent config (journal at crit, webhook if set); the
        /// daily timer of the NixOS module uses it.
        #[arg(long, value_name = "FILE")]
        alert_config: Option<PathBuf>,
        /// Bundles or directories of bundles (searched recursively).
        #[arg(required_unless_present = "manifest")]
        paths: Vec<PathBuf>,
    },
    /// Remove local copies of old bundles the WORM bucket holds (confirmed, receipted, older
    /// than --local-retention-days, never the chain's head), leaving a signed prune record so
    /// `evidence verify` still accepts the store; then check the evidence file system's usage.
    ///
    /// Exit 0: done, disk below the threshold; 1: the evidence file system is above
    /// --disk-alert-percent (a signed `evidence_disk_high` record is written and an alert
    /// raised); 2: error.
    Prune {
        /// Evidence store root.
        #[arg(long, value_name = "DIR", default_value = crate::paths::EVIDENCE_DIR)]
        evidence_dir: PathBuf,
        /// State directory (the WORM outbox says what is confirmed).
        #[arg(long, value_name = "DIR", default_value = crate::paths::STATE_DIR)]
        state_dir: PathBuf,
        /// Directory with the signing key (prune and disk records are signed).
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
        /// Keep local copies at least this many days after they were written.
        #[arg(long, value_name = "DAYS", default_value_t = prune::DEFAULT_LOCAL_RETENTION_DAYS)]
        local_retention_days: u32,
        /// Alert when the evidence file system's usage is above this percentage.
        #[arg(long, value_name = "PERCENT", default_value_t = prune::DEFAULT_DISK_ALERT_PERCENT)]
        disk_alert_percent: u8,
        /// Agent config whose `alert:` section (webhook) receives the disk alert; absent or
        /// without the section: the journal only.
        #[arg(long, value_name = "FILE", default_value = crate::paths::CONFIG_FILE)]
        config: PathBuf,
        /// TEST AID: judge ages as if now were this time (RFC 3339).
        #[arg(long, hide = true)]
        now: Option<String>,
    },
    /// Offboarding: copy every bundle, receipt, prune record and packet of one client and the
    /// public keys into DIR with a signed SHA256SUMS manifest and a README for the recipient;
    /// verify the copy on the way out. Exit 0 verified, 1 naming what did not.
    Export {
        /// The client whose evidence to export.
        #[arg(long, value_name = "ID")]
        client: String,
        /// Where to write (must be empty or absent).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Evidence store root.
        #[arg(long, value_name = "DIR", default_value = crate::paths::EVIDENCE_DIR)]
        evidence_dir: PathBuf,
        /// Key directory: public keys are exported (never the private key), the manifest is
        /// signed with the signing key.
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
        /// A packet directory to include (repeatable).
        #[arg(long, value_name = "DIR")]
        packets: Vec<PathBuf>,
    },
    /// TEST AND DEMO AID, not for production stores: write a month of realistic synthetic
    /// evidence for one host (heartbeats with one outage, daily backups but one, restore
    /// tests, incidents of every runbook, a drift), signed with the real key in --key-dir and
    /// chained like the agent's. An existing store's chain is continued, so several months
    /// can be written in order; a month not after the store's newest bundle is refused.
    /// Used by the fleet view's tests and demo. Exit 0 written, 2 error.
    SampleMonth {
        /// Store directory (the layout `YYYY/MM/`), created if missing.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// The month to write.
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// Client id written into the bundles.
        #[arg(long, value_name = "ID")]
        client: String,
        /// Host name written into the bundles.
        #[arg(long, value_name = "NAME")]
        host: String,
        /// Key directory with the signing key (`key generate --out DIR`).
        #[arg(long, value_name = "DIR")]
        key_dir: PathBuf,
        /// Minutes between heartbeats.
        #[arg(long, value_name = "N", default_value_t = 15)]
        heartbeat_minutes: u32,
        /// Create the key directory first (it must not exist), with a key valid from the day
        /// before the month, so a past month can be signed (`key generate` makes a key valid
        /// from now).
        #[arg(long)]
        new_key: bool,
        /// Leave out the month's WORM restore test record (its §164.308(a)(7)(ii)(B),(D)
        /// rows then fail, as they must).
        #[arg(long)]
        no_worm_restore_test: bool,
    },
    /// TEST AND BENCHMARK AID (hidden): append COUNT synthetic bundles to the store at ROOT,
    /// signed with the key in KEYS. Used by the crash test, which SIGKILLs it mid-write.
    #[command(hide = true)]
    WriteTestBundles {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long, value_name = "DIR")]
        keys: PathBuf,
        #[arg(long)]
        count: u64,
        /// Attach a small artifact file to every bundle.
        #[arg(long)]
        with_artifact: bool,
        /// Use this time (RFC 3339) instead of the clock.
        #[arg(long)]
        now: Option<String>,
    },
}

impl EvidenceCmd {
    /// Run the evidence command.
    pub fn run(self) -> Result<Exit> {
        match self {
            EvidenceCmd::Verify {
                keys,
                runbooks,
                json,
                partial,
                max_heartbeat_gap,
                manifest,
                alert_config,
                mut paths,
            } => {
                // A packet manifest: checked by the packet module (crate::packet::manifest).
                let named = paths.iter().position(|p| {
                    p.file_name().is_some_and(|n| n == crate::packet::manifest::MANIFEST_FILE)
                });
                if let Some(m) = manifest.or_else(|| named.map(|i| paths.remove(i))) {
                    let ring = keyring::Keyring::load(&keys)
                        .with_context(|| format!("loading keys from {}", keys.display()))?;
                    let dir = paths.iter().find(|p| p.is_dir()).map(PathBuf::as_path);
                    return crate::packet::verify_manifest_cli(&m, &ring, dir, json);
                }
                let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                let exit = run_verify(keys, runbooks, json, partial, max_heartbeat_gap, paths)?;
                if let (Exit::CheckFailed, Some(cfg)) = (&exit, alert_config) {
                    let alerter = crate::alert::Alerter::new(&prune::alert_config(&cfg)?)?;
                    alerter.raise(crate::alert::Alert {
                        kind: "evidence_verify_failed".into(),
                        client_id: String::new(),
                        host: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
                        incident_id: None,
                        runbook_id: None,
                        bundle_id: None,
                        summary: format!("evidence verify failed for {} (see the msp-agent-evidence-verify unit's journal for the first bad bundle)", shown.join(" ")),
                        at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    });
                    alerter.shutdown();
                }
                Ok(exit)
            }
            EvidenceCmd::Prune { evidence_dir, state_dir, key_dir, local_retention_days, disk_alert_percent, config, now } => {
                prune::run(evidence_dir, state_dir, key_dir, local_retention_days, disk_alert_percent, config, now)
            }
            EvidenceCmd::Export { client, to, evidence_dir, key_dir, packets } => {
                export::run(&client, &to, &evidence_dir, &key_dir, &packets)
            }
            EvidenceCmd::SampleMonth {
                store,
                month,
                client,
                host,
                key_dir,
                heartbeat_minutes,
                new_key,
                no_worm_restore_test,
            } => sample_month::run(
                &store,
                &month,
                &client,
                &host,
                &key_dir,
                heartbeat_minutes,
                sample_month::Extras { new_key, worm_restore_test: !no_worm_restore_test },
            ),
            EvidenceCmd::WriteTestBundles {
                root,
                keys,
                count,
                with_artifact,
                now,
            } => write_test_bundles(root, keys, count, with_artifact, now),
        }
    }
}

fn run_verify(
    keys: PathBuf,
    runbooks: Option<PathBuf>,
    json: bool,
    partial: bool,
    max_heartbeat_gap: Option<std::time::Duration>,
    paths: Vec<PathBuf>,
) -> Result<Exit> {
    let ring = match keyring::Keyring::load(&keys) {
        Ok(r) => r,
        // A revocation record that does not match the keys: nothing can be vouched for, and
        // it is an integrity failure (exit 1, so the scheduled verify alerts), not a usage error.
        Err(e) if e.downcast_ref::<keyring::RevocationProblem>().is_some() => {
            println!("FAILED: key directory {}: {e:#}", keys.display());
            return Ok(Exit::CheckFailed);
        }
        Err(e) => return Err(e.context(format!("loading keys from {}", keys.display()))),
    };
    let runbooks = runbooks.map(|d| verify::runbook_index(&d)).transpose()?;
    let (files, mut heads) = verify::collect(&paths)?;
    if files.is_empty() {
        anyhow::bail!("no evidence bundles (EB-YYYYMMDD-NNNN.json) found in the given paths");
    }
    // A pruned store starts after sequence 1; its signed prune record says where (prune.rs).
    let roots: Vec<PathBuf> = paths.iter().filter(|p| p.is_dir()).cloned().collect();
    let (records, mut prune_problems) = prune::load_records(&roots, &ring)?;
    prune::mark_pruned(&records, &mut heads);
    let pruned = !partial && !records.is_empty();
    let opts = verify::VerifyOptions {
        keys: ring,
        runbooks,
        partial: partial || pruned,
        threads: 0,
        max_heartbeat_gap,
    };
    let report = verify::verify_files(&files, &heads, &opts)?;
    if pruned {
        prune_problems.extend(prune::check_starts(&records, &files, &report.chains));
    }
    if json {
        let mut v = serde_json::to_value(&report).context("serialising the report")?;
        if !prune_problems.is_empty() {
            v["ok"] = serde_json::Value::Bool(false);
            v["chain_start_problems"] = serde_json::json!(prune_problems
                .iter()
                .map(|(b, r)| serde_json::json!({ "bundle": b, "reason": r }))
                .collect::<Vec<_>>());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&v).context("serialising the report")?
        );
    } else {
        for (b, r) in &prune_problems {
            println!("{b}: {r}");
        }
        for p in &report.problems {
            println!("{}: {}", p.bundle, p.reason);
        }
        for c in &report.chains {
            println!(
                "chain {}/{}: {} bundle(s), sequence {}..{}, head sha256 {}",
                c.client_id,
                c.hostname,
                c.bundles,
                c.first_sequence,
                c.last_sequence,
                c.head_sha256
            );
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
        for g in &report.heartbeat_gaps {
            println!(
                "{}: heartbeat gap on {}/{}: {} ({}) to {} ({}), {} without a heartbeat (allowed {})",
                if g.error { "error" } else { "warning" },
                g.client_id,
                g.hostname,
                g.before,
                g.before_at,
                g.after,
                g.after_at,
                human_duration(g.gap_seconds),
                human_duration(g.allowed_seconds)
            );
        }
    }
    let gap_errors = report.heartbeat_gaps.iter().filter(|g| g.error).count();
    if report.first_problem.is_none() {
        if let Some((b, r)) = prune_problems.first() {
            eprintln!("evidence verify: FAILED, {} bundle(s) checked; {b}: {r}", report.bundles_checked);
            return Ok(Exit::CheckFailed);
        }
    } else {
        for (b, r) in &prune_problems {
            eprintln!("{b}: {r}");
        }
    }
    match &report.first_problem {
        None if gap_errors > 0 => {
            eprintln!(
                "evidence verify: FAILED, {} bundle(s) verified but {gap_errors} heartbeat gap(s) exceed --max-heartbeat-gap",
                report.bundles_checked
            );
            Ok(Exit::CheckFailed)
        }
        None => {
            let warn = match report.heartbeat_gaps.len() {
                0 => String::new(),
                n => format!(" ({n} heartbeat gap warning(s))"),
            };
            eprintln!(
                "evidence verify: OK, {} bundle(s) verified{warn}",
                report.bundles_checked
            );
            Ok(Exit::Ok)
        }
        Some(p) => {
            eprintln!(
                "evidence verify: FAILED, {} of {} bundle(s) invalid; first bad bundle {}: {}",
                report.bundles_invalid, report.bundles_checked, p.bundle, p.reason
            );
            Ok(Exit::CheckFailed)
        }
    }
}

/// `5400` → `1h30m`.
fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{u}"));
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}

fn write_test_bundles(
    root: PathBuf,
    keys: PathBuf,
    count: u64,
    with_artifact: bool,
    now: Option<String>,
) -> Result<Exit> {
    let signer = crate::keys::Signer::load(&keys)?;
    let mut store = store::EvidenceStore::open(&root)?;
    let fixed: Option<DateTime<Utc>> = now
        .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)))
        .transpose()
        .context("--now must be an RFC 3339 time")?;
    let scratch = std::env::temp_dir().join(format!("msp-test-artifacts-{}", std::process::id()));
    for i in 0..count {
        let mut files = Vec::new();
        if with_artifact {
            crate::fsutil::create_dir_all(&scratch, 0o700)?;
            let f = scratch.join("df.txt");
            std::fs::write(&f, format!("Filesystem Use%\n/srv/data {}%\n", 70 + i % 30))
                .with_context(|| format!("writing {}", f.display()))?;
            files.push(f);
        }
        let w = store.append(
            sample::sample_new_bundle(i, files),
            &signer,
            fixed.unwrap_or_else(Utc::now),
        )?;
        println!("{} {} {}", w.sequence, w.bundle_id, w.sha256);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Exit::Ok)
}

