//! Clock check (`time.max_drift_ms`): the offset of the system clock from its time source, as
//! the host's own time daemon measures it: chrony (`chronyc -c tracking`, field 5 "System
//! time", seconds) or systemd-timesyncd (`timedatectl timesync-status`, the `Offset:` line).
//! An unsynchronised daemon is an error (the offset is unknown), not a pass.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Which time daemon to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeSource {
    /// chrony if `chronyc` is installed, else timesyncd.
    Auto,
    /// `chronyc -c tracking`.
    Chrony,
    /// `timedatectl timesync-status`.
    Timesyncd,
}

/// What the time daemon reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// `chrony` or `timesyncd`.
    pub source: &'static str,
    /// |offset| in milliseconds.
    pub offset_ms: f64,
    /// The reference (chrony's reference name, timesyncd's server).
    pub reference: String,
}

/// How to reach the daemon.
#[derive(Debug, Clone, Default)]
pub struct ClockProbe {
    /// Which daemon.
    pub source: Option<TimeSource>,
    /// chronyc's `-h` (a command socket path or host), when not the default.
    pub chronyc_socket: Option<PathBuf>,
}

impl ClockProbe {
    /// Ask the daemon.
    pub fn read(&self) -> Result<Reading> {
        let source = match self.source.unwrap_or(TimeSource::Auto) {
            TimeSource::Auto if program_exists("chronyc") => TimeSource::Chrony,
            TimeSource::Auto => TimeSource::Timesyncd,
            s => s,
        };
        match source {
            TimeSource::Chrony => {
                let mut cmd = Command::new("chronyc");
                if let Some(s) = &self.chronyc_socket {
                    cmd.arg("-h").arg(s);
                }
                cmd.args(["-n", "-c", "tracking"]);
                let out = super::run_bounded(&mut cmd, Duration::from_secs(5))?;
                if !out.status.success() {
                    bail!("chronyc tracking failed ({}): {}", out.status, crate::detect::text::clean(&out.stderr, 200));
                }
                parse_chronyc_tracking(&String::from_utf8_lossy(&out.stdout))
            }
            _ => {
                let mut cmd = Command::new("timedatectl");
                cmd.arg("timesync-status");
                let out = super::run_bounded(&mut cmd, Duration::from_secs(5))?;
                if !out.status.success() {
                    bail!("timedatectl timesync-status failed ({}): {}", out.status, crate::detect::text::clean(&out.stderr, 200));
                }
                parse_timesync_status(&String::from_utf8_lossy(&out.stdout))
            }
        }
    }
}

fn program_exists(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// `chronyc -c tracking`: `refid,name,stratum,reftime,system_time,last_offset,...,leap`.
pub fn parse_chronyc_tracking(text: &str) -> Result<Reading> {
    let line = text.lines().next().context("chronyc tracking printed nothing")?;
    let f: Vec<&str> = line.split(',').collect();
    if f.len() < 14 {
        bail!("chronyc tracking: expected 14 comma-separated fields, found {}", f.len());
    }
    let leap = f[13].trim();
    if leap == "Not synchronised" || f[0] == "00000000" {
        bail!("chrony is not synchronised to a time source (leap status {leap:?})");
    }
    let secs: f64 = f[4].trim().parse().with_context(|| format!("chronyc tracking: system time {:?} is not a number", f[4]))?;
    Ok(Reading { source: "chrony", offset_ms: (secs * 1000.0).abs(), reference: crate::detect::text::clean(f[1].as_bytes(), 64) })
}

/// `timedatectl timesync-status`: `Server: …` and `Offset: +1.234ms` lines (units us, ms, s,
/// min, as systemd formats time spans).
pub fn parse_timesync_status(text: &str) -> Result<Reading> {
    let field = |name: &str| {
        text.lines().find_map(|l| l.trim_start().strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(str::trim))
    };
    let Some(offset) = field("Offset") else {
        bail!("timesyncd has no offset yet (not synchronised)");
    };
    let reference = field("Server").unwrap_or("-");
    Ok(Reading { source: "timesyncd", offset_ms: parse_span_ms(offset)?.abs(), reference: crate::detect::text::clean(reference.as_bytes(), 64) })
}

/// `+1.234ms`, `-850us`, `2.5s`, `1min 3.2s` → milliseconds.
fn parse_span_ms(s: &str) -> Result<f64> {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total = 0.0;
    for part in rest.split_whitespace() {
        let i = part.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(part.len());
        let n: f64 = part[..i].parse().with_context(|| format!("offset {s:?}: {part:?} is not a time span"))?;
        let unit = match &part[i..] {
            "us" | "µs" => 0.001,
            "ms" => 1.0,
            "s" | "" => 1000.0,
            "min" => 60_000.0,
            u => bail!("offset {s:?}: unknown unit {u:?}"),
        };
        total += n * unit;
    }
    Ok(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timesync_status_offsets() {
        // Text as systemd 252's `timedatectl timesync-status` prints it (the field layout is
        // parsed here only; no timesyncd runs on the test machine, see agent/tests/checks.rs).
        let t = "       Server: 192.0.2.1 (ntp.example)\nPoll interval: 34min 8s (min: 32s; max 34min 8s)\n         Leap: normal\n       Offset: -1.021ms\n        Delay: 3.1ms\n";
        let r = parse_timesync_status(t).unwrap();
        assert!((r.offset_ms - 1.021).abs() < 1e-9);
        assert_eq!(parse_span_ms("+850us").unwrap(), 0.85);
        assert_eq!(parse_span_ms("1min 2.5s").unwrap(), 62_500.0);
        assert!(parse_timesync_status("Server: x\n").is_err());
    }

    #[test]
    fn chronyc_unsynchronised_is_an_error() {
        let t = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n";
        assert!(format!("{:#}", parse_chronyc_tracking(t).unwrap_err()).contains("not synchronised"));
        let ok = "7F000001,127.0.0.1,9,1796172858.48,1.999998569,-0.000000013,0.000000051,-0.196,-0.001,0.251,0.0000067,0.0000005,0.1,Normal\n";
        assert!((parse_chronyc_tracking(ok).unwrap().offset_ms - 1999.998569).abs() < 1e-6);
    }
}
