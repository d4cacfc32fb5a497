//! `baseline check`: load the baseline, controls map, exceptions and runbook ids, run every
//! consistency and date rule, and report.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::NaiveDate;
use serde::Serialize;

use super::controls::{self, Row, SectionCoverage};
use super::exceptions::{self, ClientExceptions};
use super::model::{self, Baseline, Value};
use super::report::{Finding, Findings};
use super::runbooks;

/// Where the inputs are.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The baseline YAML.
    pub baseline: PathBuf,
    /// The controls map CSV (not needed by render).
    pub controls: Option<PathBuf>,
    /// The exceptions directory.
    pub exceptions: PathBuf,
    /// The runbooks directory (not needed by render).
    pub runbooks: Option<PathBuf>,
}

/// Everything loaded, plus the findings so far.
#[derive(Debug)]
pub struct Loaded {
    /// The baseline, if it loaded without errors.
    pub baseline: Option<Baseline>,
    /// Valid controls-map rows.
    pub rows: Vec<Row>,
    /// Clients' exceptions (only fully valid exceptions are listed).
    pub clients: Vec<ClientExceptions>,
    /// Problems found.
    pub findings: Findings,
}

fn read(path: &Path) -> Result<String> {
    // Invalid UTF-8, a NUL or a BOM is named with its line (yamlutil's text rules).
    crate::yamlutil::read_text(path)
}

/// Load and cross-check everything that does not depend on the date. `Err` only for I/O
/// problems (missing file or directory): those are exit 2, not findings.
pub fn load_all(inputs: &Inputs) -> Result<Loaded> {
    let mut out = Findings::default();
    let bfile = inputs.baseline.display().to_string();
    let baseline = model::load(&bfile, &read(&inputs.baseline)?, &mut out);

    let mut clients = Vec::new();
    for path in exceptions::list_files(&inputs.exceptions, &mut out)? {
        let shown = path.display().to_string();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(c) = exceptions::load(&shown, &stem, &read(&path)?, &mut out) {
            clients.push(c);
        }
    }
    exceptions::check_consistency(&clients, baseline.as_ref(), &mut out);

    let (runbook_ids, runbook_slas) = match &inputs.runbooks {
        Some(dir) => {
            let (ids, slas) = runbooks::scan(dir, &mut out)?;
            (Some(ids), slas)
        }
        None => (None, Vec::new()),
    };
    if let (Some(b), Some(ids)) = (&baseline, &runbook_ids) {
        check_baseline_runbooks(&bfile, b, ids, &mut out);
    }
    if let Some(b) = &baseline {
        check_agent_rules_have_checks(&bfile, b, &mut out);
        check_runbook_slas(&bfile, b, &runbook_slas, &mut out);
    }

    let mut rows = Vec::new();
    if let Some(cpath) = &inputs.controls {
        let cfile = cpath.display().to_string();
        rows = controls::load(&cfile, &read(cpath)?, &mut out);
        let keys: Option<HashSet<String>> =
            baseline.as_ref().map(|b| b.rules.keys().cloned().collect());
        controls::check_references(
            &cfile,
            &rows,
            keys.as_ref(),
            runbook_ids.as_ref(),
            &bfile,
            &mut out,
        );
    }
    Ok(Loaded {
        baseline,
        rows,
        clients,
        findings: out,
    })
}

/// `incident.runbooks` (any rule whose key ends in `.runbooks`) must name existing runbooks.
fn check_baseline_runbooks(file: &str, b: &Baseline, ids: &HashSet<String>, out: &mut Findings) {
    for rule in b.rules.values().filter(|r| r.key.ends_with(".runbooks")) {
        if let Value::List(items) = &rule.value {
            for item in items {
                if let Value::Str(id) = item {
                    if !ids.contains(id) {
                        out.error(
                            file,
                            Some(rule.line),
                            &format!("{}.value", rule.key),
                            format!("runbook {id} not found in the runbooks directory"),
                        );
                    }
                }
            }
        }
    }
}

/// Every `enforced_by: agent` rule must be enforced by a check of the agent's registry
/// ([`crate::checks::REGISTRY`]): a rule the agent claims but nothing checks is the one thing
/// a compliance packet must never credit.
fn check_agent_rules_have_checks(file: &str, b: &Baseline, out: &mut Findings) {
    for rule in b.rules.values().filter(|r| r.enforced_by == model::EnforcedBy::Agent) {
        if crate::checks::for_rule(&rule.key).is_none() {
            out.error(
                file,
                Some(rule.line),
                &format!("{}.enforced_by", rule.key),
                "`enforced_by: agent`, but no agent check implements this rule (registry: agent/src/checks/mod.rs); implement one or mark the rule `operator` or `nixos` honestly",
            );
        }
    }
}

/// A runbook's `sla_minutes` must not exceed the baseline's `incident.sla_minutes_<severity>`
/// for its severity (it may be stricter).
fn check_runbook_slas(file: &str, b: &Baseline, slas: &[runbooks::RunbookSla], out: &mut Findings) {
    for s in slas {
        let key = format!("incident.sla_minutes_{}", s.severity);
        let Some(rule) = b.rules.get(&key) else { continue };
        let Value::Int(limit) = rule.value else { continue };
        if s.sla_minutes > limit {
            out.error(
                &s.file,
                Some(s.line),
                "sla_minutes",
                format!(
                    "{} (severity {}) promises {} minutes, but the baseline's {key} is {limit} ({file}:{}); a runbook may be stricter than the baseline, never looser",
                    s.id, s.severity, s.sla_minutes, rule.line
                ),
            );
        }
    }
}

/// The result of `baseline check`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The UTC day the date rules were checked at.
    pub checked_at: NaiveDate,
    /// Baseline version, if it loaded.
    pub baseline_version: Option<String>,
    /// Baseline SHA-256, if it loaded.
    pub baseline_sha256: Option<String>,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Every finding, in order.
    pub findings: Vec<Finding>,
    /// Per-section coverage of the controls map.
    pub coverage: Vec<SectionCoverage>,
}

impl Report {
    /// True when nothing is wrong (warnings allowed).
    pub fn ok(&self) -> bool {
        self.errors == 0
    }
}

/// Run every check at UTC day `at`.
pub fn check(inputs: &Inputs, at: NaiveDate) -> Result<Report> {
    let mut loaded = load_all(inputs)?;
    exceptions::check_dates(&loaded.clients, at, &mut loaded.findings);
    let f = loaded.findings;
    Ok(Report {
        checked_at: at,
        baseline_version: loaded.baseline.as_ref().map(|b| b.version.clone()),
        baseline_sha256: loaded.baseline.as_ref().map(|b| b.sha256.clone()),
        errors: f.errors(),
        warnings: f.warnings(),
        coverage: controls::coverage(&loaded.rows),
        findings: f.items,
    })
}

/// The coverage table as text.
pub fn coverage_table(cov: &[SectionCoverage]) -> String {
    let mut s = format!(
        "{:<10} {:>8} {:>12} {:>8} {:>15} {:>9} {:>18} {:>21}\n",
        "section",
        "controls",
        "implemented",
        "partial",
        "organisational",
        "unmapped",
        "required-on-server",
        "addressable-on-server"
    );
    let mut total = SectionCoverage {
        section: "total".into(),
        ..Default::default()
    };
    for c in cov.iter() {
        s.push_str(&row(c));
        total.total += c.total;
        total.implemented += c.implemented;
        total.partial += c.partial;
        total.organisational += c.organisational;
        total.unmapped += c.unmapped;
        total.required_on_server += c.required_on_server;
        total.addressable_on_server += c.addressable_on_server;
    }
    s.push_str(&row(&total));
    s
}

fn row(c: &SectionCoverage) -> String {
    format!(
        "{:<10} {:>8} {:>12} {:>8} {:>15} {:>9} {:>18} {:>21}\n",
        c.section,
        c.total,
        c.implemented,
        c.partial,
        c.organisational,
        c.unmapped,
        c.required_on_server,
        c.addressable_on_server
    )
}
