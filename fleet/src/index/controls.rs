//! The controls map as the fleet view uses it: the rows of `baseline/controls-map.csv` that
//! have an evidence rule, and how a bundle's stored metadata is judged under a rule, with
//! exactly [`msp_evidence::controls::qualifies`]'s semantics (the same function is called,
//! on a bundle rebuilt from the indexed fields it reads).

use anyhow::{bail, Context, Result};
use msp_evidence::bundle::{Bundle, Chain, ExecutionSection, IncidentSection, Outputs, Provenance, RunbookSection, Signing};
use msp_evidence::controls::{parse_rules, qualifies, EvidenceRule, FurtherRule};
use msp_evidence::event_type::{BACKUP_COMPLETED, BACKUP_FAILURE, HEARTBEAT, WORM_RESTORE_TEST};

/// The repository's controls map, used when `fleet.yaml` names none.
pub const EMBEDDED_CONTROLS_MAP: &str = include_str!("../../../baseline/controls-map.csv");
/// The repository's baseline, whose SHA-256 the `provenance` rule compares heartbeats with.
pub const EMBEDDED_BASELINE: &str = include_str!("../../../baseline/hipaa-v1.yaml");

/// One assessed control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlDef {
    /// `§164.312(b)`.
    pub control_id: String,
    /// Title.
    pub title: String,
    /// Baseline keys that address it (an exception for one of them covers the control).
    pub baseline_keys: Vec<String>,
    /// The first rule (with `freshness_hours`).
    pub rule: EvidenceRule,
    /// Further rules, each with its own hours.
    pub further: Vec<FurtherRule>,
    /// Freshness of the first rule.
    pub freshness_hours: u32,
    /// The `evidence_rule` column as written.
    pub rule_text: String,
}

/// Parse a controls map (the agent's CSV format, `agent/src/baseline/controls.rs`); only rows
/// with an evidence rule are kept (organisational controls cannot be assessed from evidence).
pub fn parse_controls_map(name: &str, text: &str) -> Result<Vec<ControlDef>> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let headers = rdr.headers().with_context(|| format!("{name}: reading the header"))?.clone();
    let col = |c: &str| {
        headers
            .iter()
            .position(|h| h == c)
            .with_context(|| format!("{name}: line 1: column `{c}` is missing"))
    };
    let (ci, ti, bi, fi, ri) = (
        col("control_id")?,
        col("title")?,
        col("baseline_keys")?,
        col("freshness_hours")?,
        col("evidence_rule")?,
    );
    let mut out: Vec<ControlDef> = Vec::new();
    for rec in rdr.records() {
        let rec = rec.with_context(|| format!("{name}: not CSV"))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let get = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
        let rule_text = get(ri);
        if rule_text.is_empty() {
            continue;
        }
        let control_id = get(ci);
        let (rule, further) = parse_rules(&rule_text).map_err(|e| anyhow::anyhow!("{name}: line {line}: evidence_rule: {e}"))?;
        let freshness_hours = match get(fi).parse::<u32>() {
            Ok(h) if h > 0 => h,
            _ => bail!(
                "{name}: line {line}: freshness_hours: `{}` is not a positive number of hours (required with an evidence_rule)",
                get(fi)
            ),
        };
        if out.iter().any(|c| c.control_id == control_id) {
            bail!("{name}: line {line}: control_id: {control_id} is listed twice");
        }
        out.push(ControlDef {
            control_id,
            title: get(ti),
            baseline_keys: get(bi)
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            rule,
            further,
            freshness_hours,
            rule_text,
        });
    }
    Ok(out)
}

/// The fields of a bundle that the rules read, as the index stores them (metadata only:
/// types, ids, statuses, a store path and a hash; never details text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFields {
    pub event_type: String,
    pub runbook_id: String,
    pub resolution_status: String,
    /// `incident.details.result` when a string (`passed`/`failed` of restore tests).
    pub detail_result: Option<String>,
    /// `incident.details.current_system` of heartbeats (a Nix store path).
    pub current_system: Option<String>,
    /// `incident.details.baseline_sha256` of heartbeats.
    pub baseline_sha256: Option<String>,
}

impl RuleFields {
    /// Extract from a parsed bundle.
    pub fn of(b: &Bundle) -> RuleFields {
        let s = |k: &str| b.incident.details.get(k).and_then(|v| v.as_str()).map(String::from);
        RuleFields {
            event_type: b.incident.event_type.clone(),
            runbook_id: b.runbook.runbook_id.clone(),
            resolution_status: b.outputs.resolution_status.clone(),
            detail_result: s("result"),
            current_system: s("current_system"),
            baseline_sha256: s("baseline_sha256"),
        }
    }

    /// A bundle carrying just these fields, for [`qualifies`].
    fn stub(&self) -> Bundle {
        let mut details = serde_json::Map::new();
        for (k, v) in [
            ("result", &self.detail_result),
            ("current_system", &self.current_system),
            ("baseline_sha256", &self.baseline_sha256),
        ] {
            if let Some(v) = v {
                details.insert(k.into(), serde_json::Value::String(v.clone()));
            }
        }
        let e = String::new;
        Bundle {
            bundle_id: e(),
            bundle_version: e(),
            client_id: e(),
            hostname: e(),
            generated_at: e(),
            generator: e(),
            incident: IncidentSection {
                incident_id: e(),
                event_type: self.event_type.clone(),
                severity: e(),
                detected_at: e(),
                source: e(),
                details: serde_json::Value::Object(details),
                hipaa_controls: vec![],
            },
            runbook: RunbookSection {
                runbook_id: self.runbook_id.clone(),
                runbook_version: e(),
                runbook_hash: e(),
                steps_total: 0,
                steps_executed: 0,
            },
            execution: ExecutionSection {
                timestamp_start: e(),
                timestamp_end: e(),
                operator: e(),
                mttr_seconds: 0.0,
                sla_target_seconds: 0,
                sla_met: true,
                resolution_type: e(),
            },
            actions_taken: vec![],
            rollback: vec![],
            artifacts: vec![],
            verification: serde_json::Value::Null,
            planner: None,
            outputs: Outputs {
                resolution_status: self.resolution_status.clone(),
            },
            provenance: Provenance {
                agent_version: e(),
                nixos_system: None,
                baseline_version: None,
                baseline_sha256: None,
            },
            chain: Chain {
                sequence: 0,
                prev_bundle_sha256: e(),
            },
            signing: Signing {
                key_id: e(),
                algorithm: e(),
            },
        }
    }

    /// Counts as evidence under `rule` ([`qualifies`]).
    pub fn qualifies(&self, rule: &EvidenceRule, baseline_sha256: &str) -> bool {
        qualifies(rule, &self.stub(), baseline_sha256)
    }

    /// Is about what `rule` judges, so that when it is the newest such bundle and does not
    /// qualify, the control fails: a heartbeat for `heartbeat`/`provenance` (a heartbeat
    /// from another baseline fails provenance), a backup record or an unresolved backup
    /// failure for `backup_completed`, any run of the runbook for `runbook:ID:STATUS`, any
    /// WORM restore test for `worm_restore_test`.
    pub fn relevant(&self, rule: &EvidenceRule) -> bool {
        match rule {
            EvidenceRule::AnyBundle => true,
            EvidenceRule::Heartbeat | EvidenceRule::Provenance => self.event_type == HEARTBEAT,
            EvidenceRule::BackupCompleted => {
                self.event_type == BACKUP_COMPLETED
                    || ((self.event_type == BACKUP_FAILURE || self.event_type == "backup_failed") && self.resolution_status != "resolved")
            }
            EvidenceRule::Runbook { id, .. } => &self.runbook_id == id,
            EvidenceRule::WormRestoreTest => self.event_type == WORM_RESTORE_TEST,
        }
    }
}

/// A SQL condition (on table alias-free columns of `bundles`) that every bundle relevant to
/// `rule` satisfies; candidates are then judged with [`RuleFields`] in Rust. Parameters are
/// inlined as quoted literals of values from the controls map (checked ids and statuses).
pub fn relevant_sql(rule: &EvidenceRule) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match rule {
        EvidenceRule::AnyBundle => "1".into(),
        EvidenceRule::Heartbeat | EvidenceRule::Provenance => format!("event_type = {}", q(HEARTBEAT)),
        EvidenceRule::BackupCompleted => format!("event_type IN ({}, {}, 'backup_failed')", q(BACKUP_COMPLETED), q(BACKUP_FAILURE)),
        EvidenceRule::Runbook { id, .. } => format!("runbook_id = {}", q(id)),
        EvidenceRule::WormRestoreTest => format!("event_type = {}", q(WORM_RESTORE_TEST)),
    }
}
