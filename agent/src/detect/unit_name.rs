//! systemd unit-name validation. Unit names in journal fields (`UNIT=`, `_SYSTEMD_UNIT=`) are
//! hostile input: only a name that passes [`is_valid_unit_name`] goes into
//! `Incident.unit` (which a runbook may later hand to `systemctl`).

/// Unit types systemd knows (`unit_type_from_string`).
const SUFFIXES: &[&str] = &[
    "service", "mount", "swap", "socket", "target", "device", "automount", "timer", "path", "slice", "scope",
];

/// Longest unit name systemd accepts (UNIT_NAME_MAX is 256 including the NUL).
pub const MAX_UNIT_NAME: usize = 255;

/// True when `name` is a valid systemd unit name: `prefix[@instance].type`, where prefix and
/// instance use only `[A-Za-z0-9:_.\\-]`, the prefix is not empty, there is at most one `@`,
/// the type is a known unit type and the whole is at most 255 bytes. A template without an
/// instance (`foo@.service`) is not a running unit and is rejected. This mirrors systemd's
/// `unit_name_is_valid(…, UNIT_NAME_PLAIN|UNIT_NAME_INSTANCE)`; note `-.mount` (the root
/// mount) is valid, so consumers must still pass unit names after `--` on command lines.
pub fn is_valid_unit_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_UNIT_NAME {
        return false;
    }
    let Some((stem, suffix)) = name.rsplit_once('.') else { return false };
    if !SUFFIXES.contains(&suffix) {
        return false;
    }
    let valid_chars = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b":-_.\\".contains(&b));
    match stem.split_once('@') {
        None => !stem.is_empty() && valid_chars(stem),
        Some((prefix, instance)) => {
            !prefix.is_empty() && !instance.is_empty() && !instance.contains('@') && valid_chars(prefix) && valid_chars(instance)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for ok in ["nginx.service", "restic-backups-daily.service", "getty@tty1.service", "-.mount", "sys-kernel-debug.mount",
                   "user-1000.slice", "dev-disk-by\\x2duuid-ab.device", "a:b_c.timer"] {
            assert!(is_valid_unit_name(ok), "{ok}");
        }
        let long = format!("{}.service", "a".repeat(250));
        for bad in ["", "nginx", "nginx.exe", ".service", "foo@.service", "@x.service", "a@b@c.service",
                    "x; rm -rf /.service", "a b.service", "a\nb.service", "$(id).service", "a/b.service",
                    "ünï.service", "a`x`.service", long.as_str()] {
            assert!(!is_valid_unit_name(bad), "{bad:?}");
        }
    }
}
