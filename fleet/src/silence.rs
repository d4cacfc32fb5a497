//! Silence tiers: is a host still sending evidence? Judged here, off the box, from the newest
//! verified evidence in the bucket (a host killed with `kill -9` cannot report its own death).

use chrono::{DateTime, Utc};

use crate::model::Silence;

/// The silence tier of a host whose newest verified evidence is `last_evidence`, given its
/// heartbeat interval and the tiers in intervals: `Warn` once at least `warn` intervals have
/// passed without evidence, `Page` once at least `page`, `NeverSeen` without any evidence.
/// Evidence dated after `now` (a fast clock on the host) counts as reporting.
pub fn tier(last_evidence: Option<DateTime<Utc>>, interval_s: u64, warn: u32, page: u32, now: DateTime<Utc>) -> Silence {
    let Some(last) = last_evidence else {
        return Silence::NeverSeen;
    };
    let age = (now - last).num_seconds();
    if age <= 0 {
        return Silence::Reporting;
    }
    let age = age as u128;
    let interval = u128::from(interval_s.max(1));
    if age >= interval * u128::from(page) {
        Silence::Page
    } else if age >= interval * u128::from(warn) {
        Silence::Warn
    } else {
        Silence::Reporting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap() + chrono::TimeDelta::seconds(s)
    }

    #[test]
    fn boundaries_are_at_least_n_intervals() {
        let last = Some(t(0));
        assert_eq!(tier(None, 900, 2, 4, t(0)), Silence::NeverSeen);
        assert_eq!(tier(last, 900, 2, 4, t(0)), Silence::Reporting);
        assert_eq!(tier(last, 900, 2, 4, t(1799)), Silence::Reporting);
        assert_eq!(tier(last, 900, 2, 4, t(1800)), Silence::Warn);
        assert_eq!(tier(last, 900, 2, 4, t(3599)), Silence::Warn);
        assert_eq!(tier(last, 900, 2, 4, t(3600)), Silence::Page);
        assert_eq!(tier(last, 900, 2, 4, t(86400 * 365)), Silence::Page);
        // Evidence from the future (fast host clock) is not silence.
        assert_eq!(tier(last, 900, 2, 4, t(-60)), Silence::Reporting);
        // A zero interval is treated as one second, never as "always silent".
        assert_eq!(tier(last, 0, 2, 4, t(1)), Silence::Reporting);
        assert_eq!(tier(last, 0, 2, 4, t(2)), Silence::Warn);
    }
}
