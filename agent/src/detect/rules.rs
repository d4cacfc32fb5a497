//! The journal rules: a small table, one row per kind of journal line that means trouble.
//! To add a rule, add a row to [`RULES`]; [`super::detector::Detector`] does the rest
//! (unit validation, backup-unit mapping, dedupe, incident ids).
//!
//! Messages checked against systemd 252 (Debian 12, the installed version): PID 1 logs unit
//! failures with `UNIT=<unit>`, `_PID=1`, `_SYSTEMD_UNIT=init.scope` and a `MESSAGE_ID` from
//! sd-messages.h, except "Start request repeated too quickly.", which has none (it is
//! followed by "Failed with result 'start-limit-hit'", which has one). Rules prefer the
//! MESSAGE_ID and fall back to the text for journals from systemd versions without it.

use crate::incident::{event_type, Severity};
use crate::journal::Entry;

/// SD_MESSAGE_UNIT_PROCESS_EXIT: "Main process exited, code=exited, status=1/FAILURE".
pub const MSG_UNIT_PROCESS_EXIT: &str = "98e322203f7a4ed290d09fe03c09fe15";
/// SD_MESSAGE_UNIT_FAILURE_RESULT: "Failed with result 'exit-code'." (`UNIT_RESULT=`).
pub const MSG_UNIT_FAILURE_RESULT: &str = "d9b373ed55a64feb8242e02dbe79a49c";
/// SD_MESSAGE_UNIT_FAILED: "Failed to start X." (`JOB_RESULT=failed`).
pub const MSG_UNIT_FAILED: &str = "be02cf6855d2428ba40df7e9d022f03d";

/// Who must have written the entry for a rule to apply. Based on trusted fields (those
/// starting with `_` are set by journald, not by the logging process), so a process cannot
/// forge a PID 1 message by setting `MESSAGE_ID=` or `UNIT=` itself, and a local user's
/// `logger` line is nobody's service ([`super::trust`]). Kernel lines are not in this
/// table: the kernel echoes user text, so they are matched by exact form
/// ([`super::kernel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The service manager ([`super::trust::is_service_manager`]).
    ServiceManager,
    /// The kernel itself ([`super::trust::is_kernel`]); no table rule uses it.
    Kernel,
    /// A process of a system service ([`super::trust::is_system_service`]): not a login
    /// session, not a user's own manager, not a human account.
    SystemService,
    /// Anyone else (a user's shell, `logger`, a session's programs): no rule trusts it.
    Other,
}

/// Which field names the unit the incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitFrom {
    /// `UNIT=` (PID 1 messages about a unit).
    UnitField,
    /// `_SYSTEMD_UNIT=` (the unit of the logging process, trusted).
    OwnUnit,
    /// No unit.
    None,
}

/// One detection rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Plain name, recorded as `details.rule`.
    pub name: &'static str,
    /// Incident type. Rules with `unit_failure` become `backup_failure` for backup units.
    pub event_type: &'static str,
    /// Incident severity.
    pub severity: Severity,
    /// Who must have written the entry.
    pub origin: Origin,
    /// Matches when `MESSAGE_ID` equals this...
    pub message_id: Option<&'static str>,
    /// ...or when `MESSAGE` contains one of these.
    pub message_contains: &'static [&'static str],
    /// Compare `message_contains` ignoring ASCII case.
    pub ignore_case: bool,
    /// Extra condition on the entry (e.g. "not a successful exit").
    pub also: Option<fn(&Entry) -> bool>,
    /// Where the unit comes from.
    pub unit: UnitFrom,
    /// A unit failure: mapped to `backup_failure` when the unit is a backup unit, and
    /// deduplicated with the other lines systemd logs for the same failure.
    pub unit_failure: bool,
}

/// The rule table.
pub const RULES: &[Rule] = &[
    Rule {
        name: "unit-process-exited",
        event_type: event_type::SERVICE_CRASH,
        severity: Severity::High,
        origin: Origin::ServiceManager,
        message_id: Some(MSG_UNIT_PROCESS_EXIT),
        message_contains: &["Main process exited, code=", "Control process exited, code="],
        ignore_case: false,
        also: Some(exit_was_failure),
        unit: UnitFrom::UnitField,
        unit_failure: true,
    },
    Rule {
        name: "unit-failed-with-result",
        event_type: event_type::SERVICE_CRASH,
        severity: Severity::High,
        origin: Origin::ServiceManager,
        message_id: Some(MSG_UNIT_FAILURE_RESULT),
        message_contains: &["Failed with result '"],
        ignore_case: false,
        also: None,
        unit: UnitFrom::UnitField,
        unit_failure: true,
    },
    Rule {
        name: "unit-start-limit-hit",
        event_type: event_type::SERVICE_CRASH,
        severity: Severity::High,
        origin: Origin::ServiceManager,
        message_id: None,
        message_contains: &["Start request repeated too quickly."],
        ignore_case: false,
        also: None,
        unit: UnitFrom::UnitField,
        unit_failure: true,
    },
    Rule {
        name: "unit-start-job-failed",
        event_type: event_type::SERVICE_CRASH,
        severity: Severity::High,
        origin: Origin::ServiceManager,
        message_id: Some(MSG_UNIT_FAILED),
        message_contains: &[],
        ignore_case: false,
        also: Some(job_result_failed),
        unit: UnitFrom::UnitField,
        unit_failure: true,
    },
    Rule {
        name: "tls-certificate-error",
        event_type: event_type::CERT_EXPIRY,
        severity: Severity::High,
        origin: Origin::SystemService,
        message_id: None,
        message_contains: &["certificate has expired", "certificate verify failed", "certificate is expired", "certificate expired"],
        ignore_case: true,
        also: None,
        unit: UnitFrom::OwnUnit,
        unit_failure: false,
    },
];

/// "Main process exited" is also logged (at debug/info level) for clean exits, with
/// " (success)" appended (systemd 252 `unit_log_process_exit`): exit 0, or SIGTERM/SIGHUP
/// etc. during `systemctl stop`. Those are not crashes.
fn exit_was_failure(e: &Entry) -> bool {
    let msg = e.get("MESSAGE").unwrap_or_default();
    if msg.ends_with(b"(success)") {
        return false;
    }
    !(e.get("EXIT_CODE") == Some(b"exited") && e.get("EXIT_STATUS") == Some(b"0"))
}

/// "Failed to start X." carries JOB_RESULT=failed; "Dependency failed" (JOB_RESULT=dependency)
/// is about another unit, which gets its own incident.
fn job_result_failed(e: &Entry) -> bool {
    e.get("JOB_RESULT") == Some(b"failed")
}

/// Where an entry comes from, by its trusted fields.
pub fn origin_of(e: &Entry) -> Origin {
    if e.get("_TRANSPORT") == Some(b"kernel") {
        // Kernel transport, facility 0 or not: never a service's or PID 1's line.
        if super::trust::is_kernel(e) { Origin::Kernel } else { Origin::Other }
    } else if super::trust::is_service_manager(e) {
        Origin::ServiceManager
    } else if super::trust::is_system_service(e) {
        Origin::SystemService
    } else {
        Origin::Other
    }
}

/// The first rule of `rules` that matches `e`.
pub fn first_match<'r>(rules: &'r [Rule], e: &Entry) -> Option<&'r Rule> {
    let origin = origin_of(e);
    let msg_id = e.get("MESSAGE_ID");
    let msg = e.get("MESSAGE");
    rules.iter().find(|r| {
        if r.origin != origin {
            return false;
        }
        let by_id = matches!((r.message_id, msg_id), (Some(want), Some(got)) if want.as_bytes() == got);
        let by_text = !by_id
            && msg.is_some_and(|m| {
                r.message_contains.iter().any(|p| if r.ignore_case { contains_ignore_case(m, p.as_bytes()) } else { memchr::memmem::find(m, p.as_bytes()).is_some() })
            });
        (by_id || by_text) && r.also.is_none_or(|f| f(e))
    })
}

/// `needle` occurs in `hay`, ignoring ASCII case (memchr-driven: it runs on every line).
pub(crate) fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else { return true };
    // Jump between occurrences of the first byte (either case) with memchr: this runs on
    // every service message, so it must not be a byte-by-byte window scan.
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut from = 0;
    while hay.len() - from >= needle.len() {
        let Some(i) = memchr::memchr2(lo, up, &hay[from..=hay.len() - needle.len()]) else { return false };
        let at = from + i;
        if hay[at..at + needle.len()].eq_ignore_ascii_case(needle) {
            return true;
        }
        from = at + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn ignore_case_search() {
        use super::contains_ignore_case as c;
        assert!(c(b"SSL: Certificate Has Expired", b"certificate has expired"));
        assert!(c(b"certificate has expired", b"certificate has expired"));
        assert!(!c(b"certificate has expire", b"certificate has expired"));
        assert!(!c(b"", b"x"));
        assert!(c(b"xxC", b"c"));
    }
}
