//! Strict reading of one YAML mapping: every field read by name, type-checked, and anything
//! left over reported as an unknown field. Each problem becomes a [`Finding`] with the line of
//! the key (or of the mapping, for a missing field).

use chrono::NaiveDate;

use super::report::Findings;
use super::yaml::{Entry, Kind, Node};

/// Parse a whole YAML document, reporting a syntax error as a finding at its line
/// (`None` then: nothing further can be checked in that file).
pub fn parse_document(file: &str, text: &str, out: &mut Findings) -> Option<Node> {
    match super::yaml::parse(text) {
        Ok(n) => Some(n),
        Err(e) => {
            out.error(file, Some(e.line), "(syntax)", e.message);
            None
        }
    }
}

/// A mapping being read field by field.
pub struct Fields<'a> {
    file: &'a str,
    /// Prefix for field names in messages, e.g. `exceptions[0]` (empty at top level).
    prefix: String,
    line: usize,
    entries: &'a [Entry],
    used: Vec<bool>,
}

impl<'a> Fields<'a> {
    /// Start reading `node` as a mapping. Reports and returns `None` if it is not one.
    pub fn new(file: &'a str, prefix: &str, node: &'a Node, out: &mut Findings) -> Option<Self> {
        match &node.kind {
            Kind::Map(entries) => Some(Fields {
                file,
                prefix: prefix.to_string(),
                line: node.line,
                entries,
                used: vec![false; entries.len()],
            }),
            other => {
                let field = if prefix.is_empty() {
                    "(document)"
                } else {
                    prefix
                };
                out.error(
                    file,
                    Some(node.line),
                    field,
                    format!("expected a mapping, found {}", other.describe()),
                );
                None
            }
        }
    }

    /// The full name of field `name` for messages.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The line of the mapping itself.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The line of field `name` if present, else the mapping's line.
    pub fn line_of(&self, name: &str) -> usize {
        self.entries
            .iter()
            .find(|e| e.key == name)
            .map_or(self.line, |e| e.line)
    }

    /// All entries (for mappings whose keys are data, like `sections`). Marks them all used.
    pub fn all(&mut self) -> &'a [Entry] {
        self.used.iter_mut().for_each(|u| *u = true);
        self.entries
    }

    /// The raw node of an optional field.
    pub fn opt(&mut self, name: &str) -> Option<&'a Node> {
        let i = self.entries.iter().position(|e| e.key == name)?;
        self.used[i] = true;
        Some(&self.entries[i].value)
    }

    /// The raw node of a required field; reports it missing (or null) otherwise.
    pub fn req(&mut self, name: &str, out: &mut Findings) -> Option<&'a Node> {
        match self.opt(name) {
            Some(n) if n.kind != Kind::Null => Some(n),
            Some(n) => {
                out.error(
                    self.file,
                    Some(n.line),
                    &self.path(name),
                    "required field is empty",
                );
                None
            }
            None => {
                out.error(
                    self.file,
                    Some(self.line),
                    &self.path(name),
                    "missing required field",
                );
                None
            }
        }
    }

    /// A required non-empty single-line string.
    pub fn req_str(&mut self, name: &str, out: &mut Findings) -> Option<String> {
        let node = self.req(name, out)?;
        self.as_str(name, node, out)
    }

    /// An optional non-empty single-line string (absent or null is `None`).
    pub fn opt_str(&mut self, name: &str, out: &mut Findings) -> Option<String> {
        let node = self.opt(name)?;
        if node.kind == Kind::Null {
            return None;
        }
        self.as_str(name, node, out)
    }

    fn as_str(&self, name: &str, node: &Node, out: &mut Findings) -> Option<String> {
        match &node.kind {
            Kind::Str(s) if s.trim().is_empty() => {
                out.error(
                    self.file,
                    Some(node.line),
                    &self.path(name),
                    "must not be empty",
                );
                None
            }
            Kind::Str(s) if s.chars().any(char::is_control) => {
                out.error(
                    self.file,
                    Some(node.line),
                    &self.path(name),
                    "must be a single line without control characters",
                );
                None
            }
            Kind::Str(s) => Some(s.clone()),
            other => {
                out.error(
                    self.file,
                    Some(node.line),
                    &self.path(name),
                    format!("expected a string, found {}", other.describe()),
                );
                None
            }
        }
    }

    /// A required boolean.
    pub fn req_bool(&mut self, name: &str, out: &mut Findings) -> Option<bool> {
        let node = self.req(name, out)?;
        match node.kind {
            Kind::Bool(b) => Some(b),
            ref other => {
                out.error(
                    self.file,
                    Some(node.line),
                    &self.path(name),
                    format!("expected true or false, found {}", other.describe()),
                );
                None
            }
        }
    }

    /// A required integer in `min..=max`.
    pub fn req_int(&mut self, name: &str, min: i64, max: i64, out: &mut Findings) -> Option<i64> {
        let node = self.req(name, out)?;
        match node.kind {
            Kind::Int(i) if (min..=max).contains(&i) => Some(i),
            Kind::Int(i) => {
                out.error(
                    self.file,
                    Some(node.line),
                    &self.path(name),
                    format!("{i} is out of range {min}..={max}"),
                );
                None
            }
            ref other => {
                out.error(
                    self.file,
                    Some(node.line),
                    &self.path(name),
                    format!("expected an integer, found {}", other.describe()),
                );
                None
            }
        }
    }

    /// A required calendar date `YYYY-MM-DD`.
    pub fn req_date(&mut self, name: &str, out: &mut Findings) -> Option<NaiveDate> {
        let node = self.req(name, out)?;
        self.as_date(name, node, out)
    }

    /// An optional calendar date `YYYY-MM-DD`.
    pub fn opt_date(&mut self, name: &str, out: &mut Findings) -> Option<NaiveDate> {
        let node = self.opt(name)?;
        if node.kind == Kind::Null {
            return None;
        }
        self.as_date(name, node, out)
    }

    fn as_date(&self, name: &str, node: &Node, out: &mut Findings) -> Option<NaiveDate> {
        let text = match &node.kind {
            Kind::Str(s) => s.as_str(),
            other => {
                out.error(
                    self.file,
                    Some(node.line),
                    &self.path(name),
                    format!("expected a date YYYY-MM-DD, found {}", other.describe()),
                );
                return None;
            }
        };
        match parse_date(text) {
            Some(d) => Some(d),
            None => {
                out.error(
                    self.file,
                    Some(node.line),
                    &self.path(name),
                    format!("`{text}` is not a valid date YYYY-MM-DD"),
                );
                None
            }
        }
    }

    /// A required non-empty list of non-empty single-line strings.
    pub fn req_str_list(&mut self, name: &str, out: &mut Findings) -> Option<Vec<String>> {
        let node = self.req(name, out)?;
        let Kind::Seq(items) = &node.kind else {
            out.error(
                self.file,
                Some(node.line),
                &self.path(name),
                format!("expected a list, found {}", node.kind.describe()),
            );
            return None;
        };
        if items.is_empty() {
            out.error(
                self.file,
                Some(node.line),
                &self.path(name),
                "must list at least one entry",
            );
            return None;
        }
        let mut ok = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            match self.as_str(&format!("{name}[{i}]"), item, out) {
                Some(s) => {
                    if let Some(v) = ok.as_mut() {
                        v.push(s)
                    }
                }
                None => ok = None,
            }
        }
        ok
    }

    /// Report every field that no reader asked for.
    pub fn finish(self, allowed: &[&str], out: &mut Findings) {
        for (e, used) in self.entries.iter().zip(&self.used) {
            if !used {
                out.error(
                    self.file,
                    Some(e.line),
                    &self.path(&e.key),
                    format!("unknown field (allowed: {})", allowed.join(", ")),
                );
            }
        }
    }
}

/// Strict `YYYY-MM-DD` (exactly that shape; chrono alone would accept `2026-1-2`).
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}
