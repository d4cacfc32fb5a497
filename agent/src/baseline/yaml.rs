//! A small YAML document tree that remembers the line of every node and every mapping key.
//!
//! `serde_yaml_ng` reports a line only for syntax and type errors; the baseline checks also need
//! the line of a field that is well-formed but wrong (an expired date, an unknown rule key), so
//! the baseline files are read into this tree with `yaml-rust2`'s event parser instead. The tree
//! is deliberately strict: duplicate keys, anchors/aliases, tags, non-string keys and floats are
//! errors, because a compliance baseline must mean exactly one thing.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One YAML node and the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line of the node's first character.
    pub line: usize,
    /// What the node holds.
    pub kind: Kind,
}

/// The node kinds the baseline files use.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false` (plain, any case YAML 1.2 allows).
    Bool(bool),
    /// A plain integer.
    Int(i64),
    /// Any other scalar (quoted scalars are always strings).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping in file order; each entry is (key, line of the key, value).
    Map(Vec<Entry>),
}

/// One mapping entry: key, the line the key is on, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key (always a string).
    pub key: String,
    /// 1-based line of the key.
    pub line: usize,
    /// The value.
    pub value: Node,
}

/// A YAML syntax or structure error at a line (the shared front-end's error type).
pub use crate::yamlutil::YamlError;

impl Kind {
    /// A short name of the kind for error messages ("a string", "a list", ...).
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// Parse one YAML document. An empty document is a `Null` node on line 1.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    // The shared front-end's text rules (no BOM, no NUL: a NUL ended the event stream
    // silently, and everything after it vanished).
    crate::yamlutil::decode(text.as_bytes())?;
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
    };
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError {
            line: e.marker().line(),
            message: e.info().to_string(),
        })?;
        match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart => {
                if builder.root.is_some() {
                    return Err(err(mark, "only one YAML document per file is allowed"));
                }
            }
            Event::Alias(_) => return Err(err(mark, "YAML aliases (*name) are not supported")),
            Event::Scalar(value, style, anchor, tag) => {
                reject_anchor_tag(mark, anchor, tag.is_some())?;
                let kind = resolve_scalar(&value, style, mark)?;
                builder.push(Node {
                    line: mark.line(),
                    kind,
                })?;
            }
            Event::SequenceStart(anchor, tag) => {
                reject_anchor_tag(mark, anchor, tag.is_some())?;
                check_depth(&builder, mark)?;
                builder.stack.push(Open::Seq(mark.line(), Vec::new()));
            }
            Event::MappingStart(anchor, tag) => {
                reject_anchor_tag(mark, anchor, tag.is_some())?;
                check_depth(&builder, mark)?;
                builder.stack.push(Open::Map(mark.line(), Vec::new(), None));
            }
            Event::SequenceEnd => match builder.stack.pop() {
                Some(Open::Seq(line, items)) => builder.push(Node {
                    line,
                    kind: Kind::Seq(items),
                })?,
                _ => return Err(err(mark, "unbalanced sequence end")),
            },
            Event::MappingEnd => match builder.stack.pop() {
                Some(Open::Map(line, entries, None)) => builder.push(Node {
                    line,
                    kind: Kind::Map(entries),
                })?,
                _ => return Err(err(mark, "unbalanced mapping end")),
            },
        }
    }
    Ok(builder.root.unwrap_or(Node {
        line: 1,
        kind: Kind::Null,
    }))
}

fn err(mark: Marker, message: &str) -> YamlError {
    YamlError {
        line: mark.line(),
        message: message.to_string(),
    }
}

/// Stop at [`crate::yamlutil::MAX_DEPTH`] before opening another level: the tree (and every
/// recursive reader of it) stays shallow whatever the file holds.
fn check_depth(builder: &Builder, mark: Marker) -> Result<(), YamlError> {
    if builder.stack.len() >= crate::yamlutil::MAX_DEPTH {
        return Err(err(mark, &format!("nested deeper than {} levels", crate::yamlutil::MAX_DEPTH)));
    }
    Ok(())
}

fn reject_anchor_tag(mark: Marker, anchor: usize, tagged: bool) -> Result<(), YamlError> {
    if anchor != 0 {
        return Err(err(mark, "YAML anchors (&name) are not supported"));
    }
    if tagged {
        return Err(err(mark, "YAML tags (!tag) are not supported"));
    }
    Ok(())
}

/// YAML 1.2 core-schema resolution for plain scalars; quoted scalars are strings.
fn resolve_scalar(value: &str, style: TScalarStyle, mark: Marker) -> Result<Kind, YamlError> {
    if style != TScalarStyle::Plain {
        return Ok(Kind::Str(value.to_string()));
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Kind::Null),
        "true" | "True" | "TRUE" => return Ok(Kind::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Kind::Bool(false)),
        _ => {}
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .map(Kind::Int)
            .map_err(|_| err(mark, &format!("integer {value} is out of range")));
    }
    if value.parse::<f64>().is_ok() && !value.chars().any(|c| c.is_ascii_alphabetic()) {
        return Err(err(
            mark,
            &format!("floating-point number {value} is not supported (quote it if it is text)"),
        ));
    }
    Ok(Kind::Str(value.to_string()))
}

enum Open {
    Seq(usize, Vec<Node>),
    /// line, entries so far, pending key (text, line)
    Map(usize, Vec<Entry>, Option<(String, usize)>),
}

struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
}

impl Builder {
    fn push(&mut self, node: Node) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Open::Seq(_, items)) => {
                items.push(node);
                Ok(())
            }
            Some(Open::Map(_, entries, pending)) => match pending.take() {
                None => {
                    let key = match node.kind {
                        Kind::Str(s) => s,
                        Kind::Int(i) => i.to_string(),
                        Kind::Bool(b) => b.to_string(),
                        _ => {
                            return Err(YamlError {
                                line: node.line,
                                message: "mapping keys must be plain strings".into(),
                            })
                        }
                    };
                    if let Some(first) = entries.iter().find(|e| e.key == key) {
                        return Err(YamlError {
                            line: node.line,
                            message: format!(
                                "duplicate key `{key}` (first on line {}, again on line {})",
                                first.line, node.line
                            ),
                        });
                    }
                    *pending = Some((key, node.line));
                    Ok(())
                }
                Some((key, line)) => {
                    entries.push(Entry {
                        key,
                        line,
                        value: node,
                    });
                    Ok(())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_types_and_strictness() {
        let n = parse("a: 1\nb:\n  - x\n  - \"2\"\nc: true\nd: 2026-01-02\ne:\n").unwrap();
        let Kind::Map(es) = n.kind else { panic!() };
        assert_eq!(es[0].key, "a");
        assert_eq!(es[0].value.kind, Kind::Int(1));
        assert_eq!(es[1].line, 2);
        let Kind::Seq(items) = &es[1].value.kind else {
            panic!()
        };
        assert_eq!(items[1].line, 4);
        assert_eq!(items[1].kind, Kind::Str("2".into()));
        assert_eq!(es[2].value.kind, Kind::Bool(true));
        assert_eq!(es[3].value.kind, Kind::Str("2026-01-02".into()));
        assert_eq!(es[4].value.kind, Kind::Null);
        assert_eq!(
            parse("a: 1\na: 2\n").unwrap_err().to_string(),
            "line 2: duplicate key `a` (first on line 1, again on line 2)"
        );
        assert!(parse("a: &x 1\nb: *x\n")
            .unwrap_err()
            .message
            .contains("anchors"));
        assert!(parse("a: 1.5\n")
            .unwrap_err()
            .message
            .contains("floating-point"));
        assert_eq!(parse("a: [1, 2\n").unwrap_err().line, 2);
    }
}
