//! The runbook format (DESIGN.md 3, "Runbook") and its strict loader.
//!
//! Strictness is enforced by serde itself wherever possible (`deny_unknown_fields`, typed
//! fields, and custom `Deserialize` impls for expressions, ids, event types and parameter
//! specs), because serde_yaml_ng then reports the exact path and line of the offending
//! node. The few checks that need the whole document (duplicate step ids) run after parsing
//! and find their line by locating the key in the text.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use super::expr::Criteria;
use super::params::{self, BindError, ParamSpec, Params};
use crate::incident::{event_type, Incident, Severity};

/// Longest accepted `timeout_seconds` (6 hours: the restore test reads a whole snapshot).
pub const MAX_TIMEOUT_SECONDS: u64 = 6 * 3600;

/// A loaded, checked runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// `RB-<AREA>-<NNN>`.
    pub id: String,
    /// Short human name.
    pub name: String,
    /// The runbook's own version (a string, e.g. `1.0.0`).
    pub version: String,
    /// What it does.
    pub description: String,
    /// HIPAA citations, e.g. `§164.308(a)(7)(ii)(A)`.
    pub hipaa_controls: Vec<String>,
    /// Severity of the problem it handles.
    pub severity: Severity,
    /// Target time from detection to resolution.
    pub sla_minutes: u64,
    /// Declared parameters by name.
    pub parameters: BTreeMap<String, ParamSpec>,
    /// When it applies (see [`Runbook::matches`]).
    pub trigger_conditions: TriggerConditions,
    /// The remediation steps, in order (non-empty).
    pub steps: Vec<Step>,
    /// Steps run after a failed step (may be empty).
    pub rollback: Vec<Step>,
    /// The closed-loop check, run after the steps (or after the rollback).
    pub verification: Step,
    /// SHA-256 (hex) of the file's exact bytes.
    pub runbook_hash: String,
    /// Where it was loaded from.
    pub source: PathBuf,
}

/// One step (also the shape of rollback steps and of the verification).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the runbook (steps, rollback and verification together).
    pub id: StepId,
    /// Short description of what the step does, recorded in evidence.
    pub action: String,
    /// The whole process group is killed after this many seconds.
    pub timeout_seconds: Timeout,
    /// Bash script text; receives parameters as `MSP_PARAM_*`.
    pub script: String,
    /// Absent means `exit_code == 0`.
    #[serde(default)]
    pub success_criteria: Criteria,
    /// File names in `$MSP_ARTIFACTS` to hash and keep as evidence.
    #[serde(default)]
    pub evidence_capture: Vec<ArtifactName>,
    /// Keep going after this step fails (the failure is still recorded).
    #[serde(default)]
    pub continue_on_failure: bool,
}

/// When a runbook applies to an incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConditions {
    /// Incident event types (see [`crate::incident::event_type`]); non-empty.
    pub event_types: NonEmpty<EventType>,
    /// Globs (`*`, `?`) matched against `Incident.unit`; absent means any unit (or none).
    pub unit_patterns: Option<NonEmpty<UnitPattern>>,
}

/// The runbook document as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    id: RunbookId,
    name: String,
    version: RunbookVersion,
    description: String,
    hipaa_controls: NonEmpty<String>,
    severity: Severity,
    sla_minutes: SlaMinutes,
    #[serde(default)]
    parameters: BTreeMap<ParamName, ParamSpec>,
    trigger_conditions: TriggerConditions,
    steps: NonEmpty<Step>,
    rollback: Vec<Step>,
    verification: Step,
}

// ---- small validated newtypes: their errors carry serde_yaml_ng's path and line ----

/// Implements `Deserialize` for a newtype over `String` or `u64` through a check function.
/// The check runs inside the visitor, i.e. while serde_yaml_ng is still positioned on the
/// scalar, so the error carries the scalar's own path and line.
macro_rules! checked_newtype {
    ($(#[$m:meta])* $name:ident(String), $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        let check: fn(&String) -> Result<(), String> = $check;
                        let v = v.to_string();
                        check(&v).map_err(E::custom)?;
                        Ok($name(v))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
    ($(#[$m:meta])* $name:ident(u64), $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("u64")
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$name, E> {
                        let check: fn(&u64) -> Result<(), String> = $check;
                        check(&v).map_err(E::custom)?;
                        Ok($name(v))
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        match u64::try_from(v) {
                            Ok(u) => self.visit_u64(u),
                            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                        }
                    }
                }
                d.deserialize_u64(V)
            }
        }
    };
}

checked_newtype!(
    /// `RB-<AREA>-<NNN>`, e.g. `RB-DISK-001`.
    RunbookId(String),
    |s| {
        let ok = s.len() <= 64
            && s.strip_prefix("RB-").and_then(|r| r.rsplit_once('-')).is_some_and(|(area, n)| {
                !area.is_empty()
                    && area.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
                    && n.len() == 3
                    && n.chars().all(|c| c.is_ascii_digit())
            });
        if ok { Ok(()) } else { Err(format!("invalid runbook id {s:?}: expected RB-<AREA>-<NNN>, e.g. RB-DISK-001")) }
    }
);

/// The runbook's version: a quoted string like `1.0.0`. An unquoted `1.0` is a YAML number
/// and is rejected rather than turned into text (the template says so, and `1.10` would
/// otherwise become `1.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookVersion(pub String);

impl<'de> Deserialize<'de> for RunbookVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RunbookVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted version string such as \"1.0.0\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RunbookVersion, E> {
                if crate::config::valid_version(v) {
                    Ok(RunbookVersion(v.to_string()))
                } else {
                    Err(E::custom(format!("invalid version {v:?}: 1-32 characters of 0-9 A-Z a-z . + -, starting with a digit")))
                }
            }
        }
        // `deserialize_any`: serde_yaml_ng then reports a plain `1.0` as the number it is.
        d.deserialize_any(V)
    }
}

checked_newtype!(
    /// A step id: `[a-z0-9][a-z0-9_-]*`, at most 64 bytes.
    StepId(String),
    |s| {
        let mut c = s.chars();
        let ok = s.len() <= 64
            && c.next().is_some_and(|f| f.is_ascii_lowercase() || f.is_ascii_digit())
            && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_' || x == '-');
        if ok { Ok(()) } else { Err(format!("invalid step id {s:?}: use lower-case letters, digits, `_` and `-`")) }
    }
);

checked_newtype!(
    /// A step timeout in seconds, 1..=[`MAX_TIMEOUT_SECONDS`].
    Timeout(u64),
    |n| {
        if (1..=MAX_TIMEOUT_SECONDS).contains(n) { Ok(()) } else { Err(format!("timeout_seconds {n} is outside 1..={MAX_TIMEOUT_SECONDS}")) }
    }
);

checked_newtype!(
    /// The SLA in minutes, 1..=10080 (a week).
    SlaMinutes(u64),
    |n| if (1..=10080).contains(n) { Ok(()) } else { Err(format!("sla_minutes {n} is outside 1..=10080")) }
);

checked_newtype!(
    /// A parameter name (lower-case snake case).
    ParamName(String),
    |s| {
        if params::valid_param_name(s) { Ok(()) } else { Err(format!("invalid parameter name {s:?}: use lower-case letters, digits and `_`, starting with a letter")) }
    }
);

checked_newtype!(
    /// One of the incident event types.
    EventType(String),
    |s| {
        const KNOWN: [&str; 8] = [
            // The backup-age check's incident (RB-BACKUP-001 answers it).
            crate::checks::event_type::BACKUP_STALE,
            event_type::SERVICE_CRASH,
            event_type::BACKUP_FAILURE,
            event_type::DISK_FULL,
            event_type::CERT_EXPIRY,
            event_type::HIGH_CPU,
            event_type::RESTORE_TEST_DUE,
            event_type::CONFIG_DRIFT,
        ];
        if KNOWN.contains(&s.as_str()) { Ok(()) } else { Err(format!("unknown event type {s:?}, expected one of {}", KNOWN.join(", "))) }
    }
);

checked_newtype!(
    /// A glob over unit names: the unit-name character set plus `*` and `?`.
    UnitPattern(String),
    |s| {
        let ok = !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || ":_.@\\-*?".contains(c));
        if ok { Ok(()) } else { Err(format!("invalid unit pattern {s:?}: unit-name characters plus `*` and `?`")) }
    }
);

checked_newtype!(
    /// A file name in `$MSP_ARTIFACTS`: `[A-Za-z0-9._-]+`, not starting with `.` (so no
    /// `/`, no `..`, no hidden or temporary files).
    ArtifactName(String),
    |s| {
        let ok = !s.is_empty() && s.len() <= 128 && !s.starts_with('.')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if ok { Ok(()) } else { Err(format!("invalid evidence_capture name {s:?}: a plain file name ([A-Za-z0-9._-], not starting with `.`) in $MSP_ARTIFACTS")) }
    }
);

/// A list that must have at least one element.
#[derive(Debug, Clone)]
pub struct NonEmpty<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = NonEmpty<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-empty sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NonEmpty<T>, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                if v.is_empty() {
                    return Err(serde::de::Error::custom("must not be empty"));
                }
                Ok(NonEmpty(v))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for Criteria {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Criteria;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a success-criteria expression string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Criteria, E> {
                Criteria::parse(s).map_err(|e| E::custom(format!("invalid success criteria {}: {e}", excerpt(s))))
            }
        }
        d.deserialize_str(V)
    }
}

// ---- errors ----

/// `s` quoted for an error message, cut after 80 characters (a hostile expression can be
/// megabytes long).
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{:?}... ({} characters)", &s[..i], s.chars().count()),
        None => format!("{s:?}"),
    }
}

/// A load error: `FILE:LINE: FIELD: message` (LINE omitted when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The runbook file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The message, starting with the field path when there is one.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for LoadError {}

fn yaml_error(file: &Path, e: &serde_yaml_ng::Error) -> LoadError {
    let mut message = e.to_string();
    let line = e.location().map(|loc| {
        // serde_yaml_ng appends " at line L column C"; the line goes in front instead.
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
        loc.line()
    });
    // libyaml syntax errors carry their own "at line" text mid-message; keep them as they are.
    LoadError { file: file.to_path_buf(), line, message }
}

// ---- loading ----

impl Runbook {
    /// Load and check one runbook file.
    pub fn load_file(path: &Path) -> Result<Runbook, LoadError> {
        // A regular file of bounded size only: a FIFO in the runbooks directory would block
        // `runbook lint` and the daemon's start forever.
        let bytes = crate::fsutil::read_config_file(path, crate::fsutil::limits::RUNBOOK)
            .map_err(|e| {
                let msg = format!("{e:#}");
                // The error names the path; LoadError puts it in front already.
                let shown = path.display().to_string();
                let message = msg.strip_prefix(&format!("{shown} is ")).or_else(|| msg.strip_prefix(&format!("{shown}: "))).unwrap_or(&msg).to_string();
                LoadError { file: path.to_path_buf(), line: None, message }
            })?;
        Runbook::from_bytes(path, &bytes)
    }

    /// Parse and check runbook text; `file` is used for error messages and `source`.
    pub fn from_bytes(file: &Path, bytes: &[u8]) -> Result<Runbook, LoadError> {
        // The shared strict front-end first: encoding, nesting depth, duplicate keys at
        // every depth (serde's maps would keep the last of two `parameters` entries).
        let located = |e: crate::yamlutil::YamlError| LoadError { file: file.to_path_buf(), line: Some(e.line), message: e.message };
        let text = crate::yamlutil::decode(bytes).map_err(located)?;
        crate::yamlutil::scan(text).map_err(located)?;
        let raw: RawRunbook = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(file, &e))?;
        check_unique_step_ids(file, text, &raw)?;
        Ok(Runbook {
            id: raw.id.0,
            name: raw.name,
            version: raw.version.0,
            description: raw.description,
            hipaa_controls: raw.hipaa_controls.0,
            severity: raw.severity,
            sla_minutes: raw.sla_minutes.0,
            parameters: raw.parameters.into_iter().map(|(k, v)| (k.0, v)).collect(),
            trigger_conditions: raw.trigger_conditions,
            steps: raw.steps.0,
            rollback: raw.rollback,
            verification: raw.verification,
            runbook_hash: hex::encode(Sha256::digest(bytes)),
            source: file.to_path_buf(),
        })
    }

    /// Does this runbook apply to `incident`? Its event type must be listed, and when
    /// `unit_patterns` is given, the incident must name a unit matching one of them.
    pub fn matches(&self, incident: &Incident) -> bool {
        let tc = &self.trigger_conditions;
        if !tc.event_types.0.iter().any(|e| e.0 == incident.event_type) {
            return false;
        }
        match (&tc.unit_patterns, &incident.unit) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(pats), Some(unit)) => pats.0.iter().any(|p| crate::glob::glob_match(&p.0, unit)),
        }
    }

    /// Bind parameters: defaults, then incident bindings, then manual overrides; every value
    /// validated. Nothing runs if this fails.
    pub fn bind_params(&self, incident: Option<&Incident>, overrides: &[(String, String)]) -> Result<Params, BindError> {
        params::bind(&self.parameters, incident, overrides)
    }

    /// [`Runbook::bind_params`] with the host's settings for this runbook (see
    /// [`params::bind_with_host`]); what the daemon uses.
    pub fn bind_params_for_host(
        &self,
        host: Option<&std::collections::BTreeMap<String, String>>,
        incident: Option<&Incident>,
    ) -> Result<Params, BindError> {
        params::bind_with_host(&self.parameters, host, incident, &[])
    }

    /// All steps in order: steps, rollback, verification.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(self.rollback.iter()).chain(std::iter::once(&self.verification))
    }
}


/// Field paths of every step id, in document order.
fn step_id_paths(raw: &RawRunbook) -> Vec<(String, &str)> {
    let mut v = Vec::new();
    for (i, s) in raw.steps.0.iter().enumerate() {
        v.push((format!("steps[{i}].id"), s.id.0.as_str()));
    }
    for (i, s) in raw.rollback.iter().enumerate() {
        v.push((format!("rollback[{i}].id"), s.id.0.as_str()));
    }
    v.push(("verification.id".into(), raw.verification.id.0.as_str()));
    v
}

fn check_unique_step_ids(file: &Path, text: &str, raw: &RawRunbook) -> Result<(), LoadError> {
    let mut first: HashMap<&str, String> = HashMap::new();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (path, id) in step_id_paths(raw) {
        let n = count.entry(id).or_insert(0);
        *n += 1;
        if let Some(prev) = first.get(id) {
            return Err(LoadError {
                file: file.to_path_buf(),
                line: find_id_line(text, id, *n),
                message: format!("{path}: duplicate step id {id:?} (already used by {prev})"),
            });
        }
        first.insert(id, path);
    }
    Ok(())
}

/// Line (1-based) of the `nth` indented `id: <id>` key in the text. Step ids are plain
/// scalars by construction (their charset), optionally quoted; the top-level `id` is not
/// indented and cannot match a step id's charset anyway (`RB-...` has upper case).
fn find_id_line(text: &str, id: &str, nth: usize) -> Option<usize> {
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.len() == line.len() {
            continue;
        }
        let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
        let Some(v) = t.strip_prefix("id:") else { continue };
        let v = v.split(" #").next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'');
        if v == id {
            seen += 1;
            if seen == nth {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Load every `*.yaml`/`*.yml` file directly in `dir` (not recursive), sorted by name.
/// Returns the runbooks and every error (one per bad file, plus duplicate runbook ids).
pub fn load_dir(dir: &Path) -> std::io::Result<(Vec<Runbook>, Vec<LoadError>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        let is_yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
        // Not `is_file()`: a FIFO or device named *.yaml is reported by load_file, not
        // skipped without a word.
        if is_yaml && !p.is_dir() {
            files.push(p);
        }
    }
    files.sort();
    let mut books: Vec<Runbook> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match Runbook::load_file(&f) {
            Ok(rb) => {
                if let Some(other) = books.iter().find(|b| b.id == rb.id) {
                    errors.push(LoadError {
                        line: find_top_level_line(&std::fs::read_to_string(&f).unwrap_or_default(), "id"),
                        file: f,
                        message: format!("id: runbook id {:?} is also used by {}", rb.id, other.source.display()),
                    });
                } else {
                    books.push(rb);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    Ok((books, errors))
}

fn find_top_level_line(text: &str, key: &str) -> Option<usize> {
    let prefix = format!("{key}:");
    text.lines().position(|l| l.starts_with(&prefix)).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;


    #[test]
    fn id_line_finder() {
        let t = "id: RB-X-001\nsteps:\n  - id: a\n    x: 1\n  - id: \"a\"\nverification:\n  id: b # check\n";
        assert_eq!(find_id_line(t, "a", 1), Some(3));
        assert_eq!(find_id_line(t, "a", 2), Some(5));
        assert_eq!(find_id_line(t, "b", 1), Some(7));
    }
}
