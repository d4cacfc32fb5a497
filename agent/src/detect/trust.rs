//! Who wrote a journal entry, from the fields a local user cannot forge.
//!
//! journald sets every field whose name starts with `_` itself, from the sender's kernel
//! credentials (`SCM_CREDENTIALS`, `/proc/PID/…`, the cgroup) or from the transport it read
//! the entry on; the sender cannot set them. Every other field (`MESSAGE`, `MESSAGE_ID`,
//! `SYSLOG_IDENTIFIER`, `UNIT`, `USER_ID`, …) is whatever the sending process chose: `logger
//! -t sshd`, `systemd-cat -t systemd-logind` or a native `sd_journal_send` can write any of
//! them. So a rule first asks *who* wrote the entry, by these predicates, and only then reads
//! what it says. ARCHITECTURE.md ("Journal trust model") lists which rule trusts what.
//!
//! Kernel-transport entries are a special case: `_TRANSPORT=kernel` only says the line came
//! through `/dev/kmsg`, and the kernel echoes user-chosen words into some of its own messages
//! (an unknown mount option in a user namespace: `tmpfs: Unknown parameter '<any text>'`).
//! Kernel rules therefore match whole messages of an exact form ([`super::kernel`]), never a
//! phrase anywhere in the text.

use crate::journal::Entry;

/// First UID of the range systemd allocates for `DynamicUser=` services (systemd's
/// `DYNAMIC_UID_MIN`, 61184); system services run below 1000 or in that range.
pub const DYNAMIC_UID_MIN: u32 = 61184;
/// Last UID of the `DynamicUser=` range (`DYNAMIC_UID_MAX`).
pub const DYNAMIC_UID_MAX: u32 = 65519;
/// First UID of ordinary (human) accounts: `UID_MIN` of login.defs on Debian and NixOS.
pub const HUMAN_UID_MIN: u32 = 1000;

fn field_u32(e: &Entry, name: &str) -> Option<u32> {
    e.get_str(name)?.parse().ok()
}

/// Written by the kernel itself: `_TRANSPORT=kernel` and facility 0. A process that writes
/// to `/dev/kmsg` (root only) gets facility LOG_USER (1) or the one it chose, never 0: the
/// kernel forces a non-zero facility on user-injected records so that they can be told apart.
pub fn is_kernel(e: &Entry) -> bool {
    e.get("_TRANSPORT") == Some(b"kernel") && e.get("SYSLOG_FACILITY") == Some(b"0")
}

/// Written by the service manager: `_PID=1` (journald reads the PID from the socket's
/// credentials, translated into its own PID namespace) or `_SYSTEMD_UNIT=init.scope` (only
/// PID 1 lives in that cgroup).
pub fn is_service_manager(e: &Entry) -> bool {
    e.get("_PID") == Some(b"1") || e.get("_SYSTEMD_UNIT") == Some(b"init.scope")
}

/// Written by a root process whose command name (`_COMM`) and executable (`_EXE`, the file
/// name of its path) are both one of `programs`, through syslog or the native protocol.
/// `_UID=0` is what makes this hold: a user can rename a process (`prctl(PR_SET_NAME)`) or
/// copy a binary anywhere, but cannot run as root.
pub fn is_root_program(e: &Entry, programs: &[&str]) -> bool {
    let transport_ok = matches!(e.get("_TRANSPORT"), Some(b"syslog") | Some(b"journal"));
    let comm_ok = e.get_str("_COMM").is_some_and(|c| programs.contains(&c));
    let exe_ok = e
        .get_str("_EXE")
        .and_then(|p| p.rsplit('/').next())
        .is_some_and(|name| programs.contains(&name));
    transport_ok && e.get("_UID") == Some(b"0") && comm_ok && exe_ok
}

/// Written by a process of a system service: `_SYSTEMD_UNIT` is a `.service` of the system
/// manager (not `user@UID.service`, the tree of a user's own manager, and not a login
/// session's `session-N.scope`), there is no `_SYSTEMD_USER_UNIT`, and `_UID` is a system
/// account (below [`HUMAN_UID_MIN`]) or a `DynamicUser=` one. A local user cannot place a
/// process in a system service's cgroup, so these lines are the service's own.
pub fn is_system_service(e: &Entry) -> bool {
    let Some(unit) = e.get_str("_SYSTEMD_UNIT") else { return false };
    if !unit.ends_with(".service") || unit.starts_with("user@") || unit.starts_with("user-runtime-dir@") {
        return false;
    }
    if e.get("_SYSTEMD_USER_UNIT").is_some() || is_service_manager(e) {
        return false;
    }
    match field_u32(e, "_UID") {
        Some(uid) => uid < HUMAN_UID_MIN || (DYNAMIC_UID_MIN..=DYNAMIC_UID_MAX).contains(&uid),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(fields: &[(&str, &str)]) -> Entry {
        Entry::from_fields(fields.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    #[test]
    fn system_service_excludes_sessions_user_managers_and_humans() {
        let base = [("_SYSTEMD_UNIT", "nginx.service"), ("_UID", "33"), ("_PID", "812")];
        assert!(is_system_service(&e(&base)));
        assert!(!is_system_service(&e(&[("_SYSTEMD_UNIT", "session-3.scope"), ("_UID", "0"), ("_PID", "9")])));
        assert!(!is_system_service(&e(&[("_SYSTEMD_UNIT", "user@1000.service"), ("_UID", "1000"), ("_PID", "9")])));
        assert!(!is_system_service(&e(&[("_SYSTEMD_UNIT", "cron.service"), ("_UID", "1000"), ("_PID", "9")])));
        assert!(is_system_service(&e(&[("_SYSTEMD_UNIT", "x.service"), ("_UID", "61200"), ("_PID", "9")])));
        assert!(!is_system_service(&e(&[("_SYSTEMD_UNIT", "x.service"), ("_PID", "9")])));
    }

    #[test]
    fn root_program_needs_uid0_comm_exe_and_transport() {
        let ok = [("_TRANSPORT", "syslog"), ("_UID", "0"), ("_COMM", "sshd"), ("_EXE", "/usr/sbin/sshd")];
        assert!(is_root_program(&e(&ok), &["sshd"]));
        let mut user = ok;
        user[1] = ("_UID", "1000");
        assert!(!is_root_program(&e(&user), &["sshd"]));
        let mut renamed = ok;
        renamed[3] = ("_EXE", "/usr/bin/logger");
        assert!(!is_root_program(&e(&renamed), &["sshd"]));
        let mut stdout = ok;
        stdout[0] = ("_TRANSPORT", "stdout");
        assert!(!is_root_program(&e(&stdout), &["sshd"]));
    }
}
