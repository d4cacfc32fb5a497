//! Loading one month of evidence for the packet: every `EB-….json` under `ROOT/YYYY/MM/`,
//! verified with the same code as `msp-agent evidence verify` (signatures, key windows,
//! artifacts, chain), then parsed. A bundle that fails any check is kept in the list with its
//! reason — the packet and the manifest name it — but counts for nothing.
//!
//! The chain is checked across the month's edges: the last bundle before the month and the
//! first one after it (when the store has them) are verified with the month's bundles, so a
//! bundle deleted at either end of the month breaks a link that is checked. With no earlier
//! bundle at all, the month's chain must start at sequence 1.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::evidence::bundle::Bundle;
use crate::evidence::keyring::Keyring;
use crate::evidence::store::{sha256_hex, BundleName};
use crate::evidence::verify::{self, VerifyOptions};

use super::period::Month;

/// One bundle file of the month.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Path relative to the evidence root, `/`-separated (`2026/11/EB-20261101-0001.json`).
    pub rel_path: String,
    /// Full path.
    pub path: PathBuf,
    /// SHA-256 (hex) of the file's bytes.
    pub sha256: String,
    /// The parsed bundle, when it parses (even if it does not verify).
    pub bundle: Option<Bundle>,
    /// `generated_at` parsed, when the bundle parsed and the time is valid.
    pub generated_at: Option<DateTime<Utc>>,
    /// Why it does not count (`None`: verified).
    pub problem: Option<String>,
}

impl Loaded {
    /// The bundle, when it verified.
    pub fn verified(&self) -> Option<&Bundle> {
        match self.problem {
            None => self.bundle.as_ref(),
            Some(_) => None,
        }
    }
}

/// The month's evidence.
#[derive(Debug, Clone, Default)]
pub struct MonthEvidence {
    /// Every bundle file of the month, in name order.
    pub bundles: Vec<Loaded>,
    /// Chain problems found outside the month that concern it (a bundle missing at its end,
    /// the bundle before it not verifying), as `(bundle file, reason)`.
    pub edge_problems: Vec<(String, String)>,
}

/// Load and verify the month's bundles from the evidence root.
pub fn load_month(root: &Path, month: &Month, keys: &Keyring) -> Result<MonthEvidence> {
    if !root.is_dir() {
        anyhow::bail!("evidence directory {} does not exist", root.display());
    }
    crate::evidence::store::check_evidence_dir(root)?;
    let dir = root.join(month.dir());
    let files = if dir.is_dir() {
        verify::collect(std::slice::from_ref(&dir))?.0
    } else {
        Vec::new()
    };
    let (before, after) = neighbours(root, month)?;
    let mut all = files.clone();
    all.extend(before.iter().cloned());
    all.extend(after.iter().cloned());
    all.sort();
    // The chain head only speaks for this month when it names a bundle of this month
    // (otherwise the successor link does the job); the month's upload receipts are checked.
    let heads = vec![verify::StoreRoot { root: root.to_path_buf(), month: Some(month.dir_string()), pruned_through: None }];
    let opts = VerifyOptions {
        keys: keys.clone(),
        runbooks: None,
        partial: before.is_some(),
        threads: 0,
        // The packet judges heartbeat gaps itself, against the controls map's freshness rules.
        max_heartbeat_gap: None,
    };
    let report = if all.is_empty() {
        None
    } else {
        Some(verify::verify_files(&all, &heads, &opts)?)
    };
    let mut reasons: HashMap<PathBuf, String> = HashMap::new();
    let mut edge_problems = Vec::new();
    for p in report.iter().flat_map(|r| r.problems.iter()) {
        // Problems come sorted, first bad bundle first: keep the first reason per bundle.
        if files.binary_search(&p.path).is_ok() {
            reasons
                .entry(p.path.clone())
                .or_insert_with(|| p.reason.clone());
        } else {
            // The neighbour bundles, or a truncation named by head.json.
            edge_problems.push((p.bundle.clone(), p.reason.clone()));
        }
    }
    let mut bundles = Vec::with_capacity(files.len());
    for path in files {
        // verify_files already named a special or oversized file; it counts for nothing.
        let bytes = match crate::fsutil::read_regular(&path, crate::fsutil::limits::BUNDLE) {
            Ok(b) => b,
            Err(e) if crate::fsutil::refused(&e).is_some() => Vec::new(),
            Err(e) => return Err(e),
        };
        let bundle: Option<Bundle> = serde_json::from_slice(&bytes).ok();
        let generated_at = bundle.as_ref().and_then(|b| {
            DateTime::parse_from_rfc3339(&b.generated_at)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        });
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let mut problem = reasons.remove(&path);
        if problem.is_none() && generated_at.is_none() {
            problem = Some("does not parse".into());
        }
        bundles.push(Loaded {
            rel_path: rel,
            sha256: sha256_hex(&bytes),
            bundle,
            generated_at,
            problem,
            path,
        });
    }
    Ok(MonthEvidence {
        bundles,
        edge_problems,
    })
}

/// The last bundle before the month and the first after it, by name, anywhere in the store.
fn neighbours(root: &Path, month: &Month) -> Result<(Option<PathBuf>, Option<PathBuf>)> {
    let mut before: Option<(BundleName, PathBuf)> = None;
    let mut after: Option<(BundleName, PathBuf)> = None;
    let first_day = month.first_day_number();
    let last_day = month.last_day_number();
    for year in read_numeric_dirs(root, 4)? {
        for m in read_numeric_dirs(&year, 2)? {
            let (y, mm) = (dir_number(&year), dir_number(&m));
            let key = y * 100 + mm;
            if key == month.year as u32 * 100 + month.month {
                continue;
            }
            // Only the nearest months matter, but months can be empty: scan names only.
            for e in fs::read_dir(&m).with_context(|| format!("reading {}", m.display()))? {
                let e = e.with_context(|| format!("reading {}", m.display()))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(n) = BundleName::parse_file_name(&name) else { continue };
                if n.day < first_day && before.as_ref().is_none_or(|(b, _)| n > *b) {
                    before = Some((n, e.path()));
                }
                if n.day > last_day && after.as_ref().is_none_or(|(a, _)| n < *a) {
                    after = Some((n, e.path()));
                }
            }
        }
    }
    Ok((before.map(|b| b.1), after.map(|a| a.1)))
}

fn dir_number(p: &Path) -> u32 {
    p.file_name()
        .and_then(|n| n.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn read_numeric_dirs(dir: &Path, len: usize) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == len && name.bytes().all(|b| b.is_ascii_digit()) && e.path().is_dir() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}
