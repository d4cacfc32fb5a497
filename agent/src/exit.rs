//! Exit codes shared by every command (DESIGN.md 3, "CLI").

use std::process::ExitCode;

/// What a command ended with. Commands return `Ok(Exit::...)` for "ran and has a verdict";
/// an `Err` from a command always becomes [`Exit::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything checked out (exit 0).
    Ok,
    /// The command ran and a check failed: a bad bundle, an expired exception, a lint error (exit 1).
    CheckFailed,
    /// Usage, configuration or I/O error (exit 2).
    Error,
    /// `runbook run` only: the repair ran, but its evidence could not be written (exit 3).
    /// The record is kept in the journal and the state directory; nothing may assume the
    /// system is as it was.
    RanUnrecorded,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            Exit::Ok => ExitCode::from(0),
            Exit::CheckFailed => ExitCode::from(1),
            Exit::Error => ExitCode::from(2),
            Exit::RanUnrecorded => ExitCode::from(3),
        }
    }
}
