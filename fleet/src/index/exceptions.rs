//! Signed-off exceptions (the baseline's `exceptions/<client>.yaml`, format in
//! `baseline/README.md` and `agent/src/baseline/exceptions.rs`), read strictly. An exception
//! overrides one baseline key for every host of its client; it covers a control whose
//! `baseline_keys` include that key, from its `approved_date` through its `expires` day (UTC).

use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use serde::Deserialize;

/// One client's file.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientExceptions {
    /// Client id (equals the file stem).
    pub client_id: String,
    /// The file.
    pub file: String,
    /// Its exceptions.
    pub exceptions: Vec<Exception>,
}

/// One exception (the fields the fleet view shows; values and texts are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub id: String,
    /// The baseline key it overrides.
    pub rule: String,
    pub approved_by: String,
    pub approved_date: NaiveDate,
    /// Valid through this UTC day.
    pub expires: NaiveDate,
    pub review_frequency_days: i64,
    pub last_reviewed: Option<NaiveDate>,
}

impl Exception {
    /// In force on UTC day `day`: approved on or before it, not expired (valid through
    /// `expires`, invalid the day after).
    pub fn active_on(&self, day: NaiveDate) -> bool {
        self.approved_date <= day && day <= self.expires
    }

    /// Its review is overdue on `day`.
    pub fn review_overdue(&self, day: NaiveDate) -> bool {
        let last = self.last_reviewed.unwrap_or(self.approved_date);
        last + chrono::Duration::days(self.review_frequency_days) < day
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    client_id: String,
    exceptions: Vec<ExceptionYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // every field is read to be checked; only some are kept
struct ExceptionYaml {
    id: String,
    rule: String,
    baseline_value: serde_yaml_ng::Value,
    override_value: serde_yaml_ng::Value,
    justification: String,
    risk_level: String,
    compensating_controls: Vec<String>,
    owner: String,
    approved_by: String,
    approved_date: NaiveDate,
    expires: NaiveDate,
    review_frequency_days: i64,
    #[serde(default)]
    last_reviewed: Option<NaiveDate>,
}

/// Every `*.yaml` file of `dir`, sorted by name. Errors name the file, line and field.
pub fn load_dir(dir: &Path) -> Result<Vec<ClientExceptions>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading exceptions directory {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading exceptions directory {}", dir.display()))?
            .path();
        if path.is_file() && path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            files.push(path);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        out.push(parse(&path.display().to_string(), &stem, &text)?);
    }
    Ok(out)
}

/// Parse one file (`stem` = the file name without `.yaml`, which must equal `client_id`).
pub fn parse(file: &str, stem: &str, text: &str) -> Result<ClientExceptions> {
    let f: FileYaml = serde_yaml_ng::from_str(text).with_context(|| format!("{file}: invalid exceptions file"))?;
    if f.client_id != stem {
        bail!("{file}: client_id: `{}` does not match the file name {stem}.yaml", f.client_id);
    }
    let mut exceptions = Vec::new();
    for (i, e) in f.exceptions.into_iter().enumerate() {
        if !(1..=366).contains(&e.review_frequency_days) {
            bail!(
                "{file}: exceptions[{i}].review_frequency_days: {} is not in 1..366",
                e.review_frequency_days
            );
        }
        if e.approved_by.trim().is_empty() {
            bail!("{file}: exceptions[{i}].approved_by: empty (an exception needs its approver)");
        }
        exceptions.push(Exception {
            id: e.id,
            rule: e.rule,
            approved_by: e.approved_by,
            approved_date: e.approved_date,
            expires: e.expires,
            review_frequency_days: e.review_frequency_days,
            last_reviewed: e.last_reviewed,
        });
    }
    Ok(ClientExceptions {
        client_id: f.client_id,
        file: file.to_string(),
        exceptions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_exceptions_load_and_expire_at_the_end_of_their_day() {
        let text = include_str!("../../../baseline/exceptions/clinic-001.yaml");
        let c = parse("clinic-001.yaml", "clinic-001", text).unwrap();
        let e = &c.exceptions[0];
        assert_eq!(e.expires, NaiveDate::from_ymd_opt(2027, 3, 31).unwrap());
        assert!(e.active_on(NaiveDate::from_ymd_opt(2027, 3, 31).unwrap()));
        assert!(!e.active_on(NaiveDate::from_ymd_opt(2027, 4, 1).unwrap()));
        assert!(!e.active_on(NaiveDate::from_ymd_opt(2026, 9, 30).unwrap()));
        let err = parse("x.yaml", "clinic-001", &text.replace("risk_level:", "risk_levle:")).unwrap_err();
        assert!(format!("{err:#}").contains("risk_levle"), "{err:#}");
        assert!(parse("x.yaml", "clinic-002", text).is_err());
    }
}
