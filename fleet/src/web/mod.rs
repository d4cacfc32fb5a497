//! The web UI and JSON API of `msp-fleet serve`.
//!
//! Server-rendered HTML (maud, which escapes every interpolated string: evidence fields are
//! hostile input) with no JavaScript at all, and a JSON API behind every page that returns the
//! same [`crate::model`] structs. Both render only what [`FleetQuery`] answers, so the page,
//! the API and `msp-fleet status` cannot disagree.
//!
//! Routes (HTML, then JSON under `/api/v1`):
//! `/` fleet · `/c/{client}` · `/c/{client}/h/{host}` · `/c/{client}/h/{host}/control/{id}`
//! (id percent-encoded) · `/c/{client}/h/{host}/b/{bundle_id}`; `/login`, `/logout`,
//! `/healthz` (open), `/static/fleet.css`.
//!
//! Access: a bearer token or a session cookie (see [`auth`]). Unauthenticated pages redirect
//! to `/login` (303), unauthenticated API calls get 401 JSON. A client-scoped token sees its
//! own client only: anything else is 404, as if it did not exist, and never listed.

pub mod api;
pub mod auth;
pub mod headers;
pub mod layout;
pub mod pages;

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::model::{FleetQuery, Scope};
use auth::{Sessions, TokenStore};

/// The clock the web layer judges "now" by (sessions, views); injectable for tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Everything a request handler needs; cheap to clone (all shared).
#[derive(Clone)]
pub struct WebState {
    pub(crate) query: Arc<dyn FleetQuery>,
    pub(crate) tokens: Arc<TokenStore>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) clock: Clock,
    pub(crate) secure_cookies: bool,
}

impl WebState {
    /// A state over `query`, accepting `tokens`, judging time by `clock`.
    pub fn new(query: Arc<dyn FleetQuery>, tokens: TokenStore, clock: Clock) -> WebState {
        WebState {
            query,
            tokens: Arc::new(tokens),
            sessions: Arc::new(Sessions::default()),
            clock,
            secure_cookies: false,
        }
    }

    /// Marks the session cookie `Secure`: set it when the server is reached over https (a
    /// TLS proxy in front). Off by default, since the server binds loopback over plain http
    /// and a `Secure` cookie would never be sent back.
    pub fn with_secure_cookies(mut self, secure: bool) -> WebState {
        self.secure_cookies = secure;
        self
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The scope of a request: its bearer token, else its session cookie.
    pub(crate) fn scope_of(&self, parts: &Parts) -> Option<Scope> {
        if let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::bearer)
        {
            return self.tokens.check(token);
        }
        let now = self.now();
        parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::session_cookie)
            .find_map(|id| self.sessions.get(id, now))
    }

    /// Runs a (blocking, SQLite-backed) query off the async workers.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn FleetQuery) -> Result<T> + Send + 'static,
    {
        let q = self.query.clone();
        tokio::task::spawn_blocking(move || f(q.as_ref()))
            .await
            .context("fleet query task panicked")?
    }
}

/// A page request's scope; without one the browser is sent to `/login` (303).
pub struct PageAuth(pub Scope);

/// An API request's scope; without one the answer is 401 JSON.
pub struct ApiAuth(pub Scope);

impl FromRequestParts<WebState> for PageAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        match state.scope_of(parts) {
            Some(s) => Ok(PageAuth(s)),
            None => {
                let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let target = if path == "/" {
                    "/login".to_string()
                } else {
                    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
                    format!("/login?next={next}")
                };
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

impl FromRequestParts<WebState> for ApiAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        match state.scope_of(parts) {
            Some(s) => Ok(ApiAuth(s)),
            None => Err(api::error(
                StatusCode::UNAUTHORIZED,
                "authentication required: Authorization: Bearer TOKEN",
            )),
        }
    }
}

/// The whole application: pages, API, login, health and the stylesheet, with security headers.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(pages::fleet))
        .route("/c/{client}", get(pages::client))
        .route("/c/{client}/h/{host}", get(pages::host))
        .route("/c/{client}/h/{host}/control/{control_id}", get(pages::control))
        .route("/c/{client}/h/{host}/b/{bundle_id}", get(pages::bundle))
        .route("/api/v1/fleet", get(api::fleet))
        .route("/api/v1/c/{client}", get(api::client))
        .route("/api/v1/c/{client}/h/{host}", get(api::host))
        .route("/api/v1/c/{client}/h/{host}/control/{control_id}", get(api::control))
        .route("/api/v1/c/{client}/h/{host}/b/{bundle_id}", get(api::bundle))
        .route("/api/v1/c/{client}/packet/{month}", get(api::packet))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", get(pages::logout_form).post(pages::logout))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/static/fleet.css", get(layout::stylesheet))
        // Browsers ask for it on every site; an empty answer keeps 404s out of their consoles.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes (then finishes open requests).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr().context("reading the listener's address")?;
    tracing::info!(%addr, "fleet web UI listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("serving the fleet web UI on {addr}"))
}
