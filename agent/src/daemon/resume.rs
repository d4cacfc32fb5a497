//! Runs interrupted by a shutdown, to be resumed at the next start.
//!
//! On SIGTERM the running step of each runbook finishes (or times out), the rest are not
//! started, and the run's bundle says `interrupted`. Beside it the worker leaves a resume
//! record, `STATE/resume/<incident-id>.json`: the incident, the runbook (id and hash) and the
//! index of the first step not run. At the next start the daemon runs the runbook again from
//! that step — nothing done is repeated, nothing left undone is lost — and removes the record
//! once that run's bundle is written.
//!
//! The record is written right after the interrupted bundle; only a SIGKILL in between loses
//! the continuation, and the bundle still shows the auditor that the run was interrupted.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::incident::Incident;

/// One interrupted run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeRecord {
    pub incident: Incident,
    pub runbook_id: String,
    /// The runbook file's SHA-256 when it was interrupted: a changed runbook is not resumed.
    pub runbook_hash: String,
    /// Index of the first step that did not run.
    pub next_step: usize,
    /// The interrupted run's bundle.
    pub interrupted_bundle: String,
}

/// `STATE/resume`.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("resume")
}

fn path(state_dir: &Path, incident_id: &str) -> PathBuf {
    dir(state_dir).join(format!("{incident_id}.json"))
}

/// Write (or replace) the record for `r.incident`.
pub fn save(state_dir: &Path, r: &ResumeRecord) -> Result<()> {
    crate::fsutil::create_dir_all(&dir(state_dir), 0o700)?;
    let bytes = serde_json::to_vec_pretty(r).context("serialising a resume record")?;
    crate::fsutil::replace(&path(state_dir, &r.incident.incident_id), &bytes, 0o600)
}

/// Remove the record for `incident_id` (missing is fine).
pub fn remove(state_dir: &Path, incident_id: &str) -> Result<()> {
    let p = path(state_dir, incident_id);
    match std::fs::remove_file(&p) {
        Ok(()) => crate::fsutil::sync_dir(&dir(state_dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// Every record, oldest incident first. A malformed record is an error naming the file: it
/// stands for a remediation half done, which must not be dropped silently.
pub fn load_all(state_dir: &Path) -> Result<Vec<ResumeRecord>> {
    let d = dir(state_dir);
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", d.display())),
    };
    let mut out = Vec::new();
    for e in rd {
        let p = e.with_context(|| format!("listing {}", d.display()))?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with(crate::fsutil::TMP_PREFIX) || !name.ends_with(".json") {
            continue;
        }
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        out.push(serde_json::from_slice(&bytes).with_context(|| format!("parsing resume record {}", p.display()))?);
    }
    out.sort_by(|a: &ResumeRecord, b| a.incident.incident_id.cmp(&b.incident.incident_id));
    Ok(out)
}
