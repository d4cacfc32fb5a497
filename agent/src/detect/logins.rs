//! Log-ins: use of the break-glass account, and bursts of failed log-ins from one source.
//!
//! Only lines written by the real programs count ([`super::trust::is_root_program`]):
//! * sshd (`sshd`, or `sshd-session` from OpenSSH 9.8 on, which logs the authentication
//!   results there): "Accepted <method> for <user> from <addr> port <n> ssh2[: <key>]",
//!   "Failed <method> for [invalid user ]<user> from <addr> port <n> ssh2[: <key>]" and
//!   "Invalid user <user> from <addr> port <n>" (OpenSSH auth.c `auth_log`, auth2.c);
//! * systemd-logind: its session-start entry, `MESSAGE_ID=8d45620c1a4348dbb17410da57c60c66`
//!   (SD_MESSAGE_SESSION_START) with `USER_ID=` and `SESSION_ID=`, fields logind sets itself.
//!
//! A `logger -t sshd "Accepted publickey for msp-breakglass …"` or a native entry that sets
//! `MESSAGE_ID`/`USER_ID` itself fails the trust check (`_UID`, `_COMM`, `_EXE` are the
//! sender's, set by journald). The user name in a failed attempt is the attacker's choice,
//! so the source address is parsed from the end of the line and must be an IP address.
//! PAM's own "authentication failure" lines from sshd are not counted: sshd logs its own
//! "Failed password" line for the same attempt.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use super::trust;
use crate::journal::Entry;

/// SD_MESSAGE_SESSION_START: logind's "New session N of user U." entry.
pub const MSG_SESSION_START: &str = "8d45620c1a4348dbb17410da57c60c66";
/// Program names (`_COMM` and the file name of `_EXE`) of OpenSSH's server.
pub const SSHD_PROGRAMS: &[&str] = &["sshd", "sshd-session"];
/// Program name of logind.
pub const LOGIND_PROGRAMS: &[&str] = &["systemd-logind"];

/// How failed log-ins become an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRules {
    /// The break-glass account (the baseline's `access.break_glass_account`); `None`: no
    /// break-glass check.
    pub break_glass_account: Option<String>,
    /// Failures from one source address within `failure_window_secs` that make a burst.
    pub failure_threshold: u32,
    /// The sliding window, and the quiet time after which a source's burst is over.
    pub failure_window_secs: u64,
}

impl Default for LoginRules {
    fn default() -> Self {
        LoginRules { break_glass_account: Some("msp-breakglass".into()), failure_threshold: 5, failure_window_secs: 120 }
    }
}

/// An sshd authentication result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAuth {
    /// Accepted (true) or failed (false).
    pub accepted: bool,
    /// `password`, `publickey`, `keyboard-interactive/pam`, `none`, ...
    pub method: String,
    /// The user name as sshd logged it (the client's choice for a failure).
    pub user: String,
    /// sshd said "invalid user" (no such account).
    pub invalid_user: bool,
    /// Source address.
    pub addr: IpAddr,
    /// Source port.
    pub port: u16,
    /// What follows "ssh2: " (key type and fingerprint), if anything.
    pub key: Option<String>,
}

/// Source address, port, and what follows "ssh2: " (if anything).
type SourceTail = (IpAddr, u16, Option<String>);

/// Parse "<addr> port <n>" and what must follow it: for auth results " ssh2" and an
/// optional ": <key>"; for "Invalid user" nothing.
fn parse_from(rest: &str, with_ssh2: bool) -> Option<SourceTail> {
    let (addr, rest) = rest.split_once(" port ")?;
    let addr: IpAddr = addr.parse().ok()?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let port: u16 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    if !with_ssh2 {
        return tail.is_empty().then_some((addr, port, None));
    }
    let tail = tail.strip_prefix(" ssh2")?;
    match tail {
        "" => Some((addr, port, None)),
        t => t.strip_prefix(": ").map(|k| (addr, port, Some(k.to_string()))),
    }
}

/// The last " from " of `s` after which the rest parses (the user name before it may itself
/// contain " from ").
fn split_from(s: &str, with_ssh2: bool) -> Option<(&str, SourceTail)> {
    let mut end = s.len();
    while let Some(i) = s[..end].rfind(" from ") {
        if let Some(p) = parse_from(&s[i + 6..], with_ssh2) {
            return Some((&s[..i], p));
        }
        end = i;
    }
    None
}

/// Parse sshd's "Accepted/Failed <method> for ..." line.
pub fn parse_auth(msg: &str) -> Option<SshAuth> {
    let (accepted, rest) = if let Some(r) = msg.strip_prefix("Accepted ") {
        (true, r)
    } else {
        (false, msg.strip_prefix("Failed ")?)
    };
    let (method, rest) = rest.split_once(" for ")?;
    if method.is_empty() || method.contains(' ') {
        return None;
    }
    let (who, (addr, port, key)) = split_from(rest, true)?;
    let (invalid_user, user) = match who.strip_prefix("invalid user ") {
        Some(u) => (true, u),
        None => (false, who),
    };
    Some(SshAuth { accepted, method: method.to_string(), user: user.to_string(), invalid_user, addr, port, key })
}

/// Parse sshd's "Invalid user <user> from <addr> port <n>": (user, addr, port).
pub fn parse_invalid_user(msg: &str) -> Option<(String, IpAddr, u16)> {
    let rest = msg.strip_prefix("Invalid user ")?;
    let (user, (addr, port, _)) = split_from(rest, false)?;
    Some((user.to_string(), addr, port))
}

/// A use of the break-glass account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassUse {
    /// The account.
    pub account: String,
    /// `sshd` (an accepted authentication) or `logind` (a session start).
    pub via: &'static str,
    /// sshd: source address and port.
    pub source: Option<(IpAddr, u16)>,
    /// sshd: authentication method.
    pub method: Option<String>,
    /// sshd: key type and fingerprint (public data; never a secret).
    pub key: Option<String>,
    /// logind: the session id.
    pub session_id: Option<String>,
}

/// A burst of failed log-ins from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureBurst {
    /// The source address.
    pub source: IpAddr,
    /// Failures within the window when the threshold was reached.
    pub failures: usize,
    /// First and last failure of the burst so far (realtime µs).
    pub first_usec: u64,
    /// Last failure (realtime µs).
    pub last_usec: u64,
    /// How many different user names were tried (the names are not kept: a user who types
    /// a password into the user name field would put a secret in the evidence).
    pub distinct_users: usize,
    /// Attempts on accounts that do not exist.
    pub invalid_user_attempts: usize,
    /// Whether `root` was tried.
    pub root_targeted: bool,
    /// Whether the break-glass account was tried.
    pub break_glass_targeted: bool,
    /// Methods seen (`password`, `publickey`, ...).
    pub methods: BTreeSet<String>,
}

/// What [`LoginWatch::observe`] found in one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginEvent {
    /// The break-glass account logged in.
    BreakGlass(BreakGlassUse),
    /// A source crossed the failure threshold (once per burst).
    Burst(FailureBurst),
}

#[derive(Debug, Default)]
struct SourceState {
    times: VecDeque<u64>,
    raised: bool,
    last: u64,
    first: u64,
    users: HashSet<u64>,
    invalid: usize,
    root: bool,
    break_glass: bool,
    methods: BTreeSet<String>,
}

/// Bound on tracked sources and connections (a flood of distinct addresses cannot grow
/// memory without limit).
const MAX_TRACKED: usize = 4096;

/// The log-in watch: stateful across entries.
#[derive(Debug)]
pub struct LoginWatch {
    rules: LoginRules,
    sources: HashMap<IpAddr, SourceState>,
    /// Connections whose "Invalid user" line was counted as their first attempt.
    invalid_conns: HashSet<(IpAddr, u16)>,
}

/// Keep an authentication method name (bounded: sshd's names are short and few).
fn add_method(methods: &mut BTreeSet<String>, m: &str) {
    if methods.len() < 8 {
        methods.insert(m.chars().filter(|c| c.is_ascii_graphic()).take(40).collect());
    }
}

fn hash_name(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl LoginWatch {
    /// A watch with `rules`.
    pub fn new(rules: LoginRules) -> LoginWatch {
        LoginWatch { rules, sources: HashMap::new(), invalid_conns: HashSet::new() }
    }

    /// Look at one entry (realtime `t` µs).
    pub fn observe(&mut self, e: &Entry, t: u64) -> Option<LoginEvent> {
        if trust::is_root_program(e, SSHD_PROGRAMS) {
            let msg = e.get_str("MESSAGE")?;
            if let Some(a) = parse_auth(msg) {
                if a.accepted {
                    return self.break_glass_by_sshd(a);
                }
                if a.method == "none" {
                    // A client asking which methods exist, not a guess.
                    return None;
                }
                if a.invalid_user && self.invalid_conns.remove(&(a.addr, a.port)) {
                    // Already counted by its "Invalid user" line; only its method is new.
                    if let Some(s) = self.sources.get_mut(&a.addr) {
                        add_method(&mut s.methods, &a.method);
                    }
                    return None;
                }
                return self.failure(a.addr, &a.user, a.invalid_user, Some(&a.method), t).map(LoginEvent::Burst);
            }
            if let Some((user, addr, port)) = parse_invalid_user(msg) {
                if self.invalid_conns.len() >= MAX_TRACKED {
                    self.invalid_conns.clear();
                }
                self.invalid_conns.insert((addr, port));
                return self.failure(addr, &user, true, None, t).map(LoginEvent::Burst);
            }
            return None;
        }
        if trust::is_root_program(e, LOGIND_PROGRAMS) && e.get("MESSAGE_ID") == Some(MSG_SESSION_START.as_bytes()) {
            let account = self.rules.break_glass_account.as_deref()?;
            if e.get_str("USER_ID") == Some(account) {
                return Some(LoginEvent::BreakGlass(BreakGlassUse {
                    account: account.to_string(),
                    via: "logind",
                    source: None,
                    method: None,
                    key: None,
                    session_id: e.get_str("SESSION_ID").map(str::to_string),
                }));
            }
        }
        None
    }

    fn break_glass_by_sshd(&self, a: SshAuth) -> Option<LoginEvent> {
        let account = self.rules.break_glass_account.as_deref()?;
        (a.user == account).then(|| {
            LoginEvent::BreakGlass(BreakGlassUse {
                account: account.to_string(),
                via: "sshd",
                source: Some((a.addr, a.port)),
                method: Some(a.method),
                key: a.key,
                session_id: None,
            })
        })
    }

    fn failure(&mut self, addr: IpAddr, user: &str, invalid: bool, method: Option<&str>, t: u64) -> Option<FailureBurst> {
        let window = self.rules.failure_window_secs.saturating_mul(1_000_000);
        if self.sources.len() >= MAX_TRACKED && !self.sources.contains_key(&addr) {
            self.sources.retain(|_, s| t.saturating_sub(s.last) <= window);
            if self.sources.len() >= MAX_TRACKED {
                self.sources.clear();
            }
        }
        let s = self.sources.entry(addr).or_default();
        if s.raised && t.saturating_sub(s.last) > window {
            // The burst is over (quiet for a whole window): the next one is a new incident.
            *s = SourceState::default();
        }
        while s.times.front().is_some_and(|&f| t.saturating_sub(f) > window) {
            s.times.pop_front();
        }
        if s.times.is_empty() && !s.raised {
            s.users.clear();
            s.invalid = 0;
            s.root = false;
            s.break_glass = false;
            s.methods.clear();
            s.first = t;
        }
        s.times.push_back(t);
        s.last = t;
        if s.users.len() < 1024 {
            s.users.insert(hash_name(user));
        }
        s.invalid += usize::from(invalid);
        s.root |= user == "root";
        s.break_glass |= self.rules.break_glass_account.as_deref() == Some(user);
        if let Some(m) = method {
            add_method(&mut s.methods, m);
        }
        if s.raised || s.times.len() < self.rules.failure_threshold.max(1) as usize {
            return None;
        }
        s.raised = true;
        Some(FailureBurst {
            source: addr,
            failures: s.times.len(),
            first_usec: *s.times.front().unwrap_or(&t),
            last_usec: t,
            distinct_users: s.users.len(),
            invalid_user_attempts: s.invalid,
            root_targeted: s.root,
            break_glass_targeted: s.break_glass,
            methods: s.methods.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_lines_parse_from_the_end() {
        let a = parse_auth("Accepted publickey for msp-breakglass from 127.0.0.1 port 50022 ssh2: ED25519 SHA256:abc").unwrap();
        assert!(a.accepted && !a.invalid_user);
        assert_eq!((a.user.as_str(), a.port, a.key.as_deref()), ("msp-breakglass", 50022, Some("ED25519 SHA256:abc")));
        let f = parse_auth("Failed password for invalid user x from 6.6.6.6 port 1 ssh2 from 10.0.0.9 port 4711 ssh2").unwrap();
        assert_eq!((f.user.as_str(), f.addr.to_string().as_str(), f.port), ("x from 6.6.6.6 port 1 ssh2", "10.0.0.9", 4711));
        assert!(f.invalid_user && !f.accepted);
        assert_eq!(parse_invalid_user("Invalid user admin from ::1 port 22").unwrap().1.to_string(), "::1");
        assert!(parse_auth("Failed password for root from somewhere port 1 ssh2").is_none());
        assert!(parse_invalid_user("Invalid user a from 1.2.3.4 port 22 [preauth]").is_none());
    }
}
