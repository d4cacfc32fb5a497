//! The agent-enforced rule values ([`AgentPolicy`]), read from the baseline the host was built
//! with. The NixOS module passes that file as the config key `baseline.file` (and its hash as
//! `baseline.sha256`); without it, the repository's baseline compiled into the binary
//! ([`crate::packet::EMBEDDED_BASELINE`], the one embedding) is used. Every value the agent
//! enforces is read from here: there is no second copy of a baseline number in the code.
//!
//! Which check enforces which rule is [`crate::checks::REGISTRY`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::baseline::model::{self, Baseline, EnforcedBy, Value};
use crate::baseline::report::Findings;
use crate::incident::Severity;

/// Where the policy's baseline came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// `baseline.file` from the configuration.
    File(PathBuf),
    /// The baseline compiled into the binary.
    Embedded,
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::File(p) => write!(f, "{}", p.display()),
            PolicySource::Embedded => f.write_str(crate::packet::EMBEDDED_BASELINE.0),
        }
    }
}

/// The values of the baseline's `enforced_by: agent` rules (and the break-glass account name
/// the break-glass check watches for), typed.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentPolicy {
    /// Where it was read from.
    pub source: PolicySource,
    /// `version:` of the baseline.
    pub baseline_version: String,
    /// SHA-256 of the baseline file's exact bytes.
    pub baseline_sha256: String,
    /// `access.break_glass_account` (operator rule; the name the break-glass check watches).
    pub break_glass_account: String,
    /// `access.break_glass_login_alert`.
    pub break_glass_login_alert: bool,
    /// `access.login_failure_alert`.
    pub login_failure_alert: bool,
    /// `encryption.tls_min_version`, e.g. `"1.2"`.
    pub tls_min_version: String,
    /// `logging.evidence_worm_retention_days` (a floor).
    pub worm_retention_days_min: u32,
    /// `logging.evidence_signing`, e.g. `ed25519`.
    pub evidence_signing: String,
    /// `time.max_drift_ms`.
    pub max_drift_ms: u64,
    /// `patching.max_system_age_days`.
    pub max_system_age_days: u32,
    /// `backup.max_age_hours`.
    pub backup_max_age_hours: u32,
    /// `backup.restore_test_interval_days`.
    pub restore_test_interval_days: u32,
    /// `phi.boundary`, e.g. `metadata-only`.
    pub phi_boundary: String,
    /// `phi.evidence_excerpt_max_bytes`.
    pub evidence_excerpt_max_bytes: usize,
    /// `phi.scrub_patterns`, e.g. `[email, phone, ssn, mrn]`.
    pub scrub_patterns: Vec<String>,
    /// `incident.runbooks`: runbook ids that must be loaded.
    pub runbooks: Vec<String>,
    /// `incident.sla_minutes_{critical,high,medium,low}`.
    pub sla_minutes: SlaMinutes,
    /// `incident.escalate_failed_remediation`.
    pub escalate_failed_remediation: bool,
    /// `incident.heartbeat_interval_minutes` (a ceiling).
    pub heartbeat_interval_minutes: u32,
}

/// Per-severity SLA, minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaMinutes {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
}

impl SlaMinutes {
    /// The SLA of `severity`.
    pub fn of(&self, severity: Severity) -> u32 {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }
}

/// The baseline key of the SLA rule for `severity` (`incident.sla_minutes_high`).
pub fn sla_rule_key(severity: Severity) -> String {
    format!("incident.sla_minutes_{severity}")
}

impl AgentPolicy {
    /// The policy of the baseline compiled into the binary.
    pub fn embedded() -> Result<AgentPolicy> {
        let (name, text) = crate::packet::EMBEDDED_BASELINE;
        AgentPolicy::from_text(name, text, PolicySource::Embedded)
    }

    /// The policy the configuration names: `baseline.file` (checked against `baseline.sha256`
    /// when that is set too), else the embedded baseline. A hash given without a file is
    /// checked against the embedded baseline, so a host built from another baseline cannot
    /// run on the wrong values unnoticed.
    pub fn for_config(file: Option<&Path>, sha256: Option<&str>) -> Result<AgentPolicy> {
        let policy = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("configuration: baseline.file: reading {}", path.display()))?;
                AgentPolicy::from_text(&path.display().to_string(), &text, PolicySource::File(path.to_path_buf()))?
            }
            None => AgentPolicy::embedded()?,
        };
        if let Some(want) = sha256 {
            if !want.eq_ignore_ascii_case(&policy.baseline_sha256) {
                bail!(
                    "configuration: baseline.sha256 is {want} but baseline.file {} has SHA-256 {}: the agent refuses to enforce a baseline other than the one the host was built with",
                    policy.source,
                    policy.baseline_sha256
                );
            }
        }
        Ok(policy)
    }

    /// Parse `text` (named `name` in errors) strictly, as `baseline check` does, and read
    /// every agent value. A missing rule, a rule not marked `enforced_by: agent`, or a value
    /// of the wrong type is an error naming file, line and key.
    pub fn from_text(name: &str, text: &str, source: PolicySource) -> Result<AgentPolicy> {
        let mut findings = Findings::default();
        let Some(b) = model::load(name, text, &mut findings) else {
            let lines: Vec<String> = findings.items.iter().map(|f| f.to_string()).collect();
            bail!("baseline {name} did not load:\n{}", lines.join("\n"));
        };
        let r = Reader { b: &b, name };
        Ok(AgentPolicy {
            source,
            baseline_version: b.version.clone(),
            baseline_sha256: b.sha256.clone(),
            break_glass_account: r.string("access.break_glass_account", None)?,
            break_glass_login_alert: r.boolean("access.break_glass_login_alert")?,
            login_failure_alert: r.boolean("access.login_failure_alert")?,
            tls_min_version: r.string("encryption.tls_min_version", Some(EnforcedBy::Agent))?,
            worm_retention_days_min: r.uint("logging.evidence_worm_retention_days")?,
            evidence_signing: r.string("logging.evidence_signing", Some(EnforcedBy::Agent))?,
            max_drift_ms: u64::from(r.uint("time.max_drift_ms")?),
            max_system_age_days: r.uint("patching.max_system_age_days")?,
            backup_max_age_hours: r.uint("backup.max_age_hours")?,
            restore_test_interval_days: r.uint("backup.restore_test_interval_days")?,
            phi_boundary: r.string("phi.boundary", Some(EnforcedBy::Agent))?,
            evidence_excerpt_max_bytes: r.uint("phi.evidence_excerpt_max_bytes")? as usize,
            scrub_patterns: r.strings("phi.scrub_patterns")?,
            runbooks: r.strings("incident.runbooks")?,
            sla_minutes: SlaMinutes {
                critical: r.uint("incident.sla_minutes_critical")?,
                high: r.uint("incident.sla_minutes_high")?,
                medium: r.uint("incident.sla_minutes_medium")?,
                low: r.uint("incident.sla_minutes_low")?,
            },
            escalate_failed_remediation: r.boolean("incident.escalate_failed_remediation")?,
            heartbeat_interval_minutes: r.uint("incident.heartbeat_interval_minutes")?,
        })
    }

    /// The TLS minimum as (major, minor), e.g. `(1, 2)`.
    pub fn tls_min(&self) -> Result<(u8, u8)> {
        parse_tls_version(&self.tls_min_version)
            .with_context(|| format!("{}: encryption.tls_min_version: `{}` is not 1.0-1.3", self.source, self.tls_min_version))
    }
}

/// `"1.2"` → (1, 2); only the TLS versions that exist.
pub fn parse_tls_version(s: &str) -> Option<(u8, u8)> {
    match s {
        "1.0" => Some((1, 0)),
        "1.1" => Some((1, 1)),
        "1.2" => Some((1, 2)),
        "1.3" => Some((1, 3)),
        _ => None,
    }
}

/// Reads typed rule values, with errors naming file, line and key.
struct Reader<'a> {
    b: &'a Baseline,
    name: &'a str,
}

impl Reader<'_> {
    fn rule(&self, key: &str, want: Option<EnforcedBy>) -> Result<&model::Rule> {
        let Some(rule) = self.b.rules.get(key) else {
            bail!("{}: {key}: the agent enforces this rule but the baseline has no such rule", self.name);
        };
        if let Some(w) = want {
            if rule.enforced_by != w {
                bail!(
                    "{}:{}: {key}.enforced_by: the agent reads this rule as `enforced_by: {}`, the baseline says `{}`",
                    self.name,
                    rule.line,
                    w.as_str(),
                    rule.enforced_by.as_str()
                );
            }
        }
        Ok(rule)
    }

    fn wrong(&self, rule: &model::Rule, want: &str) -> anyhow::Error {
        anyhow::anyhow!("{}:{}: {}.value: expected {want}, found {} `{}`", self.name, rule.line, rule.key, rule.value.type_name(), rule.value)
    }

    fn uint(&self, key: &str) -> Result<u32> {
        let rule = self.rule(key, Some(EnforcedBy::Agent))?;
        match &rule.value {
            Value::Int(i) => u32::try_from(*i).map_err(|_| self.wrong(rule, "a non-negative integer")),
            _ => Err(self.wrong(rule, "a non-negative integer")),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool> {
        let rule = self.rule(key, Some(EnforcedBy::Agent))?;
        match &rule.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong(rule, "a boolean")),
        }
    }

    fn string(&self, key: &str, want: Option<EnforcedBy>) -> Result<String> {
        let rule = self.rule(key, want)?;
        match &rule.value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(self.wrong(rule, "a string")),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        let rule = self.rule(key, Some(EnforcedBy::Agent))?;
        let Value::List(items) = &rule.value else { return Err(self.wrong(rule, "a list of strings")) };
        items
            .iter()
            .map(|v| match v {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(self.wrong(rule, "a list of strings")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_policy_has_the_baseline_values() {
        let p = AgentPolicy::embedded().unwrap();
        assert_eq!(p.source, PolicySource::Embedded);
        assert_eq!(p.max_drift_ms, 500);
        assert_eq!(p.evidence_excerpt_max_bytes, 2048);
        assert_eq!(p.worm_retention_days_min, 2190);
        assert_eq!(p.heartbeat_interval_minutes, 15);
        assert_eq!(p.sla_minutes.of(Severity::High), 60);
        assert_eq!(p.tls_min().unwrap(), (1, 2));
        assert_eq!(p.scrub_patterns, ["email", "phone", "ssn", "mrn"]);
        assert_eq!(p.break_glass_account, "msp-breakglass");
        assert_eq!(p.baseline_sha256, model::sha256_hex(crate::packet::EMBEDDED_BASELINE.1.as_bytes()));
    }

    #[test]
    fn file_and_hash_must_agree() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("hipaa-v1.yaml");
        let text = crate::packet::EMBEDDED_BASELINE.1.replace("value: 500\n", "value: 250\n");
        std::fs::write(&f, &text).unwrap();
        let p = AgentPolicy::for_config(Some(&f), None).unwrap();
        assert_eq!(p.max_drift_ms, 250);
        assert_eq!(p.source, PolicySource::File(f.clone()));
        let sha = model::sha256_hex(text.as_bytes());
        assert!(AgentPolicy::for_config(Some(&f), Some(&sha)).is_ok());
        let wrong = "0".repeat(64);
        let e = format!("{:#}", AgentPolicy::for_config(Some(&f), Some(&wrong)).unwrap_err());
        assert!(e.contains(&wrong) && e.contains(&sha) && e.contains("baseline.sha256") && e.contains("baseline.file"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_file_line_and_key() {
        let text = crate::packet::EMBEDDED_BASELINE.1.replace("value: 500\n        compare: at_most\n", "value: \"soon\"\n");
        let e = format!("{:#}", AgentPolicy::from_text("b.yaml", &text, PolicySource::Embedded).unwrap_err());
        let line = text.lines().position(|l| l.contains("max_drift_ms:")).unwrap() + 1;
        assert_eq!(e, format!("b.yaml:{line}: time.max_drift_ms.value: expected a non-negative integer, found string `\"soon\"`"));
    }
}
