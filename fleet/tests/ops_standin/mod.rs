//! STAND-IN FleetQuery for the ops tests (alerts, status, packet): the real one is the SQLite
//! index another helper is writing. It answers from host views the test sets and changes
//! between calls (silence, last evidence), honouring the scope as the index must. Only the
//! calls the ops code makes are meaningful; `control` and `bundle` answer `None`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use msp_fleet::model::*;

/// client id → (name, hosts).
type Clients = BTreeMap<String, (Option<String>, Vec<HostView>)>;

/// The stand-in: client id → (name, hosts).
#[derive(Default)]
pub struct StandIn {
    clients: Mutex<Clients>,
    /// `now` of every call, to check what time a caller judged at.
    pub calls: Mutex<Vec<DateTime<Utc>>>,
}

/// A host reporting normally, with no evidence details.
pub fn host(client: &str, host: &str) -> HostView {
    HostView {
        summary: HostSummary {
            client_id: client.into(),
            host_id: host.into(),
            silence: Silence::Reporting,
            last_evidence_at: Some("2026-11-30T23:50:00Z".into()),
            last_heartbeat_at: Some("2026-11-30T23:50:00Z".into()),
            controls: StateCounts {
                passing: 3,
                ..Default::default()
            },
            integrity_errors: 0,
            open_incidents: 0,
            failed_incidents: 0,
            drift_events: 0,
            worm_lag_seconds: None,
        },
        heartbeat_interval_seconds: 900,
        controls: Vec::new(),
        incidents: Vec::new(),
        integrity: Vec::new(),
        key_ids: Vec::new(),
    }
}

impl StandIn {
    /// Adds (or replaces) a host.
    pub fn put(&self, client: &str, name: Option<&str>, h: HostView) {
        let mut m = self.clients.lock().unwrap();
        let e = m
            .entry(client.into())
            .or_insert((name.map(str::to_string), Vec::new()));
        e.1.retain(|x| x.summary.host_id != h.summary.host_id);
        e.1.push(h);
        e.1.sort_by(|a, b| a.summary.host_id.cmp(&b.summary.host_id));
    }

    /// Changes a host's silence and newest evidence time.
    pub fn set(&self, client: &str, host: &str, silence: Silence, last: Option<&str>) {
        let mut m = self.clients.lock().unwrap();
        let h = m
            .get_mut(client)
            .unwrap()
            .1
            .iter_mut()
            .find(|h| h.summary.host_id == host)
            .unwrap();
        h.summary.silence = silence;
        h.summary.last_evidence_at = last.map(str::to_string);
    }

    fn summary(id: &str, name: &Option<String>, hosts: &[HostView]) -> ClientSummary {
        let mut c = ClientSummary {
            client_id: id.into(),
            name: name.clone(),
            hosts: hosts.len(),
            silent_hosts: 0,
            controls: StateCounts::default(),
            integrity_errors: 0,
            open_incidents: 0,
        };
        for h in hosts {
            let s = &h.summary;
            if s.silence != Silence::Reporting {
                c.silent_hosts += 1;
            }
            c.controls.passing += s.controls.passing;
            c.controls.failing += s.controls.failing;
            c.controls.stale += s.controls.stale;
            c.controls.excepted += s.controls.excepted;
            c.controls.integrity_error += s.controls.integrity_error;
            c.integrity_errors += s.integrity_errors;
            c.open_incidents += s.open_incidents;
        }
        c
    }
}

impl FleetQuery for StandIn {
    fn fleet(&self, scope: &Scope, now: DateTime<Utc>) -> Result<FleetView> {
        self.calls.lock().unwrap().push(now);
        let m = self.clients.lock().unwrap();
        let mut clients = Vec::new();
        let mut attention = Vec::new();
        for (id, (name, hosts)) in m.iter().filter(|(id, _)| scope.sees(id)) {
            clients.push(Self::summary(id, name, hosts));
            for h in hosts {
                let s = &h.summary;
                if s.silence != Silence::Reporting
                    || s.controls.failing > 0
                    || s.integrity_errors > 0
                {
                    attention.push(s.clone());
                }
            }
        }
        Ok(FleetView {
            as_of: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            last_poll_at: Some("2026-12-01T00:00:00Z".into()),
            clients,
            attention,
        })
    }

    fn client(
        &self,
        scope: &Scope,
        client: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ClientView>> {
        self.calls.lock().unwrap().push(now);
        if !scope.sees(client) {
            return Ok(None);
        }
        let m = self.clients.lock().unwrap();
        Ok(m.get(client).map(|(name, hosts)| ClientView {
            summary: Self::summary(client, name, hosts),
            hosts: hosts.iter().map(|h| h.summary.clone()).collect(),
            months: vec!["2026-11".into()],
        }))
    }

    fn host(
        &self,
        scope: &Scope,
        client: &str,
        host: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<HostView>> {
        self.calls.lock().unwrap().push(now);
        if !scope.sees(client) {
            return Ok(None);
        }
        let m = self.clients.lock().unwrap();
        Ok(m.get(client)
            .and_then(|(_, hs)| hs.iter().find(|h| h.summary.host_id == host).cloned()))
    }

    fn control(
        &self,
        _: &Scope,
        _: &str,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<Option<ControlView>> {
        Ok(None)
    }

    fn bundle(&self, _: &Scope, _: &str, _: &str, _: &str) -> Result<Option<BundleView>> {
        Ok(None)
    }
}
