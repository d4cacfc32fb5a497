//! Backup-age check (`backup.max_age_hours`): the newest successful run of each backup unit,
//! from the `backup_completed` records the agent writes (daemon::records). At start the
//! store's current and previous month are read; the daemon then tells [`BackupAges::observe`]
//! about each record it writes. A unit without a record counts from the agent's first start
//! on this host, so a backup that never ran becomes stale too, one `max_age_hours` later.
//!
//! Reading two months is enough for any `max_age_hours` under four weeks: a unit whose last
//! record is older than the previous month is stale either way.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, Duration, Utc};

use crate::incident::event_type::BACKUP_COMPLETED;

/// Newest successful run per backup unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupAges {
    last: BTreeMap<String, DateTime<Utc>>,
}

/// A unit without a successful backup for longer than the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Stale {
    /// The backup unit.
    pub unit: String,
    /// Its newest successful run (`None`: none since the agent's first start).
    pub last_success: Option<DateTime<Utc>>,
    /// Hours since then (or since the first start).
    pub age_hours: f64,
}

impl BackupAges {
    /// Read the `backup_completed` records of `now`'s month and the one before.
    pub fn scan(evidence_dir: &Path, now: DateTime<Utc>) -> Result<BackupAges> {
        let mut ages = BackupAges::default();
        let this = now.date_naive().with_day(1).unwrap_or(now.date_naive());
        let prev = this.pred_opt().unwrap_or(this);
        for d in [prev, this] {
            let dir = evidence_dir.join(format!("{:04}", d.year())).join(format!("{:02}", d.month()));
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
            };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if !(name.starts_with("EB-") && name.ends_with(".json")) {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&p) else { continue };
                // Cheap filter before parsing: most bundles are not backup records.
                if memchr::memmem::find(&bytes, BACKUP_COMPLETED.as_bytes()).is_none() {
                    continue;
                }
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
                let inc = &v["incident"];
                if inc["event_type"] != BACKUP_COMPLETED {
                    continue;
                }
                let Some(unit) = inc["details"]["unit"].as_str() else { continue };
                let at = inc["details"]["journal_realtime_usec"]
                    .as_u64()
                    .and_then(|u| DateTime::<Utc>::from_timestamp_micros(u as i64))
                    .or_else(|| inc["detected_at"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc)));
                if let Some(at) = at {
                    ages.observe(unit, at);
                }
            }
        }
        Ok(ages)
    }

    /// A successful run of `unit` at `at`.
    pub fn observe(&mut self, unit: &str, at: DateTime<Utc>) {
        let e = self.last.entry(unit.to_string()).or_insert(at);
        if at > *e {
            *e = at;
        }
    }

    /// The newest run of `unit`.
    pub fn last(&self, unit: &str) -> Option<DateTime<Utc>> {
        self.last.get(unit).copied()
    }

    /// The units to judge: `configured`, or when that is empty every unit with a record.
    pub fn units(&self, configured: &[String]) -> Vec<String> {
        if configured.is_empty() {
            self.last.keys().cloned().collect()
        } else {
            configured.to_vec()
        }
    }

    /// Units whose newest success (or, with none, `since`) is more than `max_age_hours` before
    /// `now`.
    pub fn stale(&self, units: &[String], max_age_hours: u32, since: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Stale> {
        let limit = Duration::hours(i64::from(max_age_hours));
        units
            .iter()
            .filter_map(|u| {
                let last = self.last(u);
                let from = last.unwrap_or(since);
                let age = now - from;
                (age > limit).then(|| Stale { unit: u.clone(), last_success: last, age_hours: (age.num_seconds() as f64 / 360.0).round() / 10.0 })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stale_boundary_and_never_ran() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 10, 2, 0, 0).unwrap();
        let mut a = BackupAges::default();
        a.observe("restic-backups-daily.service", t0);
        a.observe("restic-backups-daily.service", t0 - Duration::hours(5));
        let units = vec!["restic-backups-daily.service".to_string(), "restic-backups-db.service".to_string()];
        let since = t0 + Duration::hours(1);
        // Exactly the limit is not stale.
        assert!(a.stale(&units[..1], 26, since, t0 + Duration::hours(26)).is_empty());
        let s = a.stale(&units, 26, since, t0 + Duration::hours(26) + Duration::seconds(1));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].unit, "restic-backups-daily.service");
        let s = a.stale(&units, 26, since, t0 + Duration::hours(30));
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].last_success, None);
        assert_eq!(a.units(&[]), vec!["restic-backups-daily.service".to_string()]);
    }
}
