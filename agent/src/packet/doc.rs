//! The packet as a neutral document (headings, figures, tables, command blocks), built once
//! from the assessment and rendered to HTML ([`super::html`]) and PDF ([`super::pdf`]), so
//! both say exactly the same thing. Every string from evidence stays a plain string here;
//! each renderer escapes for its own format.

use chrono::{DateTime, SecondsFormat, Utc};

use super::assess::{Assessment, Verdict, SEVERITIES};
use super::load::Loaded;

/// How a row or figure reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Plain.
    Normal,
    /// Good news (passing, verified).
    Good,
    /// Bad news (failing, invalid, missed).
    Bad,
    /// Not assessed.
    Muted,
}

/// A part of the document.
#[derive(Debug, Clone)]
pub enum Block {
    /// Section heading.
    Heading(String),
    /// A paragraph.
    Para(String),
    /// Headline figures: label, value, tone.
    Figures(Vec<(String, String, Tone)>),
    /// A table: columns (title, relative width) and rows with a tone.
    Table {
        /// Column titles and relative widths.
        columns: Vec<(String, f32)>,
        /// Rows.
        rows: Vec<(Vec<String>, Tone)>,
        /// Shown instead when there are no rows.
        empty: String,
    },
    /// Monospace lines (commands).
    Code(Vec<String>),
    /// Signature blocks: one per signer (role), with lines to fill in.
    Signatures(Vec<String>),
}

/// The packet document.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Title.
    pub title: String,
    /// Lines under the title.
    pub subtitle: Vec<String>,
    /// Content.
    pub blocks: Vec<Block>,
}

/// Facts about the run that the document states.
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    /// Client.
    pub client_id: &'a str,
    /// `YYYY-MM`.
    pub month: String,
    /// Period start.
    pub period_start: DateTime<Utc>,
    /// Period end (exclusive).
    pub period_end: DateTime<Utc>,
    /// Judged at.
    pub as_of: DateTime<Utc>,
    /// Generated at.
    pub generated_at: DateTime<Utc>,
    /// Signing key id.
    pub key_id: &'a str,
    /// Baseline version.
    pub baseline_version: &'a str,
    /// Baseline SHA-256.
    pub baseline_sha256: &'a str,
    /// Evidence directory as given.
    pub evidence_dir: &'a str,
    /// Key directory as given.
    pub key_dir: &'a str,
    /// Hostnames seen.
    pub hosts: Vec<String>,
}

/// RFC 3339, seconds, `Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `YYYY-MM-DD HH:MM` UTC, for tables.
pub fn short(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn dur(secs: f64) -> String {
    let (v, unit) = if secs < 120.0 {
        (secs, "s")
    } else if secs < 7200.0 {
        (secs / 60.0, "min")
    } else {
        (secs / 3600.0, "h")
    };
    if v.fract() == 0.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |p| format!("{p:.1} %"))
}

/// Build the document.
pub fn build(meta: &Meta<'_>, a: &Assessment, bundles: &[Loaded], edge_problems: &[(String, String)]) -> Doc {
    let s = &a.summary;
    let invalid: Vec<&Loaded> = bundles.iter().filter(|l| l.problem.is_some()).collect();
    let mut blocks = Vec::new();

    // 1. Executive summary.
    blocks.push(Block::Heading("1. Executive summary".into()));
    let mut figs = vec![
        (
            "Controls passing".to_string(),
            format!("{} / {}", s.controls_passing, s.controls_assessed),
            if s.controls_passing == s.controls_assessed { Tone::Good } else { Tone::Bad },
        ),
        (
            "Organisational controls".to_string(),
            format!("{} (not assessed by the server)", s.controls_organisational),
            Tone::Muted,
        ),
        (
            "Critical issues".to_string(),
            format!("{} critical incident(s), {} not resolved", s.critical_incidents, s.critical_unresolved),
            if s.critical_unresolved > 0 { Tone::Bad } else { Tone::Normal },
        ),
        (
            "Incidents".to_string(),
            format!(
                "{} ({} auto-fixed, {} escalated, {} suppressed)",
                s.incidents, s.auto_fixed, s.escalated, s.suppressed
            ),
            Tone::Normal,
        ),
    ];
    for sev in SEVERITIES {
        let v = match s.mttr.get(sev) {
            Some((n, m)) => format!("{} over {n} resolved incident(s)", dur(*m)),
            None => "no resolved incident".into(),
        };
        figs.push((format!("MTTR {sev}"), v, Tone::Normal));
    }
    figs.push((
        "SLA met".to_string(),
        format!("{} ({} of {} incidents acted on)", pct(s.sla_pct()), s.sla_met, s.sla_counted),
        if s.sla_met == s.sla_counted { Tone::Good } else { Tone::Bad },
    ));
    figs.push((
        "Backup success rate".to_string(),
        format!(
            "{} ({} of {} days with a completed backup; {} backups)",
            pct(s.backup_pct()),
            s.backup_days_ok,
            s.backup_days,
            s.backups_completed
        ),
        if s.backup_days > 0 && s.backup_days_ok == s.backup_days { Tone::Good } else { Tone::Bad },
    ));
    figs.push((
        "Restore tests".to_string(),
        format!("{} passed of {} run", s.restore_tests_passed, s.restore_tests),
        if s.restore_tests > 0 && s.restore_tests_passed == s.restore_tests { Tone::Good } else { Tone::Bad },
    ));
    figs.push((
        "Evidence".to_string(),
        format!(
            "{} bundle(s) in the period, {} verified, {} invalid; {} heartbeat(s)",
            bundles.len(),
            bundles.len() - invalid.len(),
            invalid.len(),
            s.heartbeats
        ),
        if invalid.is_empty() && edge_problems.is_empty() { Tone::Good } else { Tone::Bad },
    ));
    blocks.push(Block::Figures(figs));
    blocks.push(Block::Para(format!(
        "Judged at {} (the end of the period, or the time the packet was made if earlier). Every figure comes from signed evidence bundles whose signatures and hash chain verify; a bundle that fails verification is listed in section 6 and counts for nothing. A control passes only when its newest qualifying bundle is within its freshness rule at that time and the month has no longer gap.",
        ts(meta.as_of)
    )));

    // 2. Control posture.
    blocks.push(Block::Heading("2. Control posture".into()));
    blocks.push(Block::Table {
        columns: vec![
            ("Control".into(), 1.72),
            ("Title".into(), 1.9),
            ("Map".into(), 1.05),
            ("Evidence rule".into(), 1.75),
            ("Fresh (h)".into(), 0.5),
            ("Status".into(), 1.6),
            ("Count".into(), 0.5),
            ("Last verified (UTC)".into(), 1.25),
        ],
        rows: a
            .controls
            .iter()
            .map(|c| {
                let tone = match c.verdict {
                    Verdict::Passing => Tone::Good,
                    Verdict::Organisational => Tone::Muted,
                    _ => Tone::Bad,
                };
                let status = if let Some(reason) = &c.reason {
                    format!("{}: {reason}", c.verdict.label())
                } else if c.verdict == Verdict::FailingGap {
                    format!("{} ({} gap(s))", c.verdict.label(), c.gaps)
                } else {
                    c.verdict.label().to_string()
                };
                let org = c.verdict == Verdict::Organisational;
                (
                    vec![
                        c.control_id.clone(),
                        c.title.clone(),
                        c.map_status.clone(),
                        c.rule.clone().unwrap_or_else(|| "-".into()),
                        c.freshness_hours.map_or("-".into(), |h| h.to_string()),
                        status,
                        if org { "-".into() } else { c.evidence_count.to_string() },
                        c.last_verified.map_or("-".into(), short),
                    ],
                    tone,
                )
            })
            .collect(),
        empty: "No controls map rows.".into(),
    });
    blocks.push(Block::Para("Evidence gaps: intervals longer than a rule's freshness without qualifying evidence, from the start of the month, between bundles, and up to the judging time (heartbeat gaps included).".into()));
    blocks.push(Block::Table {
        columns: vec![
            ("Evidence rule".into(), 2.0),
            ("Freshness (h)".into(), 0.8),
            ("From (UTC)".into(), 1.4),
            ("To (UTC)".into(), 1.4),
            ("Length (h)".into(), 0.8),
        ],
        rows: a
            .gaps
            .iter()
            .map(|g| {
                (
                    vec![
                        g.rule.clone(),
                        g.freshness_hours.to_string(),
                        if g.from_period_start { format!("{} (start)", short(g.from)) } else { short(g.from) },
                        if g.to_as_of { format!("{} (end)", short(g.to)) } else { short(g.to) },
                        format!("{:.1}", g.hours()),
                    ],
                    Tone::Bad,
                )
            })
            .collect(),
        empty: "No gaps: every evidence rule was met throughout the period.".into(),
    });

    // 3. Incidents and remediations.
    blocks.push(Block::Heading("3. Incidents and remediations".into()));
    blocks.push(Block::Table {
        columns: incident_columns(),
        rows: a.incidents.iter().map(incident_cells).collect(),
        empty: "No incidents in the period.".into(),
    });

    // 4. Backups.
    blocks.push(Block::Heading("4. Weekly backup verification".into()));
    blocks.push(Block::Table {
        columns: vec![
            ("Week (UTC days)".into(), 1.6),
            ("Days with backup".into(), 1.0),
            ("Backups".into(), 0.7),
            ("Backup failures".into(), 0.9),
            ("Restore tests passed".into(), 1.0),
            ("Restore tests failed".into(), 1.0),
            ("Verdict".into(), 1.0),
        ],
        rows: a
            .backup_weeks
            .iter()
            .map(|w| {
                let verdict = if w.days == 0 {
                    "not yet due".to_string()
                } else if w.verified() {
                    "verified".to_string()
                } else {
                    "NOT verified".to_string()
                };
                let tone = if w.days == 0 { Tone::Muted } else if w.verified() { Tone::Good } else { Tone::Bad };
                (
                    vec![
                        format!("{} to {}", w.from, w.to),
                        format!("{} / {}", w.days_ok, w.days),
                        w.backups.to_string(),
                        w.failures.to_string(),
                        w.restores_passed.to_string(),
                        w.restores_failed.to_string(),
                        verdict,
                    ],
                    tone,
                )
            })
            .collect(),
        empty: "-".into(),
    });
    blocks.push(Block::Para("A week is verified when every completed day of it has a successful backup record and a restore test (RB-RESTORE-001) passed within 8 days before its end. Restore tests:".into()));
    blocks.push(Block::Table {
        columns: incident_columns(),
        rows: a.restore_tests.iter().map(incident_cells).collect(),
        empty: "No restore test ran in the period.".into(),
    });

    // 5. Configuration baseline.
    blocks.push(Block::Heading("5. Configuration baseline".into()));
    blocks.push(Block::Figures(vec![
        ("Baseline".into(), format!("version {}", meta.baseline_version), Tone::Normal),
        ("Baseline SHA-256".into(), meta.baseline_sha256.to_string(), Tone::Normal),
    ]));
    blocks.push(Block::Para("Baselines reported by the agent's heartbeats:".into()));
    blocks.push(Block::Table {
        columns: vec![
            ("Version".into(), 0.7),
            ("SHA-256".into(), 3.6),
            ("Matches".into(), 0.7),
            ("Heartbeats".into(), 0.8),
            ("First seen".into(), 1.3),
            ("Last seen".into(), 1.3),
        ],
        rows: a
            .baselines_seen
            .iter()
            .map(|b| {
                (
                    vec![
                        b.version.clone(),
                        b.sha256.clone(),
                        if b.matches { "yes".into() } else { "NO".into() },
                        b.count.to_string(),
                        short(b.first),
                        short(b.last),
                    ],
                    if b.matches { Tone::Normal } else { Tone::Bad },
                )
            })
            .collect(),
        empty: "No heartbeat reported a baseline.".into(),
    });
    blocks.push(Block::Para("NixOS systems seen (/run/current-system and /run/booted-system store paths from heartbeats and bundle provenance; the hash is the store path's):".into()));
    blocks.push(Block::Table {
        columns: vec![
            ("Current system".into(), 3.2),
            ("Store hash".into(), 1.7),
            ("Booted system".into(), 1.4),
            ("Bundles".into(), 0.6),
            ("First seen".into(), 1.1),
            ("Last seen".into(), 1.1),
        ],
        rows: a
            .systems
            .iter()
            .map(|s| {
                let booted = match &s.booted_system {
                    None => "-".to_string(),
                    Some(b) if *b == s.current_system => "same".to_string(),
                    Some(b) => b.clone(),
                };
                (
                    vec![
                        s.current_system.clone(),
                        s.store_hash(),
                        booted,
                        s.count.to_string(),
                        short(s.first),
                        short(s.last),
                    ],
                    Tone::Normal,
                )
            })
            .collect(),
        empty: "No NixOS system path in the evidence (not running on NixOS?).".into(),
    });
    blocks.push(Block::Para("Drift events (files the baseline governs changed outside a NixOS activation):".into()));
    blocks.push(Block::Table {
        columns: vec![
            ("Bundle".into(), 1.2),
            ("Observed".into(), 1.3),
            ("File".into(), 1.6),
            ("Expected SHA-256".into(), 1.4),
            ("Actual SHA-256".into(), 1.4),
            ("Expected from".into(), 0.9),
            ("Resolution".into(), 0.8),
        ],
        rows: a
            .drift
            .iter()
            .map(|d| {
                (
                    vec![
                        d.bundle_id.clone(),
                        d.observed_at.clone(),
                        d.path.clone(),
                        d.expected_sha256.clone(),
                        d.actual_sha256.clone(),
                        d.expected_from.clone(),
                        d.resolution_status.clone(),
                    ],
                    if d.resolution_status == "resolved" { Tone::Normal } else { Tone::Bad },
                )
            })
            .collect(),
        empty: "No drift detected in the period.".into(),
    });
    blocks.push(Block::Para(format!(
        "Approved exceptions for {}, judged on {} (UTC; an exception is valid through its expiry day):",
        meta.client_id, a.exceptions_judged_on
    )));
    blocks.push(Block::Table {
        columns: vec![
            ("Id".into(), 1.3),
            ("Baseline rule".into(), 1.6),
            ("Baseline -> override".into(), 1.5),
            ("Risk".into(), 0.5),
            ("Approved".into(), 1.6),
            ("Expires".into(), 0.8),
            ("State".into(), 1.2),
        ],
        rows: a
            .exceptions
            .iter()
            .map(|x| {
                (
                    vec![
                        x.id.clone(),
                        x.rule.clone(),
                        x.change.clone(),
                        x.risk_level.clone(),
                        x.approved.clone(),
                        x.expires.to_string(),
                        x.state.clone(),
                    ],
                    if x.state == "active" { Tone::Normal } else { Tone::Bad },
                )
            })
            .collect(),
        empty: "No approved exceptions for this client.".into(),
    });

    // 6. Evidence manifest.
    blocks.push(Block::Heading("6. Evidence manifest".into()));
    blocks.push(Block::Para(format!(
        "manifest.json lists every bundle of the period ({} file(s)) with its path under the evidence directory, bundle id, chain sequence and SHA-256, and the SHA-256 of packet.html and packet.pdf. It is signed by key {} (manifest.json.sig: raw Ed25519; manifest.json.sshsig: SSH signature, namespace msp-evidence). Hosts: {}.",
        bundles.len(),
        meta.key_id,
        if meta.hosts.is_empty() { "-".to_string() } else { meta.hosts.join(", ") }
    )));
    blocks.push(Block::Para("Bundles that failed verification (they count for nothing above):".into()));
    let mut bad_rows: Vec<(Vec<String>, Tone)> = invalid
        .iter()
        .map(|l| (vec![l.rel_path.clone(), l.problem.clone().unwrap_or_default()], Tone::Bad))
        .collect();
    bad_rows.extend(
        edge_problems
            .iter()
            .map(|(b, why)| (vec![format!("{b} (outside the period)"), why.clone()], Tone::Bad)),
    );
    blocks.push(Block::Table {
        columns: vec![("Bundle".into(), 1.5), ("Why".into(), 4.0)],
        rows: bad_rows,
        empty: "None: every bundle of the period verified (signatures, key validity, artifacts, hash chain).".into(),
    });
    blocks.push(Block::Para(format!(
        "Verify with stock tools (KEYS = the MSP's public key directory, here {}; EVIDENCE = the evidence directory, here {}; run in the packet directory):",
        meta.key_dir, meta.evidence_dir
    )));
    blocks.push(Block::Code(verification_commands()));

    // 7. Attestation.
    blocks.push(Block::Heading("7. Attestation".into()));
    blocks.push(Block::Para(format!(
        "We have reviewed this packet for {} covering {} to {} (UTC). The figures above were computed by msp-agent from signed evidence only; the organisational controls are the clinic's to evidence.",
        meta.client_id,
        ts(meta.period_start),
        ts(meta.period_end)
    )));
    blocks.push(Block::Signatures(vec![
        "For the MSP (responsible engineer)".into(),
        "For the clinic (Security Official)".into(),
    ]));

    Doc {
        title: format!("HIPAA compliance packet: {} {}", meta.client_id, meta.month),
        subtitle: vec![
            format!("Period {} to {} (UTC), judged at {}", ts(meta.period_start), ts(meta.period_end), ts(meta.as_of)),
            format!("Generated {} by msp-agent {}; manifest signed by {}", ts(meta.generated_at), crate::AGENT_VERSION, meta.key_id),
        ],
        blocks,
    }
}

fn incident_columns() -> Vec<(String, f32)> {
    vec![
        ("Detected (UTC)".into(), 1.12),
        ("Incident".into(), 1.75),
        ("Event".into(), 0.95),
        ("Sev.".into(), 0.55),
        ("Runbook".into(), 1.1),
        ("Resolution".into(), 1.45),
        ("MTTR".into(), 0.6),
        ("SLA".into(), 0.95),
        ("Bundle".into(), 1.2),
    ]
}

fn incident_cells(r: &super::assess::IncidentRow) -> (Vec<String>, Tone) {
    let detected = chrono::DateTime::parse_from_rfc3339(&r.detected_at)
        .map(|t| short(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| r.detected_at.clone());
    let sla = if r.resolution_type == "suppressed" {
        "n/a".to_string()
    } else if r.sla_met {
        format!("met / {}", dur(r.sla_target_seconds as f64))
    } else {
        format!("MISSED / {}", dur(r.sla_target_seconds as f64))
    };
    let tone = if r.resolution_status == "resolved" || r.resolution_type == "suppressed" {
        Tone::Normal
    } else {
        Tone::Bad
    };
    (
        vec![
            detected,
            r.incident_id.clone(),
            r.event_type.clone(),
            r.severity.clone(),
            r.runbook_id.clone(),
            if r.resolution_type == r.resolution_status {
                r.resolution_type.clone()
            } else {
                format!("{} / {}", r.resolution_type, r.resolution_status)
            },
            dur(r.mttr_seconds),
            sla,
            r.bundle_id.clone(),
        ],
        tone,
    )
}

/// The stock-tool commands printed in the packet (and tested in `agent/tests/packet.rs`).
pub fn verification_commands() -> Vec<String> {
    [
        "# 1. The manifest's signatures",
        "ssh-keygen -Y verify -f KEYS/allowed_signers -I msp-evidence -n msp-evidence \\",
        "    -s manifest.json.sshsig < manifest.json",
        "openssl pkeyutl -verify -pubin -inkey KEYS/evidence-signing.pub.pem -rawin \\",
        "    -in manifest.json -sigfile manifest.json.sig",
        "# 2. The packet files",
        "jq -r '.files[] | \"\\(.sha256)  \\(.path)\"' manifest.json | sha256sum -c",
        "# 3. Every bundle of the period is the one listed",
        "jq -r '.bundles[] | \"\\(.sha256)  \\(.path)\"' manifest.json > bundles.sha256",
        "(cd EVIDENCE && sha256sum -c --quiet) < bundles.sha256",
        "# 4. Each bundle's own signature",
        "jq -r '.bundles[].path' manifest.json | while read -r f; do",
        "  ssh-keygen -Y verify -f KEYS/allowed_signers -I msp-evidence -n msp-evidence \\",
        "    -s \"EVIDENCE/$f.sshsig\" < \"EVIDENCE/$f\" > /dev/null || echo \"BAD $f\"",
        "done",
        "# Or all of it, chain included, with the agent:",
        "msp-agent evidence verify --keys KEYS manifest.json EVIDENCE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
