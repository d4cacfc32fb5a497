//! A directory with the bucket's layout (`ROOT/PREFIX/CLIENT/HOST/YYYY/MM/FILE`): a mirror of
//! the bucket (`aws s3 sync`), or a test fixture.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use msp_evidence::fsutil;

use super::{ObjectInfo, Source};

/// Reads a mirror directory.
#[derive(Debug, Clone)]
pub struct LocalSource {
    root: PathBuf,
    prefix: String,
}

impl LocalSource {
    /// The mirror at `root`, objects under `root/prefix/`.
    pub fn new(root: &Path, prefix: &str) -> LocalSource {
        LocalSource {
            root: root.to_path_buf(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// Objects under `dir` (key prefix `rel`) whose key sorts after `after`. A directory whose
    /// every key sorts before `after` is not read, and a file before it is not stat'ed, so an
    /// unchanged host costs the directories on the path to its newest object (O(new objects),
    /// like the bucket's `start-after`).
    fn walk(&self, dir: &Path, rel: &str, after: Option<&str>, out: &mut Vec<ObjectInfo>) -> Result<()> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading mirror directory {}", dir.display())),
        };
        for entry in rd {
            let entry = entry.with_context(|| format!("reading mirror directory {}", dir.display()))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Never follow symlinks out of the mirror; temporaries of a running sync are not objects.
            let ft = entry.file_type().with_context(|| format!("{}", entry.path().display()))?;
            let key = format!("{rel}{name}");
            if ft.is_dir() {
                let sub = format!("{key}/");
                // Every key below starts with `sub`: all of them sort before `after` when `sub`
                // does and `after` is not itself below `sub`.
                if after.is_some_and(|a| sub.as_str() < a && !a.starts_with(sub.as_str())) {
                    continue;
                }
                self.walk(&entry.path(), &sub, after, out)?;
            } else if ft.is_file() && !name.starts_with(fsutil::TMP_PREFIX) && after.is_none_or(|a| key.as_str() > a) {
                let md = entry.metadata().with_context(|| format!("{}", entry.path().display()))?;
                let last_modified = md.modified().ok().map(DateTime::<Utc>::from);
                out.push(ObjectInfo {
                    key,
                    size: md.len(),
                    last_modified,
                });
            }
        }
        Ok(())
    }
}

impl Source for LocalSource {
    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn list_after(&self, host_prefix: &str, start_after: Option<&str>) -> Result<Vec<ObjectInfo>> {
        if host_prefix.split('/').any(|s| s == ".." || s == ".") || !host_prefix.ends_with('/') {
            bail!("host prefix {host_prefix:?} is not a directory prefix inside the mirror");
        }
        let mut out = Vec::new();
        self.walk(&self.root.join(host_prefix), host_prefix, start_after, &mut out)?;
        // S3 orders by the key's UTF-8 bytes; so does `str`'s Ord.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        if key.split('/').any(|s| s == ".." || s == "." || s.is_empty()) {
            bail!("object key {key:?} is not a plain path");
        }
        let path = self.root.join(key);
        fsutil::read_regular(&path, fsutil::limits::BUNDLE).with_context(|| format!("reading mirror object {}", path.display()))
    }

    fn describe(&self) -> String {
        format!("mirror {}", self.root.display())
    }
}
