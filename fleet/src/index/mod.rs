//! The fleet index: SQLite, disposable. It holds only metadata of verified bundles (ids,
//! times, types, statuses, hashes, key ids, object keys), the objects listed per host, each
//! host's listing cursor and chain, and the objects that failed verification with the reason.
//! Deleting the file and polling the same source again gives the same [`Index::dump`].
//!
//! Modules: [`ingest`] (poll: list, verify, chain, record), [`query`] (the [`FleetQuery`]
//! views), [`controls`] (the controls map and rule evaluation), [`exceptions`] (signed-off
//! exceptions).
//!
//! [`FleetQuery`]: crate::model::FleetQuery

pub mod controls;
pub mod exceptions;
pub mod ingest;
pub mod query;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

pub use controls::ControlDef;
pub use exceptions::{ClientExceptions, Exception};
pub use ingest::PollReport;

use crate::config::FleetConfig;
use crate::inventory::Inventory;
use crate::source::Source;

/// Bumped when the schema changes; an index of another version is rebuilt from scratch (it is
/// disposable, the bucket is the source of truth).
const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
  client_id TEXT NOT NULL, host_id TEXT NOT NULL, start_after TEXT NOT NULL,
  PRIMARY KEY (client_id, host_id));
CREATE TABLE IF NOT EXISTS objects (
  key TEXT PRIMARY KEY, client_id TEXT NOT NULL, host_id TEXT NOT NULL,
  size INTEGER NOT NULL, last_modified INTEGER);
CREATE INDEX IF NOT EXISTS objects_host ON objects (client_id, host_id, key);
CREATE TABLE IF NOT EXISTS bundles (
  object_key TEXT PRIMARY KEY, client_id TEXT NOT NULL, host_id TEXT NOT NULL,
  bundle_id TEXT NOT NULL, sequence INTEGER NOT NULL, generated_at TEXT NOT NULL,
  gen_ts INTEGER NOT NULL, incident_id TEXT NOT NULL, event_type TEXT NOT NULL,
  severity TEXT NOT NULL, runbook_id TEXT NOT NULL, resolution_status TEXT NOT NULL,
  detail_result TEXT, current_system TEXT, hb_baseline_sha256 TEXT,
  sha256 TEXT NOT NULL, key_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS bundles_time ON bundles (client_id, host_id, gen_ts);
CREATE INDEX IF NOT EXISTS bundles_type ON bundles (client_id, host_id, event_type, gen_ts);
CREATE INDEX IF NOT EXISTS bundles_runbook ON bundles (client_id, host_id, runbook_id, gen_ts);
CREATE INDEX IF NOT EXISTS bundles_id ON bundles (client_id, host_id, bundle_id);
CREATE TABLE IF NOT EXISTS chain (
  client_id TEXT NOT NULL, host_id TEXT NOT NULL, sequence INTEGER NOT NULL,
  sha256 TEXT NOT NULL, object_key TEXT NOT NULL,
  PRIMARY KEY (client_id, host_id, sequence));
CREATE TABLE IF NOT EXISTS integrity (
  object_key TEXT PRIMARY KEY, client_id TEXT NOT NULL, host_id TEXT NOT NULL,
  bundle_id TEXT, problem TEXT NOT NULL, at_claimed INTEGER,
  event_type TEXT, runbook_id TEXT, resolution_status TEXT, detail_result TEXT,
  current_system TEXT, hb_baseline_sha256 TEXT);
CREATE INDEX IF NOT EXISTS integrity_host ON integrity (client_id, host_id);
";

/// How statuses are judged: the controls map, exceptions, silence tiers, the baseline hash.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Controls with an evidence rule.
    pub controls: Vec<ControlDef>,
    /// Exceptions by client.
    pub exceptions: Vec<ClientExceptions>,
    /// Heartbeat intervals without evidence before `Warn`.
    pub warn_after_intervals: u32,
    /// ... before `Page`.
    pub page_after_intervals: u32,
    /// SHA-256 of the baseline the `provenance` rule compares heartbeats with (the embedded
    /// `baseline/hipaa-v1.yaml`: the fleet view is built from the same repository).
    pub baseline_sha256: String,
}

impl Settings {
    /// From `fleet.yaml`: its controls map (or the embedded one), its exceptions directory,
    /// its alert tiers.
    pub fn from_config(cfg: &FleetConfig) -> Result<Settings> {
        let controls = match &cfg.controls_map {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading controls map {}", p.display()))?;
                controls::parse_controls_map(&p.display().to_string(), &text)?
            }
            None => controls::parse_controls_map("baseline/controls-map.csv (embedded)", controls::EMBEDDED_CONTROLS_MAP)?,
        };
        let exceptions = match &cfg.exceptions_dir {
            Some(d) => exceptions::load_dir(d)?,
            None => Vec::new(),
        };
        Ok(Settings {
            controls,
            exceptions,
            warn_after_intervals: cfg.alerts.warn_after_intervals,
            page_after_intervals: cfg.alerts.page_after_intervals,
            baseline_sha256: embedded_baseline_sha256(),
        })
    }

    /// The embedded controls map and default tiers (2 and 4 intervals), with the exceptions
    /// of `exceptions_dir` when given.
    pub fn embedded(exceptions_dir: Option<&Path>) -> Result<Settings> {
        Ok(Settings {
            controls: controls::parse_controls_map("baseline/controls-map.csv (embedded)", controls::EMBEDDED_CONTROLS_MAP)?,
            exceptions: match exceptions_dir {
                Some(d) => exceptions::load_dir(d)?,
                None => Vec::new(),
            },
            warn_after_intervals: 2,
            page_after_intervals: 4,
            baseline_sha256: embedded_baseline_sha256(),
        })
    }
}

/// SHA-256 (hex) of the embedded `baseline/hipaa-v1.yaml`, as heartbeats report it.
pub fn embedded_baseline_sha256() -> String {
    hex::encode(Sha256::digest(controls::EMBEDDED_BASELINE.as_bytes()))
}

/// The index. `Send + Sync`: one connection behind a mutex, so `Arc<Index>` is shared by the
/// web server (queries) and the poller.
pub struct Index {
    conn: Mutex<Connection>,
    path: PathBuf,
    inventory: Inventory,
    settings: Settings,
    /// Where `bundle()` fetches a bundle's JSON on demand (never stored in the index).
    source: Option<Arc<dyn Source>>,
    /// Hosts whose every listed object has been processed by this process: an empty listing
    /// then means nothing to do (the unchanged poll reads nothing from SQLite). Empty at open,
    /// so objects listed before a crash but not processed are picked up by the first poll.
    pub(crate) settled: Mutex<std::collections::HashSet<(String, String)>>,
    /// Host summaries of the last fleet computation, reused within one poll generation and one
    /// minute of `now` (see `query.rs`).
    pub(crate) summaries: Mutex<Option<query::SummaryCache>>,
    /// Counts polls that changed the index; a cached summary of an older generation is stale.
    pub(crate) generation: std::sync::atomic::AtomicU64,
}

impl Index {
    /// Open (or create) the index at `path` (`:memory:` for a throwaway one). An index of
    /// another schema version, or built against different registered keys, is emptied and
    /// rebuilt by the next poll: verdicts depend on the keys.
    pub fn open(path: &Path, inventory: Inventory, settings: Settings) -> Result<Index> {
        let conn = Connection::open(path).with_context(|| format!("opening fleet index {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL").ok();
        conn.pragma_update(None, "synchronous", "NORMAL")
            .with_context(|| format!("{}: pragma", path.display()))?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("{}: creating the schema", path.display()))?;
        let fingerprint = inventory_fingerprint(&inventory);
        let get = |k: &str| -> Result<Option<String>> {
            let mut st = conn.prepare("SELECT v FROM meta WHERE k = ?1")?;
            let mut rows = st.query([k])?;
            Ok(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        };
        let version = get("schema_version").with_context(|| format!("{}: reading meta", path.display()))?;
        let fp = get("inventory_fingerprint").with_context(|| format!("{}: reading meta", path.display()))?;
        if version.as_deref() != Some(SCHEMA_VERSION) || fp.as_deref() != Some(fingerprint.as_str()) {
            if version.is_some() {
                tracing::info!(index = %path.display(), "schema or registered keys changed: rebuilding the index from the source");
            }
            conn.execute_batch(
                "DELETE FROM cursors; DELETE FROM objects; DELETE FROM bundles; DELETE FROM chain; DELETE FROM integrity; DELETE FROM meta;",
            )
            .with_context(|| format!("{}: emptying", path.display()))?;
            conn.execute(
                "INSERT INTO meta (k, v) VALUES ('schema_version', ?1), ('inventory_fingerprint', ?2)",
                [SCHEMA_VERSION, &fingerprint],
            )
            .with_context(|| format!("{}: writing meta", path.display()))?;
        }
        Ok(Index {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            inventory,
            settings,
            source: None,
            settled: Mutex::new(Default::default()),
            summaries: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Attach the source `bundle()` reads a bundle's JSON from (the one `serve` polls).
    pub fn with_source(mut self, source: Arc<dyn Source>) -> Index {
        self.source = Some(source);
        self
    }

    /// The inventory the index was opened with.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The settings the index judges with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        Ok(self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Everything indexed, as deterministic text (no poll times, no object times: those
    /// depend on when and from where it was read), for "delete the index, poll again, same
    /// answers".
    pub fn dump(&self) -> Result<String> {
        let conn = self.lock()?;
        let mut out = String::new();
        let ctx = || format!("dumping {}", self.path.display());
        let mut st = conn
            .prepare("SELECT client_id, host_id, start_after FROM cursors ORDER BY client_id, host_id")
            .with_context(ctx)?;
        let mut rows = st.query([]).with_context(ctx)?;
        while let Some(r) = rows.next().with_context(ctx)? {
            let _ = writeln!(
                out,
                "cursor {} {} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?
            );
        }
        let mut st = conn.prepare("SELECT key, size FROM objects ORDER BY key").with_context(ctx)?;
        let mut rows = st.query([]).with_context(ctx)?;
        while let Some(r) = rows.next().with_context(ctx)? {
            let _ = writeln!(out, "object {} {}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?);
        }
        let mut st = conn
            .prepare(
                "SELECT object_key, bundle_id, sequence, generated_at, incident_id, event_type, severity, runbook_id, resolution_status,
                        detail_result, current_system, hb_baseline_sha256, sha256, key_id FROM bundles ORDER BY object_key",
            )
            .with_context(ctx)?;
        let mut rows = st.query([]).with_context(ctx)?;
        while let Some(r) = rows.next().with_context(ctx)? {
            let o = |i: usize| -> rusqlite::Result<String> { Ok(r.get::<_, Option<String>>(i)?.unwrap_or_else(|| "-".into())) };
            let _ = writeln!(
                out,
                "bundle {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
                o(0)?,
                o(1)?,
                r.get::<_, i64>(2)?,
                o(3)?,
                o(4)?,
                o(5)?,
                o(6)?,
                o(7)?,
                o(8)?,
                o(9)?,
                o(10)?,
                o(11)?,
                o(12)?,
                o(13)?
            );
        }
        let mut st = conn
            .prepare("SELECT client_id, host_id, sequence, sha256, object_key FROM chain ORDER BY client_id, host_id, sequence")
            .with_context(ctx)?;
        let mut rows = st.query([]).with_context(ctx)?;
        while let Some(r) = rows.next().with_context(ctx)? {
            let _ = writeln!(
                out,
                "chain {} {} {} {} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?
            );
        }
        let mut st = conn
            .prepare("SELECT object_key, bundle_id, at_claimed, event_type, problem FROM integrity ORDER BY object_key")
            .with_context(ctx)?;
        let mut rows = st.query([]).with_context(ctx)?;
        while let Some(r) = rows.next().with_context(ctx)? {
            let _ = writeln!(
                out,
                "integrity {} {} {} {} {}",
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_else(|| "-".into()),
                r.get::<_, Option<i64>>(2)?.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                r.get::<_, Option<String>>(3)?.unwrap_or_else(|| "-".into()),
                r.get::<_, String>(4)?
            );
        }
        Ok(out)
    }
}

/// Hosts and their registered keys (ids and windows): what the index's verdicts depend on.
fn inventory_fingerprint(inv: &Inventory) -> String {
    let mut h = Sha256::new();
    for host in inv.hosts() {
        h.update(format!("host {} {} {}\n", host.client_id, host.id, host.heartbeat_interval_seconds));
        let mut keys: Vec<_> = host.keyring.keys.values().collect();
        keys.sort_by(|a, b| a.info.key_id.cmp(&b.info.key_id));
        for k in keys {
            h.update(format!(
                "key {} {} {:?} {:?} {:?}\n",
                k.info.key_id,
                k.valid_from,
                k.valid_until,
                k.compromised_since,
                k.info.public_key.trim()
            ));
        }
    }
    hex::encode(h.finalize())
}
