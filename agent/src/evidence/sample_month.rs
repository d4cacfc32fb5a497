//! TEST AND DEMO AID, not used by the agent: `msp-agent evidence sample-month` writes a month
//! of realistic, correctly signed and chained evidence for one host
//! ([`crate::packet::sample::write_month`]) into a store directory, signed with the real key
//! of a key directory. The fleet view's tests and demo fill buckets (or local mirrors) with it.
//!
//! Several months can be written into one store, in order: an existing store's chain is
//! continued (the first new bundle's sequence follows the store's newest bundle and links to
//! its SHA-256). A month that does not start after the newest bundle is refused, since the
//! chain must run forward in time and the generator would otherwise overwrite files. The
//! store's signed chain head is re-signed for the new newest bundle (as after a restore from
//! WORM storage, `EvidenceStore::seal_restored`, which checks the whole chain first), so
//! `evidence verify STORE` accepts the store as a whole.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use msp_evidence::bundle::{Bundle, GENESIS_PREV_HASH};
use msp_evidence::store::{sha256_hex, BundleName, EvidenceStore};

use crate::exit::Exit;
use crate::keys::Signer;
use crate::packet::period::Month;
use crate::packet::sample::{write_month, MonthSpec};

/// The store's newest bundle: (sequence, SHA-256 of its bytes, generated_at), `None` if empty.
pub fn chain_tail(store: &Path) -> Result<Option<(u64, String, String)>> {
    if !store.exists() {
        return Ok(None);
    }
    let (files, _) = msp_evidence::verify::collect(&[store.to_path_buf()])
        .with_context(|| format!("listing bundles in {}", store.display()))?;
    let newest: Option<(BundleName, &PathBuf)> = files
        .iter()
        .filter_map(|f| {
            let name = f.file_name()?.to_str()?;
            Some((BundleName::parse_file_name(name)?, f))
        })
        .max_by_key(|(n, _)| *n);
    let Some((_, path)) = newest else {
        return Ok(None);
    };
    let bytes = msp_evidence::fsutil::read_regular(path, msp_evidence::fsutil::limits::BUNDLE)?;
    let b: Bundle = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not an evidence bundle", path.display()))?;
    Ok(Some((b.chain.sequence, sha256_hex(&bytes), b.generated_at)))
}

/// The command's switches beyond where and what.
#[derive(Debug, Clone, Copy)]
pub struct Extras {
    /// Create `key_dir` with a key valid from the day before the month.
    pub new_key: bool,
    /// Write the month's WORM restore test record.
    pub worm_restore_test: bool,
}

/// Writes `month` for `client`/`host` into `store`, continuing its chain; prints a summary.
pub fn run(
    store: &Path,
    month: &str,
    client: &str,
    host: &str,
    key_dir: &Path,
    heartbeat_minutes: u32,
    extras: Extras,
) -> Result<Exit> {
    let m = Month::parse(month)?;
    if heartbeat_minutes == 0 {
        bail!("--heartbeat-minutes must be at least 1");
    }
    if extras.new_key {
        if key_dir.exists() {
            bail!("--new-key: {} already exists; refusing to replace a key", key_dir.display());
        }
        crate::keys::generate(key_dir, m.start() - chrono::Duration::days(1))
            .with_context(|| format!("generating a key in {}", key_dir.display()))?;
    }
    let signer = Signer::load(key_dir)
        .with_context(|| format!("loading the signing key from {}", key_dir.display()))?;
    // A key valid only from later would sign bundles that never verify: say so now.
    let info_path = key_dir.join(msp_evidence::keys::KEY_INFO_FILE);
    let info = msp_evidence::keys::read_key_info(&info_path)?;
    let valid_from = info
        .valid_from_time()
        .with_context(|| format!("{}: valid_from", info_path.display()))?;
    if valid_from > m.start() {
        bail!(
            "the key in {} is valid from {}, after the start of {month}: its bundles would not verify (use a key valid before the month)",
            key_dir.display(),
            info.valid_from
        );
    }
    let (name, text) = crate::packet::EMBEDDED_BASELINE;
    let mut findings = crate::baseline::report::Findings::default();
    let baseline = crate::baseline::model::load(name, text, &mut findings)
        .with_context(|| format!("the embedded baseline {name} does not load"))?;
    let mut spec = MonthSpec::new(
        m,
        &baseline.version,
        &crate::baseline::model::sha256_hex(text.as_bytes()),
    );
    spec.client_id = client.to_string();
    spec.hostname = host.to_string();
    spec.heartbeat_interval = i64::from(heartbeat_minutes) * 60;
    spec.worm_restore_test = extras.worm_restore_test;
    match chain_tail(store)? {
        None => {
            spec.first_sequence = 1;
            spec.prev_sha256 = GENESIS_PREV_HASH.to_string();
        }
        Some((seq, sha, at)) => {
            let newest = msp_evidence::keys::parse_time(&at).with_context(|| {
                format!("{}: newest bundle's generated_at {at:?}", store.display())
            })?;
            if newest >= m.start() {
                bail!(
                    "{} already holds evidence up to {at}; write a month after it (the chain runs forward in time)",
                    store.display()
                );
            }
            // The store's signed head must name the newest bundle we continue from (a store
            // whose head is elsewhere is not ours to extend); it is re-signed below.
            let head = EvidenceStore::read_head_sequence(store)?;
            if head != 0 && head != seq {
                bail!("{}: the chain head says sequence {head}, the newest bundle is {seq}; refusing to extend it", store.display());
            }
            spec.first_sequence = seq + 1;
            spec.prev_sha256 = sha;
        }
    }
    // The generator writes bundles without the store's head; drop the old head and sign a new
    // one for the newest bundle afterwards (as after a restore from WORM), which re-checks the
    // whole chain for forks and gaps.
    for rel in [
        msp_evidence::store::HEAD_DIR,
        msp_evidence::store::LEGACY_HEAD_FILE,
    ] {
        let p = store.join(rel);
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("removing the old chain head {}", p.display()))
            }
        }
    }
    let tally = write_month(store, &spec, &signer)
        .with_context(|| format!("writing {month} into {}", store.display()))?;
    EvidenceStore::seal_restored(store, &signer, chrono::Utc::now())
        .with_context(|| format!("signing the chain head of {}", store.display()))?;
    println!(
        "{}: wrote {} bundles for {client}/{host} in {month} (sequences {}..={}; {} heartbeats every {heartbeat_minutes} min, {} incidents)",
        store.display(),
        tally.bundles,
        spec.first_sequence,
        tally.last.0,
        tally.heartbeats,
        tally.incidents
    );
    Ok(Exit::Ok)
}
