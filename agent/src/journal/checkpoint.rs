//! The persisted journal cursor: where the next run resumes.
//!
//! The consumer acknowledges an entry once everything that entry caused is durable (for an
//! entry that produced an incident: its evidence bundle is written; for any other entry: it
//! has been looked at). Every entry read must be acknowledged, including those no rule
//! matched, or a restart replays them (peers' bug: filtered entries never advance the cursor).
//!
//! File format: the cursor text followed by one `\n`. Written with [`crate::fsutil::replace`]
//! (temp file, fsync, rename, fsync dir), so a crash leaves the old or the new cursor, never a
//! torn one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::fsutil;

/// Longest cursor accepted from the file (journald cursors are ~120 bytes).
const MAX_CURSOR: usize = 1024;

/// A cursor file and the last cursor acknowledged.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    /// Last cursor written to disk.
    durable: Option<String>,
    /// Last cursor acknowledged with [`Checkpoint::note`] but not yet written.
    pending: Option<String>,
}

impl Checkpoint {
    /// Open the cursor file at `path`. A missing file means "no previous run" (cursor `None`);
    /// an unreadable or malformed one is an error naming the file (we never silently start
    /// over, which would replay or skip the journal).
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let durable = match std::fs::read(path) {
            Ok(bytes) => Some(parse_cursor_file(&bytes).with_context(|| format!("journal cursor file {}", path.display()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading journal cursor file {}", path.display())),
        };
        Ok(Checkpoint { path: path.to_path_buf(), durable, pending: None })
    }

    /// The cursor to resume after (last acknowledged, durable or not); `None` on a first run.
    pub fn cursor(&self) -> Option<&str> {
        self.pending.as_deref().or(self.durable.as_deref())
    }

    /// The cursor as it is on disk.
    pub fn durable_cursor(&self) -> Option<&str> {
        self.durable.as_deref()
    }

    /// Acknowledge `cursor` and write it durably now. Call after the entry's consequences
    /// (evidence) are durable. Cursors must be acknowledged in stream order.
    pub fn commit(&mut self, cursor: &str) -> Result<()> {
        check_cursor(cursor).context("refusing to store journal cursor")?;
        fsutil::replace(&self.path, format!("{cursor}\n").as_bytes(), 0o600)
            .with_context(|| format!("writing journal cursor file {}", self.path.display()))?;
        self.durable = Some(cursor.to_string());
        self.pending = None;
        Ok(())
    }

    /// Acknowledge `cursor` in memory only (an entry that caused nothing durable); written by
    /// the next [`Checkpoint::flush`] or [`Checkpoint::commit`]. Lets the daemon fsync the
    /// cursor once a second instead of once per entry. Losing a noted cursor in a crash only
    /// replays entries that produced nothing.
    pub fn note(&mut self, cursor: &str) -> Result<()> {
        check_cursor(cursor).context("refusing to store journal cursor")?;
        self.pending = Some(cursor.to_string());
        Ok(())
    }

    /// Write the last noted cursor if it is newer than the one on disk.
    pub fn flush(&mut self) -> Result<()> {
        if let Some(c) = self.pending.take() {
            self.commit(&c)?;
        }
        Ok(())
    }

    /// The cursor file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parse_cursor_file(bytes: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(bytes).context("not UTF-8")?;
    let cursor = text.strip_suffix('\n').unwrap_or(text);
    check_cursor(cursor)?;
    Ok(cursor.to_string())
}

/// A cursor is printable ASCII without spaces (journald: `s=...;i=...;b=...`), bounded.
/// It reaches journalctl only as one argv element, never through a shell.
fn check_cursor(c: &str) -> Result<()> {
    if c.is_empty() {
        bail!("empty cursor");
    }
    if c.len() > MAX_CURSOR {
        bail!("cursor longer than {MAX_CURSOR} bytes");
    }
    if let Some(b) = c.bytes().find(|b| !b.is_ascii_graphic()) {
        bail!("cursor contains byte 0x{b:02x}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_malformed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cursor");
        let mut c = Checkpoint::open(&p).unwrap();
        assert_eq!(c.cursor(), None);
        c.note("s=a;i=1").unwrap();
        assert_eq!(c.durable_cursor(), None);
        c.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "s=a;i=1\n");
        c.commit("s=a;i=2").unwrap();
        assert_eq!(Checkpoint::open(&p).unwrap().cursor(), Some("s=a;i=2"));
        assert!(c.commit("bad cursor").is_err());
        std::fs::write(&p, b"s=a\n;i=\x01\n").unwrap();
        let err = Checkpoint::open(&p).unwrap_err();
        assert!(format!("{err:#}").contains(&p.display().to_string()), "{err:#}");
    }
}
