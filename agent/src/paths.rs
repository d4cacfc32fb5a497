//! Production default paths (DESIGN.md 3, "Paths"). Every command that takes a path defaults
//! to one of these; tests and the demo override them.

/// The daemon's configuration file.
pub const CONFIG_FILE: &str = "/etc/msp/agent.yaml";
/// Directory holding the evidence signing key and its public forms.
pub const KEY_DIR: &str = "/etc/msp/signing-keys";
/// Root of the evidence store; bundles live under `YYYY/MM/` below it.
pub const EVIDENCE_DIR: &str = "/var/lib/msp/evidence";
/// Agent state: journal cursor, outbox, guard state.
pub const STATE_DIR: &str = "/var/lib/msp/state";
/// Where runbooks are read from when no directory is given. On NixOS the module points the
/// agent at a Nix store path instead.
pub const RUNBOOK_DIR: &str = "/etc/msp/runbooks";
