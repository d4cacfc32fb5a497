//! WORM storage: durable outbox, S3 Object Lock uploads, read-back, receipts.
//!
//! * [`config`]: `WormConfig` (the `worm:` section of the agent config) and credentials.
//! * [`s3`]: a small blocking S3 client signed with SigV4.
//! * [`local`]: which bundles the local store holds, in chain order.
//! * [`outbox`]: the durable high-water mark and the retry backoff.
//! * [`sync`]: the uploader (`Uploader::sync_once`, `run_until_stopped` for the daemon).
//! * [`receipt`]: signed upload receipts.
//! * [`verify`]: compare the bucket with the local store.
//! * [`bucket`]: the bucket's own settings (`worm init`, checked by `worm verify`), IAM policies.
//! * [`restore`]: `worm restore` and the scheduled `worm restore-test`.
//!
//! See `ARCHITECTURE.md`, "WORM storage", for the data flow and the invariants.

pub mod bucket;
pub mod config;
pub mod local;
pub mod outbox;
pub mod receipt;
pub mod restore;
pub use msp_evidence::s3;
pub mod sync;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

pub use config::{Credentials, WormConfig};
pub use sync::{run_until_stopped, SyncReport, Uploader};

use crate::exit::Exit;

/// `msp-agent worm ...`
#[derive(Debug, Subcommand)]
pub enum WormCmd {
    /// Upload every pending bundle now (for operators and timers); exit 0 when all are
    /// confirmed, 2 with the S3 error otherwise.
    Sync {
        #[command(flatten)]
        conn: ConnArgs,
        /// Directory with the signing key (upload receipts are signed).
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
    },
    /// Compare what the bucket holds for this host with the local store: exit 0 if it
    /// matches, 1 naming missing, extra or differing objects.
    Verify {
        #[command(flatten)]
        conn: ConnArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Compare objects only; do not check the bucket's settings (Object Lock default
        /// retention, public access block, encryption, lifecycle).
        #[arg(long)]
        objects_only: bool,
    },
    /// Create the bucket (with Object Lock) if it does not exist, set every setting the
    /// controls require that is missing, and print the least-privilege IAM policies for the
    /// uploader and the fleet view. Exit 0 when every setting is as required afterwards, 1
    /// naming those that are not. With `--check` nothing is changed.
    Init {
        #[command(flatten)]
        conn: ConnArgs,
        /// Only report; change nothing.
        #[arg(long)]
        check: bool,
        /// COMPLIANCE default retention in days (default: the larger of `worm.retention_days`
        /// and the baseline's floor `logging.evidence_worm_retention_days`).
        #[arg(long, value_name = "DAYS")]
        default_retention_days: Option<u32>,
        /// Days after upload before the lifecycle rule moves evidence to colder storage.
        #[arg(long, value_name = "DAYS", default_value_t = bucket::DEFAULT_TRANSITION_DAYS)]
        transition_days: u32,
        /// Storage class of that transition.
        #[arg(long, value_name = "CLASS", default_value = bucket::DEFAULT_STORAGE_CLASS)]
        storage_class: String,
    },
    /// Download this host's evidence (or one month) into a new store at DIR, every GET
    /// checked against the server's checksum and the receipts; verify it; report what is
    /// missing, different or tampered against the local store and its receipts. Exit 0 when
    /// the restore is complete and verifies, 1 naming what is not.
    Restore {
        #[command(flatten)]
        conn: ConnArgs,
        /// Where to write the restored store (must be empty or absent).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Only this month (`YYYY-MM`); the restored part is verified as part of a chain.
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
        /// Directory with the public keys to verify the restored store with.
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        keys: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The scheduled WORM restore test: download SAMPLE bundles picked at random, check every
    /// object against the server's checksum and its receipt, verify their signatures, and
    /// record the result as a signed `worm_restore_test` record in the local store. Exit 0
    /// passed, 1 failed (named).
    RestoreTest {
        #[command(flatten)]
        conn: ConnArgs,
        /// How many bundles to sample.
        #[arg(long, value_name = "N", default_value_t = 20)]
        sample: usize,
        /// Directory with the signing key (the record is signed; the public keys verify the sample).
        #[arg(long, value_name = "DIR", default_value = crate::paths::KEY_DIR)]
        key_dir: PathBuf,
    },
}

/// Where the evidence is and which bucket to use. Flags override the `worm:` section of
/// `--config`; with `--bucket` no config file is needed. Credentials come from
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` unless the config names a
/// credentials file.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Agent config file with a `worm:` section (read only when given, or when no --bucket).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Evidence store root.
    #[arg(long, value_name = "DIR", default_value = crate::paths::EVIDENCE_DIR)]
    pub evidence_dir: PathBuf,
    /// State directory (the outbox lives in `worm/outbox.json` below it).
    #[arg(long, value_name = "DIR", default_value = crate::paths::STATE_DIR)]
    pub state_dir: PathBuf,
    /// S3 endpoint URL (default: AWS for the region).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Bucket (must have Object Lock enabled).
    #[arg(long, value_name = "B")]
    pub bucket: Option<String>,
    /// Signing region.
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Path-style addressing (most S3-compatible servers).
    #[arg(long)]
    pub path_style: bool,
    /// Object key prefix.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Client id in object keys (default: from the bundles).
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// Host name in object keys (default: from the bundles).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// COMPLIANCE retention in days (1-36500).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(
        config::MIN_RETENTION_DAYS as i64..=config::MAX_RETENTION_DAYS as i64))]
    pub retention_days: Option<u32>,
    /// AWS-style credentials file instead of the environment.
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
}

impl ConnArgs {
    /// The effective configuration: config file section (if any), then flags.
    pub fn config(&self) -> Result<WormConfig> {
        let file = match (&self.config, &self.bucket) {
            (Some(p), _) => Some(p.clone()),
            (None, None) => Some(PathBuf::from(crate::paths::CONFIG_FILE)),
            (None, Some(_)) => None,
        };
        let mut cfg = match &file {
            Some(p) => load_config_section(p)?,
            None => WormConfig::new(self.bucket.as_deref().unwrap_or_default()),
        };
        if let Some(v) = &self.bucket {
            cfg.bucket = v.clone();
        }
        if let Some(v) = &self.endpoint {
            cfg.endpoint = v.clone();
        }
        if let Some(v) = &self.region {
            cfg.region = v.clone();
        }
        if self.path_style {
            cfg.path_style = true;
        }
        if let Some(v) = &self.prefix {
            cfg.prefix = v.clone();
        }
        if let Some(v) = &self.client {
            cfg.client_id = v.clone();
        }
        if let Some(v) = &self.host {
            cfg.host = v.clone();
        }
        if let Some(v) = self.retention_days {
            cfg.retention_days = v;
        }
        if let Some(v) = &self.credentials_file {
            cfg.credentials_file = Some(v.clone());
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Read the `worm:` section of an agent config file (other sections are other modules').
pub fn load_config_section(path: &Path) -> Result<WormConfig> {
    let text = crate::yamlutil::read_text(path).context("(or pass --bucket and --endpoint)")?;
    let doc: serde_yaml_ng::Value = crate::yamlutil::from_str(path, &text)?;
    let Some(section) = doc.get("worm") else {
        bail!("{}: no `worm:` section", path.display());
    };
    serde_yaml_ng::from_value(section.clone())
        .with_context(|| format!("{}: section worm", path.display()))
}

impl WormCmd {
    /// Run `worm sync` or `worm verify`.
    pub fn run(self) -> Result<Exit> {
        match self {
            WormCmd::Sync { conn, key_dir } => {
                let cfg = conn.config()?;
                let creds = cfg.credentials()?;
                let signer = crate::keys::Signer::load(&key_dir)?;
                let mut up = Uploader::new(
                    cfg,
                    creds,
                    &conn.evidence_dir,
                    &conn.state_dir,
                    Arc::new(signer),
                )?;
                let r = up.sync_once()?;
                println!(
                    "worm sync: {} confirmed ({} objects put, {} found already uploaded), {} pending",
                    r.confirmed.len(),
                    r.objects_put,
                    r.objects_found,
                    r.pending
                );
                if let Some(e) = r.error {
                    let since = r
                        .failing_since
                        .map(|t| format!(" (failing since {t})"))
                        .unwrap_or_default();
                    bail!("{e}{since}");
                }
                Ok(Exit::Ok)
            }
            WormCmd::Init { conn, check, default_retention_days, transition_days, storage_class } => {
                run_init(conn, check, default_retention_days, transition_days, storage_class)
            }
            WormCmd::Restore { conn, to, month, keys, json } => run_restore(conn, to, month, keys, json),
            WormCmd::RestoreTest { conn, sample, key_dir } => run_restore_test(conn, sample, key_dir),
            WormCmd::Verify { conn, json, objects_only } => {
                let cfg = conn.config()?;
                let creds = cfg.credentials()?;
                let client = s3::S3Client::new(&cfg.s3_endpoint()?, creds)?;
                sync::check_bucket(&client, &cfg)?;
                let settings = if objects_only {
                    None
                } else {
                    Some(bucket::check_settings(&client, bucket::baseline_retention_floor()?)
                        .context("reading the bucket's settings")?)
                };
                let settings_ok = match &settings {
                    Some(s) => s.missing().is_empty(),
                    None => true,
                };
                let r = verify::verify(&client, &cfg, &conn.evidence_dir, &conn.state_dir)?;
                if json {
                    let mut v = serde_json::to_value(&r).context("serialising the report")?;
                    if let Some(s) = &settings {
                        v["bucket_settings"] = serde_json::to_value(s).context("serialising the report")?;
                    }
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&v).context("serialising the report")?
                    );
                } else {
                    if let Some(s) = &settings {
                        for m in s.missing() {
                            println!("bucket setting missing: {}: {}", m.name, m.detail);
                        }
                    }
                    for (what, list) in [
                        ("missing", &r.missing),
                        ("extra", &r.extra),
                        ("differing", &r.differing),
                        ("pending", &r.pending),
                    ] {
                        for k in list {
                            println!("{what}: {k}");
                        }
                    }
                    println!(
                        "worm verify: {} objects checked, {} missing, {} extra, {} differing, {} pending upload",
                        r.checked,
                        r.missing.len(),
                        r.extra.len(),
                        r.differing.len(),
                        r.pending.len()
                    );
                }
                Ok(if r.ok() && settings_ok { Exit::Ok } else { Exit::CheckFailed })
            }
        }
    }
}

fn run_init(
    conn: ConnArgs,
    check: bool,
    default_retention_days: Option<u32>,
    transition_days: u32,
    storage_class: String,
) -> Result<Exit> {
    let cfg = conn.config()?;
    let floor = bucket::baseline_retention_floor()?;
    let retention_days = default_retention_days.unwrap_or(cfg.retention_days.max(floor));
    if retention_days < floor {
        bail!("--default-retention-days {retention_days} is below the baseline's floor of {floor} days (logging.evidence_worm_retention_days)");
    }
    if cfg.retention_days < floor {
        eprintln!(
            "warning: worm.retention_days is {} but the baseline's floor is {floor} days; the uploader's per-object retention is below what the controls require",
            cfg.retention_days
        );
    }
    let creds = cfg.credentials()?;
    let client = s3::S3Client::new(&cfg.s3_endpoint()?, creds)?;
    let report = if check {
        bucket::check_settings(&client, floor).with_context(|| format!("checking bucket {:?}", cfg.bucket))?
    } else {
        let plan = bucket::BucketPlan { retention_days, transition_days, storage_class };
        let (changed, after) = bucket::init(&client, &cfg, &plan, floor)?;
        for c in &changed {
            println!("changed: {c}");
        }
        after
    };
    for s in &report.settings {
        println!("{} {}: {}", if s.ok { "ok     " } else { "MISSING" }, s.name, s.detail);
    }
    println!("\n# IAM policy for the uploader (msp-agent on each server): put, read back, list; never delete");
    println!("{}", serde_json::to_string_pretty(&bucket::uploader_policy(&cfg.bucket, &cfg.prefix)).context("policy")?);
    println!("\n# IAM policy for the fleet view and restores: read and list only");
    println!("{}", serde_json::to_string_pretty(&bucket::fleet_policy(&cfg.bucket, &cfg.prefix)).context("policy")?);
    let missing = report.missing();
    if missing.is_empty() {
        eprintln!("worm init: bucket {} has every required setting", cfg.bucket);
        Ok(Exit::Ok)
    } else {
        let names: Vec<&str> = missing.iter().map(|s| s.name).collect();
        eprintln!("worm init: bucket {} is missing: {}", cfg.bucket, names.join(", "));
        Ok(Exit::CheckFailed)
    }
}

/// Client and host for object keys: flags/config, else the local store's bundles.
fn owner_of(cfg: &WormConfig, evidence_dir: &Path) -> Result<(String, String)> {
    let bundles = if evidence_dir.exists() { local::scan(evidence_dir)? } else { Vec::new() };
    verify::owner(cfg, &bundles).context("naming the host whose evidence to restore")
}

fn run_restore(conn: ConnArgs, to: PathBuf, month: Option<String>, keys: PathBuf, json: bool) -> Result<Exit> {
    let cfg = conn.config()?;
    let month = month.as_deref().map(restore::month_path).transpose()?;
    let (client_id, host) = owner_of(&cfg, &conn.evidence_dir)?;
    let ring = crate::evidence::keyring::Keyring::load(&keys)
        .with_context(|| format!("loading keys from {}", keys.display()))?;
    let creds = cfg.credentials()?;
    let client = s3::S3Client::new(&cfg.s3_endpoint()?, creds)?;
    sync::check_bucket(&client, &cfg)?;
    let local = conn.evidence_dir.exists().then_some(conn.evidence_dir.as_path());
    let state = local.map(|_| conn.state_dir.as_path());
    // With the private key in --keys (the operator on the host), the restored chain gets a
    // signed head; with public keys only it stays a headless copy.
    let signer = keys.join(crate::keys::PRIVATE_KEY_FILE).exists().then(|| crate::keys::Signer::load(&keys)).transpose()?;
    let r = restore::restore(&client, &cfg, &client_id, &host, &to, month.as_deref(), local, state, &ring, signer.as_ref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).context("serialising the report")?);
    } else {
        for (what, list) in [("missing", &r.missing), ("differing", &r.differing), ("tampered", &r.tampered), ("skipped (not evidence)", &r.skipped)] {
            for k in list {
                println!("{what}: {k}");
            }
        }
        if let Some(p) = &r.verify_problem {
            println!("restored store does not verify: {p}");
        }
        match r.head_sealed {
            Some(seq) => println!("signed chain head written for the restored chain (sequence {seq})"),
            None if month.is_none() => println!(
                "no chain head written (no signing key in {}, or something is missing or tampered): `evidence verify` reports the copy as headless",
                keys.display()
            ),
            None => {}
        }
    }
    eprintln!(
        "worm restore: {} objects ({} bytes) into {}, {} bundle(s) verified, {} receipt file(s) copied; {} missing, {} differing, {} tampered{}",
        r.restored,
        r.bytes,
        to.display(),
        r.bundles_verified,
        r.receipts_copied,
        r.missing.len(),
        r.differing.len(),
        r.tampered.len(),
        if r.verify_problem.is_some() { ", verify FAILED" } else { "" }
    );
    Ok(if r.ok() { Exit::Ok } else { Exit::CheckFailed })
}

fn run_restore_test(conn: ConnArgs, sample: usize, key_dir: PathBuf) -> Result<Exit> {
    let cfg = conn.config()?;
    let (client_id, host) = owner_of(&cfg, &conn.evidence_dir)?;
    let signer = crate::keys::Signer::load(&key_dir)?;
    let ring = crate::evidence::keyring::Keyring::load(&key_dir)
        .with_context(|| format!("loading keys from {}", key_dir.display()))?;
    let creds = cfg.credentials()?;
    let client = s3::S3Client::new(&cfg.s3_endpoint()?, creds)?;
    let scratch = tempfile::Builder::new()
        .prefix("msp-restore-test-")
        .tempdir()
        .context("creating a scratch directory for the restore test")?;
    let r = match sync::check_bucket(&client, &cfg) {
        Ok(()) => restore::restore_test(&client, &cfg, &client_id, &host, sample, &conn.evidence_dir, &ring, scratch.path())?,
        // An unreachable or misconfigured bucket is a failed restore test, and is recorded as one.
        Err(e) => restore::RestoreTestReport { failures: vec![format!("{e:#}")], ..Default::default() },
    };
    let passed = r.failures.is_empty();
    let mut details = serde_json::to_value(&r).context("serialising the report")?;
    details["result"] = serde_json::Value::String(if passed { "passed" } else { "failed" }.into());
    details["sample_requested"] = serde_json::json!(sample);
    details["bucket"] = serde_json::Value::String(cfg.bucket.clone());
    let provenance = crate::runbook::provenance();
    let ctx = crate::daemon::records::RecordContext { client_id: &client_id, hostname: &host, provenance: &provenance };
    let now = chrono::Utc::now();
    let record = crate::daemon::records::store_observation(
        &ctx,
        crate::incident::event_type::WORM_RESTORE_TEST,
        "WRT",
        if passed { "low" } else { "high" },
        &crate::daemon::records::WORM_RESTORE_TEST_CONTROLS,
        details,
        now,
    );
    let mut store = crate::evidence::store::EvidenceStore::open_waiting(&conn.evidence_dir, crate::daemon::STORE_WAIT)?;
    let w = store.append(record, &signer, now)?;
    for f in &r.failures {
        println!("failed: {f}");
    }
    eprintln!(
        "worm restore-test: {} of {} bundle(s) sampled, {} objects ({} bytes) checked: {}; recorded as {}",
        r.sampled.len(),
        r.bundles_in_bucket,
        r.objects,
        r.bytes,
        if passed { "PASSED" } else { "FAILED" },
        w.bundle_id
    );
    Ok(if passed { Exit::Ok } else { Exit::CheckFailed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_section_is_read_and_unknown_keys_are_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("agent.yaml");
        std::fs::write(&p, "journal: {}\nworm:\n  bucket: evidence\n  endpoint: http://127.0.0.1:9000\n  path_style: true\n  retention_days: 10\n").unwrap();
        let c = load_config_section(&p).unwrap();
        assert_eq!(
            (c.bucket.as_str(), c.retention_days, c.path_style),
            ("evidence", 10, true)
        );
        std::fs::write(&p, "worm:\n  bucket: evidence\n  retain_days: 10\n").unwrap();
        let e = format!("{:#}", load_config_section(&p).unwrap_err());
        assert!(
            e.contains("agent.yaml") && e.contains("section worm") && e.contains("retain_days"),
            "{e}"
        );
        std::fs::write(&p, "journal: {}\n").unwrap();
        assert!(
            format!("{:#}", load_config_section(&p).unwrap_err()).contains("no `worm:` section")
        );
    }
}
