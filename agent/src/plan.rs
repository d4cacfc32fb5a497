//! Planning: which runbook answers an incident. Deterministic and conservative: exactly one
//! runbook whose `trigger_conditions` match is a plan; none, or more than one, is an
//! escalation to a person — the agent never guesses. When an advisor is configured
//! ([`crate::advisor`]), an escalation may be handed to it with [`advisor_candidates`]: the
//! only runbooks it may choose from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::exit::Exit;
use crate::incident::{Incident, IncidentSource, Severity};
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

/// The runbooks an advisor may choose among for an escalated `incident`: the matching ones
/// (`candidates`, from [`Plan::Escalate`]), or, when none matched, those whose
/// `trigger_conditions.event_types` list the incident's event type. Sorted by id.
pub fn advisor_candidates<'a>(incident: &Incident, runbooks: &'a [Runbook], candidates: &[String]) -> Vec<&'a Runbook> {
    let mut out: Vec<&Runbook> = if candidates.is_empty() {
        runbooks
            .iter()
            .filter(|r| r.trigger_conditions.event_types.0.iter().any(|e| e.0 == incident.event_type))
            .collect()
    } else {
        runbooks.iter().filter(|r| candidates.contains(&r.id)).collect()
    };
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// `msp-agent plan`
#[derive(Debug, Args)]
pub struct PlanCmd {
    /// A file holding one incident line as `msp-agent detect --json` prints it.
    #[arg(long, value_name = "FILE")]
    pub incident: PathBuf,
    /// Runbooks to plan with; default: the runbooks built into this binary.
    #[arg(long, value_name = "DIR")]
    pub runbooks: Option<PathBuf>,
    /// Consult the OpenAI-compatible advisor at this base URL (`http://127.0.0.1:8080/v1`)
    /// when planning is unsure, as the `auto` policy would.
    #[arg(long, value_name = "URL")]
    pub advisor: Option<String>,
    /// The advisor's `model`.
    #[arg(long, default_value = "local")]
    pub model: String,
    /// File holding the advisor's API key.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Confidence at or above which `auto` would run the advisor's choice.
    #[arg(long, default_value_t = 0.8)]
    pub threshold: f64,
    /// Per-attempt timeout of the advisor request.
    #[arg(long, default_value_t = 10)]
    pub timeout_seconds: u64,
    /// One JSON object: `runbook_id` (or null), `planner`, `reason`, `candidates`, `advisor`.
    #[arg(long)]
    pub json: bool,
}

/// An incident line of `detect --json` (its plan fields are ignored: planning is redone).
#[derive(Deserialize)]
struct DetectLine {
    incident_id: String,
    event_type: String,
    severity: Severity,
    unit: Option<String>,
    host: String,
    #[serde(rename = "__CURSOR", default)]
    cursor: String,
    #[serde(rename = "__REALTIME_TIMESTAMP", default)]
    realtime_usec: Option<String>,
    detected_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    details: BTreeMap<String, Value>,
}

/// Read the one incident in `path`; errors name the file, line and field.
pub fn read_incident_line(path: &std::path::Path) -> Result<Incident> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading incident file {}", path.display()))?;
    let lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let [(n, line)] = lines.as_slice() else {
        bail!("{}: expected exactly one incident line (as `msp-agent detect --json` prints), found {}", path.display(), lines.len());
    };
    let d: DetectLine = serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
    let source = match d.realtime_usec.as_deref().map(str::parse::<u64>) {
        _ if d.cursor.is_empty() => IncidentSource::Manual,
        Some(Ok(realtime_usec)) => IncidentSource::Journal { cursor: d.cursor, realtime_usec },
        _ => bail!("{}:{}: __REALTIME_TIMESTAMP: expected microseconds as a decimal string", path.display(), n + 1),
    };
    Ok(Incident {
        incident_id: d.incident_id,
        event_type: d.event_type,
        severity: d.severity,
        host: d.host,
        detected_at: d.detected_at,
        source,
        unit: d.unit,
        details: d.details,
    })
}

impl PlanCmd {
    /// Plan the incident and print what would be chosen and why; nothing is executed.
    pub fn run(self) -> Result<Exit> {
        let incident = read_incident_line(&self.incident)?;
        let runbooks = crate::detect::planning_runbooks(self.runbooks.as_deref())?;
        let advisor = match &self.advisor {
            Some(url) => {
                let cfg = crate::config::AdvisorConfig {
                    policy: crate::config::AdvisorPolicy::Auto,
                    url: Some(url.clone()),
                    model: self.model.clone(),
                    api_key_file: self.api_key_file.clone(),
                    confidence_threshold: self.threshold,
                    timeout_seconds: self.timeout_seconds,
                    ..Default::default()
                };
                cfg.validate(&|k: &str| format!("--{}", k.trim_start_matches("advisor.").replace('_', "-")))?;
                crate::advisor::Advisor::from_config(&cfg)?
            }
            None => None,
        };
        let (runbook_id, planner, reason, candidates, record) = match plan(&incident, &runbooks) {
            Plan::Run(rb) => (Some(rb.id.clone()), "deterministic", format!("exactly one runbook matches: {}", rb.id), vec![rb.id.clone()], None),
            Plan::Escalate { reason, candidates } => {
                let cands: Vec<crate::advisor::prompt::Candidate> =
                    advisor_candidates(&incident, &runbooks, &candidates).into_iter().map(crate::advisor::prompt::Candidate::of).collect();
                let ids: Vec<String> = cands.iter().map(|c| c.id.clone()).collect();
                match advisor.as_ref().filter(|_| !cands.is_empty()) {
                    None => (None, "deterministic", reason, ids, None),
                    Some(a) => {
                        let r = a.consult(&incident, &cands);
                        match r.action() {
                            crate::advisor::Action::Run(id) => (Some(id), "advisor", format!("{reason}; {}", r.reason), ids, Some(r)),
                            _ => (None, "deterministic", format!("{reason}; {}", r.reason), ids, Some(r)),
                        }
                    }
                }
            }
        };
        if self.json {
            let v = json!({
                "incident_id": incident.incident_id,
                "event_type": incident.event_type,
                "runbook_id": runbook_id,
                "planner": planner,
                "reason": reason,
                "candidates": candidates,
                "advisor": record,
            });
            println!("{v}");
        } else {
            println!(
                "{} {} runbook={} planner={planner} candidates={} reason={reason:?}",
                incident.incident_id,
                incident.event_type,
                runbook_id.as_deref().unwrap_or("escalate"),
                if candidates.is_empty() { "-".to_string() } else { candidates.join(",") },
            );
        }
        Ok(Exit::Ok)
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

    #[test]
    fn advisor_candidates_are_the_matches_or_the_event_types_runbooks() {
        let rbs = vec![
            runbook("RB-B-001", "service_crash", Some("*.service")),
            runbook("RB-A-001", "service_crash", Some("nginx*")),
            runbook("RB-DISK-001", "disk_full", None),
        ];
        let ids = |v: Vec<&Runbook>| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        let inc = incident("service_crash", Some("nginx.service"));
        assert_eq!(ids(advisor_candidates(&inc, &rbs, &["RB-B-001".into(), "RB-A-001".into()])), ["RB-A-001", "RB-B-001"]);
        // No match (a unit no pattern covers): the event type's runbooks, never another type's.
        let inc = incident("service_crash", Some("x.socket"));
        assert!(matches!(plan(&inc, &rbs), Plan::Escalate { .. }));
        assert_eq!(ids(advisor_candidates(&inc, &rbs, &[])), ["RB-A-001", "RB-B-001"]);
        assert!(advisor_candidates(&incident("high_cpu", None), &rbs, &[]).is_empty());
    }
}
