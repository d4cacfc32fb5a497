//! System-age check (`patching.max_system_age_days`): how old the running NixOS generation
//! is. Store paths carry no usable time (Nix sets their mtime to 1970), so the age is that of
//! the generation: the system profile's `system-N-link` whose target is the running system
//! (`nixos-rebuild` creates it when it builds the generation; its own mtime, not followed).
//! When no generation link names the running system (a test VM, a system started without a
//! profile), the `/run/current-system` link's own mtime (set at activation) is used, and the
//! detail says so.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

/// What was found.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemAge {
    /// The running system's store path.
    pub system: String,
    /// When its generation was made.
    pub created: DateTime<Utc>,
    /// `system-N-link` it was found as, or `current-system link` for the fallback.
    pub from: String,
    /// Age in whole days at `now`.
    pub age_days: i64,
}

/// Measure. `current` is `/run/current-system`, `profiles` `/nix/var/nix/profiles`.
pub fn measure(current: &Path, profiles: &Path, now: DateTime<Utc>) -> Result<SystemAge> {
    let target = std::fs::read_link(current).with_context(|| format!("reading the link {}", current.display()))?;
    let target_real = std::fs::canonicalize(current).with_context(|| format!("resolving {}", current.display()))?;
    let mut best: Option<(PathBuf, std::time::SystemTime)> = None;
    if let Ok(rd) = std::fs::read_dir(profiles) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("system-") && name.ends_with("-link")) {
                continue;
            }
            let p = e.path();
            let Ok(real) = std::fs::canonicalize(&p) else { continue };
            if real != target_real {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
            let Ok(m) = meta.modified() else { continue };
            // The same system can be several generations (a rebuild without changes): the
            // oldest is when it was first made.
            if best.as_ref().is_none_or(|(_, t)| m < *t) {
                best = Some((p, m));
            }
        }
    }
    let (from, mtime) = match best {
        Some((p, m)) => (p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), m),
        None => {
            let m = std::fs::symlink_metadata(current)
                .and_then(|m| m.modified())
                .with_context(|| format!("reading the mtime of {}", current.display()))?;
            ("current-system link".to_string(), m)
        }
    };
    let created: DateTime<Utc> = mtime.into();
    let age_days = (now - created).num_seconds().div_euclid(86_400);
    Ok(SystemAge { system: target.to_string_lossy().into_owned(), created, from, age_days })
}
