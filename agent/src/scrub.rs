//! PHI scrubbing for anything that leaves a process into evidence: emails, phone numbers,
//! SSN-like and MRN-like numbers are replaced by `[REDACTED:<kind>]`.
//!
//! The clinic servers hold no PHI by design, but a step's output can still echo something a
//! user typed into a log line, so every excerpt goes through [`scrub`] (or [`excerpt`], which
//! also bounds it) before it reaches a bundle. Scrubbing is deliberately greedy: a false
//! positive costs a few characters of an excerpt, a false negative is a disclosure.

use std::sync::OnceLock;

use regex::Regex;

/// The patterns, in the order they are applied. MRN before the bare-number patterns so that
/// `MRN 123-45-6789`-style strings are labelled by their most specific kind.
fn patterns() -> &'static [(&'static str, Regex)] {
    static PATTERNS: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let src: [(&str, &str); 4] = [
            // Medical record numbers: "MRN 1234567", "MRN: 12345678", "mrn#123456".
            ("mrn", r"(?i)\bMRN[\s:#=-]*\d{6,10}\b"),
            // SSN-like: 123-45-6789.
            ("ssn", r"\b\d{3}-\d{2}-\d{4}\b"),
            ("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
            // North-American style phone numbers with separators: (555) 123-4567,
            // 555-123-4567, 555.123.4567, +1 555 123 4567. Bare 10-digit runs are left alone
            // (they are far more often counters and ids in system output).
            (
                "phone",
                r"(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.\-])\d{3}[\s.\-]\d{4}\b",
            ),
        ];
        src.iter()
            .map(|(kind, re)| {
                // The patterns are literals covered by the unit tests below; a failure here is a
                // programming error, not something input can trigger.
                #[allow(clippy::expect_used)]
                let re = Regex::new(re).expect("scrub pattern compiles");
                (*kind, re)
            })
            .collect()
    })
}

/// Replace PHI-looking substrings. Total: never panics on any input.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for (kind, re) in patterns() {
        if re.is_match(&out) {
            out = re.replace_all(&out, format!("[REDACTED:{kind}]").as_str()).into_owned();
        }
    }
    out
}

/// [`scrub`] for raw process output: invalid UTF-8 is replaced (lossy), then scrubbed.
pub fn scrub_bytes(bytes: &[u8]) -> String {
    scrub(&String::from_utf8_lossy(bytes))
}

/// A bounded, scrubbed excerpt of the END of `bytes` (the end of an output is where the
/// error usually is): at most `max_bytes` bytes of UTF-8, prefixed with `…` when cut.
///
/// When the output is cut, the first partial line of the window is dropped before scrubbing,
/// so a PHI token straddling the cut cannot survive as an unrecognisable fragment.
pub fn excerpt(bytes: &[u8], max_bytes: usize) -> String {
    if bytes.len() <= max_bytes {
        return truncate_front(scrub_bytes(bytes), max_bytes, false);
    }
    let mut window = &bytes[bytes.len() - max_bytes..];
    // Drop up to the first newline if there is one early in the window; otherwise drop up to
    // the first whitespace after a short prefix (a token never spans whitespace except the
    // phone/MRN forms, which are short).
    if let Some(nl) = window.iter().take(max_bytes / 4 + 1).position(|&b| b == b'\n') {
        window = &window[nl + 1..];
    } else {
        let skip = 64.min(window.len());
        let rest = &window[skip..];
        let ws = rest.iter().position(|b| b.is_ascii_whitespace()).map_or(rest.len(), |p| p + 1);
        window = &rest[ws..];
    }
    truncate_front(scrub_bytes(window), max_bytes, true)
}

/// Keep the last `max_bytes` bytes of `s` (on a char boundary), marking a cut with `…`.
fn truncate_front(s: String, max_bytes: usize, already_cut: bool) -> String {
    const MARK: &str = "…";
    let budget = max_bytes.saturating_sub(MARK.len());
    if s.len() <= max_bytes && !already_cut {
        return s;
    }
    let mut start = s.len().saturating_sub(budget);
    while start < s.len() && !s.is_char_boundary(start) {
        start += 1;
    }
    format!("{MARK}{}", &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_each_kind() {
        let s = scrub("mail alice.smith+x@clinic-example.org now");
        assert_eq!(s, "mail [REDACTED:email] now");
        assert_eq!(scrub("ssn 123-45-6789."), "ssn [REDACTED:ssn].");
        assert_eq!(scrub("patient MRN: 00123456 seen"), "patient [REDACTED:mrn] seen");
        assert_eq!(scrub("mrn#1234567"), "[REDACTED:mrn]");
        for p in ["(555) 123-4567", "555-123-4567", "555.123.4567", "+1 555 123 4567"] {
            assert_eq!(scrub(&format!("call {p} today")), "call [REDACTED:phone] today", "{p}");
        }
    }

    #[test]
    fn leaves_system_output_alone() {
        for s in [
            "Filesystem 1K-blocks Used Available Use% Mounted on",
            "/dev/sda1 41152736 30011220 9028084 77% /",
            "pid 1234567890 exited",
            "2026-11-22 15:32:19 nginx.service: Main process exited, code=exited",
            "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert_eq!(scrub(s), s);
        }
    }

    #[test]
    fn total_on_invalid_utf8() {
        let s = scrub_bytes(b"\xff\xfe 123-45-6789 \xc3");
        assert!(s.contains("[REDACTED:ssn]"), "{s}");
        assert!(!s.contains("6789"));
    }

    #[test]
    fn excerpt_is_bounded_scrubbed_and_keeps_the_end() {
        let mut out = Vec::new();
        for i in 0..2000 {
            out.extend_from_slice(format!("line {i} ssn 123-45-6789 bob@example.com\n").as_bytes());
        }
        let e = excerpt(&out, 4096);
        assert!(e.len() <= 4096, "{}", e.len());
        assert!(e.starts_with('…'));
        assert!(e.contains("line 1999 "));
        assert!(!e.contains("6789") && !e.contains("example.com"), "{e}");
        // Short outputs are returned whole.
        assert_eq!(excerpt(b"ok\n", 4096), "ok\n");
    }

    #[test]
    fn excerpt_cut_never_leaves_a_fragment_of_a_token() {
        // One long line: the cut lands inside the SSN; the fragment must not survive.
        let mut out = vec![b'x'; 5000];
        out.extend_from_slice(b" 123-45-6789");
        out.extend(std::iter::repeat_n(b'y', 4090));
        let e = excerpt(&out, 4096);
        assert!(!e.contains("45-6789") && !e.contains("-6789"), "{e}");
    }
}
