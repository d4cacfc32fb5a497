//! Exactly-once across crashes.
//!
//! The journal cursor and the evidence store are two durable things, so a crash can fall
//! between them: evidence for an entry written, cursor not yet past it. On restart that entry
//! is read again; it must not be handled again. Every bundle about a journal entry carries the
//! entry's cursor (`incident.details.journal_cursor`), so the daemon reads the bundles written
//! since the *evidence mark* and skips entries whose cursor it finds there.
//!
//! The mark is the store's head sequence at a moment when no bundle for an entry after the
//! committed cursor could exist yet: the head when the oldest entry still in flight was read,
//! or the head now when nothing is in flight. It is written *after* the cursor, so a crash
//! between the two leaves an older mark, which only means reading a few more bundles.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::evidence::store::BundleName;

/// The persisted mark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceMark {
    /// Bundles with a greater `chain.sequence` may concern entries after the cursor.
    pub sequence: u64,
}

impl EvidenceMark {
    /// Read the mark (missing file = 0: read every bundle, as on a first start).
    pub fn load(path: &Path) -> Result<EvidenceMark> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("evidence mark {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EvidenceMark::default()),
            Err(e) => Err(e).with_context(|| format!("reading evidence mark {}", path.display())),
        }
    }

    /// Write the mark durably.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).context("serialising evidence mark")?;
        crate::fsutil::replace(path, &bytes, 0o600)
    }
}

#[derive(Deserialize)]
struct Partial {
    incident: PartialIncident,
    chain: PartialChain,
}
#[derive(Deserialize)]
struct PartialIncident {
    details: serde_json::Value,
}
#[derive(Deserialize)]
struct PartialChain {
    sequence: u64,
}

/// Journal cursors recorded in bundles with `chain.sequence > mark`, newest first until the
/// mark is reached.
pub fn handled_cursors(evidence_root: &Path, mark: EvidenceMark) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for month in month_dirs_newest_first(evidence_root)? {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&month)
            .with_context(|| format!("listing {}", month.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| BundleName::parse_file_name(n).is_some())
            })
            .collect();
        // EB-YYYYMMDD-NNNN sorts in chain order within a month.
        files.sort();
        for f in files.iter().rev() {
            let bytes = crate::fsutil::read_regular(f, crate::fsutil::limits::BUNDLE)?;
            let b: Partial = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", f.display()))?;
            if b.chain.sequence <= mark.sequence {
                return Ok(out);
            }
            if let Some(c) = b.incident.details.get("journal_cursor").and_then(|c| c.as_str()) {
                out.insert(c.to_string());
            }
        }
    }
    Ok(out)
}

/// `ROOT/YYYY/MM` directories, newest first.
fn month_dirs_newest_first(root: &Path) -> Result<Vec<PathBuf>> {
    let mut months = Vec::new();
    let years = match std::fs::read_dir(root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(months),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    for y in years.filter_map(|e| e.ok()) {
        let name = y.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() != 4 || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for m in std::fs::read_dir(y.path()).with_context(|| format!("listing {}", y.path().display()))?.filter_map(|e| e.ok()) {
            let mname = m.file_name();
            if mname.to_str().is_some_and(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())) {
                months.push(m.path());
            }
        }
    }
    months.sort();
    months.reverse();
    Ok(months)
}
