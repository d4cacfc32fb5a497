//! The drift watcher thread: inotify events in (via the `notify` crate), [`Drift`]s out.
//!
//! Debounce: a writer's several `write()`s, or an editor's write-to-temporary-then-rename, are
//! one change. A governed path is hashed once it has had no event for `settle` (at most
//! [`MAX_WAIT`] after its first event, so a file written continuously is still checked), and
//! a drift is reported once per drifted state: the same wrong hash seen again is not a new
//! drift, the expected hash seen again clears the state (a restore is not drift).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use notify::{EventKind, RecursiveMode, Watcher};

use super::{Drift, WatchSet};

/// A path is hashed at the latest this long after its first event.
pub const MAX_WAIT: Duration = Duration::from_millis(500);
/// How often the thread looks at its stop flag when nothing happens.
const IDLE: Duration = Duration::from_millis(200);

/// A running watcher; dropping it stops the thread and the inotify watches.
pub struct DriftWatcher {
    rx: Receiver<Drift>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _watcher: notify::RecommendedWatcher,
}

impl DriftWatcher {
    /// Watch the parent directories of everything in `set`. A directory that does not exist
    /// (a governed file of a service this host does not run) is skipped with a warning.
    pub fn start(set: WatchSet, settle: Duration) -> Result<DriftWatcher> {
        let (ev_tx, ev_rx) = channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(ev_tx).context("starting inotify")?;
        let mut watched = 0usize;
        for dir in set.directories() {
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => watched += 1,
                Err(e) => tracing::warn!(dir = %dir.display(), "governed files in this directory are not watched: {e}"),
            }
        }
        tracing::info!(directories = watched, files = set.files().count(), "drift watcher started");
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("drift-watcher".into())
            .spawn(move || run(set, settle, ev_rx, tx, flag))
            .context("starting the drift watcher thread")?;
        Ok(DriftWatcher { rx, stop, thread: Some(thread), _watcher: watcher })
    }

    /// Drifts observed since the last call (never blocks).
    pub fn drain(&self) -> Vec<Drift> {
        self.rx.try_iter().collect()
    }

    /// Wait up to `timeout` for the next drift (tests and benches).
    pub fn next_timeout(&self, timeout: Duration) -> Option<Drift> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Drop for DriftWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A governed path with events not yet looked at.
struct Pending {
    first: Instant,
    last: Instant,
}

fn run(
    set: WatchSet,
    settle: Duration,
    events: Receiver<notify::Result<notify::Event>>,
    out: Sender<Drift>,
    stop: Arc<AtomicBool>,
) {
    let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
    // Path → the wrong hash last reported for it.
    let mut reported: HashMap<PathBuf, String> = HashMap::new();
    // Files with a build-time hash are checked at start too: a change made while the agent
    // was stopped is drift all the same. (Hashes taken at start cannot differ at start.)
    let t = Instant::now();
    for p in set.files() {
        if set.expected_for(p).is_some_and(|e| e.from == super::ExpectedFrom::Manifest) {
            let due_now = t.checked_sub(MAX_WAIT).unwrap_or(t);
            pending.insert(p.clone(), Pending { first: due_now, last: due_now });
        }
    }
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = pending
            .values()
            .map(|p| due(p, settle).saturating_duration_since(now))
            .min()
            .unwrap_or(IDLE)
            .min(IDLE);
        match events.recv_timeout(wait) {
            Ok(Ok(ev)) => {
                let t = Instant::now();
                if ev.need_rescan() {
                    tracing::warn!("inotify queue overflowed: checking every governed file");
                    for p in set.files() {
                        mark(&mut pending, p, t);
                    }
                }
                if !matches!(ev.kind, EventKind::Access(notify::event::AccessKind::Open(_) | notify::event::AccessKind::Read)) {
                    for p in &ev.paths {
                        if set.expected_for(p).is_some() {
                            mark(&mut pending, p, t);
                        }
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("inotify error: {e}"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let ready: Vec<PathBuf> = pending.iter().filter(|(_, p)| due(p, settle) <= now).map(|(k, _)| k.clone()).collect();
        for path in ready {
            pending.remove(&path);
            match set.check(&path) {
                Ok(None) => {
                    if reported.remove(&path).is_some() {
                        tracing::info!(path = %path.display(), "governed file is back to its expected content");
                    }
                }
                Ok(Some((expected, actual))) => {
                    if reported.get(&path) == Some(&actual) {
                        continue;
                    }
                    reported.insert(path.clone(), actual.clone());
                    let d = Drift { path, expected, actual_sha256: actual, observed_at: Utc::now() };
                    if out.send(d).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(path = %path.display(), "cannot hash governed file: {e:#}"),
            }
        }
    }
}

fn mark(pending: &mut HashMap<PathBuf, Pending>, p: &Path, t: Instant) {
    pending.entry(p.to_path_buf()).and_modify(|x| x.last = t).or_insert(Pending { first: t, last: t });
}

fn due(p: &Pending, settle: Duration) -> Instant {
    (p.last + settle).min(p.first + MAX_WAIT)
}
