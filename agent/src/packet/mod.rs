//! `msp-agent packet --month YYYY-MM`: the monthly compliance packet an auditor receives.
//!
//! Pipeline: [`load`] the month's bundles and verify them (signatures, key windows, artifacts,
//! chain across the month's edges) → [`assess`] the controls map's freshness rules, incidents,
//! backups, configuration → build one neutral [`doc`] → render [`html`] and [`pdf`] → write
//! the signed [`manifest`] (every bundle's SHA-256, the packet files' hashes). Only verified
//! bundles count; the rest are listed as invalid.
//!
//! [`sample`] generates a month of realistic evidence for tests, the bench and trying it out.

pub mod assess;
pub mod doc;
pub mod html;
pub mod load;
pub use msp_evidence::manifest;
pub mod pdf;
pub mod period;
pub mod sample;
pub mod phi;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;

use crate::baseline::{controls, exceptions, model, report::Findings};
use crate::evidence::keyring::Keyring;
use crate::exit::Exit;
use crate::keys::Signer;

use period::Month;

/// The baseline compiled into the binary (default of `--baseline`).
pub const EMBEDDED_BASELINE: (&str, &str) = (
    "baseline/hipaa-v1.yaml (embedded)",
    include_str!("../../../baseline/hipaa-v1.yaml"),
);
/// The controls map compiled into the binary (default of `--controls-map`).
pub const EMBEDDED_CONTROLS: (&str, &str) = (
    "baseline/controls-map.csv (embedded)",
    include_str!("../../../baseline/controls-map.csv"),
);
/// The exceptions compiled into the binary (default of `--exceptions`): `(client, text)`.
pub const EMBEDDED_EXCEPTIONS: &[(&str, &str)] = &[(
    "clinic-001",
    include_str!("../../../baseline/exceptions/clinic-001.yaml"),
)];

/// `msp-agent packet`
#[derive(Debug, Args)]
pub struct PacketCmd {
    /// The month, `YYYY-MM` (UTC).
    #[arg(long)]
    pub month: String,
    /// The client (default: the one client whose bundles are in the month).
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// Evidence store root (bundles under `YYYY/MM/`).
    #[arg(long, value_name = "DIR", default_value = crate::paths::EVIDENCE_DIR)]
    pub evidence_dir: PathBuf,
    /// Key directory: private key to sign the manifest (and, unless `--keys` is given, the
    /// public keys the bundles are verified with).
    #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
    pub key_dir: PathBuf,
    /// Public key directory (`key-info.json`, `archive/`) to verify the bundles with, when it
    /// is not `--key-dir` (e.g. the private key arrives as a systemd credential).
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Output directory (default `packet-<client>-<month>/` in the current directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Controls map (default: the copy compiled into the binary).
    #[arg(long, value_name = "FILE")]
    pub controls_map: Option<PathBuf>,
    /// Baseline (default: the copy compiled into the binary).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Exceptions directory, `<client>.yaml` (default: the copies compiled into the binary).
    #[arg(long, value_name = "DIR")]
    pub exceptions: Option<PathBuf>,
    /// Judge as if the packet were made at this time (RFC 3339; default now).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

/// A text input: name for messages, contents.
#[derive(Debug, Clone)]
pub struct Source {
    /// File name as shown in errors.
    pub name: String,
    /// Contents.
    pub text: String,
}

impl Source {
    fn read(path: &Path) -> Result<Source> {
        Ok(Source {
            name: path.display().to_string(),
            text: std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        })
    }
    fn embedded(e: (&str, &str)) -> Source {
        Source {
            name: e.0.to_string(),
            text: e.1.to_string(),
        }
    }
}

/// Everything [`generate`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Month.
    pub month: Month,
    /// Client, if given.
    pub client: Option<String>,
    /// Evidence root.
    pub evidence_dir: PathBuf,
    /// Key directory (private key; public keys too unless `keys` is set).
    pub key_dir: PathBuf,
    /// Public key directory, when not `key_dir`.
    pub keys: Option<PathBuf>,
    /// Output directory, if given.
    pub out: Option<PathBuf>,
    /// Controls map.
    pub controls: Source,
    /// Baseline.
    pub baseline: Source,
    /// Exceptions directory (`None`: embedded).
    pub exceptions: Option<PathBuf>,
    /// The time the packet is made (judged at the end of the month or this, if earlier).
    pub now: DateTime<Utc>,
}

/// What [`generate`] wrote and found.
#[derive(Debug)]
pub struct Generated {
    /// Output directory.
    pub out_dir: PathBuf,
    /// Client.
    pub client_id: String,
    /// The assessment (figures as in the packet).
    pub assessment: assess::Assessment,
    /// Bundles of the period listed in the manifest.
    pub bundles: usize,
    /// Of those, invalid.
    pub invalid: usize,
    /// PDF pages.
    pub pages: usize,
    /// The PHI check over the month's evidence (shown in the packet and the manifest).
    pub phi: phi::PhiCheck,
}

impl PacketCmd {
    /// Run the command: exit 0 when the packet was written.
    pub fn run(self) -> Result<Exit> {
        let now = match &self.at {
            None => Utc::now(),
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| format!("--at `{s}` is not an RFC 3339 time"))?,
        };
        let opts = Options {
            month: Month::parse(&self.month)?,
            client: self.client,
            evidence_dir: self.evidence_dir,
            key_dir: self.key_dir,
            keys: self.keys,
            out: self.out,
            controls: match &self.controls_map {
                Some(p) => Source::read(p)?,
                None => Source::embedded(EMBEDDED_CONTROLS),
            },
            baseline: match &self.baseline {
                Some(p) => Source::read(p)?,
                None => Source::embedded(EMBEDDED_BASELINE),
            },
            exceptions: self.exceptions,
            now,
        };
        let g = generate(&opts)?;
        let s = &g.assessment.summary;
        for f in ["packet.html", "packet.pdf", manifest::MANIFEST_FILE] {
            println!("{}", g.out_dir.join(f).display());
        }
        eprintln!(
            "packet: {} {}: {} of {} controls passing, {} incident(s), {} bundle(s) ({} invalid), {} PDF page(s), PHI check: {} identifier(s) found",
            g.client_id,
            opts.month.label(),
            s.controls_passing,
            s.controls_assessed,
            s.incidents,
            g.bundles,
            g.invalid,
            g.pages,
            g.phi.total()
        );
        Ok(Exit::Ok)
    }
}

fn bail_findings(what: &str, f: &Findings) -> Result<()> {
    if f.errors() > 0 {
        let lines: Vec<String> = f.items.iter().map(|x| x.to_string()).collect();
        bail!("{what} has errors:\n{}", lines.join("\n"));
    }
    Ok(())
}

/// Make the packet: HTML, PDF and the signed manifest in the output directory.
pub fn generate(o: &Options) -> Result<Generated> {
    let mut findings = Findings::default();
    let rows = controls::load(&o.controls.name, &o.controls.text, &mut findings);
    bail_findings("the controls map", &findings)?;
    let mut findings = Findings::default();
    let baseline = model::load(&o.baseline.name, &o.baseline.text, &mut findings);
    bail_findings("the baseline", &findings)?;
    let Some(baseline) = baseline else { bail!("{} did not load", o.baseline.name) };
    let baseline_sha256 = model::sha256_hex(o.baseline.text.as_bytes());

    let public = o.keys.as_ref().unwrap_or(&o.key_dir);
    let keys = Keyring::load(public)
        .with_context(|| format!("loading public keys from {}", public.display()))?;
    let signer = Signer::load(&o.key_dir)?;
    let ev = load::load_month(&o.evidence_dir, &o.month, &keys)?;

    // The client: given, or the only one in the month.
    let clients: BTreeSet<&str> = ev
        .bundles
        .iter()
        .filter_map(|l| l.bundle.as_ref().map(|b| b.client_id.as_str()))
        .collect();
    let client_id = match &o.client {
        Some(c) => {
            if !exceptions::is_client_id(c) {
                bail!("--client `{c}` must be lowercase letters, digits and dashes");
            }
            c.clone()
        }
        None => match clients.len() {
            1 => clients.iter().next().map(|c| c.to_string()).unwrap_or_default(),
            0 => bail!(
                "no bundles for {} in {}; give --client to make a packet that shows the missing evidence",
                o.month.label(),
                o.evidence_dir.display()
            ),
            _ => bail!(
                "bundles of several clients in {} ({}); choose one with --client",
                o.month.label(),
                clients.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        },
    };
    // This client's bundles, and any that do not parse (whose client nobody can tell).
    let bundles: Vec<load::Loaded> = ev
        .bundles
        .into_iter()
        .filter(|l| l.bundle.as_ref().is_none_or(|b| b.client_id == client_id))
        .collect();

    // The client's exceptions.
    let exc_source = match &o.exceptions {
        Some(dir) => {
            let p = dir.join(format!("{client_id}.yaml"));
            if p.is_file() {
                Some(Source::read(&p)?)
            } else {
                None
            }
        }
        None => EMBEDDED_EXCEPTIONS
            .iter()
            .find(|(c, _)| *c == client_id)
            .map(|(c, t)| Source {
                name: format!("baseline/exceptions/{c}.yaml (embedded)"),
                text: t.to_string(),
            }),
    };
    let mut findings = Findings::default();
    let client_exceptions = match &exc_source {
        Some(s) => exceptions::load(&s.name, &client_id, &s.text, &mut findings),
        None => None,
    };
    bail_findings("the exceptions file", &findings)?;

    let as_of = period::as_of(&o.month, o.now);
    let agent_rules: BTreeSet<String> = baseline
        .rules
        .values()
        .filter(|r| r.enforced_by == model::EnforcedBy::Agent)
        .map(|r| r.key.clone())
        .collect();
    let ctx = assess::Context {
        client_id: &client_id,
        month: o.month,
        as_of,
        controls: &rows,
        baseline_version: &baseline.version,
        baseline_sha256: &baseline_sha256,
        exceptions: client_exceptions.as_ref(),
        agent_rules: &agent_rules,
    };
    let evs = assess::evidence(&bundles, &ctx);
    let assessment = assess::assess(&evs, &ctx);
    let hosts: BTreeSet<String> = evs.iter().map(|e| e.b.hostname.clone()).collect();

    let out_dir = o
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("packet-{client_id}-{}", o.month.label())));
    crate::fsutil::create_dir_all(&out_dir, 0o755)?;
    let evidence_dir = std::path::absolute(&o.evidence_dir).unwrap_or_else(|_| o.evidence_dir.clone());
    let meta = doc::Meta {
        client_id: &client_id,
        month: o.month.label(),
        period_start: o.month.start(),
        period_end: o.month.end(),
        as_of,
        generated_at: o.now,
        key_id: signer.key_id(),
        baseline_version: &baseline.version,
        baseline_sha256: &baseline_sha256,
        evidence_dir: &evidence_dir.to_string_lossy(),
        key_dir: &public.to_string_lossy(),
        hosts: hosts.into_iter().collect(),
    };
    let mut document = doc::build(&meta, &assessment, &bundles, &ev.edge_problems);
    // The no-PHI statement, backed by the agent's own filter built from this baseline.
    let phi_filter = crate::scrub::PhiFilter::from_baseline(&baseline)
        .with_context(|| format!("the PHI filter of {}", o.baseline.name))?;
    let phi_check = phi::check(&o.evidence_dir, &bundles, &phi_filter);
    phi::add_to_document(&mut document, &phi_check);

    let html = html::render(&document);
    let html_path = out_dir.join("packet.html");
    crate::fsutil::replace(&html_path, html.as_bytes(), 0o644)?;
    let pdf_path = out_dir.join("packet.pdf");
    let tmp = out_dir.join(format!("{}packet.pdf", crate::fsutil::TMP_PREFIX));
    let footer = format!("{} {} compliance packet", client_id, o.month.label());
    let pages = pdf::write(&document, &footer, &tmp)?;
    let pdf_bytes = std::fs::read(&tmp).with_context(|| format!("reading {}", tmp.display()))?;
    std::fs::rename(&tmp, &pdf_path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), pdf_path.display()))?;

    let file_entry = |name: &str, bytes: &[u8]| manifest::ManifestFile {
        path: name.to_string(),
        sha256: crate::evidence::store::sha256_hex(bytes),
        size_bytes: bytes.len() as u64,
    };
    let s = &assessment.summary;
    let summary = serde_json::json!({
        "controls_assessed": s.controls_assessed,
        "controls_passing": s.controls_passing,
        "controls_organisational": s.controls_organisational,
        "incidents": s.incidents,
        "critical_incidents": s.critical_incidents,
        "critical_unresolved": s.critical_unresolved,
        "auto_fixed": s.auto_fixed,
        "escalated": s.escalated,
        "suppressed": s.suppressed,
        "mttr_seconds_by_severity": s.mttr.iter().map(|(k, (n, m))| (k.clone(), serde_json::json!({"resolved": n, "mean": m}))).collect::<serde_json::Map<_, _>>(),
        "sla_counted": s.sla_counted,
        "sla_met": s.sla_met,
        "backup_days": s.backup_days,
        "backup_days_ok": s.backup_days_ok,
        "backups_completed": s.backups_completed,
        "restore_tests": s.restore_tests,
        "restore_tests_passed": s.restore_tests_passed,
        "heartbeats": s.heartbeats,
        "evidence_gaps": assessment.gaps.len(),
        "phi_check": phi_check.to_json(),
    });
    let invalid = bundles.iter().filter(|l| l.problem.is_some()).count();
    let m = manifest::Manifest {
        manifest_version: manifest::MANIFEST_VERSION.into(),
        client_id: client_id.clone(),
        month: o.month.label(),
        period_start: doc::ts(o.month.start()),
        period_end: doc::ts(o.month.end()),
        as_of: doc::ts(as_of),
        generated_at: doc::ts(o.now),
        generator: format!("msp-agent {}", crate::AGENT_VERSION),
        evidence_dir: evidence_dir.to_string_lossy().into_owned(),
        baseline_version: baseline.version.clone(),
        baseline_sha256: baseline_sha256.clone(),
        signing: manifest::ManifestSigning {
            key_id: signer.key_id().to_string(),
            algorithm: crate::keys::ALGORITHM.into(),
        },
        summary,
        bundles: bundles
            .iter()
            .map(|l| manifest::ManifestBundle {
                path: l.rel_path.clone(),
                bundle_id: l.bundle.as_ref().map(|b| b.bundle_id.clone()),
                sequence: l.bundle.as_ref().map(|b| b.chain.sequence),
                sha256: l.sha256.clone(),
                verified: l.problem.is_none(),
                problem: l.problem.clone(),
            })
            .collect(),
        files: vec![
            file_entry("packet.html", html.as_bytes()),
            file_entry("packet.pdf", &pdf_bytes),
        ],
    };
    manifest::write_signed(&out_dir, &m, &signer)?;
    Ok(Generated {
        out_dir,
        client_id,
        assessment,
        bundles: bundles.len(),
        invalid,
        pages,
        phi: phi_check,
    })
}

/// `msp-agent evidence verify manifest.json [EVIDENCE_DIR]`: the hook `evidence verify` calls.
/// Exit 0 when the manifest verifies and every bundle matches; 1 naming the first bad one.
pub fn verify_manifest_cli(
    manifest_path: &Path,
    keys: &Keyring,
    evidence_dir: Option<&Path>,
    json: bool,
) -> Result<Exit> {
    let r = manifest::verify(manifest_path, keys, evidence_dir)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": r.problems.is_empty(),
                "bundles_listed": r.bundles_listed,
                "bundles_ok": r.bundles_ok,
                "problems": r.problems.iter().map(|(b, w)| serde_json::json!({"bundle": b, "reason": w})).collect::<Vec<_>>(),
            }))
            .context("serialising the report")?
        );
    } else {
        for (b, why) in &r.problems {
            println!("{b}: {why}");
        }
    }
    match r.problems.first() {
        None => {
            eprintln!(
                "evidence verify: OK, manifest {} verified, {} bundle(s) match",
                manifest_path.display(),
                r.bundles_ok
            );
            Ok(Exit::Ok)
        }
        Some((b, why)) => {
            eprintln!(
                "evidence verify: FAILED, manifest {}: {} problem(s); first bad bundle {b}: {why}",
                manifest_path.display(),
                r.problems.len()
            );
            Ok(Exit::CheckFailed)
        }
    }
}
