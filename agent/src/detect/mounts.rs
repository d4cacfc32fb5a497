//! Which mounted file system a disk-full incident is about.
//!
//! The rule (README, "Disk full from the journal"), first that gives an answer:
//! 1. a path in the failing job's own out-of-space line → the mount point holding it;
//! 2. the kernel's device name (kernel out-of-space forms) → where that device is mounted;
//! 3. the paths the unit is configured with (`WorkingDirectory=`, `ReadWritePaths=`,
//!    `StateDirectory=`, `LogsDirectory=`, `CacheDirectory=`; the daemon asks systemd) → the
//!    fullest of their mount points;
//! 4. the fullest real file system of the host.
//!
//! Mount points always come from the mount table (`/proc/self/mountinfo`), never from the
//! journal text, so what reaches RB-DISK-001's `mount` parameter is a real mount point.

use std::path::{Path, PathBuf};

/// One row of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// File system type (`ext4`, `tmpfs`, ...).
    pub fstype: String,
    /// Mount source (`/dev/sda1`, `tmpfs`, ...).
    pub source: String,
}

/// File system types that never hold data a job writes (the kernel's pseudo file systems).
const PSEUDO: &[&str] = &[
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs", "mqueue", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "autofs", "fusectl", "configfs", "hugetlbfs", "binfmt_misc", "nsfs", "efivarfs", "rpc_pipefs",
];

/// Decode mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `/proc/self/mountinfo` text; lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let source = r.next()?;
            Some(Mount { point: PathBuf::from(unescape(point)), fstype: fstype.to_string(), source: unescape(source) })
        })
        .collect()
}

/// This machine's mount table (empty when it cannot be read).
pub fn read_mount_table() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|t| parse_mountinfo(&t)).unwrap_or_default()
}

fn is_data_fs(m: &Mount) -> bool {
    !PSEUDO.contains(&m.fstype.as_str())
        && !["/proc", "/sys", "/dev", "/run"].iter().any(|p| m.point.starts_with(p))
}

/// The mount point holding `path` (the longest mount point that is a prefix of it, by path
/// components; the last such row wins, as the kernel stacks mounts).
pub fn mount_of_path<'a>(table: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    if !path.is_absolute() {
        return None;
    }
    let mut best: Option<&Mount> = None;
    for m in table.iter().filter(|m| is_data_fs(m)) {
        if path.starts_with(&m.point) && best.is_none_or(|b| m.point.components().count() >= b.point.components().count()) {
            best = Some(m);
        }
    }
    best
}

/// Where the block device `dev` (as the kernel names it: `sda1`, `dm-0`) is mounted: a row
/// whose source is `/dev/<dev>`, or whose source resolves to it (`/dev/mapper/x` → `dm-0`).
pub fn mount_of_device<'a>(table: &'a [Mount], dev: &str) -> Option<&'a Mount> {
    let want = Path::new("/dev").join(dev);
    table.iter().filter(|m| is_data_fs(m)).find(|m| {
        let src = Path::new(&m.source);
        src == want || std::fs::canonicalize(src).is_ok_and(|c| c == want)
    })
}

/// Usage in percent of the file system at `point` (None when statvfs fails).
pub fn used_percent(point: &Path) -> Option<f64> {
    super::probes::disk_usage(point).ok().map(|(pct, _)| pct)
}

/// The fullest of `candidates` by `usage` (ties: the first).
pub fn fullest<'a>(candidates: impl IntoIterator<Item = &'a Mount>, usage: impl Fn(&Path) -> Option<f64>) -> Option<&'a Mount> {
    let mut best: Option<(&Mount, f64)> = None;
    for m in candidates {
        if let Some(u) = usage(&m.point) {
            if best.is_none_or(|(_, bu)| u > bu) {
                best = Some((m, u));
            }
        }
    }
    best.map(|(m, _)| m)
}

/// The fullest real (non-pseudo) file system of `table`.
pub fn fullest_data_fs(table: &[Mount], usage: impl Fn(&Path) -> Option<f64>) -> Option<&Mount> {
    fullest(table.iter().filter(|m| is_data_fs(m)), usage)
}

/// Absolute paths quoted or standing alone in an out-of-space line
/// (`dd: error writing '/var/log/x': No space left on device`, `write /data/f: no space`).
/// Only the characters of ordinary paths are kept; `..` components disqualify a path.
pub fn paths_in(msg: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for word in msg.split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '(' | ')' | ',' | ';' | '[' | ']' | '<' | '>' | '=')) {
        let w = word.trim_end_matches([':', '.']);
        if !w.starts_with('/') || w.len() > 4096 {
            continue;
        }
        if !w.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@' | '%' | ':')) {
            continue;
        }
        let p = PathBuf::from(w);
        if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            continue;
        }
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:1 / / rw,relatime - ext4 /dev/sda1 rw
30 27 0:40 / /var/log rw,relatime - tmpfs tmpfs rw,size=32768k
31 27 253:2 / /srv/my\\040data rw - ext4 /dev/dm-2 rw
";

    #[test]
    fn paths_devices_and_fullest() {
        let t = parse_mountinfo(TABLE);
        assert_eq!(t.len(), 4);
        assert_eq!(mount_of_path(&t, Path::new("/var/log/export/r.csv")).unwrap().point, Path::new("/var/log"));
        assert_eq!(mount_of_path(&t, Path::new("/var/lib/x")).unwrap().point, Path::new("/"));
        assert_eq!(mount_of_path(&t, Path::new("/srv/my data/f")).unwrap().point, Path::new("/srv/my data"));
        assert_eq!(mount_of_path(&t, Path::new("/proc/1/x")).unwrap().point, Path::new("/"));
        assert_eq!(mount_of_device(&t, "sda1").unwrap().point, Path::new("/"));
        assert!(mount_of_device(&t, "sdz9").is_none());
        let usage = |p: &Path| Some(if p == Path::new("/var/log") { 97.0 } else { 40.0 });
        assert_eq!(fullest_data_fs(&t, usage).unwrap().point, Path::new("/var/log"));
        assert_eq!(
            paths_in("dd: error writing '/var/log/export/report.csv': No space left on device"),
            vec![PathBuf::from("/var/log/export/report.csv")]
        );
        assert!(paths_in("write /a/../etc/x: No space left on device").is_empty());
        assert_eq!(unescape("a\\040b\\"), "a b\\");
    }
}
