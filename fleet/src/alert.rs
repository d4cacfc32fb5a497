//! Silence escalation: a host that stops sending evidence is noticed here, off the box, from
//! the bucket (DESIGN.md §4b), and raised on the MSP's webhook once per outage and tier.
//!
//! Each [`Escalator::run_once`] reads every host's [`HostSummary`] (operator scope; the index
//! computes `silence` from the warn/page intervals) and compares it with a small ledger of what
//! was already sent:
//!
//! * an **outage** is identified by the host's `last_evidence_at` when it went silent (`never`
//!   for a host never seen): evidence that arrives later always has another time, so a second
//!   outage is a new entry and alerts again, while every run during one outage finds the same
//!   entry and stays quiet;
//! * per outage, `host_silent_warn` is sent once when the host is at `Warn` (or `NeverSeen`),
//!   and `host_silent_page` once when it is at `Page` (a host first seen at `Page`, for example
//!   after the escalator itself was down, gets the page only: the warning is moot);
//! * when the host is `Reporting` again and a warn or page was sent, `host_reporting_again` is
//!   sent and the outage closes (is removed from the ledger);
//! * `client_silent` is sent once per episode when at least `fleet_silent_share` of a client's
//!   hosts (a client with at least 2 hosts) are silent (warn, page or never seen) together; the
//!   episode ends when the share drops below it, and a later episode alerts again.
//!
//! The ledger is recorded only after the webhook answered 2xx, and written atomically (temp
//! file, fsync, rename, fsync of the directory) after every delivery, so a restart never sends
//! an alert twice and a failed send is retried on the next run. It lives beside the index, not
//! inside it: the index is disposable, the memory of what the on-call person was told is not.
//!
//! Bodies are the agent's webhook JSON (`agent/src/alert.rs` `Alert`): ids, times and a one-line
//! summary built from them — metadata only (DESIGN.md §4c).
//!
//! Without a webhook, alerts are "delivered" to the caller only (the returned list, which the
//! CLI logs) and recorded the same way.
//!
//! The webhook uses reqwest's blocking client: call [`Escalator::run_once`] from a plain thread
//! (or `tokio::task::spawn_blocking`), never directly on an async runtime's worker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::config::AlertsConfig;
use crate::model::{FleetQuery, HostSummary, Scope, Silence};

/// `kind` of the first tier.
pub const HOST_SILENT_WARN: &str = "host_silent_warn";
/// `kind` of the second tier.
pub const HOST_SILENT_PAGE: &str = "host_silent_page";
/// `kind` sent when a host that was warned or paged about sends evidence again.
pub const HOST_REPORTING_AGAIN: &str = "host_reporting_again";
/// `kind` of a client whose hosts are silent together.
pub const CLIENT_SILENT: &str = "client_silent";
/// `host` of a `client_silent` alert (it concerns the client, not one host).
pub const ALL_HOSTS: &str = "*";
/// The outage id of a host that never sent evidence.
pub const NEVER: &str = "never";
/// File name of the ledger beside the index ([`default_ledger_path`]).
pub const LEDGER_FILE: &str = "alert-ledger.json";
/// Seconds the webhook may take before a send counts as failed (and is retried next run).
pub const WEBHOOK_TIMEOUT_SECONDS: u64 = 10;

const LEDGER_VERSION: u32 = 1;

/// One webhook body: the agent's alert JSON (`msp_evidence::webhook::Alert`), so one receiver
/// handles both. For silence alerts `incident_id`, `runbook_id` and `bundle_id` are always
/// `null` (silence is not an incident on the host and has, by definition, no bundle), `host` is
/// [`ALL_HOSTS`] for `client_silent`, and `summary` is built from ids, times and counts only.
pub type FleetAlert = msp_evidence::webhook::Alert;

/// What was sent for one host's current outage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutageEntry {
    /// The host's `last_evidence_at` when it went silent, or [`NEVER`].
    outage: String,
    warn_sent: bool,
    page_sent: bool,
}

/// The ledger file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ledger {
    version: u32,
    /// client → host → the open outage (only entries with something sent).
    hosts: BTreeMap<String, BTreeMap<String, OutageEntry>>,
    /// Clients with a `client_silent` episode open (alert delivered).
    clients_silent: BTreeMap<String, String>,
}

/// Raises silence alerts once per outage; see the module docs.
pub struct Escalator {
    ledger_path: PathBuf,
    ledger: Ledger,
    webhook: Option<(reqwest::blocking::Client, String)>,
    warn_after: u32,
    page_after: u32,
    share: f64,
    failed: Vec<(FleetAlert, String)>,
}

/// The ledger's default place: beside the index (`alert-ledger.json` in the index's directory),
/// so rebuilding the index (deleting its file) keeps the memory of what was sent.
pub fn default_ledger_path(index_path: &Path) -> PathBuf {
    match index_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(LEDGER_FILE),
        _ => PathBuf::from(LEDGER_FILE),
    }
}

/// The webhook URL from `alerts.webhook_url_file` (trimmed), `None` when not configured.
/// Errors name the file; an empty file is an error (a webhook that silently goes nowhere is
/// what this module exists to prevent).
pub fn webhook_from_config(alerts: &AlertsConfig) -> Result<Option<String>> {
    let Some(path) = &alerts.webhook_url_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading alerts.webhook_url_file {}", path.display()))?;
    let url = text.trim();
    if url.is_empty() {
        bail!("alerts.webhook_url_file {} is empty", path.display());
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        // The URL is a credential: do not echo it into logs.
        bail!(
            "alerts.webhook_url_file {}: not an http(s) URL",
            path.display()
        );
    }
    Ok(Some(url.to_string()))
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn is_silent(s: Silence) -> bool {
    !matches!(s, Silence::Reporting)
}

impl Escalator {
    /// Opens (or starts) the ledger at `ledger_path` and prepares the webhook. A ledger that
    /// cannot be read or parsed is an error naming the file (starting afresh would re-send
    /// every open outage).
    pub fn open(
        ledger_path: &Path,
        webhook: Option<String>,
        alerts: &AlertsConfig,
    ) -> Result<Escalator> {
        let ledger = match std::fs::read(ledger_path) {
            Ok(bytes) => {
                let l: Ledger = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}: not an alert ledger", ledger_path.display()))?;
                if l.version != LEDGER_VERSION {
                    bail!(
                        "{}: alert ledger version {} (expected {LEDGER_VERSION})",
                        ledger_path.display(),
                        l.version
                    );
                }
                l
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ledger {
                version: LEDGER_VERSION,
                ..Default::default()
            },
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading alert ledger {}", ledger_path.display()))
            }
        };
        let webhook = match webhook {
            None => None,
            Some(url) => {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(WEBHOOK_TIMEOUT_SECONDS))
                    .user_agent(concat!("msp-fleet/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .context("building the webhook HTTP client")?;
                Some((client, url))
            }
        };
        Ok(Escalator {
            ledger_path: ledger_path.to_path_buf(),
            ledger,
            webhook,
            warn_after: alerts.warn_after_intervals,
            page_after: alerts.page_after_intervals,
            share: alerts.fleet_silent_share,
            failed: Vec::new(),
        })
    }

    /// Alerts of the last [`run_once`](Self::run_once) that could not be delivered, with why
    /// (they are retried on the next run).
    pub fn failed(&self) -> &[(FleetAlert, String)] {
        &self.failed
    }

    /// One pass over the fleet at `now`: sends what is due, returns what was delivered (in
    /// order). A failed delivery is not an error (it is in [`failed`](Self::failed) and is
    /// retried next run); reading the fleet or writing the ledger is.
    pub fn run_once(&mut self, q: &dyn FleetQuery, now: DateTime<Utc>) -> Result<Vec<FleetAlert>> {
        self.failed.clear();
        let mut delivered = Vec::new();
        let fleet = q
            .fleet(&Scope::Operator, now)
            .context("reading the fleet view")?;
        let mut seen_clients: Vec<String> = Vec::new();
        let mut seen_hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in &fleet.clients {
            let Some(view) = q
                .client(&Scope::Operator, &c.client_id, now)
                .with_context(|| format!("reading client {}", c.client_id))?
            else {
                continue; // removed between the two calls
            };
            seen_clients.push(c.client_id.clone());
            let names = seen_hosts.entry(c.client_id.clone()).or_default();
            for h in &view.hosts {
                names.push(h.host_id.clone());
                self.host(h, now, &mut delivered)?;
            }
            self.client(&c.client_id, &view.hosts, now, &mut delivered)?;
        }
        // Hosts and clients gone from the inventory: forget them quietly.
        let before = self.ledger.clone();
        self.ledger.hosts.retain(|client, hosts| {
            let keep = seen_hosts.get(client);
            hosts.retain(|h, _| keep.is_some_and(|k| k.contains(h)));
            !hosts.is_empty()
        });
        self.ledger
            .clients_silent
            .retain(|c, _| seen_clients.contains(c));
        if self.ledger != before {
            self.save()?;
        }
        Ok(delivered)
    }

    fn host(
        &mut self,
        h: &HostSummary,
        now: DateTime<Utc>,
        delivered: &mut Vec<FleetAlert>,
    ) -> Result<()> {
        let entry = self
            .ledger
            .hosts
            .get(&h.client_id)
            .and_then(|m| m.get(&h.host_id))
            .cloned();
        let outage = h
            .last_evidence_at
            .clone()
            .unwrap_or_else(|| NEVER.to_string());
        let since = match &h.last_evidence_at {
            Some(t) => format!("no new evidence since {t}"),
            None => "no evidence ever indexed".to_string(),
        };
        match h.silence {
            Silence::Reporting => {
                let Some(e) = entry else { return Ok(()) };
                if e.warn_sent || e.page_sent {
                    let a = self.alert(HOST_REPORTING_AGAIN, h, now, format!(
                        "host {} of client {} is reporting again (newest evidence {}; silent since {})",
                        h.host_id,
                        h.client_id,
                        h.last_evidence_at.as_deref().unwrap_or("unknown"),
                        e.outage
                    ));
                    if !self.send(&a) {
                        return Ok(()); // keep the outage open: retried next run
                    }
                    delivered.push(a);
                }
                self.set_entry(h, None)?;
            }
            Silence::Warn | Silence::NeverSeen | Silence::Page => {
                // A different outage id means evidence arrived since (the old outage is over,
                // even if this run never saw the host reporting): start afresh.
                let mut e = match entry {
                    Some(e) if e.outage == outage => e,
                    _ => OutageEntry {
                        outage: outage.clone(),
                        ..Default::default()
                    },
                };
                let page = h.silence == Silence::Page;
                if page && !e.page_sent {
                    let a = self.alert(
                        HOST_SILENT_PAGE,
                        h,
                        now,
                        format!(
                            "host {} of client {}: {since} (at least {} heartbeat intervals)",
                            h.host_id, h.client_id, self.page_after
                        ),
                    );
                    if self.send(&a) {
                        e.page_sent = true;
                        e.warn_sent = true; // the warning is moot once paged
                        delivered.push(a);
                        self.set_entry(h, Some(e))?;
                    }
                } else if !page && !e.warn_sent {
                    let tiers = if h.silence == Silence::NeverSeen {
                        "in the inventory".to_string()
                    } else {
                        format!("at least {} heartbeat intervals", self.warn_after)
                    };
                    let a = self.alert(
                        HOST_SILENT_WARN,
                        h,
                        now,
                        format!(
                            "host {} of client {}: {since} ({tiers})",
                            h.host_id, h.client_id
                        ),
                    );
                    if self.send(&a) {
                        e.warn_sent = true;
                        delivered.push(a);
                        self.set_entry(h, Some(e))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn client(
        &mut self,
        client: &str,
        hosts: &[HostSummary],
        now: DateTime<Utc>,
        delivered: &mut Vec<FleetAlert>,
    ) -> Result<()> {
        let silent = hosts.iter().filter(|h| is_silent(h.silence)).count();
        let episode = hosts.len() >= 2 && (silent as f64) >= self.share * hosts.len() as f64;
        let open = self.ledger.clients_silent.contains_key(client);
        if episode && !open {
            let a = FleetAlert {
                kind: CLIENT_SILENT.into(),
                client_id: client.into(),
                host: ALL_HOSTS.into(),
                incident_id: None,
                runbook_id: None,
                bundle_id: None,
                summary: format!(
                    "client {client}: {silent} of {} hosts silent together (threshold {:.0} %)",
                    hosts.len(),
                    self.share * 100.0
                ),
                at: rfc(now),
            };
            if self.send(&a) {
                self.ledger.clients_silent.insert(client.into(), rfc(now));
                self.save()?;
                delivered.push(a);
            }
        } else if !episode && open {
            self.ledger.clients_silent.remove(client);
            self.save()?;
        }
        Ok(())
    }

    fn alert(
        &self,
        kind: &str,
        h: &HostSummary,
        now: DateTime<Utc>,
        summary: String,
    ) -> FleetAlert {
        FleetAlert {
            kind: kind.into(),
            client_id: h.client_id.clone(),
            host: h.host_id.clone(),
            incident_id: None,
            runbook_id: None,
            bundle_id: None,
            summary,
            at: rfc(now),
        }
    }

    fn set_entry(&mut self, h: &HostSummary, e: Option<OutageEntry>) -> Result<()> {
        match e {
            Some(e) => {
                self.ledger
                    .hosts
                    .entry(h.client_id.clone())
                    .or_default()
                    .insert(h.host_id.clone(), e);
            }
            None => {
                if let Some(m) = self.ledger.hosts.get_mut(&h.client_id) {
                    m.remove(&h.host_id);
                    if m.is_empty() {
                        self.ledger.hosts.remove(&h.client_id);
                    }
                }
            }
        }
        self.save()
    }

    /// Whether `a` was delivered (2xx, or no webhook configured).
    fn send(&mut self, a: &FleetAlert) -> bool {
        let Some((client, url)) = &self.webhook else {
            return true;
        };
        let body = match serde_json::to_vec(a) {
            Ok(b) => b,
            Err(e) => {
                self.failed
                    .push((a.clone(), format!("serialising the alert: {e}")));
                return false;
            }
        };
        let result = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send();
        let why = match result {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => format!("webhook answered HTTP {}", r.status().as_u16()),
            // Without the URL: it is a credential.
            Err(e) => format!("webhook request failed: {}", e.without_url()),
        };
        tracing::warn!(kind = %a.kind, client = %a.client_id, host = %a.host, "{why}; retried next run");
        self.failed.push((a.clone(), why));
        false
    }

    fn save(&self) -> Result<()> {
        let mut bytes =
            serde_json::to_vec_pretty(&self.ledger).context("serialising the alert ledger")?;
        bytes.push(b'\n');
        msp_evidence::fsutil::replace(&self.ledger_path, &bytes, 0o600)
            .with_context(|| format!("writing alert ledger {}", self.ledger_path.display()))
    }
}
