//! Who may look: tokens (from `auth.tokens_file`), browser sessions, and the scope each grants.
//!
//! The tokens file holds one `SCOPE SHA256HEX` per line (`operator` or `client:ID`; `#` starts a
//! comment), so the file the server reads never holds a usable secret. A presented token is
//! hashed and compared with every entry in constant time (`subtle`), so neither the position of
//! a match nor the length of a common prefix shows in the response time.
//!
//! A browser trades its token once (`POST /login`) for a random session id (32 bytes from the
//! OS) kept only in memory with a 12 h expiry: a restart logs everyone out, which is the safe
//! direction. The id is stored hashed, so a memory dump of the map holds no live cookie.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::Scope;

/// How long a browser session lasts after login.
pub const SESSION_LIFETIME_HOURS: i64 = 12;

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "msp_fleet_session";

/// The accepted tokens, as SHA-256 digests with the scope each grants.
#[derive(Debug, Clone, Default)]
pub struct TokenStore {
    entries: Vec<(Scope, [u8; 32])>,
}

/// SHA-256 of a token, lower-case hex: what a line of the tokens file holds.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl TokenStore {
    /// A store that accepts nothing (no `auth.tokens_file`): every page but `/healthz` refused.
    pub fn empty() -> TokenStore {
        TokenStore::default()
    }

    /// Reads a tokens file; errors name the file and the line.
    pub fn load(path: &Path) -> Result<TokenStore> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading tokens file {}", path.display()))?;
        TokenStore::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a tokens file; `origin` names it in errors (`FILE:LINE: ...`).
    pub fn parse(text: &str, origin: &str) -> Result<TokenStore> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = match raw.find('#') {
                Some(p) => &raw[..p],
                None => raw,
            }
            .trim();
            if line.is_empty() {
                continue;
            }
            let entry = parse_line(line).with_context(|| format!("{origin}:{lineno}"))?;
            entries.push(entry);
        }
        Ok(TokenStore { entries })
    }

    /// Number of accepted tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The scope `token` grants, if any. Every entry is compared (no early exit), each in
    /// constant time, so timing tells nothing about which entry or how much of it matched.
    pub fn check(&self, token: &str) -> Option<Scope> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<Scope> = None;
        for (scope, want) in &self.entries {
            let eq: bool = digest.ct_eq(want).into();
            if eq && found.is_none() {
                found = Some(scope.clone());
            }
        }
        found
    }
}

fn parse_line(line: &str) -> Result<(Scope, [u8; 32])> {
    let mut parts = line.split_whitespace();
    let (Some(scope), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
        bail!(
            "expected `SCOPE SHA256HEX` (scope `operator` or `client:ID`), got {} fields",
            line.split_whitespace().count()
        );
    };
    let scope = if scope == "operator" {
        Scope::Operator
    } else if let Some(id) = scope.strip_prefix("client:") {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            bail!("client id {id:?}: must be non-empty letters, digits, `-`, `_` or `.`");
        }
        Scope::Client(id.to_string())
    } else {
        bail!("scope {scope:?}: expected `operator` or `client:ID`");
    };
    if hash.len() != 64 {
        bail!(
            "token hash: expected 64 hex digits (SHA-256 of the token), got {} characters",
            hash.len()
        );
    }
    let bytes = hex::decode(hash).context("token hash: not hex")?;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&bytes);
    Ok((scope, digest))
}

/// One logged-in browser.
#[derive(Debug, Clone)]
struct Session {
    scope: Scope,
    expires: DateTime<Utc>,
}

/// Browser sessions, in memory, keyed by the SHA-256 of the session id.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Starts a session for `scope`; returns the id to put in the cookie (64 hex digits).
    pub fn create(&self, scope: Scope, now: DateTime<Utc>) -> Result<String> {
        let mut id = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut id)
            .map_err(|e| anyhow::anyhow!("reading the OS random number generator for a session id: {e}"))?;
        let id = hex::encode(id);
        let mut map = self.lock();
        // Drop expired sessions here, so the map stays bounded by sessions of the last 12 h.
        map.retain(|_, s| s.expires > now);
        map.insert(
            Sha256::digest(id.as_bytes()).into(),
            Session {
                scope,
                expires: now + Duration::hours(SESSION_LIFETIME_HOURS),
            },
        );
        Ok(id)
    }

    /// The scope of a live session.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Scope> {
        let key: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        let mut map = self.lock();
        match map.get(&key) {
            Some(s) if s.expires > now => Some(s.scope.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session (logout).
    pub fn remove(&self, id: &str) {
        let key: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        self.lock().remove(&key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves the map consistent (single inserts/removes).
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The session id in a `Cookie` header, if any.
pub fn session_cookie(cookie_header: &str) -> Option<&str> {
    cookie_header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == SESSION_COOKIE).then_some(v)
    })
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (kind, token) = authorization.trim().split_once(' ')?;
    kind.eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let text = format!(
            "# operators\noperator {}\nclient:clinic-001 {}  # front desk\n\n",
            hash_token("op-secret"),
            hash_token("c1-secret")
        );
        let s = TokenStore::parse(&text, "tokens").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.check("op-secret"), Some(Scope::Operator));
        assert_eq!(s.check("c1-secret"), Some(Scope::Client("clinic-001".into())));
        assert_eq!(s.check("op-secreT"), None);
        assert_eq!(s.check(""), None);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = TokenStore::parse("operator abc\n", "/etc/t").unwrap_err();
        assert!(format!("{e:#}").starts_with("/etc/t:1: token hash"), "{e:#}");
        let e = TokenStore::parse(&format!("# x\nadmin {}\n", hash_token("a")), "/etc/t").unwrap_err();
        assert!(format!("{e:#}").contains("/etc/t:2: scope \"admin\""), "{e:#}");
        let e = TokenStore::parse("client: zz\n", "f").unwrap_err();
        assert!(format!("{e:#}").contains("f:1"), "{e:#}");
        let e = TokenStore::parse(&format!("operator {}\n", "g".repeat(64)), "f").unwrap_err();
        assert!(format!("{e:#}").contains("f:1: token hash: not hex"), "{e:#}");
    }

    #[test]
    fn sessions_expire_and_end() {
        let now = Utc::now();
        let s = Sessions::default();
        let id = s.create(Scope::Operator, now).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(s.get(&id, now + Duration::hours(11)), Some(Scope::Operator));
        assert_eq!(s.get(&id, now + Duration::hours(12)), None);
        let id = s.create(Scope::Operator, now).unwrap();
        s.remove(&id);
        assert_eq!(s.get(&id, now), None);
    }

    #[test]
    fn header_parsing() {
        assert_eq!(session_cookie("a=b; msp_fleet_session=xyz; c=d"), Some("xyz"));
        assert_eq!(session_cookie("msp_fleet_sessionx=1"), None);
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
