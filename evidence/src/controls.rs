//! What counts as evidence for a control: the `evidence_rule` column of the controls map
//! (`baseline/controls-map.csv`) and the test a bundle must pass under it.
//!
//! Shared by the agent's monthly packet and the fleet view, so a control passes on the fleet
//! page exactly when it would in the host's packet. Only bundles that verify (signature and
//! chain) are ever given to [`qualifies`]; that is the caller's job.

use crate::bundle::Bundle;
use crate::event_type::{BACKUP_COMPLETED, HEARTBEAT, WORM_RESTORE_TEST};

/// How the monthly packet recognises a control's evidence among the signed bundles
/// (column `evidence_rule`). Only bundles that verify (signature and chain) ever count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EvidenceRule {
    /// `heartbeat`: an agent heartbeat record (`incident.event_type = "heartbeat"`).
    Heartbeat,
    /// `provenance`: a heartbeat that names the running NixOS system
    /// (`details.current_system` not null) and was built from the baseline the packet is made
    /// against (`details.baseline_sha256` equal to its SHA-256): the settings the NixOS
    /// assertions enforce were in force.
    Provenance,
    /// `backup_completed`: a backup-completed record (`incident.event_type = "backup_completed"`).
    BackupCompleted,
    /// `runbook:ID:STATUS`: a bundle of runbook ID with `outputs.resolution_status` STATUS,
    /// e.g. `runbook:RB-RESTORE-001:resolved` (a passed restore test).
    Runbook {
        /// Runbook id (must exist in the runbooks directory).
        id: String,
        /// `outputs.resolution_status` required.
        status: String,
    },
    /// `any_bundle`: any bundle at all (the agent is signing and chaining evidence).
    AnyBundle,
    /// `worm_restore_test`: a passed WORM restore test record (`incident.event_type =
    /// "worm_restore_test"`, `details.result = "passed"`, written by `worm restore-test`).
    WormRestoreTest,
}

/// `outputs.resolution_status` values a `runbook:ID:STATUS` rule may name.
pub const RESOLUTION_STATUSES: &[&str] = &[
    "resolved",
    "failed",
    "rolled_back",
    "interrupted",
    "escalated",
    "suppressed",
    "recorded",
];

impl EvidenceRule {
    /// Parse the CSV spelling; the error says what is accepted.
    pub fn parse(s: &str) -> Result<EvidenceRule, String> {
        let accepted = "heartbeat, provenance, backup_completed, any_bundle, worm_restore_test, runbook:RB-ID:STATUS";
        match s {
            "heartbeat" => Ok(EvidenceRule::Heartbeat),
            "provenance" => Ok(EvidenceRule::Provenance),
            "backup_completed" => Ok(EvidenceRule::BackupCompleted),
            "any_bundle" => Ok(EvidenceRule::AnyBundle),
            "worm_restore_test" => Ok(EvidenceRule::WormRestoreTest),
            _ => {
                let Some(rest) = s.strip_prefix("runbook:") else {
                    return Err(format!("`{s}` is not an evidence rule (one of {accepted})"));
                };
                let Some((id, status)) = rest.split_once(':') else {
                    return Err(format!("`{s}`: a runbook rule is runbook:RB-ID:STATUS"));
                };
                let id_ok = id.starts_with("RB-")
                    && id.len() > 3
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
                if !id_ok {
                    return Err(format!("`{s}`: `{id}` is not a runbook id (RB-NAME-NNN)"));
                }
                if !RESOLUTION_STATUSES.contains(&status) {
                    return Err(format!(
                        "`{s}`: `{status}` is not a resolution status (one of {})",
                        RESOLUTION_STATUSES.join(", ")
                    ));
                }
                Ok(EvidenceRule::Runbook {
                    id: id.to_string(),
                    status: status.to_string(),
                })
            }
        }
    }
}

impl std::fmt::Display for EvidenceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvidenceRule::Heartbeat => f.write_str("heartbeat"),
            EvidenceRule::Provenance => f.write_str("provenance"),
            EvidenceRule::BackupCompleted => f.write_str("backup_completed"),
            EvidenceRule::AnyBundle => f.write_str("any_bundle"),
            EvidenceRule::WormRestoreTest => f.write_str("worm_restore_test"),
            EvidenceRule::Runbook { id, status } => write!(f, "runbook:{id}:{status}"),
        }
    }
}

/// Does bundle `b` count as evidence under `rule`?
pub fn qualifies(rule: &EvidenceRule, b: &Bundle, baseline_sha256: &str) -> bool {
    match rule {
        EvidenceRule::AnyBundle => true,
        EvidenceRule::Heartbeat => b.incident.event_type == HEARTBEAT,
        EvidenceRule::BackupCompleted => b.incident.event_type == BACKUP_COMPLETED,
        EvidenceRule::WormRestoreTest => {
            b.incident.event_type == WORM_RESTORE_TEST
                && b.incident.details.get("result").and_then(|v| v.as_str()) == Some("passed")
        }
        EvidenceRule::Provenance => {
            b.incident.event_type == HEARTBEAT
                && b.incident
                    .details
                    .get("current_system")
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| !s.is_empty())
                && b.incident
                    .details
                    .get("baseline_sha256")
                    .and_then(|v| v.as_str())
                    == Some(baseline_sha256)
        }
        EvidenceRule::Runbook { id, status } => {
            &b.runbook.runbook_id == id && &b.outputs.resolution_status == status
        }
    }
}


/// A further rule a control requires, with its own freshness: the `;`-separated terms after
/// the first in the `evidence_rule` column, each written `RULE@HOURS`.
///
/// A control is passing only when its first rule (with the row's `freshness_hours`) and every
/// further rule (with its own hours) are met. It lets one row ask for evidence that comes at
/// different rates, e.g. the weekly local restore test and the monthly WORM restore test:
/// `runbook:RB-RESTORE-001:resolved;worm_restore_test@768`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FurtherRule {
    /// The rule.
    pub rule: EvidenceRule,
    /// Evidence under it older than this many hours fails the control.
    pub freshness_hours: u32,
}

/// Parse the `evidence_rule` column: `RULE` or `RULE;RULE@HOURS;...`. The first term takes
/// the row's `freshness_hours` (so it has no `@`), every further term needs its own.
pub fn parse_rules(text: &str) -> Result<(EvidenceRule, Vec<FurtherRule>), String> {
    let mut terms = text.split(';').map(str::trim);
    let first = terms.next().unwrap_or("");
    if first.contains('@') {
        return Err(format!(
            "`{first}`: the first rule uses the row's freshness_hours; only further rules (after `;`) take `@HOURS`"
        ));
    }
    let first = EvidenceRule::parse(first)?;
    let mut further: Vec<FurtherRule> = Vec::new();
    for t in terms {
        let Some((rule, hours)) = t.split_once('@') else {
            return Err(format!("`{t}`: a further rule is written RULE@HOURS (its own freshness)"));
        };
        let rule = EvidenceRule::parse(rule.trim())?;
        let freshness_hours = match hours.trim().parse::<u32>() {
            Ok(h) if h > 0 => h,
            _ => return Err(format!("`{t}`: `{}` is not a positive number of hours", hours.trim())),
        };
        if rule == first || further.iter().any(|f| f.rule == rule) {
            return Err(format!("`{t}`: rule {rule} is listed twice"));
        }
        further.push(FurtherRule { rule, freshness_hours });
    }
    Ok((first, further))
}

/// The `evidence_rule` column's text for a first rule and its further rules: what
/// [`parse_rules`] reads back.
pub fn rules_text(first: &EvidenceRule, further: &[FurtherRule]) -> String {
    let mut text = first.to_string();
    for f in further {
        text.push_str(&format!(";{}@{}", f.rule, f.freshness_hours));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_or_several_with_their_own_hours() {
        assert_eq!(parse_rules("heartbeat").unwrap(), (EvidenceRule::Heartbeat, vec![]));
        let (first, more) = parse_rules("runbook:RB-RESTORE-001:resolved; worm_restore_test@768").unwrap();
        assert_eq!(first, EvidenceRule::Runbook { id: "RB-RESTORE-001".into(), status: "resolved".into() });
        assert_eq!(more, vec![FurtherRule { rule: EvidenceRule::WormRestoreTest, freshness_hours: 768 }]);
        assert_eq!(rules_text(&first, &more), "runbook:RB-RESTORE-001:resolved;worm_restore_test@768");
    }

    #[test]
    fn malformed_terms_say_what_is_wrong() {
        for (text, says) in [
            ("heartbeat@24", "first rule"),
            ("heartbeat;worm_restore_test", "RULE@HOURS"),
            ("heartbeat;worm_restore_test@0", "positive number"),
            ("heartbeat;worm_restore_test@x", "positive number"),
            ("heartbeat;heartbeat@5", "listed twice"),
            ("heartbeat;nonsense@5", "not an evidence rule"),
        ] {
            let err = parse_rules(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
