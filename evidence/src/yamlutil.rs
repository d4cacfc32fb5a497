//! Strict reading of the agent's text files (YAML and CSV) with errors a person can act on:
//! `FILE:LINE: key.path: message`.
//!
//! Every YAML file the agent reads (config, runbooks, baseline, exceptions) passes through the
//! same front-end before anything builds a tree from it:
//! 1. [`decode`]: the bytes must be UTF-8 without a byte-order mark and without NUL bytes
//!    (a NUL used to end the text silently for the event parser, so an exception after it
//!    vanished). The error names the line and column.
//! 2. [`scan`]: one pass over `yaml-rust2`'s event stream, which never builds a tree: nesting
//!    deeper than [`MAX_DEPTH`] stops the pass at once (deep nesting made the tree builders
//!    take 40 s for 200 KB and overflowed the stack), a key repeated in one mapping at any
//!    depth is an error naming both lines (serde's maps keep the last value silently), and the
//!    line of every key path is recorded ([`KeyLines`]) so semantic errors found later point
//!    at the right line even when a key name repeats in different sections.
//!
//! Only then does serde_yaml_ng deserialize (config, runbooks), or the baseline's own tree
//! builder run (`baseline::yaml`, which applies the same depth bound).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// Deepest nesting of mappings and sequences any agent file may use. The deepest real file
/// (a runbook step's `evidence_capture`) uses 4; 64 leaves room and keeps every recursive
/// consumer (serde, the baseline tree) far from the stack limit.
pub const MAX_DEPTH: usize = 64;

/// Largest text file (config, runbook, baseline, exceptions, controls map) the agent reads:
/// the real ones are a few KiB; this bounds the memory a hostile or corrupt file can take.
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// A problem in a text file at a (1-based) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for YamlError {}

/// The bytes of a YAML file as UTF-8 text: no byte-order mark, no NUL byte, valid UTF-8.
/// The error names the line (and column) of the first offending byte.
pub fn decode(bytes: &[u8]) -> Result<&str, YamlError> {
    reject_bom(bytes)?;
    decode_text(bytes)
}

/// A byte-order mark at the start is an error in YAML files: the parsers read it as part of
/// the first key and reported something misleading about that key.
fn reject_bom(bytes: &[u8]) -> Result<(), YamlError> {
    let bom = |name: &str| YamlError {
        line: 1,
        message: format!("the file starts with a {name} byte-order mark: save it as UTF-8 without a BOM"),
    };
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(bom("UTF-8"));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(bom("UTF-16"));
    }
    Ok(())
}

/// Any text file (YAML or CSV): valid UTF-8 without NUL bytes. A UTF-8 byte-order mark is
/// left for the format's reader to judge (the controls map accepts one: spreadsheets write
/// it; the YAML readers refuse it).
pub fn decode_text(bytes: &[u8]) -> Result<&str, YamlError> {
    if let Some(at) = memchr::memchr(0, bytes) {
        let (l, c) = line_col(bytes, at);
        return Err(YamlError { line: l, message: format!("NUL byte at column {c}: not allowed in a text file") });
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let (l, c) = line_col(bytes, at);
        YamlError { line: l, message: format!("not valid UTF-8 (byte 0x{:02x} at column {c})", bytes[at]) }
    })
}

fn line_col(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at];
    let line = 1 + memchr::memchr_iter(b'\n', before).count();
    let start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    (line, 1 + at - start)
}

/// Read `path` and [`decode_text`] it; errors are `FILE:LINE: message` (or
/// `reading FILE: ...`).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = crate::fsutil::read_config_file(path, MAX_TEXT_BYTES)?;
    let text = decode_text(&bytes).map_err(|e| anyhow!("{}:{}: {}", path.display(), e.line, e.message))?;
    Ok(text.to_string())
}

/// The line of every key path in a YAML document, from [`scan`]. Paths are written as in
/// error messages: `probes.interval_seconds`, `steps[1].id`.
#[derive(Debug, Clone, Default)]
pub struct KeyLines {
    lines: HashMap<String, usize>,
}

impl KeyLines {
    /// The line of the key at `path`, if the document has it.
    pub fn line(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    /// `FILE:LINE` for the key at `path`, or `FILE` when the document does not have it (a
    /// default value is wrong, say).
    pub fn at(&self, file: &Path, path: &str) -> String {
        match self.line(path) {
            Some(l) => format!("{}:{l}", file.display()),
            None => file.display().to_string(),
        }
    }
}

enum Frame {
    Seq { path: String, next: usize },
    Map { path: String, keys: HashMap<String, usize>, pending: Option<String> },
}

impl Frame {
    fn child_path(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    }
}

fn at(mark: Marker, message: String) -> YamlError {
    YamlError { line: mark.line(), message }
}

/// One streaming pass over the YAML event stream of `text` (see the module doc): syntax
/// errors, nesting deeper than [`MAX_DEPTH`], non-scalar keys, and a key repeated in one
/// mapping are errors; the result is the line of every key path. Nothing is built but the
/// key index, so a hostile file costs time linear in its size.
pub fn scan(text: &str) -> Result<KeyLines, YamlError> {
    decode(text.as_bytes())?;
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut out = KeyLines::default();
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| YamlError { line: e.marker().line(), message: e.info().to_string() })?;
        let opens = matches!(event, Event::SequenceStart(..) | Event::MappingStart(..));
        let is_node = opens || matches!(event, Event::Scalar(..) | Event::Alias(_));
        if is_node {
            // Where this node sits: a key of the mapping on top, a value, or a list item.
            let mut node_path = String::new();
            match stack.last_mut() {
                None => {}
                Some(Frame::Seq { path, next }) => {
                    node_path = format!("{path}[{next}]");
                    *next += 1;
                }
                Some(Frame::Map { path, keys, pending }) => match pending.take() {
                    Some(key) => node_path = Frame::child_path(path, &key),
                    None => {
                        let Event::Scalar(key, ..) = &event else {
                            return Err(at(mark, "mapping keys must be plain scalars (text)".into()));
                        };
                        if let Some(first) = keys.get(key) {
                            return Err(at(
                                mark,
                                format!(
                                    "{}: duplicate key (first on line {first}, again on line {})",
                                    Frame::child_path(path, key),
                                    mark.line()
                                ),
                            ));
                        }
                        keys.insert(key.clone(), mark.line());
                        let full = Frame::child_path(path, key);
                        out.lines.entry(full).or_insert(mark.line());
                        *pending = Some(key.clone());
                        continue;
                    }
                },
            }
            if opens {
                if stack.len() >= MAX_DEPTH {
                    return Err(at(mark, format!("nested deeper than {MAX_DEPTH} levels")));
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Seq { path: node_path, next: 0 },
                    _ => Frame::Map { path: node_path, keys: HashMap::new(), pending: None },
                });
            }
            continue;
        }
        match event {
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Deserialize `text` (the contents of `path`) into `T` after [`scan`], with a located error.
/// Returns the key lines too, for semantic checks.
pub fn from_str_with_lines<T: DeserializeOwned>(path: &Path, text: &str) -> Result<(T, KeyLines)> {
    let lines = scan(text).map_err(|e| anyhow!("{}:{}: {}", path.display(), e.line, e.message))?;
    let value = serde_yaml_ng::from_str(text).map_err(|e| anyhow!(located(path, &e)))?;
    Ok((value, lines))
}

/// Deserialize `text` (the contents of `path`) into `T` after [`scan`], with a located error.
pub fn from_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    from_str_with_lines(path, text).map(|(v, _)| v)
}

/// `FILE:LINE: message` for a serde_yaml_ng error (line omitted when the error has none).
pub fn located(path: &Path, err: &serde_yaml_ng::Error) -> String {
    let msg = err.to_string();
    match err.location() {
        Some(loc) => {
            // The message ends with " at line L column C"; the location now leads instead.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let msg = msg.strip_suffix(&suffix).unwrap_or(&msg);
            format!("{}:{}: {}", path.display(), loc.line(), msg)
        }
        None => format!("{}: {}", path.display(), msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_names_line_and_column() {
        assert_eq!(decode(b"a: 1\n").unwrap(), "a: 1\n");
        assert_eq!(decode(b"a: 1\nb: x\0y\n").unwrap_err().to_string(), "line 2: NUL byte at column 5: not allowed in a text file");
        assert_eq!(decode(b"a: 1\n\nc: \xff\n").unwrap_err().to_string(), "line 3: not valid UTF-8 (byte 0xff at column 4)");
        assert!(decode(b"\xEF\xBB\xBFa: 1\n").unwrap_err().message.contains("byte-order mark"));
    }

    #[test]
    fn scan_records_paths_and_rejects_duplicates_with_both_lines() {
        let k = scan("a:\n  x: 1\nb:\n  x: 2\n  l:\n    - id: s\n    - id: t\n").unwrap();
        assert_eq!(k.line("a.x"), Some(2));
        assert_eq!(k.line("b.x"), Some(4));
        assert_eq!(k.line("b.l[1].id"), Some(7));
        let e = scan("a:\n  b:\n    c: 1\n    d: 2\n    c: 3\n").unwrap_err();
        assert_eq!(e.to_string(), "line 5: a.b.c: duplicate key (first on line 3, again on line 5)");
        assert!(scan("a: {x: 1, \"x\": 2}\n").unwrap_err().message.contains("duplicate key"));
        assert!(scan("? [a]\n: 1\n").unwrap_err().message.contains("plain scalars"));
    }

    #[test]
    fn scan_bounds_depth_before_building_anything() {
        let t = std::time::Instant::now();
        // Flow nesting: yaml-rust2's scanner stops at 255 levels itself.
        assert!(scan(&"[".repeat(100_000)).is_err());
        let block: String = (0..2000).map(|i| format!("{}- \n", "  ".repeat(i))).collect();
        let e = scan(&block).unwrap_err();
        assert!(e.message.contains("nested deeper than 64"), "{e}");
        let e = scan(&"- ".repeat(100_000)).unwrap_err();
        assert!(e.message.contains("nested deeper than 64"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        scan(&ok).unwrap();
    }
}
