//! The fleet inventory (JSON, fleet-contract.md): clients, their hosts, each host's heartbeat
//! interval and registered public keys. The inventory is the fleet view's trust anchor: a
//! bundle counts only if it is signed by a key registered here for its host, inside the key's
//! window.
//!
//! Strict: unknown fields are errors naming the file, the JSON line and column and the field
//! (serde_json's location). Each key's `public_key` must hash to its `key_id`, as
//! [`Keyring::load`] checks for a key directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use msp_evidence::keyring::{public_key_of, Keyring, TrustedKey};
use msp_evidence::keys::KeyInfo;
use serde::Deserialize;

/// The whole inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The file it was read from.
    pub path: PathBuf,
    /// Clients in file order.
    pub clients: Vec<Client>,
}

/// One client (clinic).
#[derive(Debug, Clone)]
pub struct Client {
    /// Client id (the second component of object keys).
    pub id: String,
    /// Display name, optional.
    pub name: Option<String>,
    /// Its hosts in file order.
    pub hosts: Vec<Host>,
}

/// One host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Host id (the third component of object keys, the bundles' `hostname`).
    pub id: String,
    /// The client it belongs to.
    pub client_id: String,
    /// Seconds between the agent's heartbeats (silence is judged in these units).
    pub heartbeat_interval_seconds: u64,
    /// The keys that may sign its evidence, with their windows.
    pub keyring: Keyring,
}

impl Host {
    /// Registered key ids, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.keyring.keys.keys().cloned().collect();
        ids.sort();
        ids
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u32,
    clients: Vec<ClientJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientJson {
    id: String,
    #[serde(default)]
    name: Option<String>,
    hosts: Vec<HostJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostJson {
    id: String,
    heartbeat_interval_seconds: u64,
    #[serde(default)]
    keys: Option<Vec<KeyInfo>>,
    #[serde(default)]
    key_dir: Option<PathBuf>,
}

/// Ids become object key components and URL segments: the same rule as `layout`'s parser.
fn plain_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s != "." && s != ".." && !s.contains('/') && !s.contains('\\') && !s.chars().any(char::is_control)
}

impl Inventory {
    /// Read and check the inventory at `path`.
    pub fn load(path: &Path) -> Result<Inventory> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading fleet inventory {}", path.display()))?;
        Inventory::parse(path, &text)
    }

    /// Check `text` as the inventory file `path` (relative `key_dir`s are resolved against
    /// `path`'s directory).
    pub fn parse(path: &Path, text: &str) -> Result<Inventory> {
        let file: FileV1 = serde_json::from_str(text).with_context(|| format!("{}: invalid fleet inventory", path.display()))?;
        let ctx = |what: String| format!("{}: {what}", path.display());
        if file.version != 1 {
            bail!(ctx(format!("version: {} is not supported (expected 1)", file.version)));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut clients = Vec::new();
        let mut client_ids = BTreeSet::new();
        let mut host_ids = BTreeSet::new();
        for (ci, c) in file.clients.into_iter().enumerate() {
            let field = format!("clients[{ci}]");
            if !plain_id(&c.id) {
                bail!(ctx(format!("{field}.id: `{}` is not a valid client id", c.id)));
            }
            if !client_ids.insert(c.id.clone()) {
                bail!(ctx(format!("{field}.id: client `{}` is listed twice", c.id)));
            }
            let mut hosts = Vec::new();
            for (hi, h) in c.hosts.into_iter().enumerate() {
                let field = format!("{field}.hosts[{hi}]");
                if !plain_id(&h.id) {
                    bail!(ctx(format!("{field}.id: `{}` is not a valid host id", h.id)));
                }
                // Host ids are unique fleet-wide: the web UI and alerts name a host by its id.
                if !host_ids.insert(h.id.clone()) {
                    bail!(ctx(format!("{field}.id: host `{}` is listed twice", h.id)));
                }
                if h.heartbeat_interval_seconds == 0 {
                    bail!(ctx(format!("{field}.heartbeat_interval_seconds: must be at least 1")));
                }
                let keyring = match (h.keys, h.key_dir) {
                    (Some(_), Some(_)) => bail!(ctx(format!("{field}: set one of `keys` and `key_dir`, not both"))),
                    (None, None) => bail!(ctx(format!("{field}: no keys (set `keys` or `key_dir`)"))),
                    (Some(keys), None) => {
                        if keys.is_empty() {
                            bail!(ctx(format!("{field}.keys: empty (a host needs at least one key)")));
                        }
                        keyring_of(&keys).with_context(|| ctx(format!("{field}.keys")))?
                    }
                    (None, Some(dir)) => {
                        let dir = if dir.is_absolute() { dir } else { base.join(dir) };
                        Keyring::load(&dir).with_context(|| ctx(format!("{field}.key_dir: {}", dir.display())))?
                    }
                };
                hosts.push(Host {
                    id: h.id,
                    client_id: c.id.clone(),
                    heartbeat_interval_seconds: h.heartbeat_interval_seconds,
                    keyring,
                });
            }
            clients.push(Client {
                id: c.id,
                name: c.name,
                hosts,
            });
        }
        Ok(Inventory {
            path: path.to_path_buf(),
            clients,
        })
    }

    /// The host `host` of client `client`.
    pub fn host(&self, client: &str, host: &str) -> Option<&Host> {
        self.clients.iter().find(|c| c.id == client)?.hosts.iter().find(|h| h.id == host)
    }

    /// Every host, in file order.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.clients.iter().flat_map(|c| c.hosts.iter())
    }
}

/// A keyring from inline key infos, each checked like [`Keyring::load`] checks a key
/// directory's (public key hashes to `key_id`, times parse). Inline keys carry no revocation
/// records: the inventory itself is the signed-off source (a reviewed flake), so a
/// `compromised_since` here is taken as given.
fn keyring_of(keys: &[KeyInfo]) -> Result<Keyring> {
    let mut ring = Keyring::default();
    for (i, info) in keys.iter().enumerate() {
        let key = public_key_of(info).with_context(|| format!("[{i}]"))?;
        let valid_from = info.valid_from_time().with_context(|| format!("[{i}]"))?;
        let valid_until = info.valid_until_time().with_context(|| format!("[{i}]"))?;
        let compromised_since = info
            .compromised_since
            .as_deref()
            .map(|c| DateTime::parse_from_rfc3339(c).map(|t| t.with_timezone(&Utc)))
            .transpose()
            .with_context(|| format!("[{i}].compromised_since: key {}", info.key_id))?;
        if ring.keys.contains_key(&info.key_id) {
            bail!("[{i}].key_id: key {} is listed twice", info.key_id);
        }
        ring.keys.insert(
            info.key_id.clone(),
            TrustedKey {
                info: info.clone(),
                key,
                valid_from,
                valid_until,
                compromised_since,
            },
        );
    }
    Ok(ring)
}
