//! A job's own "No space left on device" lines, remembered per unit so that PID 1's report
//! of that unit's failure right after becomes a `disk_full` incident (with a retry of the
//! job) instead of a `service_crash` whose restart would fail the same way.
//!
//! Only the unit's own lines count: `_SYSTEMD_UNIT=<unit>` from a system service's process
//! ([`super::trust::is_system_service`]), which no local user can write; PID 1's failure
//! line for that same unit (`UNIT=`, trusted because PID 1 wrote it) must follow within
//! [`NO_SPACE_WINDOW_SECS`].

use std::collections::HashMap;
use std::path::PathBuf;

use super::trust;
use super::unit_name::is_valid_unit_name;
use crate::journal::Entry;

/// How long before PID 1's failure line the unit's out-of-space line may be.
pub const NO_SPACE_WINDOW_SECS: u64 = 30;
/// strerror(ENOSPC) as glibc and musl print it, compared ignoring ASCII case (Node.js logs
/// "ENOSPC: no space left on device").
const ENOSPC_TEXT: &[u8] = b"no space left on device";
/// Bound on remembered units.
const MAX_UNITS: usize = 1024;

/// The last out-of-space line of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSpaceLine {
    /// Realtime (µs) of the line.
    pub realtime: u64,
    /// SHA-256 of the line as the application wrote it, and its length: the line is the
    /// application's own text (it may name a file after a patient), so it is never kept.
    pub message_sha256: String,
    pub message_bytes: usize,
    /// Absolute paths the line names (see [`super::mounts::paths_in`]).
    pub paths: Vec<PathBuf>,
}

/// Per-unit memory of out-of-space lines.
#[derive(Debug, Default)]
pub struct NoSpaceLines {
    by_unit: HashMap<String, NoSpaceLine>,
}

impl NoSpaceLines {
    /// Remember `e` when it is a system service's own out-of-space line.
    pub fn note(&mut self, e: &Entry, realtime: u64) {
        if !trust::is_system_service(e) {
            return;
        }
        let (Some(unit), Some(msg)) = (e.get_str("_SYSTEMD_UNIT"), e.get("MESSAGE")) else { return };
        if !is_valid_unit_name(unit) || !super::rules::contains_ignore_case(msg, ENOSPC_TEXT) {
            return;
        }
        if self.by_unit.len() >= MAX_UNITS && !self.by_unit.contains_key(unit) {
            self.by_unit.clear();
        }
        let message_sha256 = crate::evidence::store::sha256_hex(msg);
        let paths = super::mounts::paths_in(&String::from_utf8_lossy(msg));
        self.by_unit.insert(unit.to_string(), NoSpaceLine { realtime, message_sha256, message_bytes: msg.len(), paths });
    }

    /// The unit's out-of-space line when it is at most [`NO_SPACE_WINDOW_SECS`] before
    /// `realtime` (kept, so that PID 1's further lines about the same failure find it too).
    pub fn recent(&self, unit: &str, realtime: u64) -> Option<&NoSpaceLine> {
        let l = self.by_unit.get(unit)?;
        (realtime >= l.realtime && realtime - l.realtime <= NO_SPACE_WINDOW_SECS * 1_000_000).then_some(l)
    }
}
