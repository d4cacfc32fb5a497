//! The views ([`FleetQuery`]) computed from the index at a given `now`.
//!
//! A control's state, per host: **integrity error** when an object of the host that failed
//! verification affects one of the control's rules (it could not be parsed, or it is a bundle
//! the rule would have looked at) or is newer than the rule's newest qualifying evidence: a
//! failed object is never hidden behind an older pass. Otherwise **excepted** when an
//! exception of the host's client, active on `now`'s UTC day, overrides one of the control's
//! baseline keys. Otherwise from verified evidence, per rule ([`RuleFields::qualifies`]):
//! **failing** with no qualifying bundle, or when the newest relevant bundle is newer than the
//! newest qualifying one and does not qualify (a failed restore test, an unresolved backup
//! failure, a heartbeat from another baseline); **stale** when the newest qualifying bundle is
//! older than the freshness; else **passing**. The first rule decides; when it passes, the
//! first further rule that does not pass decides.

use std::collections::HashMap;

use anyhow::Result;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Utc};
use msp_evidence::controls::EvidenceRule;
use rusqlite::{params, Connection, OptionalExtension};

use super::controls::{relevant_sql, ControlDef, RuleFields};
use super::Index;
use crate::inventory::Host;
use crate::model::*;
use crate::silence;

/// Qualifying bundles listed on a control page.
const HISTORY_LIMIT: usize = 50;
/// Incidents listed on a host page.
const INCIDENT_LIMIT: usize = 100;

#[derive(Debug, Clone)]
struct Row {
    object_key: String,
    bundle_id: String,
    generated_at: String,
    gen_ts: i64,
    sequence: i64,
    fields: RuleFields,
}

impl Row {
    fn bref(&self) -> BundleRef {
        BundleRef {
            bundle_id: self.bundle_id.clone(),
            object_key: self.object_key.clone(),
            generated_at: self.generated_at.clone(),
            event_type: self.fields.event_type.clone(),
        }
    }
}

const ROW_COLS: &str = "object_key, bundle_id, generated_at, gen_ts, sequence, event_type, runbook_id, resolution_status, detail_result, current_system, hb_baseline_sha256";

fn row_of(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        object_key: r.get(0)?,
        bundle_id: r.get(1)?,
        generated_at: r.get(2)?,
        gen_ts: r.get(3)?,
        sequence: r.get(4)?,
        fields: RuleFields {
            event_type: r.get(5)?,
            runbook_id: r.get(6)?,
            resolution_status: r.get(7)?,
            detail_result: r.get(8)?,
            current_system: r.get(9)?,
            baseline_sha256: r.get(10)?,
        },
    })
}

struct IntegrityRow {
    object_key: String,
    bundle_id: Option<String>,
    problem: String,
    /// Claimed `generated_at`, else the object's time; `None`: unknown, taken as newest.
    at: Option<i64>,
    fields: Option<RuleFields>,
}

/// The newest relevant and newest qualifying bundle under one rule.
#[derive(Clone, Default)]
struct RuleEval {
    relevant: Option<Row>,
    qualifying: Option<Row>,
}

struct HostEval {
    summary: HostSummary,
    lines: Vec<ControlLine>,
}

fn rfc(ts: i64) -> String {
    Utc.timestamp_opt(ts, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn month_bounds(now: DateTime<Utc>) -> (i64, i64) {
    let start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .map(|t| t.timestamp())
        .unwrap_or(0);
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .map(|t| t.timestamp())
        .unwrap_or(i64::MAX);
    (start, end)
}

/// A host's bundles a rule looks at, newest first, up to `now` (`?3`).
fn relevant_rows_sql(rule: &EvidenceRule) -> String {
    format!(
        "SELECT {ROW_COLS} FROM bundles WHERE client_id = ?1 AND host_id = ?2 AND gen_ts <= ?3 AND ({}) ORDER BY gen_ts DESC, sequence DESC",
        relevant_sql(rule)
    )
}

/// Evidence generated after `now` is not looked at anywhere in a view: a view is judged as of
/// `now` (a past month's packet, `--now`), never with hindsight.
fn eval_rule(conn: &Connection, host: &Host, rule: &EvidenceRule, baseline: &str, now_ts: i64) -> Result<RuleEval> {
    let sql = relevant_rows_sql(rule);
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = st.query(params![host.client_id, host.id, now_ts])?;
    let mut out = RuleEval::default();
    while let Some(r) = rows.next()? {
        let row = row_of(r)?;
        let q = row.fields.qualifies(rule, baseline);
        if out.relevant.is_none() && (q || row.fields.relevant(rule)) {
            out.relevant = Some(row.clone());
        }
        if q {
            out.qualifying = Some(row);
            break;
        }
    }
    Ok(out)
}

fn qualifying_history(conn: &Connection, host: &Host, rule: &EvidenceRule, baseline: &str, now_ts: i64) -> Result<Vec<BundleRef>> {
    let sql = relevant_rows_sql(rule);
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = st.query(params![host.client_id, host.id, now_ts])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let row = row_of(r)?;
        if row.fields.qualifies(rule, baseline) {
            out.push(row.bref());
            if out.len() >= HISTORY_LIMIT {
                break;
            }
        }
    }
    Ok(out)
}

/// Integrity errors of `host` known as of `now_ts`: an object claiming a later time (or, with
/// no claim, appearing later) belongs to a later view. One with no time at all always counts.
fn integrity_rows(conn: &Connection, host: &Host, now_ts: i64) -> Result<Vec<IntegrityRow>> {
    let mut st = conn.prepare_cached(
        "SELECT i.object_key, i.bundle_id, i.problem, COALESCE(i.at_claimed, o.last_modified), i.event_type, i.runbook_id,
                i.resolution_status, i.detail_result, i.current_system, i.hb_baseline_sha256
         FROM integrity i LEFT JOIN objects o ON o.key = i.object_key
         WHERE i.client_id = ?1 AND i.host_id = ?2
           AND (COALESCE(i.at_claimed, o.last_modified) IS NULL OR COALESCE(i.at_claimed, o.last_modified) <= ?3)
         ORDER BY i.object_key",
    )?;
    let rows = st.query_map(params![host.client_id, host.id, now_ts], |r| {
        let event_type: Option<String> = r.get(4)?;
        Ok(IntegrityRow {
            object_key: r.get(0)?,
            bundle_id: r.get(1)?,
            problem: r.get(2)?,
            at: r.get(3)?,
            fields: match event_type {
                None => None,
                Some(event_type) => Some(RuleFields {
                    event_type,
                    runbook_id: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    resolution_status: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    detail_result: r.get(7)?,
                    current_system: r.get(8)?,
                    baseline_sha256: r.get(9)?,
                }),
            },
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One rule's verdict: state, the bundle behind it, why.
fn verdict(
    rule: &EvidenceRule,
    hours: u32,
    ev: &RuleEval,
    errors: &[IntegrityRow],
    baseline: &str,
    now: DateTime<Utc>,
) -> (ControlState, Option<BundleRef>, String) {
    let q_ts = ev.qualifying.as_ref().map(|q| q.gen_ts);
    for e in errors {
        let affects = match &e.fields {
            None => true,
            Some(f) => f.relevant(rule) || f.qualifies(rule, baseline),
        };
        let newer = match (e.at, q_ts) {
            (_, None) | (None, _) => true,
            (Some(a), Some(q)) => a > q,
        };
        if affects || newer {
            // The status links to the object that failed (its bundle page says why), not to
            // the last good bundle: that is what justifies "integrity error".
            let bad = e.bundle_id.as_ref().map(|id| BundleRef {
                bundle_id: id.clone(),
                object_key: e.object_key.clone(),
                generated_at: e.at.map(rfc).unwrap_or_default(),
                event_type: e.fields.as_ref().map(|f| f.event_type.clone()).unwrap_or_default(),
            });
            return (
                ControlState::IntegrityError,
                bad.or_else(|| ev.qualifying.as_ref().map(Row::bref)),
                format!("{rule}: {} failed verification: {}", e.object_key, e.problem),
            );
        }
    }
    let Some(q) = &ev.qualifying else {
        return match &ev.relevant {
            Some(r) => (
                ControlState::Failing,
                Some(r.bref()),
                format!(
                    "{rule}: no qualifying evidence; newest relevant bundle {} is {}",
                    r.bundle_id, r.fields.resolution_status
                ),
            ),
            None => (ControlState::Failing, None, format!("{rule}: no qualifying evidence")),
        };
    };
    if let Some(r) = &ev.relevant {
        if r.object_key != q.object_key && (r.gen_ts, r.sequence) > (q.gen_ts, q.sequence) && !r.fields.qualifies(rule, baseline) {
            return (
                ControlState::Failing,
                Some(r.bref()),
                format!(
                    "{rule}: newest relevant bundle {} ({}, {}) does not qualify; last qualifying {}",
                    r.bundle_id, r.fields.event_type, r.fields.resolution_status, q.generated_at
                ),
            );
        }
    }
    let age_s = now.timestamp() - q.gen_ts;
    let allowed = i64::from(hours) * 3600;
    let age_h = age_s as f64 / 3600.0;
    if age_s > allowed {
        (
            ControlState::Stale,
            Some(q.bref()),
            format!("{rule}: newest qualifying bundle is {age_h:.1} h old, allowed {hours} h"),
        )
    } else {
        (
            ControlState::Passing,
            Some(q.bref()),
            format!("{rule}: newest qualifying bundle is {age_h:.1} h old, within {hours} h"),
        )
    }
}

impl Index {
    fn exception_for(&self, client: &str, c: &ControlDef, day: NaiveDate) -> Option<ExceptionRef> {
        let file = self.settings.exceptions.iter().find(|f| f.client_id == client)?;
        let x = file
            .exceptions
            .iter()
            .find(|x| x.active_on(day) && c.baseline_keys.iter().any(|k| k == &x.rule))?;
        Some(ExceptionRef {
            id: x.id.clone(),
            approver: x.approved_by.clone(),
            expires: x.expires.to_string(),
        })
    }

    fn eval_host(&self, conn: &Connection, host: &Host, now: DateTime<Utc>) -> Result<HostEval> {
        let baseline = self.settings.baseline_sha256.as_str();
        let now_ts = now.timestamp();
        let errors = integrity_rows(conn, host, now_ts)?;
        let mut cache: HashMap<EvidenceRule, RuleEval> = HashMap::new();
        let mut get = |rule: &EvidenceRule| -> Result<RuleEval> {
            if let Some(e) = cache.get(rule) {
                return Ok(e.clone());
            }
            let e = eval_rule(conn, host, rule, baseline, now_ts)?;
            cache.insert(rule.clone(), e.clone());
            Ok(e)
        };
        let day = now.date_naive();
        let mut lines = Vec::new();
        let mut counts = StateCounts::default();
        for c in &self.settings.controls {
            let first = verdict(&c.rule, c.freshness_hours, &get(&c.rule)?, &errors, baseline, now);
            let mut further = Vec::new();
            for f in &c.further {
                further.push(verdict(&f.rule, f.freshness_hours, &get(&f.rule)?, &errors, baseline, now));
            }
            let exception = self.exception_for(&host.client_id, c, day);
            let integrity = std::iter::once(&first)
                .chain(further.iter())
                .find(|v| v.0 == ControlState::IntegrityError)
                .cloned();
            let (state, evidence, reason) = if let Some(v) = integrity {
                v
            } else if let Some(x) = &exception {
                (
                    ControlState::Excepted,
                    first.1.clone(),
                    format!("exception {} approved by {}, valid through {} (UTC)", x.id, x.approver, x.expires),
                )
            } else if first.0 != ControlState::Passing {
                first
            } else {
                match further.into_iter().find(|v| v.0 != ControlState::Passing) {
                    Some(v) => (v.0, v.1, format!("also requires {}", v.2)),
                    None => first,
                }
            };
            match state {
                ControlState::Passing => counts.passing += 1,
                ControlState::Failing => counts.failing += 1,
                ControlState::Stale => counts.stale += 1,
                ControlState::Excepted => counts.excepted += 1,
                ControlState::IntegrityError => counts.integrity_error += 1,
            }
            lines.push(ControlLine {
                control_id: c.control_id.clone(),
                title: c.title.clone(),
                state,
                evidence_rule: c.rule_text.clone(),
                freshness_hours: Some(c.freshness_hours),
                evidence,
                exception,
                reason,
            });
        }
        let one_i64 = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Option<i64>> {
            Ok(conn.query_row(sql, p, |r| r.get::<_, Option<i64>>(0)).optional()?.flatten())
        };
        let last_ev = one_i64(
            "SELECT MAX(gen_ts) FROM bundles WHERE client_id = ?1 AND host_id = ?2 AND gen_ts <= ?3",
            &[&host.client_id, &host.id, &now_ts],
        )?;
        let last_hb = one_i64(
            "SELECT MAX(gen_ts) FROM bundles WHERE client_id = ?1 AND host_id = ?2 AND gen_ts <= ?3 AND event_type = 'heartbeat'",
            &[&host.client_id, &host.id, &now_ts],
        )?;
        let (m0, month_end) = month_bounds(now);
        let m1 = month_end.min(now_ts + 1);
        let count = |sql: &str| -> Result<usize> { Ok(one_i64(sql, &[&host.client_id, &host.id, &m0, &m1])?.unwrap_or(0) as usize) };
        let open_incidents = count(
            "SELECT COUNT(*) FROM bundles b WHERE client_id = ?1 AND host_id = ?2 AND gen_ts >= ?3 AND gen_ts < ?4
               AND resolution_status IN ('escalated', 'interrupted')
               AND NOT EXISTS (SELECT 1 FROM bundles r WHERE r.client_id = b.client_id AND r.host_id = b.host_id
                               AND r.event_type = b.event_type AND r.resolution_status = 'resolved' AND r.gen_ts > b.gen_ts AND r.gen_ts < ?4)",
        )?;
        let failed_incidents = count("SELECT COUNT(*) FROM bundles WHERE client_id = ?1 AND host_id = ?2 AND gen_ts >= ?3 AND gen_ts < ?4 AND resolution_status IN ('failed', 'rolled_back')")?;
        let drift_events = count("SELECT COUNT(*) FROM bundles WHERE client_id = ?1 AND host_id = ?2 AND gen_ts >= ?3 AND gen_ts < ?4 AND event_type = 'config_drift'")?;
        let worm_lag_seconds = conn
            .query_row(
                "SELECT o.last_modified - b.gen_ts FROM bundles b JOIN objects o ON o.key = b.object_key
                 WHERE b.client_id = ?1 AND b.host_id = ?2 AND b.gen_ts <= ?3 ORDER BY b.sequence DESC LIMIT 1",
                params![host.client_id, host.id, now_ts],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten();
        let last_dt = last_ev.and_then(|t| Utc.timestamp_opt(t, 0).single());
        let summary = HostSummary {
            client_id: host.client_id.clone(),
            host_id: host.id.clone(),
            silence: silence::tier(
                last_dt,
                host.heartbeat_interval_seconds,
                self.settings.warn_after_intervals,
                self.settings.page_after_intervals,
                now,
            ),
            last_evidence_at: last_ev.map(rfc),
            last_heartbeat_at: last_hb.map(rfc),
            controls: counts,
            integrity_errors: errors.len(),
            open_incidents,
            failed_incidents,
            drift_events,
            worm_lag_seconds,
        };
        Ok(HostEval { summary, lines })
    }

    fn client_summary(&self, client: &crate::inventory::Client, hosts: &[HostSummary]) -> ClientSummary {
        let mut controls = StateCounts::default();
        for h in hosts {
            controls.passing += h.controls.passing;
            controls.failing += h.controls.failing;
            controls.stale += h.controls.stale;
            controls.excepted += h.controls.excepted;
            controls.integrity_error += h.controls.integrity_error;
        }
        ClientSummary {
            client_id: client.id.clone(),
            name: client.name.clone(),
            hosts: hosts.len(),
            silent_hosts: hosts.iter().filter(|h| h.silence != Silence::Reporting).count(),
            controls,
            integrity_errors: hosts.iter().map(|h| h.integrity_errors).sum(),
            open_incidents: hosts.iter().map(|h| h.open_incidents).sum(),
        }
    }

    fn last_poll_at(conn: &Connection) -> Result<Option<String>> {
        Ok(conn
            .query_row("SELECT v FROM meta WHERE k = 'last_poll_at'", [], |r| r.get(0))
            .optional()?)
    }
}

fn attention_rank(h: &HostSummary) -> (usize, usize, usize, usize) {
    let silence = match h.silence {
        Silence::Page => 3,
        Silence::NeverSeen => 2,
        Silence::Warn => 1,
        Silence::Reporting => 0,
    };
    (
        h.integrity_errors.max(h.controls.integrity_error),
        silence,
        h.controls.failing,
        h.controls.stale,
    )
}

/// Host summaries computed for one poll generation and one minute of `now`. The fleet and
/// client pages list every host, and judging all controls of 500 hosts takes about half a
/// second; within a minute and without a poll that changed the index the answer can only
/// differ by a threshold crossed inside that minute, so it is reused (a status can lag the clock
/// by up to a minute, never the evidence).
pub(crate) struct SummaryCache {
    generation: u64,
    minute: i64,
    hosts: HashMap<(String, String), HostSummary>,
}

impl Index {
    /// `host`'s summary as of `now`, from the cache when it is current.
    fn host_summary(&self, conn: &Connection, host: &Host, now: DateTime<Utc>) -> Result<HostSummary> {
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let minute = now.timestamp().div_euclid(60);
        let key = (host.client_id.clone(), host.id.clone());
        let mut cache = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref().filter(|c| c.generation == generation && c.minute == minute) {
            if let Some(h) = c.hosts.get(&key) {
                return Ok(h.clone());
            }
        }
        let summary = self.eval_host(conn, host, now)?.summary;
        let c = match cache.as_mut().filter(|c| c.generation == generation && c.minute == minute) {
            Some(c) => c,
            None => cache.insert(SummaryCache { generation, minute, hosts: HashMap::new() }),
        };
        c.hosts.insert(key, summary.clone());
        Ok(summary)
    }
}

impl FleetQuery for Index {
    fn fleet(&self, scope: &Scope, now: DateTime<Utc>) -> Result<FleetView> {
        let conn = self.lock()?;
        let mut clients = Vec::new();
        let mut attention = Vec::new();
        for c in self.inventory.clients.iter().filter(|c| scope.sees(&c.id)) {
            let mut hosts = Vec::new();
            for h in &c.hosts {
                hosts.push(self.host_summary(&conn, h, now)?);
            }
            clients.push(self.client_summary(c, &hosts));
            attention.extend(hosts.into_iter().filter(|h| attention_rank(h) != (0, 0, 0, 0)));
        }
        attention.sort_by(|a, b| {
            attention_rank(b)
                .cmp(&attention_rank(a))
                .then_with(|| (&a.client_id, &a.host_id).cmp(&(&b.client_id, &b.host_id)))
        });
        Ok(FleetView {
            as_of: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            last_poll_at: Index::last_poll_at(&conn)?,
            clients,
            attention,
        })
    }

    fn client(&self, scope: &Scope, client: &str, now: DateTime<Utc>) -> Result<Option<ClientView>> {
        if !scope.sees(client) {
            return Ok(None);
        }
        let Some(c) = self.inventory.clients.iter().find(|c| c.id == client) else {
            return Ok(None);
        };
        let conn = self.lock()?;
        let mut hosts = Vec::new();
        for h in &c.hosts {
            hosts.push(self.host_summary(&conn, h, now)?);
        }
        let mut st = conn.prepare_cached("SELECT DISTINCT substr(generated_at, 1, 7) FROM bundles WHERE client_id = ?1 ORDER BY 1 DESC")?;
        let months = st
            .query_map([client], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(ClientView {
            summary: self.client_summary(c, &hosts),
            hosts,
            months,
        }))
    }

    fn host(&self, scope: &Scope, client: &str, host: &str, now: DateTime<Utc>) -> Result<Option<HostView>> {
        if !scope.sees(client) {
            return Ok(None);
        }
        let Some(h) = self.inventory.host(client, host) else {
            return Ok(None);
        };
        let conn = self.lock()?;
        let ev = self.eval_host(&conn, h, now)?;
        let mut st = conn.prepare_cached(&format!(
            "SELECT {ROW_COLS}, runbook_id FROM bundles WHERE client_id = ?1 AND host_id = ?2
               AND resolution_status IN ('escalated', 'failed', 'rolled_back', 'interrupted')
             ORDER BY gen_ts DESC, sequence DESC LIMIT {INCIDENT_LIMIT}"
        ))?;
        let incidents = st
            .query_map(params![client, host], |r| {
                let row = row_of(r)?;
                Ok(IncidentLine {
                    runbook_id: Some(row.fields.runbook_id.clone()).filter(|id| id != msp_evidence::bundle::NO_RUNBOOK_ID),
                    status: row.fields.resolution_status.clone(),
                    bundle: row.bref(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let integrity = integrity_rows(&conn, h, now.timestamp())?
            .into_iter()
            .map(|e| IntegrityLine {
                object_key: e.object_key,
                bundle_id: e.bundle_id,
                problem: e.problem,
            })
            .collect();
        Ok(Some(HostView {
            summary: ev.summary,
            heartbeat_interval_seconds: h.heartbeat_interval_seconds,
            controls: ev.lines,
            incidents,
            integrity,
            key_ids: h.key_ids(),
        }))
    }

    fn control(&self, scope: &Scope, client: &str, host: &str, control_id: &str, now: DateTime<Utc>) -> Result<Option<ControlView>> {
        if !scope.sees(client) {
            return Ok(None);
        }
        let Some(h) = self.inventory.host(client, host) else {
            return Ok(None);
        };
        let Some(def) = self.settings.controls.iter().find(|c| c.control_id == control_id) else {
            return Ok(None);
        };
        let conn = self.lock()?;
        let ev = self.eval_host(&conn, h, now)?;
        let Some(line) = ev.lines.into_iter().find(|l| l.control_id == control_id) else {
            return Ok(None);
        };
        let history = qualifying_history(&conn, h, &def.rule, &self.settings.baseline_sha256, now.timestamp())?;
        Ok(Some(ControlView {
            client_id: client.into(),
            host_id: host.into(),
            line,
            history,
        }))
    }

    fn bundle(&self, scope: &Scope, client: &str, host: &str, bundle_id: &str) -> Result<Option<BundleView>> {
        if !scope.sees(client) || self.inventory.host(client, host).is_none() {
            return Ok(None);
        }
        let conn = self.lock()?;
        let found: Option<(BundleRef, String, String)> = conn
            .query_row(
                &format!("SELECT {ROW_COLS}, key_id FROM bundles WHERE client_id = ?1 AND host_id = ?2 AND bundle_id = ?3 ORDER BY object_key LIMIT 1"),
                params![client, host, bundle_id],
                |r| Ok((row_of(r)?.bref(), "verified".to_string(), r.get::<_, String>(11)?)),
            )
            .optional()?;
        let found = match found {
            Some(f) => Some(f),
            None => conn
                .query_row(
                    "SELECT object_key, problem, COALESCE(event_type, ''), at_claimed FROM integrity WHERE client_id = ?1 AND host_id = ?2 AND bundle_id = ?3 ORDER BY object_key LIMIT 1",
                    params![client, host, bundle_id],
                    |r| {
                        let at: Option<i64> = r.get(3)?;
                        Ok((
                            BundleRef { bundle_id: bundle_id.into(), object_key: r.get(0)?, generated_at: at.map(rfc).unwrap_or_default(), event_type: r.get(2)? },
                            format!("integrity error: {}", r.get::<_, String>(1)?),
                            String::new(),
                        ))
                    },
                )
                .optional()?,
        };
        let Some((bundle, verification, key_id)) = found else {
            return Ok(None);
        };
        let mut signature_objects = Vec::new();
        for suffix in [".sig", ".sshsig"] {
            let k = format!("{}{suffix}", bundle.object_key);
            if conn
                .query_row("SELECT 1 FROM objects WHERE key = ?1", [&k], |_| Ok(()))
                .optional()?
                .is_some()
            {
                signature_objects.push(k);
            }
        }
        drop(conn);
        let Some(source) = &self.source else {
            anyhow::bail!(
                "the index has no source attached (Index::with_source) to fetch {}",
                bundle.object_key
            );
        };
        let json = String::from_utf8_lossy(&source.get(&bundle.object_key)?).into_owned();
        let f = format!("{}.json", bundle.bundle_id);
        let stock_commands = vec![
            format!("ssh-keygen -Y verify -f allowed_signers -I msp-evidence -n msp-evidence -s {f}.sshsig < {f}"),
            format!("openssl pkeyutl -verify -pubin -inkey evidence-signing.pub.pem -rawin -in {f} -sigfile {f}.sig"),
            format!("sha256sum {f}"),
        ];
        Ok(Some(BundleView {
            client_id: client.into(),
            host_id: host.into(),
            bundle,
            verification,
            key_id,
            signature_objects,
            json,
            stock_commands,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, ts: i64, seq: i64, f: RuleFields) -> Row {
        Row {
            object_key: key.into(),
            bundle_id: key.into(),
            generated_at: rfc(ts),
            gen_ts: ts,
            sequence: seq,
            fields: f,
        }
    }

    fn restore(status: &str) -> RuleFields {
        RuleFields {
            event_type: "restore_test_due".into(),
            runbook_id: "RB-RESTORE-001".into(),
            resolution_status: status.into(),
            ..Default::default()
        }
    }

    #[test]
    fn newest_relevant_failure_fails_freshness_bounds_stale_and_integrity_wins() {
        let rule = EvidenceRule::Runbook {
            id: "RB-RESTORE-001".into(),
            status: "resolved".into(),
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        let t = now.timestamp();
        let ok = row("a", t - 3600, 1, restore("resolved"));
        let failed = row("b", t - 60, 2, restore("failed"));
        let ev = RuleEval {
            relevant: Some(failed.clone()),
            qualifying: Some(ok.clone()),
        };
        assert_eq!(verdict(&rule, 192, &ev, &[], "", now).0, ControlState::Failing);
        let ev = RuleEval {
            relevant: Some(ok.clone()),
            qualifying: Some(ok.clone()),
        };
        assert_eq!(
            verdict(&rule, 1, &ev, &[], "", now).0,
            ControlState::Passing,
            "exactly at the freshness bound"
        );
        let older = row("c", t - 3601, 1, restore("resolved"));
        let ev2 = RuleEval {
            relevant: Some(older.clone()),
            qualifying: Some(older),
        };
        assert_eq!(verdict(&rule, 1, &ev2, &[], "", now).0, ControlState::Stale);
        assert_eq!(verdict(&rule, 1, &RuleEval::default(), &[], "", now).0, ControlState::Failing);
        // An older failed object that the rule would have looked at still marks it.
        let err = IntegrityRow {
            object_key: "x".into(),
            bundle_id: None,
            problem: "bad".into(),
            at: Some(t - 7200),
            fields: Some(restore("resolved")),
        };
        assert_eq!(verdict(&rule, 192, &ev, &[err], "", now).0, ControlState::IntegrityError);
        // An unrelated older one does not; an unrelated newer one does.
        let hb = RuleFields {
            event_type: "heartbeat".into(),
            runbook_id: "none".into(),
            resolution_status: "recorded".into(),
            ..Default::default()
        };
        let old = IntegrityRow {
            object_key: "y".into(),
            bundle_id: None,
            problem: "bad".into(),
            at: Some(t - 7200),
            fields: Some(hb.clone()),
        };
        assert_eq!(verdict(&rule, 192, &ev, &[old], "", now).0, ControlState::Passing);
        let new = IntegrityRow {
            object_key: "z".into(),
            bundle_id: None,
            problem: "bad".into(),
            at: Some(t - 10),
            fields: Some(hb),
        };
        assert_eq!(
            verdict(
                &rule,
                192,
                &RuleEval {
                    relevant: Some(ok.clone()),
                    qualifying: Some(ok)
                },
                &[new],
                "",
                now
            )
            .0,
            ControlState::IntegrityError
        );
    }
}
