//! Making hostile journal bytes safe to keep in an incident: bounded, UTF-8, no control
//! characters, PHI-scrubbed.

/// Characters kept of a message in `details`.
pub const MAX_DETAIL_CHARS: usize = 1024;

/// Lossy UTF-8, control characters (including newlines and ESC) replaced by `?`, cut to
/// `max_chars` characters (with a trailing `…` when cut), then passed through the process-wide
/// PHI filter ([`crate::scrub::scrub`]: the host's baseline patterns once installed).
pub fn clean(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    for (n, c) in text.chars().enumerate() {
        if n == max_chars {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    crate::scrub::scrub(&out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounded_and_control_free() {
        let s = super::clean(b"a\nb\x1b[31m\xff\xfe", 100);
        assert_eq!(s, "a?b?[31m\u{fffd}\u{fffd}");
        assert_eq!(super::clean("é".repeat(10).as_bytes(), 3), "ééé…");
    }

    #[test]
    fn scrubbed_with_typed_placeholders() {
        let s = super::clean(b"portal: chart for MRN 00481516 (jane.doe@example.com)\n", 1024);
        assert_eq!(s, "portal: chart for [mrn×1] ([email×1])?");
    }
}
