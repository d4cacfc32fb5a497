//! The packet's period: one calendar month in UTC, and the time it is judged at.

use anyhow::{bail, Result};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

/// A calendar month (`YYYY-MM`), UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
}

impl Month {
    /// Parse `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Month> {
        let ok = s.len() == 7
            && s.as_bytes()[4] == b'-'
            && s.bytes()
                .enumerate()
                .all(|(i, b)| i == 4 || b.is_ascii_digit());
        if !ok {
            bail!("--month `{s}` is not YYYY-MM");
        }
        let year: i32 = s[..4].parse()?;
        let month: u32 = s[5..].parse()?;
        if !(1..=12).contains(&month) || year < 1970 {
            bail!("--month `{s}` is not a month (YYYY-MM, MM 01 to 12)");
        }
        Ok(Month { year, month })
    }

    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// `YYYY/MM`, the store's directory for the month.
    pub fn dir_string(&self) -> String {
        format!("{:04}/{:02}", self.year, self.month)
    }

    /// The store's directory for the month, relative to the root.
    pub fn dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(self.dir_string())
    }

    /// First day.
    pub fn first_day(&self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// First day of the next month.
    pub fn next_first_day(&self) -> NaiveDate {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(NaiveDate::MAX)
    }

    /// Number of days.
    pub fn days(&self) -> i64 {
        (self.next_first_day() - self.first_day()).num_days()
    }

    /// 00:00 UTC on the first day.
    pub fn start(&self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.first_day().and_time(chrono::NaiveTime::MIN))
    }

    /// 00:00 UTC on the first day of the next month (exclusive end).
    pub fn end(&self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.next_first_day().and_time(chrono::NaiveTime::MIN))
    }

    /// `YYYYMMDD` of the first day, as in bundle names.
    pub fn first_day_number(&self) -> u32 {
        day_number(self.first_day())
    }

    /// `YYYYMMDD` of the last day.
    pub fn last_day_number(&self) -> u32 {
        day_number(self.next_first_day().pred_opt().unwrap_or(NaiveDate::MIN))
    }
}

fn day_number(d: NaiveDate) -> u32 {
    d.year() as u32 * 10000 + d.month() * 100 + d.day()
}

/// The time the packet is judged at: the end of the month, or `now` when earlier (a packet
/// for the month in progress). Never the time of the last evidence: a silent agent would
/// otherwise look fresh.
pub fn as_of(month: &Month, now: DateTime<Utc>) -> DateTime<Utc> {
    month.end().min(now).max(month.start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(m.start().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(m.end().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(m.days(), 31);
        assert_eq!(m.last_day_number(), 20261231);
        assert_eq!(Month::parse("2028-02").unwrap().days(), 29);
        for bad in ["2026-13", "2026-00", "26-11", "2026/11", "2026-1x"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn as_of_is_the_end_of_the_month_or_now() {
        let m = Month::parse("2026-11").unwrap();
        let later = Utc.with_ymd_and_hms(2027, 1, 5, 0, 0, 0).unwrap();
        assert_eq!(as_of(&m, later), m.end());
        let mid = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        assert_eq!(as_of(&m, mid), mid);
    }
}
