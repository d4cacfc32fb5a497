//! Alerts: escalations, failed remediations and long WORM outages reach a person.
//!
//! Two channels, both always tried:
//! * the journal at priority `crit` (2), with structured fields (`MSP_ALERT_KIND=`,
//!   `MSP_INCIDENT_ID=`, ...) so `journalctl -u msp-agent -p crit` lists every alert;
//! * a webhook (JSON POST), retried with exponential backoff on a background thread, so a slow
//!   or dead endpoint never holds up remediation.
//!
//! Alerts are notifications, not evidence: the evidence of an escalation or a failure is the
//! signed bundle the daemon writes before it alerts. Both channels leave the host, so the
//! summary passes the PHI filter (scrubbed, bounded by the excerpt bound) before either.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::AlertConfig;
use crate::scrub::PhiFilter;

/// One alert, as POSTed to the webhook (the body is shared with the fleet view).
pub use msp_evidence::webhook::Alert;

/// Sends alerts. Cheap to call; the webhook runs on its own thread.
pub struct Alerter {
    queue: Option<SyncSender<Alert>>,
    worker: Option<JoinHandle<()>>,
    /// Every summary passes it before the journal or the webhook sees it.
    phi: Arc<PhiFilter>,
}

/// Alerts waiting for the webhook beyond this are dropped (and said so in the journal): the
/// journal copy is already written, and memory must stay bounded during an outage.
const QUEUE_CAPACITY: usize = 256;

impl Alerter {
    /// An alerter for `config`. Without a webhook URL only the journal is used.
    pub fn new(config: &AlertConfig) -> Result<Alerter> {
        let Some(url) = config.webhook_url.clone() else {
            return Ok(Alerter { queue: None, worker: None, phi: crate::scrub::installed() });
        };
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
            .user_agent(concat!("msp-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the webhook HTTP client")?;
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let attempts = config.retries.max(1);
        let worker = std::thread::Builder::new()
            .name("alert-webhook".into())
            .spawn(move || webhook_worker(rx, client, url, attempts))
            .context("starting the webhook thread")?;
        Ok(Alerter { queue: Some(tx), worker: Some(worker), phi: crate::scrub::installed() })
    }

    /// Use `filter` instead of the process-wide PHI filter ([`crate::scrub::installed`]).
    pub fn with_phi_filter(mut self, filter: Arc<PhiFilter>) -> Alerter {
        self.phi = filter;
        self
    }

    /// Raise `alert`: journal at `crit` now, webhook in the background. The summary is
    /// scrubbed and bounded first (it can quote an error message or a unit's status).
    pub fn raise(&self, mut alert: Alert) {
        alert.summary = self.phi.summary(&alert.summary);
        log_crit(&alert);
        if let Some(q) = &self.queue {
            match q.try_send(alert) {
                Ok(()) => {}
                Err(TrySendError::Full(a)) => {
                    tracing::error!(kind = %a.kind, "alert webhook queue full; this alert is in the journal only")
                }
                Err(TrySendError::Disconnected(_)) => {
                    tracing::error!("alert webhook thread has stopped; alerts go to the journal only")
                }
            }
        }
    }

    /// Deliver what is queued (bounded by the retries' own timeouts), then stop the worker.
    pub fn shutdown(mut self) {
        self.queue.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn webhook_worker(rx: Receiver<Alert>, client: reqwest::blocking::Client, url: String, attempts: u32) {
    for alert in rx {
        let mut delay = Duration::from_millis(500);
        let body = match serde_json::to_vec(&alert) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise alert");
                continue;
            }
        };
        for attempt in 1..=attempts {
            let request = client.post(&url).header("content-type", "application/json").body(body.clone());
            match request.send() {
                Ok(resp) if resp.status().is_success() => break,
                Ok(resp) => tracing::warn!(attempt, status = %resp.status(), "alert webhook refused the alert"),
                Err(e) => tracing::warn!(attempt, error = %e, "alert webhook unreachable"),
            }
            if attempt == attempts {
                tracing::error!(kind = %alert.kind, "alert webhook failed after {attempts} attempts; the alert is in the journal");
            } else {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Write the alert to the journal at priority `crit`, or to stderr with the `<2>` prefix
/// systemd understands when the journal socket is not there (not under systemd).
fn log_crit(alert: &Alert) {
    let message = format!("ALERT {}: {}", alert.kind, alert.summary);
    if libsystemd::logging::connected_to_journal() {
        let mut fields: Vec<(&str, &str)> = vec![
            ("MSP_ALERT_KIND", alert.kind.as_str()),
            ("MSP_CLIENT_ID", alert.client_id.as_str()),
            ("MSP_HOST", alert.host.as_str()),
            ("SYSLOG_IDENTIFIER", "msp-agent"),
        ];
        if let Some(v) = &alert.incident_id {
            fields.push(("MSP_INCIDENT_ID", v));
        }
        if let Some(v) = &alert.runbook_id {
            fields.push(("MSP_RUNBOOK_ID", v));
        }
        if let Some(v) = &alert.bundle_id {
            fields.push(("MSP_BUNDLE_ID", v));
        }
        let sent = libsystemd::logging::journal_send(
            libsystemd::logging::Priority::Critical,
            &message,
            fields.into_iter(),
        );
        if sent.is_ok() {
            return;
        }
    }
    eprintln!("<2>{message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    fn alert() -> Alert {
        Alert {
            kind: "escalation".into(),
            client_id: "clinic-001".into(),
            host: "srv".into(),
            incident_id: Some("INC-20261122-0001".into()),
            runbook_id: None,
            bundle_id: Some("EB-20261122-0001".into()),
            summary: "no runbook matches service_crash for \"x; rm -rf /\"".into(),
            at: "2026-11-22T10:00:00Z".into(),
        }
    }

    /// Accept one HTTP request on `listener`, answer `status`, return the request's body.
    fn serve_one(listener: &TcpListener, status: &str) -> String {
        let (mut s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        String::from_utf8(body).unwrap()
    }

    /// A real HTTP server on loopback that fails the first request and accepts the second.
    #[test]
    fn webhook_is_retried_until_accepted_and_carries_the_alert_as_json() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for status in ["500 Internal Server Error", "204 No Content"] {
                bodies.push(serve_one(&listener, status));
            }
            bodies
        });
        let cfg = AlertConfig { webhook_url: Some(format!("http://127.0.0.1:{port}/hook")), retries: 3, timeout_seconds: 5 };
        let a = Alerter::new(&cfg).unwrap();
        a.raise(alert());
        a.shutdown();
        let bodies = server.join().unwrap();
        assert_eq!(bodies.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
        assert_eq!(v["kind"], "escalation");
        assert_eq!(v["incident_id"], "INC-20261122-0001");
        assert_eq!(v["summary"], "no runbook matches service_crash for \"x; rm -rf /\"");
    }

    /// The webhook body (what leaves the host) carries placeholders, not identifiers.
    #[test]
    fn webhook_summary_passes_the_phi_filter() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || serve_one(&listener, "204 No Content"));
        let cfg = AlertConfig { webhook_url: Some(format!("http://127.0.0.1:{port}/hook")), retries: 1, timeout_seconds: 5 };
        let a = Alerter::new(&cfg).unwrap().with_phi_filter(PhiFilter::embedded());
        let mut al = alert();
        al.summary = format!("portal.service failed: MRN 00481516 jane.doe@example.com (555) 867-5309 {}", "x ".repeat(3000));
        a.raise(al);
        a.shutdown();
        let v: serde_json::Value = serde_json::from_str(&server.join().unwrap()).unwrap();
        let summary = v["summary"].as_str().unwrap();
        assert!(summary.len() <= 2048, "{}", summary.len());
        assert!(summary.starts_with("portal.service failed: [mrn×1] [email×1] [phone×1] x x"), "{summary}");
        for phi in ["00481516", "jane.doe", "867-5309"] {
            assert!(!summary.contains(phi), "{summary}");
        }
        let short = Alerter::new(&AlertConfig { webhook_url: None, retries: 1, timeout_seconds: 1 }).unwrap();
        assert_eq!(short.phi.scrub("MRN 00481516"), "[mrn×1]");
    }
}
