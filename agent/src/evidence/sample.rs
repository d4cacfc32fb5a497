//! TEST AND BENCHMARK AID, not used by the agent: a realistic synthetic bundle (a disk-full
//! incident cleaned up by RB-DISK-001), so tests, the crash test and the benchmark write
//! bundles of production size and shape without the runbook engine.

use std::path::PathBuf;

use serde_json::json;

use super::bundle::{
    Action, ExecutionSection, IncidentSection, Outputs, Provenance, RunbookSection,
};
use super::store::NewBundle;

/// SHA-256 used as `runbook_hash` in sample bundles (of the bytes [`SAMPLE_RUNBOOK`]).
pub const SAMPLE_RUNBOOK: &str = "id: RB-DISK-001\nname: Disk full\nversion: \"1.0\"\n";

/// A sample bundle, number `i` (varies the incident id and measured values).
pub fn sample_new_bundle(i: u64, artifact_files: Vec<PathBuf>) -> NewBundle {
    let step = |n: u32, id: &str, out: &str| Action {
        step: n,
        step_id: id.to_string(),
        action: "script".to_string(),
        script_hash: "9f2c6a4d0b1e3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a".to_string(),
        result: "success".to_string(),
        exit_code: Some(0),
        timestamp: "2026-11-22T10:00:01Z".to_string(),
        duration_ms: 120 + n as u64,
        stdout_excerpt: out.to_string(),
        stderr_excerpt: String::new(),
        output_hash: "3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a9f2c6a4d0b1e3f5a7c9e1b3d5f7a9c1e".to_string(),
        error_message: None,
    };
    NewBundle {
        client_id: "clinic-001".to_string(),
        hostname: "clinic-001-srv-primary".to_string(),
        incident: IncidentSection {
            incident_id: format!("INC-20261122-{:04}", i % 10000),
            event_type: "disk_full".to_string(),
            severity: "high".to_string(),
            detected_at: "2026-11-22T10:00:00Z".to_string(),
            source: "probe:disk".to_string(),
            details: json!({"mount": "/srv/data", "used_pct": 90 + (i % 10), "threshold_pct": 90}),
            hipaa_controls: vec![
                "164.308(a)(1)(ii)(D)".to_string(),
                "164.310(d)(1)".to_string(),
            ],
        },
        runbook: RunbookSection {
            runbook_id: "RB-DISK-001".to_string(),
            runbook_version: "1.0".to_string(),
            runbook_hash: super::store::sha256_hex(SAMPLE_RUNBOOK.as_bytes()),
            steps_total: 3,
            steps_executed: 3,
        },
        execution: ExecutionSection {
            timestamp_start: "2026-11-22T10:00:00Z".to_string(),
            timestamp_end: "2026-11-22T10:00:03Z".to_string(),
            operator: "msp-agent".to_string(),
            mttr_seconds: 3.2,
            sla_target_seconds: 900,
            sla_met: true,
            resolution_type: "automatic".to_string(),
        },
        actions_taken: vec![
            step(1, "measure", "/srv/data 93% used"),
            step(2, "clean-tmp", "removed 412 files, freed 2.1 GiB"),
            step(3, "verify", "/srv/data 71% used"),
        ],
        rollback: Vec::new(),
        verification: json!({"check": "used_pct < 85", "passed": true, "measured": 71}),
        outputs: Outputs {
            resolution_status: "resolved".to_string(),
        },
        provenance: Provenance {
            agent_version: crate::AGENT_VERSION.to_string(),
            nixos_system: Some(
                "/nix/store/8a1k2b3c4d5e6f7g8h9i0j1k2l3m4n5o-nixos-system-clinic-001-26.05"
                    .to_string(),
            ),
            baseline_version: Some("1.0.0".to_string()),
            baseline_sha256: Some(
                "5e7b9d1f3a9f2c6a4d0b1e3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c".to_string(),
            ),
        },
        // Sample files did not pass the PHI filter: they are recorded as `scrubbed: false`.
        artifact_files: artifact_files
            .into_iter()
            .map(|path| super::bundle::ArtifactFile { path, scrub: None })
            .collect(),
    }
}
