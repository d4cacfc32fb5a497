//! The monthly packet per client, across all its hosts: what the MSP hands a clinic's auditor
//! for the fleet as a whole (each host's own `msp-agent packet` remains the per-bundle record).
//!
//! [`write`] judges the month at its end (the first instant of the next month), or at `now` when
//! that is earlier, through the same [`FleetQuery`] as the web pages, and writes into `out_dir`:
//!
//! * `packet.html`: a header saying what the packet is assembled from (verified evidence in the
//!   bucket) and what it does NOT prove, then per host: silence, controls with state, reason and
//!   the object key of the evidence behind each, the month's open/escalated/failed incidents,
//!   integrity errors. Every string is escaped (maud), since ids come from hostile files.
//! * `packet.json`: the same data (`packet_version`, `client_id`, `month`, period, `as_of`,
//!   `generated_at`, `generator`, `hosts: [HostView]` with incidents limited to the month).
//! * `fleet-manifest.json` with `fleet-manifest.json.sig` (raw 64-byte Ed25519 over the file's
//!   exact bytes) and `fleet-manifest.json.sshsig` (SSHSIG, namespace `msp-evidence`), signed
//!   with the given [`Signer`] in the agent's format. The agent's `msp_evidence::manifest`
//!   is bundle-oriented (paths of one host's store, baseline hash), which a fleet packet does
//!   not have, so this is a small manifest of its own ([`FleetManifest`]: type, client, month,
//!   period, signing key, and the SHA-256 and size of both packet files). An auditor checks it
//!   with stock tools:
//!   `ssh-keygen -Y verify -f allowed_signers -I msp-evidence -n msp-evidence -s fleet-manifest.json.sshsig < fleet-manifest.json`,
//!   `openssl pkeyutl -verify -pubin -inkey evidence-signing.pub.pem -rawin -in fleet-manifest.json -sigfile fleet-manifest.json.sig`,
//!   then `sha256sum packet.html packet.json` against the manifest.
//!
//! Files are written atomically (temp, fsync, rename); the manifest last, so a manifest on disk
//! always describes complete packet files. Metadata only (DESIGN.md §4c).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Utc};
use maud::{html, Markup, DOCTYPE};
use msp_evidence::keys::{Signer, ALGORITHM};
use msp_evidence::manifest::{ManifestFile, ManifestSigning};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{ControlState, FleetQuery, HostView, Scope, Silence};

/// The packet's HTML file.
pub const HTML_FILE: &str = "packet.html";
/// The packet's JSON file.
pub const JSON_FILE: &str = "packet.json";
/// The signed manifest.
pub const MANIFEST_FILE: &str = "fleet-manifest.json";
/// `manifest_type` of [`FleetManifest`] (tells it apart from a host packet's `manifest.json`).
pub const MANIFEST_TYPE: &str = "msp-fleet-packet";
/// `manifest_version` and `packet_version` written.
pub const VERSION: &str = "1.0";

/// `fleet-manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetManifest {
    /// [`MANIFEST_TYPE`].
    pub manifest_type: String,
    /// [`VERSION`].
    pub manifest_version: String,
    /// The client.
    pub client_id: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Start of the period (RFC 3339, UTC).
    pub period_start: String,
    /// End of the period (exclusive).
    pub period_end: String,
    /// The time the packet was judged at.
    pub as_of: String,
    /// When it was made.
    pub generated_at: String,
    /// `msp-fleet <version>`.
    pub generator: String,
    /// Hosts covered.
    pub hosts: Vec<String>,
    /// The key that signed this manifest.
    pub signing: ManifestSigning,
    /// `packet.html` and `packet.json`.
    pub files: Vec<ManifestFile>,
}

/// `packet.json`.
#[derive(Debug, Clone, Serialize)]
struct PacketJson<'a> {
    packet_version: &'a str,
    client_id: &'a str,
    client_name: Option<&'a str>,
    month: &'a str,
    period_start: &'a str,
    period_end: &'a str,
    as_of: &'a str,
    generated_at: &'a str,
    generator: &'a str,
    hosts: &'a [HostView],
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `YYYY-MM` → (start, end exclusive).
pub fn month_bounds(month: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let bad = || format!("month {month:?}: expected YYYY-MM");
    if month.len() != 7 || month.as_bytes()[4] != b'-' {
        bail!(bad());
    }
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").with_context(bad)?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .with_context(bad)?;
    let at = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
    Ok((at(first).with_context(bad)?, at(next).with_context(bad)?))
}

fn in_period(t: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    DateTime::parse_from_rfc3339(t)
        .map(|t| {
            let t = t.with_timezone(&Utc);
            t >= start && t < end
        })
        .unwrap_or(false)
}

fn state_word(s: ControlState) -> &'static str {
    match s {
        ControlState::Passing => "passing",
        ControlState::Failing => "failing",
        ControlState::Stale => "stale",
        ControlState::Excepted => "excepted",
        ControlState::IntegrityError => "integrity error",
    }
}

fn silence_word(s: Silence) -> &'static str {
    match s {
        Silence::Reporting => "reporting",
        Silence::Warn => "silent (warning tier)",
        Silence::Page => "silent (page tier)",
        Silence::NeverSeen => "never seen: no evidence indexed",
    }
}

/// A client's month, judged as of the month's end (or `now` if earlier): what the packet
/// holds, before it is rendered and signed.
#[derive(Debug, Clone)]
pub struct MonthViews {
    /// `YYYY-MM`.
    pub month: String,
    /// The client.
    pub client_id: String,
    /// Its display name, if the inventory has one.
    pub client_name: Option<String>,
    /// First second of the month.
    pub start: DateTime<Utc>,
    /// First second of the next month.
    pub end: DateTime<Utc>,
    /// The time the views were judged at.
    pub as_of: DateTime<Utc>,
    /// Each host's page as of `as_of`, incidents cut to the month.
    pub hosts: Vec<HostView>,
}

/// Collects `client`'s `month` through `q`. `scope` must see the client; a month that has not
/// started is an error.
pub fn collect(q: &dyn FleetQuery, scope: &Scope, client: &str, month: &str, now: DateTime<Utc>) -> Result<MonthViews> {
    let (start, end) = month_bounds(month)?;
    if start > now {
        bail!("month {month} has not started yet (now is {})", rfc(now));
    }
    let as_of = end.min(now);
    let cv = q
        .client(scope, client, as_of)
        .with_context(|| format!("reading client {client}"))?
        .with_context(|| format!("client {client:?} is unknown or not visible to this scope"))?;
    let mut hosts = Vec::new();
    for h in &cv.hosts {
        let mut hv = q
            .host(scope, client, &h.host_id, as_of)
            .with_context(|| format!("reading host {} of client {client}", h.host_id))?
            .with_context(|| format!("host {} of client {client} vanished while the packet was made", h.host_id))?;
        // The month's incidents only (the host page lists the newest ones, of any month).
        hv.incidents.retain(|i| in_period(&i.bundle.generated_at, start, end));
        hosts.push(hv);
    }
    Ok(MonthViews {
        month: month.to_string(),
        client_id: client.to_string(),
        client_name: cv.summary.name.clone(),
        start,
        end,
        as_of,
        hosts,
    })
}

/// `packet.json` of `m`, as generated at `now` (the API serves the same document unsigned).
pub fn json_document(m: &MonthViews, now: DateTime<Utc>) -> Result<Vec<u8>> {
    let (ps, pe, asof, generated_at) = (rfc(m.start), rfc(m.end), rfc(m.as_of), rfc(now));
    let generator = format!("msp-fleet {}", env!("CARGO_PKG_VERSION"));
    let doc = PacketJson {
        packet_version: VERSION,
        client_id: &m.client_id,
        client_name: m.client_name.as_deref(),
        month: &m.month,
        period_start: &ps,
        period_end: &pe,
        as_of: &asof,
        generated_at: &generated_at,
        generator: &generator,
        hosts: &m.hosts,
    };
    let mut json = serde_json::to_vec_pretty(&doc).context("serialising packet.json")?;
    json.push(b'\n');
    Ok(json)
}

/// Writes the packet of `client` for `month` (`YYYY-MM`) into `out_dir` (created if missing)
/// and returns the path of `fleet-manifest.json`. `scope` must see the client (an operator, or
/// the client's own token). Judged at the end of the month, or `now` if earlier; a month that
/// has not started is an error.
pub fn write(
    q: &dyn FleetQuery,
    scope: &Scope,
    client: &str,
    month: &str,
    now: DateTime<Utc>,
    out_dir: &Path,
    signer: &Signer,
) -> Result<PathBuf> {
    let m = collect(q, scope, client, month, now)?;
    let hosts = &m.hosts;
    let generated_at = rfc(now);
    let generator = format!("msp-fleet {}", env!("CARGO_PKG_VERSION"));
    let (ps, pe, asof) = (rfc(m.start), rfc(m.end), rfc(m.as_of));
    let json = json_document(&m, now)?;
    let html = render_html(
        client,
        m.client_name.as_deref(),
        month,
        &ps,
        &pe,
        &asof,
        &generated_at,
        hosts,
        signer.key_id(),
    )
    .into_string()
    .into_bytes();

    msp_evidence::fsutil::create_dir_all(out_dir, 0o755)?;
    let mut files = Vec::new();
    for (name, bytes) in [(HTML_FILE, &html), (JSON_FILE, &json)] {
        let path = out_dir.join(name);
        msp_evidence::fsutil::replace(&path, bytes, 0o644)
            .with_context(|| format!("writing {}", path.display()))?;
        files.push(ManifestFile {
            path: name.into(),
            sha256: hex::encode(Sha256::digest(bytes)),
            size_bytes: bytes.len() as u64,
        });
    }
    let manifest = FleetManifest {
        manifest_type: MANIFEST_TYPE.into(),
        manifest_version: VERSION.into(),
        client_id: client.into(),
        month: month.into(),
        period_start: ps,
        period_end: pe,
        as_of: asof,
        generated_at,
        generator,
        hosts: hosts.iter().map(|h| h.summary.host_id.clone()).collect(),
        signing: ManifestSigning {
            key_id: signer.key_id().into(),
            algorithm: ALGORITHM.into(),
        },
        files,
    };
    let mut bytes =
        serde_json::to_vec_pretty(&manifest).context("serialising the fleet manifest")?;
    bytes.push(b'\n');
    let path = out_dir.join(MANIFEST_FILE);
    let sig = out_dir.join(format!("{MANIFEST_FILE}.sig"));
    let sshsig = out_dir.join(format!("{MANIFEST_FILE}.sshsig"));
    msp_evidence::fsutil::replace(&sig, &signer.sign_raw(&bytes), 0o644)
        .with_context(|| format!("writing {}", sig.display()))?;
    msp_evidence::fsutil::replace(&sshsig, signer.sign_sshsig(&bytes)?.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", sshsig.display()))?;
    msp_evidence::fsutil::replace(&path, &bytes, 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[allow(clippy::too_many_arguments)]
fn render_html(
    client: &str,
    name: Option<&str>,
    month: &str,
    start: &str,
    end: &str,
    as_of: &str,
    generated_at: &str,
    hosts: &[HostView],
    key_id: &str,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Fleet compliance packet " (client) " " (month) }
                style { "body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse;width:100%}td,th{border:1px solid #999;padding:2px 6px;text-align:left;vertical-align:top}code{font-size:85%;word-break:break-all}.bad{color:#a00;font-weight:bold}" }
            }
            body {
                h1 { "Fleet compliance packet: " (name.unwrap_or(client)) " (" (client) "), " (month) }
                p { "Period " (start) " to " (end) " (exclusive), judged as of " (as_of) "; generated " (generated_at) "." }
                section #about {
                    h2 { "What this packet is" }
                    p { "It is assembled by msp-fleet from the evidence bundles of this client's hosts in the MSP's WORM bucket (S3 Object Lock). A bundle counts only after its signature verified against the host's registered key (within the key's validity window) and its place in the host's hash chain checked; an object that failed is listed below as an integrity error, never as passing. Each status names the object key of the bundle behind it." }
                    h2 { "What it does NOT prove" }
                    ul {
                        li { "That the hosts are configured correctly beyond what the agents measured and recorded; evidence is only as good as the checks that produced it." }
                        li { "Anything about a host while it was silent, or about machines not in the MSP's inventory." }
                        li { "Administrative and physical safeguards (policies, training, facility access): only server controls with an evidence rule are assessed here." }
                        li { "The content of each bundle: for the per-bundle list with SHA-256 hashes, use each host's own packet (msp-agent packet) or verify the listed objects with msp-agent evidence verify." }
                    }
                    p {
                        "This packet's files are fixed by " code { (MANIFEST_FILE) } ", signed with key " code { (key_id) } ". Check it with stock tools:"
                    }
                    pre {
                        "ssh-keygen -Y verify -f allowed_signers -I msp-evidence -n msp-evidence -s " (MANIFEST_FILE) ".sshsig < " (MANIFEST_FILE) "\n"
                        "openssl pkeyutl -verify -pubin -inkey evidence-signing.pub.pem -rawin -in " (MANIFEST_FILE) " -sigfile " (MANIFEST_FILE) ".sig\n"
                        "sha256sum " (HTML_FILE) " " (JSON_FILE) "   # compare with the manifest's files[]"
                    }
                }
                h2 { "Hosts" }
                table {
                    tr { th { "Host" } th { "Silence" } th { "Last evidence" } th { "Controls p/f/s/e/i" } th { "Incidents (open/failed)" } th { "Integrity errors" } }
                    @for h in hosts {
                        @let s = &h.summary;
                        tr {
                            td { a href={ "#host-" (s.host_id) } { (s.host_id) } }
                            td class=[(s.silence != Silence::Reporting).then_some("bad")] { (silence_word(s.silence)) }
                            td { (s.last_evidence_at.as_deref().unwrap_or("none")) }
                            td { (s.controls.passing) "/" (s.controls.failing) "/" (s.controls.stale) "/" (s.controls.excepted) "/" (s.controls.integrity_error) }
                            td { (s.open_incidents) " / " (s.failed_incidents) }
                            td class=[(s.integrity_errors > 0).then_some("bad")] { (s.integrity_errors) }
                        }
                    }
                }
                @for h in hosts {
                    @let s = &h.summary;
                    section id={ "host-" (s.host_id) } {
                        h2 { "Host " (s.host_id) }
                        p {
                            "Silence: " (silence_word(s.silence)) ". Last evidence: " (s.last_evidence_at.as_deref().unwrap_or("none"))
                            ". Last heartbeat: " (s.last_heartbeat_at.as_deref().unwrap_or("none"))
                            ". Heartbeat interval: " (h.heartbeat_interval_seconds) " s. Registered keys: "
                            @for (i, k) in h.key_ids.iter().enumerate() { @if i > 0 { ", " } code { (k) } }
                            @if h.key_ids.is_empty() { "none" }
                            "."
                        }
                        h3 { "Controls" }
                        @if h.controls.is_empty() {
                            p { "No controls assessed." }
                        } @else {
                            table {
                                tr { th { "Control" } th { "State" } th { "Why" } th { "Evidence (object key)" } }
                                @for c in &h.controls {
                                    tr {
                                        td { (c.control_id) " " (c.title) }
                                        td class=[(!matches!(c.state, ControlState::Passing | ControlState::Excepted)).then_some("bad")] { (state_word(c.state)) }
                                        td {
                                            (c.reason)
                                            @if let Some(x) = &c.exception { br; "Exception " (x.id) ", approved by " (x.approver) ", expires " (x.expires) }
                                        }
                                        td {
                                            @if let Some(b) = &c.evidence { code { (b.object_key) } br; (b.bundle_id) " (" (b.event_type) ", " (b.generated_at) ")" }
                                            @else { "none" }
                                        }
                                    }
                                }
                            }
                        }
                        h3 { "Incidents this month (open, escalated, failed)" }
                        @if h.incidents.is_empty() {
                            p { "None." }
                        } @else {
                            table {
                                tr { th { "Bundle" } th { "Type" } th { "Runbook" } th { "Status" } th { "Object key" } }
                                @for i in &h.incidents {
                                    tr {
                                        td { (i.bundle.bundle_id) br; (i.bundle.generated_at) }
                                        td { (i.bundle.event_type) }
                                        td { (i.runbook_id.as_deref().unwrap_or("-")) }
                                        td { (i.status) }
                                        td { code { (i.bundle.object_key) } }
                                    }
                                }
                            }
                        }
                        h3 { "Integrity errors" }
                        @if h.integrity.is_empty() {
                            p { "None: every indexed object of this host verified." }
                        } @else {
                            table {
                                tr { th { "Object key" } th { "Bundle" } th { "Problem" } }
                                @for e in &h.integrity {
                                    tr { td { code { (e.object_key) } } td { (e.bundle_id.as_deref().unwrap_or("-")) } td class="bad" { (e.problem) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
