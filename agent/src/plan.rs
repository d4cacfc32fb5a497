//! Planning: which runbook answers an incident. Deterministic and conservative: exactly one
//! runbook whose `trigger_conditions` match is a plan; none, or more than one, is an
//! escalation to a person — the agent never guesses.

use crate::incident::Incident;
use crate::runbook::model::Runbook;

/// The outcome of planning.
#[derive(Debug)]
pub enum Plan<'a> {
    /// Exactly one runbook matches.
    Run(&'a Runbook),
    /// No runbook, or several: a person decides. `candidates` are the matching ids (sorted).
    Escalate { reason: String, candidates: Vec<String> },
}

/// Pick the runbook for `incident` among `runbooks`.
pub fn plan<'a>(incident: &Incident, runbooks: &'a [Runbook]) -> Plan<'a> {
    let mut matching: Vec<&Runbook> = runbooks.iter().filter(|r| r.matches(incident)).collect();
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    match matching.as_slice() {
        [one] => Plan::Run(one),
        [] => Plan::Escalate {
            reason: format!(
                "no runbook's trigger_conditions match event type {}{}",
                incident.event_type,
                incident.unit.as_deref().map(|u| format!(" on {u}")).unwrap_or_default()
            ),
            candidates: Vec::new(),
        },
        many => {
            let ids: Vec<String> = many.iter().map(|r| r.id.clone()).collect();
            Plan::Escalate {
                reason: format!("ambiguous: {} runbooks match ({})", ids.len(), ids.join(", ")),
                candidates: ids,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentSource, Severity};
    use std::path::Path;

    fn runbook(id: &str, events: &str, units: Option<&str>) -> Runbook {
        let units = units.map(|u| format!("  unit_patterns: [\"{u}\"]\n")).unwrap_or_default();
        let yaml = format!(
            "id: {id}\nname: t\nversion: \"1.0\"\ndescription: t\nhipaa_controls: [\"164.308(a)(1)(ii)(D)\"]\n\
             severity: high\nsla_minutes: 15\nparameters: {{}}\ntrigger_conditions:\n  event_types: [{events}]\n{units}\
             steps:\n  - id: s1\n    action: a\n    timeout_seconds: 5\n    script: \"true\"\n\
             rollback: []\nverification:\n  id: v\n  action: v\n  timeout_seconds: 5\n  script: \"true\"\n"
        );
        Runbook::from_bytes(Path::new(&format!("{id}.yaml")), yaml.as_bytes()).unwrap()
    }

    fn incident(event: &str, unit: Option<&str>) -> Incident {
        Incident {
            incident_id: "INC-20261122-0001".into(),
            event_type: event.into(),
            severity: Severity::High,
            host: "srv".into(),
            detected_at: chrono::Utc::now(),
            source: IncidentSource::Manual,
            unit: unit.map(str::to_string),
            details: Default::default(),
        }
    }

    #[test]
    fn exactly_one_match_is_a_plan() {
        let rbs = vec![runbook("RB-SERVICE-001", "service_crash", None), runbook("RB-DISK-001", "disk_full", None)];
        match plan(&incident("service_crash", Some("nginx.service")), &rbs) {
            Plan::Run(r) => assert_eq!(r.id, "RB-SERVICE-001"),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn no_match_and_ambiguity_escalate() {
        let rbs = vec![
            runbook("RB-B-001", "service_crash", Some("*.service")),
            runbook("RB-A-001", "service_crash", Some("nginx*")),
        ];
        match plan(&incident("service_crash", Some("nginx.service")), &rbs) {
            Plan::Escalate { candidates, reason } => {
                assert_eq!(candidates, ["RB-A-001", "RB-B-001"]);
                assert!(reason.starts_with("ambiguous: 2 runbooks match"), "{reason}");
            }
            p => panic!("{p:?}"),
        }
        match plan(&incident("high_cpu", None), &rbs) {
            Plan::Escalate { candidates, reason } => {
                assert!(candidates.is_empty());
                assert_eq!(reason, "no runbook's trigger_conditions match event type high_cpu");
            }
            p => panic!("{p:?}"),
        }
    }
}
