//! Plain Nix data (attrsets, lists, strings, ints, bools, null) and its text form. Nothing
//! here can produce a function, an interpolation or a path: every string is escaped.

use std::collections::BTreeMap;

/// A plain Nix value. Attribute sets are sorted by name, like Nix itself sorts them, so the
/// text is deterministic and equals what `nix-instantiate --eval --json` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nix {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A string (escaped on output).
    Str(String),
    /// `[ ... ]`
    List(Vec<Nix>),
    /// `{ name = value; ... }`
    Attrs(BTreeMap<String, Nix>),
}

impl Nix {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Nix {
        Nix::Str(s.into())
    }

    /// An optional string (`null` when absent).
    pub fn opt_str(s: Option<&str>) -> Nix {
        s.map_or(Nix::Null, Nix::str)
    }

    /// A list of strings.
    pub fn strs<S: AsRef<str>>(items: &[S]) -> Nix {
        Nix::List(items.iter().map(|s| Nix::str(s.as_ref())).collect())
    }

    /// An attribute set from pairs.
    pub fn attrs<const N: usize>(pairs: [(&str, Nix); N]) -> Nix {
        Nix::Attrs(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// The Nix text, indented by two spaces per level, ending without a newline.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s
    }

    fn write(&self, s: &mut String, depth: usize) {
        match self {
            Nix::Null => s.push_str("null"),
            Nix::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Nix::Int(i) => s.push_str(&i.to_string()),
            Nix::Str(text) => s.push_str(&quote(text)),
            Nix::List(items) if items.is_empty() => s.push_str("[ ]"),
            Nix::List(items) => {
                s.push_str("[\n");
                for item in items {
                    indent(s, depth + 1);
                    // A list element that is itself a function application would need
                    // parentheses; plain data never is one.
                    item.write(s, depth + 1);
                    s.push('\n');
                }
                indent(s, depth);
                s.push(']');
            }
            Nix::Attrs(map) if map.is_empty() => s.push_str("{ }"),
            Nix::Attrs(map) => {
                s.push_str("{\n");
                for (k, v) in map {
                    indent(s, depth + 1);
                    s.push_str(&attr_name(k));
                    s.push_str(" = ");
                    v.write(s, depth + 1);
                    s.push_str(";\n");
                }
                indent(s, depth);
                s.push('}');
            }
        }
    }

    /// The JSON that `nix-instantiate --eval --strict --json` prints for this value.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Nix::Null => J::Null,
            Nix::Bool(b) => J::Bool(*b),
            Nix::Int(i) => J::from(*i),
            Nix::Str(s) => J::String(s.clone()),
            Nix::List(items) => J::Array(items.iter().map(Nix::to_json).collect()),
            Nix::Attrs(map) => {
                J::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

fn indent(s: &mut String, depth: usize) {
    for _ in 0..depth {
        s.push_str("  ");
    }
}

const KEYWORDS: &[&str] = &[
    "assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with",
];

/// An attribute name: bare when it is a plain identifier, else a quoted string.
pub fn attr_name(name: &str) -> String {
    let mut chars = name.chars();
    let plain = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !KEYWORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        quote(name)
    }
}

/// A double-quoted Nix string literal. Escapes `\`, `"`, `${` (as `\${`), and newline, tab
/// and carriage return; a lone `$` needs no escape.
pub fn quote(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => s.push_str("\\$"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c${x}$y"#), r#""a\"b\\c\${x}$y""#);
        assert_eq!(quote("$${x}"), r#""$\${x}""#);
        assert_eq!(attr_name("ssh"), "ssh");
        assert_eq!(attr_name("ssh.password"), "\"ssh.password\"");
        assert_eq!(attr_name("in"), "\"in\"");
        assert_eq!(
            Nix::attrs([("a", Nix::List(vec![])), ("b", Nix::Int(-1))]).render(),
            "{\n  a = [ ];\n  b = -1;\n}"
        );
    }
}
