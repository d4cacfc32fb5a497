//! Runbooks: the strict loader ([`model`]), parameter validation ([`params`]), success
//! criteria ([`expr`]) and the executor ([`exec`]); plus `msp-agent runbook lint|run`.

#![warn(missing_docs)]

pub mod exec;
pub mod expr;
pub mod model;
pub mod params;
pub mod phi_lint;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

pub use exec::{execute, to_new_bundle, BundleContext, ExecConfig, ExecutionReport, ResolutionStatus, ResolutionType, StepResult};
pub use model::{LoadError, Runbook, Step};
pub use params::{BindError, Params};

use crate::exit::Exit;
use crate::incident::{Incident, IncidentSource};

/// `msp-agent runbook ...`
#[derive(Debug, Subcommand)]
pub enum RunbookCmd {
    /// Check runbook files: strict schema, expressions, step ids.
    ///
    /// Exit 0 when every runbook is valid, 1 when any is invalid (every error is printed as
    /// FILE:LINE: FIELD: message), 2 when a path cannot be read.
    Lint {
        /// Runbook files, or directories whose `*.yaml`/`*.yml` files are checked (not recursive).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run one runbook by hand (evidence `resolution_type: manual`).
    ///
    /// Prints the evidence bundle's path; exit 0 when resolved, 1 otherwise, 2 when nothing
    /// could run (bad parameter, runbook, key or store, or too little free space for its
    /// evidence), 3 when the repair ran but its evidence could not be written (the record
    /// is then kept in the journal and in the state directory's `unrecorded/`).
    Run {
        /// Runbook id, e.g. RB-DISK-001.
        id: String,
        /// Parameter override, `name=value`; validated like any other parameter.
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        #[arg(long, value_name = "DIR", default_value = crate::paths::RUNBOOK_DIR)]
        /// Directory of runbooks (`ID.yaml`), not recursive.
        runbooks: PathBuf,
        #[arg(long, value_name = "DIR", default_value = crate::paths::EVIDENCE_DIR)]
        /// Root of the evidence store.
        evidence_dir: PathBuf,
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        /// Directory holding the signing key.
        key_dir: PathBuf,
        #[arg(long, value_name = "DIR", default_value = crate::paths::STATE_DIR)]
        /// The agent's state directory: the incident id counter there is shared with the
        /// daemon, so a manual run gets the next `INC-YYYYMMDD-NNNN` of the host.
        state_dir: PathBuf,
        /// Client id recorded in the bundle.
        #[arg(long, value_name = "ID", env = "MSP_CLIENT_ID", default_value = "unassigned")]
        client_id: String,
        /// Host name recorded in the evidence; use the daemon's (`hostname:` in its config)
        /// so that both write one chain. Default: the kernel host name.
        #[arg(long, value_name = "NAME", env = "MSP_HOST")]
        host: Option<String>,
        /// Agent config whose `alert:` section (journal at crit, webhook if set) is told when
        /// the repair ran but its evidence could not be written (exit 3); the NixOS module's
        /// scheduled runs pass /etc/msp/agent.yaml.
        #[arg(long, value_name = "FILE")]
        alert_config: Option<PathBuf>,
    },
}

impl RunbookCmd {
    /// Run the subcommand.
    pub fn run(self) -> Result<Exit> {
        match self {
            RunbookCmd::Lint { paths } => lint(&paths),
            RunbookCmd::Run { id, params, runbooks, evidence_dir, key_dir, state_dir, client_id, host, alert_config } => {
                let host = host.unwrap_or_else(hostname);
                let dirs = ManualDirs { evidence: &evidence_dir, keys: &key_dir, state: &state_dir };
                // Read before anything runs: a bad alert config must not surface only after
                // the repair, when the alert is needed.
                let alert = alert_config.map(|p| crate::evidence::prune::alert_config(&p)).transpose()?;
                run_manual(&id, &params, &runbooks, &dirs, &client_id, &host, alert.as_ref())
            }
        }
    }
}

/// `runbook lint`: prints every error; see [`RunbookCmd::Lint`] for the exit codes.
fn lint(paths: &[PathBuf]) -> Result<Exit> {
    let mut errors: Vec<LoadError> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut checked = 0usize;
    // Warnings (not errors): a step that would store an application's raw output.
    let mut warn = |rb: &Runbook| {
        let text = std::fs::read_to_string(&rb.source).unwrap_or_default();
        warnings.extend(phi_lint::raw_output_warnings(rb, &text));
    };
    for p in paths {
        if p.is_dir() {
            let (books, errs) = model::load_dir(p).with_context(|| format!("reading directory {}", p.display()))?;
            checked += books.len() + errs.len();
            errors.extend(errs);
            books.iter().for_each(&mut warn);
        } else {
            // Regular files only (a FIFO would block the lint forever), bounded; symlinks are
            // followed: runbooks are often links into the Nix store.
            let bytes = crate::fsutil::read_config_file(p, crate::fsutil::limits::RUNBOOK)?;
            checked += 1;
            match Runbook::from_bytes(p, &bytes) {
                Ok(rb) => warn(&rb),
                Err(e) => errors.push(e),
            }
        }
    }
    for e in &errors {
        println!("{e}");
    }
    for w in &warnings {
        println!("{w}");
    }
    eprintln!("runbook lint: {checked} file(s) checked, {} invalid, {} warning(s)", errors.len(), warnings.len());
    Ok(if errors.is_empty() { Exit::Ok } else { Exit::CheckFailed })
}

/// Find runbook `id` in `dir`. Other broken files in the directory are reported as warnings;
/// a broken or duplicated `id` is an error.
pub fn find_runbook(dir: &Path, id: &str) -> Result<Runbook> {
    let (books, errors) = model::load_dir(dir).with_context(|| format!("reading runbook directory {}", dir.display()))?;
    for e in &errors {
        if e.message.contains(&format!("{id:?}")) || e.file.file_stem().is_some_and(|s| s == id) {
            bail!("runbook {id} is invalid: {e}");
        }
        tracing::warn!("ignoring invalid runbook: {e}");
    }
    books
        .into_iter()
        .find(|b| b.id == id)
        .with_context(|| format!("no runbook with id {id} in {}", dir.display()))
}

/// The operator of a manual run: `$SUDO_USER`, else `$USER`, else `uid:<n>`.
pub fn operator_name() -> String {
    for var in ["SUDO_USER", "USER"] {
        if let Ok(v) = std::env::var(var) {
            let v = crate::scrub::scrub(v.trim());
            if !v.is_empty() && !v.chars().any(char::is_control) && v.len() <= 64 {
                return v;
            }
        }
    }
    format!("uid:{}", nix::unistd::getuid())
}

/// The host's name, or `localhost` when it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// Provenance of this agent: version and, on NixOS, the running system's store path.
pub fn provenance() -> crate::evidence::bundle::Provenance {
    crate::evidence::bundle::Provenance {
        agent_version: crate::AGENT_VERSION.to_string(),
        nixos_system: std::fs::read_link("/run/current-system").ok().map(|p| p.display().to_string()),
        baseline_version: None,
        baseline_sha256: None,
    }
}

/// The incident a manual run is recorded under, with id `incident_id`.
pub fn manual_incident(runbook: &Runbook, host: &str, incident_id: String, now: chrono::DateTime<chrono::Utc>) -> Incident {
    let event_type = runbook.trigger_conditions.event_types.0.first().map(|e| e.0.clone()).unwrap_or_default();
    let mut details = std::collections::BTreeMap::new();
    details.insert("trigger".to_string(), serde_json::Value::String("manual".into()));
    Incident {
        incident_id,
        event_type,
        severity: runbook.severity,
        host: host.to_string(),
        detected_at: now,
        source: IncidentSource::Manual,
        unit: None,
        details,
    }
}

/// Where a manual run finds its key and state and writes its evidence.
#[derive(Debug, Clone, Copy)]
pub struct ManualDirs<'a> {
    /// Root of the evidence store.
    pub evidence: &'a Path,
    /// Directory holding the signing key.
    pub keys: &'a Path,
    /// The agent's state directory (the shared incident id counter lives there).
    pub state: &'a Path,
}

fn run_manual(
    id: &str,
    raw_params: &[String],
    dir: &Path,
    dirs: &ManualDirs<'_>,
    client_id: &str,
    host: &str,
    alert: Option<&crate::config::AlertConfig>,
) -> Result<Exit> {
    let overrides = raw_params
        .iter()
        .map(|s| params::parse_override(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let runbook = find_runbook(dir, id)?;
    let (report, recorded) = run_by_hand(&runbook, &overrides, dirs, client_id, host)?;
    match recorded {
        Recorded::Written(written) => {
            println!("{}", written.path.display());
            eprintln!("runbook {id}: {}", report.status.as_str());
            Ok(if report.status == ResolutionStatus::Resolved { Exit::Ok } else { Exit::CheckFailed })
        }
        Recorded::Lost { error, kept } => {
            let kept = match &kept {
                Some(p) => format!("the unsigned record is kept in {} and in the journal", p.display()),
                None => "the record is in the journal only (the state directory could not be written either)".into(),
            };
            eprintln!(
                "runbook {id}: RAN ({}) but its evidence could not be written: {error:#}; {kept}",
                report.status.as_str()
            );
            if let Some(cfg) = alert {
                let alerter = crate::alert::Alerter::new(cfg)?;
                alerter.raise(crate::alert::Alert {
                    kind: "evidence_unrecorded".into(),
                    client_id: client_id.to_string(),
                    host: host.to_string(),
                    incident_id: Some(report.incident_id.clone()),
                    runbook_id: Some(id.to_string()),
                    bundle_id: None,
                    summary: format!("runbook {id} ran ({}) but its evidence could not be written; {kept}", report.status.as_str()),
                    at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                });
                alerter.shutdown();
            }
            Ok(Exit::RanUnrecorded)
        }
    }
}

/// What became of a manual run's evidence.
#[derive(Debug)]
pub enum Recorded {
    /// The bundle is in the chain.
    Written(crate::evidence::store::Written),
    /// The repair ran but the bundle could not be written: the record went to the journal
    /// (an error event with the whole unsigned record) and, when possible, to
    /// `STATE/unrecorded/<incident>.json`.
    Lost {
        /// Why the append failed.
        error: anyhow::Error,
        /// Where the unsigned record was kept, if the state directory could be written.
        kept: Option<PathBuf>,
    },
}

/// Free space a manual run needs in the evidence directory before it runs anything: a
/// bundle with its signatures and the head is tens of KiB (excerpts are bounded at 4 KiB
/// each), artifacts a step captures are usually a few KiB; 8 MiB leaves room for both with
/// margin, and is small enough never to refuse on a healthy disk.
pub const MIN_EVIDENCE_FREE_BYTES: u64 = 8 << 20;
/// Free inodes needed likewise (bundle, two signatures, artifacts directory and files, head).
pub const MIN_EVIDENCE_FREE_INODES: u64 = 64;

/// Before a repair runs: the evidence directory must have room and take a write (a probe
/// file of 64 KiB written, fsynced and removed). A repair whose evidence cannot be written
/// must not run: refused here with a clear error (exit 2, nothing ran).
pub fn check_evidence_writable(evidence_dir: &Path) -> Result<()> {
    let st = nix::sys::statvfs::statvfs(evidence_dir)
        .with_context(|| format!("statvfs {}", evidence_dir.display()))?;
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    if free < MIN_EVIDENCE_FREE_BYTES {
        bail!(
            "evidence directory {} has {free} bytes free, less than the {MIN_EVIDENCE_FREE_BYTES} a run's evidence needs: nothing was run (free space first)",
            evidence_dir.display()
        );
    }
    // Filesystems without inode accounting report 0 files in total.
    if st.files() > 0 && (st.files_available() as u64) < MIN_EVIDENCE_FREE_INODES {
        bail!(
            "evidence directory {} has {} free inodes, fewer than {MIN_EVIDENCE_FREE_INODES}: nothing was run",
            evidence_dir.display(),
            st.files_available()
        );
    }
    let probe = evidence_dir.join(format!("{}preflight.{}", crate::fsutil::TMP_PREFIX, std::process::id()));
    let result = (|| -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
        f.write_all(&[0u8; 64 << 10])?;
        f.sync_all()?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&probe);
    result.with_context(|| format!("evidence directory {} does not take a write: nothing was run", evidence_dir.display()))
}

/// Keep the record of a run whose bundle could not be written: one journal error event
/// with the whole unsigned record (metadata only: excerpts are scrubbed and bounded), and a
/// copy in `STATE/unrecorded/` for the operator (best effort: often the same full disk).
fn keep_unrecorded(state: &Path, bundle: &crate::evidence::store::NewBundle, error: &anyhow::Error) -> Option<PathBuf> {
    let record = serde_json::json!({
        "error": format!("{error:#}"),
        "client_id": bundle.client_id,
        "hostname": bundle.hostname,
        "incident": bundle.incident,
        "runbook": bundle.runbook,
        "execution": bundle.execution,
        "actions_taken": bundle.actions_taken,
        "rollback": bundle.rollback,
        "verification": bundle.verification,
        "outputs": bundle.outputs,
    });
    tracing::error!(
        incident = %bundle.incident.incident_id,
        runbook = %bundle.runbook.runbook_id,
        record = %record,
        "the repair ran but its evidence bundle could not be written; the unsigned record follows"
    );
    let dir = state.join("unrecorded");
    let path = dir.join(format!("{}.json", bundle.incident.incident_id));
    let bytes = serde_json::to_vec_pretty(&record).ok()?;
    crate::fsutil::create_dir_all(&dir, 0o700).ok()?;
    crate::fsutil::write_once(&path, &bytes, 0o600).ok()?;
    Some(path)
}

/// Run `runbook` by hand with `overrides` and record it (`resolution_type: manual`) in the
/// store at `dirs.evidence`, signed with the key in `dirs.keys`, under the host's next
/// incident id from `dirs.state`. Parameters are refused before anything runs; the key and
/// the store are opened before anything runs, because a remediation whose evidence cannot be
/// written must not run.
pub fn run_by_hand(
    runbook: &Runbook,
    overrides: &[(String, String)],
    dirs: &ManualDirs<'_>,
    client_id: &str,
    host: &str,
) -> Result<(exec::ExecutionReport, Recorded)> {
    let id = &runbook.id;
    let evidence_dir = dirs.evidence;
    let params = runbook.bind_params(None, overrides).with_context(|| format!("runbook {id}"))?;
    crate::evidence::store::check_state_dir(dirs.state)?;
    crate::evidence::store::check_evidence_dir(evidence_dir)?;
    let signer = crate::keys::Signer::load(dirs.keys)?;
    // Check the store opens (and is ours to write) before anything runs; the lock is then
    // released so the daemon can keep recording while this runbook runs, and taken again
    // for the append.
    let mut store = crate::evidence::store::EvidenceStore::open_waiting(evidence_dir, crate::daemon::STORE_WAIT)?;
    // An older agent's unsigned chain head is signed now, before anything runs.
    store.sign_legacy_head(&signer, chrono::Utc::now())?;
    drop(store);
    check_evidence_writable(evidence_dir)?;

    crate::fsutil::create_dir_all(dirs.state, 0o700)?;
    let now = chrono::Utc::now();
    let incident_id = crate::detect::ids::IncidentIds::open(&dirs.state.join(crate::detect::ids::STATE_FILE))?.next(now)?;
    let incident = manual_incident(runbook, host, incident_id, now);
    let work = tempfile::Builder::new().prefix("msp-run-").tempdir().context("creating the run directory")?;
    let cfg = ExecConfig::new(work.path())?;
    let report = execute(runbook, &params, &incident, &cfg)?;
    let ctx = BundleContext {
        client_id: client_id.to_string(),
        hostname: host.to_string(),
        operator: operator_name(),
        resolution_type: ResolutionType::Manual,
        provenance: provenance(),
    };
    let bundle = to_new_bundle(&report, &incident, runbook, &ctx);
    // From here on the repair has run: a failure to record it must not look like "nothing
    // ran" (exit 2). The record is kept, and the caller says the repair ran (exit 3).
    let appended = crate::evidence::store::EvidenceStore::open_waiting(evidence_dir, crate::daemon::STORE_WAIT)
        .and_then(|mut s| s.append(bundle.clone(), &signer, chrono::Utc::now()));
    match appended {
        Ok(written) => Ok((report, Recorded::Written(written))),
        Err(error) => {
            let kept = keep_unrecorded(dirs.state, &bundle, &error);
            Ok((report, Recorded::Lost { error, kept }))
        }
    }
}
