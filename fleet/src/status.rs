//! `msp-fleet status [--json]`: the fleet in a terminal or a script, from the same view model
//! as the web pages (so "silent" means the same thing everywhere).
//!
//! * [`collect`] gathers the fleet view and every visible host's summary (one `client` call
//!   per client);
//! * [`render`] prints a compact table (client, host, silence, last evidence, controls
//!   passing/failing/stale/excepted/integrity-error, incidents open/failed, objects failing
//!   verification), or with `json` a stable object:
//!   `{"as_of", "last_poll_at", "ok", "hosts": [HostSummary, ...]}` (hosts sorted by client
//!   then host; fields as in `model::HostSummary`);
//! * [`exit_code`]: 0 when every host is good, 1 when any host is silent (warn, page or never
//!   seen), has a failing control, a control in integrity error, or an object that failed
//!   verification. (Stale controls alone do not make it 1: they are shown, and become failing
//!   or silence soon enough; the lead may tighten this.)

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{FleetQuery, FleetView, HostSummary, Scope, Silence};

/// The fleet view and every host `scope` sees, sorted by client then host.
pub fn collect(
    q: &dyn FleetQuery,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<(FleetView, Vec<HostSummary>)> {
    let view = q.fleet(scope, now).context("reading the fleet view")?;
    let mut hosts = Vec::new();
    for c in &view.clients {
        if let Some(cv) = q
            .client(scope, &c.client_id, now)
            .with_context(|| format!("reading client {}", c.client_id))?
        {
            hosts.extend(cv.hosts);
        }
    }
    hosts.sort_by(|a, b| (&a.client_id, &a.host_id).cmp(&(&b.client_id, &b.host_id)));
    Ok((view, hosts))
}

/// Whether a host needs someone to look at it (see the module docs).
pub fn host_needs_attention(h: &HostSummary) -> bool {
    h.silence != Silence::Reporting
        || h.controls.failing > 0
        || h.controls.integrity_error > 0
        || h.integrity_errors > 0
}

/// 0 when no host needs attention, 1 otherwise.
pub fn exit_code(hosts: &[HostSummary]) -> u8 {
    u8::from(hosts.iter().any(host_needs_attention))
}

#[derive(Serialize)]
struct StatusJson<'a> {
    as_of: &'a str,
    last_poll_at: Option<&'a str>,
    /// `exit_code == 0`.
    ok: bool,
    hosts: Vec<&'a HostSummary>,
}

fn silence_word(s: Silence) -> &'static str {
    match s {
        Silence::Reporting => "reporting",
        Silence::Warn => "SILENT-WARN",
        Silence::Page => "SILENT-PAGE",
        Silence::NeverSeen => "NEVER-SEEN",
    }
}

/// The table (or JSON with `json`) for `view` and `hosts` (from [`collect`]). Ends with a
/// newline.
pub fn render(view: &FleetView, hosts: &[HostSummary], json: bool) -> String {
    let mut sorted: Vec<&HostSummary> = hosts.iter().collect();
    sorted.sort_by(|a, b| (&a.client_id, &a.host_id).cmp(&(&b.client_id, &b.host_id)));
    if json {
        let doc = StatusJson {
            as_of: &view.as_of,
            last_poll_at: view.last_poll_at.as_deref(),
            ok: exit_code(hosts) == 0,
            hosts: sorted,
        };
        // Serialising plain strings and numbers cannot fail.
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        return s;
    }
    let header = [
        "CLIENT",
        "HOST",
        "SILENCE",
        "LAST EVIDENCE",
        "P/F/S/E/I",
        "INCIDENTS",
        "INTEGRITY",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(str::to_string)];
    for h in &sorted {
        let c = &h.controls;
        rows.push([
            h.client_id.clone(),
            h.host_id.clone(),
            silence_word(h.silence).to_string(),
            h.last_evidence_at.clone().unwrap_or_else(|| "-".into()),
            format!(
                "{}/{}/{}/{}/{}",
                c.passing, c.failing, c.stale, c.excepted, c.integrity_error
            ),
            format!("{} open, {} failed", h.open_incidents, h.failed_incidents),
            if h.integrity_errors == 0 {
                "ok".into()
            } else {
                format!("{} BAD", h.integrity_errors)
            },
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!(
        "as of {}; last poll {}\n",
        view.as_of,
        view.last_poll_at.as_deref().unwrap_or("never")
    );
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let bad = sorted.iter().filter(|h| host_needs_attention(h)).count();
    out.push_str(&format!(
        "{} hosts, {} need attention (P/F/S/E/I = controls passing/failing/stale/excepted/integrity error)\n",
        sorted.len(),
        bad
    ));
    out
}
