//! Incident ids `INC-YYYYMMDD-NNNN`: a per-day (UTC) sequence starting at 0001.
//!
//! With a state file the counter survives restarts: the new counter is written durably
//! ([`crate::fsutil::replace`]) *before* the id is handed out, so a crash can skip a number
//! but never issue the same id twice. State file format: `{"day":"20261122","last":7}`.
//!
//! The daemon and operators' manual runs (`msp-agent runbook run`) share one state file, so
//! every allocation takes an exclusive `flock` on a sidecar lock file (`<state>.lock`; the
//! state file itself is replaced by rename, so it cannot carry the lock) and re-reads the
//! state under it: two processes never issue the same id.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::fsutil;

/// Name of the counter file in the agent's state directory.
pub const STATE_FILE: &str = "incident-ids.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// `YYYYMMDD` of the last id issued.
    day: String,
    /// Sequence number of the last id issued that day.
    last: u32,
}

/// Allocates incident ids, optionally persisting the counter.
#[derive(Debug)]
pub struct IncidentIds {
    path: Option<PathBuf>,
    state: State,
}

impl IncidentIds {
    /// Counter kept in memory only (the `detect` command, tests).
    pub fn in_memory() -> IncidentIds {
        IncidentIds { path: None, state: State::default() }
    }

    /// Counter persisted at `path` (missing file = no id issued yet). A malformed file is an
    /// error naming it: silently restarting at 0001 would reuse ids.
    pub fn open(path: &Path) -> Result<IncidentIds> {
        let state = read_state(path)?;
        Ok(IncidentIds { path: Some(path.to_path_buf()), state })
    }

    /// The next id for the UTC day of `now`.
    pub fn next(&mut self, now: DateTime<Utc>) -> Result<String> {
        let Some(path) = self.path.clone() else {
            self.state = advance(&self.state, now)?;
            return Ok(self.state.id());
        };
        let lock_path = path.with_extension("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("opening incident id lock {}", lock_path.display()))?;
        // Blocking: the holder only reads, writes and fsyncs a few bytes.
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("locking {}", lock_path.display()))?;
        // Another process (a manual run beside the daemon) may have issued ids since.
        let on_disk = read_state(&path)?;
        let next = advance(&on_disk, now)?;
        let json = serde_json::to_vec(&next).context("encoding incident id state")?;
        fsutil::replace(&path, &json, 0o600).with_context(|| format!("writing incident id state {}", path.display()))?;
        self.state = next;
        Ok(self.state.id())
    }
}

impl State {
    fn id(&self) -> String {
        format!("INC-{}-{:04}", self.day, self.last)
    }
}

/// The state after issuing one more id on the UTC day of `now`.
fn advance(state: &State, now: DateTime<Utc>) -> Result<State> {
    let day = now.format("%Y%m%d").to_string();
    let mut next = if state.day == day { state.clone() } else { State { day, last: 0 } };
    if next.last >= 9999 {
        bail!("more than 9999 incidents on {}: incident id sequence exhausted", next.day);
    }
    next.last += 1;
    Ok(next)
}

/// The persisted state; a missing file is the empty state.
fn read_state(path: &Path) -> Result<State> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("incident id state {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e).with_context(|| format!("reading incident id state {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn per_day_sequence_persists() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ids.json");
        let t1 = Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 59).unwrap();
        let t2 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        let mut ids = IncidentIds::open(&p).unwrap();
        assert_eq!(ids.next(t1).unwrap(), "INC-20261122-0001");
        assert_eq!(ids.next(t1).unwrap(), "INC-20261122-0002");
        let mut again = IncidentIds::open(&p).unwrap();
        assert_eq!(again.next(t1).unwrap(), "INC-20261122-0003");
        assert_eq!(again.next(t2).unwrap(), "INC-20261123-0001");
        // Two holders of one state file (the daemon and a manual run) never repeat an id.
        let mut a = IncidentIds::open(&p).unwrap();
        let mut b = IncidentIds::open(&p).unwrap();
        assert_eq!(a.next(t2).unwrap(), "INC-20261123-0002");
        assert_eq!(b.next(t2).unwrap(), "INC-20261123-0003");
        assert_eq!(a.next(t2).unwrap(), "INC-20261123-0004");
        std::fs::write(&p, b"{\"day\":1}").unwrap();
        assert!(format!("{:#}", IncidentIds::open(&p).unwrap_err()).contains("ids.json"));
    }
}
