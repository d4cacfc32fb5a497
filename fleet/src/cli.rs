//! The command line. Each subcommand's work lives in its own module (index, web, status, alert,
//! packet); this file only parses, opens what the config names, and maps results onto exit
//! codes (0 good, 1 something to look at, 2 could not run).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::alert::{self, Escalator};
use crate::config::FleetConfig;
use crate::index::{Index, Settings};
use crate::inventory::Inventory;
use crate::model::Scope;
use crate::source::{LocalSource, S3Source, Source};

/// `msp-fleet`: the MSP's view of every clinic, from the signed evidence in S3.
#[derive(Debug, Parser)]
#[command(name = "msp-fleet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll the source, raise silence alerts and serve the web UI and JSON API until SIGTERM
    /// or Ctrl-C. Prints the URL it serves on.
    Serve {
        /// `fleet.yaml`.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Listen here instead of the config's `listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Judge every status at this fixed RFC 3339 time instead of the clock (demo data,
        /// tests); polling still happens every `poll_interval_seconds`.
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        /// Do not send silence alerts (the index and pages are unaffected).
        #[arg(long)]
        no_alerts: bool,
    },
    /// Poll the source once: index new objects, print what was done. Exit 1 when any object
    /// failed verification (it is recorded as an integrity error).
    Index {
        /// `fleet.yaml`.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Delete the index first and rebuild it from the source.
        #[arg(long)]
        rebuild: bool,
        /// RFC 3339 time recorded as the poll's time (default: now).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Print everything indexed as deterministic text: two indexes of the same bucket print
    /// the same (how "delete the index and rebuild" is checked).
    Dump {
        /// `fleet.yaml`.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Every host's silence and control counts, from the index (run `index` or `serve` first).
    /// Exit 0 all good; 1 a host is silent, failing or has an integrity error.
    Status {
        /// `fleet.yaml`.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Judge at this RFC 3339 time (default: now).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// A client's monthly packet across all its hosts: packet.html, packet.json and a signed
    /// fleet-manifest.json in OUT.
    Packet {
        /// `fleet.yaml`.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The client.
        #[arg(long, value_name = "ID")]
        client: String,
        /// `YYYY-MM`.
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The MSP's packet signing key directory (`msp-agent key generate --out DIR`).
        #[arg(long, value_name = "DIR")]
        key_dir: PathBuf,
        /// Judge at this RFC 3339 time (default: now; a past month is judged at its end).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Check an inventory file: exit 0 if valid, 2 with the file, line and field otherwise.
    Inventory {
        /// The inventory JSON.
        file: PathBuf,
    },
    /// Check a fleet config (and the inventory it names) without starting anything: exit 0 if
    /// it is valid, 2 with the file, line and field otherwise.
    CheckConfig {
        /// `fleet.yaml`.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("msp-fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MSP_FLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn run(cmd: Command) -> Result<u8> {
    match cmd {
        Command::CheckConfig { config } => {
            let cfg = FleetConfig::load(&config)?;
            let inv = Inventory::load(&cfg.inventory)?;
            Settings::from_config(&cfg)?;
            if let Some(t) = &cfg.auth.tokens_file {
                crate::web::auth::TokenStore::load(t)?;
            }
            alert::webhook_from_config(&cfg.alerts)?;
            println!("{}: ok ({} hosts in {})", config.display(), inv.hosts().count(), cfg.inventory.display());
            Ok(0)
        }
        Command::Inventory { file } => {
            let inv = Inventory::load(&file)?;
            println!("{}: ok ({} hosts)", file.display(), inv.hosts().count());
            Ok(0)
        }
        Command::Index { config, rebuild, now } => {
            let cfg = FleetConfig::load(&config)?;
            if rebuild {
                remove_index(&cfg.index)?;
            }
            let (index, source) = open(&cfg)?;
            let r = index.poll(source.as_ref(), parse_now(now.as_deref())?)?;
            println!(
                "indexed: {} hosts, {} listing calls, {} new objects, {} bundles verified, {} integrity errors, {} waiting for a signature",
                r.hosts, r.list_calls, r.new_objects, r.bundles_indexed, r.integrity_errors, r.pending
            );
            Ok(u8::from(r.integrity_errors > 0))
        }
        Command::Dump { config } => {
            let cfg = FleetConfig::load(&config)?;
            let (index, _) = open(&cfg)?;
            print!("{}", index.dump()?);
            Ok(0)
        }
        Command::Status { config, json, now } => {
            let cfg = FleetConfig::load(&config)?;
            let (index, _) = open(&cfg)?;
            let (view, hosts) = crate::status::collect(index.as_ref(), &Scope::Operator, parse_now(now.as_deref())?)?;
            print!("{}", crate::status::render(&view, &hosts, json));
            Ok(crate::status::exit_code(&hosts))
        }
        Command::Packet { config, client, month, out, key_dir, now } => {
            let cfg = FleetConfig::load(&config)?;
            let (index, _) = open(&cfg)?;
            let signer = msp_evidence::keys::Signer::load(&key_dir)
                .with_context(|| format!("loading the packet signing key from {}", key_dir.display()))?;
            let manifest = crate::packet::write(
                index.as_ref(),
                &Scope::Operator,
                &client,
                &month,
                parse_now(now.as_deref())?,
                &out,
                &signer,
            )?;
            println!("{}", manifest.display());
            Ok(0)
        }
        Command::Serve { config, listen, now, no_alerts } => serve(&config, listen, now.as_deref(), no_alerts),
    }
}

/// The index the config names, with its source attached (bundle pages read from it).
fn open(cfg: &FleetConfig) -> Result<(Arc<Index>, Arc<dyn Source>)> {
    let inventory = Inventory::load(&cfg.inventory)?;
    let settings = Settings::from_config(cfg)?;
    let source: Arc<dyn Source> = match (&cfg.source.s3, &cfg.source.local) {
        (Some(s3), None) => Arc::new(S3Source::from_config(s3, &cfg.source.prefix)?),
        (None, Some(dir)) => Arc::new(LocalSource::new(dir, &cfg.source.prefix)),
        _ => bail!("source: set exactly one of `s3` and `local`"),
    };
    if let Some(parent) = cfg.index.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let index = Index::open(&cfg.index, inventory, settings)?.with_source(source.clone());
    Ok((Arc::new(index), source))
}

/// Delete the index file and SQLite's companions (the index is disposable by design).
fn remove_index(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", Path::new(&p).display())),
        }
    }
    Ok(())
}

fn parse_now(now: Option<&str>) -> Result<DateTime<Utc>> {
    match now {
        None => Ok(Utc::now()),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .with_context(|| format!("--now {s:?}: not an RFC 3339 time")),
    }
}

fn serve(config: &Path, listen: Option<std::net::SocketAddr>, now: Option<&str>, no_alerts: bool) -> Result<u8> {
    let cfg = FleetConfig::load(config)?;
    let fixed = now.map(|s| parse_now(Some(s))).transpose()?;
    let clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync> = match fixed {
        Some(t) => Arc::new(move || t),
        None => crate::web::system_clock(),
    };
    let tokens = match &cfg.auth.tokens_file {
        Some(p) => crate::web::auth::TokenStore::load(p)?,
        None => {
            tracing::warn!("auth.tokens_file is not set: nobody can log in (only /healthz answers)");
            crate::web::auth::TokenStore::empty()
        }
    };
    let (index, source) = open(&cfg)?;
    let mut escalator = if no_alerts {
        None
    } else {
        Some(Escalator::open(
            &alert::default_ledger_path(&cfg.index),
            alert::webhook_from_config(&cfg.alerts)?,
            &cfg.alerts,
        )?)
    };

    // The first poll before the first page, so a fresh index never shows every host as never seen.
    let r = index.poll(source.as_ref(), clock())?;
    tracing::info!(new_objects = r.new_objects, bundles = r.bundles_indexed, integrity_errors = r.integrity_errors, "first poll done");

    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (index, source, clock, stop) = (index.clone(), source.clone(), clock.clone(), stop.clone());
        let interval = Duration::from_secs(cfg.poll_interval_seconds);
        std::thread::Builder::new()
            .name("fleet-poll".into())
            .spawn(move || loop {
                if let Some(e) = escalator.as_mut() {
                    match e.run_once(index.as_ref(), clock()) {
                        Ok(sent) if !sent.is_empty() => tracing::info!(alerts = sent.len(), "silence alerts sent"),
                        Ok(_) => {}
                        Err(err) => tracing::error!("silence alerts: {err:#}"),
                    }
                }
                let deadline = std::time::Instant::now() + interval;
                while std::time::Instant::now() < deadline {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                match index.poll(source.as_ref(), clock()) {
                    Ok(r) => tracing::info!(new_objects = r.new_objects, bundles = r.bundles_indexed, integrity_errors = r.integrity_errors, "poll done"),
                    // A failed poll (bucket unreachable) keeps serving what is indexed; the
                    // page's "last poll" time shows how old it is.
                    Err(err) => tracing::error!("poll failed: {err:#}"),
                }
            })
            .context("starting the poll thread")?
    };

    let state = crate::web::WebState::new(index.clone(), tokens, clock);
    let addr = listen.unwrap_or(cfg.listen);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the web server's runtime")?;
    let result = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        println!("msp-fleet: serving http://{bound}/");
        crate::web::serve(listener, state, shutdown_signal()).await
    });
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    result.map(|()| 0)
}

/// Resolves on SIGTERM (systemd stop) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("stopping");
}
