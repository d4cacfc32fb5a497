//! A stand-in `FleetQuery` for the web tests (the real SQLite index is another helper's
//! unfinished work). It answers like the index must: scoped (a client scope sees only its
//! client; other clients are `None`, never listed), attention worst first, and every bundle it
//! refers to can be opened. Its data covers every `ControlState` and `Silence` value,
//! integrity errors, incidents, an exception with approver and expiry, and hostile strings
//! (`<script>` in a host id and in a bundle's JSON) to prove the pages escape.
#![allow(dead_code)]

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use msp_fleet::model::*;

/// The hostile host id (in clinic-002).
pub const HOSTILE_HOST: &str = "<script>alert(\"host\")</script>";
/// The hostile text inside a bundle's JSON.
pub const HOSTILE_FIELD: &str = "</pre><script>alert('bundle')</script><img src=x onerror=alert(2)>";

/// The stand-in's data.
pub struct StandIn {
    names: BTreeMap<String, Option<String>>,
    hosts: Vec<HostView>,
    history: BTreeMap<(String, String, String), Vec<BundleRef>>,
    bundles: BTreeMap<(String, String, String), BundleView>,
    last_poll_at: Option<String>,
}

fn bref(client: &str, host: &str, n: u32, day: u32, hour: u32, event: &str) -> BundleRef {
    let id = format!("EB-202612{day:02}-{n:04}");
    BundleRef {
        object_key: format!("msp-evidence/{client}/{host}/2026/12/{id}.json"),
        bundle_id: id,
        generated_at: format!("2026-12-{day:02}T{hour:02}:00:00Z"),
        event_type: event.to_string(),
    }
}

fn line(
    id: &str,
    title: &str,
    state: ControlState,
    rule: &str,
    fresh: Option<u32>,
    ev: Option<BundleRef>,
    reason: &str,
) -> ControlLine {
    ControlLine {
        control_id: id.into(),
        title: title.into(),
        state,
        evidence_rule: rule.into(),
        freshness_hours: fresh,
        evidence: ev,
        exception: None,
        reason: reason.into(),
    }
}

fn counts(lines: &[ControlLine]) -> StateCounts {
    let mut c = StateCounts::default();
    for l in lines {
        match l.state {
            ControlState::Passing => c.passing += 1,
            ControlState::Failing => c.failing += 1,
            ControlState::Stale => c.stale += 1,
            ControlState::Excepted => c.excepted += 1,
            ControlState::IntegrityError => c.integrity_error += 1,
        }
    }
    c
}

pub const AUDIT: &str = "§164.312(b)";
pub const BACKUP: &str = "§164.308(a)(7)(ii)(A)";
pub const INTEGRITY: &str = "§164.312(c)(1)";
pub const ENCRYPTION: &str = "§164.312(a)(2)(iv)";

struct HostSpec {
    client: &'static str,
    host: String,
    silence: Silence,
    controls: Vec<ControlLine>,
    incidents: Vec<IncidentLine>,
    integrity: Vec<IntegrityLine>,
    last_evidence: Option<String>,
    last_heartbeat: Option<String>,
    drift: usize,
    lag: Option<i64>,
}

impl StandIn {
    /// Two clinics, five hosts.
    pub fn new() -> StandIn {
        let c1 = "clinic-001";
        let c2 = "clinic-002";
        let p = "clinic-001-srv-primary";
        let f = "clinic-001-ws-front";
        let n = "clinic-001-nas";
        let mut specs = Vec::new();

        // Reporting; passing, stale, excepted.
        let hb = bref(c1, p, 41, 2, 11, "heartbeat");
        let bk = bref(c1, p, 12, 1, 2, "backup_completed");
        let mut enc = line(
            ENCRYPTION,
            "Encryption and decryption",
            ControlState::Excepted,
            "drift_absent",
            None,
            None,
            "covered by exception EX-2026-007 until 2027-01-31",
        );
        enc.exception = Some(ExceptionRef {
            id: "EX-2026-007".into(),
            approver: "Dr. A. Privacy (privacy officer)".into(),
            expires: "2027-01-31".into(),
        });
        specs.push(HostSpec {
            client: c1,
            host: p.into(),
            silence: Silence::Reporting,
            controls: vec![
                line(
                    AUDIT,
                    "Audit controls",
                    ControlState::Passing,
                    "heartbeat",
                    Some(1),
                    Some(hb.clone()),
                    "newest heartbeat is 0 h old, allowed 1 h",
                ),
                line(
                    BACKUP,
                    "Data backup plan",
                    ControlState::Stale,
                    "backup_completed",
                    Some(26),
                    Some(bk.clone()),
                    "newest qualifying bundle is 33 h old, allowed 26 h",
                ),
                enc,
            ],
            incidents: vec![IncidentLine {
                bundle: bref(c1, p, 30, 2, 9, "service_failed"),
                runbook_id: Some("RB-SERVICE-001".into()),
                status: "escalated".into(),
            }],
            integrity: vec![],
            last_evidence: Some(hb.generated_at.clone()),
            last_heartbeat: Some(hb.generated_at.clone()),
            drift: 1,
            lag: Some(42),
        });

        // Warn; failing with and without evidence, a failed remediation.
        let fb = bref(c1, f, 7, 1, 22, "backup_failed");
        specs.push(HostSpec {
            client: c1,
            host: f.into(),
            silence: Silence::Warn,
            controls: vec![
                line(
                    AUDIT,
                    "Audit controls",
                    ControlState::Failing,
                    "heartbeat",
                    Some(1),
                    None,
                    "no heartbeat for 2.5 intervals",
                ),
                line(
                    BACKUP,
                    "Data backup plan",
                    ControlState::Failing,
                    "backup_completed",
                    Some(26),
                    Some(fb.clone()),
                    "newest backup bundle is a failure",
                ),
            ],
            incidents: vec![IncidentLine {
                bundle: fb.clone(),
                runbook_id: Some("RB-BACKUP-001".into()),
                status: "failed".into(),
            }],
            integrity: vec![],
            last_evidence: Some(fb.generated_at.clone()),
            last_heartbeat: Some("2026-12-02T08:30:00Z".into()),
            drift: 0,
            lag: Some(9000),
        });

        // Page; integrity errors.
        let bad = bref(c1, n, 3, 2, 1, "heartbeat");
        specs.push(HostSpec {
            client: c1,
            host: n.into(),
            silence: Silence::Page,
            controls: vec![
                line(
                    AUDIT,
                    "Audit controls",
                    ControlState::IntegrityError,
                    "heartbeat",
                    Some(1),
                    Some(bad.clone()),
                    "newest heartbeat failed verification",
                ),
                line(
                    INTEGRITY,
                    "Integrity",
                    ControlState::Passing,
                    "drift_absent",
                    None,
                    Some(bref(c1, n, 1, 1, 0, "heartbeat")),
                    "no drift recorded",
                ),
            ],
            incidents: vec![],
            integrity: vec![
                IntegrityLine {
                    object_key: bad.object_key.clone(),
                    bundle_id: Some(bad.bundle_id.clone()),
                    problem: "signature does not verify with SHA256:nasKEY0000000000000000000000000000000000000".into(),
                },
                IntegrityLine {
                    object_key: format!("msp-evidence/{c1}/{n}/2026/12/garbage.json"),
                    bundle_id: None,
                    problem: "not a bundle: expected value at line 1 column 1".into(),
                },
            ],
            last_evidence: Some("2026-12-01T22:00:00Z".into()),
            last_heartbeat: Some("2026-12-01T22:00:00Z".into()),
            drift: 0,
            lag: None,
        });

        // Never seen.
        specs.push(HostSpec {
            client: c2,
            host: "clinic-002-srv".into(),
            silence: Silence::NeverSeen,
            controls: vec![line(
                AUDIT,
                "Audit controls",
                ControlState::Failing,
                "heartbeat",
                Some(1),
                None,
                "no evidence indexed",
            )],
            incidents: vec![],
            integrity: vec![],
            last_evidence: None,
            last_heartbeat: None,
            drift: 0,
            lag: None,
        });

        // Hostile id, reporting, passing.
        let hh = bref(c2, HOSTILE_HOST, 5, 2, 10, "heartbeat");
        specs.push(HostSpec {
            client: c2,
            host: HOSTILE_HOST.into(),
            silence: Silence::Reporting,
            controls: vec![line(
                AUDIT,
                "Audit controls",
                ControlState::Passing,
                "heartbeat",
                Some(1),
                Some(hh.clone()),
                "fresh",
            )],
            incidents: vec![],
            integrity: vec![],
            last_evidence: Some(hh.generated_at.clone()),
            last_heartbeat: Some(hh.generated_at.clone()),
            drift: 0,
            lag: Some(3),
        });

        let mut s = StandIn {
            names: BTreeMap::from([
                (c1.to_string(), Some("Riverside Family Clinic".to_string())),
                (c2.to_string(), None),
            ]),
            hosts: vec![],
            history: BTreeMap::new(),
            bundles: BTreeMap::new(),
            last_poll_at: Some("2026-12-02T11:55:00Z".into()),
        };
        for h in specs {
            let summary = HostSummary {
                client_id: h.client.into(),
                host_id: h.host.clone(),
                silence: h.silence,
                last_evidence_at: h.last_evidence,
                last_heartbeat_at: h.last_heartbeat,
                controls: counts(&h.controls),
                integrity_errors: h.integrity.len(),
                open_incidents: h.incidents.iter().filter(|i| i.status != "failed").count(),
                failed_incidents: h.incidents.iter().filter(|i| i.status == "failed").count(),
                drift_events: h.drift,
                worm_lag_seconds: h.lag,
            };
            let key_id = format!("SHA256:{}", "k".repeat(8) + &h.host.len().to_string());
            let mut refs: Vec<(BundleRef, bool)> = Vec::new();
            for l in &h.controls {
                let hist: Vec<BundleRef> = l.evidence.iter().cloned().collect();
                for b in &hist {
                    refs.push((b.clone(), l.state != ControlState::IntegrityError));
                }
                s.history
                    .insert((h.client.into(), h.host.clone(), l.control_id.clone()), hist);
            }
            for i in &h.incidents {
                refs.push((i.bundle.clone(), true));
            }
            for (b, ok) in refs {
                let verification = if ok {
                    "verified".to_string()
                } else {
                    h.integrity
                        .iter()
                        .find(|e| e.bundle_id.as_deref() == Some(&b.bundle_id))
                        .map(|e| e.problem.clone())
                        .unwrap_or_default()
                };
                let json = serde_json::json!({
                    "bundle_id": b.bundle_id, "client_id": h.client, "host": h.host,
                    "generated_at": b.generated_at,
                    "incident": {"event_type": b.event_type, "summary": HOSTILE_FIELD},
                    "prev_hash": "0".repeat(64),
                })
                .to_string();
                let view = BundleView {
                    client_id: h.client.into(),
                    host_id: h.host.clone(),
                    bundle: b.clone(),
                    verification,
                    key_id: key_id.clone(),
                    signature_objects: vec![format!("{}.sig", b.object_key), format!("{}.ossl.sig", b.object_key)],
                    json,
                    stock_commands: vec![
                        format!("ssh-keygen -Y verify -f allowed_signers -I {} -n msp-evidence -s {}.json.sig < {}.json", h.host, b.bundle_id, b.bundle_id),
                        format!("openssl pkeyutl -verify -pubin -inkey {key_id}.pem -rawin -in {}.json -sigfile {}.json.ossl.sig", b.bundle_id, b.bundle_id),
                    ],
                };
                s.bundles
                    .insert((h.client.into(), h.host.clone(), b.bundle_id.clone()), view);
            }
            s.hosts.push(HostView {
                summary,
                heartbeat_interval_seconds: 900,
                controls: h.controls,
                incidents: h.incidents,
                integrity: h.integrity,
                key_ids: vec![key_id],
            });
        }
        s
    }

    fn client_summary(&self, client: &str) -> Option<ClientSummary> {
        let name = self.names.get(client)?.clone();
        let hosts: Vec<&HostSummary> = self
            .hosts
            .iter()
            .map(|h| &h.summary)
            .filter(|h| h.client_id == client)
            .collect();
        let mut controls = StateCounts::default();
        for h in &hosts {
            controls.passing += h.controls.passing;
            controls.failing += h.controls.failing;
            controls.stale += h.controls.stale;
            controls.excepted += h.controls.excepted;
            controls.integrity_error += h.controls.integrity_error;
        }
        Some(ClientSummary {
            client_id: client.into(),
            name,
            hosts: hosts.len(),
            silent_hosts: hosts.iter().filter(|h| h.silence != Silence::Reporting).count(),
            controls,
            integrity_errors: hosts.iter().map(|h| h.integrity_errors).sum(),
            open_incidents: hosts.iter().map(|h| h.open_incidents).sum(),
        })
    }

    fn find(&self, scope: &Scope, client: &str, host: &str) -> Option<&HostView> {
        if !scope.sees(client) {
            return None;
        }
        self.hosts
            .iter()
            .find(|h| h.summary.client_id == client && h.summary.host_id == host)
    }
}

fn badness(h: &HostSummary) -> (u32, usize) {
    let silence = match h.silence {
        Silence::Page => 4,
        Silence::NeverSeen => 3,
        Silence::Warn => 2,
        Silence::Reporting => 0,
    };
    (
        silence + if h.integrity_errors > 0 { 5 } else { 0 },
        h.controls.failing + h.controls.integrity_error,
    )
}

impl FleetQuery for StandIn {
    fn fleet(&self, scope: &Scope, now: DateTime<Utc>) -> Result<FleetView> {
        let clients = self
            .names
            .keys()
            .filter(|c| scope.sees(c))
            .filter_map(|c| self.client_summary(c))
            .collect();
        let mut attention: Vec<HostSummary> = self
            .hosts
            .iter()
            .map(|h| h.summary.clone())
            .filter(|h| scope.sees(&h.client_id))
            .filter(|h| badness(h) != (0, 0) || h.controls.stale > 0)
            .collect();
        attention.sort_by(|a, b| badness(b).cmp(&badness(a)).then(a.host_id.cmp(&b.host_id)));
        Ok(FleetView {
            as_of: now.to_rfc3339(),
            last_poll_at: self.last_poll_at.clone(),
            clients,
            attention,
        })
    }

    fn client(&self, scope: &Scope, client: &str, _now: DateTime<Utc>) -> Result<Option<ClientView>> {
        if !scope.sees(client) {
            return Ok(None);
        }
        let Some(summary) = self.client_summary(client) else {
            return Ok(None);
        };
        let hosts = self
            .hosts
            .iter()
            .filter(|h| h.summary.client_id == client)
            .map(|h| h.summary.clone())
            .collect();
        Ok(Some(ClientView {
            summary,
            hosts,
            months: vec!["2026-12".into(), "2026-11".into()],
        }))
    }

    fn host(&self, scope: &Scope, client: &str, host: &str, _now: DateTime<Utc>) -> Result<Option<HostView>> {
        Ok(self.find(scope, client, host).cloned())
    }

    fn control(
        &self,
        scope: &Scope,
        client: &str,
        host: &str,
        control_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<Option<ControlView>> {
        let Some(h) = self.find(scope, client, host) else {
            return Ok(None);
        };
        let Some(line) = h.controls.iter().find(|l| l.control_id == control_id) else {
            return Ok(None);
        };
        let history = self
            .history
            .get(&(client.into(), host.into(), control_id.into()))
            .cloned()
            .unwrap_or_default();
        Ok(Some(ControlView {
            client_id: client.into(),
            host_id: host.into(),
            line: line.clone(),
            history,
        }))
    }

    fn bundle(&self, scope: &Scope, client: &str, host: &str, bundle_id: &str) -> Result<Option<BundleView>> {
        if !scope.sees(client) {
            return Ok(None);
        }
        Ok(self
            .bundles
            .get(&(client.into(), host.into(), bundle_id.into()))
            .cloned())
    }
}
