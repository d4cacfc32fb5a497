//! The owner thread's side of the agent checks ([`crate::checks`]): the outcomes decided at
//! start, the periodic round of baseline probes (clock, system age, backup age, TLS), the
//! incidents of violations (raised on the change to violated, again every
//! `probes.violation_repeat_minutes` while it lasts), and the SLA deadlines.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::Utc;
use serde_json::{json, Value};

use super::{records, Daemon};
use crate::checks::{clock, event_type as ev, id, system_age, tls, Status};
use crate::incident::{Incident, IncidentSource, Severity};
use crate::runbook::exec::rfc3339;

impl Daemon {
    /// Outcomes fixed at start: the configuration passed [`crate::config::Config::check_policy`]
    /// (or the daemon would not be running), the journal checks are loaded, the runbooks the
    /// baseline lists are loaded (a missing one is escalated now).
    pub(super) fn start_checks(&mut self) -> Result<()> {
        let now = Utc::now();
        let p = self.policy.clone();
        let b = &mut self.board;
        match &self.cfg.worm {
            Some(w) => b.set(id::WORM_RETENTION, Status::Holds, now, json!({ "retention_days": w.retention_days, "baseline_min_days": p.worm_retention_days_min })),
            // Without WORM storage nothing is retained for years: not a pass, and the packet
            // shows the control failing for want of a record.
            None => b.set(id::WORM_RETENTION, Status::Error, now, json!("no worm: section: evidence is kept locally only")),
        }
        b.set(id::EVIDENCE_SIGNING, Status::Holds, now, json!({ "algorithm": crate::keys::ALGORITHM, "key_id": self.signer.key_id() }));
        b.set(id::PHI_BOUNDARY, Status::Holds, now, json!({ "boundary": p.phi_boundary }));
        b.set(id::EXCERPT_BOUND, Status::Holds, now, json!({ "max_bytes": self.cfg.evidence_excerpt_max_bytes, "baseline_max_bytes": p.evidence_excerpt_max_bytes }));
        // The scrubber in this binary must redact a sample of every pattern the baseline
        // names (checked by behaviour, not by name: whatever builds the filter).
        let missed: Vec<String> = p.scrub_patterns.iter().filter(|k| !scrub_redacts(k)).cloned().collect();
        if missed.is_empty() {
            b.set(id::SCRUB_PATTERNS, Status::Holds, now, json!({ "patterns": p.scrub_patterns }));
        } else {
            b.set(id::SCRUB_PATTERNS, Status::Violated, now, json!({ "patterns": p.scrub_patterns, "not_redacted": missed }));
        }
        b.set(id::HEARTBEAT, Status::Holds, now, json!({ "interval_seconds": self.cfg.heartbeat_interval_seconds(), "baseline_max_minutes": p.heartbeat_interval_minutes }));
        b.set(id::ESCALATION, Status::Holds, now, json!({ "webhook": self.cfg.alert.webhook_url.is_some() }));
        b.set(id::SLA_CLOCK, Status::Holds, now, json!({ "open": 0 }));
        for j in [id::BREAK_GLASS_LOGIN, id::LOGIN_FAILURES] {
            if self.cfg.journal.enabled {
                b.set(j, Status::Watching, now, json!("journal rule active"));
            } else {
                b.set(j, Status::Disabled, now, json!("journal.enabled is false"));
            }
        }
        if let Some(Value::Array(missed)) = self.board.get(id::SCRUB_PATTERNS).map(|o| o.detail["not_redacted"].clone()) {
            self.raise("check_failed", None, None, None, format!("phi.scrub_patterns: the scrubber does not redact {missed:?}"));
        }
        let loaded: Vec<&str> = self.runbooks.iter().map(|r| r.id.as_str()).collect();
        let missing: Vec<String> = p.runbooks.iter().filter(|r| !loaded.contains(&r.as_str())).cloned().collect();
        if missing.is_empty() {
            self.board.set(id::RUNBOOKS_LOADED, Status::Holds, now, json!({ "runbooks": p.runbooks }));
        } else {
            // Alerted now; the signed record of it is every heartbeat's `checks` board (a host
            // may legitimately run a subset, e.g. in tests; the packet shows the violation).
            tracing::warn!(missing = ?missing, "runbooks the baseline lists are not loaded");
            self.raise(
                ev::RUNBOOK_MISSING,
                None,
                None,
                None,
                format!("runbooks listed in incident.runbooks are not loaded from {}: {}", self.cfg.runbooks_dir.display(), missing.join(", ")),
            );
            self.board.set(id::RUNBOOKS_LOADED, Status::Violated, now, json!({ "missing": missing }));
        }
        Ok(())
    }

    /// One round of the baseline probes.
    pub(super) fn run_policy_checks(&mut self) -> Result<()> {
        let now = Utc::now();
        let p = self.cfg.probes.clone();
        let pol = self.policy.clone();

        // Clock.
        if p.clock.enabled {
            let probe = clock::ClockProbe { source: Some(p.clock.source), chronyc_socket: p.clock.chronyc_socket.clone() };
            match probe.read() {
                Ok(r) => {
                    let detail = json!({ "source": r.source, "reference": r.reference, "offset_ms": round3(r.offset_ms), "max_drift_ms": pol.max_drift_ms });
                    if r.offset_ms > pol.max_drift_ms as f64 {
                        self.board.set(id::CLOCK_DRIFT, Status::Violated, now, detail.clone());
                        let inc = self.check_incident(ev::CLOCK_DRIFT, id::CLOCK_DRIFT, Severity::High, None, to_map(detail));
                        self.violation(id::CLOCK_DRIFT, "host", inc)?;
                    } else {
                        self.board.set(id::CLOCK_DRIFT, Status::Holds, now, detail);
                        self.cleared(id::CLOCK_DRIFT, "host");
                    }
                }
                Err(e) => self.check_error(id::CLOCK_DRIFT, &e),
            }
        } else {
            self.board.set(id::CLOCK_DRIFT, Status::Disabled, now, json!("probes.clock.enabled is false"));
        }

        // System age.
        if p.system_age.enabled {
            match system_age::measure(&self.cfg.provenance.current_system_link, &p.system_age.profiles_dir, now) {
                Ok(a) => {
                    let detail = json!({
                        "system": a.system, "generation_created": rfc3339(a.created), "from": a.from,
                        "age_days": a.age_days, "max_system_age_days": pol.max_system_age_days,
                    });
                    if now - a.created > chrono::Duration::days(i64::from(pol.max_system_age_days)) {
                        self.board.set(id::SYSTEM_AGE, Status::Violated, now, detail.clone());
                        let inc = self.check_incident(ev::SYSTEM_OUTDATED, id::SYSTEM_AGE, Severity::Medium, None, to_map(detail));
                        self.violation(id::SYSTEM_AGE, "host", inc)?;
                    } else {
                        self.board.set(id::SYSTEM_AGE, Status::Holds, now, detail);
                        self.cleared(id::SYSTEM_AGE, "host");
                    }
                }
                Err(e) => self.check_error(id::SYSTEM_AGE, &e),
            }
        } else {
            self.board.set(id::SYSTEM_AGE, Status::Disabled, now, json!("probes.system_age.enabled is false"));
        }

        // Backup age.
        if p.backup_age.enabled {
            let units = self.backup_ages.units(&p.backup_age.units);
            if units.is_empty() {
                self.check_error(id::BACKUP_AGE, &anyhow::anyhow!("no backup unit configured (probes.backup_age.units) and none has a backup_completed record yet"));
            } else {
                let stale = self.backup_ages.stale(&units, pol.backup_max_age_hours, self.first_start, now);
                let last: Value = units.iter().map(|u| (u.clone(), json!(self.backup_ages.last(u).map(rfc3339)))).collect::<serde_json::Map<_, _>>().into();
                let detail = json!({ "last_success": last, "max_age_hours": pol.backup_max_age_hours, "stale": stale.iter().map(|s| s.unit.clone()).collect::<Vec<_>>() });
                self.board.set(id::BACKUP_AGE, if stale.is_empty() { Status::Holds } else { Status::Violated }, now, detail);
                for u in &units {
                    if !stale.iter().any(|s| &s.unit == u) {
                        self.cleared(id::BACKUP_AGE, u);
                    }
                }
                for s in stale {
                    let d = to_map(json!({
                        "last_success": s.last_success.map(rfc3339), "age_hours": s.age_hours,
                        "max_age_hours": pol.backup_max_age_hours,
                        "counted_from": if s.last_success.is_some() { "last backup_completed record" } else { "agent first start" },
                    }));
                    let inc = self.check_incident(ev::BACKUP_STALE, id::BACKUP_AGE, Severity::High, Some(s.unit.clone()), d);
                    self.violation(id::BACKUP_AGE, &s.unit, inc)?;
                }
            }
        } else {
            self.board.set(id::BACKUP_AGE, Status::Disabled, now, json!("probes.backup_age.enabled is false"));
        }

        // TLS minimum.
        if !p.tls.enabled {
            self.board.set(id::TLS_MIN_VERSION, Status::Disabled, now, json!("probes.tls.enabled is false"));
        } else if p.tls.endpoints.is_empty() {
            self.check_error(id::TLS_MIN_VERSION, &anyhow::anyhow!("no TLS endpoint configured (probes.tls.endpoints)"));
        } else {
            match pol.tls_min() {
                Err(e) => self.check_error(id::TLS_MIN_VERSION, &e),
                Ok(min) => {
                    let timeout = Duration::from_secs(p.tls.timeout_seconds.max(1));
                    let mut results = serde_json::Map::new();
                    let mut worst = Status::Holds;
                    for ep in &p.tls.endpoints {
                        match tls::probe(ep, None, min, timeout) {
                            Ok(tls::Verdict::Refuses { modern }) => {
                                results.insert(ep.clone(), json!({ "refuses_below": pol.tls_min_version, "negotiated": modern }));
                                self.cleared(id::TLS_MIN_VERSION, ep);
                            }
                            Ok(tls::Verdict::Accepts(old)) => {
                                results.insert(ep.clone(), json!({ "accepts": old }));
                                worst = Status::Violated;
                                let d = to_map(json!({ "endpoint": ep, "accepted_protocols": old, "tls_min_version": pol.tls_min_version }));
                                let inc = self.check_incident(ev::TLS_OUTDATED, id::TLS_MIN_VERSION, Severity::High, None, d);
                                self.violation(id::TLS_MIN_VERSION, ep, inc)?;
                            }
                            Err(e) => {
                                results.insert(ep.clone(), json!({ "error": crate::detect::text::clean(format!("{e:#}").as_bytes(), 300) }));
                                if worst == Status::Holds {
                                    worst = Status::Error;
                                }
                            }
                        }
                    }
                    self.board.set(id::TLS_MIN_VERSION, worst, now, Value::Object(results));
                }
            }
        }
        self.check_key_age(now)?;
        Ok(())
    }

    /// The active signing key's age ([`crate::checks::key_age`]; no baseline rule): Medium
    /// `signing_key_old` past `keys.max_age_days`, Critical `signing_key_end_of_life` past
    /// `keys.end_of_life_days` or the key's `valid_until`. Each is a signed incident and an
    /// alert (no runbook answers them: a person rotates the key).
    fn check_key_age(&mut self, now: chrono::DateTime<Utc>) -> Result<()> {
        let k = self.cfg.keys.clone();
        if !k.check_age {
            self.board.set(id::SIGNING_KEY_AGE, Status::Disabled, now, json!("keys.check_age is false"));
            return Ok(());
        }
        let key_file = self.cfg.effective_signing_key_file();
        let dir = key_file.parent().unwrap_or(std::path::Path::new("."));
        match crate::checks::key_age::measure(dir, self.signer.key_id(), now, k.max_age_days, k.end_of_life_days) {
            Err(e) => self.check_error(id::SIGNING_KEY_AGE, &e),
            Ok(a) => {
                let detail = serde_json::to_value(&a).unwrap_or(Value::Null);
                let (event, severity) = match a.verdict {
                    crate::checks::key_age::Verdict::Fresh => {
                        self.board.set(id::SIGNING_KEY_AGE, Status::Holds, now, detail);
                        self.cleared(id::SIGNING_KEY_AGE, "signing_key");
                        return Ok(());
                    }
                    crate::checks::key_age::Verdict::Old => (ev::SIGNING_KEY_OLD, Severity::Medium),
                    crate::checks::key_age::Verdict::EndOfLife => (ev::SIGNING_KEY_END_OF_LIFE, Severity::Critical),
                };
                self.board.set(id::SIGNING_KEY_AGE, Status::Violated, now, detail.clone());
                let inc = self.check_incident(event, id::SIGNING_KEY_AGE, severity, None, to_map(detail));
                // One target per verdict: reaching end of life raises again although `old` stood.
                self.violation(id::SIGNING_KEY_AGE, event, inc)?;
            }
        }
        Ok(())
    }

    /// Escalate every incident whose SLA deadline has passed unresolved: a signed
    /// `sla_breach` escalation record (same incident id) and an alert, at the deadline.
    pub(super) fn check_sla_deadlines(&mut self) -> Result<()> {
        let now = Utc::now();
        for w in self.sla.due(now) {
            let mut inc = w.incident.clone();
            self.number(&mut inc)?;
            inc.details.insert("original_event_type".into(), json!(inc.event_type));
            inc.details.insert("sla_minutes".into(), json!(w.sla_minutes));
            inc.details.insert("sla_deadline".into(), json!(rfc3339(w.deadline)));
            inc.event_type = ev::SLA_BREACH.to_string();
            let reason = format!(
                "unresolved at its SLA deadline {} ({} min after detection): {}",
                rfc3339(w.deadline),
                w.sla_minutes,
                w.state.as_str()
            );
            let runbooks = std::sync::Arc::clone(&self.runbooks);
            let rb = w.runbook_id.as_deref().and_then(|id| runbooks.iter().find(|r| r.id == id));
            self.stats.escalated += 1;
            let written = self.append(records::escalation(&self.record_ctx(), &inc, rb, &reason, now))?;
            tracing::warn!(incident = %inc.incident_id, deadline = %rfc3339(w.deadline), "SLA deadline passed; escalated");
            self.raise(
                ev::SLA_BREACH,
                Some(&inc.incident_id),
                w.runbook_id.as_deref(),
                Some(&written.bundle_id),
                format!("{} on {}: {reason}", w.incident.event_type, super::target_of(&w.incident)),
            );
        }
        self.board.set(id::SLA_CLOCK, Status::Holds, now, json!({ "open": self.sla.len() }));
        Ok(())
    }

    fn check_incident(&self, event: &str, probe: &str, severity: Severity, unit: Option<String>, details: BTreeMap<String, Value>) -> Incident {
        Incident {
            incident_id: String::new(),
            event_type: event.to_string(),
            severity,
            host: self.host.clone(),
            detected_at: Utc::now(),
            source: IncidentSource::Probe { probe: probe.to_string() },
            unit,
            details,
        }
    }

    /// Raise `incident` for (check, target) unless it was raised within the repeat interval.
    fn violation(&mut self, check: &str, target: &str, incident: Incident) -> Result<()> {
        let key = (check.to_string(), target.to_string());
        let repeat = Duration::from_secs(self.cfg.probes.violation_repeat_minutes.saturating_mul(60));
        if self.violations.get(&key).is_some_and(|t| t.elapsed() < repeat) {
            return Ok(());
        }
        self.violations.insert(key, Instant::now());
        tracing::warn!(check, target, event = %incident.event_type, "agent check violated");
        self.handle_incident(incident, None)?;
        Ok(())
    }

    fn cleared(&mut self, check: &str, target: &str) {
        self.violations.remove(&(check.to_string(), target.to_string()));
    }

    /// A check that could not run: not evidence, logged and alerted once per change.
    fn check_error(&mut self, check: &str, e: &anyhow::Error) {
        let text = crate::detect::text::clean(format!("{e:#}").as_bytes(), 300);
        let was = self.board.get(check).map(|o| o.status);
        self.board.set(check, Status::Error, Utc::now(), json!(text));
        if was != Some(Status::Error) {
            tracing::warn!(check, error = %text, "agent check could not run");
            self.raise("check_failed", None, None, None, format!("agent check {check} could not run: {text}"));
        }
    }
}

/// Whether the scrubber removes a typical identifier of kind `kind` (an unknown kind: no).
fn scrub_redacts(kind: &str) -> bool {
    let sample = match kind {
        "email" => "jane.doe@example.org",
        "phone" => "(555) 123-4567",
        "ssn" => "123-45-6789",
        "mrn" => "MRN 12345678",
        _ => return false,
    };
    !crate::scrub::scrub(&format!("x {sample} y")).contains(sample)
}

fn to_map(v: Value) -> BTreeMap<String, Value> {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scrubber_redacts_every_baseline_pattern() {
        let policy = crate::policy::AgentPolicy::embedded().unwrap();
        for k in &policy.scrub_patterns {
            assert!(super::scrub_redacts(k), "{k}");
        }
        assert!(!super::scrub_redacts("passport"));
    }
}
