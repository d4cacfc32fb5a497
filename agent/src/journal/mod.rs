//! The journal source: journald entries (the live system journal, or given files/directories)
//! in stream order, each with its cursor, through a bounded channel.
//!
//! How it reads: a `journalctl -o export` child process (see ARCHITECTURE.md, "Why
//! journalctl `-o export` (measured)", for the measurement behind that choice) whose stdout a
//! reader thread parses ([`export`]) into [`Entry`] values and sends through a bounded
//! channel. When the consumer falls behind, the channel fills, the reader thread blocks, the
//! pipe fills and journalctl blocks: backpressure all the way down, no unbounded buffer
//! anywhere.
//!
//! Never losing or double-handling an entry is split with the consumer:
//! * the source starts after the cursor the consumer last acknowledged
//!   ([`checkpoint::Checkpoint`]), across boots and rotation (`--merge`, see [`SourceConfig`]);
//! * the consumer acknowledges each entry (`Checkpoint::commit`/`note`) only once what the
//!   entry caused is durable. Entries read but not acknowledged are read again next run.
//!
//! Never stalling silently: if journalctl exits (killed, bad cursor, unreadable file) or its
//! output is corrupt, the next [`JournalSource::next`] returns an error carrying its exit
//! status and stderr ([`ReaderDied`]). A follow that merely sees no traffic returns
//! [`Next::Idle`] from [`JournalSource::next_timeout`], so the caller keeps its watchdog going.

pub mod checkpoint;
pub mod export;

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

pub use checkpoint::Checkpoint;
pub use export::{Entry, ExportReader, Limits};

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The local system journal (all boots, all files of this machine).
    System,
    /// These journal files (`journalctl --file`); cannot be followed (journalctl 252 refuses
    /// `--follow` with `--file`: "Failed to get journal fd").
    Files(Vec<PathBuf>),
    /// All journal files in this directory (`journalctl --directory`); can be followed, and
    /// new files appearing in it are picked up.
    Directory(PathBuf),
}

/// Where to start when there is no cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest entry available (replay, tests, `detect`).
    Head,
    /// Only entries written after the source starts.
    Tail,
    /// Entries from this wall-clock second on (UNIX seconds). The daemon's first-ever start
    /// records its start time and uses this until it has a cursor, so a crash before the first
    /// cursor commit does not skip what was logged meanwhile, and history is not acted on.
    Since(i64),
}

/// How to run the source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// What to read.
    pub input: Input,
    /// Keep reading new entries as they are written (`--follow`).
    pub follow: bool,
    /// Resume strictly after this cursor (from [`Checkpoint::cursor`]); overrides `start_at`.
    pub after_cursor: Option<String>,
    /// Where to start without a cursor.
    pub start_at: StartAt,
    /// Ask journalctl for only these fields (`--output-fields`); `__CURSOR`,
    /// `__REALTIME_TIMESTAMP`, `__MONOTONIC_TIMESTAMP` and `_BOOT_ID` always come. `None` = all.
    /// [`crate::detect::FIELDS`] is what the detector reads.
    pub output_fields: Option<Vec<String>>,
    /// Per-entry memory bounds.
    pub limits: Limits,
    /// Entries buffered between the reader thread and the consumer.
    pub channel_capacity: usize,
    /// The journalctl binary.
    pub journalctl: PathBuf,
}

impl SourceConfig {
    /// Defaults for `input`: no follow, start at head, all fields, 256-entry channel.
    pub fn new(input: Input) -> SourceConfig {
        SourceConfig {
            input,
            follow: false,
            after_cursor: None,
            start_at: StartAt::Head,
            output_fields: None,
            limits: Limits::default(),
            channel_capacity: 256,
            journalctl: PathBuf::from("journalctl"),
        }
    }

    /// The journalctl arguments for this configuration (exposed for tests and the docs).
    pub fn journalctl_args(&self) -> Result<Vec<String>> {
        let mut a = vec!["--output=export".to_string(), "--no-pager".into(), "--quiet".into()];
        match &self.input {
            Input::System => {
                // `--follow` implies `--boot` (current boot only) unless `--merge` is given
                // (checked on systemd 252: `-b all` does NOT undo it; with `--after-cursor` the
                // implied boot filter silently skips the rest of the previous boot). `--merge`
                // also lifts the local-only restriction, so pin this machine's id.
                a.push("--merge".into());
                if let Some(id) = local_machine_id() {
                    a.push(format!("_MACHINE_ID={id}"));
                }
            }
            Input::Files(files) => {
                if self.follow {
                    bail!("journalctl cannot follow --file inputs; give a --journal-dir to follow");
                }
                if files.is_empty() {
                    bail!("no journal files given");
                }
                for f in files {
                    a.push(format!("--file={}", f.display()));
                }
            }
            Input::Directory(d) => {
                a.push(format!("--directory={}", d.display()));
                a.push("--merge".into()); // same implied-boot trap as above
            }
        }
        if self.follow {
            a.push("--follow".into());
        }
        match (&self.after_cursor, self.start_at) {
            (Some(c), _) => {
                a.push(format!("--after-cursor={c}"));
                // journalctl 252: --follow implies --lines=10 even with --after-cursor, which
                // silently skips all but the last 10 entries after the cursor (found by the
                // daemon's kill -9 test). --no-tail lifts it.
                a.push("--no-tail".into());
            }
            // Without this, --follow starts with the last 10 entries only.
            (None, StartAt::Head) => a.push("--no-tail".into()),
            (None, StartAt::Tail) => a.push("--lines=0".into()),
            (None, StartAt::Since(secs)) => {
                a.push("--no-tail".into());
                a.push(format!("--since=@{secs}"));
            }
        }
        if let Some(fields) = &self.output_fields {
            a.push(format!("--output-fields={}", fields.join(",")));
        }
        Ok(a)
    }
}

/// `/etc/machine-id` if it holds a well-formed id.
fn local_machine_id() -> Option<String> {
    let s = std::fs::read_to_string("/etc/machine-id").ok()?;
    let id = s.trim();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The reader died: journalctl exited (or its output was corrupt). Downcast the error from
/// [`JournalSource::next`] to this to raise a "journal source down" incident.
#[derive(Debug, thiserror::Error)]
#[error("journalctl reader died ({status}); stderr: {stderr:?}")]
pub struct ReaderDied {
    /// Exit status as text ("exit status: 1", "signal: 9") or the parse error.
    pub status: String,
    /// The last few KiB of journalctl's stderr.
    pub stderr: String,
}

/// What [`JournalSource::next_timeout`] saw.
#[derive(Debug)]
pub enum Next {
    /// The next entry.
    Entry(Entry),
    /// Nothing within the timeout (following and the journal is quiet).
    Idle,
    /// The input is exhausted (only without `follow`).
    End,
}

/// Entries travel in batches: one channel operation (and at most one consumer wake-up) per
/// batch instead of per entry. The reader sends a batch when it is full or when journalctl has
/// nothing more buffered, so a batch never waits for input (no added latency when following).
type Msg = Result<Vec<Entry>, anyhow::Error>;

/// Most entries per batch.
const MAX_BATCH: usize = 64;

/// A running journal source. Dropping it kills the journalctl child and joins the reader.
pub struct JournalSource {
    rx: Option<Receiver<Msg>>,
    /// The rest of the batch being handed out.
    pending: std::collections::VecDeque<Entry>,
    child: Arc<Mutex<Child>>,
    reader: Option<JoinHandle<()>>,
    done: bool,
}

/// Bytes of journalctl stderr kept for the error message.
const STDERR_KEEP: usize = 8 * 1024;

impl JournalSource {
    /// Start journalctl per `cfg` and the reader thread.
    pub fn start(cfg: &SourceConfig) -> Result<JournalSource> {
        let args = cfg.journalctl_args()?;
        if let Input::Directory(d) = &cfg.input {
            if !d.is_dir() {
                bail!("journal directory {} does not exist", d.display());
            }
        }
        if let Input::Files(fs) = &cfg.input {
            for f in fs {
                if let Some(what) = crate::detect::not_a_regular_file(f) {
                    bail!("journal file {}: {what}", f.display());
                }
            }
        }
        let mut child = Command::new(&cfg.journalctl)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", cfg.journalctl.display()))?;
        let stdout = child.stdout.take().context("journalctl stdout")?;
        let stderr = child.stderr.take().context("journalctl stderr")?;
        let child = Arc::new(Mutex::new(child));
        // `channel_capacity` entries in flight at most: batches of `batch` entries, and
        // `capacity / batch` batches in the channel (plus one being filled, one being consumed).
        let batch = MAX_BATCH.min(cfg.channel_capacity.max(1));
        let (tx, rx) = mpsc::sync_channel((cfg.channel_capacity / batch).max(1));
        let limits = cfg.limits;
        let follow = cfg.follow;
        let child2 = Arc::clone(&child);
        let reader = std::thread::Builder::new()
            .name("journal-reader".into())
            .spawn(move || reader_thread(stdout, stderr, limits, follow, batch, tx, child2))
            .context("spawning journal reader thread")?;
        Ok(JournalSource { rx: Some(rx), pending: Default::default(), child, reader: Some(reader), done: false })
    }

    /// The next entry, blocking; `Ok(None)` at the end of a non-follow input. An `Err` means
    /// the source is dead (see [`ReaderDied`]); later calls return `Ok(None)`.
    // Not an Iterator: it returns Result<Option<_>> and can fail after yielding.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600))? {
                Next::Entry(e) => return Ok(Some(e)),
                Next::End => return Ok(None),
                Next::Idle => continue,
            }
        }
    }

    /// The next entry, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Next> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(Next::Entry(e));
        }
        if self.done {
            return Ok(Next::End);
        }
        let Some(rx) = &self.rx else { return Ok(Next::End) };
        match rx.recv_timeout(timeout) {
            Ok(Ok(batch)) => {
                self.pending.extend(batch);
                match self.pending.pop_front() {
                    Some(e) => Ok(Next::Entry(e)),
                    None => Ok(Next::Idle),
                }
            }
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(RecvTimeoutError::Timeout) => Ok(Next::Idle),
            Err(RecvTimeoutError::Disconnected) => {
                self.done = true;
                Ok(Next::End)
            }
        }
    }

    /// The journalctl child's pid (for diagnostics and tests).
    pub fn child_pid(&self) -> u32 {
        self.child.lock().map(|c| c.id()).unwrap_or(0)
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        // Kill our own child (std does nothing if it was already reaped), then drop the
        // receiver so a reader blocked on a full channel wakes up, then join it.
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
        }
        self.rx.take();
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

fn reader_thread(
    stdout: std::process::ChildStdout,
    mut stderr: std::process::ChildStderr,
    limits: Limits,
    follow: bool,
    batch_max: usize,
    tx: SyncSender<Msg>,
    child: Arc<Mutex<Child>>,
) {
    // Drain stderr concurrently so journalctl never blocks on it; keep the tail.
    let err_thread = std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > STDERR_KEEP {
                        kept.drain(..kept.len() - STDERR_KEEP);
                    }
                }
            }
        }
        String::from_utf8_lossy(&kept).trim().to_string()
    });
    let mut reader = ExportReader::new(BufReader::with_capacity(256 * 1024, stdout), limits);
    let mut batch: Vec<Entry> = Vec::with_capacity(batch_max);
    let failure: Option<String> = loop {
        let (entry, failure) = match reader.next_entry() {
            Ok(Some(e)) => (Some(e), None),
            Ok(None) => (None, None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let stop = entry.is_none();
        if let Some(e) = entry {
            batch.push(e);
        }
        // Send when the batch is full, when journalctl has nothing more buffered (so entries
        // never wait for input that may not come), or at the end.
        let flush = stop || batch.len() >= batch_max || reader.get_ref().buffer().is_empty();
        if flush && !batch.is_empty() {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_max));
            if tx.send(Ok(full)).is_err() {
                // Consumer gone: stop journalctl and leave quietly.
                if let Ok(mut c) = child.lock() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return;
            }
        }
        if stop {
            break failure;
        }
    };
    let (exited_ok, status) = match child.lock() {
        Ok(mut c) => {
            if failure.is_some() {
                let _ = c.kill();
            }
            match c.wait() {
                Ok(s) => (s.success(), s.to_string()),
                Err(e) => (false, format!("wait failed: {e}")),
            }
        }
        Err(_) => (false, "unknown (lock poisoned)".to_string()),
    };
    let stderr_text = err_thread.join().unwrap_or_default();
    let died = match failure {
        Some(f) => Some(format!("corrupt output: {f}; journalctl {status}")),
        None if !exited_ok => Some(status),
        // A follow never ends on its own; a clean exit while following is still a dead source.
        None if follow => Some(format!("ended while following ({status})")),
        None => None,
    };
    if let Some(status) = died {
        let _ = tx.send(Err(anyhow!(ReaderDied { status, stderr: stderr_text })));
    }
}

/// Journal files in `dir` and its immediate subdirectories (`*.journal`, `*.journal~`),
/// sorted, for reading a directory without following it.
pub fn journal_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    let visit = |d: &Path, depth: u8, out: &mut Vec<PathBuf>| -> Result<Vec<PathBuf>> {
        let mut subdirs = vec![];
        for e in std::fs::read_dir(d).with_context(|| format!("reading journal directory {}", d.display()))? {
            let e = e.with_context(|| format!("reading journal directory {}", d.display()))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type().with_context(|| format!("stat {}", p.display()))?;
            if ft.is_dir() && depth == 0 {
                subdirs.push(p);
            } else if ft.is_file() && (name.ends_with(".journal") || name.ends_with(".journal~")) {
                out.push(p);
            }
        }
        Ok(subdirs)
    };
    let subdirs = visit(dir, 0, &mut out)?;
    for s in subdirs {
        visit(&s, 1, &mut out)?;
    }
    out.sort();
    Ok(out)
}
