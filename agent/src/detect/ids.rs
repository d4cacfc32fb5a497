//! Incident ids `INC-YYYYMMDD-NNNN`: a per-day (UTC) sequence starting at 0001.
//!
//! With a state file the counter survives restarts: the new counter is written durably
//! ([`crate::fsutil::replace`]) *before* the id is handed out, so a crash can skip a number
//! but never issue the same id twice. State file format: `{"day":"20261122","last":7}`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fsutil;

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
        let state = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("incident id state {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e).with_context(|| format!("reading incident id state {}", path.display())),
        };
        Ok(IncidentIds { path: Some(path.to_path_buf()), state })
    }

    /// The next id for the UTC day of `now`.
    pub fn next(&mut self, now: DateTime<Utc>) -> Result<String> {
        let day = now.format("%Y%m%d").to_string();
        let mut next = if self.state.day == day { self.state.clone() } else { State { day, last: 0 } };
        if next.last >= 9999 {
            bail!("more than 9999 incidents on {}: incident id sequence exhausted", next.day);
        }
        next.last += 1;
        if let Some(p) = &self.path {
            let json = serde_json::to_vec(&next).context("encoding incident id state")?;
            fsutil::replace(p, &json, 0o600).with_context(|| format!("writing incident id state {}", p.display()))?;
        }
        self.state = next;
        Ok(format!("INC-{}-{:04}", self.state.day, self.state.last))
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
        std::fs::write(&p, b"{\"day\":1}").unwrap();
        assert!(format!("{:#}", IncidentIds::open(&p).unwrap_err()).contains("ids.json"));
    }
}
