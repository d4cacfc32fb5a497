//! The durable outbox state (`STATE/worm/outbox.json`) and the retry backoff.
//!
//! The evidence store is the source of truth for what must be uploaded; the outbox only
//! records how far confirmed uploads have got. Uploads happen strictly in chain order, so a
//! high-water mark (the last confirmed bundle id) is enough: everything after it is pending.
//! The file is replaced atomically (`fsutil::replace`) after every confirmed bundle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use super::local::id_order;
use crate::fsutil;

/// Current state file format.
pub const OUTBOX_VERSION: u32 = 1;

/// What survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxState {
    /// Format version ([`OUTBOX_VERSION`]).
    pub version: u32,
    /// The last bundle whose every object was uploaded, read back and receipted.
    pub last_confirmed: Option<String>,
    /// How many bundles have been confirmed in total.
    pub confirmed_count: u64,
    /// When uploads started failing (cleared on the next success); drives the outage alert.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last upload error, for `worm sync` and the daemon's status line.
    pub last_error: Option<String>,
    /// The outage alert has been raised for the current outage (so it is raised once).
    pub alert_raised: bool,
}

/// The outbox file and its loaded state.
pub struct Outbox {
    path: PathBuf,
    /// The state as last saved.
    pub state: OutboxState,
    /// The file did not exist when opened: nothing is known about what the bucket holds, so
    /// every object is checked with HEAD before it is put.
    pub fresh: bool,
}

impl Outbox {
    /// Open `STATE_DIR/worm/outbox.json`, creating the directory (0700) if needed.
    pub fn open(state_dir: &Path) -> Result<Outbox> {
        let dir = state_dir.join("worm");
        fsutil::create_dir_all(&dir, 0o700)?;
        let path = dir.join("outbox.json");
        if !path.exists() {
            return Ok(Outbox {
                path,
                state: OutboxState {
                    version: OUTBOX_VERSION,
                    ..Default::default()
                },
                fresh: true,
            });
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let state: OutboxState = serde_json::from_str(&text)
            .with_context(|| format!("parsing outbox state {}", path.display()))?;
        if state.version != OUTBOX_VERSION {
            anyhow::bail!(
                "{}: field version: {} is not supported (expected {OUTBOX_VERSION})",
                path.display(),
                state.version
            );
        }
        Ok(Outbox {
            path,
            state,
            fresh: false,
        })
    }

    /// Path of the state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the state durably.
    pub fn save(&self) -> Result<()> {
        let mut bytes =
            serde_json::to_vec_pretty(&self.state).context("serialising outbox state")?;
        bytes.push(b'\n');
        fsutil::replace(&self.path, &bytes, 0o600)
    }

    /// Is `bundle_id` confirmed (at or before the high-water mark)? The store's local
    /// retention must only remove bundles for which this is true.
    pub fn is_confirmed(&self, bundle_id: &str) -> bool {
        match (&self.state.last_confirmed, id_order(bundle_id)) {
            (Some(last), Some(this)) => id_order(last).is_some_and(|l| this <= l),
            _ => false,
        }
    }
}

/// May the local copy of `bundle_id`, written at `written_at`, be removed? Only when it is
/// confirmed in the bucket *and* older than the local retention. The worm module never
/// deletes local evidence itself; whoever prunes the store asks this first.
pub fn local_copy_removable(
    outbox: &Outbox,
    bundle_id: &str,
    written_at: DateTime<Utc>,
    local_retention_days: u32,
    now: DateTime<Utc>,
) -> bool {
    outbox.is_confirmed(bundle_id)
        && now - written_at > chrono::TimeDelta::days(i64::from(local_retention_days))
}

/// Exponential backoff with full jitter: the n-th consecutive failure waits a random time in
/// `[base * 2^n / 2, base * 2^n]`, capped at `max`. Half the window is kept fixed so that a
/// bad credential can never retry faster than the base rate.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `base`, never waiting more than `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            failures: 0,
        }
    }

    /// Record a failure and return how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.failures.min(20));
        let ceiling = exp.min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        let span = (ceiling - half).as_millis() as u64;
        let jitter = if span == 0 {
            0
        } else {
            OsRng.next_u64() % (span + 1)
        };
        half + Duration::from_millis(jitter)
    }

    /// Record a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(
            d[0] >= Duration::from_millis(500) && d[0] <= Duration::from_secs(1),
            "{d:?}"
        );
        assert!(
            d[3] >= Duration::from_secs(4) && d[3] <= Duration::from_secs(8),
            "{d:?}"
        );
        assert!(d.iter().all(|x| *x <= Duration::from_secs(60)));
        assert!(d[9] >= Duration::from_secs(30), "{d:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn state_round_trips_and_high_water_mark() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path()).unwrap();
        assert!(o.fresh);
        assert!(!o.is_confirmed("EB-20261122-0001"));
        o.state.last_confirmed = Some("EB-20261122-0010".into());
        o.save().unwrap();
        let o = Outbox::open(d.path()).unwrap();
        assert!(!o.fresh);
        assert!(o.is_confirmed("EB-20261122-0002"));
        assert!(o.is_confirmed("EB-20261121-0099"));
        assert!(!o.is_confirmed("EB-20261122-0011"));
        let now = Utc::now();
        let old = now - chrono::TimeDelta::days(91);
        assert!(local_copy_removable(&o, "EB-20261122-0002", old, 90, now));
        assert!(
            !local_copy_removable(&o, "EB-20261122-0002", now, 90, now),
            "confirmed but recent"
        );
        assert!(
            !local_copy_removable(&o, "EB-20261122-0011", old, 90, now),
            "old but not confirmed"
        );
        std::fs::write(o.path(), "{\"version\":1,\"bogus\":1}").unwrap();
        let err = format!("{:#}", Outbox::open(d.path()).err().unwrap());
        assert!(
            err.contains("outbox.json") && err.contains("bogus"),
            "{err}"
        );
    }
}
