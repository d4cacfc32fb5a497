//! Everything the packet says, computed from verified bundles only: the executive summary,
//! the control posture (freshness rules of the controls map), incidents, weekly backups,
//! restore tests, the configuration baseline seen, drift, exceptions and evidence gaps.
//!
//! Definitions (also in the README, "Monthly compliance packet"):
//! * **record**: a bundle with `execution.resolution_type = "recorded"` (heartbeat,
//!   backup completed); **restore test**: a bundle of runbook `RB-RESTORE-001`;
//!   **incident**: every other verified bundle.
//! * **auto-fixed**: an incident with `resolution_type = "automatic"` and
//!   `resolution_status = "resolved"`.
//! * **MTTR by severity**: mean `mttr_seconds` of the resolved incidents of that severity.
//! * **SLA met %**: incidents with `sla_met` over incidents that were acted on (suppressed
//!   duplicates are not counted; escalations are, usually as missed).
//! * **backup success rate**: completed UTC days of the period (before `as_of`) with at least
//!   one `backup_completed` record, over the completed days.
//! * **critical issues**: incidents of severity `critical`, and how many of them did not end
//!   `resolved`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::baseline::controls::{EvidenceRule, Row, Status};
use crate::baseline::exceptions::ClientExceptions;
use crate::evidence::bundle::Bundle;

use super::load::Loaded;
use super::period::Month;

/// Runbook id of the weekly restore test.
pub const RESTORE_RUNBOOK: &str = "RB-RESTORE-001";
/// Runbook id of the backup-failure runbook.
pub const BACKUP_RUNBOOK: &str = "RB-BACKUP-001";
/// `execution.resolution_type` of records (heartbeats, backups completed).
pub use crate::daemon::records::RECORDED;
/// Event types the packet picks out (as the daemon writes them).
pub use crate::incident::event_type::{BACKUP_COMPLETED, CONFIG_DRIFT, HEARTBEAT};

/// Severities in report order.
pub const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// What the assessment needs besides the bundles.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The client.
    pub client_id: &'a str,
    /// The month.
    pub month: Month,
    /// The time the packet is judged at ([`super::period::as_of`]).
    pub as_of: DateTime<Utc>,
    /// Controls-map rows.
    pub controls: &'a [Row],
    /// Baseline version.
    pub baseline_version: &'a str,
    /// SHA-256 of the baseline file.
    pub baseline_sha256: &'a str,
    /// The client's approved exceptions (if it has any).
    pub exceptions: Option<&'a ClientExceptions>,
    /// Keys of the baseline's `enforced_by: agent` rules: a control citing one needs the
    /// rule's check ([`crate::checks::REGISTRY`]) and a record of it in the month.
    pub agent_rules: &'a BTreeSet<String>,
}

/// One verified bundle with its time.
#[derive(Debug, Clone, Copy)]
pub struct Ev<'a> {
    /// The bundle.
    pub b: &'a Bundle,
    /// `generated_at`.
    pub t: DateTime<Utc>,
    /// Path relative to the evidence root.
    pub rel_path: &'a str,
}

/// The whole assessment.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// Headline figures.
    pub summary: Summary,
    /// One row per controls-map row.
    pub controls: Vec<ControlStatus>,
    /// Intervals longer than a rule's freshness without qualifying evidence.
    pub gaps: Vec<Gap>,
    /// Incidents, oldest first.
    pub incidents: Vec<IncidentRow>,
    /// Backup verification per week.
    pub backup_weeks: Vec<BackupWeek>,
    /// Restore tests, oldest first.
    pub restore_tests: Vec<IncidentRow>,
    /// NixOS systems seen.
    pub systems: Vec<SystemSeen>,
    /// Baseline versions and hashes the heartbeats reported.
    pub baselines_seen: Vec<BaselineSeen>,
    /// Drift incidents.
    pub drift: Vec<DriftRow>,
    /// The client's exceptions judged at the end of the period.
    pub exceptions: Vec<ExceptionRow>,
    /// UTC day exceptions are judged at (the last day of the period, or the day of `as_of`).
    pub exceptions_judged_on: NaiveDate,
}

/// Headline figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Controls the server is assessed on (implemented or partial).
    pub controls_assessed: usize,
    /// Of those, passing.
    pub controls_passing: usize,
    /// Organisational controls (not assessed by the server).
    pub controls_organisational: usize,
    /// Incidents (not records, not restore tests).
    pub incidents: usize,
    /// Incidents of severity critical.
    pub critical_incidents: usize,
    /// Critical incidents that did not end `resolved`.
    pub critical_unresolved: usize,
    /// Automatic and resolved.
    pub auto_fixed: usize,
    /// Escalated to a person.
    pub escalated: usize,
    /// Suppressed (duplicates, cooldown).
    pub suppressed: usize,
    /// Severity → (resolved incidents, mean MTTR seconds).
    pub mttr: BTreeMap<String, (usize, f64)>,
    /// Incidents counted for the SLA.
    pub sla_counted: usize,
    /// Of those, SLA met.
    pub sla_met: usize,
    /// Completed days of the period.
    pub backup_days: usize,
    /// Of those, days with a completed backup.
    pub backup_days_ok: usize,
    /// `backup_completed` records.
    pub backups_completed: usize,
    /// Restore tests run.
    pub restore_tests: usize,
    /// Restore tests resolved (passed).
    pub restore_tests_passed: usize,
    /// Heartbeats.
    pub heartbeats: usize,
}

impl Summary {
    /// SLA met, percent (`None` with no incident).
    pub fn sla_pct(&self) -> Option<f64> {
        pct(self.sla_met, self.sla_counted)
    }
    /// Backup success rate, percent (`None` before the first day is complete).
    pub fn backup_pct(&self) -> Option<f64> {
        pct(self.backup_days_ok, self.backup_days)
    }
}

fn pct(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| 100.0 * a as f64 / b as f64)
}

/// Verdict on one control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Fresh at `as_of` and no gap in the month.
    Passing,
    /// No qualifying bundle in the month.
    FailingNoEvidence,
    /// The newest qualifying bundle is older than the freshness rule at `as_of`.
    FailingStale,
    /// Fresh at `as_of`, but the month has a gap longer than the rule.
    FailingGap,
    /// Organisational: not assessed by the server.
    Organisational,
    /// The row is incomplete (no rule or freshness); shown as failing.
    FailingNoRule,
    /// An agent rule the control cites has no implementing check (reason names it).
    FailingNoCheck,
    /// The check of an agent rule the control cites left no record in the month: no
    /// heartbeat reported it holding, violated or watching (it was disabled, erroring, or the
    /// agent predates it).
    FailingCheckNoRecord,
}

impl Verdict {
    /// Words for the packet.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Passing => "PASSING",
            Verdict::FailingNoEvidence => "FAILING: no evidence",
            Verdict::FailingStale => "FAILING: stale",
            Verdict::FailingGap => "FAILING: gap",
            Verdict::Organisational => "organisational (not assessed by the server)",
            Verdict::FailingNoRule => "FAILING: no evidence rule",
            Verdict::FailingNoCheck => "FAILING: no implementing check",
            Verdict::FailingCheckNoRecord => "FAILING: check left no record",
        }
    }
    /// Whether this counts as failing.
    pub fn is_failing(&self) -> bool {
        !matches!(self, Verdict::Passing | Verdict::Organisational)
    }
}

/// One row of the control posture matrix.
#[derive(Debug, Clone, Serialize)]
pub struct ControlStatus {
    /// `§164.…`.
    pub control_id: String,
    /// Title.
    pub title: String,
    /// Status in the map (implemented, partial, organisational).
    pub map_status: String,
    /// Evidence rule, as written.
    pub rule: Option<String>,
    /// Freshness hours.
    pub freshness_hours: Option<u32>,
    /// Verdict.
    pub verdict: Verdict,
    /// Qualifying verified bundles in the month.
    pub evidence_count: usize,
    /// Newest qualifying bundle's time.
    pub last_verified: Option<DateTime<Utc>>,
    /// Gaps in the month for this control's rule.
    pub gaps: usize,
    /// Why it fails, when the verdict alone does not say (which rule, which check).
    pub reason: Option<String>,
}

/// An interval without qualifying evidence longer than the freshness rule.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    /// The evidence rule.
    pub rule: String,
    /// Its freshness, hours.
    pub freshness_hours: u32,
    /// Last evidence before the gap (or the start of the month).
    pub from: DateTime<Utc>,
    /// Next evidence (or `as_of`).
    pub to: DateTime<Utc>,
    /// Whether `from` is the start of the month (no earlier evidence in the month).
    pub from_period_start: bool,
    /// Whether `to` is `as_of` (no later evidence).
    pub to_as_of: bool,
}

impl Gap {
    /// Length in hours.
    pub fn hours(&self) -> f64 {
        (self.to - self.from).num_seconds() as f64 / 3600.0
    }
}

/// An incident (or restore test) for the table.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    /// Bundle id.
    pub bundle_id: String,
    /// Incident id.
    pub incident_id: String,
    /// Detected at (as written).
    pub detected_at: String,
    /// Event type.
    pub event_type: String,
    /// Severity.
    pub severity: String,
    /// Runbook id.
    pub runbook_id: String,
    /// `execution.resolution_type`.
    pub resolution_type: String,
    /// `outputs.resolution_status`.
    pub resolution_status: String,
    /// MTTR seconds.
    pub mttr_seconds: f64,
    /// SLA target seconds.
    pub sla_target_seconds: u64,
    /// SLA met.
    pub sla_met: bool,
    /// Steps executed / total.
    pub steps: (u32, u32),
}

/// One week of backup verification (days 1–7, 8–14, …, 29–end of the month).
#[derive(Debug, Clone, Serialize)]
pub struct BackupWeek {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Completed days in the week (before `as_of`).
    pub days: usize,
    /// Of those, days with a completed backup.
    pub days_ok: usize,
    /// `backup_completed` records.
    pub backups: usize,
    /// Backup-failure incidents (runbook RB-BACKUP-001).
    pub failures: usize,
    /// Restore tests passed.
    pub restores_passed: usize,
    /// Restore tests not passed.
    pub restores_failed: usize,
    /// A restore test passed within the restore rule (192 h) before the week's end (or
    /// `as_of`, if earlier): in the week or shortly before it, so a short last week counts.
    pub restore_fresh: bool,
}

/// How old the last passed restore test may be at the end of a week (8 days).
pub const RESTORE_FRESH_HOURS: i64 = 192;

impl BackupWeek {
    /// Verified: a backup every completed day, and a passed restore test within 8 days of the
    /// week's end.
    pub fn verified(&self) -> bool {
        self.days > 0 && self.days_ok == self.days && self.restore_fresh
    }
}

/// A NixOS system generation seen in heartbeats or bundle provenance.
#[derive(Debug, Clone, Serialize)]
pub struct SystemSeen {
    /// `/run/current-system` store path.
    pub current_system: String,
    /// `/run/booted-system` store path (heartbeats only).
    pub booted_system: Option<String>,
    /// First seen.
    pub first: DateTime<Utc>,
    /// Last seen.
    pub last: DateTime<Utc>,
    /// Bundles naming it.
    pub count: usize,
}

impl SystemSeen {
    /// The store path's hash part (`/nix/store/<hash>-name`).
    pub fn store_hash(&self) -> String {
        store_hash(&self.current_system)
    }
}

/// The hash part of a Nix store path, or `-`.
pub fn store_hash(path: &str) -> String {
    path.strip_prefix("/nix/store/")
        .and_then(|r| r.split_once('-'))
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| "-".into())
}

/// A baseline version/hash reported by heartbeats.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSeen {
    /// Version.
    pub version: String,
    /// SHA-256.
    pub sha256: String,
    /// Equal to the baseline the packet is made against.
    pub matches: bool,
    /// Heartbeats.
    pub count: usize,
    /// First seen.
    pub first: DateTime<Utc>,
    /// Last seen.
    pub last: DateTime<Utc>,
}

/// A drift incident.
#[derive(Debug, Clone, Serialize)]
pub struct DriftRow {
    /// Bundle id.
    pub bundle_id: String,
    /// When observed.
    pub observed_at: String,
    /// File.
    pub path: String,
    /// Expected hash.
    pub expected_sha256: String,
    /// Hash found (or `absent`).
    pub actual_sha256: String,
    /// Where the expectation came from.
    pub expected_from: String,
    /// Resolution status.
    pub resolution_status: String,
}

/// An exception judged at the end of the period.
#[derive(Debug, Clone, Serialize)]
pub struct ExceptionRow {
    /// Id.
    pub id: String,
    /// Baseline key.
    pub rule: String,
    /// Baseline value → override.
    pub change: String,
    /// Risk level.
    pub risk_level: String,
    /// Approved by and date.
    pub approved: String,
    /// Expiry day (valid through).
    pub expires: NaiveDate,
    /// `active`, `expired`, `not yet approved`, `active, review overdue`.
    pub state: String,
}

pub use msp_evidence::controls::{qualifies, rules_text};

/// Whether a bundle is a record (heartbeat, backup completed), not an incident.
pub fn is_record(b: &Bundle) -> bool {
    b.execution.resolution_type == RECORDED
        || b.incident.event_type == HEARTBEAT
        || b.incident.event_type == BACKUP_COMPLETED
}

/// Verified bundles of the client within the period and not after `as_of`, oldest first.
pub fn evidence<'a>(bundles: &'a [Loaded], ctx: &Context<'_>) -> Vec<Ev<'a>> {
    let start = ctx.month.start();
    let mut v: Vec<Ev<'a>> = bundles
        .iter()
        .filter_map(|l| {
            let b = l.verified()?;
            let t = l.generated_at?;
            (b.client_id == ctx.client_id && t >= start && t <= ctx.as_of).then_some(Ev {
                b,
                t,
                rel_path: &l.rel_path,
            })
        })
        .collect();
    v.sort_by_key(|e| (e.t, e.b.chain.sequence));
    v
}

/// Gaps for one rule: the intervals longer than `hours` without qualifying evidence.
pub fn gaps_for(
    times: &[DateTime<Utc>],
    hours: u32,
    start: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>, bool, bool)> {
    let limit = Duration::hours(hours as i64);
    let mut out = Vec::new();
    let mut prev = start;
    let mut prev_is_start = true;
    for &t in times {
        if t - prev > limit {
            out.push((prev, t, prev_is_start, false));
        }
        prev = t;
        prev_is_start = false;
    }
    if as_of - prev > limit {
        out.push((prev, as_of, prev_is_start, true));
    }
    out
}

/// Compute the assessment.
pub fn assess(evs: &[Ev<'_>], ctx: &Context<'_>) -> Assessment {
    let start = ctx.month.start();
    let mut summary = Summary::default();

    // Controls and gaps, once per distinct rule.
    // (rule, hours) → (qualifying times, number of gaps)
    // (rule text, hours) -> (qualifying times, gaps)
    let mut per_rule: BTreeMap<(String, u32), (Vec<DateTime<Utc>>, usize)> = BTreeMap::new();
    let mut controls = Vec::new();
    let check_records = check_records(evs);
    for row in ctx.controls {
        let status = row.status;
        let map_status = status.map_or("invalid", Status::as_str).to_string();
        let mut cs = ControlStatus {
            control_id: row.control_id.clone(),
            title: row.title.clone(),
            map_status,
            rule: row.evidence_rule.as_ref().map(|r| rules_text(r, &row.further_rules)),
            freshness_hours: row.freshness_hours,
            verdict: Verdict::FailingNoRule,
            evidence_count: 0,
            last_verified: None,
            gaps: 0,
            reason: None,
        };
        if status == Some(Status::Organisational) {
            cs.verdict = Verdict::Organisational;
            summary.controls_organisational += 1;
            controls.push(cs);
            continue;
        }
        summary.controls_assessed += 1;
        if let (Some(rule), Some(hours)) = (&row.evidence_rule, row.freshness_hours) {
            // Each distinct (rule, hours) is computed once for the whole packet; the rows that
            // share it borrow the result.
            for (r, h) in std::iter::once((rule, hours)).chain(row.further_rules.iter().map(|f| (&f.rule, f.freshness_hours))) {
                per_rule.entry((r.to_string(), h)).or_insert_with(|| {
                    let times: Vec<DateTime<Utc>> = evs
                        .iter()
                        .filter(|e| qualifies(r, e.b, ctx.baseline_sha256))
                        .map(|e| e.t)
                        .collect();
                    let gaps = gaps_for(&times, h, start, ctx.as_of).len();
                    (times, gaps)
                });
            }
            let rule_evidence = |rule: &EvidenceRule, hours: u32| -> (&[DateTime<Utc>], usize) {
                per_rule.get(&(rule.to_string(), hours)).map_or((&[][..], 0), |(t, g)| (t.as_slice(), *g))
            };
            let verdict_of = |times: &[DateTime<Utc>], gaps: usize, hours: u32| match times.last() {
                None => Verdict::FailingNoEvidence,
                Some(&t) if ctx.as_of - t > Duration::hours(hours as i64) => Verdict::FailingStale,
                Some(_) if gaps > 0 => Verdict::FailingGap,
                Some(_) => Verdict::Passing,
            };
            let (times, gaps) = rule_evidence(rule, hours);
            cs.evidence_count = times.len();
            cs.last_verified = times.last().copied();
            cs.gaps = gaps;
            cs.verdict = verdict_of(times, gaps, hours);
            // Every further rule must hold too; the first that does not decides the verdict
            // and is named (the counts above stay those of the first rule).
            if cs.verdict == Verdict::Passing {
                for f in &row.further_rules {
                    let (times, gaps) = rule_evidence(&f.rule, f.freshness_hours);
                    let v = verdict_of(times, gaps, f.freshness_hours);
                    if v != Verdict::Passing {
                        cs.verdict = v;
                        cs.gaps = gaps;
                        cs.reason = Some(match times.last() {
                            None => format!("also requires {} (within {} h): no such evidence in the month", f.rule, f.freshness_hours),
                            Some(t) => format!(
                                "also requires {} within {} h: newest at {}, {} gap(s) in the month",
                                f.rule,
                                f.freshness_hours,
                                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                gaps
                            ),
                        });
                        break;
                    }
                }
            }
        }
        // Claims follow checks: an agent rule nobody checks, or a check with no record in the
        // month, fails the control whatever the other evidence says.
        // (A month with no evidence at all keeps the plainer "no evidence".)
        if let Some((verdict, reason)) = check_verdict(row, ctx.agent_rules, &check_records) {
            if verdict == Verdict::FailingNoCheck || cs.verdict != Verdict::FailingNoEvidence {
                cs.verdict = verdict;
                cs.reason = Some(reason);
            }
        }
        if cs.verdict == Verdict::Passing {
            summary.controls_passing += 1;
        }
        controls.push(cs);
    }
    let mut gaps = Vec::new();
    for ((rule, hours), (times, _)) in &per_rule {
        for (from, to, a, b) in gaps_for(times, *hours, start, ctx.as_of) {
            gaps.push(Gap {
                rule: rule.clone(),
                freshness_hours: *hours,
                from,
                to,
                from_period_start: a,
                to_as_of: b,
            });
        }
    }
    gaps.sort_by(|a, b| (a.from, &a.rule).cmp(&(b.from, &b.rule)));

    // Incidents, restore tests, records.
    let mut incidents = Vec::new();
    let mut restore_tests = Vec::new();
    let mut mttr_sum: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let mut drift = Vec::new();
    let mut backup_times = Vec::new();
    let mut backup_failure_times = Vec::new();
    let mut systems: BTreeMap<(String, Option<String>), SystemSeen> = BTreeMap::new();
    let mut baselines: BTreeMap<(String, String), BaselineSeen> = BTreeMap::new();
    for e in evs {
        let b = e.b;
        if b.incident.event_type == HEARTBEAT {
            summary.heartbeats += 1;
            let d = &b.incident.details;
            let s = |k: &str| d.get(k).and_then(|v| v.as_str()).map(str::to_string);
            if let Some(cur) = s("current_system") {
                seen_system(&mut systems, cur, s("booted_system"), e.t);
            }
            if let (Some(v), Some(h)) = (s("baseline_version"), s("baseline_sha256")) {
                let matches = h == ctx.baseline_sha256;
                let entry = baselines
                    .entry((v.clone(), h.clone()))
                    .or_insert(BaselineSeen {
                        version: v,
                        sha256: h,
                        matches,
                        count: 0,
                        first: e.t,
                        last: e.t,
                    });
                entry.count += 1;
                entry.last = e.t;
            }
        } else if let Some(cur) = &b.provenance.nixos_system {
            seen_system(&mut systems, cur.clone(), None, e.t);
        }
        if b.incident.event_type == BACKUP_COMPLETED {
            summary.backups_completed += 1;
            backup_times.push(e.t);
        }
        if is_record(b) {
            continue;
        }
        let row = incident_row(b);
        if b.runbook.runbook_id == RESTORE_RUNBOOK {
            summary.restore_tests += 1;
            if b.outputs.resolution_status == "resolved" {
                summary.restore_tests_passed += 1;
            }
            restore_tests.push(row);
            continue;
        }
        if b.runbook.runbook_id == BACKUP_RUNBOOK {
            backup_failure_times.push(e.t);
        }
        summary.incidents += 1;
        let resolved = b.outputs.resolution_status == "resolved";
        if b.incident.severity == "critical" {
            summary.critical_incidents += 1;
            if !resolved {
                summary.critical_unresolved += 1;
            }
        }
        match b.execution.resolution_type.as_str() {
            "automatic" if resolved => summary.auto_fixed += 1,
            "escalated" => summary.escalated += 1,
            "suppressed" => summary.suppressed += 1,
            _ => {}
        }
        if b.execution.resolution_type != "suppressed" {
            summary.sla_counted += 1;
            if b.execution.sla_met {
                summary.sla_met += 1;
            }
        }
        if resolved {
            let m = mttr_sum.entry(b.incident.severity.clone()).or_default();
            m.0 += 1;
            m.1 += b.execution.mttr_seconds;
        }
        if b.incident.event_type == CONFIG_DRIFT {
            let d = &b.incident.details;
            let s = |k: &str| {
                d.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("-")
                    .to_string()
            };
            drift.push(DriftRow {
                bundle_id: b.bundle_id.clone(),
                observed_at: s("observed_at"),
                path: s("path"),
                expected_sha256: s("expected_sha256"),
                actual_sha256: s("actual_sha256"),
                expected_from: s("expected_from"),
                resolution_status: b.outputs.resolution_status.clone(),
            });
        }
        incidents.push(row);
    }
    // Tables read in detection order (bundles are written when the incident ends).
    incidents.sort_by(|a, b| a.detected_at.cmp(&b.detected_at));
    summary.mttr = mttr_sum
        .into_iter()
        .map(|(k, (n, sum))| (k, (n, sum / n as f64)))
        .collect();

    // Backups per day and per week.
    let backup_days: BTreeSet<NaiveDate> = backup_times.iter().map(|t| t.date_naive()).collect();
    let completed_day = |d: NaiveDate| {
        d.succ_opt()
            .map(|n| n.and_time(chrono::NaiveTime::MIN).and_utc() <= ctx.as_of)
            .unwrap_or(false)
    };
    let mut backup_weeks = Vec::new();
    let first = ctx.month.first_day();
    let last = ctx.month.next_first_day().pred_opt().unwrap_or(first);
    let mut wk_start = first;
    while wk_start <= last {
        let wk_end = (wk_start + Duration::days(6)).min(last);
        let in_week = |t: &DateTime<Utc>| {
            let d = t.date_naive();
            d >= wk_start && d <= wk_end
        };
        let mut w = BackupWeek {
            from: wk_start,
            to: wk_end,
            days: 0,
            days_ok: 0,
            backups: backup_times.iter().filter(|t| in_week(t)).count(),
            failures: backup_failure_times.iter().filter(|t| in_week(t)).count(),
            restores_passed: 0,
            restores_failed: 0,
            restore_fresh: false,
        };
        let week_end = wk_end
            .succ_opt()
            .map(|n| n.and_time(chrono::NaiveTime::MIN).and_utc())
            .unwrap_or(ctx.as_of)
            .min(ctx.as_of);
        w.restore_fresh = evs.iter().any(|e| {
            e.b.runbook.runbook_id == RESTORE_RUNBOOK
                && e.b.outputs.resolution_status == "resolved"
                && e.t <= week_end
                && week_end - e.t <= Duration::hours(RESTORE_FRESH_HOURS)
        });
        let mut d = wk_start;
        while d <= wk_end {
            if completed_day(d) {
                w.days += 1;
                if backup_days.contains(&d) {
                    w.days_ok += 1;
                }
            }
            d = match d.succ_opt() {
                Some(n) => n,
                None => break,
            };
        }
        for e in evs.iter().filter(|e| e.b.runbook.runbook_id == RESTORE_RUNBOOK && !is_record(e.b)) {
            if in_week(&e.t) {
                if e.b.outputs.resolution_status == "resolved" {
                    w.restores_passed += 1;
                } else {
                    w.restores_failed += 1;
                }
            }
        }
        summary.backup_days += w.days;
        summary.backup_days_ok += w.days_ok;
        backup_weeks.push(w);
        wk_start = wk_end + Duration::days(1);
    }

    // Exceptions, judged on the last day of the period (valid through their expiry day).
    let judged_on = (ctx.as_of - Duration::nanoseconds(1)).date_naive().max(first);
    let exceptions = ctx
        .exceptions
        .map(|c| {
            c.exceptions
                .iter()
                .map(|x| {
                    let reviewed = x.last_reviewed.unwrap_or(x.approved_date);
                    let review_due = reviewed + Duration::days(x.review_frequency_days);
                    let state = if x.approved_date > judged_on {
                        "not yet approved".to_string()
                    } else if x.expires < judged_on {
                        format!("EXPIRED on {}", x.expires)
                    } else if review_due < judged_on {
                        format!("active, review OVERDUE since {review_due}")
                    } else {
                        "active".to_string()
                    };
                    ExceptionRow {
                        id: x.id.clone(),
                        rule: x.rule.clone(),
                        change: format!("{} -> {}", x.baseline_value, x.override_value),
                        risk_level: x.risk_level.clone(),
                        approved: format!("{} ({})", x.approved_by, x.approved_date),
                        expires: x.expires,
                        state,
                    }
                })
                .collect()
        })
        .unwrap_or_default();

    Assessment {
        summary,
        controls,
        gaps,
        incidents,
        backup_weeks,
        restore_tests,
        systems: systems.into_values().collect(),
        baselines_seen: baselines.into_values().collect(),
        drift,
        exceptions,
        exceptions_judged_on: judged_on,
    }
}

/// Check id → heartbeats in the month that report the check ran (holds, violated, watching).
pub fn check_records(evs: &[Ev<'_>]) -> BTreeMap<&'static str, usize> {
    let mut out: BTreeMap<&'static str, usize> = crate::checks::ids().into_iter().map(|id| (id, 0)).collect();
    for e in evs.iter().filter(|e| e.b.incident.event_type == HEARTBEAT) {
        for (id, n) in out.iter_mut() {
            if crate::checks::status_in_heartbeat(&e.b.incident.details, id).is_some_and(crate::checks::Status::ran) {
                *n += 1;
            }
        }
    }
    out
}

/// The failing verdict (and its reason) of a control citing an agent rule without a check, or
/// whose check left no record in the month; `None` when every cited agent rule is covered.
fn check_verdict(row: &Row, agent_rules: &BTreeSet<String>, records: &BTreeMap<&'static str, usize>) -> Option<(Verdict, String)> {
    let cited: Vec<&String> = row.baseline_keys.iter().filter(|k| agent_rules.contains(*k)).collect();
    if let Some(k) = cited.iter().find(|k| crate::checks::for_rule(k).is_none()) {
        return Some((Verdict::FailingNoCheck, format!("rule {k} is enforced_by: agent, but no agent check implements it")));
    }
    let silent: Vec<String> = cited
        .iter()
        .filter_map(|k| crate::checks::for_rule(k))
        .filter(|c| records.get(c.id).copied().unwrap_or(0) == 0)
        .map(|c| format!("{} ({})", c.id, c.rule))
        .collect();
    (!silent.is_empty()).then(|| {
        (Verdict::FailingCheckNoRecord, format!("no heartbeat in the month records check {} running", silent.join(", ")))
    })
}

fn seen_system(
    systems: &mut BTreeMap<(String, Option<String>), SystemSeen>,
    current: String,
    booted: Option<String>,
    t: DateTime<Utc>,
) {
    let e = systems
        .entry((current.clone(), booted.clone()))
        .or_insert(SystemSeen {
            current_system: current,
            booted_system: booted,
            first: t,
            last: t,
            count: 0,
        });
    e.count += 1;
    e.first = e.first.min(t);
    e.last = e.last.max(t);
}

fn incident_row(b: &Bundle) -> IncidentRow {
    IncidentRow {
        bundle_id: b.bundle_id.clone(),
        incident_id: b.incident.incident_id.clone(),
        detected_at: b.incident.detected_at.clone(),
        event_type: b.incident.event_type.clone(),
        severity: b.incident.severity.clone(),
        runbook_id: b.runbook.runbook_id.clone(),
        resolution_type: b.execution.resolution_type.clone(),
        resolution_status: b.outputs.resolution_status.clone(),
        mttr_seconds: b.execution.mttr_seconds,
        sla_target_seconds: b.execution.sla_target_seconds,
        sla_met: b.execution.sla_met,
        steps: (b.runbook.steps_executed, b.runbook.steps_total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    #[test]
    fn gaps_count_from_the_start_of_the_month_and_up_to_as_of() {
        let start = t(1, 0);
        let as_of = t(10, 0);
        // Fresh at the end, one 30 h hole in the middle, the first evidence 2 h in.
        let mut times = vec![t(1, 2), t(2, 0)];
        times.extend((3..=9).map(|d| t(d, 6)));
        times.push(t(9, 23));
        let g = gaps_for(&times, 26, start, as_of);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!((g[0].0, g[0].1), (t(2, 0), t(3, 6)));
        // Nothing at all: one gap over the whole period, from the start to as_of.
        let g = gaps_for(&[], 1, start, as_of);
        assert_eq!(g, vec![(start, as_of, true, true)]);
        // Exactly the limit is not a gap.
        assert!(gaps_for(&[t(2, 2)], 26, start, t(3, 4)).is_empty());
    }

    #[test]
    fn store_hash_of_a_nix_path() {
        assert_eq!(
            store_hash("/nix/store/abc123-nixos-system-x-26.05"),
            "abc123"
        );
        assert_eq!(store_hash("/usr/bin"), "-");
    }
}
