//! Client exceptions (`baseline/exceptions/<client>.yaml`): strict loading and the date rules.
//!
//! ```yaml
//! client_id: clinic-001
//! exceptions:
//!   - id: EXC-clinic-001-001
//!     rule: ssh.client_alive_interval_seconds
//!     baseline_value: 300
//!     override_value: 900
//!     justification: ...
//!     risk_level: low            # low | medium | high | critical
//!     compensating_controls: [ ... ]
//!     owner: ...
//!     approved_by: ...
//!     approved_date: 2026-10-01
//!     expires: 2027-03-31        # valid through this UTC day, invalid the day after
//!     review_frequency_days: 90
//!     last_reviewed: 2026-11-15  # optional; defaults to approved_date
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Days, NaiveDate};

use super::fields::{parse_document, Fields};
use super::model::{Baseline, Value};
use super::report::Findings;
use super::yaml::{self, Kind};

/// Warn this many days before an exception expires.
pub const EXPIRY_WARNING_DAYS: u64 = 30;

/// One approved deviation from the baseline for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// Unique id across all clients.
    pub id: String,
    /// The baseline key it overrides.
    pub rule: String,
    /// The baseline value at approval time (must equal the current baseline value).
    pub baseline_value: Value,
    /// The value the client's hosts use instead.
    pub override_value: Value,
    /// Why.
    pub justification: String,
    /// low | medium | high | critical
    pub risk_level: String,
    /// What reduces the risk meanwhile.
    pub compensating_controls: Vec<String>,
    /// Who is responsible for it.
    pub owner: String,
    /// Who approved it.
    pub approved_by: String,
    /// When it was approved (UTC date).
    pub approved_date: NaiveDate,
    /// Last UTC day it is valid.
    pub expires: NaiveDate,
    /// A review is due this many days after the last review (or approval).
    pub review_frequency_days: i64,
    /// Date of the last review, if after approval.
    pub last_reviewed: Option<NaiveDate>,
    /// Line of the exception in its file.
    pub line: usize,
    /// Lines of individual fields, for date findings.
    pub field_lines: HashMap<&'static str, usize>,
}

/// One client's exceptions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientExceptions {
    /// Client id (equals the file stem).
    pub client_id: String,
    /// Path of the file as shown in findings.
    pub file: String,
    /// The exceptions, in file order.
    pub exceptions: Vec<Exception>,
}

const TOP_FIELDS: &[&str] = &["client_id", "exceptions"];
const FIELDS: &[&str] = &[
    "id",
    "rule",
    "baseline_value",
    "override_value",
    "justification",
    "risk_level",
    "compensating_controls",
    "owner",
    "approved_by",
    "approved_date",
    "expires",
    "review_frequency_days",
    "last_reviewed",
];
const RISK_LEVELS: &[&str] = &["low", "medium", "high", "critical"];

/// Client ids: lowercase letters, digits and dashes (they become file names and Nix strings).
pub fn is_client_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

/// The `*.yaml` files of an exceptions directory, sorted by name. A missing directory is an
/// I/O error (the caller turns it into exit 2). A `*.yml` file gets a warning: it is not read,
/// and a client whose exceptions silently vanished would be a surprise.
pub fn list_files(dir: &Path, out: &mut Findings) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("reading exceptions directory {}", dir.display()))?
    {
        let path = entry
            .with_context(|| format!("reading exceptions directory {}", dir.display()))?
            .path();
        if !path.is_file() {
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml") => files.push(path),
            Some("yml") => out.warning(
                &path.display().to_string(),
                None,
                "(file)",
                "ignored: exceptions files must be named <client-id>.yaml",
            ),
            _ => {}
        }
    }
    files.sort();
    Ok(files)
}

/// Parse one exceptions file; structural problems go to `out`. Returns what could be read
/// (exceptions with any field error are left out).
pub fn load(file: &str, stem: &str, text: &str, out: &mut Findings) -> Option<ClientExceptions> {
    let root = parse_document(file, text, out)?;
    let mut top = Fields::new(file, "", &root, out)?;
    let client_id = top.req_str("client_id", out);
    if let Some(id) = &client_id {
        if !is_client_id(id) {
            out.error(
                file,
                Some(top.line_of("client_id")),
                "client_id",
                format!("`{id}` must be lowercase letters, digits and dashes"),
            );
        } else if id != stem {
            out.error(
                file,
                Some(top.line_of("client_id")),
                "client_id",
                format!("`{id}` does not match the file name {stem}.yaml"),
            );
        }
    }
    let mut exceptions = Vec::new();
    if let Some(node) = top.req("exceptions", out) {
        match &node.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(e) = load_one(file, &format!("exceptions[{i}]"), item, out) {
                        exceptions.push(e);
                    }
                }
            }
            other => out.error(
                file,
                Some(node.line),
                "exceptions",
                format!("expected a list, found {}", other.describe()),
            ),
        }
    }
    top.finish(TOP_FIELDS, out);
    Some(ClientExceptions {
        client_id: client_id?,
        file: file.to_string(),
        exceptions,
    })
}

fn load_one(file: &str, prefix: &str, node: &yaml::Node, out: &mut Findings) -> Option<Exception> {
    let before = out.errors();
    let mut f = Fields::new(file, prefix, node, out)?;
    let id = f.req_str("id", out);
    if let Some(id) = &id {
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            out.error(
                file,
                Some(f.line_of("id")),
                &f.path("id"),
                format!("`{id}` may only contain letters, digits, '-', '_' and '.'"),
            );
        }
    }
    let rule = f.req_str("rule", out);
    let value = |name: &str, f: &mut Fields, out: &mut Findings| {
        let n = f.req(name, out)?;
        match Value::from_node(n) {
            Ok(v) => Some(v),
            Err(msg) => {
                out.error(file, Some(n.line), &f.path(name), msg);
                None
            }
        }
    };
    let baseline_value = value("baseline_value", &mut f, out);
    let override_value = value("override_value", &mut f, out);
    let justification = f.req_str("justification", out);
    let risk_level = f.req_str("risk_level", out);
    if let Some(r) = &risk_level {
        if !RISK_LEVELS.contains(&r.as_str()) {
            out.error(
                file,
                Some(f.line_of("risk_level")),
                &f.path("risk_level"),
                format!("`{r}` is not one of low, medium, high, critical"),
            );
        }
    }
    let compensating_controls = f.req_str_list("compensating_controls", out);
    let owner = f.req_str("owner", out);
    let approved_by = f.req_str("approved_by", out);
    let approved_date = f.req_date("approved_date", out);
    let expires = f.req_date("expires", out);
    let review_frequency_days = f.req_int("review_frequency_days", 1, 366, out);
    let last_reviewed = f.opt_date("last_reviewed", out);
    let mut field_lines = HashMap::new();
    for name in [
        "rule",
        "baseline_value",
        "override_value",
        "approved_date",
        "expires",
        "review_frequency_days",
        "last_reviewed",
        "id",
    ] {
        field_lines.insert(name, f.line_of(name));
    }
    let line = f.line();
    f.finish(FIELDS, out);
    if out.errors() > before {
        return None;
    }
    Some(Exception {
        id: id?,
        rule: rule?,
        baseline_value: baseline_value?,
        override_value: override_value?,
        justification: justification?,
        risk_level: risk_level?,
        compensating_controls: compensating_controls?,
        owner: owner?,
        approved_by: approved_by?,
        approved_date: approved_date?,
        expires: expires?,
        review_frequency_days: review_frequency_days?,
        last_reviewed,
        line,
        field_lines,
    })
}

impl Exception {
    fn line_of(&self, field: &str) -> Option<usize> {
        Some(self.field_lines.get(field).copied().unwrap_or(self.line))
    }
}

/// Check exceptions against the baseline (if it loaded) and each other. Date-independent.
pub fn check_consistency(
    clients: &[ClientExceptions],
    baseline: Option<&Baseline>,
    out: &mut Findings,
) {
    let mut seen_ids: HashMap<&str, &str> = HashMap::new();
    for client in clients {
        let file = client.file.as_str();
        let mut rules_seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (i, e) in client.exceptions.iter().enumerate() {
            let field = |name: &str| format!("exceptions[{i}].{name}");
            if let Some(prev) = seen_ids.insert(&e.id, file) {
                out.error(
                    file,
                    e.line_of("id"),
                    &field("id"),
                    format!("duplicate exception id {} (also in {prev})", e.id),
                );
            }
            if let Some(prev) = rules_seen.insert(&e.rule, &e.id) {
                out.error(
                    file,
                    e.line_of("rule"),
                    &field("rule"),
                    format!(
                        "{} overrides {} again (already overridden by {prev})",
                        e.id, e.rule
                    ),
                );
            }
            if e.override_value == e.baseline_value {
                out.error(file, e.line_of("override_value"), &field("override_value"), format!("{}: override value {} equals the baseline value; the exception has no effect", e.id, e.override_value));
            }
            if e.expires < e.approved_date {
                out.error(
                    file,
                    e.line_of("expires"),
                    &field("expires"),
                    format!(
                        "{}: expires {} is before approved_date {}",
                        e.id, e.expires, e.approved_date
                    ),
                );
            }
            if let Some(r) = e.last_reviewed {
                if r < e.approved_date {
                    out.error(
                        file,
                        e.line_of("last_reviewed"),
                        &field("last_reviewed"),
                        format!(
                            "{}: last_reviewed {} is before approved_date {}",
                            e.id, r, e.approved_date
                        ),
                    );
                }
            }
            let Some(b) = baseline else { continue };
            let Some(rule) = b.rules.get(&e.rule) else {
                out.error(
                    file,
                    e.line_of("rule"),
                    &field("rule"),
                    format!("{}: `{}` is not a baseline key", e.id, e.rule),
                );
                continue;
            };
            if e.baseline_value != rule.value {
                out.error(file, e.line_of("baseline_value"), &field("baseline_value"), format!("{}: baseline value {} does not match the baseline's current value {} for {} (re-approve against baseline {})", e.id, e.baseline_value, rule.value, e.rule, b.version));
            }
            if e.override_value.type_name() != rule.value.type_name() {
                out.error(
                    file,
                    e.line_of("override_value"),
                    &field("override_value"),
                    format!(
                        "{}: override value {} is a {}, but {} is a {}",
                        e.id,
                        e.override_value,
                        e.override_value.type_name(),
                        e.rule,
                        rule.value.type_name()
                    ),
                );
            }
        }
    }
}

/// The date rules at UTC day `at`. An exception is valid on its `expires` day and invalid the
/// day after. A review is overdue (an error: the risk has not been re-assessed on schedule)
/// when `last_reviewed` (or `approved_date`) + `review_frequency_days` is before `at`.
pub fn check_dates(clients: &[ClientExceptions], at: NaiveDate, out: &mut Findings) {
    for client in clients {
        let file = client.file.as_str();
        for (i, e) in client.exceptions.iter().enumerate() {
            let field = |name: &str| format!("exceptions[{i}].{name}");
            if e.approved_date > at {
                out.error(
                    file,
                    e.line_of("approved_date"),
                    &field("approved_date"),
                    format!(
                        "{}: approved_date {} is after the check date {at}",
                        e.id, e.approved_date
                    ),
                );
            }
            // A review dated in the future would push the next review out of reach: the
            // exception would never become overdue.
            if let Some(r) = e.last_reviewed.filter(|r| *r > at) {
                out.error(
                    file,
                    e.line_of("last_reviewed"),
                    &field("last_reviewed"),
                    format!("{}: last_reviewed {r} is after the check date {at} (a review cannot be dated in the future)", e.id),
                );
            }
            if e.expires < at {
                out.error(
                    file,
                    e.line_of("expires"),
                    &field("expires"),
                    format!("{}: expired on {} (checked at {at})", e.id, e.expires),
                );
                continue;
            }
            let last = e.last_reviewed.unwrap_or(e.approved_date);
            // review_frequency_days is 1..=366 (checked on load), so this cannot overflow.
            let due = last
                .checked_add_days(Days::new(e.review_frequency_days as u64))
                .unwrap_or(NaiveDate::MAX);
            if due < at {
                out.error(file, e.line_of("review_frequency_days"), &field("review_frequency_days"), format!("{}: review overdue: last reviewed {last}, due every {} days, was due {due} (checked at {at})", e.id, e.review_frequency_days));
            }
            let warn_from = e
                .expires
                .checked_sub_days(Days::new(EXPIRY_WARNING_DAYS))
                .unwrap_or(NaiveDate::MIN);
            if at >= warn_from {
                let left = (e.expires - at).num_days();
                out.warning(
                    file,
                    e.line_of("expires"),
                    &field("expires"),
                    format!("{}: expires {} ({left} days left)", e.id, e.expires),
                );
            }
        }
    }
}
