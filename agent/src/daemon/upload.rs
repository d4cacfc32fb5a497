//! The daemon's WORM thread: drains the evidence store to S3 Object Lock in chain order
//! (see [`crate::worm`]), checks the bucket first, and turns a long outage into an alert.
//! It only reads the store's files, so it needs no lock shared with the writer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::alert::{Alert, Alerter};
use crate::keys::Signer;
use crate::worm::config::WormConfig;
use crate::worm::outbox::Backoff;
use crate::worm::sync::Uploader;

/// Between passes when the outbox is drained.
const POLL: Duration = Duration::from_secs(10);

/// Start the thread (the caller fills `cfg.client_id`/`cfg.host` when the section leaves
/// them empty).
pub fn start(
    cfg: WormConfig,
    evidence_dir: &Path,
    state_dir: &Path,
    signer: Arc<Signer>,
    alerter: Arc<Alerter>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let creds = cfg.credentials().context("worm: loading S3 credentials")?;
    let mut up = Uploader::new(cfg.clone(), creds, evidence_dir, state_dir, signer)?;
    let raise = move |kind: &str, summary: String| {
        alerter.raise(Alert {
            kind: kind.into(),
            client_id: cfg.client_id.clone(),
            host: cfg.host.clone(),
            incident_id: None,
            runbook_id: None,
            bundle_id: None,
            summary,
            at: crate::runbook::exec::rfc3339(chrono::Utc::now()),
        })
    };
    std::thread::Builder::new()
        .name("worm-upload".into())
        .spawn(move || {
            let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
            let mut bucket_ok = false;
            while !stop.load(Ordering::Relaxed) {
                let wait = if !bucket_ok {
                    match up.check_bucket() {
                        Ok(()) => {
                            bucket_ok = true;
                            Duration::ZERO
                        }
                        Err(e) => {
                            raise("worm_bucket_unusable", format!("{e:#}"));
                            backoff.next_delay()
                        }
                    }
                } else {
                    match up.sync_once() {
                        Ok(r) => {
                            if !r.confirmed.is_empty() {
                                tracing::info!(confirmed = r.confirmed.len(), pending = r.pending, "evidence uploaded to WORM storage");
                            }
                            if r.alert {
                                let since = r.failing_since.map(|t| t.to_rfc3339()).unwrap_or_default();
                                raise("worm_outage", format!("WORM uploads failing since {since}: {}", r.error.clone().unwrap_or_default()));
                            }
                            if let Some(e) = &r.error {
                                tracing::warn!(error = %e, pending = r.pending, "WORM upload pass stopped early");
                                backoff.next_delay()
                            } else {
                                backoff.reset();
                                POLL
                            }
                        }
                        Err(e) => {
                            raise("worm_local_error", format!("WORM uploader: {e:#}"));
                            backoff.next_delay()
                        }
                    }
                };
                let until = Instant::now() + wait;
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .context("starting the WORM upload thread")
}
