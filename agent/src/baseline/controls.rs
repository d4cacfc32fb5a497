//! The controls map (`baseline/controls-map.csv`): one row per Security Rule standard and
//! implementation specification, naming the baseline keys and runbooks that address it.
//!
//! Columns (header required, in this order):
//! `control_id,title,kind,requirement,baseline_keys,runbooks,evidence_type,evidence_location,status,freshness_hours,evidence_rule,notes`
//! `baseline_keys` and `runbooks` are `;`-separated (may be empty); `freshness_hours` is empty
//! or a positive integer; `evidence_rule` ([`EvidenceRule`]) says which signed bundles count as
//! evidence for the control in the monthly packet; further `;`-separated `RULE@HOURS` terms
//! ([`FurtherRule`]) are rules the control also requires, each with its own freshness. A
//! control the server implements (in part)
//! must have both; an organisational control must have neither, because the server cannot
//! assess it.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::hipaa::{self, ControlKind, Requirement};
use super::report::Findings;

/// The exact header.
pub const HEADER: &[&str] = &[
    "control_id",
    "title",
    "kind",
    "requirement",
    "baseline_keys",
    "runbooks",
    "evidence_type",
    "evidence_location",
    "status",
    "freshness_hours",
    "evidence_rule",
    "notes",
];

pub use msp_evidence::controls::{parse_rules, EvidenceRule, FurtherRule, RESOLUTION_STATUSES};

/// How far the server itself implements a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fully implemented by the baseline/agent, with evidence.
    Implemented,
    /// Partly implemented on the server; the rest is organisational (see notes).
    Partial,
    /// Outside a server's reach (policy, people, facilities); notes say who does it.
    Organisational,
}

impl Status {
    /// Spelling in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Partial => "partial",
            Status::Organisational => "organisational",
        }
    }
}

/// One row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line in the CSV.
    pub line: usize,
    /// e.g. `§164.308(a)(1)(ii)(A)`.
    pub control_id: String,
    /// Title.
    pub title: String,
    /// Baseline keys that address it.
    pub baseline_keys: Vec<String>,
    /// Runbook ids that address it.
    pub runbooks: Vec<String>,
    /// What kind of evidence.
    pub evidence_type: String,
    /// Where the evidence is.
    pub evidence_location: String,
    /// Status; `None` when the row has an error (it still counts for key citations, so one
    /// typo does not also report every key of the row as uncited).
    pub status: Option<Status>,
    /// Evidence older than this many hours fails the control in the monthly packet.
    pub freshness_hours: Option<u32>,
    /// Which bundles are the control's evidence (`None`: organisational, not assessed).
    pub evidence_rule: Option<EvidenceRule>,
    /// Further rules the control also requires, each with its own freshness (the
    /// `;`-separated `RULE@HOURS` terms after the first: [`FurtherRule`]).
    pub further_rules: Vec<FurtherRule>,
    /// Notes (required for partial and organisational).
    pub notes: String,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// Parse the CSV text. Row-level problems go to `out`; returns the rows that parsed.
pub fn load(file: &str, text: &str, out: &mut Findings) -> Vec<Row> {
    // Spreadsheets often save CSV with a UTF-8 byte-order mark; it is not part of the header.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    match reader.headers() {
        Ok(h) => {
            let got: Vec<&str> = h.iter().collect();
            if got != HEADER {
                out.error(
                    file,
                    Some(1),
                    "(header)",
                    format!(
                        "expected columns {}, found {}",
                        HEADER.join(","),
                        got.join(",")
                    ),
                );
                return Vec::new();
            }
        }
        Err(e) => {
            out.error(
                file,
                Some(1),
                "(header)",
                format!("unreadable CSV header: {e}"),
            );
            return Vec::new();
        }
    }
    let mut rows = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for rec in reader.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                let msg = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("row has {len} columns, expected {expected_len}")
                    }
                    _ => e.to_string(),
                };
                out.error(file, line, "(row)", msg);
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let col = |name: &str| {
            rec.get(HEADER.iter().position(|h| *h == name).unwrap_or(0))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let before = out.errors();
        let control_id = col("control_id");
        let canonical = hipaa::find(&control_id);
        match canonical {
            None => out.error(file, Some(line), "control_id", format!("`{control_id}` is not a standard or implementation specification of §164.308/310/312/316")),
            Some(c) => {
                if let Some(prev) = seen.insert(control_id.clone(), line) {
                    out.error(file, Some(line), "control_id", format!("{control_id} is listed twice (first on line {prev})"));
                }
                let kind = match c.kind {
                    ControlKind::Standard => "standard",
                    ControlKind::ImplementationSpec => "implementation_spec",
                };
                if col("kind") != kind {
                    out.error(file, Some(line), "kind", format!("{control_id} is a {kind}, not `{}`", col("kind")));
                }
                let req = match c.requirement {
                    Requirement::Required => "required",
                    Requirement::Addressable => "addressable",
                };
                if col("requirement") != req {
                    out.error(file, Some(line), "requirement", format!("{control_id} is {req} in the Security Rule, not `{}`", col("requirement")));
                }
            }
        }
        let title = col("title");
        if title.is_empty() {
            out.error(
                file,
                Some(line),
                "title",
                format!("{control_id}: title is empty"),
            );
        }
        let status = match col("status").as_str() {
            "implemented" => Some(Status::Implemented),
            "partial" => Some(Status::Partial),
            "organisational" => Some(Status::Organisational),
            other => {
                out.error(file, Some(line), "status", format!("{control_id}: `{other}` is not one of implemented, partial, organisational"));
                None
            }
        };
        let baseline_keys = split_list(&col("baseline_keys"));
        let runbooks = split_list(&col("runbooks"));
        let notes = col("notes");
        let evidence_type = col("evidence_type");
        let evidence_location = col("evidence_location");
        match status {
            Some(Status::Implemented) | Some(Status::Partial) => {
                if baseline_keys.is_empty() && runbooks.is_empty() {
                    out.error(file, Some(line), "baseline_keys", format!("{control_id}: a {} control must name at least one baseline key or runbook", col("status")));
                }
                if evidence_type.is_empty() || evidence_location.is_empty() {
                    out.error(
                        file,
                        Some(line),
                        "evidence_type",
                        format!(
                            "{control_id}: a {} control needs evidence_type and evidence_location",
                            col("status")
                        ),
                    );
                }
            }
            _ => {}
        }
        if matches!(status, Some(Status::Partial) | Some(Status::Organisational))
            && notes.is_empty()
        {
            out.error(
                file,
                Some(line),
                "notes",
                format!(
                    "{control_id}: status {} requires notes saying who covers the rest and how",
                    col("status")
                ),
            );
        }
        let fresh = col("freshness_hours");
        let freshness_hours = if fresh.is_empty() {
            None
        } else {
            match fresh.parse::<u32>() {
                Ok(h) if h > 0 => Some(h),
                _ => {
                    out.error(
                        file,
                        Some(line),
                        "freshness_hours",
                        format!("{control_id}: `{fresh}` is not a positive whole number of hours"),
                    );
                    None
                }
            }
        };
        let rule_text = col("evidence_rule");
        let (evidence_rule, further_rules) = if rule_text.is_empty() {
            (None, Vec::new())
        } else {
            match parse_rules(&rule_text) {
                Ok((r, more)) => (Some(r), more),
                Err(e) => {
                    out.error(file, Some(line), "evidence_rule", format!("{control_id}: {e}"));
                    (None, Vec::new())
                }
            }
        };
        match status {
            Some(Status::Organisational) if !rule_text.is_empty() || !fresh.is_empty() => {
                let field = if rule_text.is_empty() { "freshness_hours" } else { "evidence_rule" };
                out.error(file, Some(line), field, format!("{control_id}: an organisational control is not assessed by the server; leave evidence_rule and freshness_hours empty"));
            }
            Some(Status::Implemented) | Some(Status::Partial) => {
                if rule_text.is_empty() {
                    out.error(file, Some(line), "evidence_rule", format!("{control_id}: a {} control needs an evidence_rule (which signed bundles prove it in the monthly packet)", col("status")));
                }
                if fresh.is_empty() {
                    out.error(file, Some(line), "freshness_hours", format!("{control_id}: a {} control needs freshness_hours (how old its newest evidence may be)", col("status")));
                }
            }
            _ => {}
        }
        let status = if out.errors() > before { None } else { status };
        {
            rows.push(Row {
                line,
                control_id,
                title,
                baseline_keys,
                runbooks,
                evidence_type,
                evidence_location,
                status,
                freshness_hours,
                evidence_rule,
                further_rules,
                notes,
            });
        }
    }
    // Completeness: every control of the four sections is in the map.
    for c in hipaa::SECURITY_RULE {
        if !seen.contains_key(c.id) {
            let req = match c.requirement {
                Requirement::Required => "required",
                Requirement::Addressable => "addressable",
            };
            out.error(
                file,
                None,
                "control_id",
                format!("{} ({}, {req}) is missing from the map", c.id, c.title),
            );
        }
    }
    rows
}

/// Cross-check rows against the baseline keys and runbook ids; report baseline keys no row cites.
pub fn check_references(
    file: &str,
    rows: &[Row],
    baseline_keys: Option<&HashSet<String>>,
    runbook_ids: Option<&HashSet<String>>,
    baseline_file: &str,
    out: &mut Findings,
) {
    let mut cited = HashSet::new();
    for row in rows {
        for k in &row.baseline_keys {
            cited.insert(k.as_str());
            if let Some(keys) = baseline_keys {
                if !keys.contains(k) {
                    out.error(
                        file,
                        Some(row.line),
                        "baseline_keys",
                        format!("{}: `{k}` is not a baseline key", row.control_id),
                    );
                }
            }
        }
        let rules = row.evidence_rule.iter().chain(row.further_rules.iter().map(|f| &f.rule));
        for id in rules.filter_map(|r| match r {
            EvidenceRule::Runbook { id, .. } => Some(id),
            _ => None,
        }) {
            let Some(ids) = runbook_ids else { break };
            if !ids.contains(id) {
                out.error(
                    file,
                    Some(row.line),
                    "evidence_rule",
                    format!(
                        "{}: runbook {id} not found in the runbooks directory",
                        row.control_id
                    ),
                );
            }
        }
        if let Some(ids) = runbook_ids {
            for r in &row.runbooks {
                if !ids.contains(r) {
                    out.error(
                        file,
                        Some(row.line),
                        "runbooks",
                        format!(
                            "{}: runbook {r} not found in the runbooks directory",
                            row.control_id
                        ),
                    );
                }
            }
        }
    }
    if let Some(keys) = baseline_keys {
        let mut uncited: Vec<&String> = keys
            .iter()
            .filter(|k| !cited.contains(k.as_str()))
            .collect();
        uncited.sort();
        for k in uncited {
            out.error(
                baseline_file,
                None,
                k,
                format!("baseline key {k} is not cited by any row of {file}"),
            );
        }
    }
}

/// Per-section counts of mapped controls by status. A control whose row has an error counts
/// as unmapped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SectionCoverage {
    /// `§164.308` ...
    pub section: String,
    /// Controls the Security Rule lists in this section.
    pub total: usize,
    /// Rows with status implemented.
    pub implemented: usize,
    /// Rows with status partial.
    pub partial: usize,
    /// Rows with status organisational.
    pub organisational: usize,
    /// Controls of the section with no (valid) row.
    pub unmapped: usize,
    /// Required controls that are implemented or partial.
    pub required_on_server: usize,
    /// Addressable controls that are implemented or partial.
    pub addressable_on_server: usize,
}

/// Coverage of the map, per section.
pub fn coverage(rows: &[Row]) -> Vec<SectionCoverage> {
    hipaa::SECTIONS
        .iter()
        .map(|sec| {
            let mut c = SectionCoverage {
                section: sec.to_string(),
                ..Default::default()
            };
            let controls: Vec<_> = hipaa::SECURITY_RULE
                .iter()
                .filter(|k| hipaa::section_of(k.id) == Some(*sec))
                .collect();
            c.total = controls.len();
            for ctl in controls {
                match rows
                    .iter()
                    .find(|r| r.control_id == ctl.id)
                    .and_then(|r| r.status)
                {
                    None => c.unmapped += 1,
                    Some(status) => {
                        match status {
                            Status::Implemented => c.implemented += 1,
                            Status::Partial => c.partial += 1,
                            Status::Organisational => c.organisational += 1,
                        }
                        if status != Status::Organisational {
                            match ctl.requirement {
                                Requirement::Required => c.required_on_server += 1,
                                Requirement::Addressable => c.addressable_on_server += 1,
                            }
                        }
                    }
                }
            }
            c
        })
        .collect()
}
