//! The page shell, the stylesheet, link builders and the state badges shared by every page.
//!
//! A state is always shown as a word *and* a colour (and a symbol), so it reads the same to a
//! colour-blind auditor and on a black-and-white printout.

use axum::http::header;
use axum::response::IntoResponse;
use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::model::{ControlState, Scope, Silence, StateCounts};

/// The stylesheet, compiled in (served at `/static/fleet.css`; CSP allows only `'self'`).
pub const CSS: &str = include_str!("fleet.css");

/// `GET /static/fleet.css`.
pub async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

/// Characters left as they are in a path segment: RFC 3986 unreserved. Everything else
/// (`§`, `(`, `/`, `?`, `#`, spaces) is percent-encoded, so an id is always one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One percent-encoded path segment.
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `/c/{client}`.
pub fn client_url(client: &str) -> String {
    format!("/c/{}", seg(client))
}

/// `/c/{client}/h/{host}`.
pub fn host_url(client: &str, host: &str) -> String {
    format!("/c/{}/h/{}", seg(client), seg(host))
}

/// `/c/{client}/h/{host}/control/{id}`.
pub fn control_url(client: &str, host: &str, control: &str) -> String {
    format!("{}/control/{}", host_url(client, host), seg(control))
}

/// `/c/{client}/h/{host}/b/{bundle}`.
pub fn bundle_url(client: &str, host: &str, bundle: &str) -> String {
    format!("{}/b/{}", host_url(client, host), seg(bundle))
}

/// The word, symbol and CSS class of a control state.
pub fn state_parts(s: ControlState) -> (&'static str, &'static str, &'static str) {
    match s {
        ControlState::Passing => ("passing", "\u{2713}", "st-pass"),
        ControlState::Failing => ("failing", "\u{2717}", "st-fail"),
        ControlState::Stale => ("stale", "\u{25F7}", "st-stale"),
        ControlState::Excepted => ("excepted", "\u{2691}", "st-except"),
        ControlState::IntegrityError => ("integrity error", "\u{26A0}", "st-integrity"),
    }
}

/// A control state as a badge.
pub fn state_badge(s: ControlState) -> Markup {
    let (word, sym, class) = state_parts(s);
    html! { span class={"badge " (class)} { span aria-hidden="true" { (sym) " " } (word) } }
}

/// A silence tier as a badge.
pub fn silence_badge(s: Silence) -> Markup {
    let (word, sym, class) = match s {
        Silence::Reporting => ("reporting", "\u{25CF}", "st-pass"),
        Silence::Warn => ("silent (warn)", "\u{25D4}", "st-stale"),
        Silence::Page => ("silent (page)", "\u{25CB}", "st-fail"),
        Silence::NeverSeen => ("never seen", "\u{2205}", "st-never"),
    };
    html! { span class={"badge " (class)} { span aria-hidden="true" { (sym) " " } (word) } }
}

/// Control counts as small badges (only the non-zero ones, so a problem stands out).
pub fn counts(c: &StateCounts) -> Markup {
    let items = [
        (c.passing, ControlState::Passing),
        (c.failing, ControlState::Failing),
        (c.stale, ControlState::Stale),
        (c.excepted, ControlState::Excepted),
        (c.integrity_error, ControlState::IntegrityError),
    ];
    let total: usize = items.iter().map(|(n, _)| n).sum();
    html! {
        span.counts {
            @if total == 0 { span.muted { "no controls" } }
            @for (n, s) in items {
                @if n > 0 {
                    @let (word, sym, class) = state_parts(s);
                    span class={"badge small " (class)} title=(word) {
                        span aria-hidden="true" { (sym) " " } (n) " " (word)
                    }
                }
            }
        }
    }
}

/// A number that is red when non-zero (with the word saying what it counts).
pub fn alarm_count(n: usize) -> Markup {
    html! {
        @if n > 0 { span class="badge small st-fail" { (n) } } @else { span.muted { "0" } }
    }
}

/// An optional RFC 3339 time, shortened for tables (`2026-12-02 14:05Z`); full value on hover.
pub fn time(t: Option<&str>) -> Markup {
    match t {
        None => html! { span.muted { "never" } },
        Some(t) => {
            let short = short_time(t);
            html! { time datetime=(t) title=(t) { (short) } }
        }
    }
}

fn short_time(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) => d.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%MZ").to_string(),
        Err(_) => t.to_string(),
    }
}

/// Breadcrumb entries: (label, link).
pub type Crumbs<'a> = &'a [(&'a str, Option<String>)];

/// The page shell: head, header with breadcrumbs, scope and logout, then `body`.
pub fn page(title: &str, scope: Option<&Scope>, crumbs: Crumbs, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content="60"; }
                title { (title) " \u{2014} msp-fleet" }
                link rel="stylesheet" href="/static/fleet.css";
            }
            body {
                header.top {
                    a.brand href="/" { "msp-fleet" }
                    @if !crumbs.is_empty() {
                        nav.crumbs aria-label="Breadcrumb" {
                            ol {
                                @for (label, link) in crumbs {
                                    li {
                                        @match link {
                                            Some(href) => a href=(href) { (label) },
                                            None => span aria-current="page" { (label) },
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(scope) = scope {
                        div.who {
                            span.scope {
                                @match scope {
                                    Scope::Operator => "operator",
                                    Scope::Client(c) => { "client " (c) },
                                }
                            }
                            form method="post" action="/logout" {
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
                @if scope.is_some() {
                    footer { "Every status is judged from signed evidence in the WORM bucket; follow a status to its bundle." }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("§164.312(b)"), "%C2%A7164.312%28b%29");
        assert_eq!(seg("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(seg("clinic-001_x.y~"), "clinic-001_x.y~");
    }
}
