//! The incident types detection emits; runbooks name them in `trigger_conditions.event_types`.

/// A systemd service failed: "Main process exited", "Failed with result", restart limit.
pub const SERVICE_CRASH: &str = "service_crash";
/// A backup (restic) unit failed.
pub const BACKUP_FAILURE: &str = "backup_failure";
/// A filesystem is over its usage threshold or the kernel reported ENOSPC.
pub const DISK_FULL: &str = "disk_full";
/// A certificate under the watched path expires within the threshold, or TLS errors.
pub const CERT_EXPIRY: &str = "cert_expiry";
/// Sustained CPU load over the threshold.
pub const HIGH_CPU: &str = "high_cpu";
/// The weekly restore test is due.
pub const RESTORE_TEST_DUE: &str = "restore_test_due";
/// A file the baseline governs no longer has its expected SHA-256 (the drift watcher).
pub const CONFIG_DRIFT: &str = "config_drift";
/// The journal source stayed down past `journal.down_record_after_seconds`.
pub const JOURNAL_SOURCE_DOWN: &str = "journal_source_down";
/// Record (not an incident): the agent is alive (`daemon::records::heartbeat`).
pub const HEARTBEAT: &str = "heartbeat";
/// Record (not an incident): a backup unit finished successfully.
pub const BACKUP_COMPLETED: &str = "backup_completed";
/// The baseline's break-glass account logged in (always escalated to a person).
pub const BREAK_GLASS_LOGIN: &str = "break_glass_login";
/// A burst of failed log-ins from one source address.
pub const LOGIN_FAILURES: &str = "login_failures";
/// The clock's offset from its time source is above `time.max_drift_ms`.
pub const CLOCK_DRIFT: &str = "clock_drift";
/// The running NixOS generation is older than `patching.max_system_age_days`.
pub const SYSTEM_OUTDATED: &str = "system_outdated";
/// No successful backup of a backup unit for `backup.max_age_hours` (RB-BACKUP-001).
pub const BACKUP_STALE: &str = "backup_stale";
/// A configured TLS endpoint accepted a protocol below `encryption.tls_min_version`.
pub const TLS_OUTDATED: &str = "tls_outdated";
/// An incident was still unresolved at its SLA deadline (`incident.sla_minutes_*`).
pub const SLA_BREACH: &str = "sla_breach";
/// A runbook `incident.runbooks` lists is not loaded.
pub const RUNBOOK_MISSING: &str = "runbook_missing";
/// Record (not an incident): the monthly WORM restore test (`worm restore-test`).
pub const WORM_RESTORE_TEST: &str = "worm_restore_test";
/// Record (not an incident): local copies of confirmed bundles were pruned.
pub const EVIDENCE_PRUNED: &str = "evidence_pruned";
/// Record (not an incident): the evidence file system passed its usage threshold.
pub const EVIDENCE_DISK_HIGH: &str = "evidence_disk_high";
/// The active signing key is older than `keys.max_age_days`: rotate it.
pub const SIGNING_KEY_OLD: &str = "signing_key_old";
/// The active signing key is past its end of life (`keys.end_of_life_days`, or a
/// `valid_until` in its `key-info.json`).
pub const SIGNING_KEY_END_OF_LIFE: &str = "signing_key_end_of_life";
