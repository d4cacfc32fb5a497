//! The executor: runs a runbook's steps as bash scripts in their own process groups, with a
//! clean environment, bounded output and hard timeouts; then rollback and the closed-loop
//! verification; and turns the result into an evidence bundle's content.
//!
//! Execution model (see ARCHITECTURE.md, "Runbooks and execution", for the reasoning):
//! * `bash --noprofile --norc -e -u -o pipefail -c SCRIPT msp-step`: strict mode is set with
//!   bash's own flags, so the script text run is byte-for-byte the runbook's (its SHA-256 is
//!   the recorded `script_hash`), and no profile or rc file can change behaviour.
//! * Own process group (`setpgid(0, 0)`), stdin `/dev/null`, environment cleared and rebuilt
//!   from `PATH`, `LANG`/`LC_ALL=C`, `HOME`, `TMPDIR`, `MSP_*` only.
//! * At `timeout_seconds` the whole group gets SIGTERM, then SIGKILL after a grace period.
//!   The group leader is observed with `waitid(WNOWAIT)` and reaped only after the group
//!   has been signalled, so its pid (= the group id) cannot be reused in between. When a step
//!   ends normally, anything it left running in its group is killed too: no step outlives
//!   its record.
//! * stdout and stderr are captured in memory up to [`ExecConfig::output_cap`] bytes each; a
//!   step that writes more is killed and failed (large outputs belong in `$MSP_ARTIFACTS`), so
//!   `output_hash` always covers the complete output.
//! * Everything that reaches the bundle passes the PHI filter ([`ExecConfig::phi`]): excerpts
//!   are scrubbed and bounded by the baseline's `phi.evidence_excerpt_max_bytes`; artifacts
//!   are scrubbed and bounded (per artifact and per bundle) into a copy under `scrubbed/`,
//!   which is what the store keeps; the step's own `$MSP_ARTIFACTS` files stay as written,
//!   so later steps read what earlier ones wrote.

use std::cell::Cell;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::model::{Runbook, Step};
use super::params::Params;
use crate::evidence::bundle::{Action, ExecutionSection, IncidentSection, Outputs, Provenance, RunbookSection};
use crate::evidence::store::NewBundle;
use crate::incident::{Incident, IncidentSource};
use crate::scrub::PhiFilter;

/// `PATH` given to scripts: NixOS system paths first, then the FHS ones (any systemd host).
pub const SCRIPT_PATH: &str =
    "/run/wrappers/bin:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How steps are run.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// The bash binary, resolved once (see [`find_bash`]).
    pub bash: PathBuf,
    /// Run directory: scripts' working directory, `HOME` and `TMPDIR` (`tmp/`); artifacts go
    /// to `artifacts/` below it. Must exist, owned by the agent, not shared.
    pub work_dir: PathBuf,
    /// `PATH` for scripts.
    pub path_env: String,
    /// Between SIGTERM and SIGKILL of a timed-out step's group.
    pub kill_grace: Duration,
    /// Per stream, in bytes.
    pub output_cap: usize,
    /// The PHI filter every excerpt, error message and artifact passes; its bounds are the
    /// excerpt size per stream and the artifact limits.
    pub phi: Arc<PhiFilter>,
    /// Set when the agent is stopping: the running step finishes (or times out), the next
    /// steps are not started, and the run ends [`ResolutionStatus::Interrupted`].
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Index of the first step to run: steps before it ran in an interrupted run (their
    /// evidence is in that run's bundle) and are recorded here as skipped.
    pub resume_at: usize,
}

impl ExecConfig {
    /// Defaults for a run in `work_dir`: bash found on this host, 2 s grace, 4 MiB output
    /// cap per stream, the process-wide PHI filter ([`crate::scrub::installed`]: the
    /// embedded baseline's patterns and 2048-byte excerpts unless the host installed its own).
    pub fn new(work_dir: &Path) -> Result<ExecConfig> {
        Ok(ExecConfig {
            bash: find_bash()?,
            work_dir: work_dir.to_path_buf(),
            path_env: SCRIPT_PATH.to_string(),
            kill_grace: Duration::from_secs(2),
            output_cap: 4 << 20,
            phi: crate::scrub::installed(),
            stop: None,
            resume_at: 0,
        })
    }

    /// `$MSP_ARTIFACTS` of this run.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.work_dir.join("artifacts")
    }

    /// Where the scrubbed, bounded copies of collected artifacts go (what the store keeps).
    pub fn scrubbed_dir(&self) -> PathBuf {
        self.work_dir.join("scrubbed")
    }
}

/// Find bash: the NixOS system profile, then the usual FHS locations. Not `$PATH`: the agent's
/// own environment is not trusted to pick the interpreter of root scripts.
pub fn find_bash() -> Result<PathBuf> {
    const CANDIDATES: [&str; 4] = ["/run/current-system/sw/bin/bash", "/usr/bin/bash", "/bin/bash", "/usr/local/bin/bash"];
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .with_context(|| format!("no bash found (looked at {})", CANDIDATES.join(", ")))
}

/// A step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    /// The success criteria held.
    Success,
    /// The criteria did not hold, or the step could not run or overflowed its output.
    Failed,
    /// Killed at `timeout_seconds` (with its process group).
    Timeout,
    /// Not run because an earlier step failed.
    Skipped,
}

impl StepResult {
    /// The bundle's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StepResult::Success => "success",
            StepResult::Failed => "failed",
            StepResult::Timeout => "timeout",
            StepResult::Skipped => "skipped",
        }
    }
}

/// An artifact collected after a step: the scrubbed, bounded copy the bundle stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactRecord {
    /// Name in `$MSP_ARTIFACTS` (and of the copy).
    pub filename: String,
    /// Full path of the scrubbed copy (what `NewBundle::artifact_files` receives).
    pub path: PathBuf,
    /// SHA-256 (hex) of the scrubbed copy.
    pub sha256: String,
    /// Size of the scrubbed copy.
    pub size_bytes: u64,
    /// Size of the file as the step wrote it.
    pub original_size_bytes: u64,
    /// What the PHI filter removed, by kind (non-zero counts only).
    pub redactions: std::collections::BTreeMap<String, u64>,
    /// Whether a bound (per artifact or the bundle's remaining budget) cut it.
    pub truncated: bool,
}

/// What happened in one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// 1-based position in its list (steps or rollback; 1 for the verification).
    pub step: u32,
    /// The step's `id`.
    pub step_id: String,
    /// The step's `action` text.
    pub action: String,
    /// SHA-256 of the `script` text exactly as run.
    pub script_hash: String,
    /// Outcome.
    pub result: StepResult,
    /// Exit code; `None` when killed by a signal, skipped or not started.
    pub exit_code: Option<i32>,
    /// When the step started.
    pub started_at: DateTime<Utc>,
    /// Wall time of the step.
    pub duration_ms: u64,
    /// Last bytes of stdout, bounded and PHI-scrubbed.
    pub stdout_excerpt: String,
    /// Last bytes of stderr, bounded and PHI-scrubbed.
    pub stderr_excerpt: String,
    /// SHA-256 of the complete stdout followed by the complete stderr.
    pub output_hash: String,
    /// Why the step failed, timed out or was skipped; notes about missing evidence (scrubbed).
    pub error_message: Option<String>,
    /// The step's `evidence_capture` files that were collected.
    pub artifacts: Vec<ArtifactRecord>,
}

impl StepRecord {
    /// The bundle's `Action`.
    pub fn to_action(&self) -> Action {
        Action {
            step: self.step,
            step_id: self.step_id.clone(),
            action: self.action.clone(),
            script_hash: self.script_hash.clone(),
            result: self.result.as_str().to_string(),
            exit_code: self.exit_code,
            timestamp: rfc3339(self.started_at),
            duration_ms: self.duration_ms,
            stdout_excerpt: self.stdout_excerpt.clone(),
            stderr_excerpt: self.stderr_excerpt.clone(),
            output_hash: self.output_hash.clone(),
            error_message: self.error_message.clone(),
        }
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionStatus {
    /// Every step succeeded (or failed with `continue_on_failure`) and verification passed.
    Resolved,
    /// A step failed and the rollback ran cleanly and verification passed: the host is back
    /// where it was, the problem is not fixed.
    RolledBack,
    /// Anything else: needs a human.
    Failed,
    /// The agent stopped between two steps; it resumes at `next_step` when it starts again.
    Interrupted,
}

impl ResolutionStatus {
    /// The bundle's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionStatus::Resolved => "resolved",
            ResolutionStatus::RolledBack => "rolled_back",
            ResolutionStatus::Failed => "failed",
            ResolutionStatus::Interrupted => "interrupted",
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionReport {
    /// The runbook run.
    pub runbook_id: String,
    /// The incident it ran for.
    pub incident_id: String,
    /// The incident's detection time (start of MTTR).
    pub detected_at: DateTime<Utc>,
    /// When the first step started.
    pub started_at: DateTime<Utc>,
    /// When the verification ended (end of MTTR).
    pub ended_at: DateTime<Utc>,
    /// One record per runbook step, skipped ones included.
    pub steps: Vec<StepRecord>,
    /// Records of the rollback steps that ran (empty when no rollback was needed).
    pub rollback: Vec<StepRecord>,
    /// The closed-loop verification; runs unless the run was interrupted.
    pub verification: StepRecord,
    /// For an interrupted run: the index of the first step not run (where to resume).
    pub next_step: Option<usize>,
    /// How the run ended.
    pub status: ResolutionStatus,
    /// Detection to end of verification, in seconds.
    pub mttr_seconds: f64,
    /// `sla_minutes` × 60.
    pub sla_target_seconds: u64,
    /// Resolved within the SLA (a run that did not resolve never meets it).
    pub sla_met: bool,
}

impl ExecutionReport {
    /// Steps of `steps` that actually ran.
    pub fn steps_executed(&self) -> u32 {
        self.steps.iter().filter(|s| s.result != StepResult::Skipped).count() as u32
    }

    /// Unique artifact files collected during the run (the scrubbed copies), in collection
    /// order.
    pub fn artifact_files(&self) -> Vec<PathBuf> {
        self.artifact_records().into_iter().map(|a| a.path.clone()).collect()
    }

    /// The last record of each unique artifact file, in first-collection order (a file
    /// captured twice is stored once, as last collected).
    fn artifact_records(&self) -> Vec<&ArtifactRecord> {
        let mut out: Vec<&ArtifactRecord> = Vec::new();
        let all = self.steps.iter().chain(self.rollback.iter()).chain(std::iter::once(&self.verification));
        for a in all.flat_map(|s| s.artifacts.iter()) {
            match out.iter_mut().find(|o| o.path == a.path) {
                Some(o) => *o = a,
                None => out.push(a),
            }
        }
        out
    }

    /// What the store receives: each file with the PHI filter's record.
    pub fn artifact_sources(&self) -> Vec<crate::evidence::bundle::ArtifactFile> {
        self.artifact_records()
            .into_iter()
            .map(|a| crate::evidence::bundle::ArtifactFile {
                path: a.path.clone(),
                scrub: Some(crate::evidence::bundle::ArtifactScrub {
                    redactions: a.redactions.clone(),
                    original_size_bytes: a.original_size_bytes,
                }),
            })
            .collect()
    }
}

/// Run a runbook with already-bound parameters. Never runs anything when `params` did not
/// come from [`Runbook::bind_params`] (the type only exists after validation).
///
/// Returns `Err` only when the run directory cannot be prepared; a step that cannot start is a
/// failed step in the report.
pub fn execute(runbook: &Runbook, params: &Params, incident: &Incident, cfg: &ExecConfig) -> Result<ExecutionReport> {
    let artifacts = cfg.artifacts_dir();
    for d in [&artifacts, &cfg.work_dir.join("tmp"), &cfg.scrubbed_dir()] {
        crate::fsutil::create_dir_all(d, 0o700)?;
    }
    let artifact_budget = Cell::new(cfg.phi.bounds().bundle_artifacts_max_bytes);
    let ctx = RunCtx { runbook, params, incident, cfg, artifact_budget };
    let started_at = Utc::now();
    let mut steps = Vec::new();
    let mut failed_at = None;
    let mut interrupted_at = None;
    let stopping = || cfg.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed));
    for (i, step) in runbook.steps.iter().enumerate() {
        if i < cfg.resume_at {
            steps.push(skipped(i, step, "ran before the agent restarted (see the interrupted run's bundle)"));
            continue;
        }
        if failed_at.is_some() {
            steps.push(skipped(i, step, "not run: an earlier step failed"));
            continue;
        }
        if interrupted_at.is_none() && stopping() {
            interrupted_at = Some(i);
        }
        if interrupted_at.is_some() {
            steps.push(skipped(i, step, "not run: the agent was stopping; it resumes here when it starts again"));
            continue;
        }
        let rec = ctx.run_step(i, step);
        if rec.result != StepResult::Success && !step.continue_on_failure {
            failed_at = Some(i);
        }
        steps.push(rec);
    }
    let mut rollback = Vec::new();
    let mut rollback_ok = true;
    if failed_at.is_some() {
        for (i, step) in runbook.rollback.iter().enumerate() {
            if !rollback_ok {
                rollback.push(skipped(i, step, "not run: an earlier rollback step failed"));
                continue;
            }
            let rec = ctx.run_step(i, step);
            if rec.result != StepResult::Success && !step.continue_on_failure {
                rollback_ok = false;
            }
            rollback.push(rec);
        }
    }
    let verification = if interrupted_at.is_some() {
        skipped(0, &runbook.verification, "not run: the run was interrupted")
    } else {
        ctx.run_step(0, &runbook.verification)
    };
    let verified = verification.result == StepResult::Success;
    let status = match (failed_at, verified) {
        _ if interrupted_at.is_some() => ResolutionStatus::Interrupted,
        (None, true) => ResolutionStatus::Resolved,
        (Some(_), true) if rollback_ok && !runbook.rollback.is_empty() => ResolutionStatus::RolledBack,
        _ => ResolutionStatus::Failed,
    };
    let ended_at = Utc::now();
    let mttr_seconds = ((ended_at - incident.detected_at).num_milliseconds().max(0) as f64) / 1000.0;
    let sla_target_seconds = runbook.sla_minutes * 60;
    Ok(ExecutionReport {
        runbook_id: runbook.id.clone(),
        incident_id: incident.incident_id.clone(),
        detected_at: incident.detected_at,
        started_at,
        ended_at,
        steps,
        rollback,
        verification,
        status,
        next_step: interrupted_at,
        mttr_seconds,
        sla_target_seconds,
        sla_met: status == ResolutionStatus::Resolved && mttr_seconds <= sla_target_seconds as f64,
    })
}

fn skipped(i: usize, step: &Step, why: &str) -> StepRecord {
    StepRecord {
        step: i as u32 + 1,
        step_id: step.id.0.clone(),
        action: step.action.clone(),
        script_hash: sha256_hex(step.script.as_bytes()),
        result: StepResult::Skipped,
        exit_code: None,
        started_at: Utc::now(),
        duration_ms: 0,
        stdout_excerpt: String::new(),
        stderr_excerpt: String::new(),
        output_hash: sha256_hex(b""),
        error_message: Some(why.to_string()),
        artifacts: Vec::new(),
    }
}

struct RunCtx<'a> {
    runbook: &'a Runbook,
    params: &'a Params,
    incident: &'a Incident,
    cfg: &'a ExecConfig,
    /// Bytes the run's artifacts may still take (the PHI filter's per-bundle bound).
    artifact_budget: Cell<usize>,
}

/// What the process did, before criteria.
struct Outcome {
    exit_code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Set when the step was killed or could not run.
    problem: Option<(StepResult, String)>,
}

impl RunCtx<'_> {
    fn run_step(&self, index: usize, step: &Step) -> StepRecord {
        let started_at = Utc::now();
        let t0 = Instant::now();
        let out = self.spawn_and_wait(step);
        let duration_ms = t0.elapsed().as_millis() as u64;
        let mut output_hasher = Sha256::new();
        output_hasher.update(&out.stdout);
        output_hasher.update(&out.stderr);
        let (result, mut error_message) = match out.problem {
            Some((r, msg)) => (r, Some(msg)),
            None => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                let obs = super::expr::Observed { exit_code: out.exit_code, stdout: &stdout, stderr: &stderr };
                if step.success_criteria.eval(&obs) {
                    (StepResult::Success, None)
                } else {
                    let code = out.exit_code.map_or("none (killed by a signal)".to_string(), |c| c.to_string());
                    (
                        StepResult::Failed,
                        Some(format!("success criteria not met: {} (exit code {code})", step.success_criteria.source())),
                    )
                }
            }
        };
        let (artifacts, artifact_problems) = self.collect_artifacts(step);
        if !artifact_problems.is_empty() {
            let joined = artifact_problems.join("; ");
            error_message = Some(match error_message {
                Some(m) => format!("{m}; {joined}"),
                None => joined,
            });
        }
        StepRecord {
            step: index as u32 + 1,
            step_id: step.id.0.clone(),
            action: step.action.clone(),
            script_hash: sha256_hex(step.script.as_bytes()),
            result,
            exit_code: out.exit_code,
            started_at,
            duration_ms,
            stdout_excerpt: self.cfg.phi.excerpt(&out.stdout),
            stderr_excerpt: self.cfg.phi.excerpt(&out.stderr),
            output_hash: hex::encode(output_hasher.finalize()),
            // Error messages can quote output (criteria text, file names): scrub and bound them.
            error_message: error_message.map(|m| self.cfg.phi.excerpt(m.as_bytes())),
            artifacts,
        }
    }

    fn command(&self, step: &Step) -> Command {
        let cfg = self.cfg;
        let mut cmd = Command::new(&cfg.bash);
        cmd.args(["--noprofile", "--norc", "-e", "-u", "-o", "pipefail", "-c"])
            .arg(&step.script)
            .arg(format!("msp-{}-{}", self.runbook.id, step.id.0))
            .env_clear()
            .env("PATH", &cfg.path_env)
            .env("LANG", "C")
            .env("LC_ALL", "C")
            .env("HOME", &cfg.work_dir)
            .env("TMPDIR", cfg.work_dir.join("tmp"))
            .env("MSP_ARTIFACTS", cfg.artifacts_dir())
            .env("MSP_RUNBOOK_ID", &self.runbook.id)
            .env("MSP_STEP_ID", &step.id.0)
            .env("MSP_INCIDENT_ID", &self.incident.incident_id)
            .envs(self.params.env())
            .current_dir(&cfg.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }

    fn spawn_and_wait(&self, step: &Step) -> Outcome {
        let fail = |msg: String| Outcome { exit_code: None, stdout: Vec::new(), stderr: Vec::new(), problem: Some((StepResult::Failed, msg)) };
        // Path parameters were resolved at bind time; refuse one that became a symlink since.
        if let Err(m) = self.params.recheck_paths() {
            return fail(m);
        }
        let mut child = match self.command(step).spawn() {
            Ok(c) => c,
            Err(e) => return fail(format!("could not start {}: {e}", self.cfg.bash.display())),
        };
        let pid = Pid::from_raw(child.id() as i32);
        let overflow = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        for (name, stream) in [("stdout", child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>)), ("stderr", child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>))] {
            if let Some(stream) = stream {
                let tx = tx.clone();
                let overflow = Arc::clone(&overflow);
                let cap = self.cfg.output_cap;
                std::thread::spawn(move || {
                    let buf = read_capped(stream, cap, &overflow);
                    let _ = tx.send((name, buf));
                });
            }
        }
        drop(tx);

        let deadline = Instant::now() + Duration::from_secs(step.timeout_seconds.0);
        let mut problem = None;
        let mut nap = Duration::from_millis(1);
        loop {
            if leader_exited(pid) {
                break;
            }
            if overflow.load(Ordering::Relaxed) {
                problem = Some((
                    StepResult::Failed,
                    format!("output exceeded {} bytes on a stream; process group killed (write large output to $MSP_ARTIFACTS)", self.cfg.output_cap),
                ));
                self.terminate_group(pid);
                break;
            }
            if Instant::now() >= deadline {
                problem = Some((StepResult::Timeout, format!("timed out after {} s; process group killed", step.timeout_seconds.0)));
                self.terminate_group(pid);
                break;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        }
        // Whatever the step left behind in its group dies with it. The leader is not reaped
        // yet, so the group id still names this group.
        let _ = killpg(pid, Signal::SIGKILL);
        let exit_code = match reap(&mut child) {
            Ok(code) => code,
            Err(e) => {
                problem.get_or_insert((StepResult::Failed, format!("waiting for the step: {e}")));
                None
            }
        };
        // The pipes close once every process holding them is gone; a process that escaped the
        // group (setsid) could hold them open, so do not wait for ever.
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let until = Instant::now() + Duration::from_secs(2);
        for _ in 0..2 {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(("stdout", b)) => stdout = b,
                Ok((_, b)) => stderr = b,
                Err(_) => {
                    problem.get_or_insert((
                        StepResult::Failed,
                        "output still held open by a process outside the step's process group".into(),
                    ));
                    break;
                }
            }
        }
        Outcome { exit_code, stdout, stderr, problem }
    }

    /// SIGTERM the group, give it `kill_grace` to exit, then SIGKILL (done by the caller).
    fn terminate_group(&self, pid: Pid) {
        let _ = killpg(pid, Signal::SIGTERM);
        let until = Instant::now() + self.cfg.kill_grace;
        while Instant::now() < until && !leader_exited(pid) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = killpg(pid, Signal::SIGKILL);
    }
}

/// Has the group leader exited? Observed without reaping it (`WNOWAIT`).
fn leader_exited(pid: Pid) -> bool {
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::StillAlive) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: already reaped (cannot happen here) or not ours; treat as gone.
            Err(_) => return true,
        }
    }
}

fn reap(child: &mut Child) -> std::io::Result<Option<i32>> {
    Ok(child.wait()?.code())
}

/// Read a stream to its end, keeping at most `cap` bytes; past the cap, keep draining (so
/// the writer never blocks) and raise `overflow`.
fn read_capped(mut r: impl Read, cap: usize, overflow: &AtomicBool) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(buf.len());
                if n > room {
                    overflow.store(true, Ordering::Relaxed);
                }
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    buf
}

impl RunCtx<'_> {
    /// Collect the step's `evidence_capture` files: each is read (regular files directly
    /// inside the artifacts directory only, no symlinks), passed through the PHI filter,
    /// bounded by the per-artifact limit and what is left of the bundle's budget, and written
    /// to the scrubbed copy the store keeps. Problems are returned as text for the step's
    /// `error_message` (a missing artifact does not change the step's result).
    fn collect_artifacts(&self, step: &Step) -> (Vec<ArtifactRecord>, Vec<String>) {
        let dir = self.cfg.artifacts_dir();
        let mut found = Vec::new();
        let mut problems = Vec::new();
        for name in &step.evidence_capture {
            let name = &name.0;
            match self.scrub_artifact(&dir.join(name), name) {
                Ok(rec) => found.push(rec),
                Err(e) => problems.push(format!("evidence {name}: {e}")),
            }
        }
        (found, problems)
    }

    fn scrub_artifact(&self, src: &Path, name: &str) -> std::result::Result<ArtifactRecord, String> {
        let phi = &self.cfg.phi;
        let limit = phi.bounds().artifact_max_bytes.min(self.artifact_budget.get());
        // Read a little more than the bound: what is past it is cut anyway, and a step's file
        // can be far larger than anything evidence should hold.
        let (head, original_size) = read_regular_file_head(src, limit.saturating_mul(2).max(4096))?;
        let scrubbed = phi.artifact_head(&head, original_size, limit);
        let dest = self.cfg.scrubbed_dir().join(name);
        // A file captured by two steps is collected twice: the later copy replaces the earlier.
        match std::fs::remove_file(&dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("not collected: replacing the earlier copy: {e}")),
        }
        crate::fsutil::write_once(&dest, &scrubbed.bytes, 0o600).map_err(|e| format!("not collected: writing the scrubbed copy: {e:#}"))?;
        self.artifact_budget.set(self.artifact_budget.get().saturating_sub(scrubbed.bytes.len()));
        Ok(ArtifactRecord {
            filename: name.to_string(),
            path: dest,
            sha256: sha256_hex(&scrubbed.bytes),
            size_bytes: scrubbed.bytes.len() as u64,
            original_size_bytes: original_size,
            redactions: scrubbed.redactions.to_map(),
            truncated: scrubbed.truncated,
        })
    }
}

/// The first `max` bytes of a regular file (no symlinks, `O_NOFOLLOW`) and its full size.
fn read_regular_file_head(path: &Path, max: usize) -> std::result::Result<(Vec<u8>, u64), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("not collected: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err("not collected: is a symlink".into());
    }
    if !meta.is_file() {
        return Err("not collected: not a regular file".into());
    }
    // O_NOFOLLOW closes the race where the name is swapped for a symlink after the check.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("not collected: {e}"))?;
    let size = f.metadata().map_err(|e| format!("not collected: {e}"))?.len();
    let mut head = Vec::new();
    (&mut f).take(max as u64).read_to_end(&mut head).map_err(|e| format!("not collected: reading: {e}"))?;
    let size = size.max(head.len() as u64);
    Ok((head, size))
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// RFC 3339 UTC with milliseconds, as every timestamp in a bundle.
pub use msp_evidence::rfc3339;

/// Who ran it: the bundle's `execution.resolution_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolutionType {
    /// Started by the agent for a detected incident.
    Automatic,
    /// Started by an operator (`msp-agent runbook run`).
    Manual,
}

impl ResolutionType {
    /// The bundle's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionType::Automatic => "automatic",
            ResolutionType::Manual => "manual",
        }
    }
}

/// What the bundle needs beyond the run itself.
#[derive(Debug, Clone)]
pub struct BundleContext {
    /// The clinic (MSP client) this host belongs to.
    pub client_id: String,
    /// This host.
    pub hostname: String,
    /// `msp-agent` for automatic runs, the invoking user for manual ones.
    pub operator: String,
    /// Automatic (agent) or manual (operator).
    pub resolution_type: ResolutionType,
    /// Agent version, NixOS system, baseline.
    pub provenance: Provenance,
}

/// The bundle's `incident.source` spelling.
pub fn source_label(s: &IncidentSource) -> String {
    match s {
        IncidentSource::Journal { .. } => "journal".into(),
        IncidentSource::Probe { probe } => format!("probe:{probe}"),
        IncidentSource::Manual => "manual".into(),
        IncidentSource::Inotify => "inotify".into(),
    }
}

/// Turn a run into the content of an evidence bundle (the store adds id, chain, signature).
pub fn to_new_bundle(report: &ExecutionReport, incident: &Incident, runbook: &Runbook, ctx: &BundleContext) -> NewBundle {
    let mut details = serde_json::Map::new();
    for (k, v) in &incident.details {
        details.insert(k.clone(), v.clone());
    }
    if let Some(unit) = &incident.unit {
        details.entry("unit").or_insert_with(|| serde_json::Value::String(unit.clone()));
    }
    let mut details = serde_json::Value::Object(details);
    crate::scrub::installed().scrub_json(&mut details);
    NewBundle {
        client_id: ctx.client_id.clone(),
        hostname: ctx.hostname.clone(),
        incident: IncidentSection {
            incident_id: incident.incident_id.clone(),
            event_type: incident.event_type.clone(),
            severity: incident.severity.to_string(),
            detected_at: rfc3339(incident.detected_at),
            source: source_label(&incident.source),
            details,
            hipaa_controls: runbook.hipaa_controls.clone(),
        },
        runbook: RunbookSection {
            runbook_id: runbook.id.clone(),
            runbook_version: runbook.version.clone(),
            runbook_hash: runbook.runbook_hash.clone(),
            steps_total: runbook.steps.len() as u32,
            steps_executed: report.steps_executed(),
        },
        execution: ExecutionSection {
            timestamp_start: rfc3339(report.started_at),
            timestamp_end: rfc3339(report.ended_at),
            operator: ctx.operator.clone(),
            mttr_seconds: report.mttr_seconds,
            sla_target_seconds: report.sla_target_seconds,
            sla_met: report.sla_met,
            resolution_type: ctx.resolution_type.as_str().to_string(),
        },
        actions_taken: report.steps.iter().map(StepRecord::to_action).collect(),
        rollback: report.rollback.iter().map(StepRecord::to_action).collect(),
        verification: serde_json::to_value(report.verification.to_action()).unwrap_or(serde_json::Value::Null),
        planner: None,
        outputs: Outputs { resolution_status: report.status.as_str().to_string() },
        provenance: ctx.provenance.clone(),
        artifact_files: report.artifact_sources(),
    }
}
