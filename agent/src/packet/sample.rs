//! TEST AND BENCHMARK AID, not used by the agent: a month of realistic evidence for one host —
//! heartbeats (every 15 minutes by default, with one outage), a backup record every day but
//! one (that night's backup failed and was escalated), a weekly restore test, the monthly WORM
//! restore test, incidents of
//! every runbook with MTTR and SLA (some escalated, some suppressed, some missing their SLA),
//! a NixOS upgrade mid-month and a configuration drift.
//!
//! Bundles are written in the store's exact format (the same serialisation, raw and SSH
//! signatures, chain) but without the store's fsyncs, so a 10,000-bundle month is written in
//! seconds. The generator also returns its own tally of what it wrote, which the tests compare
//! with the packet's figures.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;

use crate::evidence::bundle::{
    Action, Bundle, Chain, ExecutionSection, IncidentSection, Outputs, Provenance,
    RunbookSection, Signing, BUNDLE_VERSION, GENESIS_PREV_HASH,
};
use crate::evidence::store::{serialize_bundle, sha256_hex, SIG_SUFFIX, SSHSIG_SUFFIX};
use crate::keys::{Signer, ALGORITHM};

use super::period::Month;

/// What to generate.
#[derive(Debug, Clone)]
pub struct MonthSpec {
    /// Client.
    pub client_id: String,
    /// Host.
    pub hostname: String,
    /// Month.
    pub month: Month,
    /// Seconds between heartbeats.
    pub heartbeat_interval: i64,
    /// Incidents per day (on average; deterministic).
    pub incidents_per_day: u32,
    /// Baseline version the heartbeats report.
    pub baseline_version: String,
    /// Baseline SHA-256 the heartbeats report.
    pub baseline_sha256: String,
    /// Sequence of the first bundle (1 for a new store) and the previous bundle's hash.
    pub first_sequence: u64,
    /// `prev_bundle_sha256` of the first bundle.
    pub prev_sha256: String,
    /// Agent checks the heartbeats report as `disabled` (every other check: `holds`).
    pub disabled_checks: Vec<String>,
    /// Whether the month has its WORM restore test record (true by default; false makes the
    /// month whose §164.308(a)(7)(ii)(B),(D) rows must fail).
    pub worm_restore_test: bool,
}

impl MonthSpec {
    /// The default month for clinic-001.
    pub fn new(month: Month, baseline_version: &str, baseline_sha256: &str) -> MonthSpec {
        MonthSpec {
            client_id: "clinic-001".into(),
            hostname: "clinic-001-srv-primary".into(),
            month,
            heartbeat_interval: 900,
            incidents_per_day: 3,
            baseline_version: baseline_version.into(),
            baseline_sha256: baseline_sha256.into(),
            first_sequence: 1,
            prev_sha256: GENESIS_PREV_HASH.into(),
            disabled_checks: Vec::new(),
            worm_restore_test: true,
        }
    }
}

/// The generator's own count of what it wrote (computed independently of the packet code).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Bundles written.
    pub bundles: usize,
    /// Heartbeats.
    pub heartbeats: usize,
    /// Backup records.
    pub backups: usize,
    /// Days with a backup record.
    pub backup_days: usize,
    /// Restore tests (all passed).
    pub restore_tests: usize,
    /// Monthly WORM restore test records (`worm restore-test`, all passing).
    pub worm_restore_tests: usize,
    /// Incidents (not records, not restore tests).
    pub incidents: usize,
    /// Automatic and resolved.
    pub auto_fixed: usize,
    /// Escalated.
    pub escalated: usize,
    /// Suppressed.
    pub suppressed: usize,
    /// Critical incidents, and how many were not resolved.
    pub critical: (usize, usize),
    /// Severity → MTTR seconds of each resolved incident.
    pub mttr: BTreeMap<String, Vec<f64>>,
    /// (SLA met, counted).
    pub sla: (usize, usize),
    /// Drift incidents.
    pub drift: usize,
    /// The heartbeat outage (no heartbeat strictly inside it).
    pub outage: (DateTime<Utc>, DateTime<Utc>),
    /// The day without a backup.
    pub missed_backup_day: chrono::NaiveDate,
    /// Last bundle's SHA-256 and sequence.
    pub last: (u64, String),
}

/// One event to write.
struct Event {
    t: DateTime<Utc>,
    incident: IncidentSection,
    runbook: RunbookSection,
    execution: ExecutionSection,
    actions: Vec<Action>,
    status: String,
    system: String,
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const SYSTEM_A: &str = "/nix/store/3k9x1mzq7v0c2d8f5h4j6l1n0p2r8s4t-nixos-system-clinic-001-srv-primary-26.05.20261028";
const SYSTEM_B: &str = "/nix/store/9w2b4c6d8f0g1h3j5k7l9m1n3p5q7r9s-nixos-system-clinic-001-srv-primary-26.05.20261115";

fn step(n: u32, id: &str, t: DateTime<Utc>, ok: bool, out: &str) -> Action {
    Action {
        step: n,
        step_id: id.into(),
        action: format!("{id} step"),
        script_hash: sha256_hex(id.as_bytes()),
        result: if ok { "success".into() } else { "failed".into() },
        exit_code: Some(if ok { 0 } else { 1 }),
        timestamp: rfc(t),
        duration_ms: 400 + n as u64 * 37,
        stdout_excerpt: out.into(),
        stderr_excerpt: String::new(),
        output_hash: sha256_hex(out.as_bytes()),
        error_message: (!ok).then(|| "exit code 1".to_string()),
    }
}

/// An incident kind: (event_type, runbook, severity, SLA seconds, source, controls).
type Kind = (&'static str, &'static str, &'static str, u64, &'static str, &'static [&'static str]);

/// Incident kinds.
const KINDS: &[Kind] = &[
    ("service_crash", "RB-SERVICE-001", "high", 900, "journal", &["§164.308(a)(1)(ii)(D)", "§164.312(b)"]),
    ("disk_full", "RB-DISK-001", "high", 900, "probe:disk", &["§164.308(a)(1)(ii)(D)", "§164.310(d)(1)"]),
    ("cert_expiry", "RB-CERT-001", "medium", 3600, "probe:cert", &["§164.312(e)(1)", "§164.312(a)(2)(iv)"]),
    ("cpu_high", "RB-CPU-001", "low", 14400, "probe:cpu", &["§164.308(a)(1)(ii)(D)", "§164.312(b)"]),
    ("backup_failed", "RB-BACKUP-001", "critical", 600, "journal", &["§164.308(a)(7)(ii)(A)", "§164.310(d)(2)(iv)"]),
];

/// Write the month into `root` (the store layout `YYYY/MM/`), signed by `signer`.
pub fn write_month(root: &Path, spec: &MonthSpec, signer: &Signer) -> Result<Tally> {
    let mut rng = Rng(0x5eed ^ ((spec.month.year as u64) * 100 + spec.month.month as u64));
    let start = spec.month.start();
    let end = spec.month.end();
    let upgrade = start + Duration::days(14) + Duration::hours(3);
    let outage = (start + Duration::days(11) + Duration::hours(3), start + Duration::days(11) + Duration::hours(5) + Duration::minutes(30));
    let missed_day = start + Duration::days(8);
    let system_at = |t: DateTime<Utc>| if t < upgrade { SYSTEM_A } else { SYSTEM_B };
    let mut events: Vec<Event> = Vec::new();
    let mut tally = Tally {
        outage,
        missed_backup_day: missed_day.date_naive(),
        ..Default::default()
    };

    let record = |t: DateTime<Utc>, id: String, event_type: &str, source: &str, details: serde_json::Value, controls: &[&str]| Event {
        t,
        incident: IncidentSection {
            incident_id: id,
            event_type: event_type.into(),
            severity: "low".into(),
            detected_at: rfc(t),
            source: source.into(),
            details,
            hipaa_controls: controls.iter().map(|s| s.to_string()).collect(),
        },
        runbook: RunbookSection {
            runbook_id: "none".into(),
            runbook_version: "0".into(),
            runbook_hash: GENESIS_PREV_HASH.into(),
            steps_total: 0,
            steps_executed: 0,
        },
        execution: ExecutionSection {
            timestamp_start: rfc(t),
            timestamp_end: rfc(t),
            operator: "msp-agent".into(),
            mttr_seconds: 0.0,
            sla_target_seconds: 0,
            sla_met: true,
            resolution_type: "recorded".into(),
        },
        actions: Vec::new(),
        status: "recorded".into(),
        system: system_at(t).into(),
    };

    // Heartbeats.
    let agent_started = start - Duration::days(3);
    let mut t = start + Duration::minutes(4);
    while t < end {
        if !(t > outage.0 && t < outage.1) {
            let started = if t >= outage.1 { outage.1 } else if t >= upgrade { upgrade } else { agent_started };
            let details = json!({
                "agent_version": crate::AGENT_VERSION,
                "current_system": system_at(t),
                "booted_system": system_at(t),
                "baseline_version": spec.baseline_version,
                "baseline_sha256": spec.baseline_sha256,
                "interval_seconds": spec.heartbeat_interval,
                "agent_started_at": rfc(started),
                "checks": crate::checks::ids().into_iter().map(|id| {
                    let status = if spec.disabled_checks.iter().any(|d| d == id) { "disabled" } else { "holds" };
                    (id.to_string(), json!({ "status": status, "checked_at": rfc(t), "detail": null }))
                }).collect::<serde_json::Map<_, _>>(),
            });
            events.push(record(t, format!("HB-{}", t.format("%Y%m%d-%H%M%S")), "heartbeat", "agent", details, &["§164.312(b)", "§164.308(a)(1)(ii)(D)"]));
            tally.heartbeats += 1;
        }
        t += Duration::seconds(spec.heartbeat_interval);
    }

    // Backups at ~02:10 every day but one; that night's failure is a critical incident.
    let mut day = start;
    while day < end {
        let t = day + Duration::hours(2) + Duration::minutes(5 + rng.below(20) as i64);
        if day == missed_day {
            events.push(incident(&mut rng, &mut tally, t, 4, Outcome::Escalated, system_at(t)));
        } else {
            let details = json!({
                "unit": "restic-backups-clinic.service",
                "journal_cursor": format!("s=0a1b;i={:x}", t.timestamp()),
                "journal_realtime_usec": t.timestamp() * 1_000_000,
            });
            events.push(record(t, format!("BK-{}", t.format("%Y%m%d-%H%M%S")), "backup_completed", "journal", details, &["§164.308(a)(7)(ii)(A)", "§164.310(d)(2)(iv)"]));
            tally.backups += 1;
            tally.backup_days += 1;
        }
        day += Duration::days(1);
    }

    // Weekly restore tests (days 3, 10, 17, 24, 31), all passing.
    let mut d = start + Duration::days(2);
    while d < end {
        let t = d + Duration::hours(4);
        let done = t + Duration::seconds(312);
        events.push(Event {
            t: done,
            incident: IncidentSection {
                incident_id: format!("INC-{}-RT", t.format("%Y%m%d")),
                event_type: "restore_test_due".into(),
                severity: "medium".into(),
                detected_at: rfc(t),
                source: "timer".into(),
                details: json!({"repository": "s3:backup/clinic-001", "snapshot": format!("{:08x}", rng.next() as u32)}),
                hipaa_controls: vec!["§164.308(a)(7)(ii)(D)".into(), "§164.308(a)(7)(ii)(B)".into()],
            },
            runbook: RunbookSection {
                runbook_id: "RB-RESTORE-001".into(),
                runbook_version: "1.0".into(),
                runbook_hash: sha256_hex(b"RB-RESTORE-001"),
                steps_total: 4,
                steps_executed: 4,
            },
            execution: ExecutionSection {
                timestamp_start: rfc(t),
                timestamp_end: rfc(done),
                operator: "msp-agent".into(),
                mttr_seconds: 312.0,
                sla_target_seconds: 14400,
                sla_met: true,
                resolution_type: "automatic".into(),
            },
            actions: vec![
                step(1, "prepare", t, true, "snapshot found"),
                step(2, "restore", t, true, "restored 1,204 files"),
                step(3, "compare", t, true, "checksums match"),
                step(4, "cleanup", t, true, "removed restore dir"),
            ],
            status: "resolved".into(),
            system: system_at(t).into(),
        });
        tally.restore_tests += 1;
        d += Duration::days(7);
    }

    // The monthly WORM restore test (the module's timer), on the 2nd, passing.
    if spec.worm_restore_test {
        let t = start + Duration::days(1) + Duration::hours(4) + Duration::minutes(30);
        let details = json!({
            "bundles_in_bucket": 0,
            "sampled": [],
            "objects": 24,
            "bytes": 61_440,
            "failures": [],
            "result": "passed",
            "sample_requested": 8,
            "bucket": "clinic-evidence",
        });
        events.push(record(
            t,
            format!("WRT-{}", t.format("%Y%m%d-%H%M%S")),
            crate::incident::event_type::WORM_RESTORE_TEST,
            "agent",
            details,
            &crate::daemon::records::WORM_RESTORE_TEST_CONTROLS,
        ));
        tally.worm_restore_tests += 1;
    }

    // Incidents during the day.
    let mut day = start;
    let mut n = 0u64;
    while day < end {
        for _ in 0..spec.incidents_per_day {
            let t = day + Duration::hours(7) + Duration::seconds(rng.below(14 * 3600) as i64);
            let kind = (rng.below(4)) as usize; // backup failures come from the backup job
            let outcome = match n % 10 {
                3 => Outcome::Escalated,
                6 => Outcome::Suppressed,
                8 => Outcome::Late,
                _ => Outcome::Resolved,
            };
            n += 1;
            events.push(incident(&mut rng, &mut tally, t, kind, outcome, system_at(t)));
        }
        day += Duration::days(1);
    }
    // One critical backup failure fixed automatically (a retry worked), day 20.
    let t = start + Duration::days(19) + Duration::hours(13);
    events.push(incident(&mut rng, &mut tally, t, 4, Outcome::Resolved, system_at(t)));

    // A drift on day 18: sshd_config edited by hand, RB-DRIFT-001 re-applied the generation.
    let t = start + Duration::days(17) + Duration::hours(14) + Duration::minutes(22);
    let expected = sha256_hex(b"sshd_config as built");
    let actual = sha256_hex(b"sshd_config edited");
    events.push(Event {
        t: t + Duration::seconds(4),
        incident: IncidentSection {
            incident_id: format!("INC-{}-DRIFT", t.format("%Y%m%d-%H%M%S")),
            event_type: "config_drift".into(),
            severity: "high".into(),
            detected_at: rfc(t),
            source: "inotify".into(),
            details: json!({"path": "/etc/ssh/sshd_config", "expected_sha256": expected, "actual_sha256": actual, "expected_from": "manifest", "observed_at": rfc(t)}),
            hipaa_controls: vec!["§164.312(c)(1)".into(), "§164.308(a)(1)(ii)(D)".into()],
        },
        runbook: RunbookSection {
            runbook_id: "RB-DRIFT-001".into(),
            runbook_version: "1.0".into(),
            runbook_hash: sha256_hex(b"RB-DRIFT-001"),
            steps_total: 3,
            steps_executed: 3,
        },
        execution: ExecutionSection {
            timestamp_start: rfc(t),
            timestamp_end: rfc(t + Duration::seconds(4)),
            operator: "msp-agent".into(),
            mttr_seconds: 4.0,
            sla_target_seconds: 900,
            sla_met: true,
            resolution_type: "automatic".into(),
        },
        actions: vec![
            step(1, "record", t, true, "sshd_config differs from the manifest"),
            step(2, "alert", t, true, "alert sent"),
            step(3, "reapply", t, true, "switch-to-configuration: done"),
        ],
        status: "resolved".into(),
        system: system_at(t).into(),
    });
    tally.incidents += 1;
    tally.auto_fixed += 1;
    tally.drift += 1;
    tally.sla.0 += 1;
    tally.sla.1 += 1;
    tally.mttr.entry("high".into()).or_default().push(4.0);

    events.sort_by_key(|e| e.t);
    write_events(root, spec, signer, events, &mut tally)?;
    Ok(tally)
}

#[derive(Clone, Copy)]
enum Outcome {
    Resolved,
    Late,
    Escalated,
    Suppressed,
}

fn incident(rng: &mut Rng, tally: &mut Tally, t: DateTime<Utc>, kind: usize, outcome: Outcome, system: &str) -> Event {
    let (event_type, runbook, severity, sla, source, controls) = KINDS[kind];
    let mttr = match outcome {
        Outcome::Resolved => 5.0 + (rng.below(900) as f64) / 10.0 + (rng.below(sla / 2)) as f64,
        Outcome::Late => sla as f64 + 60.0 + rng.below(1200) as f64,
        Outcome::Escalated => 30.0 + rng.below(300) as f64,
        Outcome::Suppressed => 0.0,
    };
    let mttr = (mttr * 10.0).round() / 10.0;
    let (rtype, status, sla_met, executed) = match outcome {
        Outcome::Resolved => ("automatic", "resolved", mttr <= sla as f64, 3),
        Outcome::Late => ("automatic", "resolved", false, 3),
        Outcome::Escalated => ("escalated", "escalated", false, 2),
        Outcome::Suppressed => ("suppressed", "suppressed", true, 0),
    };
    tally.incidents += 1;
    match rtype {
        "automatic" => tally.auto_fixed += 1,
        "escalated" => tally.escalated += 1,
        _ => tally.suppressed += 1,
    }
    if rtype != "suppressed" {
        tally.sla.1 += 1;
        if sla_met {
            tally.sla.0 += 1;
        }
    }
    if status == "resolved" {
        tally.mttr.entry(severity.into()).or_default().push(mttr);
    }
    if severity == "critical" {
        tally.critical.0 += 1;
        if status != "resolved" {
            tally.critical.1 += 1;
        }
    }
    let done = t + Duration::milliseconds((mttr * 1000.0) as i64);
    let actions: Vec<Action> = (1..=executed)
        .map(|i| step(i, ["diagnose", "remediate", "verify"][(i - 1) as usize], t, !(matches!(outcome, Outcome::Escalated) && i == 2), "ok"))
        .collect();
    let unit = ["nginx.service", "postgresql.service", "chronyd.service"][rng.below(3) as usize];
    Event {
        t: done,
        incident: IncidentSection {
            incident_id: format!("INC-{}-{:04}", t.format("%Y%m%d-%H%M%S"), rng.below(10000)),
            event_type: event_type.into(),
            severity: severity.into(),
            detected_at: rfc(t),
            source: source.into(),
            details: json!({"unit": unit, "message": format!("{event_type} on {unit}")}),
            hipaa_controls: controls.iter().map(|s| s.to_string()).collect(),
        },
        runbook: RunbookSection {
            runbook_id: runbook.into(),
            runbook_version: "1.0".into(),
            runbook_hash: sha256_hex(runbook.as_bytes()),
            steps_total: 3,
            steps_executed: executed,
        },
        execution: ExecutionSection {
            timestamp_start: rfc(t),
            timestamp_end: rfc(done),
            operator: "msp-agent".into(),
            mttr_seconds: mttr,
            sla_target_seconds: sla,
            sla_met,
            resolution_type: rtype.into(),
        },
        actions,
        status: status.into(),
        system: system.into(),
    }
}

fn write_events(root: &Path, spec: &MonthSpec, signer: &Signer, events: Vec<Event>, tally: &mut Tally) -> Result<()> {
    let mut prev = spec.prev_sha256.clone();
    let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
    for (seq, e) in (spec.first_sequence..).zip(events) {
        // The store truncates to whole seconds; so do we, keeping names in time order.
        let t = DateTime::from_timestamp(e.t.timestamp(), 0).unwrap_or(e.t);
        let day = t.format("%Y%m%d").to_string();
        let n = per_day.entry(day.clone()).or_insert(0);
        *n += 1;
        let id = format!("EB-{day}-{:04}", n);
        let dir = root.join(t.format("%Y/%m").to_string());
        if *n == 1 {
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bundle = Bundle {
            bundle_id: id.clone(),
            bundle_version: BUNDLE_VERSION.into(),
            client_id: spec.client_id.clone(),
            hostname: spec.hostname.clone(),
            generated_at: rfc(t),
            generator: format!("msp-agent {}", crate::AGENT_VERSION),
            incident: e.incident,
            runbook: e.runbook,
            execution: e.execution,
            actions_taken: e.actions,
            rollback: Vec::new(),
            artifacts: Vec::new(),
            verification: json!({}),
            planner: None,
            outputs: Outputs { resolution_status: e.status },
            provenance: Provenance {
                agent_version: crate::AGENT_VERSION.into(),
                nixos_system: Some(e.system),
                baseline_version: Some(spec.baseline_version.clone()),
                baseline_sha256: Some(spec.baseline_sha256.clone()),
            },
            chain: Chain {
                sequence: seq,
                prev_bundle_sha256: prev.clone(),
            },
            signing: Signing {
                key_id: signer.key_id().into(),
                algorithm: ALGORITHM.into(),
            },
        };
        let bytes = serialize_bundle(&bundle)?;
        let path = dir.join(format!("{id}.json"));
        fs::write(path.with_extension(format!("json{SIG_SUFFIX}")), signer.sign_raw(&bytes))
            .with_context(|| format!("writing signature of {}", path.display()))?;
        fs::write(path.with_extension(format!("json{SSHSIG_SUFFIX}")), signer.sign_sshsig(&bytes)?)
            .with_context(|| format!("writing SSH signature of {}", path.display()))?;
        fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        prev = sha256_hex(&bytes);
        tally.last = (seq, prev.clone());
        tally.bundles += 1;
    }
    Ok(())
}
