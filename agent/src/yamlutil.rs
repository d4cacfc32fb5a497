//! Strict YAML parsing with errors a person can act on: `FILE:LINE: key.path: message`.
//!
//! serde_yaml_ng already reports the line and the key path of a type error or unknown field;
//! this module moves them to the front in the conventional compiler-style form. Errors found
//! after parsing (semantic checks) use [`key_location`] to point at the line of a key.

use std::path::Path;

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;

/// Deserialize `text` (the contents of `path`) into `T`, with a located error.
pub fn from_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_yaml_ng::from_str(text).map_err(|e| anyhow!(located(path, &e)))
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

/// `FILE:LINE` of the first line that defines `key` (as `key:` after indentation or `- `),
/// or just `FILE` when it cannot be found. Good enough for pointing a reader at a key; not a
/// YAML parser.
pub fn key_location(path: &Path, text: &str, key: &str) -> String {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t).trim_start();
        let after_key = t
            .strip_prefix('"')
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix('"'))
            .or_else(|| t.strip_prefix(key));
        if after_key.is_some_and(|rest| rest.starts_with(':')) {
            return format!("{}:{}", path.display(), i + 1);
        }
    }
    path.display().to_string()
}
