//! The HTML pages: fleet → client → host → control / bundle, plus login and logout.
//!
//! Each page renders one [`crate::model`] view and nothing else. Every status links to the
//! signed object behind it (a control's state to its bundle, an incident to its bundle, a host's
//! silence to the host page that lists its evidence). maud escapes every interpolated value, so
//! a hostile host id or bundle field is shown as text, never parsed as markup.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{
    alarm_count, bundle_url, client_url, control_url, counts, host_url, page, silence_badge, state_badge, time,
};
use super::{api, auth, headers, PageAuth, WebState};
use crate::model::{
    BundleRef, BundleView, ClientView, ControlLine, ControlView, FleetView, HostSummary, HostView, Scope,
};

fn html_page(status: StatusCode, m: Markup) -> Response {
    (status, Html(m.into_string())).into_response()
}

fn not_found_page(scope: Option<&Scope>) -> Response {
    html_page(
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            scope,
            &[],
            false,
            html! {
                h1 { "Not found" }
                p { "There is nothing here that you can see. " a href="/" { "Back to the fleet" } }
            },
        ),
    )
}

fn render<T>(scope: &Scope, result: anyhow::Result<Option<T>>, f: impl FnOnce(T) -> Markup) -> Response {
    match result {
        Ok(Some(v)) => html_page(StatusCode::OK, f(v)),
        Ok(None) => not_found_page(Some(scope)),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fleet query failed");
            html_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                page(
                    "Error",
                    Some(scope),
                    &[],
                    false,
                    html! { h1 { "Something went wrong" } p { "The fleet index could not answer; the server log has the detail." } },
                ),
            )
        }
    }
}

/// Fallback: 404 (JSON under `/api/`).
pub async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        api::error(StatusCode::NOT_FOUND, "not found")
    } else {
        not_found_page(None)
    }
}

/// `GET /`: clients with counts, hosts needing attention (worst first), last poll.
pub async fn fleet(State(st): State<WebState>, PageAuth(scope): PageAuth) -> Response {
    let now = st.now();
    let s = scope.clone();
    let r = st
        .run(move |q| q.fleet(&s, now).map(|v| Some(api::scoped_fleet(&s, v))))
        .await;
    render(&scope, r, |v| fleet_page(&scope, &v))
}

fn fleet_page(scope: &Scope, v: &FleetView) -> Markup {
    let hosts: usize = v.clients.iter().map(|c| c.hosts).sum();
    let silent: usize = v.clients.iter().map(|c| c.silent_hosts).sum();
    let integrity: usize = v.clients.iter().map(|c| c.integrity_errors).sum();
    let open: usize = v.clients.iter().map(|c| c.open_incidents).sum();
    let body = html! {
        h1 { "Fleet" }
        p.sub {
            "As of " (time(Some(&v.as_of))) " \u{b7} last poll of the evidence source: " (time(v.last_poll_at.as_deref()))
        }
        @if v.last_poll_at.is_none() {
            p.notice.bad { "The index has not finished a poll of the evidence source yet: every host shows as never seen until it does." }
        }
        div.stats {
            div.stat { b { (v.clients.len()) } span { "clients" } }
            div.stat { b { (hosts) } span { "hosts" } }
            div.stat { b { (silent) } span { "silent hosts" } }
            div.stat { b { (integrity) } span { "integrity errors" } }
            div.stat { b { (open) } span { "open incidents" } }
        }
        h2 #attention { "Needs attention" }
        section.card {
            @if v.attention.is_empty() {
                p.muted { "Nothing needs attention: every host is reporting and every control is passing or excepted." }
            } @else {
                table {
                    thead { tr {
                        th { "Host" } th { "Client" } th { "Silence" } th { "Last evidence" }
                        th { "Controls" } th.num { "Integrity errors" } th.num { "Open incidents" }
                    } }
                    tbody {
                        @for h in &v.attention {
                            tr {
                                td { a.host href=(host_url(&h.client_id, &h.host_id)) { (h.host_id) } }
                                td { a href=(client_url(&h.client_id)) { (h.client_id) } }
                                td { a href=(host_url(&h.client_id, &h.host_id)) { (silence_badge(h.silence)) } }
                                td { (time(h.last_evidence_at.as_deref())) }
                                td { a href={(host_url(&h.client_id, &h.host_id)) "#controls"} { (counts(&h.controls)) } }
                                td.num { a href={(host_url(&h.client_id, &h.host_id)) "#integrity"} { (alarm_count(h.integrity_errors)) } }
                                td.num { a href={(host_url(&h.client_id, &h.host_id)) "#incidents"} { (alarm_count(h.open_incidents)) } }
                            }
                        }
                    }
                }
            }
        }
        h2 #clients { "Clients" }
        section.card {
            @if v.clients.is_empty() {
                p.muted { "No clients in the inventory." }
            } @else {
                table {
                    thead { tr {
                        th { "Client" } th.num { "Hosts" } th.num { "Silent" } th { "Controls" }
                        th.num { "Integrity errors" } th.num { "Open incidents" }
                    } }
                    tbody {
                        @for c in &v.clients {
                            tr {
                                td {
                                    a.client href=(client_url(&c.client_id)) { (c.client_id) }
                                    @if let Some(name) = &c.name { br; span.muted { (name) } }
                                }
                                td.num { (c.hosts) }
                                td.num { (alarm_count(c.silent_hosts)) }
                                td { a href=(client_url(&c.client_id)) { (counts(&c.controls)) } }
                                td.num { (alarm_count(c.integrity_errors)) }
                                td.num { (alarm_count(c.open_incidents)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Fleet", Some(scope), &[("Fleet", None)], true, body)
}

/// `GET /c/{client}`.
pub async fn client(State(st): State<WebState>, PageAuth(scope): PageAuth, Path(client): Path<String>) -> Response {
    if !scope.sees(&client) {
        return not_found_page(Some(&scope));
    }
    let now = st.now();
    let s = scope.clone();
    let r = st.run(move |q| q.client(&s, &client, now)).await;
    render(&scope, r, |v| client_page(&scope, &v))
}

fn worm_lag(s: Option<i64>) -> Markup {
    match s {
        None => html! { span.muted { "n/a" } },
        Some(s) if s < 120 => html! { (s) " s" },
        Some(s) if s < 7200 => html! { (s / 60) " min" },
        Some(s) => html! { span class="badge small st-stale" { (s / 3600) " h" } },
    }
}

fn client_page(scope: &Scope, v: &ClientView) -> Markup {
    let c = &v.summary;
    let body = html! {
        h1 { (c.client_id) }
        @if let Some(name) = &c.name { p.sub { (name) } }
        div.stats {
            div.stat { b { (c.hosts) } span { "hosts" } }
            div.stat { b { (c.silent_hosts) } span { "silent hosts" } }
            div.stat { b { (c.integrity_errors) } span { "integrity errors" } }
            div.stat { b { (c.open_incidents) } span { "open incidents" } }
        }
        h2 #hosts { "Hosts" }
        section.card {
            @if v.hosts.is_empty() {
                p.muted { "No hosts in the inventory for this client." }
            } @else {
                table {
                    thead { tr {
                        th { "Host" } th { "Silence" } th { "Last evidence" } th { "Last heartbeat" }
                        th { "Controls" } th.num { "Open incidents" } th.num { "Failed remediations" }
                        th.num { "Drift" } th.num { "WORM lag" } th.num { "Integrity errors" }
                    } }
                    tbody { @for h in &v.hosts { (host_row(h)) } }
                }
            }
        }
        h2 #months { "Months with evidence" }
        section.card {
            @if v.months.is_empty() {
                p.muted { "No evidence indexed yet." }
            } @else {
                p.muted {
                    "Each month's packet across this client's hosts, judged at the month's end, as data: "
                    "the link. The signed packet (HTML, JSON and a manifest for ssh-keygen and openssl) is made with "
                    code { "msp-fleet packet --client " (c.client_id) " --month YYYY-MM" } "."
                }
                ul.plain { @for m in &v.months {
                    li { a.mono href=(format!("/api/v1{}/packet/{}", super::layout::client_url(&c.client_id), super::layout::seg(m))) { (m) " packet (JSON)" } }
                } }
            }
        }
    };
    page(
        &c.client_id,
        Some(scope),
        &[("Fleet", Some("/".into())), (&c.client_id, None)],
        true,
        body,
    )
}

fn host_row(h: &HostSummary) -> Markup {
    let url = host_url(&h.client_id, &h.host_id);
    html! {
        tr {
            td { a.host href=(url) { (h.host_id) } }
            td { a href=(url) { (silence_badge(h.silence)) } }
            td { (time(h.last_evidence_at.as_deref())) }
            td { (time(h.last_heartbeat_at.as_deref())) }
            td { a href={(url) "#controls"} { (counts(&h.controls)) } }
            td.num { a href={(url) "#incidents"} { (alarm_count(h.open_incidents)) } }
            td.num { a href={(url) "#incidents"} { (alarm_count(h.failed_incidents)) } }
            td.num { (h.drift_events) }
            td.num { (worm_lag(h.worm_lag_seconds)) }
            td.num { a href={(url) "#integrity"} { (alarm_count(h.integrity_errors)) } }
        }
    }
}

/// `GET /c/{client}/h/{host}`.
pub async fn host(
    State(st): State<WebState>,
    PageAuth(scope): PageAuth,
    Path((client, host)): Path<(String, String)>,
) -> Response {
    if !scope.sees(&client) {
        return not_found_page(Some(&scope));
    }
    let now = st.now();
    let s = scope.clone();
    let r = st.run(move |q| q.host(&s, &client, &host, now)).await;
    render(&scope, r, |v| host_page(&scope, &v))
}

fn bundle_link(client: &str, host: &str, b: &BundleRef) -> Markup {
    html! {
        a.evidence href=(bundle_url(client, host, &b.bundle_id)) { code { (b.bundle_id) } }
        br;
        span.muted { (b.event_type) " \u{b7} " (time(Some(&b.generated_at))) }
    }
}

fn exception_cell(line: &ControlLine) -> Markup {
    match &line.exception {
        None => html! { span.muted { "\u{2014}" } },
        Some(x) => html! {
            code { (x.id) } br;
            span { "approved by " (x.approver) } br;
            span { "expires " (x.expires) }
        },
    }
}

/// The state cell: the badge links to the evidence bundle, or to the control page when the
/// state has no bundle behind it (e.g. failing for lack of evidence).
fn state_cell(client: &str, host: &str, line: &ControlLine) -> Markup {
    let href = match &line.evidence {
        Some(b) => bundle_url(client, host, &b.bundle_id),
        None => control_url(client, host, &line.control_id),
    };
    html! { a.state href=(href) { (state_badge(line.state)) } }
}

fn host_page(scope: &Scope, v: &HostView) -> Markup {
    let h = &v.summary;
    let (c, id) = (h.client_id.as_str(), h.host_id.as_str());
    let body = html! {
        h1 { (id) }
        p.sub { "Client " a href=(client_url(c)) { (c) } }
        dl.kv {
            dt { "Silence" } dd { (silence_badge(h.silence)) }
            dt { "Last evidence" } dd { (time(h.last_evidence_at.as_deref())) }
            dt { "Last heartbeat" } dd { (time(h.last_heartbeat_at.as_deref())) }
            dt { "Heartbeat interval" } dd { (v.heartbeat_interval_seconds) " s" }
            dt { "WORM lag (newest bundle)" } dd { (worm_lag(h.worm_lag_seconds)) }
            dt { "This month" } dd {
                (h.open_incidents) " open incidents \u{b7} " (h.failed_incidents) " failed remediations \u{b7} "
                (h.drift_events) " drift events"
            }
        }
        h2 #controls { "Controls" }
        section.card {
            @if v.controls.is_empty() {
                p.muted { "No controls apply to this host." }
            } @else {
                table.controls {
                    thead { tr {
                        th { "Control" } th { "State" } th { "Why" } th { "Evidence" } th { "Exception" }
                    } }
                    tbody {
                        @for l in &v.controls {
                            tr {
                                td {
                                    a.control href=(control_url(c, id, &l.control_id)) { code { (l.control_id) } }
                                    br; span.muted { (l.title) }
                                }
                                td { (state_cell(c, id, l)) }
                                td { (l.reason) }
                                td {
                                    @match &l.evidence {
                                        Some(b) => (bundle_link(c, id, b)),
                                        None => span.muted { "no qualifying bundle (" (l.evidence_rule) ")" },
                                    }
                                }
                                td { (exception_cell(l)) }
                            }
                        }
                    }
                }
            }
        }
        h2 #incidents { "Incidents" }
        section.card {
            @if v.incidents.is_empty() {
                p.muted { "No open, escalated or failed incidents." }
            } @else {
                table {
                    thead { tr { th { "Bundle" } th { "Runbook" } th { "Status" } } }
                    tbody {
                        @for i in &v.incidents {
                            tr {
                                td { (bundle_link(c, id, &i.bundle)) }
                                td { @match &i.runbook_id { Some(r) => code { (r) }, None => span.muted { "none" } } }
                                td { (incident_status(&i.status)) }
                            }
                        }
                    }
                }
            }
        }
        h2 #integrity { "Integrity errors" }
        section.card {
            @if v.integrity.is_empty() {
                p.muted { "Every indexed object of this host verified." }
            } @else {
                table {
                    thead { tr { th { "Object" } th { "Bundle" } th { "Problem" } } }
                    tbody {
                        @for e in &v.integrity {
                            tr {
                                td { code { (e.object_key) } }
                                td {
                                    @match &e.bundle_id {
                                        Some(b) => a.evidence href=(bundle_url(c, id, b)) { code { (b) } },
                                        None => span.muted { "unreadable" },
                                    }
                                }
                                td { span class="badge small st-integrity" { "\u{26A0} integrity error" } " " (e.problem) }
                            }
                        }
                    }
                }
            }
        }
        h2 #keys { "Registered signing keys" }
        section.card {
            @if v.key_ids.is_empty() {
                p.notice.bad { "No keys registered in the inventory: no evidence of this host can verify." }
            } @else {
                ul.plain { @for k in &v.key_ids { li { code { (k) } } } }
            }
        }
    };
    page(
        id,
        Some(scope),
        &[("Fleet", Some("/".into())), (c, Some(client_url(c))), (id, None)],
        false,
        body,
    )
}

fn incident_status(s: &str) -> Markup {
    let class = match s {
        "resolved" => "st-pass",
        "failed" => "st-fail",
        "escalated" => "st-stale",
        _ => "st-never",
    };
    html! { span class={"badge small " (class)} { (s) } }
}

/// `GET /c/{client}/h/{host}/control/{control_id}`.
pub async fn control(
    State(st): State<WebState>,
    PageAuth(scope): PageAuth,
    Path((client, host, control)): Path<(String, String, String)>,
) -> Response {
    if !scope.sees(&client) {
        return not_found_page(Some(&scope));
    }
    let now = st.now();
    let s = scope.clone();
    let r = st.run(move |q| q.control(&s, &client, &host, &control, now)).await;
    render(&scope, r, |v| control_page(&scope, &v))
}

fn control_page(scope: &Scope, v: &ControlView) -> Markup {
    let (c, h, l) = (v.client_id.as_str(), v.host_id.as_str(), &v.line);
    let body = html! {
        h1 { code { (l.control_id) } " " (l.title) }
        p.sub { "on " a href=(host_url(c, h)) { (h) } " of " a href=(client_url(c)) { (c) } }
        dl.kv {
            dt { "State" } dd { (state_cell(c, h, l)) }
            dt { "Why" } dd { (l.reason) }
            dt { "Evidence rule" } dd { code { (l.evidence_rule) } }
            dt { "Freshness" } dd {
                @match l.freshness_hours { Some(n) => { (n) " h" }, None => span.muted { "any age" } }
            }
            dt { "Evidence" } dd {
                @match &l.evidence { Some(b) => (bundle_link(c, h, b)), None => span.muted { "no qualifying bundle" } }
            }
            dt { "Exception" } dd { (exception_cell(l)) }
        }
        h2 #history { "Qualifying bundles" }
        section.card {
            @if v.history.is_empty() {
                p.muted { "No qualifying bundle has been indexed for this control." }
            } @else {
                table {
                    thead { tr { th { "Bundle" } th { "Event" } th { "Generated" } th { "Object" } } }
                    tbody {
                        @for b in &v.history {
                            tr {
                                td { a.evidence href=(bundle_url(c, h, &b.bundle_id)) { code { (b.bundle_id) } } }
                                td { (b.event_type) }
                                td { (time(Some(&b.generated_at))) }
                                td { code { (b.object_key) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &l.control_id,
        Some(scope),
        &[
            ("Fleet", Some("/".into())),
            (c, Some(client_url(c))),
            (h, Some(host_url(c, h))),
            (&l.control_id, None),
        ],
        false,
        body,
    )
}

/// `GET /c/{client}/h/{host}/b/{bundle_id}`.
pub async fn bundle(
    State(st): State<WebState>,
    PageAuth(scope): PageAuth,
    Path((client, host, bundle)): Path<(String, String, String)>,
) -> Response {
    if !scope.sees(&client) {
        return not_found_page(Some(&scope));
    }
    let s = scope.clone();
    let r = st.run(move |q| q.bundle(&s, &client, &host, &bundle)).await;
    render(&scope, r, |v| bundle_page(&scope, &v))
}

fn bundle_page(scope: &Scope, v: &BundleView) -> Markup {
    let (c, h, b) = (v.client_id.as_str(), v.host_id.as_str(), &v.bundle);
    let verified = v.verification == "verified";
    // A one-line object is reformatted for reading; the stored bytes are what is signed.
    let (json, reformatted) = if v.json.contains('\n') {
        (v.json.clone(), false)
    } else {
        match serde_json::from_str::<serde_json::Value>(&v.json).and_then(|j| serde_json::to_string_pretty(&j)) {
            Ok(p) => (p, true),
            Err(_) => (v.json.clone(), false),
        }
    };
    let body = html! {
        h1 { "Bundle " code { (b.bundle_id) } }
        p.sub { "from " a href=(host_url(c, h)) { (h) } " of " a href=(client_url(c)) { (c) } }
        @if verified {
            p.notice.good { "\u{2713} Verified: signature checked against the host's registered key, and its place in the host's chain." }
        } @else {
            p.notice.bad { "\u{26A0} Integrity error: " (v.verification) }
        }
        dl.kv {
            dt { "Event type" } dd { (b.event_type) }
            dt { "Generated" } dd { (time(Some(&b.generated_at))) }
            dt { "Object" } dd { code { (b.object_key) } }
            dt { "Signing key" } dd { code { (v.key_id) } }
            dt { "Signature objects" } dd {
                ul.plain { @for s in &v.signature_objects { li { code { (s) } } } }
            }
            dt { "As JSON" } dd {
                a href={"/api/v1" (bundle_url(c, h, &b.bundle_id))} { "this page's data (API)" }
            }
        }
        h2 #verify { "Verify it yourself with stock tools" }
        @if v.stock_commands.is_empty() {
            p.muted { "No commands for this bundle." }
        } @else {
            p.muted { "Download the objects above from the bucket, then run:" }
            pre.cmds { code { @for (i, cmd) in v.stock_commands.iter().enumerate() { @if i > 0 { "\n" } (cmd) } } }
        }
        h2 #json { "Bundle JSON" }
        @if reformatted { p.muted { "Reformatted for reading; the signature covers the stored bytes." } }
        pre.json { code { (json) } }
    };
    page(
        &b.bundle_id,
        Some(scope),
        &[
            ("Fleet", Some("/".into())),
            (c, Some(client_url(c))),
            (h, Some(host_url(c, h))),
            (&b.bundle_id, None),
        ],
        false,
        body,
    )
}

/// `?next=` of the login page: where to go after logging in.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// A local path to return to; anything else (another site, `//host`, a backslash trick) is `/`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        // Only printable ASCII: it becomes a `Location` header (a control character there
        // would be header injection, and axum refuses to build such a redirect).
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/",
    }
}

fn login_page(next: &str, error: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        &[],
        false,
        html! {
            div.login {
                h1 { "Log in" }
                p.muted { "Paste your msp-fleet access token (operator or client)." }
                @if let Some(e) = error { p.notice.bad role="alert" { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Access token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// `GET /login`.
pub async fn login_form(Query(q): Query<NextQuery>) -> Response {
    html_page(StatusCode::OK, login_page(safe_next(q.next.as_deref()), None))
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: a valid token starts a session (cookie) and returns to `next`.
pub async fn login(State(st): State<WebState>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref()).to_string();
    if !headers::same_origin(&headers) {
        return html_page(
            StatusCode::FORBIDDEN,
            login_page(&next, Some("Refused: this form was not sent from this site.")),
        );
    }
    let Some(scope) = st.tokens.check(f.token.trim()) else {
        return html_page(
            StatusCode::UNAUTHORIZED,
            login_page(&next, Some("That token was not accepted.")),
        );
    };
    let id = match st.sessions.create(scope, st.now()) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "starting a session");
            return html_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                login_page(&next, Some("Could not start a session; see the server log.")),
            );
        }
    };
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        auth::SESSION_COOKIE,
        auth::SESSION_LIFETIME_HOURS * 3600,
        if st.secure_cookies { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

/// `GET /logout`: a button (logging out changes state, so it is a POST).
pub async fn logout_form() -> Response {
    html_page(
        StatusCode::OK,
        page(
            "Log out",
            None,
            &[],
            false,
            html! {
                div.login {
                    h1 { "Log out" }
                    form method="post" action="/logout" { button type="submit" { "Log out" } }
                }
            },
        ),
    )
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(State(st): State<WebState>, headers: HeaderMap) -> Response {
    if !headers::same_origin(&headers) {
        return html_page(
            StatusCode::FORBIDDEN,
            login_page("/", Some("Refused: this form was not sent from this site.")),
        );
    }
    for id in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(auth::session_cookie)
    {
        st.sessions.remove(id);
    }
    let cookie = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        auth::SESSION_COOKIE,
        if st.secure_cookies { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_local() {
        assert_eq!(safe_next(Some("/c/x")), "/c/x");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/x\r\nSet-Cookie: a=b")), "/");
        assert_eq!(safe_next(Some("/\u{a7}")), "/");
    }
}
