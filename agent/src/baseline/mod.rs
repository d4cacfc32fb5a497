//! The HIPAA baseline: strict loading, consistency check, rendering to Nix data.
//!
//! * [`yaml`]: a line-aware YAML tree (every finding names file and line).
//! * [`fields`]: strict field-by-field reading of a mapping.
//! * [`model`]: the baseline file; [`exceptions`]: client exceptions; [`controls`]: the
//!   controls-map CSV; [`hipaa`]: the Security Rule's list of controls; [`runbooks`]: runbook ids.
//! * [`check`]: `baseline check`; [`render`] + [`nix`]: `baseline render`.
//!
//! Formats are documented in `baseline/README.md`.

pub mod check;
pub mod controls;
pub mod exceptions;
pub mod fields;
pub mod hipaa;
pub mod model;
pub mod nix;
pub mod render;
pub mod report;
pub mod runbooks;
pub mod yaml;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand};

use crate::exit::Exit;

/// Default baseline file, relative to the current directory (the repository root).
pub const DEFAULT_BASELINE: &str = "baseline/hipaa-v1.yaml";
/// Default controls map.
pub const DEFAULT_CONTROLS: &str = "baseline/controls-map.csv";
/// Default exceptions directory.
pub const DEFAULT_EXCEPTIONS: &str = "baseline/exceptions";
/// Default runbooks directory.
pub const DEFAULT_RUNBOOKS: &str = "runbooks";

/// `msp-agent baseline ...`
#[derive(Debug, Subcommand)]
pub enum BaselineCmd {
    /// Check baseline, controls map and exceptions for consistency and expiry.
    /// Exit 0 consistent (warnings allowed), 1 a finding, 2 a file or directory unreadable.
    Check(CheckArgs),
    /// Render the Nix data and the drift manifest.
    Render(RenderArgs),
}

/// Arguments of `baseline check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The baseline YAML.
    #[arg(long, default_value = DEFAULT_BASELINE)]
    pub baseline: PathBuf,
    /// The controls map CSV.
    #[arg(long, default_value = DEFAULT_CONTROLS)]
    pub controls: PathBuf,
    /// Directory of client exception files (`<client>.yaml`).
    #[arg(long, default_value = DEFAULT_EXCEPTIONS)]
    pub exceptions: PathBuf,
    /// Directory of runbooks (YAML files with a top-level `id:`).
    #[arg(long, default_value = DEFAULT_RUNBOOKS)]
    pub runbooks: PathBuf,
    /// Check exception dates at this UTC day (YYYY-MM-DD or RFC 3339); default today (UTC).
    #[arg(long, value_parser = parse_at)]
    pub at: Option<NaiveDate>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print per-section coverage of the controls map.
    #[arg(long)]
    pub coverage: bool,
}

/// Arguments of `baseline render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The baseline YAML.
    #[arg(long, default_value = DEFAULT_BASELINE)]
    pub baseline: PathBuf,
    /// Directory of client exception files.
    #[arg(long, default_value = DEFAULT_EXCEPTIONS)]
    pub exceptions: PathBuf,
    /// Render only this client (it may have no exceptions file). Default: every client with a
    /// file in the exceptions directory, and stale generated files in --out are removed.
    #[arg(long)]
    pub client: Option<String>,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// `--at`: a UTC day, or an RFC 3339 timestamp converted to its UTC day.
pub fn parse_at(s: &str) -> Result<NaiveDate, String> {
    if let Some(d) = fields::parse_date(s) {
        return Ok(d);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc).date_naive())
        .map_err(|_| format!("`{s}` is not a date YYYY-MM-DD or an RFC 3339 timestamp"))
}

impl BaselineCmd {
    /// Run the command.
    pub fn run(self) -> Result<Exit> {
        match self {
            BaselineCmd::Check(a) => run_check(a),
            BaselineCmd::Render(a) => run_render(a),
        }
    }
}

fn run_check(a: CheckArgs) -> Result<Exit> {
    let at = a.at.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let inputs = check::Inputs {
        baseline: a.baseline,
        controls: Some(a.controls),
        exceptions: a.exceptions,
        runbooks: Some(a.runbooks),
    };
    let report = check::check(&inputs, at)?;
    if a.json {
        let mut v = serde_json::to_value(&report).context("serialising the report")?;
        v["ok"] = serde_json::Value::Bool(report.ok());
        println!(
            "{}",
            serde_json::to_string_pretty(&v).context("serialising the report")?
        );
    } else {
        for f in &report.findings {
            println!("{f}");
        }
        if a.coverage {
            print!("{}", check::coverage_table(&report.coverage));
        }
        let verdict = if report.ok() { "OK" } else { "FAILED" };
        println!(
            "baseline check: {verdict}: {} error(s), {} warning(s) (baseline {}, checked at {at})",
            report.errors,
            report.warnings,
            report.baseline_version.as_deref().unwrap_or("not loaded"),
        );
    }
    Ok(if report.ok() {
        Exit::Ok
    } else {
        Exit::CheckFailed
    })
}

fn run_render(a: RenderArgs) -> Result<Exit> {
    if let Some(c) = &a.client {
        if !exceptions::is_client_id(c) {
            bail!("--client `{c}` must be lowercase letters, digits and dashes");
        }
    }
    let inputs = check::Inputs {
        baseline: a.baseline,
        controls: None,
        exceptions: a.exceptions.clone(),
        runbooks: None,
    };
    let loaded = check::load_all(&inputs)?;
    // Render refuses inconsistent input; dates are not checked here (the output must not depend
    // on the day), `baseline check` in CI does that.
    if loaded.findings.errors() > 0 {
        for f in &loaded.findings.items {
            eprintln!("{f}");
        }
        eprintln!(
            "baseline render: refusing to render: {} error(s)",
            loaded.findings.errors()
        );
        return Ok(Exit::CheckFailed);
    }
    let Some(baseline) = &loaded.baseline else {
        bail!("baseline did not load")
    };
    let mut clients = Vec::new();
    for c in &loaded.clients {
        if a.client.as_deref().is_some_and(|want| want != c.client_id) {
            continue;
        }
        let source = std::fs::read(&c.file).with_context(|| format!("reading {}", c.file))?;
        clients.push(render::ClientInput {
            id: c.client_id.clone(),
            exceptions: Some(c),
            source: Some(source),
        });
    }
    if let Some(want) = &a.client {
        if clients.is_empty() {
            clients.push(render::ClientInput {
                id: want.clone(),
                exceptions: None,
                source: None,
            });
        }
    }
    let files = render::render_all(baseline, &clients)?;
    render::write(&a.out, &files, a.client.is_none())?;
    for f in &files {
        println!("{}", a.out.join(&f.name).display());
    }
    Ok(Exit::Ok)
}
