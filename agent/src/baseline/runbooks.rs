//! Runbook ids, for checking that the controls map and the baseline name runbooks that exist.
//! Only the top-level `id:` of each `*.yaml`/`*.yml` file under the directory is read; whether a
//! runbook is otherwise valid is `runbook lint`'s job.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};

use super::report::Findings;
use super::yaml::{self, Kind};

/// A runbook's promised SLA, for checking it against the baseline's per-severity SLA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookSla {
    /// The runbook file, as found.
    pub file: String,
    /// `id`.
    pub id: String,
    /// `severity`.
    pub severity: String,
    /// `sla_minutes`.
    pub sla_minutes: i64,
    /// Line of `sla_minutes`.
    pub line: usize,
}

/// Collect runbook ids under `dir` (recursively). A missing directory is an I/O error; a file
/// without a readable `id` is a warning (it cannot be what a row refers to).
pub fn ids(dir: &Path, out: &mut Findings) -> Result<HashSet<String>> {
    Ok(scan(dir, out)?.0)
}

/// [`ids`], plus the SLA of every runbook that has a string `severity` and an integer
/// `sla_minutes` (one without them is `runbook lint`'s to report).
pub fn scan(dir: &Path, out: &mut Findings) -> Result<(HashSet<String>, Vec<RunbookSla>)> {
    let mut ids = HashSet::new();
    let mut slas = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .with_context(|| format!("reading runbooks directory {}", d.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading runbooks directory {}", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                continue;
            }
            let shown = path.display().to_string();
            let text = crate::yamlutil::read_text(&path)?;
            let id = match yaml::parse(&text) {
                Ok(node) => match node.kind {
                    Kind::Map(entries) => {
                        let str_of = |k: &str| {
                            entries.iter().find(|e| e.key == k).and_then(|e| match &e.value.kind {
                                Kind::Str(s) => Some(s.clone()),
                                _ => None,
                            })
                        };
                        let id = str_of("id");
                        let sla = entries.iter().find(|e| e.key == "sla_minutes").and_then(|e| match e.value.kind {
                            Kind::Int(n) => Some((n, e.line)),
                            _ => None,
                        });
                        if let (Some(id), Some(severity), Some((sla_minutes, line))) = (&id, str_of("severity"), sla) {
                            slas.push(RunbookSla { file: shown.clone(), id: id.clone(), severity, sla_minutes, line });
                        }
                        id
                    }
                    _ => None,
                },
                Err(e) => {
                    out.warning(
                        &shown,
                        Some(e.line),
                        "(syntax)",
                        format!("runbook not readable, ignored: {}", e.message),
                    );
                    continue;
                }
            };
            match id {
                Some(id) => {
                    ids.insert(id);
                }
                None => out.warning(
                    &shown,
                    None,
                    "id",
                    "runbook file has no top-level string `id`, ignored",
                ),
            }
        }
    }
    slas.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((ids, slas))
}
