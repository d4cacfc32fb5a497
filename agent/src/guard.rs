//! Guardrails: whether a planned runbook may run *now* for a given target.
//!
//! Three questions, asked in this order for every incident that planning matched to a runbook:
//!
//! 1. **Approved?** The runbook's id must be in the MSP's approved set and the SHA-256 of the
//!    file on disk must equal the approved hash (a modified runbook is not the approved one).
//! 2. **Permitted?** The client must allow this runbook to run automatically.
//! 3. **Quiet?** At most one run at a time per target, and a cooldown per
//!    (client, host, runbook, target) — default 5 minutes — stretched 2×, 4×, 8× after
//!    consecutive failures and reset by a success.
//!
//! A "no" to 1 or 2 is a [`Verdict::Refused`]: the daemon escalates it. A "no" to 3 is a
//! [`Verdict::Suppressed`]: nothing runs, and the suppression is recorded as signed evidence —
//! but only the *first* suppression of a cooldown window is written at once; the rest are
//! counted and written as one summary when the window closes ([`Guard::flush_closed_windows`]).
//! So a storm of 10,000 identical failures yields one execution and two suppression records
//! per window, not 10,000 of anything.
//!
//! The state survives restarts ([`Guard::save`]): the daemon saves it before it advances the
//! journal cursor, so counts are never lost for entries the cursor has already passed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What the client allows for one runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// The agent may run it when an incident calls for it.
    Auto,
    /// Only an operator may run it (`msp-agent runbook run`); incidents escalate.
    Manual,
    /// Never; incidents escalate.
    Deny,
}

/// Guard settings (the `guard:` section of the agent config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Base cooldown per (client, host, runbook, target), in seconds.
    pub cooldown_seconds: u64,
    /// Upper bound of the failure backoff multiplier (the sequence is 2, 4, 8, ...).
    pub max_backoff_multiplier: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig { cooldown_seconds: 300, max_backoff_multiplier: 8 }
    }
}

/// The cooldown identity of a run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GuardKey {
    pub client_id: String,
    pub host: String,
    pub runbook_id: String,
    /// What the runbook acts on: a unit, a mount point, a certificate path, or `host`.
    pub target: String,
}

impl GuardKey {
    fn as_map_key(&self) -> String {
        // NUL cannot occur in any of the parts (they are validated names), so this is unambiguous.
        format!("{}\0{}\0{}\0{}", self.client_id, self.host, self.runbook_id, self.target)
    }
}

/// Why a run was suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    /// The same key ran recently (cooldown, possibly stretched by failures).
    Cooldown,
    /// A runbook is already running against the same target.
    InFlight,
}

/// The guard's answer for one incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Run it; call [`Guard::started`] now and [`Guard::finished`] when done.
    Run,
    /// Do not run. `record` is true for the first suppression of a window: write it as
    /// evidence now. Later ones are counted into the window's summary.
    Suppressed { reason: SuppressReason, until: DateTime<Utc>, record: bool },
    /// Not approved or not permitted: escalate.
    Refused { reason: String },
}

/// A closed cooldown window in which more suppressions happened than were recorded one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressionSummary {
    pub key: GuardKey,
    /// Suppressions in the window that have no record of their own.
    pub unrecorded: u64,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct KeyState {
    key: Option<GuardKey>,
    last_started: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    /// End of the current cooldown window; runs are suppressed until then.
    window_end: Option<DateTime<Utc>>,
    /// Suppressions in the current window, and whether the first one was recorded.
    suppressed: u64,
    first_recorded: bool,
    /// A run started and has not finished. Found true after a restart, it means the agent
    /// died during the run: no evidence was written, so the window it opened must not
    /// suppress the incident when it is read again.
    #[serde(default)]
    running: bool,
}

/// Persisted guard state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    keys: BTreeMap<String, KeyState>,
}

/// The guard: policy plus state.
pub struct Guard {
    config: GuardConfig,
    approved: BTreeMap<String, String>,
    permissions: BTreeMap<String, Permission>,
    state: State,
    /// Targets with a run in progress. Not persisted: after a restart nothing is running.
    in_flight: BTreeSet<String>,
    dirty: bool,
}

impl Guard {
    /// A guard with empty state. `approved` maps runbook id → SHA-256 (hex) of the approved file;
    /// `permissions` maps runbook id → what the client allows (missing = not permitted).
    pub fn new(
        config: GuardConfig,
        approved: BTreeMap<String, String>,
        permissions: BTreeMap<String, Permission>,
    ) -> Guard {
        let approved = approved.into_iter().map(|(k, v)| (k, v.to_ascii_lowercase())).collect();
        Guard { config, approved, permissions, state: State::default(), in_flight: BTreeSet::new(), dirty: false }
    }

    /// Load persisted state from `path` (a missing file is an empty state).
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        match std::fs::read(path) {
            Ok(bytes) => {
                self.state = serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading guard state {}", path.display()))?;
                for entry in self.state.keys.values_mut() {
                    if entry.running {
                        entry.running = false;
                        entry.window_end = None;
                        self.dirty = true;
                    }
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("reading guard state {}", path.display())),
        }
    }

    /// Persist state durably if it changed since the last save.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.state.version = 1;
        let bytes = serde_json::to_vec_pretty(&self.state).context("serialising guard state")?;
        crate::fsutil::replace(path, &bytes, 0o600)?;
        self.dirty = false;
        Ok(())
    }

    /// Approval and permission only (no state change): the check `runbook run` by hand also uses
    /// for approval. `sha256` is the hash of the runbook file as loaded.
    pub fn check_policy(&self, runbook_id: &str, sha256: &str) -> Result<(), String> {
        match self.approved.get(runbook_id) {
            None => return Err(format!("{runbook_id} is not in the approved runbook set")),
            Some(h) if !h.eq_ignore_ascii_case(sha256) => {
                return Err(format!(
                    "{runbook_id} on disk (sha256 {sha256}) is not the approved version (sha256 {h})"
                ))
            }
            Some(_) => {}
        }
        match self.permissions.get(runbook_id) {
            Some(Permission::Auto) => Ok(()),
            Some(Permission::Manual) => {
                Err(format!("the client allows {runbook_id} only when run by an operator"))
            }
            Some(Permission::Deny) => Err(format!("the client does not permit {runbook_id}")),
            None => Err(format!("the client has not granted a permission for {runbook_id}")),
        }
    }

    /// Decide for one incident. Cooldown bookkeeping happens here; call [`Guard::started`]
    /// right after a [`Verdict::Run`].
    pub fn decide(&mut self, key: &GuardKey, runbook_sha256: &str, now: DateTime<Utc>) -> Verdict {
        if let Err(reason) = self.check_policy(&key.runbook_id, runbook_sha256) {
            return Verdict::Refused { reason };
        }
        let in_flight = self.in_flight.contains(&target_key(key));
        let entry = self.state.keys.entry(key.as_map_key()).or_default();
        let cooling = entry.window_end.is_some_and(|end| now < end);
        if !in_flight && !cooling {
            return Verdict::Run;
        }
        let (reason, until) = if in_flight {
            // The running attempt will set the next window when it ends; until then, report
            // at least one cooldown from now.
            let base = Duration::seconds(self.config.cooldown_seconds as i64);
            (SuppressReason::InFlight, entry.window_end.unwrap_or(now + base).max(now))
        } else {
            (SuppressReason::Cooldown, entry.window_end.unwrap_or(now))
        };
        entry.suppressed += 1;
        let record = !entry.first_recorded;
        entry.first_recorded = true;
        entry.key.get_or_insert_with(|| key.clone());
        self.dirty = true;
        Verdict::Suppressed { reason, until, record }
    }

    /// A run for `key` starts now: marks the target busy and opens a cooldown window
    /// (provisionally with the current backoff; [`Guard::finished`] fixes it from the outcome).
    /// Returns the summary of the previous window if it had unrecorded suppressions.
    pub fn started(&mut self, key: &GuardKey, now: DateTime<Utc>) -> Option<SuppressionSummary> {
        self.in_flight.insert(target_key(key));
        let mult = self.multiplier_for(key);
        let cooldown = Duration::seconds(self.config.cooldown_seconds as i64 * mult as i64);
        let entry = self.state.keys.entry(key.as_map_key()).or_default();
        let summary = close_window(entry, key);
        entry.key = Some(key.clone());
        entry.last_started = Some(now);
        entry.window_end = Some(now + cooldown);
        entry.running = true;
        self.dirty = true;
        summary
    }

    /// The run for `key` ended. A failure stretches the window (2×, 4×, 8× the cooldown,
    /// counted from the start of the run); a success resets the backoff.
    pub fn finished(&mut self, key: &GuardKey, success: bool) {
        self.in_flight.remove(&target_key(key));
        let max = self.config.max_backoff_multiplier.max(1);
        let base = self.config.cooldown_seconds as i64;
        let entry = self.state.keys.entry(key.as_map_key()).or_default();
        entry.running = false;
        if success {
            entry.consecutive_failures = 0;
        } else {
            entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
        }
        // The window opened at start assumed the old multiplier; set it from the outcome.
        let mult = backoff_multiplier(entry.consecutive_failures, max);
        if let Some(start) = entry.last_started {
            entry.window_end = Some(start + Duration::seconds(base * mult as i64));
        }
        self.dirty = true;
    }

    /// The run for `key` was interrupted by a shutdown and will be resumed: free the target,
    /// keep the backoff as it was (an interruption is neither a success nor a failure).
    pub fn interrupted(&mut self, key: &GuardKey) {
        self.in_flight.remove(&target_key(key));
        if let Some(entry) = self.state.keys.get_mut(&key.as_map_key()) {
            entry.running = false;
        }
        self.dirty = true;
    }

    /// Summaries for every window that has closed by `now` with unrecorded suppressions;
    /// the daemon writes each as a signed suppression record. Call periodically.
    pub fn flush_closed_windows(&mut self, now: DateTime<Utc>) -> Vec<SuppressionSummary> {
        let mut out = Vec::new();
        for entry in self.state.keys.values_mut() {
            let closed = entry.window_end.is_some_and(|end| now >= end);
            if closed && entry.suppressed > 0 {
                if let Some(key) = entry.key.clone() {
                    if let Some(s) = close_window(entry, &key) {
                        out.push(s);
                    }
                    self.dirty = true;
                }
            }
        }
        out
    }

    /// Whether a run is in progress for `key`'s target.
    pub fn is_in_flight(&self, key: &GuardKey) -> bool {
        self.in_flight.contains(&target_key(key))
    }

    fn multiplier_for(&self, key: &GuardKey) -> u32 {
        let failures = self.state.keys.get(&key.as_map_key()).map_or(0, |e| e.consecutive_failures);
        backoff_multiplier(failures, self.config.max_backoff_multiplier.max(1))
    }
}

/// 1 with no failures, then 2, 4, 8, ... capped at `max`.
fn backoff_multiplier(consecutive_failures: u32, max: u32) -> u32 {
    if consecutive_failures == 0 {
        return 1;
    }
    let exp = consecutive_failures.min(16);
    (1u32 << exp).min(max)
}

/// "At most one runbook at a time per target" is per host and target, across runbooks.
fn target_key(key: &GuardKey) -> String {
    format!("{}\0{}\0{}", key.client_id, key.host, key.target)
}

/// Reset the window's suppression counters; a summary when some suppressions went unrecorded.
fn close_window(entry: &mut KeyState, key: &GuardKey) -> Option<SuppressionSummary> {
    let unrecorded = entry.suppressed.saturating_sub(u64::from(entry.first_recorded));
    let summary = match (entry.last_started, entry.window_end) {
        (Some(start), Some(end)) if unrecorded > 0 => Some(SuppressionSummary {
            key: key.clone(),
            unrecorded,
            window_start: start,
            window_end: end,
        }),
        _ => None,
    };
    entry.suppressed = 0;
    entry.first_recorded = false;
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    fn guard() -> Guard {
        let approved = BTreeMap::from([("RB-SERVICE-001".to_string(), HASH.to_string())]);
        let perms = BTreeMap::from([("RB-SERVICE-001".to_string(), Permission::Auto)]);
        Guard::new(GuardConfig::default(), approved, perms)
    }

    fn key(target: &str) -> GuardKey {
        GuardKey {
            client_id: "clinic-001".into(),
            host: "srv".into(),
            runbook_id: "RB-SERVICE-001".into(),
            target: target.into(),
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn unapproved_modified_and_unpermitted_runbooks_are_refused() {
        let mut g = guard();
        let mut k = key("nginx.service");
        let other = "bb00000000000000000000000000000000000000000000000000000000000000";
        match g.decide(&k, other, t(0)) {
            Verdict::Refused { reason } => assert!(reason.contains("not the approved version"), "{reason}"),
            v => panic!("{v:?}"),
        }
        k.runbook_id = "RB-EVIL-001".into();
        match g.decide(&k, HASH, t(0)) {
            Verdict::Refused { reason } => assert!(reason.contains("not in the approved runbook set"), "{reason}"),
            v => panic!("{v:?}"),
        }
        g.approved.insert("RB-CPU-001".into(), HASH.into());
        g.permissions.insert("RB-CPU-001".into(), Permission::Manual);
        k.runbook_id = "RB-CPU-001".into();
        match g.decide(&k, HASH, t(0)) {
            Verdict::Refused { reason } => assert!(reason.contains("only when run by an operator"), "{reason}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn storm_yields_one_run_one_immediate_record_and_one_summary() {
        let mut g = guard();
        let k = key("nginx.service");
        assert_eq!(g.decide(&k, HASH, t(0)), Verdict::Run);
        assert!(g.started(&k, t(0)).is_none());
        let mut runs = 1;
        let mut records = 0;
        for i in 0..10_000 {
            match g.decide(&k, HASH, t(i % 200)) {
                Verdict::Run => runs += 1,
                Verdict::Suppressed { record, reason, .. } => {
                    assert_eq!(reason, SuppressReason::InFlight);
                    records += u32::from(record);
                }
                v => panic!("{v:?}"),
            }
        }
        g.finished(&k, true);
        assert_eq!((runs, records), (1, 1));
        // Still inside the 300 s window: cooldown, counted, not recorded again.
        assert!(matches!(
            g.decide(&k, HASH, t(250)),
            Verdict::Suppressed { reason: SuppressReason::Cooldown, record: false, .. }
        ));
        assert!(g.flush_closed_windows(t(299)).is_empty(), "window still open");
        let s = g.flush_closed_windows(t(300));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].unrecorded, 10_000, "10,000 suppressions + 1 in cooldown, minus the recorded one");
        assert!(g.flush_closed_windows(t(301)).is_empty(), "summaries are emitted once");
        assert_eq!(g.decide(&k, HASH, t(301)), Verdict::Run);
    }

    #[test]
    fn failures_stretch_the_cooldown_2x_4x_8x_and_success_resets_it() {
        let mut g = guard();
        let k = key("nginx.service");
        let mut now = t(0);
        for expected_mult in [2, 4, 8, 8] {
            assert_eq!(g.decide(&k, HASH, now), Verdict::Run, "at {now}");
            g.started(&k, now);
            g.finished(&k, false);
            let window = Duration::seconds(300 * expected_mult);
            assert!(matches!(g.decide(&k, HASH, now + window - Duration::seconds(1)), Verdict::Suppressed { .. }));
            now += window;
        }
        assert_eq!(g.decide(&k, HASH, now), Verdict::Run);
        g.started(&k, now);
        g.finished(&k, true);
        assert_eq!(g.decide(&k, HASH, now + Duration::seconds(300)), Verdict::Run, "backoff reset");
    }

    #[test]
    fn one_run_per_target_across_runbooks_and_independent_targets() {
        let mut g = guard();
        g.approved.insert("RB-CPU-001".into(), HASH.into());
        g.permissions.insert("RB-CPU-001".into(), Permission::Auto);
        let a = key("nginx.service");
        g.started(&a, t(0));
        let mut cpu = key("nginx.service");
        cpu.runbook_id = "RB-CPU-001".into();
        assert!(matches!(g.decide(&cpu, HASH, t(1)), Verdict::Suppressed { reason: SuppressReason::InFlight, .. }));
        assert_eq!(g.decide(&key("postgresql.service"), HASH, t(1)), Verdict::Run);
    }

    #[test]
    fn a_run_interrupted_by_a_crash_does_not_suppress_its_retry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guard.json");
        let k = key("nginx.service");
        let mut g = guard();
        g.started(&k, t(0));
        g.save(&path).unwrap();
        // The agent dies here: no finished(), no evidence.
        let mut g2 = guard();
        g2.load_state(&path).unwrap();
        assert_eq!(g2.decide(&k, HASH, t(1)), Verdict::Run, "the interrupted run is retried");
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guard.json");
        let k = key("nginx.service");
        let mut g = guard();
        g.started(&k, t(0));
        g.finished(&k, false);
        g.save(&path).unwrap();
        let mut g2 = guard();
        g2.load_state(&path).unwrap();
        assert!(matches!(g2.decide(&k, HASH, t(500)), Verdict::Suppressed { .. }), "2x window = 600 s");
        assert_eq!(g2.decide(&k, HASH, t(600)), Verdict::Run);
    }
}
