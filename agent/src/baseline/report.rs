//! Findings: what `baseline check` reports, one line each, `file:line: field: message`.

use std::fmt;

use serde::Serialize;

/// How bad a finding is. Errors make `baseline check` exit 1; warnings are printed only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The check fails.
    Error,
    /// Worth a look; the check still passes.
    Warning,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as given on the command line (or found in the exceptions directory).
    pub file: String,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// The field (YAML key path, CSV column, or exception field) the problem is in.
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: ", self.field)?;
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Findings collected while checking, in the order they were found.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// All findings so far.
    pub items: Vec<Finding>,
}

impl Findings {
    /// Record an error.
    pub fn error(
        &mut self,
        file: &str,
        line: Option<usize>,
        field: &str,
        message: impl Into<String>,
    ) {
        self.push(Severity::Error, file, line, field, message.into());
    }

    /// Record a warning.
    pub fn warning(
        &mut self,
        file: &str,
        line: Option<usize>,
        field: &str,
        message: impl Into<String>,
    ) {
        self.push(Severity::Warning, file, line, field, message.into());
    }

    fn push(
        &mut self,
        severity: Severity,
        file: &str,
        line: Option<usize>,
        field: &str,
        message: String,
    ) {
        self.items.push(Finding {
            severity,
            file: file.to_string(),
            line,
            field: field.to_string(),
            message,
        });
    }

    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.items
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.items
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }
}
