//! Heartbeat gaps, for `evidence verify`: a stretch of time in which the agent on a host wrote
//! no heartbeat (it was stopped, crashed, or its host was down) is shown, naming the two
//! heartbeats around it.
//!
//! Rule: a gap between two consecutive heartbeats of one chain (client and host, in chain
//! order) is flagged when it is longer than max(1 h, 2 × the earlier heartbeat's
//! `interval_seconds`) — one missed beat is tolerated, an hour without any is not. Flagged
//! gaps are warnings: the evidence is intact, only missing for a while, and integrity
//! (signatures, chain) is what `verify`'s exit code stands for. `--max-heartbeat-gap D` makes
//! gaps longer than D errors (exit 1), for an auditor who wants freshness enforced.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bundle::Bundle;

/// `incident.event_type` of a heartbeat bundle.
pub const EVENT_TYPE: &str = "heartbeat";
/// The shortest gap ever flagged.
pub const MIN_FLAGGED_GAP: Duration = Duration::from_secs(3600);
/// Interval assumed for a heartbeat that does not state one (the agent's default).
const DEFAULT_INTERVAL_SECONDS: u64 = 900;

/// One heartbeat, as far as gaps are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    pub chain_key: (String, String),
    pub sequence: u64,
    pub bundle_id: String,
    pub at: DateTime<Utc>,
    pub interval_seconds: u64,
    /// The chain position the heartbeat recorded: (`chain_head_sequence`,
    /// `chain_head_sha256`), the head it was appended to. `None` for heartbeats of older
    /// agents.
    pub position: Option<(u64, String)>,
    /// `head_signed: true`: written by an agent that signs the chain head (so an unsigned
    /// head in the same store is a replaced one, not an older agent's).
    pub head_signed: bool,
}

/// Details key: the sequence of the chain head a heartbeat was appended to.
pub const CHAIN_HEAD_SEQUENCE: &str = "chain_head_sequence";
/// Details key: the SHA-256 of that head bundle's file.
pub const CHAIN_HEAD_SHA256: &str = "chain_head_sha256";
/// Details key: `true` when the writer signs the chain head.
pub const HEAD_SIGNED: &str = "head_signed";

/// The last bundle of a chain, for the gap after the last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEnd {
    pub chain_key: (String, String),
    pub sequence: u64,
    pub bundle_id: String,
    pub at: DateTime<Utc>,
}

impl Beat {
    /// `Some` when `b` is a heartbeat with a readable time.
    pub fn of(b: &Bundle) -> Option<Beat> {
        if b.incident.event_type != EVENT_TYPE {
            return None;
        }
        let at = DateTime::parse_from_rfc3339(&b.incident.detected_at).ok()?.with_timezone(&Utc);
        let d = &b.incident.details;
        let interval_seconds = d.get("interval_seconds").and_then(|v| v.as_u64()).unwrap_or(DEFAULT_INTERVAL_SECONDS);
        let position = match (d.get(CHAIN_HEAD_SEQUENCE).and_then(|v| v.as_u64()), d.get(CHAIN_HEAD_SHA256).and_then(|v| v.as_str())) {
            (Some(s), Some(h)) => Some((s, h.to_string())),
            _ => None,
        };
        Some(Beat {
            chain_key: (b.client_id.clone(), b.hostname.clone()),
            sequence: b.chain.sequence,
            bundle_id: b.bundle_id.clone(),
            at,
            interval_seconds,
            position,
            head_signed: d.get(HEAD_SIGNED).and_then(|v| v.as_bool()) == Some(true),
        })
    }
}

/// A flagged gap.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub client_id: String,
    pub hostname: String,
    /// The last heartbeat before the gap.
    pub before: String,
    pub before_at: String,
    /// The first heartbeat after it.
    pub after: String,
    pub after_at: String,
    pub gap_seconds: u64,
    /// What the gap was compared with: max(1 h, 2 × interval), or `--max-heartbeat-gap`.
    pub allowed_seconds: u64,
    /// True when `--max-heartbeat-gap` was given and the gap exceeds it (fails `verify`).
    pub error: bool,
}

/// Flag the gaps among `beats` (any order). With `max_gap`, gaps longer than it are errors
/// and it replaces the default allowance.
pub fn gaps(beats: Vec<Beat>, max_gap: Option<Duration>) -> Vec<Gap> {
    let mut by_chain: BTreeMap<(String, String), Vec<Beat>> = BTreeMap::new();
    for b in beats {
        by_chain.entry(b.chain_key.clone()).or_default().push(b);
    }
    let mut out = Vec::new();
    for ((client_id, hostname), mut chain) in by_chain {
        chain.sort_by_key(|b| (b.sequence, b.at));
        for w in chain.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            out.extend(flag(&client_id, &hostname, a, b.bundle_id.clone(), b.at, max_gap));
        }
    }
    out
}

/// The gap from heartbeat `a` to `after` (at `after_at`), when it exceeds the allowance:
/// max(1 h, 2 × `a`'s interval), or `max_gap`.
fn flag(client_id: &str, hostname: &str, a: &Beat, after: String, after_at: DateTime<Utc>, max_gap: Option<Duration>) -> Option<Gap> {
    let gap = (after_at - a.at).num_seconds().max(0) as u64;
    let allowed = match max_gap {
        Some(d) => d.as_secs(),
        None => MIN_FLAGGED_GAP.as_secs().max(a.interval_seconds.saturating_mul(2)),
    };
    (gap > allowed).then(|| Gap {
        client_id: client_id.to_string(),
        hostname: hostname.to_string(),
        before: a.bundle_id.clone(),
        before_at: crate::rfc3339(a.at),
        after,
        after_at: crate::rfc3339(after_at),
        gap_seconds: gap,
        allowed_seconds: allowed,
        error: max_gap.is_some(),
    })
}

/// The stretch after each chain's last heartbeat: when the chain's last bundle is further
/// from it than the allowance, the gap between the last heartbeat and the head is reported
/// like any other gap (`after` names the head bundle): a chain that goes on long after its
/// last heartbeat (the agent was stopped while manual runs went on, or heartbeats were
/// removed) shows it, and the fleet compares the same position with the WORM copy.
pub fn tail_gaps(beats: &[Beat], ends: &[ChainEnd], max_gap: Option<Duration>) -> Vec<Gap> {
    let mut out = Vec::new();
    for end in ends {
        let Some(last) = beats.iter().filter(|b| b.chain_key == end.chain_key).max_by_key(|b| b.sequence) else { continue };
        if end.sequence <= last.sequence {
            continue;
        }
        let after = format!("{} (chain head, sequence {}, {} bundle(s) after the last heartbeat)", end.bundle_id, end.sequence, end.sequence - last.sequence);
        out.extend(flag(&end.chain_key.0, &end.chain_key.1, last, after, end.at, max_gap));
    }
    out
}

/// Heartbeats whose recorded chain position does not match the chain: the position must be
/// before the heartbeat itself, and the bundle at that sequence (when verified) must have
/// that hash. Returned as (heartbeat path, reason).
pub fn position_problems(beats: &[Beat], seen: &[crate::storecheck::Seen]) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    for b in beats {
        let Some((seq, sha)) = &b.position else { continue };
        let Some(me) = seen.iter().find(|s| s.file_name == format!("{}.json", b.bundle_id) && s.sequence == b.sequence) else { continue };
        if *seq >= b.sequence {
            out.push((me.path.clone(), format!("heartbeat records chain head sequence {seq}, not before its own sequence {}", b.sequence)));
            continue;
        }
        let at: Vec<&crate::storecheck::Seen> = seen.iter().filter(|s| s.sequence == *seq && s.chain_key == b.chain_key).collect();
        if !at.is_empty() && !at.iter().any(|s| s.sha256 == *sha) {
            out.push((me.path.clone(), format!("heartbeat records chain head sequence {seq} with sha256 {sha}, but {} (sequence {seq}) has sha256 {}", at[0].file_name, at[0].sha256)));
        }
    }
    out
}

/// Parse `--max-heartbeat-gap`: a number with unit `s`, `m`, `h` or `d` (`90m`, `2h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: expected a number with a unit, e.g. 90m or 2h"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    if n == 0 {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(seq: u64, minute: i64, interval: u64) -> Beat {
        Beat {
            chain_key: ("c".into(), "h".into()),
            sequence: seq,
            bundle_id: format!("EB-20261122-{seq:04}"),
            at: DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z").unwrap().with_timezone(&Utc) + chrono::Duration::minutes(minute),
            interval_seconds: interval,
            position: None,
            head_signed: false,
        }
    }

    #[test]
    fn one_missed_beat_is_tolerated_an_hour_is_not() {
        // 15-minute beats: 0, 15, 45 (one missed: 30 min, fine), then 130 (85 min: flagged).
        let g = gaps(vec![beat(1, 0, 900), beat(2, 15, 900), beat(3, 45, 900), beat(4, 130, 900)], None);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!((g[0].before.as_str(), g[0].after.as_str()), ("EB-20261122-0003", "EB-20261122-0004"));
        assert_eq!((g[0].gap_seconds, g[0].allowed_seconds, g[0].error), (85 * 60, 3600, false));
        // A long interval raises the allowance to two intervals.
        assert!(gaps(vec![beat(1, 0, 3600), beat(2, 110, 3600)], None).is_empty());
        // --max-heartbeat-gap 20m: the 30-minute gap becomes an error too.
        let g = gaps(vec![beat(1, 0, 900), beat(2, 15, 900), beat(3, 45, 900)], Some(Duration::from_secs(1200)));
        assert_eq!(g.len(), 1);
        assert!(g[0].error);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("2").unwrap_err().contains("unit"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
