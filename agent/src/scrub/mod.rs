//! The PHI filter: the one place where text that could carry patient data is made safe to
//! store. Step excerpts, artifacts, incident details, escalation text, alert webhooks and the
//! packet's PHI check all go through a [`PhiFilter`].
//!
//! The clinic servers hold no PHI by design, and the shipped runbooks record metadata only
//! (DESIGN 4c): an application's own output is counted and hashed, never copied. The filter
//! is the second line of defence for what still slips through (a unit's status line, an
//! error message quoting a file): each identifier is replaced by a typed placeholder with a
//! count, `[email×2]`, so an auditor sees that something was removed and what kind it was.
//! A regex cannot find a patient's *name*; that is why the first line of defence exists.
//!
//! Placeholders: one placeholder replaces a run of same-kind matches separated only by
//! spaces, tabs, commas, semicolons or slashes (`cc a@x.org, b@y.org` becomes `cc
//! [email×2]`); the count is the number of identifiers that placeholder replaced. The totals
//! per kind over a whole text are returned as [`Redactions`] (artifacts record them).
//!
//! Scrubbing is deliberately greedy: a false positive costs a few characters of evidence, a
//! false negative is a disclosure. What each kind catches and leaves alone is documented on
//! [`Kind`] and pinned by the tests below.

mod patterns;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use regex_automata::{meta, Input};

pub use patterns::{Kind, ALL as ALL_KINDS, ALWAYS_ON};

/// Per-artifact bound, in bytes, after scrubbing. Chosen in ARCHITECTURE.md ("PHI boundary"):
/// the shipped runbooks' artifacts are `systemctl show`/`status` lines, restic summaries and
/// snapshot JSON, a few KiB each; 64 KiB leaves an order of magnitude of room and still keeps
/// an artifact from carrying bulk data.
pub const DEFAULT_ARTIFACT_MAX_BYTES: usize = 64 << 10;
/// Per-bundle bound on the artifacts' total stored bytes (see ARCHITECTURE.md): four full
/// artifacts. Steps past it get their artifacts cut to what is left (down to a marker).
pub const DEFAULT_BUNDLE_ARTIFACTS_MAX_BYTES: usize = 256 << 10;
/// The excerpt bound when no baseline is available at all (the embedded baseline's value).
pub const FALLBACK_EXCERPT_MAX_BYTES: usize = 2048;
/// Baseline rule holding the pattern names.
pub const RULE_PATTERNS: &str = "phi.scrub_patterns";
/// Baseline rule holding the excerpt bound.
pub const RULE_EXCERPT_MAX: &str = "phi.evidence_excerpt_max_bytes";

/// Size limits of what the filter lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// A step's stdout or stderr excerpt (the baseline's `phi.evidence_excerpt_max_bytes`).
    pub excerpt_max_bytes: usize,
    /// One stored artifact, after scrubbing.
    pub artifact_max_bytes: usize,
    /// All artifacts of one bundle together.
    pub bundle_artifacts_max_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            excerpt_max_bytes: FALLBACK_EXCERPT_MAX_BYTES,
            artifact_max_bytes: DEFAULT_ARTIFACT_MAX_BYTES,
            bundle_artifacts_max_bytes: DEFAULT_BUNDLE_ARTIFACTS_MAX_BYTES,
        }
    }
}

/// How many identifiers of each kind were removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redactions([u64; 6]);

impl Redactions {
    /// Count of one kind.
    pub fn get(&self, kind: Kind) -> u64 {
        self.0[kind.index()]
    }

    /// Add `n` of `kind`.
    pub fn add(&mut self, kind: Kind, n: u64) {
        self.0[kind.index()] += n;
    }

    /// Add another tally.
    pub fn merge(&mut self, other: &Redactions) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Total over all kinds.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Non-zero counts by kind name (what a bundle records).
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        ALL_KINDS
            .iter()
            .filter(|k| self.get(**k) > 0)
            .map(|k| (k.as_str().to_string(), self.get(*k)))
            .collect()
    }

    /// `email×2, phone×1` (empty when nothing was found).
    pub fn summary(&self) -> String {
        ALL_KINDS
            .iter()
            .filter(|k| self.get(**k) > 0)
            .map(|k| format!("{}×{}", k.as_str(), self.get(*k)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A scrubbed, bounded artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubbedArtifact {
    /// What to store.
    pub bytes: Vec<u8>,
    /// What was removed.
    pub redactions: Redactions,
    /// Whether the content was cut to the bound (a marker line says so at the end).
    pub truncated: bool,
}

/// The PHI filter: pattern kinds plus bounds, compiled once. Cheap to share (`Arc`).
#[derive(Debug, Clone)]
pub struct PhiFilter {
    /// In canonical order; pattern id `i` of `regex` is `kinds[i]`.
    kinds: Vec<Kind>,
    /// All kinds as one multi-pattern regex: one lazy-DFA pass reports the leftmost match and
    /// which pattern it is (leftmost-first, earlier patterns win at the same start), so no
    /// capture engine runs at all.
    regex: meta::Regex,
    bounds: Bounds,
}

/// Marker appended to a cut artifact (then `<original size> bytes]`).
const CUT_MARK: &str = "\n…[cut by the PHI filter's artifact bound; original ";

impl PhiFilter {
    /// A filter for the given baseline pattern names (plus the always-on kinds) and bounds.
    /// An unknown name is an error naming it and the known ones.
    pub fn new<S: AsRef<str>>(pattern_names: &[S], bounds: Bounds) -> Result<PhiFilter> {
        let mut kinds: Vec<Kind> = ALWAYS_ON.to_vec();
        for name in pattern_names {
            let name = name.as_ref();
            let kind = Kind::from_name(name).with_context(|| {
                let known: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
                format!("unknown PHI scrub pattern `{name}` (known: {})", known.join(", "))
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if bounds.excerpt_max_bytes < 16 || bounds.artifact_max_bytes < 256 {
            bail!(
                "PHI filter bounds too small: excerpt {} bytes (at least 16), artifact {} bytes (at least 256)",
                bounds.excerpt_max_bytes,
                bounds.artifact_max_bytes
            );
        }
        // Try kinds in the canonical order at each position, whatever order the baseline lists.
        kinds.sort();
        let sources: Vec<String> = kinds.iter().map(|k| format!("{}{}", patterns::FLAGS, k.source())).collect();
        let regex = meta::Regex::new_many(&sources).with_context(|| format!("compiling the PHI patterns {kinds:?}"))?;
        Ok(PhiFilter { kinds, regex, bounds })
    }

    /// The filter a loaded baseline asks for: `phi.scrub_patterns` (a list of names) and
    /// `phi.evidence_excerpt_max_bytes`; artifact and bundle bounds are the defaults
    /// (the baseline has no rule for them). Missing or mistyped rules are errors.
    pub fn from_baseline(b: &crate::baseline::model::Baseline) -> Result<PhiFilter> {
        use crate::baseline::model::Value;
        let rule = |key: &str| b.rules.get(key).with_context(|| format!("baseline {} has no rule {key}", b.version));
        let pr = rule(RULE_PATTERNS)?;
        let names: Vec<String> = match &pr.value {
            Value::List(items) => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    other => bail!("baseline rule {RULE_PATTERNS} (line {}): pattern names are strings, not {other}", pr.line),
                })
                .collect::<Result<_>>()?,
            other => bail!("baseline rule {RULE_PATTERNS} (line {}): expected a list of pattern names, got {other}", pr.line),
        };
        let er = rule(RULE_EXCERPT_MAX)?;
        let excerpt = match er.value {
            Value::Int(n) if n > 0 => usize::try_from(n).context("excerpt bound")?,
            ref other => bail!("baseline rule {RULE_EXCERPT_MAX} (line {}): expected a positive integer, got {other}", er.line),
        };
        PhiFilter::new(&names, Bounds { excerpt_max_bytes: excerpt, ..Bounds::default() })
            .with_context(|| format!("baseline rule {RULE_PATTERNS} (line {})", pr.line))
    }

    /// The filter of the baseline compiled into the binary (`baseline/hipaa-v1.yaml`).
    pub fn from_embedded_baseline() -> Result<PhiFilter> {
        let (file, text) = crate::packet::EMBEDDED_BASELINE;
        let mut findings = crate::baseline::report::Findings::default();
        let Some(b) = crate::baseline::model::load(file, text, &mut findings) else {
            bail!("{file} does not load: {findings:?}");
        };
        PhiFilter::from_baseline(&b)
    }

    /// The embedded baseline's filter, built once. Should that ever fail to load (a test pins
    /// that it does not), every kind with the fallback bounds is used: stricter, never looser.
    pub fn embedded() -> Arc<PhiFilter> {
        static EMBEDDED: OnceLock<Arc<PhiFilter>> = OnceLock::new();
        Arc::clone(EMBEDDED.get_or_init(|| {
            let f = PhiFilter::from_embedded_baseline().or_else(|e| {
                tracing::error!("embedded baseline gives no PHI filter ({e:#}); using every pattern");
                let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
                PhiFilter::new(&names, Bounds::default())
            });
            match f {
                Ok(f) => Arc::new(f),
                // Literal patterns and bounds above the minimum: unreachable, pinned by tests.
                #[allow(clippy::panic)]
                Err(e) => panic!("built-in PHI patterns do not compile: {e:#}"),
            }
        }))
    }

    /// The kinds this filter removes, in canonical order.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// Its bounds.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// The same patterns with other bounds.
    pub fn with_bounds(&self, bounds: Bounds) -> Result<PhiFilter> {
        let names: Vec<&str> = self.kinds.iter().map(|k| k.as_str()).collect();
        PhiFilter::new(&names, bounds)
    }

    /// Each accepted match: (start, end, kind), left to right, not overlapping.
    fn matches<'t>(&'t self, text: &'t str) -> impl Iterator<Item = (usize, usize, Kind)> + 't {
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            while pos <= text.len() {
                // The search sees the text before `pos` (look-behind for `\b` stays right).
                let m = self.regex.search(&Input::new(text).range(pos..))?;
                let kind = self.kinds.get(m.pattern().as_usize())?;
                if kind.accept(text, m.start(), m.end()) {
                    pos = m.end().max(m.start() + 1);
                    return Some((m.start(), m.end(), *kind));
                }
                // A rejected `+…` (a UTC offset) may hide a number that starts inside it: look
                // again one character on. Rejected addresses (unit names) and digit runs
                // (Luhn) cannot hide one, and skipping them keeps the scan linear.
                pos = if *kind == Kind::Phone { next_char(text, m.start()) } else { m.end().max(next_char(text, m.start())) };
            }
            None
        })
    }

    /// Count what [`scrub`](Self::scrub) would remove, without copying: the packet's check.
    pub fn find(&self, text: &str) -> Redactions {
        let mut r = Redactions::default();
        for (_, _, k) in self.matches(text) {
            r.add(k, 1);
        }
        r
    }

    /// Replace every identifier by its placeholder. Total (never panics), unbounded; the
    /// result contains nothing [`find`](Self::find) would report.
    pub fn scrub(&self, text: &str) -> String {
        self.scrub_counted(text).0
    }

    /// [`scrub`](Self::scrub) plus what was removed.
    pub fn scrub_counted(&self, text: &str) -> (String, Redactions) {
        let mut total = Redactions::default();
        let (mut out, placed) = self.scrub_once(text, &mut total);
        // Nothing replaced: the pass just proved the text clean.
        if placed.is_empty() {
            return (out, total);
        }
        // A replacement can only create a match through the context of its two neighbours:
        // every pattern ends with a word byte and `\b`, and none contains `[` or `]`, so the
        // only new matches possible are a `+…` right after a placeholder (it followed a digit,
        // a UTC offset; now it follows `]`) or, conservatively, anything touching a word byte
        // before one. No pattern crosses a newline, so those lines are all there is to check.
        if !self.lines_have_matches(&out, &placed) {
            return (out, total);
        }
        // Repeat to a fixed point over the whole text (rare).
        for _ in 0..4 {
            if self.matches(&out).next().is_none() {
                return (out, total);
            }
            out = self.scrub_once(&out, &mut total).0;
        }
        if self.matches(&out).next().is_some() {
            // Not reachable in tests; if it were, dropping the text is the safe answer.
            return ("[unscrubbable text removed]".to_string(), total);
        }
        (out, total)
    }

    /// Whether a line of `out` with a placeholder (at `placed`: start, end) whose neighbours
    /// could form a new match (see [`scrub_counted`](Self::scrub_counted)) still matches.
    fn lines_have_matches(&self, out: &str, placed: &[(usize, usize)]) -> bool {
        let b = out.as_bytes();
        let mut checked_to = 0usize;
        for &(p, e) in placed {
            let word = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
            let risky = b.get(e) == Some(&b'+') || (p > 0 && word(p - 1));
            if p < checked_to || !risky {
                continue;
            }
            let start = out[..p].rfind('\n').map_or(0, |i| i + 1);
            let end = out[p..].find('\n').map_or(out.len(), |i| p + i);
            if self.matches(&out[start..end]).next().is_some() {
                return true;
            }
            checked_to = end;
        }
        false
    }

    /// One replacement pass; also returns where each placeholder is in the output.
    fn scrub_once(&self, text: &str, total: &mut Redactions) -> (String, Vec<(usize, usize)>) {
        let mut out = String::with_capacity(text.len());
        let mut placed = Vec::new();
        let mut last = 0usize;
        // The placeholder being built: (kind, count).
        let mut open: Option<(Kind, u64)> = None;
        for (start, end, kind) in self.matches(text) {
            total.add(kind, 1);
            let gap = &text[last..start];
            match &mut open {
                Some((k, n)) if *k == kind && gap.bytes().all(|b| matches!(b, b' ' | b'\t' | b',' | b';' | b'/')) => {
                    *n += 1;
                }
                _ => {
                    if let Some((k, n)) = open.take() {
                        let at = out.len();
                        push_placeholder(&mut out, k, n);
                        placed.push((at, out.len()));
                    }
                    out.push_str(gap);
                    open = Some((kind, 1));
                }
            }
            last = end;
        }
        if let Some((k, n)) = open {
            let at = out.len();
            push_placeholder(&mut out, k, n);
            placed.push((at, out.len()));
        }
        out.push_str(&text[last..]);
        (out, placed)
    }

    /// [`scrub`](Self::scrub) for raw process output: invalid UTF-8 is replaced (lossy).
    pub fn scrub_bytes(&self, bytes: &[u8]) -> String {
        self.scrub(&String::from_utf8_lossy(bytes))
    }

    /// A scrubbed excerpt of the END of `bytes` (where an error usually is), at most the
    /// excerpt bound, prefixed with `…` when cut.
    ///
    /// When the output is cut, the first partial line of the window is dropped before
    /// scrubbing, so an identifier straddling the cut cannot survive as a fragment.
    pub fn excerpt(&self, bytes: &[u8]) -> String {
        self.excerpt_bounded(bytes, self.bounds.excerpt_max_bytes)
    }

    /// [`excerpt`](Self::excerpt) with an explicit bound (at most the filter's).
    pub fn excerpt_bounded(&self, bytes: &[u8], max_bytes: usize) -> String {
        let max_bytes = max_bytes.min(self.bounds.excerpt_max_bytes);
        if bytes.len() <= max_bytes {
            let s = self.scrub_bytes(bytes);
            if s.len() <= max_bytes {
                return s;
            }
            return self.cut_front(s, max_bytes);
        }
        let mut window = &bytes[bytes.len() - max_bytes..];
        // Drop up to the first newline if there is one early in the window; otherwise up to
        // the first whitespace after a short prefix.
        if let Some(nl) = window.iter().take(max_bytes / 4 + 1).position(|&b| b == b'\n') {
            window = &window[nl + 1..];
        } else {
            let skip = 64.min(window.len());
            let rest = &window[skip..];
            let ws = rest.iter().position(|b| b.is_ascii_whitespace()).map_or(rest.len(), |p| p + 1);
            window = &rest[ws..];
        }
        self.cut_front(self.scrub_bytes(window), max_bytes)
    }

    /// Keep the last `max_bytes` bytes of `s` (char boundary), marked with `…`; a cut that
    /// happens to form a new identifier (a long digit run shortened into range) is scrubbed
    /// again, and the loop ends with something within the bound that `find` is silent on.
    fn cut_front(&self, s: String, max_bytes: usize) -> String {
        const MARK: &str = "…";
        let budget = max_bytes.saturating_sub(MARK.len());
        let mut s = s;
        for _ in 0..4 {
            let mut start = s.len().saturating_sub(budget);
            while start < s.len() && !s.is_char_boundary(start) {
                start += 1;
            }
            let cut = format!("{MARK}{}", &s[start..]);
            if self.matches(&cut).next().is_none() {
                return cut;
            }
            s = self.scrub(&cut);
            if s.len() <= max_bytes {
                return s;
            }
        }
        MARK.to_string()
    }

    /// Scrub every string inside a JSON value (object keys too), in place: incident details.
    pub fn scrub_json(&self, v: &mut serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::String(s) if self.matches(s).next().is_some() => *s = self.scrub(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.scrub_json(i)),
            Value::Object(map) => {
                let taken = std::mem::take(map);
                for (k, mut val) in taken {
                    self.scrub_json(&mut val);
                    map.insert(self.scrub(&k), val);
                }
            }
            _ => {}
        }
    }

    /// A scrubbed one-liner for a person (alert summaries, escalation text): keeps the
    /// START, cut to the excerpt bound with a trailing `…`.
    pub fn summary(&self, text: &str) -> String {
        const MARK: &str = "…";
        let max = self.bounds.excerpt_max_bytes;
        let mut s = self.scrub(text);
        for _ in 0..4 {
            if s.len() <= max {
                return s;
            }
            let mut end = max.saturating_sub(MARK.len());
            while end > 0 && !s.is_char_boundary(end) {
                end -= 1;
            }
            let cut = format!("{}{MARK}", &s[..end]);
            if self.matches(&cut).next().is_none() {
                return cut;
            }
            s = self.scrub(&cut);
        }
        MARK.to_string()
    }

    /// Scrub and bound an artifact to at most `max_bytes` (and the filter's artifact bound).
    /// Artifacts are treated as text (invalid UTF-8 is replaced). A cut keeps the head (where
    /// headers are) at a line boundary and ends with a marker line giving the original size.
    pub fn artifact(&self, bytes: &[u8], max_bytes: usize) -> ScrubbedArtifact {
        self.artifact_head(bytes, bytes.len() as u64, max_bytes)
    }

    /// [`artifact`](Self::artifact) for the first bytes of a file of `original_size` bytes
    /// (the caller read only a head). A partial last line of the head is dropped unscrubbed,
    /// so an identifier cut by the read cannot survive as a fragment.
    pub fn artifact_head(&self, head: &[u8], original_size: u64, max_bytes: usize) -> ScrubbedArtifact {
        let max_bytes = max_bytes.min(self.bounds.artifact_max_bytes);
        let complete = head.len() as u64 >= original_size;
        let head = if complete { head } else { head.iter().rposition(|&b| b == b'\n').map_or(&head[..0], |nl| &head[..=nl]) };
        let (text, redactions) = self.scrub_counted(&String::from_utf8_lossy(head));
        if complete && text.len() <= max_bytes {
            return ScrubbedArtifact { bytes: text.into_bytes(), redactions, truncated: false };
        }
        let mark = format!("{CUT_MARK}{original_size} bytes]\n");
        let budget = max_bytes.saturating_sub(mark.len());
        let mut end = budget.min(text.len());
        while end > 0 && !text.is_char_boundary(end) {
            end -= 1;
        }
        // Whole lines only, so no identifier or placeholder is split.
        let head = &text[..end];
        let head = head.rfind('\n').map_or("", |nl| &head[..=nl]);
        let mut out = head.trim_end_matches('\n').to_string();
        if out.len() + mark.len() > max_bytes {
            out.clear();
        }
        out.push_str(&mark);
        if out.len() > max_bytes {
            // Bound below the marker itself: store nothing rather than overflow.
            out.clear();
        }
        ScrubbedArtifact { bytes: out.into_bytes(), redactions, truncated: true }
    }
}

fn next_char(text: &str, at: usize) -> usize {
    let mut i = at + 1;
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn push_placeholder(out: &mut String, kind: Kind, n: u64) {
    out.push('[');
    out.push_str(kind.as_str());
    out.push('×');
    out.push_str(&n.to_string());
    out.push(']');
}

/// The process-wide filter: the embedded baseline's until [`install`] sets the host's.
fn installed_cell() -> &'static OnceLock<Arc<PhiFilter>> {
    static INSTALLED: OnceLock<Arc<PhiFilter>> = OnceLock::new();
    &INSTALLED
}

/// Set the process-wide filter (the daemon does this once at start from the host's
/// baseline). Returns `false` when one was already installed (the first one stays).
pub fn install(filter: Arc<PhiFilter>) -> bool {
    installed_cell().set(filter).is_ok()
}

/// The process-wide filter ([`install`]ed, else [`PhiFilter::embedded`]).
pub fn installed() -> Arc<PhiFilter> {
    installed_cell().get().cloned().unwrap_or_else(PhiFilter::embedded)
}

/// [`PhiFilter::scrub`] with the process-wide filter: for text built where no filter is at
/// hand (incident details, escalation and alert text).
pub fn scrub(text: &str) -> String {
    installed().scrub(text)
}

#[cfg(test)]
mod tests;
