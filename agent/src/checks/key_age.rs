//! Age of the active evidence signing key (issue 17): an old key is a warning to rotate, a
//! key past its end of life an incident. No baseline rule names key age (baseline/hipaa-v1.yaml
//! has none), so this check runs and is recorded on every heartbeat's board
//! (`details.checks.signing_key_age`) but is not a baseline claim and no packet row rests on it.
//!
//! Read from `key-info.json` beside the signing key (`created`, `valid_until`); the ages are
//! whole days.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::keys::{self, KeyInfo};

/// What the check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Younger than `max_age_days`.
    Fresh,
    /// Older than `max_age_days`: rotate (an alert and a signed incident record, Medium).
    Old,
    /// Past its end of life: older than `end_of_life_days`, or past a `valid_until` its
    /// `key-info.json` gives (a rotated or revoked key still loaded): Critical.
    EndOfLife,
}

/// The measured age of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyAge {
    /// The key (`SHA256:...`).
    pub key_id: String,
    /// `created` of its info.
    pub created: String,
    /// Whole days since `created`.
    pub age_days: i64,
    /// The configured limits.
    pub max_age_days: u32,
    /// The configured end of life.
    pub end_of_life_days: u32,
    /// `valid_until` of its info, if set.
    pub valid_until: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Judge `info` at `now`.
pub fn judge(info: &KeyInfo, now: DateTime<Utc>, max_age_days: u32, end_of_life_days: u32) -> Result<KeyAge> {
    let created = DateTime::parse_from_rfc3339(&info.created)
        .with_context(|| format!("key {}: created {:?} is not an RFC 3339 time", info.key_id, info.created))?
        .with_timezone(&Utc);
    let age_days = (now - created).num_days();
    let ended = info.valid_until_time()?.is_some_and(|u| now > u);
    let verdict = if ended || age_days >= i64::from(end_of_life_days) {
        Verdict::EndOfLife
    } else if age_days >= i64::from(max_age_days) {
        Verdict::Old
    } else {
        Verdict::Fresh
    };
    Ok(KeyAge {
        key_id: info.key_id.clone(),
        created: info.created.clone(),
        age_days,
        max_age_days,
        end_of_life_days,
        valid_until: info.valid_until.clone(),
        verdict,
    })
}

/// Read `key-info.json` in `key_dir` and judge it; the info must name `loaded_key_id` (the key
/// the daemon signs with), or the measurement would be of another key.
pub fn measure(key_dir: &Path, loaded_key_id: &str, now: DateTime<Utc>, max_age_days: u32, end_of_life_days: u32) -> Result<KeyAge> {
    let path = key_dir.join(keys::KEY_INFO_FILE);
    let info = keys::read_key_info(&path)?;
    if info.key_id != loaded_key_id {
        anyhow::bail!(
            "{} names key {}, but the daemon signs with {} (rotated since the daemon started? restart it)",
            path.display(),
            info.key_id,
            loaded_key_id
        );
    }
    judge(&info, now, max_age_days, end_of_life_days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn info(created: &str, until: Option<&str>) -> KeyInfo {
        KeyInfo {
            key_id: "SHA256:x".into(),
            algorithm: "ed25519".into(),
            public_key: String::new(),
            created: created.into(),
            valid_from: created.into(),
            valid_until: until.map(str::to_string),
            compromised_since: None,
        }
    }

    #[test]
    fn ages_are_judged_at_the_limits() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let at = |days: i64| crate::runbook::exec::rfc3339(now - chrono::Duration::days(days));
        assert_eq!(judge(&info(&at(329), None), now, 330, 365).unwrap().verdict, Verdict::Fresh);
        assert_eq!(judge(&info(&at(330), None), now, 330, 365).unwrap().verdict, Verdict::Old);
        assert_eq!(judge(&info(&at(364), None), now, 330, 365).unwrap().age_days, 364);
        assert_eq!(judge(&info(&at(365), None), now, 330, 365).unwrap().verdict, Verdict::EndOfLife);
        // A valid_until in the past is the end of life whatever the age.
        assert_eq!(judge(&info(&at(10), Some(&at(1))), now, 330, 365).unwrap().verdict, Verdict::EndOfLife);
        let err = format!("{:#}", judge(&info("yesterday", None), now, 330, 365).unwrap_err());
        assert!(err.contains("created \"yesterday\""), "{err}");
    }
}
