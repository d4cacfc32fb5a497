//! Runbook parameters: their declared specs (checked when the runbook is loaded) and binding
//! values to them (defaults, then the incident, then manual overrides), validating every
//! value before anything runs.
//!
//! Values reach scripts only as environment variables `MSP_PARAM_<UPPERNAME>`; no script text
//! is ever built from them. Validation is still strict because a script may pass a value to a
//! program that interprets it (`systemctl restart "$MSP_PARAM_UNIT"` must not receive
//! `--now` or `-H host`).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use regex::Regex;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use crate::incident::Incident;

/// Longest accepted value of any parameter, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;
/// Longest accepted unit name (systemd's own limit is 255).
pub const MAX_UNIT_LEN: usize = 255;
/// Longest accepted path.
pub const MAX_PATH_LEN: usize = 1024;

/// The kinds of parameter a runbook can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Free text without control characters, optionally constrained by `pattern`.
    String,
    /// A systemd unit name (`nginx.service`).
    Unit,
    /// An absolute path inside one of `allowed_roots`.
    Path,
    /// A decimal integer within `min`/`max`.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// One of `values`.
    Enum,
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParamType::String => "string",
            ParamType::Unit => "unit",
            ParamType::Path => "path",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Enum => "enum",
        })
    }
}

/// A YAML scalar (string, integer or boolean) kept as its text form. Anything else
/// (a list, a map, a float) is a type error at its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, integer or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The parameter spec exactly as written in YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParamSpec {
    #[serde(rename = "type")]
    kind: ParamType,
    default: Option<Scalar>,
    #[serde(default)]
    required: bool,
    description: Option<String>,
    pattern: Option<String>,
    allowed_roots: Option<Vec<String>>,
    values: Option<Vec<String>>,
    min: Option<i64>,
    max: Option<i64>,
    from_incident: Option<String>,
}

/// A checked parameter spec. Built only through deserialisation, which checks that the
/// options fit the type, the pattern compiles, the roots are clean absolute paths and the
/// default itself is valid.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// The parameter's type.
    pub kind: ParamType,
    /// Validated default value.
    pub default: Option<String>,
    /// Must have a value after binding (from default, incident or override).
    pub required: bool,
    /// Human description.
    pub description: Option<String>,
    /// `pattern` as written, and compiled anchored (`^(?:...)$`).
    pub pattern: Option<(String, Regex)>,
    /// Normalised absolute roots (path parameters).
    pub allowed_roots: Vec<PathBuf>,
    /// Allowed values (enum parameters).
    pub values: Vec<String>,
    /// Bounds (integer parameters).
    pub min: Option<i64>,
    /// Bounds (integer parameters).
    pub max: Option<i64>,
    /// `unit` or a key of `incident.details`.
    pub from_incident: Option<String>,
}

impl<'de> Deserialize<'de> for ParamSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ParamSpec, D::Error> {
        // The checks run inside the visitor (not via `#[serde(try_from)]`) so that
        // serde_yaml_ng attaches this mapping's own path and line to their errors.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ParamSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a parameter spec (a mapping with `type`)")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ParamSpec, A::Error> {
                let raw = RawParamSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                ParamSpec::try_from(raw).map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}

impl TryFrom<RawParamSpec> for ParamSpec {
    type Error = String;

    fn try_from(r: RawParamSpec) -> Result<ParamSpec, String> {
        let k = r.kind;
        let only = |present: bool, field: &str, for_kind: ParamType| -> Result<(), String> {
            if present && k != for_kind {
                Err(format!("`{field}` is only allowed for type {for_kind}, not {k}"))
            } else {
                Ok(())
            }
        };
        only(r.allowed_roots.is_some(), "allowed_roots", ParamType::Path)?;
        only(r.values.is_some(), "values", ParamType::Enum)?;
        only(r.min.is_some(), "min", ParamType::Integer)?;
        only(r.max.is_some(), "max", ParamType::Integer)?;
        if r.pattern.is_some() && !matches!(k, ParamType::String | ParamType::Unit | ParamType::Path) {
            return Err(format!("`pattern` is only allowed for types string, unit and path, not {k}"));
        }
        let pattern = match r.pattern {
            None => None,
            Some(p) => {
                let re = Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("invalid `pattern` {p:?}: {e}"))?;
                Some((p, re))
            }
        };
        let mut allowed_roots = Vec::new();
        if k == ParamType::Path {
            let roots = r.allowed_roots.unwrap_or_default();
            if roots.is_empty() {
                return Err("a path parameter needs a non-empty `allowed_roots`".into());
            }
            for root in roots {
                let norm = normalise_path(&root).map_err(|e| format!("allowed_roots: {root:?}: {e}"))?;
                allowed_roots.push(norm);
            }
        }
        let values = r.values.unwrap_or_default();
        if k == ParamType::Enum {
            if values.is_empty() {
                return Err("an enum parameter needs a non-empty `values` list".into());
            }
            for v in &values {
                check_text(v).map_err(|e| format!("values: {v:?}: {e}"))?;
            }
        }
        if let (Some(lo), Some(hi)) = (r.min, r.max) {
            if lo > hi {
                return Err(format!("min {lo} is greater than max {hi}"));
            }
        }
        if let Some(src) = &r.from_incident {
            if src.is_empty() || !src.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`from_incident` must be `unit` or a details key ([A-Za-z0-9_]+), not {src:?}"));
            }
        }
        let mut spec = ParamSpec {
            kind: k,
            default: None,
            required: r.required,
            description: r.description,
            pattern,
            allowed_roots,
            values,
            min: r.min,
            max: r.max,
            from_incident: r.from_incident,
        };
        if let Some(Scalar(d)) = r.default {
            spec.default = Some(spec.validate(&d).map_err(|e| format!("default {d:?}: {e}"))?);
        }
        Ok(spec)
    }
}

/// Whether a parameter name is acceptable: lower-case snake case, so that
/// `MSP_PARAM_<UPPER>` is a plain, unambiguous environment variable name.
pub fn valid_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The environment variable a parameter is passed in.
pub fn env_name(name: &str) -> String {
    format!("MSP_PARAM_{}", name.to_ascii_uppercase())
}

fn check_text(v: &str) -> Result<(), String> {
    if v.len() > MAX_VALUE_LEN {
        return Err(format!("longer than {MAX_VALUE_LEN} bytes"));
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {:?}", c));
    }
    Ok(())
}

fn unit_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        #[allow(clippy::expect_used)]
        Regex::new(r"^[A-Za-z0-9:_.@\\-]+\.(service|timer|socket|mount|target|path|slice|scope)$")
            .expect("unit regex compiles")
    })
}

/// Check a systemd unit name: systemd's character set, a known unit suffix, no leading `-`
/// (which `systemctl` would read as an option).
pub fn validate_unit(v: &str) -> Result<(), String> {
    if v.len() > MAX_UNIT_LEN {
        return Err(format!("unit name longer than {MAX_UNIT_LEN} bytes"));
    }
    if v.starts_with('-') || v.starts_with('.') {
        return Err("a unit name must not start with `-` or `.`".into());
    }
    if !unit_regex().is_match(v) {
        return Err("not a systemd unit name (letters, digits, `:_.@\\-`, ending in .service, .timer, .socket, .mount, .target, .path, .slice or .scope)".into());
    }
    Ok(())
}

/// Lexically normalise an absolute path: `.` and repeated `/` are dropped; `..` is refused
/// (rather than resolved) because a parameter that needs it is either confused or hostile.
/// The file system is not consulted (the path may not exist yet, and symlinks are the
/// script's concern: scripts act on `realpath`-checked paths where it matters).
pub fn normalise_path(v: &str) -> Result<PathBuf, String> {
    if v.len() > MAX_PATH_LEN {
        return Err(format!("longer than {MAX_PATH_LEN} bytes"));
    }
    check_text(v)?;
    let p = Path::new(v);
    if !p.is_absolute() {
        return Err("not an absolute path".into());
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return Err("`..` is not allowed in paths".into()),
            Component::Prefix(_) => return Err("not a Unix path".into()),
        }
    }
    Ok(out)
}

impl ParamSpec {
    /// Validate (and for paths, normalise) one value against this spec.
    pub fn validate(&self, v: &str) -> Result<String, String> {
        check_text(v)?;
        let value = match self.kind {
            ParamType::String => v.to_string(),
            ParamType::Unit => {
                validate_unit(v)?;
                v.to_string()
            }
            ParamType::Path => {
                let p = normalise_path(v)?;
                if !self.allowed_roots.iter().any(|r| p.starts_with(r)) {
                    let roots: Vec<_> = self.allowed_roots.iter().map(|r| r.display().to_string()).collect();
                    return Err(format!("{} is outside the allowed roots ({})", p.display(), roots.join(", ")));
                }
                p.to_str().ok_or("path is not UTF-8")?.to_string()
            }
            ParamType::Integer => {
                let n: i64 = v.trim().parse().map_err(|_| format!("{v:?} is not an integer"))?;
                if self.min.is_some_and(|lo| n < lo) || self.max.is_some_and(|hi| n > hi) {
                    return Err(format!(
                        "{n} is outside [{}, {}]",
                        self.min.map_or("-inf".into(), |x| x.to_string()),
                        self.max.map_or("inf".into(), |x| x.to_string())
                    ));
                }
                n.to_string()
            }
            ParamType::Boolean => match v {
                "true" | "false" => v.to_string(),
                _ => return Err(format!("{v:?} is not `true` or `false`")),
            },
            ParamType::Enum => {
                if !self.values.iter().any(|x| x == v) {
                    return Err(format!("{v:?} is not one of {}", self.values.join(", ")));
                }
                v.to_string()
            }
        };
        if let Some((src, re)) = &self.pattern {
            if !re.is_match(&value) {
                return Err(format!("{value:?} does not match the pattern {src:?}"));
            }
        }
        Ok(value)
    }
}

/// Bound, validated parameter values by name. Parameters with no value (not required, no
/// default, nothing bound) are absent and their variable is not set. Only [`bind`] (or
/// `Default`, which is empty) makes one, so a `Params` always holds validated values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
    /// Names of the path parameters among `values` (resolved, symlink-free at bind time).
    paths: std::collections::BTreeSet<String>,
}

impl Params {
    /// `(MSP_PARAM_<NAME>, value)` pairs for the step environment.
    pub fn env(&self) -> Vec<(String, String)> {
        self.values.iter().map(|(k, v)| (env_name(k), v.clone())).collect()
    }
    /// One value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
    /// All values, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Check again, right before a step starts, that no existing component of a path
    /// parameter is a symlink (`O_NOFOLLOW` semantics, one `lstat` per component). Binding
    /// resolved every path to its symlink-free form inside an allowed root; a symlink that
    /// appeared since (someone swapped a directory for a link) is refused here instead of
    /// being followed by the script. See [`resolve_in_roots`] for what remains.
    pub fn recheck_paths(&self) -> Result<(), String> {
        for name in &self.paths {
            if let Some(v) = self.values.get(name) {
                no_symlink_components(Path::new(v))
                    .map_err(|m| format!("parameter `{name}`: {m} (changed since the parameters were bound)"))?;
            }
        }
        Ok(())
    }
}

/// Resolve `p` through the file system: the longest existing prefix is canonicalised
/// (symlinks followed, as the kernel would), the part that does not exist yet is appended
/// as written. Errors other than "does not exist" (no permission, a loop) are refused.
fn resolve_existing_prefix(p: &Path) -> Result<PathBuf, String> {
    let mut existing = p.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(mut out) => {
                for r in rest.iter().rev() {
                    out.push(r);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match existing.file_name() {
                Some(n) => {
                    rest.push(n.to_owned());
                    existing.pop();
                }
                None => return Ok(p.to_path_buf()),
            },
            Err(e) => return Err(format!("cannot resolve {}: {e}", existing.display())),
        }
    }
}

/// `Err` naming the first existing component of `p` that is a symlink.
fn no_symlink_components(p: &Path) -> Result<(), String> {
    let mut prefix = PathBuf::new();
    for c in p.components() {
        prefix.push(c);
        match std::fs::symlink_metadata(&prefix) {
            Ok(m) if m.file_type().is_symlink() => return Err(format!("{} is a symlink", prefix.display())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot check {}: {e}", prefix.display())),
        }
    }
    Ok(())
}

/// Resolve a lexically valid path value (see [`ParamSpec::validate`]) through the file system
/// and check the result against the allowed roots, themselves resolved (on NixOS `/etc/...`
/// roots are often symlinks into the store). The lexical check alone let a symlink inside a
/// root (`/var/tmp/x -> /etc`) reach outside it.
///
/// Time of check and time of use: the value handed to the script is the resolved,
/// symlink-free path, and [`Params::recheck_paths`] repeats the no-symlink check right before
/// every step. What is left is the moment between that check and the script's own `open`,
/// which only someone who can write to a directory on the path can use; the allowed roots
/// name directories only root writes (keys, secrets, certificates, restic caches).
pub fn resolve_in_roots(spec: &ParamSpec, value: &str) -> Result<String, String> {
    let resolved = resolve_existing_prefix(Path::new(value))?;
    let inside = spec.allowed_roots.iter().any(|r| {
        let root = resolve_existing_prefix(r).unwrap_or_else(|_| r.clone());
        resolved.starts_with(&root)
    });
    if !inside {
        let roots: Vec<_> = spec.allowed_roots.iter().map(|r| r.display().to_string()).collect();
        return Err(format!("{value} resolves to {}, outside the allowed roots ({})", resolved.display(), roots.join(", ")));
    }
    // A dangling symlink in the part that does not exist yet could be created later.
    no_symlink_components(&resolved)?;
    resolved.to_str().map(str::to_string).ok_or_else(|| "path is not UTF-8".to_string())
}

/// Why binding failed. Each message names the parameter and where the value came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{name}` ({source_of}): {message}")]
pub struct BindError {
    /// The parameter.
    pub name: String,
    /// `default`, `incident unit`, `incident details.<key>` or `--param`.
    pub source_of: String,
    /// What is wrong with the value.
    pub message: String,
}

/// Bind parameters: defaults, then incident bindings, then manual overrides; validate all.
pub fn bind(
    specs: &BTreeMap<String, ParamSpec>,
    incident: Option<&Incident>,
    overrides: &[(String, String)],
) -> Result<Params, BindError> {
    bind_with_host(specs, None, incident, overrides)
}

/// [`bind`] with the host's settings for this runbook (`runbook_parameters` in the agent's
/// configuration): they replace the runbook's defaults — a host's repository, its renewal
/// unit — and are replaced in turn by incident bindings (the incident names the actual
/// target) and manual overrides. Each value is validated like any other.
pub fn bind_with_host(
    specs: &BTreeMap<String, ParamSpec>,
    host: Option<&BTreeMap<String, String>>,
    incident: Option<&Incident>,
    overrides: &[(String, String)],
) -> Result<Params, BindError> {
    let mut out = BTreeMap::new();
    if let Some(host) = host {
        for (name, raw) in host {
            let err = |message: String| BindError { name: name.clone(), source_of: "runbook_parameters".into(), message };
            let spec = specs.get(name).ok_or_else(|| {
                let known: Vec<_> = specs.keys().map(String::as_str).collect();
                err(format!("this runbook has no such parameter (it has: {})", known.join(", ")))
            })?;
            out.insert(name.clone(), spec.validate(raw).map_err(err)?);
        }
    }
    for (name, spec) in specs {
        if let Some(d) = &spec.default {
            out.entry(name.clone()).or_insert_with(|| d.clone());
        }
        let (Some(inc), Some(src)) = (incident, spec.from_incident.as_deref()) else { continue };
        let (raw, from) = if src == "unit" {
            (inc.unit.clone(), "incident unit".to_string())
        } else {
            let from = format!("incident details.{src}");
            let raw = match inc.details.get(src) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Some(v.to_string()),
                Some(_) => {
                    return Err(BindError { name: name.clone(), source_of: from, message: "is a list or object, not a scalar".into() })
                }
            };
            (raw, from)
        };
        if let Some(raw) = raw {
            let v = spec.validate(&raw).map_err(|message| BindError { name: name.clone(), source_of: from, message })?;
            out.insert(name.clone(), v);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, raw) in overrides {
        let err = |message: String| BindError { name: name.clone(), source_of: "--param".into(), message };
        let spec = specs.get(name).ok_or_else(|| {
            let known: Vec<_> = specs.keys().map(String::as_str).collect();
            err(format!("this runbook has no such parameter (it has: {})", known.join(", ")))
        })?;
        if !seen.insert(name.clone()) {
            return Err(err("given more than once".into()));
        }
        out.insert(name.clone(), spec.validate(raw).map_err(err)?);
    }
    for (name, spec) in specs {
        if spec.required && !out.contains_key(name) {
            return Err(BindError { name: name.clone(), source_of: "binding".into(), message: "is required and has no value".into() });
        }
    }
    // Path values are resolved last, whatever their source (default, host, incident,
    // override): only here does the file system get a say.
    let mut paths = std::collections::BTreeSet::new();
    for (name, v) in out.iter_mut() {
        let Some(spec) = specs.get(name).filter(|s| s.kind == ParamType::Path) else { continue };
        *v = resolve_in_roots(spec, v).map_err(|message| BindError { name: name.clone(), source_of: "path resolution".into(), message })?;
        paths.insert(name.clone());
    }
    Ok(Params { values: out, paths })
}

/// Split `name=value` (the CLI's `--param`).
pub fn parse_override(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("--param {s:?}: expected NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Result<ParamSpec, String> {
        serde_yaml_ng::from_str::<ParamSpec>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn unit_names() {
        for ok in ["nginx.service", "postgresql@16.service", "restic-backups-daily.timer", "srv-data.mount", "a:b_c.service"] {
            validate_unit(ok).unwrap();
        }
        for bad in [
            "nginx.service; rm -rf /",
            "nginx",
            "-H.service",
            "--now.service",
            "nginx.service\n",
            "$(id).service",
            "../x.service",
            "a b.service",
            "",
        ] {
            assert!(validate_unit(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn paths() {
        let s = spec("{type: path, allowed_roots: [/var/lib/restic, /srv/]}").unwrap();
        assert_eq!(s.validate("/var/lib/restic//repo/./x").unwrap(), "/var/lib/restic/repo/x");
        assert_eq!(s.validate("/srv").unwrap(), "/srv");
        for bad in ["../../etc/shadow", "/var/lib/restic/../../etc/shadow", "relative/path", "/var/lib/resticX", "/etc/shadow", "/srv/a\u{7}"] {
            assert!(s.validate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(s.validate(&format!("/srv/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn other_types() {
        let i = spec("{type: integer, min: 1, max: 95, default: 80}").unwrap();
        assert_eq!(i.default.as_deref(), Some("80"));
        assert!(i.validate("96").is_err() && i.validate("x").is_err() && i.validate("0").is_err());
        let b = spec("{type: boolean, default: false}").unwrap();
        assert!(b.validate("yes").is_err());
        let e = spec("{type: enum, values: [a, b]}").unwrap();
        assert!(e.validate("a").is_ok() && e.validate("c").is_err());
        let s = spec("{type: string, pattern: '[0-9]+[dhm]'}").unwrap();
        assert!(s.validate("30d").is_ok());
        assert!(s.validate("30d; rm").is_err(), "pattern is anchored");
        assert!(s.validate("a\tb").is_err(), "control characters refused");
    }

    #[test]
    fn host_settings_replace_defaults_but_not_incident_bindings() {
        let mut specs = BTreeMap::new();
        specs.insert("unit".to_string(), spec("{type: unit, required: true, from_incident: unit}").unwrap());
        specs.insert("renew".to_string(), spec("{type: unit, required: true}").unwrap());
        specs.insert("days".to_string(), spec("{type: integer, default: 14, min: 1, max: 90}").unwrap());
        let incident = Incident {
            incident_id: "INC-20260101-0001".into(),
            event_type: "service_crash".into(),
            severity: crate::incident::Severity::High,
            host: "h".into(),
            detected_at: chrono::Utc::now(),
            source: crate::incident::IncidentSource::Manual,
            unit: Some("portal.service".into()),
            details: BTreeMap::new(),
        };
        let host: BTreeMap<String, String> =
            [("renew", "cert-renew.service"), ("days", "30"), ("unit", "other.service")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let p = bind_with_host(&specs, Some(&host), Some(&incident), &[]).unwrap();
        assert_eq!(p.values["renew"], "cert-renew.service");
        assert_eq!(p.values["days"], "30");
        assert_eq!(p.values["unit"], "portal.service", "the incident names the target");
        // Without the host setting the required parameter has no value.
        assert!(bind(&specs, Some(&incident), &[]).unwrap_err().to_string().contains("renew"));
        // Host values are validated and unknown names refused, naming the source.
        let bad: BTreeMap<String, String> = [("days".to_string(), "400".to_string())].into();
        let e = bind_with_host(&specs, Some(&bad), Some(&incident), &[]).unwrap_err();
        assert_eq!(e.source_of, "runbook_parameters");
        let unknown: BTreeMap<String, String> = [("dayz".to_string(), "4".to_string())].into();
        let e = bind_with_host(&specs, Some(&unknown), None, &[]).unwrap_err();
        assert!(e.to_string().contains("no such parameter"), "{e}");
    }

    #[test]
    fn bad_specs() {
        assert!(spec("{type: path}").unwrap_err().contains("needs a non-empty `allowed_roots`"));
        assert!(spec("{type: string, values: [a]}").unwrap_err().contains("`values` is only allowed for type enum"));
        assert!(spec("{type: integer, min: 5, max: 1}").unwrap_err().contains("min 5 is greater than max 1"));
        assert!(spec("{type: unit, default: 'x; y'}").unwrap_err().contains("default \"x; y\""));
        assert!(spec("{type: string, pattern: '('}").unwrap_err().contains("invalid `pattern`"));
        assert!(spec("{type: path, allowed_roots: [relative]}").unwrap_err().contains("not an absolute path"));
        assert!(spec("{type: float}").unwrap_err().contains("unknown variant `float`"));
        assert!(spec("{type: string, colour: red}").unwrap_err().contains("unknown field `colour`"));
    }

    #[test]
    fn names() {
        assert!(valid_param_name("repo_path2"));
        for bad in ["Repo", "2x", "a-b", "", "a b"] {
            assert!(!valid_param_name(bad), "{bad:?}");
        }
        assert_eq!(env_name("repo_path"), "MSP_PARAM_REPO_PATH");
    }
}
