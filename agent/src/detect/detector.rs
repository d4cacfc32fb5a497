//! The detector: applies [`super::rules::RULES`] to journal entries and turns probe
//! findings into incidents, with incident ids, unit validation and dedupe.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::ids::IncidentIds;
use super::logins::{LoginEvent, LoginRules, LoginWatch};
use super::mounts::{self, Mount};
use super::no_space::NoSpaceLines;
use super::probes::Finding;
use super::rules::{first_match, Rule, UnitFrom, RULES};
use super::text::{clean, MAX_DETAIL_CHARS};
use super::unit_name::is_valid_unit_name;
use crate::incident::{event_type, Incident, IncidentSource, Severity};
use crate::journal::Entry;

/// Detector settings.
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// This host's name, recorded in every incident.
    pub host: String,
    /// Unit-name globs (`*` matches any run of characters) whose failures are
    /// `backup_failure` rather than `service_crash`.
    pub backup_units: Vec<String>,
    /// Lines about the same failure (same event type and unit) within this many seconds of
    /// the first one are one incident: systemd logs "Main process exited", "Failed with
    /// result", "Start request repeated too quickly" and "Failed to start" for one failure.
    pub dedupe_window_secs: u64,
    /// Break-glass account and failed log-in thresholds.
    pub logins: LoginRules,
    /// The mount table disk-full incidents are resolved against; `None`: this machine's
    /// `/proc/self/mountinfo`, read when needed.
    pub mount_table: Option<Vec<Mount>>,
    /// The paths a unit is configured with (rule 3 of [`super::mounts`]); the daemon asks
    /// systemd, `detect` on a journal file has no such source.
    pub unit_paths: Option<fn(&str) -> Vec<std::path::PathBuf>>,
}

impl DetectConfig {
    /// Defaults: this machine's hostname, backup units `restic-backups-*.service` and
    /// `*backup*.service`, a 60 s dedupe window.
    pub fn new() -> DetectConfig {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_string());
        DetectConfig {
            host,
            backup_units: vec!["restic-backups-*.service".into(), "*backup*.service".into()],
            dedupe_window_secs: 60,
            logins: LoginRules::default(),
            mount_table: None,
            unit_paths: None,
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Fields copied into `details` when present (besides `MESSAGE`), each bounded and cleaned.
const DETAIL_FIELDS: &[(&str, &str)] = &[
    ("MESSAGE_ID", "message_id"),
    ("UNIT_RESULT", "unit_result"),
    ("EXIT_CODE", "exit_code"),
    ("EXIT_STATUS", "exit_status"),
    ("JOB_RESULT", "job_result"),
    ("SYSLOG_IDENTIFIER", "syslog_identifier"),
    ("_COMM", "comm"),
    ("PRIORITY", "priority"),
    ("_BOOT_ID", "boot_id"),
    ("_HOSTNAME", "journal_hostname"),
];

/// Characters kept of a detail field other than the message.
const MAX_FIELD_CHARS: usize = 256;

/// Turns entries and findings into incidents.
#[derive(Debug)]
pub struct Detector {
    cfg: DetectConfig,
    rules: &'static [Rule],
    ids: IncidentIds,
    /// (event type, unit key) → realtime (µs) of the first line of the current episode.
    recent: HashMap<(&'static str, String), u64>,
    /// Break-glass use and failed log-in bursts.
    logins: LoginWatch,
    /// Units' own out-of-space lines.
    no_space: NoSpaceLines,
}

impl Detector {
    /// A detector with the standard [`RULES`].
    pub fn new(cfg: DetectConfig, ids: IncidentIds) -> Detector {
        let logins = LoginWatch::new(cfg.logins.clone());
        Detector { cfg, rules: RULES, ids, recent: HashMap::new(), logins, no_space: NoSpaceLines::default() }
    }

    /// Look at one entry; `Some` when it is a new incident (`None` for ordinary traffic and
    /// for further lines of an incident already raised). `now` becomes `detected_at` and
    /// picks the day of the incident id. Errors only come from persisting the id counter.
    pub fn observe(&mut self, e: &Entry, now: DateTime<Utc>) -> Result<Option<Incident>> {
        match self.observe_unnumbered(e, now) {
            Some(mut incident) => {
                incident.incident_id = self.ids.next(now)?;
                Ok(Some(incident))
            }
            None => Ok(None),
        }
    }

    /// [`Detector::observe`] without allocating an incident id (`incident_id` is empty). The
    /// daemon numbers an incident only when it leaves a record, so a storm of suppressed
    /// repeats cannot exhaust the day's id sequence.
    pub fn observe_unnumbered(&mut self, e: &Entry, now: DateTime<Utc>) -> Option<Incident> {
        let realtime = e.realtime_usec().unwrap_or_else(|| now.timestamp_micros().max(0) as u64);
        if let Some(ev) = self.logins.observe(e, realtime) {
            return self.login_incident(ev, e, realtime, now);
        }
        if let Some(k) = super::kernel::no_space(e) {
            return self.kernel_no_space(k, e, realtime, now);
        }
        self.no_space.note(e, realtime);
        let rule = first_match(self.rules, e)?;
        let mut details = self.entry_details(rule.name, e);
        let raw_unit = match rule.unit {
            UnitFrom::UnitField => e.get("UNIT"),
            UnitFrom::OwnUnit => e.get("_SYSTEMD_UNIT"),
            UnitFrom::None => None,
        };
        let unit = raw_unit.and_then(|u| std::str::from_utf8(u).ok()).filter(|u| is_valid_unit_name(u)).map(str::to_string);
        if let (Some(raw), None) = (raw_unit, &unit) {
            // Keep what the entry claimed, defanged, for the auditor; never as a target.
            details.insert("unit_invalid".into(), json!(clean(raw, MAX_FIELD_CHARS)));
        }
        let mut event = rule.event_type;
        if rule.unit_failure && unit.as_deref().is_some_and(|u| self.is_backup_unit(u)) {
            event = event_type::BACKUP_FAILURE;
        }
        if rule.unit_failure {
            if let Some(u) = unit.as_deref() {
                if let Some(line) = self.no_space.recent(u, realtime).cloned() {
                    return self.job_no_space(u, &line, details, e, realtime, now);
                }
            }
        }
        let key_unit = unit.clone().or_else(|| details.get("unit_invalid").and_then(|v| v.as_str()).map(str::to_string)).unwrap_or_default();
        if self.is_repeat(event, key_unit, realtime) {
            return None;
        }
        Some(self.journal_incident(event, rule.severity, unit, details, e, realtime, now))
    }

    /// A unit failed right after its own out-of-space line: `disk_full` on the mount it
    /// wrote to, with `retry_unit` so that RB-DISK-001 starts the job again once the space
    /// is back. `unit` stays in `details` (the incident's target is the mount).
    fn job_no_space(
        &mut self,
        unit: &str,
        line: &super::no_space::NoSpaceLine,
        mut details: BTreeMap<String, Value>,
        e: &Entry,
        realtime: u64,
        now: DateTime<Utc>,
    ) -> Option<Incident> {
        if self.is_repeat(event_type::DISK_FULL, unit.to_string(), realtime) {
            return None;
        }
        details.insert("failure_rule".into(), details.get("rule").cloned().unwrap_or(Value::Null));
        details.insert("rule".into(), json!("unit-failed-no-space"));
        details.insert("unit".into(), json!(unit));
        details.insert("retry_unit".into(), json!(unit));
        // Metadata only: the application's line as a hash and a length, the path it named
        // as a hash (a file name can name a patient); the mount is what the repair needs.
        details.insert("no_space_message_sha256".into(), json!(line.message_sha256));
        details.insert("no_space_message_bytes".into(), json!(line.message_bytes));
        let table = self.mount_table();
        let by_path = line.paths.iter().find_map(|p| mounts::mount_of_path(&table, p).map(|m| (m, p)));
        let (mount, from) = if let Some((m, p)) = by_path {
            details.insert("path_sha256".into(), json!(crate::evidence::store::sha256_hex(p.as_os_str().as_encoded_bytes())));
            (Some(m.point.clone()), "path_in_message")
        } else {
            let configured: Vec<&Mount> = self
                .cfg
                .unit_paths
                .map(|f| f(unit))
                .unwrap_or_default()
                .iter()
                .filter_map(|p| mounts::mount_of_path(&table, p))
                .collect();
            match mounts::fullest(configured, mounts::used_percent) {
                Some(m) => (Some(m.point.clone()), "unit_configured_paths"),
                None => (mounts::fullest_data_fs(&table, mounts::used_percent).map(|m| m.point.clone()), "fullest_filesystem"),
            }
        };
        self.disk_incident(details, mount, from, Severity::High, e, realtime, now)
    }

    /// The kernel's own out-of-space message: `disk_full` on the device's mount.
    fn kernel_no_space(&mut self, k: super::kernel::KernelNoSpace, e: &Entry, realtime: u64, now: DateTime<Utc>) -> Option<Incident> {
        if self.is_repeat(event_type::DISK_FULL, format!("kernel:{}", k.device), realtime) {
            return None;
        }
        let mut details = self.entry_details("kernel-no-space-left", e);
        details.insert("kernel_form".into(), json!(k.form));
        details.insert("device".into(), json!(k.device));
        let table = self.mount_table();
        let (mount, from) = match mounts::mount_of_device(&table, &k.device) {
            Some(m) => (Some(m.point.clone()), "kernel_device"),
            None => (mounts::fullest_data_fs(&table, mounts::used_percent).map(|m| m.point.clone()), "fullest_filesystem"),
        };
        self.disk_incident(details, mount, from, Severity::Critical, e, realtime, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn disk_incident(
        &self,
        mut details: BTreeMap<String, Value>,
        mount: Option<std::path::PathBuf>,
        from: &str,
        severity: Severity,
        e: &Entry,
        realtime: u64,
        now: DateTime<Utc>,
    ) -> Option<Incident> {
        match mount {
            Some(m) => {
                details.insert("mount".into(), json!(m.display().to_string()));
                details.insert("mount_from".into(), json!(from));
            }
            // No mount table at all: RB-DISK-001's default (/) applies, said so.
            None => {
                details.insert("mount_from".into(), json!("none (runbook default)"));
            }
        }
        Some(self.journal_incident(event_type::DISK_FULL, severity, None, details, e, realtime, now))
    }

    /// Break-glass use (critical, always a person's) or a failed log-in burst (high).
    fn login_incident(&mut self, ev: LoginEvent, e: &Entry, realtime: u64, now: DateTime<Utc>) -> Option<Incident> {
        let at = |usec: u64| {
            DateTime::<Utc>::from_timestamp_micros(i64::try_from(usec).unwrap_or(i64::MAX)).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        };
        match ev {
            LoginEvent::BreakGlass(u) => {
                // sshd's acceptance and logind's session start of one log-in are one incident.
                if self.is_repeat(event_type::BREAK_GLASS_LOGIN, u.account.clone(), realtime) {
                    return None;
                }
                let mut d = BTreeMap::new();
                d.insert("rule".into(), json!(format!("break-glass-{}", u.via)));
                d.insert("account".into(), json!(u.account));
                d.insert("at".into(), json!(at(realtime)));
                d.insert("via".into(), json!(u.via));
                if let Some((addr, port)) = u.source {
                    d.insert("source_address".into(), json!(addr.to_string()));
                    d.insert("source_port".into(), json!(port));
                }
                if let Some(m) = u.method {
                    d.insert("method".into(), json!(clean(m.as_bytes(), 64)));
                }
                if let Some(k) = u.key {
                    d.insert("key".into(), json!(clean(k.as_bytes(), 128)));
                }
                if let Some(s) = u.session_id {
                    d.insert("session_id".into(), json!(clean(s.as_bytes(), 32)));
                }
                if let Some(c) = e.get("_COMM") {
                    d.insert("comm".into(), json!(clean(c, 32)));
                }
                Some(self.journal_incident(event_type::BREAK_GLASS_LOGIN, Severity::Critical, None, d, e, realtime, now))
            }
            LoginEvent::Burst(b) => {
                let mut d = BTreeMap::new();
                d.insert("rule".into(), json!("ssh-login-failures"));
                d.insert("source_address".into(), json!(b.source.to_string()));
                d.insert("failures".into(), json!(b.failures));
                d.insert("threshold".into(), json!(self.cfg.logins.failure_threshold));
                d.insert("window_seconds".into(), json!(self.cfg.logins.failure_window_secs));
                d.insert("first_failure_at".into(), json!(at(b.first_usec)));
                d.insert("last_failure_at".into(), json!(at(b.last_usec)));
                d.insert("distinct_users".into(), json!(b.distinct_users));
                d.insert("invalid_user_attempts".into(), json!(b.invalid_user_attempts));
                d.insert("root_targeted".into(), json!(b.root_targeted));
                d.insert("break_glass_targeted".into(), json!(b.break_glass_targeted));
                d.insert("methods".into(), json!(b.methods));
                Some(self.journal_incident(event_type::LOGIN_FAILURES, Severity::High, None, d, e, realtime, now))
            }
        }
    }

    /// `rule` plus the entry's message and detail fields, cleaned.
    fn entry_details(&self, rule: &str, e: &Entry) -> BTreeMap<String, Value> {
        let mut details: BTreeMap<String, Value> = BTreeMap::new();
        details.insert("rule".into(), json!(rule));
        if let Some(m) = e.get("MESSAGE") {
            details.insert("message".into(), json!(clean(m, MAX_DETAIL_CHARS)));
        }
        for (field, key) in DETAIL_FIELDS {
            if let Some(v) = e.get(field) {
                details.insert((*key).into(), json!(clean(v, MAX_FIELD_CHARS)));
            }
        }
        details
    }

    #[allow(clippy::too_many_arguments)]
    fn journal_incident(
        &self,
        event: &str,
        severity: Severity,
        unit: Option<String>,
        mut details: BTreeMap<String, Value>,
        e: &Entry,
        realtime: u64,
        now: DateTime<Utc>,
    ) -> Incident {
        if e.truncated() {
            details.insert("entry_truncated".into(), json!(true));
        }
        Incident {
            incident_id: String::new(),
            event_type: event.to_string(),
            severity,
            host: self.cfg.host.clone(),
            detected_at: now,
            source: IncidentSource::Journal { cursor: e.cursor().unwrap_or_default().to_string(), realtime_usec: realtime },
            unit,
            details,
        }
    }

    fn mount_table(&self) -> Vec<Mount> {
        self.cfg.mount_table.clone().unwrap_or_else(mounts::read_mount_table)
    }

    /// An incident for a probe finding (probes run on the daemon's schedule; suppressing
    /// repeats of a standing condition is the guard's cooldown, not the detector's).
    pub fn probe_incident(&mut self, finding: &Finding, now: DateTime<Utc>) -> Result<Incident> {
        let mut incident = self.probe_incident_unnumbered(finding, now);
        incident.incident_id = self.ids.next(now)?;
        Ok(incident)
    }

    /// [`Detector::probe_incident`] without an id (see [`Detector::observe_unnumbered`]).
    pub fn probe_incident_unnumbered(&self, finding: &Finding, now: DateTime<Utc>) -> Incident {
        let (event, severity, probe, unit, details) = finding.describe();
        let unit = unit.filter(|u| is_valid_unit_name(u));
        Incident {
            incident_id: String::new(),
            event_type: event.to_string(),
            severity,
            host: self.cfg.host.clone(),
            detected_at: now,
            source: IncidentSource::Probe { probe: probe.to_string() },
            unit,
            details,
        }
    }

    /// A fresh incident id (for records that are not about one detected incident, such as
    /// a suppression summary).
    pub fn next_incident_id(&mut self, now: DateTime<Utc>) -> Result<String> {
        self.ids.next(now)
    }

    fn is_backup_unit(&self, unit: &str) -> bool {
        self.cfg.backup_units.iter().any(|p| crate::glob::glob_match(p, unit))
    }

    /// True when (event, unit) already raised an incident within the dedupe window.
    fn is_repeat(&mut self, event: &'static str, unit: String, realtime: u64) -> bool {
        let window = self.cfg.dedupe_window_secs.saturating_mul(1_000_000);
        if self.recent.len() > 4096 {
            // Bound memory under a flood of distinct (hostile) unit names.
            self.recent.retain(|_, t| realtime.saturating_sub(*t) <= window);
            if self.recent.len() > 4096 {
                self.recent.clear();
            }
        }
        match self.recent.get(&(event, unit.clone())) {
            Some(&first) if realtime >= first && realtime - first <= window => true,
            _ => {
                self.recent.insert((event, unit), realtime);
                false
            }
        }
    }
}


/// Severity helper for probes (kept here so all severities are in the detect module).
pub(crate) fn cert_severity(days_left: i64) -> Severity {
    if days_left <= 7 { Severity::Critical } else { Severity::High }
}

#[cfg(test)]
mod tests {
    use super::*;


    fn pid1(unit: &str, msg: &str, id: Option<&str>, t: u64) -> Entry {
        let t = t.to_string();
        let mut f: Vec<(&str, &[u8])> = vec![
            ("__CURSOR", b"s=x;i=1"), ("__REALTIME_TIMESTAMP", t.as_bytes()), ("_PID", b"1"),
            ("_SYSTEMD_UNIT", b"init.scope"), ("UNIT", unit.as_bytes()), ("MESSAGE", msg.as_bytes()),
        ];
        if let Some(id) = id {
            f.push(("MESSAGE_ID", id.as_bytes()));
        }
        Entry::from_fields(f)
    }

    #[test]
    fn one_failure_is_one_incident_and_success_is_none() {
        let mut d = Detector::new(DetectConfig::new(), IncidentIds::in_memory());
        let now = Utc::now();
        let a = pid1("nginx.service", "nginx.service: Main process exited, code=exited, status=1/FAILURE", Some(super::super::rules::MSG_UNIT_PROCESS_EXIT), 1_000_000);
        let b = pid1("nginx.service", "nginx.service: Failed with result 'exit-code'.", Some(super::super::rules::MSG_UNIT_FAILURE_RESULT), 1_000_500);
        let i = d.observe(&a, now).unwrap().unwrap();
        assert_eq!(i.unit.as_deref(), Some("nginx.service"));
        assert!(d.observe(&b, now).unwrap().is_none());
        // Same unit much later: a new failure.
        let c = pid1("nginx.service", "nginx.service: Failed with result 'exit-code'.", None, 1_000_000 + 120_000_000);
        assert!(d.observe(&c, now).unwrap().is_some());
        let ok = pid1("x.service", "x.service: Main process exited, code=killed, status=15/TERM (success)", Some(super::super::rules::MSG_UNIT_PROCESS_EXIT), 5);
        assert!(d.observe(&ok, now).unwrap().is_none());
    }

    #[test]
    fn forged_pid1_fields_from_a_service_do_not_count() {
        let mut d = Detector::new(DetectConfig::new(), IncidentIds::in_memory());
        let e = Entry::from_fields([
            ("_PID", &b"4242"[..]), ("_SYSTEMD_UNIT", b"evil.service"), ("UNIT", b"sshd.service"),
            ("MESSAGE_ID", super::super::rules::MSG_UNIT_FAILURE_RESULT.as_bytes()), ("MESSAGE", b"sshd.service: Failed with result 'exit-code'."),
        ]);
        assert!(d.observe(&e, Utc::now()).unwrap().is_none());
    }
}
