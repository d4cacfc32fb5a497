//! TLS-minimum check (`encryption.tls_min_version`): each configured local endpoint must
//! refuse every protocol below the minimum. The probe makes real handshakes with
//! `openssl s_client`, forcing one old protocol at a time (`-tls1`, `-tls1_1`, ...) at
//! security level 0 so that the client side never refuses first: an endpoint that completes
//! such a handshake accepts an outdated protocol.
//!
//! Why `openssl s_client` and not a Rust TLS stack: rustls (already a dependency through
//! reqwest) implements TLS 1.2 and 1.3 only and cannot offer 1.0 or 1.1 at all, and linking
//! OpenSSL into the agent for one probe would add a C dependency the rest of the agent avoids.
//! The endpoint (validated `host:port`) and server name reach `openssl` as argv elements,
//! never through a shell.
//!
//! An endpoint that refuses the old protocols must still complete a normal handshake (at the
//! minimum or newer); otherwise the probe cannot tell "refuses old TLS" from "down", and says
//! it could not check.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

/// One endpoint's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every protocol below the minimum was refused, and a modern handshake succeeded with
    /// the named protocol.
    Refuses { modern: String },
    /// These old protocols completed a handshake.
    Accepts(Vec<String>),
}

/// `host:port` with a host of letters, digits, dots, dashes or colons in brackets (IPv6);
/// the only form passed to `openssl`.
pub fn valid_endpoint(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else { return false };
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host.len() <= 253
            && !host.starts_with('-')
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    port_ok && host_ok
}

/// `openssl s_client` flag and name of each protocol below `min` (major, minor).
fn old_protocols(min: (u8, u8)) -> Vec<(&'static str, &'static str)> {
    [((1, 0), "-tls1", "TLSv1"), ((1, 1), "-tls1_1", "TLSv1.1"), ((1, 2), "-tls1_2", "TLSv1.2")]
        .into_iter()
        .filter(|(v, _, _)| *v < min)
        .map(|(_, flag, name)| (flag, name))
        .collect()
}

/// One handshake; `Some(protocol)` when it completed.
fn handshake(endpoint: &str, server_name: Option<&str>, flag: Option<&str>, timeout: Duration) -> Result<Option<String>> {
    let mut cmd = Command::new("openssl");
    // -brief: "Protocol version: X" on stderr as soon as the handshake completes. Without it
    // the protocol is only in the SSL-Session block, which for TLS 1.3 s_client prints only
    // if the server's session ticket arrives before stdin's EOF ends the connection (a race
    // that a loaded machine loses).
    cmd.arg("s_client").arg("-brief").arg("-connect").arg(endpoint);
    if let Some(n) = server_name {
        cmd.arg("-servername").arg(n);
    }
    if let Some(f) = flag {
        // Level 0: the client must not be the side that refuses an old protocol.
        cmd.arg(f).arg("-cipher").arg("DEFAULT@SECLEVEL=0");
    }
    let out = super::run_bounded(&mut cmd, timeout)?;
    if !out.status.success() {
        return Ok(None);
    }
    // "Protocol version: TLSv1.1" (-brief, stderr), or "    Protocol  : TLSv1.1" in the
    // SSL-Session block (stdout).
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    Ok(text.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("Protocol version")
            .or_else(|| l.strip_prefix("Protocol"))
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix(':'))
            .map(|p| p.trim().to_string())
            .filter(|p| p.starts_with("TLSv"))
    }))
}

/// Probe `endpoint`.
pub fn probe(endpoint: &str, server_name: Option<&str>, min: (u8, u8), timeout: Duration) -> Result<Verdict> {
    if !valid_endpoint(endpoint) {
        bail!("TLS endpoint {endpoint:?} is not host:port");
    }
    let mut accepted = Vec::new();
    for (flag, name) in old_protocols(min) {
        if let Some(p) = handshake(endpoint, server_name, Some(flag), timeout)? {
            if p == name {
                accepted.push(name.to_string());
            }
        }
    }
    if !accepted.is_empty() {
        return Ok(Verdict::Accepts(accepted));
    }
    // One retry: a single-threaded server may still be tearing down the refused attempts.
    let modern = match handshake(endpoint, server_name, None, timeout)? {
        Some(m) => Some(m),
        None => {
            std::thread::sleep(Duration::from_millis(200));
            handshake(endpoint, server_name, None, timeout)?
        }
    };
    match modern {
        Some(modern) => Ok(Verdict::Refuses { modern }),
        None => bail!("{endpoint}: no TLS handshake completed at all (endpoint down or not TLS), so refusing old protocols proves nothing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_validated() {
        for ok in ["127.0.0.1:443", "localhost:8443", "[::1]:443", "portal.clinic-001.example:443"] {
            assert!(valid_endpoint(ok), "{ok}");
        }
        for bad in ["127.0.0.1", ":443", "host:0", "host:99999", "-oProxyCommand=x:1", "a b:1", "h;rm -rf /:1", "[]:1"] {
            assert!(!valid_endpoint(bad), "{bad}");
        }
        assert_eq!(old_protocols((1, 2)), vec![("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")]);
        assert!(old_protocols((1, 0)).is_empty());
    }
}
