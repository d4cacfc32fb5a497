//! Evidence bundles: the types ([`bundle`]), the write-once hash-chained store ([`store`]),
//! the trusted keys ([`keyring`]), verification ([`verify`]) with batched signature checks
//! ([`batch`]), and a synthetic bundle for tests and benchmarks ([`sample`]).

pub mod batch;
pub mod bundle;
pub mod heartbeat;
pub mod keyring;
pub mod sample;
pub mod store;
pub mod storecheck;
pub mod verify;

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
        /// Bundles or directories of bundles (searched recursively).
        #[arg(required_unless_present = "manifest")]
        paths: Vec<PathBuf>,
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
                run_verify(keys, runbooks, json, partial, max_heartbeat_gap, paths)
            }
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
    let ring = keyring::Keyring::load(&keys)
        .with_context(|| format!("loading keys from {}", keys.display()))?;
    let runbooks = runbooks.map(|d| verify::runbook_index(&d)).transpose()?;
    let (files, heads) = verify::collect(&paths)?;
    if files.is_empty() {
        anyhow::bail!("no evidence bundles (EB-YYYYMMDD-NNNN.json) found in the given paths");
    }
    let opts = verify::VerifyOptions {
        keys: ring,
        runbooks,
        partial,
        threads: 0,
        max_heartbeat_gap,
    };
    let report = verify::verify_files(&files, &heads, &opts)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serialising the report")?
        );
    } else {
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
