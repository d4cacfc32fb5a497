//! The daemon (`msp-agent run --config FILE`): the loop that runs on every clinic server.
//!
//! One thread owns all decisions (this module's [`Daemon`]): it reads journal entries, runs
//! the probes on their schedule, detects, plans, asks the guard, writes escalation and
//! suppression records, and dispatches runbook executions to worker threads (at most
//! `max_concurrent_runbooks`, at most one per target). Workers execute, write the bundle, and
//! report back over a channel. Only the owner thread touches the cursor and the guard, so
//! their invariants need no locks. The evidence store is opened for each append and its file
//! lock held only for that append ([`STORE_WAIT`]), so other writers on the host (the weekly
//! restore-test timer, an operator's `runbook run`) take turns with the daemon.
//!
//! Cursor rule: the committed cursor is the last entry read when nothing is in flight, else
//! the entry just before the oldest entry whose runbook is still running. Guard state is saved
//! before each cursor commit, and the evidence mark (see [`recovery`]) after it.
//!
//! Besides incidents, the loop writes observation records ([`records`]): a heartbeat at start
//! and every `heartbeat.interval_seconds`, and a `backup_completed` record for each successful
//! backup run read from the journal (written before the cursor can pass its entry, and
//! skipped like any handled entry after a restart). Drift reported by the [`crate::drift`]
//! watcher becomes a `config_drift` incident, alerted at once and planned like any other.

mod no_space;
pub mod policy_checks;
pub mod records;
pub mod recovery;
pub mod resume;
pub mod sla;
pub mod upload;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use chrono::Utc;
use clap::Args;
use libsystemd::daemon::NotifyState;

use crate::alert::{Alert, Alerter};
use crate::config::Config;
use crate::detect::backup_completed::BackupWatch;
use crate::drift::watcher::DriftWatcher;
use crate::detect::detector::{DetectConfig, Detector};
use crate::detect::ids::IncidentIds;
use crate::detect::probes::{self, CpuProbe, Finding, RestoreSchedule};
use crate::evidence::bundle::Provenance;
use crate::evidence::store::{EvidenceStore, NewBundle, Written};
use crate::exit::Exit;
use crate::guard::{Guard, GuardKey, Verdict};
use crate::incident::{event_type, Incident};
use crate::journal::{Checkpoint, Input, JournalSource, Next, SourceConfig, StartAt};
use crate::keys::Signer;
use crate::plan::{plan, Plan};
use crate::runbook::exec::{execute, to_new_bundle, BundleContext, ExecConfig, ResolutionStatus, ResolutionType};
use crate::runbook::model::Runbook;
use crate::runbook::params::Params;
use records::RecordContext;
use recovery::EvidenceMark;

/// `msp-agent run`
#[derive(Debug, Args)]
pub struct RunCmd {
    /// The configuration file.
    #[arg(long, value_name = "FILE", default_value = crate::paths::CONFIG_FILE)]
    pub config: PathBuf,
}

impl RunCmd {
    /// Run until SIGTERM/SIGINT; exit 0 after a clean shutdown.
    pub fn run(self) -> Result<Exit> {
        let config = Config::load(&self.config)?;
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
        }
        let mut daemon = Daemon::start(config, stop)?;
        daemon.run_loop()?;
        daemon.shutdown()?;
        Ok(Exit::Ok)
    }
}

/// State files under `state_dir`.
struct StatePaths {
    cursor: PathBuf,
    mark: PathBuf,
    guard: PathBuf,
    incident_ids: PathBuf,
    restore: PathBuf,
    runs: PathBuf,
    /// When the daemon first started on this host (UNIX seconds): where reading begins
    /// until there is a cursor.
    first_start: PathBuf,
}

impl StatePaths {
    fn new(dir: &Path) -> StatePaths {
        StatePaths {
            cursor: dir.join("journal.cursor"),
            mark: dir.join("evidence-mark.json"),
            guard: dir.join("guard.json"),
            incident_ids: dir.join(crate::detect::ids::STATE_FILE),
            restore: dir.join("restore-schedule.json"),
            runs: dir.join("runs"),
            first_start: dir.join("first-start"),
        }
    }
}

/// A journal entry whose incident's runbook is still running.
struct InFlightEntry {
    /// Cursor of the entry read just before it (what may be committed while it runs).
    prev_cursor: Option<String>,
    /// The store's head sequence when it was read (the evidence mark while it is oldest).
    head_at_read: u64,
}

/// What a worker reports.
struct Done {
    entry: Option<u64>,
    key: GuardKey,
    incident: Incident,
    runbook_id: String,
    result: Result<(ResolutionStatus, Written)>,
}

/// Counters for `STATUS=` and the shutdown log line.
#[derive(Default)]
struct Stats {
    entries: u64,
    incidents: u64,
    runs: u64,
    suppressed: u64,
    escalated: u64,
}

/// The daemon's state; see the module docs.
pub struct Daemon {
    cfg: Config,
    host: String,
    provenance: Provenance,
    paths: StatePaths,
    runbooks: Arc<Vec<Runbook>>,
    signer: Arc<Signer>,
    evidence_dir: Arc<PathBuf>,
    guard: Guard,
    alerter: Option<Arc<Alerter>>,
    worm: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
    checkpoint: Checkpoint,
    detector: Detector,
    /// Cursors already recorded in evidence before a crash (skipped once when read again).
    handled: HashSet<String>,
    source: Option<JournalSource>,
    source_retry_at: Option<Instant>,
    /// When the journal source went down (None while it works) and whether that outage has
    /// been recorded as evidence yet.
    source_down: Option<(Instant, chrono::DateTime<Utc>, String)>,
    source_down_recorded: bool,
    next_entry: u64,
    last_read_cursor: Option<String>,
    in_flight: BTreeMap<u64, InFlightEntry>,
    running: usize,
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
    stop: Arc<AtomicBool>,
    watchdog: Option<Duration>,
    last_ping: Instant,
    last_flush: Instant,
    next_probe: Instant,
    cpu: CpuProbe,
    restore: RestoreSchedule,
    stats: Stats,
    /// Successful backup runs in the journal.
    backups: BackupWatch,
    /// The drift watcher (None when `drift.enabled` is false).
    drift: Option<DriftWatcher>,
    next_heartbeat: Instant,
    started_at: chrono::DateTime<Utc>,
    /// The systemd unit this agent runs in (from /proc/self/cgroup), if any.
    own_unit: Option<String>,
    /// The baseline's agent-enforced values (see [`crate::policy`]).
    policy: crate::policy::AgentPolicy,
    /// Every agent check's latest outcome (carried by each heartbeat).
    board: crate::checks::Board,
    /// Newest `backup_completed` record per backup unit.
    backup_ages: crate::checks::backup_age::BackupAges,
    /// When the baseline checks (clock, system age, backup age, TLS) run next.
    next_policy_check: Instant,
    /// (check, target) → when its violation was last raised (cleared when it holds again).
    violations: BTreeMap<(String, String), Instant>,
    /// When the agent first started on this host (a backup unit without records counts from it).
    first_start: chrono::DateTime<Utc>,
    /// Incidents whose SLA deadline has not passed and that are not resolved yet.
    sla: sla::SlaClock,
}

/// How long a writer waits for another one (a manual run's append) to release the store.
pub const STORE_WAIT: Duration = Duration::from_secs(60);
/// How often the cursor and guard state are made durable when nothing forces it sooner.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long one wait for a journal entry may last (bounds the watchdog and probe latency).
const POLL: Duration = Duration::from_millis(200);

impl Daemon {
    /// Open everything, start the journal source, tell systemd we are ready.
    pub fn start(mut cfg: Config, stop: Arc<AtomicBool>) -> Result<Daemon> {
        // The baseline first: a configuration that weakens one of its rules never runs.
        let policy = crate::policy::AgentPolicy::for_config(
            cfg.baseline.as_ref().and_then(|b| b.file.as_deref()),
            cfg.baseline.as_ref().and_then(|b| b.sha256.as_deref()),
        )?;
        cfg.check_policy(&policy)?;
        // The PHI filter every excerpt, artifact, detail and alert passes: the baseline's
        // patterns and excerpt bound (or the config's smaller one), installed for the process.
        let phi = crate::scrub::PhiFilter::new(
            &policy.scrub_patterns,
            crate::scrub::Bounds {
                excerpt_max_bytes: cfg.evidence_excerpt_max_bytes.unwrap_or(policy.evidence_excerpt_max_bytes),
                ..crate::scrub::Bounds::default()
            },
        )
        .context("the PHI filter from the baseline's phi.scrub_patterns")?;
        crate::scrub::install(Arc::new(phi));
        let host = cfg.effective_hostname()?;
        let paths = StatePaths::new(&cfg.state_dir);
        // Ownership and modes first (StrictModes): nothing is read from a directory another
        // user could have written.
        crate::evidence::store::check_state_dir(&cfg.state_dir)?;
        crate::evidence::store::check_evidence_dir(&cfg.evidence_dir)?;
        crate::fsutil::create_dir_all(&cfg.state_dir, 0o700)?;
        // Run directories left by a crash hold nothing the evidence needs (a run's artifacts
        // are copied into its bundle before the directory is removed); start clean.
        if paths.runs.exists() {
            std::fs::remove_dir_all(&paths.runs).with_context(|| format!("clearing {}", paths.runs.display()))?;
        }
        crate::fsutil::create_dir_all(&paths.runs, 0o700)?;

        let key_file = cfg.effective_signing_key_file();
        let signer = Arc::new(load_signer(&key_file)?);
        // Opening checks and repairs the store (orphans from a crash) before anything runs;
        // an older agent's unsigned chain head is replaced by a signed one here, once.
        EvidenceStore::open_waiting(&cfg.evidence_dir, STORE_WAIT)?.sign_legacy_head(&signer, Utc::now())?;

        let (runbooks, errors) = crate::runbook::model::load_dir(&cfg.runbooks_dir)
            .with_context(|| format!("reading runbook directory {}", cfg.runbooks_dir.display()))?;
        check_runbook_parameters(&cfg, &runbooks)?;
        let mut guard = Guard::new(cfg.guard.clone(), cfg.approved_runbooks.clone(), cfg.client_permissions.clone());
        guard.load_state(&paths.guard)?;
        let checkpoint = Checkpoint::open(&paths.cursor)?;
        let mark = EvidenceMark::load(&paths.mark)?;
        let handled = recovery::handled_cursors(&cfg.evidence_dir, mark)?;
        let mut detect_cfg = DetectConfig::new();
        detect_cfg.host = host.clone();
        detect_cfg.backup_units = cfg.journal.backup_unit_patterns.clone();
        detect_cfg.dedupe_window_secs = cfg.journal.dedupe_window_seconds;
        detect_cfg.logins = cfg.logins.rules();
        detect_cfg.unit_paths = Some(no_space::unit_paths);
        let detector = Detector::new(detect_cfg, IncidentIds::open(&paths.incident_ids)?);
        let restore = RestoreSchedule::load(&paths.restore)?;
        let cpu = CpuProbe::new(
            f64::from(cfg.probes.cpu.threshold_percent),
            (cfg.probes.cpu.sustained_seconds / cfg.probes.interval_seconds.max(1)).max(1) as u32,
        );
        let alerter = Alerter::new(&cfg.alert)?;
        let mut provenance = crate::runbook::provenance();
        provenance.nixos_system = read_link_string(&cfg.provenance.current_system_link);
        // The baseline actually enforced (its hash was checked against `baseline.sha256`).
        provenance.baseline_version = Some(policy.baseline_version.clone());
        provenance.baseline_sha256 = Some(policy.baseline_sha256.clone());
        let first_start = chrono::DateTime::<Utc>::from_timestamp(first_start_secs(&paths.first_start)?, 0).unwrap_or_else(Utc::now);
        let backup_ages = crate::checks::backup_age::BackupAges::scan(&cfg.evidence_dir, Utc::now())?;
        let drift = if cfg.drift.enabled { Some(start_drift_watcher(&cfg, &key_file)?) } else { None };
        let backups = BackupWatch::new(cfg.journal.backup_unit_patterns.clone());
        let (done_tx, done_rx) = channel();
        let last_read_cursor = checkpoint.cursor().map(str::to_string);
        let own_unit = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|t| unit_of_cgroup(&t));
        let mut daemon = Daemon {
            own_unit,
            host,
            provenance,
            paths,
            runbooks: Arc::new(runbooks),
            signer,
            evidence_dir: Arc::new(cfg.evidence_dir.clone()),
            guard,
            alerter: Some(Arc::new(alerter)),
            worm: None,
            checkpoint,
            detector,
            handled,
            source: None,
            source_retry_at: None,
            source_down: None,
            source_down_recorded: false,
            next_entry: 0,
            last_read_cursor,
            in_flight: BTreeMap::new(),
            running: 0,
            done_tx,
            done_rx,
            stop,
            watchdog: libsystemd::daemon::watchdog_enabled(false),
            last_ping: Instant::now(),
            last_flush: Instant::now(),
            next_probe: Instant::now(),
            cpu,
            restore,
            stats: Stats::default(),
            backups,
            drift,
            next_heartbeat: Instant::now(),
            started_at: Utc::now(),
            cfg,
            policy,
            board: crate::checks::Board::default(),
            backup_ages,
            next_policy_check: Instant::now(),
            violations: BTreeMap::new(),
            first_start,
            sla: sla::SlaClock::default(),
        };
        daemon.start_checks()?;
        for e in &errors {
            daemon.raise("runbook_invalid", None, None, None, format!("runbook not loaded: {e}"));
        }
        if daemon.cfg.journal.enabled {
            daemon.start_source()?;
        }
        if let (Some(mut w), Some(alerter)) = (daemon.cfg.worm.clone(), daemon.alerter.clone()) {
            if w.client_id.is_empty() {
                w.client_id = daemon.cfg.client_id.clone();
            }
            if w.host.is_empty() {
                w.host = daemon.host.clone();
            }
            let stop = Arc::new(AtomicBool::new(false));
            let handle = upload::start(
                w,
                &daemon.cfg.evidence_dir,
                &daemon.cfg.state_dir,
                Arc::clone(&daemon.signer),
                alerter,
                Arc::clone(&stop),
            )?;
            daemon.worm = Some((handle, stop));
        }
        daemon.resume_interrupted()?;
        tracing::info!(
            host = %daemon.host,
            runbooks = daemon.runbooks.len(),
            resumed_after = daemon.last_read_cursor.as_deref().unwrap_or("(none: starting at the journal's tail)"),
            recovered = daemon.handled.len(),
            "msp-agent ready"
        );
        notify(&[NotifyState::Ready, NotifyState::Status("watching the journal".into())]);
        Ok(daemon)
    }

    /// Continue the runs a previous shutdown interrupted (see [`resume`]). A runbook that is
    /// gone, changed or no longer permitted is not resumed: the incident escalates.
    fn resume_interrupted(&mut self) -> Result<()> {
        for r in resume::load_all(&self.cfg.state_dir)? {
            let runbooks = Arc::clone(&self.runbooks);
            let rb = runbooks.iter().find(|b| b.id == r.runbook_id);
            let refusal = match rb {
                None => Some(format!("cannot resume {}: runbook not loaded", r.runbook_id)),
                Some(b) if b.runbook_hash != r.runbook_hash => {
                    Some(format!("cannot resume {}: the runbook changed since the run was interrupted", r.runbook_id))
                }
                Some(b) => self.guard.check_policy(&b.id, &b.runbook_hash).err(),
            };
            let bound = rb.map(|b| b.bind_params_for_host(self.cfg.runbook_parameters.get(&b.id), Some(&r.incident)));
            match (rb, refusal, bound) {
                (Some(rb), None, Some(Ok(params))) => {
                    let key = GuardKey {
                        client_id: self.cfg.client_id.clone(),
                        host: self.host.clone(),
                        runbook_id: rb.id.clone(),
                        target: target_of(&r.incident),
                    };
                    tracing::info!(incident = %r.incident.incident_id, runbook = %rb.id, step = r.next_step + 1, "resuming an interrupted run");
                    self.wait_for_capacity()?;
                    if let Some(summary) = self.guard.started(&key, Utc::now()) {
                        self.write_summary(&summary)?;
                    }
                    self.dispatch(r.incident.clone(), rb.clone(), params, key, None, r.next_step)?;
                }
                (rb, refusal, bound) => {
                    let reason = refusal
                        .or_else(|| bound.and_then(|b| b.err()).map(|e| format!("cannot resume: parameters refused: {e}")))
                        .unwrap_or_else(|| "cannot resume".into());
                    self.escalate(&r.incident, rb, &reason)?;
                    resume::remove(&self.cfg.state_dir, &r.incident.incident_id)?;
                }
            }
        }
        Ok(())
    }

    fn start_source(&mut self) -> Result<()> {
        let input = match &self.cfg.journal.directory {
            Some(d) => Input::Directory(d.clone()),
            None => Input::System,
        };
        let mut sc = SourceConfig::new(input);
        sc.follow = true;
        sc.after_cursor = self.last_read_cursor.clone();
        // A first-ever start does not act on history: only what happens from its first start
        // on (recorded once, so a crash before the first cursor loses nothing).
        sc.start_at = StartAt::Since(first_start_secs(&self.paths.first_start)?);
        // All fields: restricting them with --output-fields measured slower
        // (BENCHMARKS.md, "Journal ingest").
        sc.output_fields = None;
        self.source = Some(JournalSource::start(&sc)?);
        Ok(())
    }

    /// The main loop; returns when a stop signal arrives.
    pub fn run_loop(&mut self) -> Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            self.drain_done(Duration::ZERO)?;
            if Instant::now() >= self.next_policy_check {
                self.run_policy_checks()?;
                self.next_policy_check = Instant::now() + Duration::from_secs(self.cfg.probes.policy_interval_seconds);
            }
            self.check_sla_deadlines()?;
            if Instant::now() >= self.next_heartbeat {
                self.write_heartbeat();
                self.next_heartbeat = Instant::now() + Duration::from_secs(self.cfg.heartbeat_interval_seconds());
            }
            self.handle_drift()?;
            self.read_journal()?;
            if Instant::now() >= self.next_probe {
                self.run_probes()?;
                self.next_probe = Instant::now() + Duration::from_secs(self.cfg.probes.interval_seconds);
            }
            for summary in self.guard.flush_closed_windows(Utc::now()) {
                self.write_summary(&summary)?;
            }
            if self.last_flush.elapsed() >= FLUSH_EVERY {
                self.flush()?;
            }
            self.keepalive();
        }
        Ok(())
    }

    /// Read entries for up to [`POLL`]; restart a dead source with a delay.
    fn read_journal(&mut self) -> Result<()> {
        if self.source.is_none() {
            if !self.cfg.journal.enabled {
                std::thread::sleep(POLL);
                return Ok(());
            }
            self.record_long_source_outage()?;
            match self.source_retry_at {
                Some(t) if Instant::now() < t => {
                    std::thread::sleep(POLL);
                    return Ok(());
                }
                _ => {}
            }
            if let Err(e) = self.start_source() {
                self.source_failed(e);
                return Ok(());
            }
        }
        let deadline = Instant::now() + POLL;
        loop {
            let Some(source) = self.source.as_mut() else { return Ok(()) };
            let wait = deadline.saturating_duration_since(Instant::now());
            match source.next_timeout(wait) {
                Ok(Next::Entry(e)) => {
                    self.source_works();
                    self.on_entry(&e)?
                }
                Ok(Next::Idle) => {
                    self.source_works();
                    return Ok(());
                }
                Ok(Next::End) => {
                    self.source_failed(anyhow!("journalctl ended while following"));
                    return Ok(());
                }
                Err(e) => {
                    self.source_failed(e);
                    return Ok(());
                }
            }
            if Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }

    /// A dead source is an alert, never a silent stall; retry in 5 s from the last entry read.
    fn source_failed(&mut self, err: anyhow::Error) {
        self.source = None;
        self.source_retry_at = Some(Instant::now() + Duration::from_secs(5));
        let text = format!("{err:#}");
        if self.source_down.is_none() {
            // journalctl's stderr: bounded and scrubbed before it can reach evidence.
            self.source_down = Some((Instant::now(), Utc::now(), crate::detect::text::clean(text.as_bytes(), 512)));
        }
        self.raise("journal_source_failed", None, None, None, format!("journal source stopped: {text}; retrying in 5 s"));
    }

    /// The source delivered (an entry, or a quiet wait): any outage is over.
    fn source_works(&mut self) {
        if let Some((since, _, _)) = self.source_down.take() {
            tracing::info!(down_seconds = since.elapsed().as_secs(), "journal source is back; reading on from the last cursor");
        }
        self.source_down_recorded = false;
    }

    /// A source down for `journal.down_record_after_seconds` is itself an incident (DESIGN.md
    /// 7: never stall silently): one signed escalation per outage, so the gap in what the
    /// agent watched is in the evidence, not only in an alert. Nothing is lost meanwhile: the
    /// cursor has not moved, and the source resumes after it.
    fn record_long_source_outage(&mut self) -> Result<()> {
        let Some((since, at, err)) = self.source_down.clone() else { return Ok(()) };
        if self.source_down_recorded || since.elapsed() < Duration::from_secs(self.cfg.journal.down_record_after_seconds) {
            return Ok(());
        }
        self.source_down_recorded = true;
        let mut details = std::collections::BTreeMap::new();
        details.insert("error".to_string(), serde_json::json!(err));
        details.insert("down_since".to_string(), serde_json::json!(crate::runbook::exec::rfc3339(at)));
        details.insert("retry_seconds".to_string(), serde_json::json!(5));
        let mut incident = Incident {
            incident_id: String::new(),
            event_type: event_type::JOURNAL_SOURCE_DOWN.to_string(),
            severity: crate::incident::Severity::High,
            host: self.host.clone(),
            detected_at: Utc::now(),
            source: crate::incident::IncidentSource::Probe { probe: "journal_source".into() },
            unit: None,
            details,
        };
        self.number(&mut incident)?;
        let reason = format!(
            "the journal source has been down since {} ({err}); retrying every 5 s, entries after the last cursor are read when it is back",
            crate::runbook::exec::rfc3339(at),
        );
        self.escalate(&incident, None, &reason)
    }

    fn on_entry(&mut self, e: &crate::journal::Entry) -> Result<()> {
        self.stats.entries += 1;
        let idx = self.next_entry;
        self.next_entry += 1;
        let Some(cursor) = e.cursor().map(str::to_string) else {
            tracing::warn!("journal entry without a cursor ignored");
            return Ok(());
        };
        let prev_cursor = self.last_read_cursor.replace(cursor.clone());
        // Before the handled check, so the dedupe state is the same as without a restart.
        let backup = self.backups.observe(e);
        if self.handled.remove(&cursor) {
            tracing::info!(cursor = %cursor, "entry already handled before a restart; not handling it again");
            return Ok(());
        }
        if let Some(b) = backup {
            // Durable before the cursor can pass this entry (flush runs after this returns).
            let written = self.append(records::backup_completed(&self.record_ctx(), &b, Utc::now()))?;
            if let Some(at) = chrono::DateTime::<Utc>::from_timestamp_micros(b.journal_realtime_usec as i64) {
                self.backup_ages.observe(&b.unit, at);
            }
            tracing::info!(unit = %b.unit, bundle = %written.bundle_id, "backup completed; recorded");
            return Ok(());
        }
        let Some(incident) = self.detector.observe_unnumbered(e, Utc::now()) else { return Ok(()) };
        let head = self.head_sequence();
        if self.handle_incident(incident, Some(idx))? {
            self.in_flight.insert(idx, InFlightEntry { prev_cursor, head_at_read: head });
        }
        Ok(())
    }

    /// Write a heartbeat. A failure is alerted, not fatal: the next one is tried on time, and
    /// the gap stays visible to `evidence verify`.
    fn write_heartbeat(&mut self) {
        let details = serde_json::json!({
            "agent_version": crate::AGENT_VERSION,
            "current_system": read_link_string(&self.cfg.provenance.current_system_link),
            "booted_system": read_link_string(&self.cfg.provenance.booted_system_link),
            "baseline_version": self.policy.baseline_version,
            "baseline_sha256": self.policy.baseline_sha256,
            "interval_seconds": self.cfg.heartbeat_interval_seconds(),
            "agent_started_at": crate::runbook::exec::rfc3339(self.started_at),
            "checks": self.board.to_json(),
        });
        let now = Utc::now();
        // The chain position is read under the writer's lock, so it is exactly the head this
        // heartbeat is appended to.
        let result = EvidenceStore::open_waiting(&self.evidence_dir, STORE_WAIT).and_then(|mut store| {
            let mut details = details;
            records::add_chain_position(&mut details, store.head());
            store.append(records::heartbeat(&self.record_ctx(), details, now), &self.signer, now)
        });
        match result {
            Ok(w) => tracing::debug!(bundle = %w.bundle_id, "heartbeat written"),
            Err(e) => self.raise("heartbeat_failed", None, None, None, format!("writing the heartbeat failed: {e:#}")),
        }
    }

    /// Turn drift the watcher reported into incidents: alert at once, then plan and run
    /// RB-DRIFT-001 (or escalate) like any incident, keyed by the file's path.
    fn handle_drift(&mut self) -> Result<()> {
        let drifts = match &self.drift {
            Some(w) => w.drain(),
            None => return Ok(()),
        };
        for d in drifts {
            let mut details = std::collections::BTreeMap::new();
            details.insert("path".to_string(), serde_json::json!(d.path.to_string_lossy()));
            details.insert("expected_sha256".to_string(), serde_json::json!(d.expected.sha256));
            details.insert("actual_sha256".to_string(), serde_json::json!(d.actual_sha256));
            details.insert("expected_from".to_string(), serde_json::json!(d.expected.from.as_str()));
            details.insert("observed_at".to_string(), serde_json::json!(crate::runbook::exec::rfc3339(d.observed_at)));
            details.insert("reapply".to_string(), serde_json::json!(self.cfg.drift.reapply));
            let mut incident = Incident {
                incident_id: String::new(),
                event_type: event_type::CONFIG_DRIFT.to_string(),
                severity: crate::incident::Severity::High,
                host: self.host.clone(),
                detected_at: d.observed_at,
                source: crate::incident::IncidentSource::Inotify,
                unit: None,
                details,
            };
            self.number(&mut incident)?;
            tracing::warn!(path = %d.path.display(), expected = %d.expected.sha256, actual = %d.actual_sha256, "drift of a governed file");
            self.raise(
                "config_drift",
                Some(&incident.incident_id),
                None,
                None,
                format!(
                    "{} drifted: sha256 {} (expected {} from {})",
                    d.path.display(),
                    d.actual_sha256,
                    d.expected.sha256,
                    d.expected.from.as_str()
                ),
            );
            self.handle_incident(incident, None)?;
        }
        Ok(())
    }

    fn run_probes(&mut self) -> Result<()> {
        let now = Utc::now();
        let p = self.cfg.probes.clone();
        let mut findings: Vec<Finding> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        if p.disk.enabled {
            match probes::probe_disks(&p.disk.mounts, f64::from(p.disk.threshold_percent)) {
                Ok(f) => findings.extend(f),
                Err(e) => errors.push(format!("disk probe: {e:#}")),
            }
        }
        if p.cpu.enabled {
            match self.cpu.sample() {
                Ok(f) => findings.extend(f),
                Err(e) => errors.push(format!("cpu probe: {e:#}")),
            }
        }
        if p.certs.enabled {
            for path in &p.certs.paths {
                let r = if path.is_dir() {
                    probes::probe_certs(path, i64::from(p.certs.warn_days), now)
                } else if path.exists() {
                    probes::check_cert_file(path, i64::from(p.certs.warn_days), now)
                } else {
                    continue;
                };
                match r {
                    Ok(f) => findings.extend(f),
                    Err(e) => errors.push(format!("certificate probe: {e:#}")),
                }
            }
        }
        if p.restore_test.enabled {
            let days = p.restore_test.interval_days.unwrap_or(self.policy.restore_test_interval_days);
            let due = self.restore.check(days, now);
            let detail = serde_json::json!({ "interval_days": days, "last_run": self.restore.last_run.map(crate::runbook::exec::rfc3339) });
            let status = if due.is_some() { crate::checks::Status::Violated } else { crate::checks::Status::Holds };
            self.board.set(crate::checks::id::RESTORE_SCHEDULE, status, now, detail);
            findings.extend(due);
        } else {
            self.board.set(crate::checks::id::RESTORE_SCHEDULE, crate::checks::Status::Disabled, now, serde_json::json!("probes.restore_test.enabled is false"));
        }
        for e in errors {
            tracing::warn!("{e}");
        }
        for f in findings {
            let incident = self.detector.probe_incident_unnumbered(&f, now);
            self.handle_incident(incident, None)?;
        }
        Ok(())
    }

    /// Plan, guard, and either dispatch (returns true) or record why not (false).
    /// `incident` arrives without an id; it gets one only when it leaves a record or runs.
    fn handle_incident(&mut self, mut incident: Incident, entry: Option<u64>) -> Result<bool> {
        self.stats.incidents += 1;
        let now = Utc::now();
        if incident.event_type == event_type::BREAK_GLASS_LOGIN {
            // Break-glass use is a person's to review, whatever runbooks exist: a signed
            // escalation and the alert, never a repair.
            self.number(&mut incident)?;
            let reason = "the break-glass account was used: a person reviews every use (no runbook answers it)";
            self.escalate(&incident, None, reason)?;
            return Ok(false);
        }
        no_space::drop_own_retry(&mut incident, self.own_unit.as_deref());
        let runbooks = Arc::clone(&self.runbooks);
        let rb = match plan(&incident, &runbooks) {
            Plan::Escalate { reason, .. } => {
                self.number(&mut incident)?;
                self.escalate(&incident, None, &reason)?;
                return Ok(false);
            }
            Plan::Run(rb) => rb,
        };
        if incident.unit.is_some() && incident.unit == self.own_unit {
            // The agent's own unit failed (a watchdog kill, a crash): systemd's
            // Restart=on-failure restarts it; the agent restarting itself from inside would
            // kill the very process running the runbook. The record is the alert.
            self.number(&mut incident)?;
            let reason = "the failed unit is the agent's own: systemd restarts it (Restart=on-failure); the agent does not remediate itself";
            self.escalate(&incident, Some(rb), reason)?;
            return Ok(false);
        }
        let key = GuardKey {
            client_id: self.cfg.client_id.clone(),
            host: self.host.clone(),
            runbook_id: rb.id.clone(),
            target: target_of(&incident),
        };
        match self.guard.decide(&key, &rb.runbook_hash, now) {
            Verdict::Refused { reason } => {
                self.number(&mut incident)?;
                self.escalate(&incident, Some(rb), &reason)?;
                Ok(false)
            }
            Verdict::Suppressed { reason, until, record } => {
                self.stats.suppressed += 1;
                tracing::debug!(event = %incident.event_type, target = %key.target, runbook = %rb.id, ?reason, %until, "suppressed");
                if record {
                    self.number(&mut incident)?;
                    let nb = records::suppression(&self.record_ctx(), &incident, rb, reason, until, now);
                    self.append(nb)?;
                }
                // A suppressed repeat is still an unresolved problem: its clock runs too (one
                // clock per target for all its repeats; numbered only if it escalates).
                self.sla.watch(&incident, Some(rb), &key, &self.policy, sla::State::Suppressed);
                Ok(false)
            }
            Verdict::Run => {
                self.number(&mut incident)?;
                let params = match rb.bind_params_for_host(self.cfg.runbook_parameters.get(&rb.id), Some(&incident)) {
                    Ok(p) => p,
                    Err(e) => {
                        self.escalate(&incident, Some(rb), &format!("parameters refused: {e}"))?;
                        return Ok(false);
                    }
                };
                self.wait_for_capacity()?;
                if let Some(summary) = self.guard.started(&key, now) {
                    self.write_summary(&summary)?;
                }
                self.sla.watch(&incident, Some(rb), &key, &self.policy, sla::State::Running);
                self.dispatch(incident, rb.clone(), params, key, entry, 0)?;
                Ok(true)
            }
        }
    }

    fn number(&mut self, incident: &mut Incident) -> Result<()> {
        if incident.incident_id.is_empty() {
            incident.incident_id = self.detector.next_incident_id(incident.detected_at)?;
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        incident: Incident,
        rb: Runbook,
        params: Params,
        key: GuardKey,
        entry: Option<u64>,
        resume_at: usize,
    ) -> Result<()> {
        self.stats.runs += 1;
        self.running += 1;
        tracing::info!(incident = %incident.incident_id, runbook = %rb.id, target = %key.target, "running runbook");
        let work_dir = self.paths.runs.join(&incident.incident_id);
        let ctx = BundleContext {
            client_id: self.cfg.client_id.clone(),
            hostname: self.host.clone(),
            operator: "msp-agent".into(),
            resolution_type: ResolutionType::Automatic,
            provenance: self.provenance.clone(),
        };
        let evidence_dir = Arc::clone(&self.evidence_dir);
        let signer = Arc::clone(&self.signer);
        let tx = self.done_tx.clone();
        let excerpt_bytes = self.cfg.evidence_excerpt_max_bytes.unwrap_or(self.policy.evidence_excerpt_max_bytes);
        let run = RunSettings { excerpt_bytes, resume_at, stop: Arc::clone(&self.stop), state_dir: self.cfg.state_dir.clone() };
        std::thread::Builder::new()
            .name(format!("run-{}", rb.id))
            .spawn(move || {
                let result = run_and_record(&rb, &params, &incident, &work_dir, &ctx, &evidence_dir, &signer, &run);
                if result.is_ok() {
                    // Artifacts are copied into the store; the run directory has served.
                    let _ = std::fs::remove_dir_all(&work_dir);
                }
                let _ = tx.send(Done { entry, key, incident, runbook_id: rb.id.clone(), result });
            })
            .context("starting a runbook worker thread")?;
        Ok(())
    }

    /// Block (keeping the watchdog fed) until a worker slot is free.
    fn wait_for_capacity(&mut self) -> Result<()> {
        while self.running >= self.cfg.max_concurrent_runbooks {
            self.drain_done(POLL)?;
            self.keepalive();
        }
        Ok(())
    }

    /// Handle finished runs, waiting up to `wait` for the first one.
    fn drain_done(&mut self, wait: Duration) -> Result<()> {
        let mut wait = wait;
        loop {
            let done = match self.done_rx.recv_timeout(wait) {
                Ok(d) => d,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            wait = Duration::ZERO;
            self.running -= 1;
            self.on_done(done)?;
        }
    }

    fn on_done(&mut self, done: Done) -> Result<()> {
        match done.result {
            Ok((ResolutionStatus::Interrupted, written)) => {
                // The evidence of what ran is durable and a resume record is written: the
                // entry is handled, the rest of the run happens at the next start.
                self.guard.interrupted(&done.key);
                if let Some(idx) = done.entry {
                    self.in_flight.remove(&idx);
                }
                tracing::info!(incident = %done.incident.incident_id, runbook = %done.runbook_id, bundle = %written.bundle_id, "runbook interrupted by shutdown; resumes at the next start");
            }
            Ok((status, written)) => {
                let ok = status == ResolutionStatus::Resolved;
                self.guard.finished(&done.key, ok);
                if ok {
                    self.sla.resolved(&done.key, &done.incident);
                } else {
                    self.sla.failed(&done.incident.incident_id);
                }
                if let Some(idx) = done.entry {
                    self.in_flight.remove(&idx);
                }
                tracing::info!(
                    incident = %done.incident.incident_id, runbook = %done.runbook_id,
                    bundle = %written.bundle_id, status = status.as_str(), "runbook finished"
                );
                if ok && done.incident.event_type == event_type::RESTORE_TEST_DUE {
                    self.restore.record_run(&self.paths.restore, Utc::now())?;
                }
                if !ok {
                    self.raise(
                        "remediation_failed",
                        Some(&done.incident.incident_id),
                        Some(&done.runbook_id),
                        Some(&written.bundle_id),
                        format!("{} ended {} for {}", done.runbook_id, status.as_str(), target_of(&done.incident)),
                    );
                }
            }
            Err(e) => {
                // No evidence could be written: the entry stays in flight, so the cursor
                // will not pass it and a restart handles it again.
                self.guard.finished(&done.key, false);
                self.raise(
                    "evidence_write_failed",
                    Some(&done.incident.incident_id),
                    Some(&done.runbook_id),
                    None,
                    format!("running {} or recording its evidence failed: {e:#}", done.runbook_id),
                );
            }
        }
        Ok(())
    }

    fn escalate(&mut self, incident: &Incident, rb: Option<&Runbook>, reason: &str) -> Result<()> {
        self.stats.escalated += 1;
        let nb = records::escalation(&self.record_ctx(), incident, rb, reason, Utc::now());
        let written = self.append(nb)?;
        self.raise(
            "escalation",
            Some(&incident.incident_id),
            rb.map(|r| r.id.as_str()),
            Some(&written.bundle_id),
            format!("{} on {}: {reason}", incident.event_type, target_of(incident)),
        );
        Ok(())
    }

    fn write_summary(&mut self, summary: &crate::guard::SuppressionSummary) -> Result<()> {
        let runbooks = Arc::clone(&self.runbooks);
        let rb = runbooks.iter().find(|r| r.id == summary.key.runbook_id);
        let id = self.detector.next_incident_id(Utc::now())?;
        let nb = records::suppression_summary(&self.record_ctx(), summary, rb, id, Utc::now());
        self.append(nb)?;
        Ok(())
    }

    fn record_ctx(&self) -> RecordContext<'_> {
        RecordContext { client_id: &self.cfg.client_id, hostname: &self.host, provenance: &self.provenance }
    }

    fn append(&self, nb: NewBundle) -> Result<Written> {
        EvidenceStore::open_waiting(&self.evidence_dir, STORE_WAIT)?.append(nb, &self.signer, Utc::now())
    }

    fn head_sequence(&self) -> u64 {
        EvidenceStore::read_head_sequence(&self.evidence_dir).unwrap_or(0)
    }

    /// Save guard state, then the cursor, then the evidence mark (this order; see module docs).
    fn flush(&mut self) -> Result<()> {
        self.guard.save(&self.paths.guard)?;
        let target = match self.in_flight.values().next() {
            Some(oldest) => oldest.prev_cursor.clone(),
            None => self.last_read_cursor.clone(),
        };
        if let Some(c) = target {
            if self.checkpoint.durable_cursor() != Some(c.as_str()) {
                self.checkpoint.commit(&c)?;
                let mark = match self.in_flight.values().next() {
                    Some(oldest) => oldest.head_at_read,
                    None => self.head_sequence(),
                };
                EvidenceMark { sequence: mark }.save(&self.paths.mark)?;
            }
        }
        self.last_flush = Instant::now();
        Ok(())
    }

    fn keepalive(&mut self) {
        let Some(interval) = self.watchdog else { return };
        if self.last_ping.elapsed() >= interval / 2 {
            let s = &self.stats;
            let status = format!(
                "entries {} · incidents {} · runs {} (running {}) · suppressed {} · escalated {}",
                s.entries, s.incidents, s.runs, self.running, s.suppressed, s.escalated
            );
            notify(&[NotifyState::Watchdog, NotifyState::Status(status)]);
            self.last_ping = Instant::now();
        }
    }

    /// Stop reading, let running runbooks finish (each bounded by its step timeouts), write
    /// their evidence, save state, commit the cursor.
    pub fn shutdown(mut self) -> Result<()> {
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping: finishing running runbooks".into())]);
        self.source = None;
        while self.running > 0 {
            self.drain_done(POLL)?;
            self.keepalive();
        }
        self.flush()?;
        if let Some((handle, stop)) = self.worm.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
        if let Some(a) = self.alerter.take() {
            match Arc::try_unwrap(a) {
                Ok(a) => a.shutdown(),
                Err(_) => tracing::warn!("alerter still shared at shutdown; queued webhooks may be lost"),
            }
        }
        let s = &self.stats;
        tracing::info!(entries = s.entries, incidents = s.incidents, runs = s.runs, suppressed = s.suppressed, escalated = s.escalated, "msp-agent stopped");
        Ok(())
    }

    fn raise(&self, kind: &str, incident: Option<&str>, runbook: Option<&str>, bundle: Option<&str>, summary: String) {
        if let Some(a) = &self.alerter {
            a.raise(Alert {
                kind: kind.into(),
                client_id: self.cfg.client_id.clone(),
                host: self.host.clone(),
                incident_id: incident.map(str::to_string),
                runbook_id: runbook.map(str::to_string),
                bundle_id: bundle.map(str::to_string),
                summary,
                at: crate::runbook::exec::rfc3339(Utc::now()),
            });
        }
    }
}

/// The service unit a process runs in, from the text of its `/proc/<pid>/cgroup`: the last
/// path component ending in `.service` (cgroup v2 `0::/system.slice/msp-agent.service`, or
/// the v1 `name=systemd` hierarchy on hybrid hosts).
fn unit_of_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.starts_with("0::") || l.contains(":name=systemd:"))
        .filter_map(|l| l.rsplit('/').find(|c| c.ends_with(".service")))
        .map(str::to_string)
        .next()
}

/// A symlink's target as text (`/run/current-system` → its store path); `None` when absent.
fn read_link_string(link: &Path) -> Option<String> {
    std::fs::read_link(link).ok().map(|p| p.to_string_lossy().into_owned())
}

/// Build the governed set (see [`crate::drift`]) and start watching it.
fn start_drift_watcher(cfg: &Config, key_file: &Path) -> Result<DriftWatcher> {
    let key_dir = key_file.parent().filter(|d| !d.as_os_str().is_empty());
    let set = crate::drift::WatchSet::build(&crate::drift::Sources {
        manifest: cfg.baseline.as_ref().and_then(|b| b.manifest.as_deref()),
        config_file: cfg.source_path.as_deref(),
        runbooks_dir: &cfg.runbooks_dir,
        approved_runbooks: &cfg.approved_runbooks,
        key_dir,
    })?;
    DriftWatcher::start(set, Duration::from_millis(cfg.drift.settle_millis))
}

/// A typo in `runbook_parameters` must stop the daemon at start, not surface as a refused
/// run at 3 a.m.: every host value of a loaded runbook is validated now. (Settings for a
/// runbook that is not loaded are left alone: the NixOS module may list more than a host runs.)
fn check_runbook_parameters(cfg: &Config, runbooks: &[Runbook]) -> Result<()> {
    for (id, host) in &cfg.runbook_parameters {
        let Some(rb) = runbooks.iter().find(|r| &r.id == id) else { continue };
        if let Err(e) = rb.bind_params_for_host(Some(host), None) {
            if e.source_of == "runbook_parameters" {
                anyhow::bail!("configuration: runbook_parameters.{id}: {e}");
            }
        }
    }
    Ok(())
}

/// The recorded first start, recording now if there is none.
fn first_start_secs(path: &Path) -> Result<i64> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .with_context(|| format!("{}: expected UNIX seconds, found {:?}", path.display(), text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let now = Utc::now().timestamp();
            crate::fsutil::replace(path, format!("{now}\n").as_bytes(), 0o600)?;
            Ok(now)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// How a worker runs: where to resume, the stop flag, where resume records go.
struct RunSettings {
    /// Excerpt bound (the baseline's `phi.evidence_excerpt_max_bytes` or less).
    excerpt_bytes: usize,
    resume_at: usize,
    stop: Arc<AtomicBool>,
    state_dir: PathBuf,
}

/// Execute and write the bundle, then the resume record if the run was interrupted (runs on
/// a worker thread).
#[allow(clippy::too_many_arguments)]
fn run_and_record(
    rb: &Runbook,
    params: &Params,
    incident: &Incident,
    work_dir: &Path,
    ctx: &BundleContext,
    evidence_dir: &Path,
    signer: &Signer,
    run: &RunSettings,
) -> Result<(ResolutionStatus, Written)> {
    crate::fsutil::create_dir_all(work_dir, 0o700)?;
    let mut exec = ExecConfig::new(work_dir)?;
    // The installed filter already has the daemon's excerpt bound; a smaller one per run wins.
    if run.excerpt_bytes < exec.phi.bounds().excerpt_max_bytes {
        let bounds = crate::scrub::Bounds { excerpt_max_bytes: run.excerpt_bytes, ..exec.phi.bounds() };
        exec.phi = Arc::new(exec.phi.with_bounds(bounds)?);
    }
    exec.stop = Some(Arc::clone(&run.stop));
    exec.resume_at = run.resume_at;
    let report = execute(rb, params, incident, &exec)?;
    let mut nb = to_new_bundle(&report, incident, rb, ctx);
    nb.incident = records::incident_section(incident, rb.hipaa_controls.clone());
    if run.resume_at > 0 {
        if let Some(d) = nb.incident.details.as_object_mut() {
            d.insert("resumed_at_step".into(), serde_json::json!(run.resume_at + 1));
        }
    }
    let written = EvidenceStore::open_waiting(evidence_dir, STORE_WAIT)?.append(nb, signer, Utc::now())?;
    match (report.status, report.next_step) {
        (ResolutionStatus::Interrupted, Some(next_step)) => resume::save(
            &run.state_dir,
            &resume::ResumeRecord {
                incident: incident.clone(),
                runbook_id: rb.id.clone(),
                runbook_hash: rb.runbook_hash.clone(),
                next_step,
                interrupted_bundle: written.bundle_id.clone(),
            },
        )?,
        _ if run.resume_at > 0 => resume::remove(&run.state_dir, &incident.incident_id)?,
        _ => {}
    }
    Ok((report.status, written))
}

/// What a runbook acts on, for the one-run-per-target rule and cooldown keys.
pub fn target_of(incident: &Incident) -> String {
    if let Some(u) = &incident.unit {
        return u.clone();
    }
    if let Some(t) = no_space::retry_target(incident) {
        return t;
    }
    for k in ["mount", "path"] {
        if let Some(v) = incident.details.get(k).and_then(|v| v.as_str()) {
            return v.to_string();
        }
    }
    "host".into()
}

/// Load the key at `path`; it must carry the standard file name, so that the public key
/// beside it (when present) is checked against it by [`Signer::load`].
fn load_signer(path: &Path) -> Result<Signer> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        anyhow::bail!("signing_key_file {} is not a file path", path.display());
    };
    if name != crate::keys::PRIVATE_KEY_FILE {
        anyhow::bail!("signing_key_file {} must be named {}", path.display(), crate::keys::PRIVATE_KEY_FILE);
    }
    Signer::load(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
}

/// Tell systemd (no-op when not started by systemd).
fn notify(states: &[NotifyState]) {
    if let Err(e) = libsystemd::daemon::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runbooks() -> Vec<Runbook> {
        crate::demo::EMBEDDED_RUNBOOKS
            .iter()
            .map(|(name, text)| Runbook::from_bytes(Path::new(name), text.as_bytes()).unwrap())
            .collect()
    }

    fn config(text: &str) -> Config {
        Config::parse(Path::new("/etc/msp/agent.yaml"), text).unwrap()
    }

    #[test]
    fn own_unit_from_cgroup_v2_hybrid_and_none() {
        assert_eq!(unit_of_cgroup("0::/system.slice/msp-agent.service\n").as_deref(), Some("msp-agent.service"));
        let hybrid = "12:cpu,cpuacct:/system.slice/msp-agent.service\n1:name=systemd:/system.slice/msp-agent.service\n0::/system.slice/msp-agent.service\n";
        assert_eq!(unit_of_cgroup(hybrid).as_deref(), Some("msp-agent.service"));
        assert_eq!(unit_of_cgroup("0::/system.slice/msp-agent.service/sub\n").as_deref(), Some("msp-agent.service"));
        assert_eq!(unit_of_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"), None);
        assert_eq!(unit_of_cgroup("0::/\n"), None);
    }

    #[test]
    fn runbook_parameters_are_checked_at_start() {
        let rbs = runbooks();
        let ok = config("client_id: c\nrunbook_parameters:\n  RB-CERT-001:\n    renew_unit: acme-portal.service\n    served_port: \"8443\"\n  RB-NOT-LOADED:\n    anything: x\n");
        check_runbook_parameters(&ok, &rbs).unwrap();
        // Required parameters bound from the incident (cert_path) are not the host's business.
        let typo = config("client_id: c\nrunbook_parameters:\n  RB-CERT-001:\n    renew_units: acme-portal.service\n");
        let e = format!("{:#}", check_runbook_parameters(&typo, &rbs).unwrap_err());
        assert!(e.contains("runbook_parameters.RB-CERT-001") && e.contains("renew_units") && e.contains("no such parameter"), "{e}");
        let bad = config("client_id: c\nrunbook_parameters:\n  RB-CERT-001:\n    renew_unit: \"x; rm -rf /\"\n");
        assert!(check_runbook_parameters(&bad, &rbs).is_err());
    }
}
