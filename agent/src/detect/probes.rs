//! Periodic probes: filesystem usage, sustained CPU load (and which unit causes it),
//! certificates about to expire, the weekly restore-test schedule. Each probe returns
//! [`Finding`]s; [`super::Detector::probe_incident`] turns a finding into an incident.
//! The daemon decides how often to call them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::fsutil;
use crate::incident::{event_type, Severity};

/// Something a probe found that needs a runbook.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// A filesystem is fuller than the threshold.
    DiskUsage { mount: PathBuf, used_pct: f64, threshold_pct: f64, avail_bytes: u64 },
    /// CPU busy over the threshold for `samples` consecutive samples; `top_unit` is the
    /// system.slice unit that used the most CPU over the last interval, with its share.
    HighCpu { busy_pct: f64, threshold_pct: f64, samples: u32, top_unit: Option<(String, f64)> },
    /// A certificate under the watched path expires within the threshold (or has expired).
    CertExpiring { path: PathBuf, subject: String, not_after: DateTime<Utc>, days_left: i64 },
    /// The restore test is due.
    RestoreTestDue { last_run: Option<DateTime<Utc>>, interval_days: u32 },
}

impl Finding {
    /// (event type, severity, probe name, unit, details) for the incident.
    pub(crate) fn describe(&self) -> (&'static str, Severity, &'static str, Option<String>, BTreeMap<String, Value>) {
        let mut d = BTreeMap::new();
        match self {
            Finding::DiskUsage { mount, used_pct, threshold_pct, avail_bytes } => {
                d.insert("mount".into(), json!(mount.display().to_string()));
                d.insert("used_pct".into(), json!(round1(*used_pct)));
                d.insert("threshold_pct".into(), json!(threshold_pct));
                d.insert("avail_bytes".into(), json!(avail_bytes));
                let sev = if *used_pct >= 98.0 { Severity::Critical } else { Severity::High };
                (event_type::DISK_FULL, sev, "disk", None, d)
            }
            Finding::HighCpu { busy_pct, threshold_pct, samples, top_unit } => {
                d.insert("busy_pct".into(), json!(round1(*busy_pct)));
                d.insert("threshold_pct".into(), json!(threshold_pct));
                d.insert("consecutive_samples".into(), json!(samples));
                let unit = top_unit.as_ref().map(|(u, share)| {
                    d.insert("top_unit_cpu_pct".into(), json!(round1(*share)));
                    u.clone()
                });
                (event_type::HIGH_CPU, Severity::Medium, "cpu", unit, d)
            }
            Finding::CertExpiring { path, subject, not_after, days_left } => {
                d.insert("path".into(), json!(path.display().to_string()));
                d.insert("subject".into(), json!(super::text::clean(subject.as_bytes(), 256)));
                d.insert("not_after".into(), json!(not_after.to_rfc3339()));
                d.insert("days_left".into(), json!(days_left));
                (event_type::CERT_EXPIRY, super::detector::cert_severity(*days_left), "cert", None, d)
            }
            Finding::RestoreTestDue { last_run, interval_days } => {
                d.insert("last_run".into(), json!(last_run.map(|t| t.to_rfc3339())));
                d.insert("interval_days".into(), json!(interval_days));
                (event_type::RESTORE_TEST_DUE, Severity::Low, "restore_schedule", None, d)
            }
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

// ---------------------------------------------------------------- disk

/// Usage of the filesystem holding `mount`, as `df` computes it: used / (used + available to
/// unprivileged users), in percent; plus the bytes available.
pub fn disk_usage(mount: &Path) -> Result<(f64, u64)> {
    let s = nix::sys::statvfs::statvfs(mount).with_context(|| format!("statvfs {}", mount.display()))?;
    let frsize = s.fragment_size() as u64;
    let used = (s.blocks() as u64).saturating_sub(s.blocks_free() as u64);
    let avail = s.blocks_available() as u64;
    let denom = used + avail;
    let pct = if denom == 0 { 0.0 } else { used as f64 * 100.0 / denom as f64 };
    Ok((pct, avail * frsize))
}

/// A finding for every mount in `mounts` whose usage is at or above `threshold_pct`.
pub fn probe_disks(mounts: &[PathBuf], threshold_pct: f64) -> Result<Vec<Finding>> {
    let mut out = vec![];
    for m in mounts {
        let (used_pct, avail_bytes) = disk_usage(m)?;
        if used_pct >= threshold_pct {
            out.push(Finding::DiskUsage { mount: m.clone(), used_pct, threshold_pct, avail_bytes });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- cpu

/// Cumulative CPU time from the first line of `/proc/stat` (USER_HZ ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// All time except idle and iowait.
    pub busy: u64,
    /// All time.
    pub total: u64,
}

/// Parse the `cpu ` line of /proc/stat text.
pub fn parse_proc_stat(text: &str) -> Result<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu ")).context("/proc/stat has no 'cpu ' line")?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse::<u64>())
        .collect::<Result<_, _>>()
        .context("/proc/stat 'cpu' line: not a number")?;
    if nums.len() < 4 {
        bail!("/proc/stat 'cpu' line has {} fields, expected at least 4", nums.len());
    }
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let total: u64 = nums.iter().take(8).sum();
    let idle = nums[3] + nums.get(4).copied().unwrap_or(0);
    Ok(CpuTimes { busy: total - idle, total })
}

/// Per-unit CPU usage (µs) from `<root>/*/cpu.stat` `usage_usec` (cgroup v2 system.slice).
pub fn unit_cpu_usage(root: &Path) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    for e in rd {
        let e = e.with_context(|| format!("reading {}", root.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !super::unit_name::is_valid_unit_name(&name) {
            continue; // cgroup knobs (cpu.max, ...) and anything odd
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("cpu.stat")) else { continue };
        if let Some(v) = stat.lines().find_map(|l| l.strip_prefix("usage_usec ")).and_then(|v| v.trim().parse().ok()) {
            out.insert(name, v);
        }
    }
    Ok(out)
}

/// The cgroup v2 directory holding the units of system.slice under the cgroup mount `base`:
/// `base/system.slice` on a unified host, `base/unified/system.slice` on a hybrid host (cgroup
/// v1 controllers, as on hosts booted with `systemd.unified_cgroup_hierarchy=0`), where the
/// v2 tree has no controllers but its `cpu.stat` still counts `usage_usec`. Without this a
/// hybrid host's CPU hog was never named, so RB-CPU-001 had no unit to throttle.
pub fn system_slice_dir(base: &Path) -> PathBuf {
    let unified = base.join("system.slice");
    let hybrid = base.join("unified/system.slice");
    if !unified.is_dir() && hybrid.is_dir() {
        hybrid
    } else {
        unified
    }
}

/// Sustained-CPU probe: call [`CpuProbe::sample`] at a fixed interval; it reports a finding
/// when busy% was at or over the threshold for `needed` consecutive samples (then starts
/// counting again, so a standing condition is reported once per `needed` samples).
#[derive(Debug)]
pub struct CpuProbe {
    /// Busy percentage that counts as high.
    pub threshold_pct: f64,
    /// Consecutive high samples needed.
    pub needed: u32,
    /// `/proc/stat` (overridable for tests).
    pub proc_stat: PathBuf,
    /// cgroup v2 directory whose children are units (`/sys/fs/cgroup/system.slice`).
    pub cgroup_root: PathBuf,
    prev: Option<(CpuTimes, BTreeMap<String, u64>, std::time::Instant)>,
    streak: u32,
}

impl CpuProbe {
    /// Probe with the production paths.
    pub fn new(threshold_pct: f64, needed: u32) -> CpuProbe {
        CpuProbe {
            threshold_pct,
            needed: needed.max(1),
            proc_stat: PathBuf::from("/proc/stat"),
            cgroup_root: system_slice_dir(Path::new("/sys/fs/cgroup")),
            prev: None,
            streak: 0,
        }
    }

    /// Take a sample; the first call only sets the baseline.
    pub fn sample(&mut self) -> Result<Option<Finding>> {
        let text = std::fs::read_to_string(&self.proc_stat).with_context(|| format!("reading {}", self.proc_stat.display()))?;
        let now = parse_proc_stat(&text).with_context(|| format!("parsing {}", self.proc_stat.display()))?;
        let units = unit_cpu_usage(&self.cgroup_root)?;
        let at = std::time::Instant::now();
        let Some((before, units_before, t0)) = self.prev.replace((now, units.clone(), at)) else { return Ok(None) };
        let dt = now.total.saturating_sub(before.total);
        let busy_pct = if dt == 0 { 0.0 } else { now.busy.saturating_sub(before.busy) as f64 * 100.0 / dt as f64 };
        if busy_pct < self.threshold_pct {
            self.streak = 0;
            return Ok(None);
        }
        self.streak += 1;
        if self.streak < self.needed {
            return Ok(None);
        }
        self.streak = 0;
        // Name the hog: the unit with the largest usage delta, as % of one CPU over the interval.
        let wall_usec = at.duration_since(t0).as_micros().max(1) as f64;
        let top_unit = units
            .iter()
            .filter_map(|(u, &v)| units_before.get(u).map(|&b| (u, v.saturating_sub(b))))
            .max_by_key(|(_, d)| *d)
            .filter(|(_, d)| *d > 0)
            .map(|(u, d)| (u.clone(), d as f64 * 100.0 / wall_usec));
        Ok(Some(Finding::HighCpu { busy_pct, threshold_pct: self.threshold_pct, samples: self.needed, top_unit }))
    }
}

// ---------------------------------------------------------------- certificates

/// Certificates (PEM, any number per file) in `dir` (not recursive; files ending in `.pem`,
/// `.crt` or `.cert`) whose notAfter is within `within_days` of `now`, or past. A file that
/// does not parse is an error naming it (an unreadable certificate is not a healthy one).
pub fn probe_certs(dir: &Path, within_days: i64, now: DateTime<Utc>) -> Result<Vec<Finding>> {
    let mut out = vec![];
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading certificate directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("pem" | "crt" | "cert")))
        .collect();
    paths.sort();
    for p in paths {
        out.extend(check_cert_file(&p, within_days, now)?);
    }
    Ok(out)
}

/// The certificates in one PEM file that expire within `within_days` of `now`.
pub fn check_cert_file(path: &Path, within_days: i64, now: DateTime<Utc>) -> Result<Vec<Finding>> {
    use x509_parser::pem::Pem;
    let bytes = std::fs::read(path).with_context(|| format!("reading certificate {}", path.display()))?;
    let mut out = vec![];
    let mut seen = 0;
    for (n, pem) in Pem::iter_from_buffer(&bytes).enumerate() {
        let pem = pem.map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("{}: PEM block {}", path.display(), n + 1))?;
        if pem.label != "CERTIFICATE" {
            continue; // keys, chains' other blocks
        }
        seen += 1;
        let cert = pem.parse_x509().map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("{}: certificate {}", path.display(), n + 1))?;
        let ts = cert.validity().not_after.timestamp();
        let not_after = DateTime::<Utc>::from_timestamp(ts, 0).with_context(|| format!("{}: notAfter out of range", path.display()))?;
        let left = not_after - now;
        // Whole days left, rounding down; an expired certificate has a negative count.
        let days_left = left.num_seconds().div_euclid(86_400);
        if left <= Duration::days(within_days) {
            out.push(Finding::CertExpiring { path: path.to_path_buf(), subject: cert.subject().to_string(), not_after, days_left });
        }
    }
    if seen == 0 {
        bail!("{}: no PEM certificate found", path.display());
    }
    Ok(out)
}

// ---------------------------------------------------------------- restore schedule

/// Persistent state of the restore-test schedule: `{"last_run":"2026-11-15T03:00:00Z"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreSchedule {
    /// When the last restore test ran (UTC); `None` = never.
    pub last_run: Option<DateTime<Utc>>,
}

impl RestoreSchedule {
    /// Load from `path` (missing = never ran). A malformed file is an error naming it.
    pub fn load(path: &Path) -> Result<RestoreSchedule> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("restore schedule state {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RestoreSchedule::default()),
            Err(e) => Err(e).with_context(|| format!("reading restore schedule state {}", path.display())),
        }
    }

    /// Record a completed restore test at `when` and save atomically.
    pub fn record_run(&mut self, path: &Path, when: DateTime<Utc>) -> Result<()> {
        self.last_run = Some(when);
        let json = serde_json::to_vec(self).context("encoding restore schedule state")?;
        fsutil::replace(path, &json, 0o600).with_context(|| format!("writing restore schedule state {}", path.display()))
    }

    /// A finding when the test never ran or `interval_days` have passed since the last run.
    pub fn check(&self, interval_days: u32, now: DateTime<Utc>) -> Option<Finding> {
        let due = match self.last_run {
            None => true,
            Some(t) => now - t >= Duration::days(i64::from(interval_days)),
        };
        due.then_some(Finding::RestoreTestDue { last_run: self.last_run, interval_days })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn proc_stat_parse() {
        let t = parse_proc_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(t, CpuTimes { busy: 150, total: 1000 });
        assert!(parse_proc_stat("cpu0 1 2\n").is_err());
        assert!(parse_proc_stat("cpu  1 x 3 4\n").is_err());
    }

    #[test]
    fn system_slice_on_unified_and_hybrid_hosts() {
        let d = tempfile::tempdir().unwrap();
        // Nothing there yet: the unified path (the probe then finds no units, not an error).
        assert_eq!(system_slice_dir(d.path()), d.path().join("system.slice"));
        std::fs::create_dir_all(d.path().join("unified/system.slice")).unwrap();
        assert_eq!(system_slice_dir(d.path()), d.path().join("unified/system.slice"));
        std::fs::create_dir_all(d.path().join("system.slice")).unwrap();
        assert_eq!(system_slice_dir(d.path()), d.path().join("system.slice"));
    }

    #[test]
    fn restore_schedule_boundary() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 3, 0, 0).unwrap();
        let s = RestoreSchedule { last_run: Some(t0) };
        assert!(s.check(7, t0 + Duration::days(7) - Duration::seconds(1)).is_none());
        assert!(s.check(7, t0 + Duration::days(7)).is_some());
        assert!(RestoreSchedule::default().check(7, t0).is_some());
    }
}
