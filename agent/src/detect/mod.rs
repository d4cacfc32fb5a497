//! Detection: journal entries and probe readings in, incidents out.
//!
//! * [`rules`]: the table of journal rules (plain names, easy to extend).
//! * [`detector`]: [`Detector`] applies the rules, validates unit names, maps backup units,
//!   dedupes the several lines systemd logs for one failure, allocates incident ids.
//! * [`probes`]: disk usage, sustained CPU (naming the unit), certificate expiry, restore
//!   schedule.
//! * [`backup_completed`]: successful backup runs (a record, not an incident).
//! * [`ids`]: `INC-YYYYMMDD-NNNN` allocator. [`unit_name`]: systemd unit-name grammar.
//! * [`trust`]: who wrote an entry, from the fields journald sets (ARCHITECTURE.md,
//!   "Journal trust model"). [`kernel`]: the kernel's out-of-space messages by exact form.
//! * [`logins`]: break-glass use and bursts of failed log-ins (sshd, logind).
//! * [`no_space`]: a job's own out-of-space lines (its failure becomes `disk_full`);
//!   [`mounts`]: which mount a disk-full incident is about.
//! * `msp-agent detect`: what the agent would do with a journal; executes nothing.

pub mod backup_completed;
pub mod detector;
pub mod ids;
pub mod kernel;
pub mod logins;
pub mod mounts;
pub mod no_space;
pub mod probes;
pub mod rules;
pub mod text;
pub mod trust;
pub mod unit_name;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

pub use detector::{DetectConfig, Detector};
pub use ids::IncidentIds;
pub use probes::Finding;

use crate::exit::Exit;
use crate::incident::{Incident, IncidentSource};
use crate::runbook::model::Runbook;
use crate::journal::{self, Input, JournalSource, SourceConfig};

/// The journal fields the detector reads. Can be passed as [`SourceConfig::output_fields`],
/// but measured slower with journalctl 252 than asking for all fields (BENCHMARKS.md,
/// "Journal ingest");
/// kept to document the detector's inputs and for newer journalctl versions.
pub const FIELDS: &[&str] = &[
    "MESSAGE", "MESSAGE_ID", "PRIORITY", "UNIT", "_SYSTEMD_UNIT", "_PID", "_TRANSPORT", "_COMM",
    "SYSLOG_IDENTIFIER", "UNIT_RESULT", "EXIT_CODE", "EXIT_STATUS", "JOB_RESULT", "_HOSTNAME",
    "_UID", "_EXE", "_SYSTEMD_USER_UNIT", "SYSLOG_FACILITY", "USER_ID", "SESSION_ID",
];

/// `msp-agent detect`
#[derive(Debug, Args)]
pub struct DetectCmd {
    /// Journal files to read (as `journalctl --file`).
    #[arg(long = "journal-file", value_name = "FILE")]
    pub journal_files: Vec<PathBuf>,
    /// Journal directories to read (their `*.journal` files and those of their subdirectories).
    #[arg(long = "journal-dir", value_name = "DIR")]
    pub journal_dirs: Vec<PathBuf>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Runbooks to plan with (as the daemon would); default: the runbooks built into this
    /// binary.
    #[arg(long, value_name = "DIR")]
    pub runbooks: Option<PathBuf>,
}

/// What planning decided for an incident, as `detect` prints it.
pub struct Planned {
    /// The runbook that would run, if exactly one matches.
    pub runbook_id: Option<String>,
    /// Why it would escalate instead (no match, or several).
    pub escalation: Option<String>,
}

impl Planned {
    /// Plan `inc` among `runbooks` exactly as the daemon does.
    pub fn of(inc: &Incident, runbooks: &[Runbook]) -> Planned {
        match crate::plan::plan(inc, runbooks) {
            crate::plan::Plan::Run(rb) => Planned { runbook_id: Some(rb.id.clone()), escalation: None },
            crate::plan::Plan::Escalate { reason, .. } => Planned { runbook_id: None, escalation: Some(reason) },
        }
    }
}

/// The runbooks `detect` plans with: `dir`'s, or the embedded ones.
fn planning_runbooks(dir: Option<&Path>) -> Result<Vec<Runbook>> {
    match dir {
        Some(d) => {
            let (books, errors) = crate::runbook::model::load_dir(d).with_context(|| format!("reading runbook directory {}", d.display()))?;
            if let Some(e) = errors.first() {
                bail!("{e}");
            }
            Ok(books)
        }
        None => crate::demo::EMBEDDED_RUNBOOKS
            .iter()
            .map(|(name, text)| Runbook::from_bytes(Path::new(name), text.as_bytes()).map_err(|e| anyhow::anyhow!("{e}")))
            .collect(),
    }
}

impl DetectCmd {
    /// Read the journals once, print one line per incident. Exit 0 whether or not there were
    /// incidents; 2 when a journal cannot be read.
    pub fn run(self) -> Result<Exit> {
        let mut files = self.journal_files.clone();
        for f in &files {
            // journalctl would block forever on a FIFO; say what the path is instead.
            if let Some(what) = not_a_regular_file(f) {
                bail!("journal file {}: {what}", f.display());
            }
        }
        for d in &self.journal_dirs {
            let found = journal::journal_files_in(d)?;
            if found.is_empty() {
                bail!("journal directory {} holds no *.journal files", d.display());
            }
            files.extend(found);
        }
        if files.is_empty() {
            bail!("give at least one --journal-file or --journal-dir");
        }
        // All fields: journalctl 252 formats `--output-fields` output slower, not faster
        // (BENCHMARKS.md, "Journal ingest").
        let cfg = SourceConfig::new(Input::Files(files));
        let mut source = JournalSource::start(&cfg)?;
        let runbooks = planning_runbooks(self.runbooks.as_deref())?;
        let mut detector = Detector::new(DetectConfig::new(), IncidentIds::in_memory());
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        while let Some(entry) = source.next().context("reading the journal")? {
            if let Some(inc) = detector.observe(&entry, chrono::Utc::now())? {
                let planned = Planned::of(&inc, &runbooks);
                let line = if self.json { json_line(&inc, &planned)? } else { text_line(&inc, &planned) };
                writeln!(out, "{line}").context("writing to stdout")?;
            }
        }
        out.flush().context("writing to stdout")?;
        Ok(Exit::Ok)
    }
}

/// Why `path` cannot be read as a journal file, or `None` when it is a regular file
/// (see [`crate::fsutil::not_a_regular_file`]).
pub fn not_a_regular_file(path: &std::path::Path) -> Option<String> {
    crate::fsutil::not_a_regular_file(path)
}

fn journal_pos(inc: &Incident) -> (String, Option<u64>) {
    match &inc.source {
        IncidentSource::Journal { cursor, realtime_usec } => (cursor.clone(), Some(*realtime_usec)),
        _ => (String::new(), None),
    }
}

/// The `--json` line: the incident's fields plus the plan (`runbook_id`, or `escalation` with
/// the reason), `__CURSOR`, `__REALTIME_TIMESTAMP`.
pub fn json_line(inc: &Incident, planned: &Planned) -> Result<String> {
    let (cursor, realtime) = journal_pos(inc);
    let v = json!({
        "incident_id": inc.incident_id,
        "event_type": inc.event_type,
        "severity": inc.severity,
        "runbook_id": planned.runbook_id,
        "escalation": planned.escalation,
        "unit": inc.unit,
        "host": inc.host,
        "__CURSOR": cursor,
        "__REALTIME_TIMESTAMP": realtime.map(|t| t.to_string()),
        "detected_at": inc.detected_at,
        "details": inc.details,
    });
    serde_json::to_string(&v).context("encoding incident")
}

/// The readable line. Every value here is already cleaned of control characters; `{:?}`
/// quotes the message so a hostile one cannot fake extra lines or columns.
pub fn text_line(inc: &Incident, planned: &Planned) -> String {
    let (cursor, realtime) = journal_pos(inc);
    let msg = inc.details.get("message").and_then(|m| m.as_str()).unwrap_or("");
    format!(
        "{} {} {} runbook={} unit={} __REALTIME_TIMESTAMP={} __CURSOR={} message={:?}",
        inc.incident_id,
        inc.event_type,
        inc.severity,
        planned.runbook_id.as_deref().unwrap_or("escalate"),
        inc.unit.as_deref().unwrap_or("-"),
        realtime.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
        cursor,
        msg,
    )
}
