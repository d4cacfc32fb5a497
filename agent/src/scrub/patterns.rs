//! The PHI patterns: what each kind catches, what it deliberately leaves alone, and the
//! checks a regex cannot express (Luhn, systemd unit suffixes).
//!
//! Every pattern is ASCII-only (`(?-u)`: `\b`, `\d`, `\s` are ASCII), so the regex engine can
//! run all of them as one lazy DFA over the text; the capture engine only runs over the
//! (rare) matches. The same sources, minus the `(?-u)`/`(?i)` prefixes that `sed -E` lacks,
//! are what the benchmark hands to `sed -E` (see `benches/scrub.rs`).

/// A kind of identifier the filter removes. The name is the placeholder's and the baseline's
/// (`phi.scrub_patterns`) spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A date of birth: a date after a birth context word (`DOB`, `date of birth`, `born`,
    /// `birthdate`, `birthday`) in any common format, or a bare `MM/DD/YYYY` / `DD.MM.YYYY`
    /// date with a 19xx/20xx year. Always on.
    Dob,
    /// Medical record numbers and patient ids after a context word (`MRN`, `medical record
    /// number`, `patient id`): an optional 1-3 letter prefix and 4-12 digits.
    Mrn,
    /// SSN-like numbers: `123-45-6789`, or nine digits after `SSN`.
    Ssn,
    /// E-mail addresses (but not systemd instance units such as `user@1000.service`).
    Email,
    /// Phone numbers: `+` international forms, North-American forms with `.`/`-` or `(555)`,
    /// and any digit group after `phone`/`tel`/`mobile`/`cell`/`fax`.
    Phone,
    /// Long digit runs: 13-19 digits (optionally in groups of four) that pass the Luhn check
    /// (card numbers), and 6-19 digits after `account`/`acct`/`card`/`iban`/`routing`/
    /// `member id`/`policy number`. Always on.
    Digits,
}

/// Every kind, in the order the alternatives are tried at one position (most specific first).
pub const ALL: [Kind; 6] = [Kind::Dob, Kind::Mrn, Kind::Ssn, Kind::Email, Kind::Phone, Kind::Digits];

/// Kinds on whatever the baseline says: the baseline's patterns can add kinds, not remove these.
pub const ALWAYS_ON: [Kind; 2] = [Kind::Dob, Kind::Digits];

impl Kind {
    /// The placeholder's and the baseline's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dob => "dob",
            Kind::Mrn => "mrn",
            Kind::Ssn => "ssn",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Digits => "digits",
        }
    }

    /// Parse a baseline pattern name.
    pub fn from_name(name: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Position in [`ALL`] (index into count arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The regex source (without flags prefix; see [`FLAGS`]).
    pub fn source(self) -> &'static str {
        match self {
            Kind::Dob => DOB,
            Kind::Mrn => MRN,
            Kind::Ssn => SSN,
            Kind::Email => EMAIL,
            Kind::Phone => PHONE,
            Kind::Digits => DIGITS,
        }
    }

    /// Checks a regex cannot express (the `regex` crate has no look-around); `false` leaves
    /// the match `text[start..end]` in the text.
    pub fn accept(self, text: &str, start: usize, end: usize) -> bool {
        let matched = &text[start..end];
        match self {
            Kind::Email => !is_unit_name(matched),
            Kind::Digits => has_context_word(matched) || luhn_ok(matched),
            // `+0000` after a time of day is a UTC offset, not a country code.
            Kind::Phone => !(matched.starts_with('+') && text.as_bytes()[..start].last().is_some_and(u8::is_ascii_digit)),
            _ => true,
        }
    }
}

/// Flags every pattern runs with: ASCII classes and word boundaries, case-insensitive.
pub const FLAGS: &str = "(?-u)(?i)";

/// See [`Kind::Dob`].
const DOB: &str = concat!(
    // A birth context word, then any common date form.
    r"\b(?:dob|d\.o\.b|date[ _-]?of[ _-]?birth|birth[ _-]?date|birthday|born(?:[ \t]+on)?)\.?[ \t]*[:#=]?[ \t]*",
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}",
    r"|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?[ \t]+\d{1,2}(?:st|nd|rd|th)?,?[ \t]+\d{4}",
    r"|\d{1,2}(?:st|nd|rd|th)?[ \t]+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?[ \t]+\d{4})\b",
    // Bare dates in the forms people type and system logs do not use (journald, syslog and
    // RFC 3339 timestamps are YYYY-MM-DD or month names).
    r"|\b(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d{2}\b",
    r"|\b(?:0?[1-9]|[12]\d|3[01])\.(?:0?[1-9]|1[0-2])\.(?:19|20)\d{2}\b",
);

const MRN: &str = r"\b(?:mrn|medical[ _-]?record(?:[ _-]?(?:number|num|no))?|patient[ _-]?(?:id|number|no))[ \t]*[:#=]?[ \t]*(?:[a-z]{1,3}-?)?\d{4,12}\b";

const SSN: &str = r"\b\d{3}-\d{2}-\d{4}\b|\bssn[ \t]*[:#=]?[ \t]*\d{3}[ -]?\d{2}[ -]?\d{4}\b";

const EMAIL: &str = r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b";

const PHONE: &str = concat!(
    r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,3}\b",
    r"|(?:\(\d{3}\)[ .-]?|\b\d{3}[.-])\d{3}[.-]\d{4}\b",
    r"|\b(?:phone|tel|telephone|mobile|cell|fax)[ \t]*[:#=]?[ \t]*\+?\(?\d[\d ().-]{5,18}\d\b",
);

const DIGITS: &str = concat!(
    r"\b\d{13,19}\b|\b\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,7}\b",
    r"|\b(?:acct|account|card|iban|routing|member[ _-]?id|policy[ _-]?(?:no|number))[ \t#:=.-]*(?:no\.?|number|num)?[ \t#:=.-]*\d{6,19}\b",
);

/// `user@1000.service`, `getty@tty1.service`: systemd instance units look like addresses.
fn is_unit_name(s: &str) -> bool {
    const SUFFIXES: [&str; 11] = [
        ".service", ".socket", ".target", ".timer", ".mount", ".automount", ".slice", ".scope", ".path", ".device", ".swap",
    ];
    let lower = s.to_ascii_lowercase();
    SUFFIXES.iter().any(|suf| lower.ends_with(suf))
}

fn has_context_word(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// The Luhn checksum over the digits of `s` (separators ignored).
fn luhn_ok(s: &str) -> bool {
    let mut sum = 0u32;
    let mut n = 0usize;
    for b in s.bytes().rev().filter(u8::is_ascii_digit) {
        let mut d = u32::from(b - b'0');
        if !n.is_multiple_of(2) {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n += 1;
    }
    n >= 13 && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ALL {
            assert_eq!(Kind::from_name(k.as_str()), Some(k));
            assert_eq!(ALL[k.index()], k);
        }
        assert_eq!(Kind::from_name("emails"), None);
    }

    #[test]
    fn luhn() {
        assert!(luhn_ok("4111111111111111"));
        assert!(luhn_ok("4111 1111 1111 1111"));
        assert!(!luhn_ok("4111111111111112"));
        // Too short to be a card number, even when the sum works out.
        assert!(!luhn_ok("18"));
    }

    /// The filter re-checks only the lines that got a placeholder: that is sound because no
    /// pattern can match a newline: no `.`, `\\s`, `\\D`, `\\W` or negated class anywhere.
    #[test]
    fn no_pattern_crosses_a_line() {
        for k in ALL {
            let src = k.source();
            let mut chars = src.chars().peekable();
            let mut in_class = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        let e = chars.next().unwrap();
                        assert!(!"sSDWn".contains(e), "{k:?}: \\{e} can match a newline");
                    }
                    '[' if !in_class => {
                        in_class = true;
                        assert_ne!(chars.peek(), Some(&'^'), "{k:?}: negated class");
                    }
                    ']' if in_class => in_class = false,
                    '.' if !in_class => panic!("{k:?}: unescaped `.`"),
                    _ => {}
                }
            }
        }
        // And behaviourally: identifiers split by a newline are not found as one.
        let f = crate::scrub::PhiFilter::embedded();
        assert_eq!(f.find("MRN\n00481516 ssn\n123456789 phone:\n5551234567").total(), 0);
    }

    #[test]
    fn unit_names() {
        assert!(is_unit_name("user@1000.service"));
        assert!(is_unit_name("getty@tty1.SERVICE"));
        assert!(!is_unit_name("jane@clinic.org"));
    }
}
