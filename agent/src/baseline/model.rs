//! The baseline file (`baseline/hipaa-v1.yaml`): its types and strict loading.
//!
//! Shape (see `baseline/README.md`):
//! ```yaml
//! version: 1.0.0
//! name: hipaa-clinic-server
//! description: ...
//! sections:
//!   ssh:
//!     title: Identity and access - SSH daemon
//!     rules:
//!       password_authentication:
//!         value: false
//!         citation: ["§164.312(d)"]
//!         why: One line.
//!         enforced_by: nixos            # nixos | agent | operator
//!         compare: eq                   # eq | at_most | at_least | includes (default eq)
//!         nixos_option: services.openssh.settings.PasswordAuthentication   # optional
//!         state: { path: /etc/ssh/sshd_config, format: sshd_config, setting: PasswordAuthentication }  # optional
//! ```
//! A rule's key is `<section>.<rule>`.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::fields::{parse_document, Fields};
use super::hipaa;
use super::report::Findings;
use super::yaml::{self, Kind, Node};

/// A rule's expected value. Lists hold scalars only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// true / false
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A list of scalars.
    List(Vec<Value>),
}

impl Value {
    /// Convert a YAML node; `None` plus a reason if it is not a supported value.
    pub fn from_node(node: &Node) -> Result<Value, String> {
        match &node.kind {
            Kind::Bool(b) => Ok(Value::Bool(*b)),
            Kind::Int(i) => Ok(Value::Int(*i)),
            Kind::Str(s) if s.chars().any(char::is_control) => {
                Err("strings must be single lines without control characters".into())
            }
            Kind::Str(s) => Ok(Value::Str(s.clone())),
            Kind::Seq(items) => items
                .iter()
                .map(|n| match &n.kind {
                    Kind::Seq(_) | Kind::Map(_) => {
                        Err("lists may only hold booleans, integers and strings".to_string())
                    }
                    _ => Value::from_node(n),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::List),
            Kind::Null => Err("a value is required (null is not a baseline value)".into()),
            Kind::Map(_) => {
                Err("mappings are not supported as values; split into separate rules".into())
            }
        }
    }

    /// The value's type name, for mismatch messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Str(_) => "string",
            Value::List(_) => "list",
        }
    }
}

impl fmt::Display for Value {
    /// YAML-like flow form, as a user would write it: `false`, `3`, `"VERBOSE"`, `[22, 443]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// Who makes the rule true on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnforcedBy {
    /// The NixOS modules set it, and evaluation fails when a host configuration contradicts it.
    Nixos,
    /// The agent checks it at run time (probes, drift check) and raises an incident.
    Agent,
    /// A process the MSP runs (CA signing policy, patch cadence, reviews); evidenced by records.
    Operator,
}

impl EnforcedBy {
    /// The spelling used in the YAML and in the rendered output.
    pub fn as_str(self) -> &'static str {
        match self {
            EnforcedBy::Nixos => "nixos",
            EnforcedBy::Agent => "agent",
            EnforcedBy::Operator => "operator",
        }
    }
}

/// How the actual setting is compared with the expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Equal.
    Eq,
    /// Actual ≤ expected (integers).
    AtMost,
    /// Actual ≥ expected (integers).
    AtLeast,
    /// Actual list contains every expected element (lists).
    Includes,
}

impl Compare {
    /// The spelling used in the YAML and in the rendered output.
    pub fn as_str(self) -> &'static str {
        match self {
            Compare::Eq => "eq",
            Compare::AtMost => "at_most",
            Compare::AtLeast => "at_least",
            Compare::Includes => "includes",
        }
    }
}

/// File formats the drift manifest knows how to describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Keyword value` lines (sshd_config); booleans are yes/no, lists comma-joined.
    SshdConfig,
    /// systemd `[Section]` + `Key=value` files (journald.conf, coredump.conf).
    SystemdConf,
    /// A `/proc/sys/...` file holding one value.
    Proc,
    /// Audit rules, one rule per line; every expected line must be present.
    AuditRules,
    /// modprobe configuration; every expected module must have a `blacklist <module>` line.
    ModprobeBlacklist,
}

impl Format {
    /// The spelling used in the YAML and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::SshdConfig => "sshd_config",
            Format::SystemdConf => "systemd_conf",
            Format::Proc => "proc",
            Format::AuditRules => "audit_rules",
            Format::ModprobeBlacklist => "modprobe_blacklist",
        }
    }

    fn parse(s: &str) -> Option<Format> {
        [
            Format::SshdConfig,
            Format::SystemdConf,
            Format::Proc,
            Format::AuditRules,
            Format::ModprobeBlacklist,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }

    /// Whether the format is a set of lines (list value) rather than one keyed setting.
    pub fn is_lines(self) -> bool {
        matches!(self, Format::AuditRules | Format::ModprobeBlacklist)
    }
}

/// Where on the host the rule's setting can be observed (for the drift manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRef {
    /// Absolute path of the file.
    pub path: String,
    /// How to read it.
    pub format: Format,
    /// systemd section (`Journal`) for `systemd_conf`.
    pub section: Option<String>,
    /// The keyword / key (`PasswordAuthentication`, `Storage`); none for proc and line formats.
    pub setting: Option<String>,
}

/// One baseline rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `<section>.<rule>`, e.g. `ssh.password_authentication`.
    pub key: String,
    /// Line of the rule's name in the baseline file.
    pub line: usize,
    /// Expected value (exactly the NixOS option's value when `nixos_option` is set).
    pub value: Value,
    /// HIPAA citations (each a Security Rule control id).
    pub citation: Vec<String>,
    /// One line: why the setting exists.
    pub why: String,
    /// Who enforces it.
    pub enforced_by: EnforcedBy,
    /// How to compare.
    pub compare: Compare,
    /// The NixOS option it maps to, as attribute path components.
    pub nixos_option: Option<Vec<String>>,
    /// Where the drift check observes it.
    pub state: Option<StateRef>,
}

/// A section of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Name (first component of rule keys).
    pub name: String,
    /// Human title.
    pub title: String,
}

/// The loaded baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// Semantic version, e.g. `1.0.0`.
    pub version: String,
    /// Short name.
    pub name: String,
    /// One paragraph.
    pub description: String,
    /// SHA-256 (hex) of the file's exact bytes; recorded in evidence provenance.
    pub sha256: String,
    /// Sections in file order.
    pub sections: Vec<Section>,
    /// Rules by key (sorted).
    pub rules: BTreeMap<String, Rule>,
}

/// SHA-256 hex of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `s` is a valid section or rule name: `[a-z][a-z0-9_]*` (a plain Nix identifier).
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Split a NixOS option path: dots separate components, double quotes protect dots inside one
/// (`boot.kernel.sysctl."kernel.kptr_restrict"`).
pub fn parse_option_path(s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                if cur.is_empty() && !was_quoted {
                    return Err(format!("`{s}` has an empty component"));
                }
                parts.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            c if c.is_whitespace() || c.is_control() => {
                return Err(format!("`{s}` contains whitespace"));
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("`{s}` has an unterminated quote"));
    }
    if cur.is_empty() && !was_quoted {
        return Err(format!("`{s}` has an empty component"));
    }
    parts.push(cur);
    Ok(parts)
}

const TOP_FIELDS: &[&str] = &["version", "name", "description", "sections"];
const SECTION_FIELDS: &[&str] = &["title", "rules"];
const RULE_FIELDS: &[&str] = &[
    "value",
    "citation",
    "why",
    "enforced_by",
    "compare",
    "nixos_option",
    "state",
];
const STATE_FIELDS: &[&str] = &["path", "format", "section", "setting"];

/// Load the baseline from its text. Problems go to `out` (with `file` and line); returns the
/// baseline only if there were none.
pub fn load(file: &str, text: &str, out: &mut Findings) -> Option<Baseline> {
    let before = out.errors();
    let root = parse_document(file, text, out)?;
    let mut top = Fields::new(file, "", &root, out)?;
    let version = top.req_str("version", out);
    if let Some(v) = &version {
        let ok = v.split('.').count() == 3
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            out.error(
                file,
                Some(top.line_of("version")),
                "version",
                format!("`{v}` is not a semantic version MAJOR.MINOR.PATCH"),
            );
        }
    }
    let name = top.req_str("name", out);
    let description = top.req_str("description", out);
    let mut sections = Vec::new();
    let mut rules = BTreeMap::new();
    if let Some(node) = top.req("sections", out) {
        if let Some(mut secs) = Fields::new(file, "sections", node, out) {
            for entry in secs.all() {
                if !is_name(&entry.key) {
                    out.error(
                        file,
                        Some(entry.line),
                        &format!("sections.{}", entry.key),
                        "section names must match [a-z][a-z0-9_]*",
                    );
                    continue;
                }
                load_section(file, entry, &mut sections, &mut rules, out);
            }
        }
    }
    top.finish(TOP_FIELDS, out);
    if out.errors() > before {
        return None;
    }
    Some(Baseline {
        version: version?,
        name: name?,
        description: description?,
        sha256: sha256_hex(text.as_bytes()),
        sections,
        rules,
    })
}

fn load_section(
    file: &str,
    entry: &yaml::Entry,
    sections: &mut Vec<Section>,
    rules: &mut BTreeMap<String, Rule>,
    out: &mut Findings,
) {
    let sec_name = &entry.key;
    let Some(mut sec) = Fields::new(file, sec_name, &entry.value, out) else {
        return;
    };
    let title = sec.req_str("title", out);
    if let Some(rnode) = sec.req("rules", out) {
        if let Some(mut rfields) = Fields::new(file, &format!("{sec_name}.rules"), rnode, out) {
            let entries = rfields.all();
            if entries.is_empty() {
                out.error(
                    file,
                    Some(rnode.line),
                    &format!("{sec_name}.rules"),
                    "a section needs at least one rule",
                );
            }
            for r in entries {
                let key = format!("{sec_name}.{}", r.key);
                if !is_name(&r.key) {
                    out.error(
                        file,
                        Some(r.line),
                        &key,
                        "rule names must match [a-z][a-z0-9_]*",
                    );
                    continue;
                }
                if let Some(rule) = load_rule(file, &key, r.line, &r.value, out) {
                    rules.insert(key, rule);
                }
            }
        }
    }
    sec.finish(SECTION_FIELDS, out);
    if let Some(title) = title {
        sections.push(Section {
            name: sec_name.clone(),
            title,
        });
    }
}

fn load_rule(file: &str, key: &str, line: usize, node: &Node, out: &mut Findings) -> Option<Rule> {
    let before = out.errors();
    let mut f = Fields::new(file, key, node, out)?;
    let value = f.req("value", out).and_then(|n| match Value::from_node(n) {
        Ok(v) => Some(v),
        Err(msg) => {
            out.error(file, Some(n.line), &format!("{key}.value"), msg);
            None
        }
    });
    let citation = f.req_str_list("citation", out);
    if let Some(cites) = &citation {
        for c in cites {
            if hipaa::find(c).is_none() {
                out.error(
                    file,
                    Some(f.line_of("citation")),
                    &format!("{key}.citation"),
                    format!("`{c}` is not a standard or implementation specification of §164.308/310/312/316"),
                );
            }
        }
    }
    let why = f.req_str("why", out);
    let enforced_by = f
        .req_str("enforced_by", out)
        .and_then(|s| match s.as_str() {
            "nixos" => Some(EnforcedBy::Nixos),
            "agent" => Some(EnforcedBy::Agent),
            "operator" => Some(EnforcedBy::Operator),
            other => {
                out.error(
                    file,
                    Some(f.line_of("enforced_by")),
                    &format!("{key}.enforced_by"),
                    format!("`{other}` is not one of nixos, agent, operator"),
                );
                None
            }
        });
    let compare = match f.opt_str("compare", out) {
        None => Some(Compare::Eq),
        Some(s) => match s.as_str() {
            "eq" => Some(Compare::Eq),
            "at_most" => Some(Compare::AtMost),
            "at_least" => Some(Compare::AtLeast),
            "includes" => Some(Compare::Includes),
            other => {
                out.error(
                    file,
                    Some(f.line_of("compare")),
                    &format!("{key}.compare"),
                    format!("`{other}` is not one of eq, at_most, at_least, includes"),
                );
                None
            }
        },
    };
    if let (Some(v), Some(c)) = (&value, compare) {
        let fits = match c {
            Compare::Eq => true,
            Compare::AtMost | Compare::AtLeast => matches!(v, Value::Int(_)),
            Compare::Includes => matches!(v, Value::List(_)),
        };
        if !fits {
            out.error(
                file,
                Some(f.line_of("compare")),
                &format!("{key}.compare"),
                format!(
                    "`{}` does not apply to a {} value",
                    c.as_str(),
                    v.type_name()
                ),
            );
        }
    }
    let nixos_option = f
        .opt_str("nixos_option", out)
        .and_then(|s| match parse_option_path(&s) {
            Ok(p) => Some(p),
            Err(msg) => {
                out.error(
                    file,
                    Some(f.line_of("nixos_option")),
                    &format!("{key}.nixos_option"),
                    msg,
                );
                None
            }
        });
    let state = f
        .opt("state")
        .filter(|n| n.kind != Kind::Null)
        .and_then(|n| load_state(file, key, n, value.as_ref(), out));
    f.finish(RULE_FIELDS, out);
    if out.errors() > before {
        return None;
    }
    Some(Rule {
        key: key.to_string(),
        line,
        value: value?,
        citation: citation?,
        why: why?,
        enforced_by: enforced_by?,
        compare: compare?,
        nixos_option,
        state,
    })
}

fn load_state(
    file: &str,
    key: &str,
    node: &Node,
    value: Option<&Value>,
    out: &mut Findings,
) -> Option<StateRef> {
    let prefix = format!("{key}.state");
    let before = out.errors();
    let mut f = Fields::new(file, &prefix, node, out)?;
    let path = f.req_str("path", out);
    if let Some(p) = &path {
        if !p.starts_with('/') {
            out.error(
                file,
                Some(f.line_of("path")),
                &format!("{prefix}.path"),
                format!("`{p}` is not an absolute path"),
            );
        }
    }
    let format = f.req_str("format", out).and_then(|s| {
        Format::parse(&s).or_else(|| {
            out.error(file, Some(f.line_of("format")), &format!("{prefix}.format"), format!("`{s}` is not one of sshd_config, systemd_conf, proc, audit_rules, modprobe_blacklist"));
            None
        })
    });
    let section = f.opt_str("section", out);
    let setting = f.opt_str("setting", out);
    if let Some(fmt) = format {
        let needs_setting = matches!(fmt, Format::SshdConfig | Format::SystemdConf);
        if needs_setting && setting.is_none() {
            out.error(
                file,
                Some(f.line()),
                &format!("{prefix}.setting"),
                format!("format {} needs a setting", fmt.as_str()),
            );
        }
        if !needs_setting && setting.is_some() {
            out.error(
                file,
                Some(f.line_of("setting")),
                &format!("{prefix}.setting"),
                format!("format {} takes no setting", fmt.as_str()),
            );
        }
        if (fmt == Format::SystemdConf) != section.is_some() {
            out.error(
                file,
                Some(f.line()),
                &format!("{prefix}.section"),
                "a section is required for systemd_conf and only for it",
            );
        }
        if fmt.is_lines() && !matches!(value, Some(Value::List(_)) | None) {
            out.error(
                file,
                Some(f.line()),
                &format!("{prefix}.format"),
                format!("format {} needs a list value", fmt.as_str()),
            );
        }
    }
    f.finish(STATE_FIELDS, out);
    if out.errors() > before {
        return None;
    }
    Some(StateRef {
        path: path?,
        format: format?,
        section,
        setting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_paths() {
        assert_eq!(parse_option_path("a.b.C").unwrap(), ["a", "b", "C"]);
        assert_eq!(
            parse_option_path("boot.kernel.sysctl.\"kernel.kptr_restrict\"").unwrap(),
            ["boot", "kernel", "sysctl", "kernel.kptr_restrict"]
        );
        assert!(parse_option_path("a..b").is_err());
        assert!(parse_option_path("a.\"b").is_err());
    }
}
