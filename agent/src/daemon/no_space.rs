//! The daemon's part of "a job failed because its file system is full": the unit's
//! configured paths (rule 3 of [`crate::detect::mounts`]), asked of systemd, and the
//! guard against retrying the agent's own unit.

use std::path::PathBuf;
use std::process::Command;

use crate::incident::Incident;

/// The properties whose paths a unit writes to.
const PROPS: &[&str] = &["WorkingDirectory", "ReadWritePaths", "StateDirectory", "LogsDirectory", "CacheDirectory"];

/// Paths from `systemctl show` output: absolute `WorkingDirectory=` / `ReadWritePaths=`
/// entries (a leading `-` or `!`/`+` prefix stripped) and the `*Directory=` names under
/// their systemd roots (/var/lib, /var/log, /var/cache).
pub fn parse_show(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let root = match k {
            "StateDirectory" => Some("/var/lib"),
            "LogsDirectory" => Some("/var/log"),
            "CacheDirectory" => Some("/var/cache"),
            "WorkingDirectory" | "ReadWritePaths" => None,
            _ => continue,
        };
        for word in v.split_whitespace() {
            let w = word.trim_start_matches(['-', '!', '+', '~']);
            let p = match root {
                Some(r) if !w.is_empty() && !w.starts_with('/') => PathBuf::from(r).join(w),
                None if w.starts_with('/') => PathBuf::from(w),
                _ => continue,
            };
            if !p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                out.push(p);
            }
        }
    }
    out
}

/// `systemctl show` of `unit` (a validated unit name, passed as an argument, never through
/// a shell); empty when systemd cannot be asked.
pub fn unit_paths(unit: &str) -> Vec<PathBuf> {
    let mut cmd = Command::new("systemctl");
    cmd.arg("show");
    for p in PROPS {
        cmd.arg("-p").arg(p);
    }
    cmd.arg("--").arg(unit);
    match cmd.output() {
        Ok(o) if o.status.success() => parse_show(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => {
            tracing::warn!(unit, status = %o.status, "systemctl show failed; the disk-full mount falls back to the fullest file system");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(unit, error = %e, "systemctl not runnable; the disk-full mount falls back to the fullest file system");
            Vec::new()
        }
    }
}

/// The agent never restarts its own unit from a runbook (systemd's `Restart=` does): drop
/// `retry_unit` when it names the agent's unit, saying so in the incident.
pub fn drop_own_retry(incident: &mut Incident, own_unit: Option<&str>) {
    let own = own_unit.is_some_and(|u| incident.details.get("retry_unit").and_then(|v| v.as_str()) == Some(u));
    if own {
        incident.details.remove("retry_unit");
        incident.details.insert("retry_skipped".into(), serde_json::json!("the failed unit is the agent's own; systemd restarts it"));
    }
}

/// The guard target of a job's disk-full incident: the mount and the job (`/var/log
/// nightly-export.service`), so that a probe's RB-DISK-001 run on the same mount moments
/// before (and its cooldown) does not suppress the job's retry. RB-DISK-001 tolerates two
/// runs on one mount (its deletions ignore files another run removed first).
pub fn retry_target(incident: &Incident) -> Option<String> {
    if incident.event_type != crate::incident::event_type::DISK_FULL {
        return None;
    }
    let unit = incident.details.get("retry_unit")?.as_str()?;
    let mount = incident.details.get("mount").and_then(|m| m.as_str()).unwrap_or("/");
    Some(format!("{mount} {unit}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn show_output_to_paths() {
        let p = super::parse_show("WorkingDirectory=!/srv/app\nReadWritePaths=-/data /var/spool/x\nStateDirectory=msp msp/state\nLogsDirectory=\nCacheDirectory=../x\nOther=/y\n");
        let want: Vec<std::path::PathBuf> = ["/srv/app", "/data", "/var/spool/x", "/var/lib/msp", "/var/lib/msp/state"].iter().map(Into::into).collect();
        assert_eq!(p, want);
    }
}
