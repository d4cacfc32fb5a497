//! Evidence for decisions that ran no runbook: escalations and suppressions. They are signed
//! and chained like any bundle, with `steps_executed: 0`, so an auditor sees every "no" the
//! agent said and why. Also the observation records (resolution "recorded"): the agent's
//! heartbeat and successful backup runs, which the compliance packet's freshness rules read.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::evidence::bundle::{ExecutionSection, IncidentSection, Outputs, Provenance, RunbookSection};
use crate::evidence::store::NewBundle;
use crate::guard::{SuppressReason, SuppressionSummary};
use crate::incident::{Incident, IncidentSource};
use crate::runbook::exec::{rfc3339, source_label};
use crate::runbook::model::Runbook;

/// `runbook_id` of a record about an incident no runbook was chosen for.
pub use msp_evidence::bundle::NO_RUNBOOK_ID;

/// `execution.resolution_type` and `outputs.resolution_status` of an observation record.
pub const RECORDED: &str = "recorded";
pub use crate::incident::event_type::{BACKUP_COMPLETED, HEARTBEAT};
/// Controls a heartbeat is evidence for (audit controls; information system activity review).
pub const HEARTBEAT_CONTROLS: [&str; 2] = ["§164.312(b)", "§164.308(a)(1)(ii)(D)"];
/// Controls a successful backup is evidence for (data backup plan; data backup and storage).
pub const BACKUP_CONTROLS: [&str; 2] = ["§164.308(a)(7)(ii)(A)", "§164.310(d)(2)(iv)"];

/// Fields of every non-execution record.
pub struct RecordContext<'a> {
    pub client_id: &'a str,
    pub hostname: &'a str,
    pub provenance: &'a Provenance,
}

/// The incident section, with the journal cursor kept so a restart can tell the entry was
/// handled (see `daemon::recovery`). The detector's details pass the PHI filter; the cursor
/// is added after it (it is the journal's own id, and the restart must find it unchanged).
pub fn incident_section(incident: &Incident, hipaa_controls: Vec<String>) -> IncidentSection {
    let mut details = serde_json::Map::new();
    let phi = crate::scrub::installed();
    for (k, v) in &incident.details {
        let mut v = v.clone();
        phi.scrub_json(&mut v);
        details.insert(phi.scrub(k), v);
    }
    if let Some(unit) = &incident.unit {
        details.entry("unit").or_insert_with(|| Value::String(unit.clone()));
    }
    if let IncidentSource::Journal { cursor, realtime_usec } = &incident.source {
        details.insert("journal_cursor".into(), Value::String(cursor.clone()));
        details.insert("journal_realtime_usec".into(), json!(realtime_usec));
    }
    IncidentSection {
        incident_id: incident.incident_id.clone(),
        event_type: incident.event_type.clone(),
        severity: incident.severity.to_string(),
        detected_at: rfc3339(incident.detected_at),
        source: source_label(&incident.source),
        details: Value::Object(details),
        hipaa_controls,
    }
}

fn runbook_section(runbook: Option<&Runbook>) -> RunbookSection {
    match runbook {
        Some(r) => RunbookSection {
            runbook_id: r.id.clone(),
            runbook_version: r.version.clone(),
            runbook_hash: r.runbook_hash.clone(),
            steps_total: r.steps.len() as u32,
            steps_executed: 0,
        },
        None => RunbookSection {
            runbook_id: NO_RUNBOOK_ID.into(),
            runbook_version: "0".into(),
            runbook_hash: crate::evidence::bundle::GENESIS_PREV_HASH.into(),
            steps_total: 0,
            steps_executed: 0,
        },
    }
}

fn non_execution(
    ctx: &RecordContext<'_>,
    incident: IncidentSection,
    runbook: RunbookSection,
    detected_at: DateTime<Utc>,
    now: DateTime<Utc>,
    resolution: &str,
    verification: Value,
) -> NewBundle {
    NewBundle {
        client_id: ctx.client_id.to_string(),
        hostname: ctx.hostname.to_string(),
        incident,
        runbook,
        execution: ExecutionSection {
            timestamp_start: rfc3339(now),
            timestamp_end: rfc3339(now),
            operator: "msp-agent".into(),
            mttr_seconds: (now - detected_at).num_milliseconds().max(0) as f64 / 1000.0,
            sla_target_seconds: 0,
            sla_met: false,
            resolution_type: resolution.into(),
        },
        actions_taken: Vec::new(),
        rollback: Vec::new(),
        verification,
        planner: None,
        outputs: Outputs { resolution_status: resolution.into() },
        provenance: ctx.provenance.clone(),
        artifact_files: Vec::new(),
    }
}

/// An incident handed to a person: no runbook, several, or the guard refused the one found.
pub fn escalation(
    ctx: &RecordContext<'_>,
    incident: &Incident,
    runbook: Option<&Runbook>,
    reason: &str,
    now: DateTime<Utc>,
) -> NewBundle {
    let controls = runbook.map(|r| r.hipaa_controls.clone()).unwrap_or_default();
    // The reason can quote an error or a unit's status: scrubbed and bounded like an alert.
    let verification = json!({ "decision": "escalated", "reason": crate::scrub::installed().summary(reason) });
    non_execution(ctx, incident_section(incident, controls), runbook_section(runbook), incident.detected_at, now, "escalated", verification)
}

/// The first suppression of a cooldown window (later ones go into a [`suppression_summary`]).
pub fn suppression(
    ctx: &RecordContext<'_>,
    incident: &Incident,
    runbook: &Runbook,
    reason: SuppressReason,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> NewBundle {
    let verification = json!({
        "decision": "suppressed",
        "reason": reason,
        "suppressed_until": rfc3339(until),
        "count": 1,
    });
    non_execution(
        ctx,
        incident_section(incident, runbook.hipaa_controls.clone()),
        runbook_section(Some(runbook)),
        incident.detected_at,
        now,
        "suppressed",
        verification,
    )
}

/// One record for all unrecorded suppressions of a closed window. Its incident section names
/// the window, not one incident (there were many).
pub fn suppression_summary(
    ctx: &RecordContext<'_>,
    summary: &SuppressionSummary,
    runbook: Option<&Runbook>,
    incident_id: String,
    now: DateTime<Utc>,
) -> NewBundle {
    let incident = IncidentSection {
        incident_id,
        event_type: "suppression_summary".into(),
        severity: "low".into(),
        detected_at: rfc3339(summary.window_end),
        source: "guard".into(),
        details: json!({
            "runbook_id": summary.key.runbook_id,
            "target": summary.key.target,
            "window_start": rfc3339(summary.window_start),
            "window_end": rfc3339(summary.window_end),
        }),
        hipaa_controls: runbook.map(|r| r.hipaa_controls.clone()).unwrap_or_default(),
    };
    let mut rb = runbook_section(runbook);
    if runbook.is_none() {
        rb.runbook_id = summary.key.runbook_id.clone();
    }
    let verification = json!({
        "decision": "suppressed",
        "reason": "cooldown_window_summary",
        "count": summary.unrecorded,
    });
    non_execution(ctx, incident, rb, summary.window_end, now, "suppressed", verification)
}

/// An observation record: no runbook, no decision, just a signed statement of what was seen.
fn observation(ctx: &RecordContext<'_>, incident: IncidentSection, now: DateTime<Utc>, verification: Value) -> NewBundle {
    non_execution(ctx, incident, runbook_section(None), now, now, RECORDED, verification)
}

/// The heartbeat: the agent is alive, and what it runs on. `details` holds the provenance
/// fields (`agent_version`, `current_system`, `booted_system`, `baseline_version`,
/// `baseline_sha256`, `interval_seconds`, `agent_started_at`).
pub fn heartbeat(ctx: &RecordContext<'_>, details: Value, now: DateTime<Utc>) -> NewBundle {
    let incident = IncidentSection {
        incident_id: format!("HB-{}", now.format("%Y%m%d-%H%M%S")),
        event_type: HEARTBEAT.into(),
        severity: "low".into(),
        detected_at: rfc3339(now),
        source: "agent".into(),
        details,
        hipaa_controls: HEARTBEAT_CONTROLS.iter().map(|c| c.to_string()).collect(),
    };
    observation(ctx, incident, now, json!({ "recorded": HEARTBEAT }))
}

/// Record in a heartbeat's details where the chain stood when it was written: the head it is
/// appended to (`chain_head_sequence`, `chain_head_sha256`; 0 and the genesis hash for an
/// empty store) and `head_signed: true` (this agent signs the chain head, so `evidence
/// verify` treats an unsigned head in the same store as a replaced one).
pub fn add_chain_position(details: &mut Value, head: Option<(u64, &str)>) {
    use crate::evidence::heartbeat::{CHAIN_HEAD_SEQUENCE, CHAIN_HEAD_SHA256, HEAD_SIGNED};
    let (seq, sha) = head.unwrap_or((0, crate::evidence::bundle::GENESIS_PREV_HASH));
    if let Some(m) = details.as_object_mut() {
        m.insert(CHAIN_HEAD_SEQUENCE.into(), json!(seq));
        m.insert(CHAIN_HEAD_SHA256.into(), json!(sha));
        m.insert(HEAD_SIGNED.into(), json!(true));
    }
}

/// A successful run of a backup unit, with the journal entry's cursor (so a restart does not
/// record it twice, see `daemon::recovery`).
pub fn backup_completed(ctx: &RecordContext<'_>, b: &crate::detect::backup_completed::BackupCompleted, now: DateTime<Utc>) -> NewBundle {
    use sha2::Digest;
    let at = DateTime::<Utc>::from_timestamp_micros(b.journal_realtime_usec as i64).unwrap_or(now);
    // Unique per entry and stable: the time of the run and a digest of its cursor.
    let tag = hex::encode(&sha2::Sha256::digest(b.journal_cursor.as_bytes())[..4]);
    let incident = IncidentSection {
        incident_id: format!("BK-{}-{tag}", at.format("%Y%m%d-%H%M%S")),
        event_type: BACKUP_COMPLETED.into(),
        severity: "low".into(),
        detected_at: rfc3339(now),
        source: "journal".into(),
        details: json!({
            "unit": b.unit,
            "journal_cursor": b.journal_cursor,
            "journal_realtime_usec": b.journal_realtime_usec,
        }),
        hipaa_controls: BACKUP_CONTROLS.iter().map(|c| c.to_string()).collect(),
    };
    observation(ctx, incident, now, json!({ "recorded": BACKUP_COMPLETED }))
}

/// Controls the WORM restore test is evidence for (data backup plan, disaster recovery plan,
/// testing and revision procedures; backup and storage).
pub const WORM_RESTORE_TEST_CONTROLS: [&str; 4] =
    ["§164.308(a)(7)(ii)(A)", "§164.308(a)(7)(ii)(B)", "§164.308(a)(7)(ii)(D)", "§164.310(d)(2)(iv)"];
/// Controls evidence retention records are evidence for (integrity; documentation retention).
pub const RETENTION_CONTROLS: [&str; 2] = ["§164.312(c)(1)", "§164.316(b)(2)(i)"];

/// A signed observation about the evidence store itself (`worm restore-test`, `evidence
/// prune`, the disk alert). `details` is metadata only: counts, sequences, hashes, object keys.
pub fn store_observation(
    ctx: &RecordContext<'_>,
    event_type: &str,
    id_prefix: &str,
    severity: &str,
    controls: &[&str],
    details: Value,
    now: DateTime<Utc>,
) -> NewBundle {
    let incident = IncidentSection {
        incident_id: format!("{id_prefix}-{}", now.format("%Y%m%d-%H%M%S")),
        event_type: event_type.into(),
        severity: severity.into(),
        detected_at: rfc3339(now),
        source: "agent".into(),
        details,
        hipaa_controls: controls.iter().map(|c| c.to_string()).collect(),
    };
    observation(ctx, incident, now, json!({ "recorded": event_type }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_details_and_escalation_reasons_pass_the_phi_filter_and_the_cursor_stays() {
        // A hex-only cursor part with a Luhn-valid 16-digit run would be redacted if scrubbed.
        let cursor = "s=4111111111111111;i=4111111111111111;b=ab;m=1;t=5f2e;x=9";
        let incident = Incident {
            incident_id: "INC-20261122-0001".into(),
            event_type: "service_crash".into(),
            severity: crate::incident::Severity::High,
            host: "srv".into(),
            detected_at: Utc::now(),
            source: IncidentSource::Journal { cursor: cursor.into(), realtime_usec: 1 },
            unit: Some("portal.service".into()),
            details: [
                ("message".to_string(), json!("chart for MRN 00481516 jane.doe@example.com")),
                ("lines".to_string(), json!(["DOB 1962-03-14", 3])),
            ]
            .into_iter()
            .collect(),
        };
        let s = incident_section(&incident, Vec::new());
        assert_eq!(s.details["message"], "chart for [mrn×1] [email×1]");
        assert_eq!(s.details["lines"], json!(["[dob×1]", 3]));
        assert_eq!(s.details["unit"], "portal.service");
        assert_eq!(s.details["journal_cursor"], cursor);
        let prov = Provenance { agent_version: "t".into(), nixos_system: None, baseline_version: None, baseline_sha256: None };
        let ctx = RecordContext { client_id: "c", hostname: "h", provenance: &prov };
        let nb = escalation(&ctx, &incident, None, "guard refused: unit status says (555) 867-5309", Utc::now());
        assert_eq!(nb.verification["reason"], "guard refused: unit status says [phone×1]");
    }
}
