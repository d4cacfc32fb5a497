//! The packet's PHI check: the agent's own PHI filter, built from the packet's baseline, run
//! over every string of the month's bundles and every artifact file stored with them. It
//! backs the packet's statement that the evidence holds no PHI with a result an auditor can
//! read (and re-run: the same filter, the same files); findings are named by file, kind and
//! count, never by content.
//!
//! What it cannot do is the filter's limit: a name, or an identifier in a form no pattern
//! knows, is not found. That is why the runbooks store application output as counts and
//! hashes only; the check is the second line, shown as such.

use std::path::Path;

use serde_json::Value;

use super::doc::{Block, Doc, Tone};
use super::load::Loaded;
use crate::evidence::store::ARTIFACTS_SUFFIX;
use crate::scrub::{PhiFilter, Redactions};

/// Bundle fields that are machine identifiers, not text: never scanned (a journal cursor is
/// hex and counters; `sha256`-style fields are hex).
const NOT_TEXT: [&str; 1] = ["journal_cursor"];

/// The result over one month.
#[derive(Debug, Clone, Default)]
pub struct PhiCheck {
    /// Pattern kinds the filter looked for.
    pub patterns: Vec<String>,
    /// Bundle files scanned.
    pub bundles_scanned: usize,
    /// Artifact files scanned.
    pub artifacts_scanned: usize,
    /// Of those, stored before the filter existed (bundle version 1.0, `scrubbed: false`).
    pub artifacts_unscrubbed: usize,
    /// Bytes of text scanned.
    pub bytes_scanned: u64,
    /// Files with findings: relative path and what was found.
    pub findings: Vec<(String, Redactions)>,
}

impl PhiCheck {
    /// Total identifiers found.
    pub fn total(&self) -> u64 {
        self.findings.iter().map(|(_, r)| r.total()).sum()
    }

    /// The manifest's `summary.phi_check`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "patterns": self.patterns,
            "bundles_scanned": self.bundles_scanned,
            "artifacts_scanned": self.artifacts_scanned,
            "artifacts_unscrubbed": self.artifacts_unscrubbed,
            "bytes_scanned": self.bytes_scanned,
            "identifiers_found": self.total(),
            "files_with_findings": self.findings.iter().map(|(f, r)| serde_json::json!({"file": f, "found": r.to_map()})).collect::<Vec<_>>(),
        })
    }
}

/// Scan the month's bundles (every one listed, verified or not) and their artifacts.
pub fn check(evidence_root: &Path, bundles: &[Loaded], filter: &PhiFilter) -> PhiCheck {
    let mut out = PhiCheck {
        patterns: filter.kinds().iter().map(|k| k.as_str().to_string()).collect(),
        ..PhiCheck::default()
    };
    for l in bundles {
        out.bundles_scanned += 1;
        let mut found = Redactions::default();
        // Regular files only, bounded: a FIFO or a huge sparse file named like a bundle must
        // not hang or exhaust the packet (such a bundle is already shown invalid by load).
        match crate::fsutil::read_regular(&l.path, crate::fsutil::limits::BUNDLE) {
            Ok(bytes) => {
                out.bytes_scanned += bytes.len() as u64;
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => scan_json(filter, &v, &mut found),
                    // Not JSON: scan it as text, all of it.
                    Err(_) => found.merge(&filter.find(&String::from_utf8_lossy(&bytes))),
                }
            }
            Err(e) => tracing::warn!(file = %l.path.display(), error = %format!("{e:#}"), "PHI check: cannot read bundle"),
        }
        if found.total() > 0 {
            out.findings.push((l.rel_path.clone(), found));
        }
        if let Some(b) = &l.bundle {
            out.artifacts_unscrubbed += b.artifacts.iter().filter(|a| !a.scrubbed).count();
        }
        let stem = l.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let adir = l.path.with_file_name(format!("{stem}{ARTIFACTS_SUFFIX}"));
        let Ok(rd) = std::fs::read_dir(&adir) else { continue };
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for f in files {
            let Ok(bytes) = crate::fsutil::read_regular(&f, crate::fsutil::limits::ARTIFACT) else { continue };
            out.artifacts_scanned += 1;
            out.bytes_scanned += bytes.len() as u64;
            let found = filter.find(&String::from_utf8_lossy(&bytes));
            if found.total() > 0 {
                let rel = f.strip_prefix(evidence_root).unwrap_or(&f).to_string_lossy().into_owned();
                out.findings.push((rel, found));
            }
        }
    }
    out
}

fn scan_json(filter: &PhiFilter, v: &Value, found: &mut Redactions) {
    match v {
        Value::String(s) => found.merge(&filter.find(s)),
        Value::Array(items) => items.iter().for_each(|i| scan_json(filter, i, found)),
        Value::Object(map) => {
            for (k, val) in map {
                found.merge(&filter.find(k));
                if !NOT_TEXT.contains(&k.as_str()) {
                    scan_json(filter, val, found);
                }
            }
        }
        _ => {}
    }
}

/// Put the check into the document, just before the attestation: the statement, and a table
/// of findings (empty when there are none).
pub fn add_to_document(doc: &mut Doc, c: &PhiCheck) {
    let statement = if c.findings.is_empty() {
        format!(
            "PHI boundary (baseline phi.boundary: metadata-only). The agent's PHI filter (patterns {}) was run over every text field of the {} bundle(s) and every one of the {} artifact file(s) of the period ({} bytes) and found no identifier. {} artifact(s) were stored before the agent scrubbed artifacts (bundle version 1.0) and were scanned all the same. A pattern search cannot find a name; that is why the agent's runbooks record an application's output only as line counts and a SHA-256.",
            c.patterns.join(", "),
            c.bundles_scanned,
            c.artifacts_scanned,
            c.bytes_scanned,
            c.artifacts_unscrubbed,
        )
    } else {
        format!(
            "PHI boundary (baseline phi.boundary: metadata-only): NOT MET. The agent's PHI filter (patterns {}) found {} identifier(s) in {} file(s) of the period (listed below by kind and count, never by content); the statement that the evidence holds no PHI does not hold for them. Scanned: {} bundle(s), {} artifact file(s), {} bytes.",
            c.patterns.join(", "),
            c.total(),
            c.findings.len(),
            c.bundles_scanned,
            c.artifacts_scanned,
            c.bytes_scanned,
        )
    };
    let rows: Vec<(Vec<String>, Tone)> =
        c.findings.iter().map(|(f, r)| (vec![f.clone(), r.summary()], Tone::Bad)).collect();
    let blocks = [
        Block::Para(statement),
        Block::Table {
            columns: vec![("File".into(), 3.0), ("Identifiers found (kind×count)".into(), 2.5)],
            rows,
            empty: "None: no identifier found in the period's evidence.".into(),
        },
    ];
    let at = doc
        .blocks
        .iter()
        .position(|b| matches!(b, Block::Heading(h) if h.contains("Attestation")))
        .unwrap_or(doc.blocks.len());
    doc.blocks.splice(at..at, blocks);
}
