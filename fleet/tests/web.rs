//! The web UI and JSON API over real HTTP on loopback (reqwest), against the stand-in
//! `FleetQuery` in `standin_web/` (the real index is another helper's unfinished work).

mod standin_web;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use msp_fleet::model::{FleetQuery, Scope};
use msp_fleet::web::{self, auth::hash_token, auth::TokenStore, WebState};
use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use standin_web::{StandIn, AUDIT, HOSTILE_FIELD, HOSTILE_HOST};

const OP: &str = "operator-token-7f3a9c";
const C1: &str = "clinic-one-token-19be";

struct Server {
    base: String,
    clock: Arc<AtomicI64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    http: Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(
        &path,
        format!(
            "# test tokens\noperator {}\nclient:clinic-001 {}\n",
            hash_token(OP),
            hash_token(C1)
        ),
    )
    .unwrap();
    let tokens = TokenStore::load(&path).unwrap();
    let clock = Arc::new(AtomicI64::new(
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap().timestamp(),
    ));
    let c = clock.clone();
    let clock_fn: web::Clock = Arc::new(move || DateTime::from_timestamp(c.load(Ordering::SeqCst), 0).unwrap());
    let state = WebState::new(Arc::new(StandIn::new()), tokens, clock_fn);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addr_tx.send(l.local_addr()?).unwrap();
            web::serve(l, state, async move {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let addr = addr_rx.recv().unwrap();
    Server {
        base: format!("http://{addr}"),
        clock,
        stop: Some(stop_tx),
        thread: Some(thread),
        http: Client::builder().redirect(Policy::none()).build().unwrap(),
    }
}

impl Server {
    fn get(&self, path: &str) -> Response {
        self.http.get(format!("{}{path}", self.base)).send().unwrap()
    }
    fn bearer(&self, path: &str, token: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .unwrap()
    }
    fn cookie(&self, path: &str, cookie: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .unwrap()
    }
    fn login(&self, token: &str) -> Response {
        self.http
            .post(format!("{}/login", self.base))
            .header("origin", &self.base)
            .form(&[("token", token), ("next", "/")])
            .send()
            .unwrap()
    }
    /// Logs in and returns the `name=value` of the session cookie.
    fn session(&self, token: &str) -> String {
        let r = self.login(token);
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
        set.split(';').next().unwrap().to_string()
    }
}

fn location(r: &Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].replace("&amp;", "&"))
        .collect()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap()
}

#[test]
fn login_required_pages_redirect_api_401_healthz_open() {
    let s = start();
    let r = s.get("/");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
    let r = s.get("/c/clinic-001/h/clinic-001-nas");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?next=%2Fc%2Fclinic-001%2Fh%2Fclinic-001-nas");
    for p in [
        "/api/v1/fleet",
        "/api/v1/c/clinic-001",
        "/api/v1/c/clinic-001/h/clinic-001-nas",
    ] {
        let r = s.get(p);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{p}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let v: serde_json::Value = r.js();
        assert!(v["error"].as_str().unwrap().contains("Bearer"), "{v}");
    }
    let r = s.get("/healthz");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().unwrap(), "ok\n");
    let r = s.get("/login?next=%2Fc%2Fclinic-001");
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().unwrap();
    assert!(
        body.contains("name=\"token\"") && body.contains("value=\"/c/clinic-001\""),
        "{body}"
    );
}

#[test]
fn wrong_token_refused() {
    let s = start();
    assert_eq!(
        s.bearer("/api/v1/fleet", "operator-token-7f3a9d").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.bearer("/", "nope").status(), StatusCode::SEE_OTHER);
    // A bad bearer token does not fall back to a valid cookie either.
    let cookie = s.session(OP);
    let r = s
        .http
        .get(format!("{}/api/v1/fleet", s.base))
        .header("cookie", &cookie)
        .bearer_auth("bad")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s.login("operator-token-7f3a9");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().unwrap().contains("That token was not accepted."));
    // A forged session id is not a session.
    assert_eq!(
        s.cookie("/", &format!("msp_fleet_session={}", "a".repeat(64))).status(),
        StatusCode::SEE_OTHER
    );
}

#[test]
fn bearer_api_returns_the_model() {
    let s = start();
    let q = StandIn::new();
    let op = Scope::Operator;
    let host = "clinic-001-srv-primary";
    let control = web::layout::seg(AUDIT);
    let bundle = q.host(&op, "clinic-001", host, now()).unwrap().unwrap().controls[0]
        .evidence
        .clone()
        .unwrap()
        .bundle_id;
    let cases: Vec<(String, serde_json::Value)> = vec![
        (
            "/api/v1/fleet".into(),
            serde_json::to_value(q.fleet(&op, now()).unwrap()).unwrap(),
        ),
        (
            "/api/v1/c/clinic-001".into(),
            serde_json::to_value(q.client(&op, "clinic-001", now()).unwrap()).unwrap(),
        ),
        (
            format!("/api/v1/c/clinic-001/h/{host}"),
            serde_json::to_value(q.host(&op, "clinic-001", host, now()).unwrap()).unwrap(),
        ),
        (
            format!("/api/v1/c/clinic-001/h/{host}/control/{control}"),
            serde_json::to_value(q.control(&op, "clinic-001", host, AUDIT, now()).unwrap()).unwrap(),
        ),
        (
            format!("/api/v1/c/clinic-001/h/{host}/b/{bundle}"),
            serde_json::to_value(q.bundle(&op, "clinic-001", host, &bundle).unwrap()).unwrap(),
        ),
    ];
    for (path, want) in cases {
        let r = s.bearer(&path, OP);
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let got: serde_json::Value = r.js();
        assert!(!want.is_null());
        assert_eq!(got, want, "{path}");
    }
    let v: serde_json::Value = s.bearer("/api/v1/fleet", OP).js();
    assert_eq!(v["as_of"], "2026-12-02T12:00:00+00:00");
    assert_eq!(v["clients"].as_array().unwrap().len(), 2);
    let r = s.bearer("/api/v1/c/clinic-001/h/no-such-host", OP);
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.js()["error"], "not found");
    assert_eq!(s.bearer("/api/v1/nothing", OP).status(), StatusCode::NOT_FOUND);
}

#[test]
fn cookie_session_works_logout_ends_it_and_it_expires() {
    let s = start();
    let r = s.login(OP);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("msp_fleet_session="), "{set}");
    let id = set.split(';').next().unwrap().trim_start_matches("msp_fleet_session=");
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} missing: {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let r = s.cookie("/", &cookie);
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().unwrap().contains("<h1>Fleet</h1>"));
    assert_eq!(s.cookie("/api/v1/fleet", &cookie).status(), StatusCode::OK);
    // Two logins are two sessions.
    let other = s.session(OP);
    assert_ne!(other, cookie);

    let r = s
        .http
        .post(format!("{}/logout", s.base))
        .header("cookie", &cookie)
        .header("origin", &s.base)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(s.cookie("/", &cookie).status(), StatusCode::SEE_OTHER);
    assert_eq!(s.cookie("/", &other).status(), StatusCode::OK);

    // 12 h later the other session has expired.
    s.clock.fetch_add(12 * 3600 + 1, Ordering::SeqCst);
    assert_eq!(s.cookie("/", &other).status(), StatusCode::SEE_OTHER);
}

#[test]
fn login_and_logout_refuse_cross_site_posts() {
    let s = start();
    let post = |path: &str, hdrs: &[(&str, &str)]| {
        let mut b = s.http.post(format!("{}{path}", s.base)).form(&[("token", OP)]);
        for (k, v) in hdrs {
            b = b.header(*k, *v);
        }
        b.send().unwrap()
    };
    let r = post("/login", &[("origin", "http://evil.example")]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(
        post("/login", &[("origin", "null"), ("sec-fetch-site", "cross-site")]).status(),
        StatusCode::FORBIDDEN
    );
    // What chromium sends for our own form under Referrer-Policy: no-referrer.
    assert_eq!(
        post("/login", &[("origin", "null"), ("sec-fetch-site", "same-origin")]).status(),
        StatusCode::SEE_OTHER
    );
    let cookie = s.session(OP);
    let r = s
        .http
        .post(format!("{}/logout", s.base))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        s.cookie("/", &cookie).status(),
        StatusCode::OK,
        "a cross-site logout must not end the session"
    );
}

#[test]
fn client_scope_sees_only_its_client() {
    let s = start();
    let v: serde_json::Value = s.bearer("/api/v1/fleet", C1).js();
    let clients: Vec<&str> = v["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["clinic-001"]);
    assert!(!v["attention"].as_array().unwrap().is_empty());
    assert!(v["attention"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["client_id"] == "clinic-001"));
    assert!(!v.to_string().contains("clinic-002"));

    let cookie = s.session(C1);
    let page = s.cookie("/", &cookie).text().unwrap();
    assert!(page.contains("clinic-001-nas"));
    assert!(!page.contains("clinic-002"), "{page}");
    assert!(page.contains("client clinic-001"));
    assert_eq!(s.cookie("/c/clinic-001", &cookie).status(), StatusCode::OK);

    let q = StandIn::new();
    let other = q
        .host(&Scope::Operator, "clinic-002", HOSTILE_HOST, now())
        .unwrap()
        .unwrap();
    let b = other.controls[0].evidence.clone().unwrap().bundle_id;
    let h = web::layout::seg(HOSTILE_HOST);
    let ctl = web::layout::seg(AUDIT);
    for p in [
        "/c/clinic-002".to_string(),
        "/c/clinic-002/h/clinic-002-srv".into(),
        format!("/c/clinic-002/h/{h}/control/{ctl}"),
        format!("/c/clinic-002/h/{h}/b/{b}"),
        "/c/clinic-999".into(),
    ] {
        let r = s.cookie(&p, &cookie);
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{p}");
        let body = r.text().unwrap();
        assert!(!body.contains("clinic-002-srv") && !body.contains(&b), "{p}: {body}");
        let r = s.bearer(&format!("/api/v1{p}"), C1);
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "api {p}");
        // The operator sees the same paths (so 404 above is the scope, not a bad path).
        if p != "/c/clinic-999" {
            assert_eq!(
                s.bearer(&format!("/api/v1{p}"), OP).status(),
                StatusCode::OK,
                "operator {p}"
            );
        }
    }
    // Same answer for an existing and a non-existing client: existence is not revealed.
    let a = s.bearer("/api/v1/c/clinic-002", C1).text().unwrap();
    let b = s.bearer("/api/v1/c/clinic-999", C1).text().unwrap();
    assert_eq!(a, b);
}

/// Crawls every page from `/`: all load, and each status cell links to its evidence.
#[test]
fn every_page_renders_and_links_to_its_evidence() {
    let s = start();
    let q = StandIn::new();
    let cookie = s.session(OP);
    let mut seen = BTreeSet::new();
    let mut todo = VecDeque::from(["/".to_string()]);
    while let Some(p) = todo.pop_front() {
        if !seen.insert(p.clone()) {
            continue;
        }
        let r = s.cookie(&p, &cookie);
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        if p.starts_with("/api/") {
            r.js();
            continue;
        }
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        for h in hrefs(&r.text().unwrap()) {
            let h = h.split('#').next().unwrap().to_string();
            if h.starts_with("/c/") || h.starts_with("/api/") || h == "/" {
                todo.push_back(h);
            }
        }
    }
    let pages = |pat: &str| {
        seen.iter()
            .filter(|p| p.contains(pat) && !p.starts_with("/api/"))
            .count()
    };
    assert_eq!(pages("/h/") - pages("/control/") - pages("/b/"), 5, "{seen:#?}");
    assert_eq!(pages("/control/%C2%A7164.312%28b%29"), 5, "{seen:#?}");
    assert_eq!(pages("/b/EB-"), 7, "every referenced bundle: {seen:#?}");
    assert!(seen.iter().any(|p| p.starts_with("/api/v1/c/") && p.contains("/b/")));

    // On every host page each control's state links to its bundle (or its control page when
    // it has none), and every incident links to its bundle.
    for h in ["clinic-001-srv-primary", "clinic-001-ws-front", "clinic-001-nas"] {
        let view = q.host(&Scope::Operator, "clinic-001", h, now()).unwrap().unwrap();
        let html = s
            .cookie(&web::layout::host_url("clinic-001", h), &cookie)
            .text()
            .unwrap();
        let links = hrefs(&html);
        for l in &view.controls {
            let want = match &l.evidence {
                Some(b) => web::layout::bundle_url("clinic-001", h, &b.bundle_id),
                None => web::layout::control_url("clinic-001", h, &l.control_id),
            };
            assert!(
                html.contains(&format!("<a class=\"state\" href=\"{want}\">")),
                "{h} {}: {want}",
                l.control_id
            );
        }
        for i in &view.incidents {
            assert!(links.contains(&web::layout::bundle_url("clinic-001", h, &i.bundle.bundle_id)));
        }
        for e in &view.integrity {
            assert!(html.contains(&e.problem));
            if let Some(b) = &e.bundle_id {
                assert!(links.contains(&web::layout::bundle_url("clinic-001", h, b)));
            }
        }
    }
    // Words with the colours, exception approver and expiry, key ids, stock commands.
    let html = s
        .cookie("/c/clinic-001/h/clinic-001-srv-primary", &cookie)
        .text()
        .unwrap();
    for w in [
        "passing",
        "stale",
        "excepted",
        "EX-2026-007",
        "Dr. A. Privacy (privacy officer)",
        "2027-01-31",
        "SHA256:",
    ] {
        assert!(html.contains(w), "{w}");
    }
    let html = s.cookie("/c/clinic-001/h/clinic-001-nas", &cookie).text().unwrap();
    assert!(html.contains("integrity error") && html.contains("silent (page)"));
    let fleet = s.cookie("/", &cookie).text().unwrap();
    for w in [
        "silent (warn)",
        "silent (page)",
        "never seen",
        "Riverside Family Clinic",
        "2026-12-02 11:55Z",
    ] {
        assert!(fleet.contains(w), "{w}");
    }
    // Worst first: the paging host with integrity errors leads the attention table.
    let nas = fleet.find(">clinic-001-nas<").unwrap();
    let front = fleet.find(">clinic-001-ws-front<").unwrap();
    assert!(nas < front);
    let view = q
        .host(&Scope::Operator, "clinic-001", "clinic-001-srv-primary", now())
        .unwrap()
        .unwrap();
    let b = view.controls[0].evidence.clone().unwrap();
    let bundle = q
        .bundle(&Scope::Operator, "clinic-001", "clinic-001-srv-primary", &b.bundle_id)
        .unwrap()
        .unwrap();
    let html = s
        .cookie(
            &web::layout::bundle_url("clinic-001", "clinic-001-srv-primary", &b.bundle_id),
            &cookie,
        )
        .text()
        .unwrap();
    assert!(html.contains("Verified"));
    for o in &bundle.signature_objects {
        assert!(html.contains(o));
    }
    assert!(html.contains("ssh-keygen -Y verify -f allowed_signers -I clinic-001-srv-primary"));
    assert!(html.contains("&lt;/pre&gt;&lt;script&gt;"));
}

#[test]
fn security_headers_on_every_response() {
    let s = start();
    let cookie = s.session(OP);
    for (p, auth) in [
        ("/", true),
        ("/c/clinic-001", true),
        ("/api/v1/fleet", true),
        ("/login", false),
        ("/healthz", false),
        ("/nope", false),
        ("/", false),
        ("/api/v1/fleet", false),
    ] {
        let r = if auth { s.cookie(p, &cookie) } else { s.get(p) };
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("style-src 'self'")
                && csp.contains("frame-ancestors 'none'"),
            "{p}: {csp}"
        );
        assert!(!csp.contains("script-src"), "no script is ever allowed");
        assert_eq!(h["x-content-type-options"], "nosniff", "{p}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{p}");
        assert_eq!(h["cache-control"], "no-store", "{p}");
    }
    let r = s.get("/static/fleet.css");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.text().unwrap().contains(".st-integrity"));
    // Pages never include a script.
    let html = s.cookie("/", &cookie).text().unwrap();
    assert!(!html.to_lowercase().contains("<script"));
    assert!(html.contains("<link rel=\"stylesheet\" href=\"/static/fleet.css\">"));
}

#[test]
fn hostile_strings_are_escaped() {
    let s = start();
    let q = StandIn::new();
    let cookie = s.session(OP);
    let view = q
        .host(&Scope::Operator, "clinic-002", HOSTILE_HOST, now())
        .unwrap()
        .unwrap();
    let b = view.controls[0].evidence.clone().unwrap().bundle_id;
    let ctl = web::layout::seg(AUDIT);
    let host_path = web::layout::host_url("clinic-002", HOSTILE_HOST);
    assert!(host_path.contains("%3Cscript%3E"));
    for p in [
        "/".to_string(),
        "/c/clinic-002".into(),
        host_path.clone(),
        format!("{host_path}/control/{ctl}"),
        format!("{host_path}/b/{b}"),
    ] {
        let r = s.cookie(&p, &cookie);
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        let html = r.text().unwrap().to_lowercase();
        assert!(!html.contains("<script"), "{p}: markup from evidence");
        assert!(!html.contains("<img"), "{p}: markup from evidence");
        // The fleet page lists only hosts needing attention (the hostile one is fine).
        if p != "/" {
            assert!(
                html.contains("&lt;script&gt;alert("),
                "{p}: the hostile text is shown, escaped"
            );
        }
    }
    // The API carries the hostile text as data.
    let v: serde_json::Value = s.bearer(&format!("/api/v1{host_path}/b/{b}"), OP).js();
    assert!(
        v["json"]
            .as_str()
            .unwrap()
            .contains(&HOSTILE_FIELD.replace('"', "\\\""))
            || v["json"].as_str().unwrap().contains(HOSTILE_FIELD)
    );
    assert_eq!(v["host_id"], HOSTILE_HOST);
    // A hostile `next` never leaves the site nor injects a header.
    let r = s
        .http
        .post(format!("{}/login", s.base))
        .header("origin", &s.base)
        .form(&[("token", OP), ("next", "//evil.example/x")])
        .send()
        .unwrap();
    assert_eq!(location(&r), "/");
}

#[test]
fn percent_encoded_control_ids_route() {
    let s = start();
    let base = "/c/clinic-001/h/clinic-001-srv-primary/control";
    for enc in ["%C2%A7164.312%28b%29", "%C2%A7164.312(b)", "%c2%a7164.312%28b%29"] {
        let r = s.bearer(&format!("{base}/{enc}"), OP);
        assert_eq!(r.status(), StatusCode::OK, "{enc}");
        let html = r.text().unwrap();
        assert!(html.contains("<code>§164.312(b)</code> Audit controls"), "{enc}");
        let v: serde_json::Value = s.bearer(&format!("/api/v1{base}/{enc}"), OP).js();
        assert_eq!(v["line"]["control_id"], AUDIT);
    }
    let v: serde_json::Value = s
        .bearer(&format!("/api/v1{base}/%C2%A7164.308%28a%29%287%29%28ii%29%28A%29"), OP)
        .js();
    assert_eq!(v["line"]["state"], "stale");
    assert_eq!(
        s.bearer(&format!("{base}/%C2%A7999"), OP).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.bearer(&format!("/api/v1{base}/%C2%A7164.312%28b%29%2Fx"), OP)
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn tokens_file_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokens");
    std::fs::write(
        &p,
        format!("operator {}\n# ok\nclient:clinic-001 12345\n", hash_token(OP)),
    )
    .unwrap();
    let e = format!("{:#}", TokenStore::load(&p).unwrap_err());
    assert!(e.starts_with(&format!("{}:3: token hash", p.display())), "{e}");
    let e = format!("{:#}", TokenStore::load(&dir.path().join("missing")).unwrap_err());
    assert!(e.contains("reading tokens file") && e.contains("missing"), "{e}");
    // Without tokens nobody gets in.
    assert!(TokenStore::empty().check("").is_none());
}

/// reqwest's `json` feature is not enabled in this workspace; parse the text.
trait Js {
    fn js(self) -> serde_json::Value;
}

impl Js for Response {
    fn js(self) -> serde_json::Value {
        let t = self.text().unwrap();
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }
}
