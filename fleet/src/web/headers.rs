//! Security headers on every response, and the same-origin check for the two POST forms.
//!
//! The pages load nothing but `/static/fleet.css` and run no script, so the policy can be
//! `default-src 'none'`: an injected `<script>` or `<img>` would not run or load even if escaping
//! ever failed. Pages hold client names and states, so nothing is cached or sent as a referrer.

use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       base-uri 'none'; frame-ancestors 'none'";

/// Middleware: adds the security headers; `no-store` on everything but the stylesheet.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    } else {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Whether a state-changing request (login, logout) comes from our own pages.
///
/// The session cookie is `SameSite=Strict`, so a cross-site form never carries it; this check
/// also stops login CSRF (a foreign page logging the browser in with the attacker's token).
/// Browsers send `Origin` on every POST, but as `null` under `Referrer-Policy: no-referrer`
/// (which our pages set), so then `Sec-Fetch-Site` decides. A request with neither header is
/// not from a browser (curl, a script) and has no ambient credentials to abuse: allowed.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let host = get("host");
    match get("origin") {
        Some(origin) if origin != "null" => {
            let Some(host) = host else { return false };
            let rest = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            rest == Some(host)
        }
        origin => match get("sec-fetch-site") {
            Some(site) => site == "same-origin" || site == "none",
            // `Origin: null` without fetch metadata: an opaque origin (sandboxed frame, file:).
            None => origin.is_none(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn origin_rules() {
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:8427"),
            ("origin", "http://127.0.0.1:8427")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8427"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8427"),
            ("origin", "http://127.0.0.1:8427.evil")
        ])));
        assert!(same_origin(&h(&[
            ("host", "a"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "a"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&h(&[("host", "a"), ("origin", "null")])));
        assert!(!same_origin(&h(&[("host", "a"), ("sec-fetch-site", "same-site")])));
        assert!(same_origin(&h(&[("host", "a")])));
    }
}
