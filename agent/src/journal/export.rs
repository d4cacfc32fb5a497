//! Parser for the journal export format (`journalctl -o export`,
//! <https://systemd.io/JOURNAL_EXPORT_FORMATS/>).
//!
//! An entry is a run of fields ended by an empty line. A field is either
//! * text: `NAME=value\n` (value has no newline), or
//! * binary: `NAME\n` + little-endian u64 length + that many bytes + `\n`.
//!
//! Values are hostile bytes (any length, invalid UTF-8, newlines). The parser keeps at most
//! [`Limits::max_value_bytes`] of each value and [`Limits::max_fields`] fields per entry,
//! discards the rest without buffering it (a 1 MiB field costs 1 MiB of reading, not of
//! memory), records that something was cut, and never panics.

use std::io::{self, BufRead, Read};

use anyhow::{bail, Context, Result};

/// Bounds on what one entry may keep in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes kept of any one field value; longer values are truncated (see [`Entry::truncated`]).
    pub max_value_bytes: usize,
    /// Fields kept per entry; further fields are dropped.
    pub max_fields: usize,
    /// Bytes (names + values) kept per entry; fields that do not fit are cut or dropped.
    /// Bounds the memory of a full channel: capacity × this.
    pub max_entry_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 4 KiB is more than any systemd/kernel message the rules look at; 256 fields is far
        // above what journald writes for one entry (~30) and bounds a hostile client.
        Limits { max_value_bytes: 4096, max_fields: 256, max_entry_bytes: 64 * 1024 }
    }
}

/// Longest field name accepted (journald itself limits names to 64 bytes).
const MAX_NAME: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Span {
    name_start: u32,
    name_end: u32,
    value_end: u32,
}

/// One journal entry: its fields in stream order, bounded by [`Limits`].
///
/// Stored as one byte buffer plus offsets, so an entry costs two allocations however many
/// fields it has (this is the hot path of ingest).
#[derive(Clone, Default)]
pub struct Entry {
    buf: Vec<u8>,
    spans: Vec<Span>,
    truncated: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in self.fields() {
            m.entry(&k, &String::from_utf8_lossy(v));
        }
        m.finish()
    }
}

impl Entry {
    /// Build an entry from (name, value) pairs (tests and probes; the parser builds its own).
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Entry {
        let mut e = Entry::default();
        for (k, v) in fields {
            e.push(k.as_bytes(), v);
        }
        e
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let name_start = self.buf.len() as u32;
        self.buf.extend_from_slice(name);
        let name_end = self.buf.len() as u32;
        self.buf.extend_from_slice(value);
        self.spans.push(Span { name_start, name_end, value_end: self.buf.len() as u32 });
    }

    /// Add a field within `limits` (value already cut to `max_value_bytes`).
    fn add_bounded(&mut self, name: &[u8], value: &[u8], limits: &Limits) {
        let room = limits.max_entry_bytes.saturating_sub(self.buf.len() + name.len());
        if self.spans.len() >= limits.max_fields || room == 0 && !value.is_empty() {
            self.truncated = true;
            return;
        }
        if value.len() > room {
            self.truncated = true;
        }
        self.push(name, &value[..value.len().min(room)]);
    }

    /// The first value of field `name`, as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let n = name.as_bytes();
        self.spans.iter().find_map(|s| {
            let k = &self.buf[s.name_start as usize..s.name_end as usize];
            (k == n).then(|| &self.buf[s.name_end as usize..s.value_end as usize])
        })
    }

    /// The first value of field `name` if it is valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All fields in stream order (names are ASCII, checked by the parser).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans.iter().map(|s| {
            let k = &self.buf[s.name_start as usize..s.name_end as usize];
            (
                std::str::from_utf8(k).unwrap_or("?"),
                &self.buf[s.name_end as usize..s.value_end as usize],
            )
        })
    }

    /// `__CURSOR`: the entry's position, what [`super::Checkpoint::commit`] takes.
    pub fn cursor(&self) -> Option<&str> {
        self.get_str("__CURSOR")
    }

    /// `__REALTIME_TIMESTAMP` in microseconds since the epoch.
    pub fn realtime_usec(&self) -> Option<u64> {
        self.get_str("__REALTIME_TIMESTAMP").and_then(|s| s.parse().ok())
    }

    /// True when a value was cut to [`Limits::max_value_bytes`] or fields were dropped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Number of fields kept.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the entry has no fields.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Streaming export-format reader over any buffered byte source.
pub struct ExportReader<R> {
    inner: R,
    limits: Limits,
    line: Vec<u8>,
    /// Entries read so far (for error messages: "entry 1234").
    entries: u64,
}

impl<R: BufRead> ExportReader<R> {
    /// Read export format from `inner` keeping what `limits` allow.
    pub fn new(inner: R, limits: Limits) -> Self {
        ExportReader { inner, limits, line: Vec::with_capacity(256), entries: 0 }
    }

    /// The underlying reader (e.g. to ask a `BufReader` whether input is buffered).
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The next entry, `Ok(None)` at a clean end of stream. A stream that ends inside an
    /// entry, a binary field whose length runs past the end, or a field name that is not a
    /// journal field name are errors naming the entry number and the field.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        let mut entry = Entry { buf: Vec::with_capacity(1024), spans: Vec::with_capacity(32), truncated: false };
        loop {
            let (got, cut) = read_line_bounded(&mut self.inner, &mut self.line, self.limits.max_value_bytes + MAX_NAME + 1)
                .with_context(|| format!("reading journal export stream at entry {}", self.entries + 1))?;
            if !got {
                if entry.is_empty() && !entry.truncated {
                    return Ok(None);
                }
                // journalctl always ends an entry with an empty line; a cut-off final entry
                // means the writer died mid-entry.
                bail!("journal export stream ended inside entry {}", self.entries + 1);
            }
            if self.line.is_empty() {
                if entry.is_empty() && !entry.truncated {
                    continue; // tolerate stray blank lines between entries
                }
                self.entries += 1;
                return Ok(Some(entry));
            }
            match memchr_eq(&self.line) {
                Some(eq) => {
                    let name = &self.line[..eq];
                    check_name(name, self.entries + 1)?;
                    let value = &self.line[eq + 1..];
                    let keep = value.len().min(self.limits.max_value_bytes);
                    if cut || keep < value.len() {
                        entry.truncated = true;
                    }
                    entry.add_bounded(name, &value[..keep], &self.limits);
                }
                None => {
                    // Binary field: the line is the name, then u64 LE length, data, '\n'.
                    check_name(&self.line, self.entries + 1)?;
                    let name = std::mem::take(&mut self.line);
                    let field = String::from_utf8_lossy(&name).into_owned();
                    let ctx = || format!("binary field {field} of entry {}", self.entries + 1);
                    let mut len = [0u8; 8];
                    self.inner.read_exact(&mut len).with_context(ctx)?;
                    let len = u64::from_le_bytes(len);
                    let keep = len.min(self.limits.max_value_bytes as u64) as usize;
                    let mut value = vec![0u8; keep];
                    self.inner.read_exact(&mut value).with_context(ctx)?;
                    let rest = len - keep as u64;
                    if rest > 0 {
                        entry.truncated = true;
                        let skipped = io::copy(&mut (&mut self.inner).take(rest), &mut io::sink()).with_context(ctx)?;
                        if skipped != rest {
                            bail!("{}: stream ended {} bytes into a {len}-byte value", ctx(), keep as u64 + skipped);
                        }
                    }
                    let mut nl = [0u8; 1];
                    self.inner.read_exact(&mut nl).with_context(ctx)?;
                    if nl[0] != b'\n' {
                        bail!("{}: value not followed by a newline (corrupt stream)", ctx());
                    }
                    entry.add_bounded(&name, &value, &self.limits);
                    self.line = name;
                }
            }
        }
    }
}

fn memchr_eq(line: &[u8]) -> Option<usize> {
    // Names are at most 64 bytes, so '=' (if any) is within the first 65.
    line.iter().take(MAX_NAME + 1).position(|&b| b == b'=')
}

/// Journal field names: `[A-Z0-9_]`, not empty, at most 64 bytes.
fn check_name(name: &[u8], entry_no: u64) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.iter().all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        let shown: String = String::from_utf8_lossy(&name[..name.len().min(80)])
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        bail!("entry {entry_no}: {shown:?} is not a journal field name (corrupt export stream)");
    }
    Ok(())
}

/// Read one `\n`-terminated line into `out` (without the newline), keeping at most `cap`
/// bytes and discarding the rest of the line. Returns (got a line, line was cut).
fn read_line_bounded<R: BufRead>(r: &mut R, out: &mut Vec<u8>, cap: usize) -> io::Result<(bool, bool)> {
    out.clear();
    let mut cut = false;
    let mut any = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            // EOF: a partial line without newline counts as a line (the caller reports it).
            return Ok((any, cut));
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = cap.saturating_sub(out.len());
        if chunk.len() > room {
            cut = true;
        }
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        match done {
            Some(n) => {
                r.consume(n);
                return Ok((true, cut));
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], limits: Limits) -> Result<Vec<Entry>> {
        let mut r = ExportReader::new(io::Cursor::new(bytes.to_vec()), limits);
        let mut out = vec![];
        while let Some(e) = r.next_entry()? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn text_and_binary_fields() {
        let mut s = b"__CURSOR=s=1;i=1\nMESSAGE=hello=world\n".to_vec();
        s.extend_from_slice(b"BIN\n");
        s.extend_from_slice(&4u64.to_le_bytes());
        s.extend_from_slice(b"a\nb\xff\n\n");
        s.extend_from_slice(b"MESSAGE=second\n\n");
        let es = parse(&s, Limits::default()).unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].get("MESSAGE"), Some(&b"hello=world"[..]));
        assert_eq!(es[0].get("BIN"), Some(&b"a\nb\xff"[..]));
        assert_eq!(es[0].cursor(), Some("s=1;i=1"));
        assert!(!es[0].truncated());
        assert_eq!(es[1].get_str("MESSAGE"), Some("second"));
    }

    #[test]
    fn long_values_are_truncated_not_buffered() {
        let limits = Limits { max_value_bytes: 16, max_fields: 3, max_entry_bytes: 1000 };
        let mut s = format!("MESSAGE={}\n", "x".repeat(100_000)).into_bytes();
        s.extend_from_slice(b"B\n");
        s.extend_from_slice(&(1u64 << 20).to_le_bytes());
        s.extend(std::iter::repeat_n(b'\n', 1 << 20));
        s.extend_from_slice(b"\nA=1\nC=2\nD=3\n\n");
        let es = parse(&s, limits).unwrap();
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].get("MESSAGE").unwrap().len(), 16);
        assert_eq!(es[0].get("B").unwrap().len(), 16);
        assert_eq!(es[0].len(), 3, "field cap");
        assert!(es[0].truncated());
    }

    #[test]
    fn corrupt_streams_are_errors_not_panics() {
        for bad in [
            &b"MESSAGE=x\n"[..],                       // ends inside an entry
            &b"lower=x\n\n"[..],                       // not a field name
            &b"BIN\n\x05\x00\x00\x00\x00\x00\x00\x00ab"[..], // short binary value
            &b"BIN\n\x01\x00\x00\x00\x00\x00\x00\x00ab\n\n"[..], // missing newline after value
            &b"BIN\n\xff\xff\xff\xff\xff\xff\xff\xff"[..], // absurd length
        ] {
            let err = parse(bad, Limits::default()).unwrap_err();
            assert!(format!("{err:#}").contains("entry 1"), "{err:#}");
        }
        assert!(parse(b"", Limits::default()).unwrap().is_empty());
    }
}
