//! Successful backup runs, seen in the journal: the evidence that backups happen (the
//! `backup_completed` record, ARCHITECTURE.md "Records"), not an incident.
//!
//! systemd 252 logs, from PID 1, for one successful run of a oneshot backup unit:
//! "X.service: Deactivated successfully." (`MESSAGE_ID` SD_MESSAGE_UNIT_SUCCESS; older
//! versions say "Succeeded.") and "Finished X.service - ..." (SD_MESSAGE_UNIT_STARTED with
//! `JOB_RESULT=done`). Either one counts; lines for the same unit within [`DEDUPE_WINDOW_USEC`]
//! of the first are the same run, so one run is one record.

use std::collections::HashMap;

use super::rules::{origin_of, Origin};
use super::unit_name::is_valid_unit_name;
use crate::journal::Entry;

/// SD_MESSAGE_UNIT_SUCCESS: "Deactivated successfully." / "Succeeded.".
pub const MSG_UNIT_SUCCESS: &str = "7ad2d189f7e94e70a38c781354912448";
/// SD_MESSAGE_UNIT_STARTED: "Started X." / "Finished X." (`JOB_RESULT=done`).
pub const MSG_UNIT_STARTED: &str = "39f53479d3a045ac8e11786248231fbf";
/// Lines about one unit this close together (µs) are one run.
pub const DEDUPE_WINDOW_USEC: u64 = 60_000_000;

/// One successful backup run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupCompleted {
    pub unit: String,
    pub journal_cursor: String,
    pub journal_realtime_usec: u64,
}

/// Recognises successful runs of backup units (by the journal config's unit globs).
#[derive(Debug, Default)]
pub struct BackupWatch {
    patterns: Vec<String>,
    /// unit → realtime of the first line of its latest run.
    recent: HashMap<String, u64>,
}

impl BackupWatch {
    /// Watch units matching any of `patterns` (`*` globs, as `backup_unit_patterns`).
    pub fn new(patterns: Vec<String>) -> BackupWatch {
        BackupWatch { patterns, recent: HashMap::new() }
    }

    /// `Some` for the first line of a successful backup run. Call it for every entry read,
    /// including entries skipped as already handled, so the dedupe state is the same after a
    /// restart as it would have been without one.
    pub fn observe(&mut self, e: &Entry) -> Option<BackupCompleted> {
        if origin_of(e) != Origin::ServiceManager {
            return None;
        }
        let unit = std::str::from_utf8(e.get("UNIT")?).ok()?;
        if !is_valid_unit_name(unit) || !self.patterns.iter().any(|p| crate::glob::glob_match(p, unit)) {
            return None;
        }
        if !is_success_line(e, unit) {
            return None;
        }
        let realtime = e.realtime_usec().unwrap_or(0);
        if let Some(&first) = self.recent.get(unit) {
            if realtime >= first && realtime - first <= DEDUPE_WINDOW_USEC {
                return None;
            }
        }
        if self.recent.len() > 1024 {
            self.recent.clear();
        }
        self.recent.insert(unit.to_string(), realtime);
        Some(BackupCompleted {
            unit: unit.to_string(),
            journal_cursor: e.cursor().unwrap_or_default().to_string(),
            journal_realtime_usec: realtime,
        })
    }
}

fn is_success_line(e: &Entry, unit: &str) -> bool {
    let msg = e.get("MESSAGE").unwrap_or_default();
    match e.get("MESSAGE_ID") {
        Some(id) if id == MSG_UNIT_SUCCESS.as_bytes() => true,
        Some(id) if id == MSG_UNIT_STARTED.as_bytes() => {
            e.get("JOB_RESULT") == Some(b"done") && msg.starts_with(b"Finished ")
        }
        Some(_) => false,
        // No MESSAGE_ID (other systemd versions): the text.
        None => {
            let ok_suffix = |s: &[u8]| msg.strip_prefix(unit.as_bytes()).is_some_and(|r| r == s);
            ok_suffix(b": Deactivated successfully.")
                || ok_suffix(b": Succeeded.")
                || (msg.starts_with(b"Finished ") && memchr::memmem::find(msg, unit.as_bytes()).is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid1(unit: &str, msg: &str, id: Option<&str>, t: u64, cursor: &str) -> Entry {
        let t = t.to_string();
        let mut f: Vec<(&str, &[u8])> = vec![
            ("__CURSOR", cursor.as_bytes()), ("__REALTIME_TIMESTAMP", t.as_bytes()), ("_PID", b"1"),
            ("_SYSTEMD_UNIT", b"init.scope"), ("UNIT", unit.as_bytes()), ("MESSAGE", msg.as_bytes()),
            ("JOB_RESULT", b"done"),
        ];
        if let Some(id) = id {
            f.push(("MESSAGE_ID", id.as_bytes()));
        }
        Entry::from_fields(f)
    }

    #[test]
    fn one_successful_run_is_one_record() {
        let mut w = BackupWatch::new(vec!["restic-backups-*.service".into()]);
        let u = "restic-backups-daily.service";
        let a = pid1(u, "restic-backups-daily.service: Deactivated successfully.", Some(MSG_UNIT_SUCCESS), 1_000, "c1");
        let b = pid1(u, "Finished restic-backups-daily.service - restic backup daily.", Some(MSG_UNIT_STARTED), 2_000, "c2");
        let r = w.observe(&a).unwrap();
        assert_eq!((r.unit.as_str(), r.journal_cursor.as_str(), r.journal_realtime_usec), (u, "c1", 1_000));
        assert!(w.observe(&b).is_none(), "the Finished line of the same run");
        // The next day's run.
        let c = pid1(u, "Finished restic-backups-daily.service - restic backup daily.", Some(MSG_UNIT_STARTED), 86_400_000_000, "c3");
        assert!(w.observe(&c).is_some());
    }

    #[test]
    fn starts_other_units_and_forged_lines_are_not_backups() {
        let mut w = BackupWatch::new(vec!["restic-backups-*.service".into()]);
        let started = pid1("restic-backups-daily.service", "Started restic-backups-daily.service.", Some(MSG_UNIT_STARTED), 1, "c");
        assert!(w.observe(&started).is_none());
        let other = pid1("nginx.service", "nginx.service: Deactivated successfully.", Some(MSG_UNIT_SUCCESS), 1, "c");
        assert!(w.observe(&other).is_none());
        let forged = Entry::from_fields([
            ("_PID", &b"4242"[..]), ("_SYSTEMD_UNIT", b"evil.service"), ("UNIT", b"restic-backups-daily.service"),
            ("MESSAGE_ID", MSG_UNIT_SUCCESS.as_bytes()), ("MESSAGE", b"restic-backups-daily.service: Deactivated successfully."),
        ]);
        assert!(w.observe(&forged).is_none());
        let text_only = pid1("restic-backups-daily.service", "restic-backups-daily.service: Succeeded.", None, 5, "c9");
        assert!(w.observe(&text_only).is_some());
    }
}
