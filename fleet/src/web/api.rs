//! The JSON API: the same [`crate::model`] structs the pages render, one endpoint per page.
//!
//! Errors are JSON too (`{"error": "..."}`): 401 without credentials, 404 for anything unknown
//! *or outside the caller's scope* (so a clinic's token cannot probe for other clinics), 500
//! with no detail (the detail goes to the server log, not to the caller).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::{ApiAuth, WebState};
use crate::model::{FleetView, Scope};

/// A JSON error answer.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn answer<T: Serialize>(result: anyhow::Result<Option<T>>) -> Response {
    match result {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "not found"),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fleet query failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error (see the server log)")
        }
    }
}

/// Removes from a fleet view anything `scope` may not see. The index already scopes its
/// answers; this is the second line, so a bug there cannot list another clinic.
pub(crate) fn scoped_fleet(scope: &Scope, mut v: FleetView) -> FleetView {
    v.clients.retain(|c| scope.sees(&c.client_id));
    v.attention.retain(|h| scope.sees(&h.client_id));
    v
}

/// `GET /api/v1/fleet`.
pub async fn fleet(State(st): State<WebState>, ApiAuth(scope): ApiAuth) -> Response {
    let now = st.now();
    let s = scope.clone();
    answer(
        st.run(move |q| q.fleet(&s, now).map(|v| Some(scoped_fleet(&s, v))))
            .await,
    )
}

/// `GET /api/v1/c/{client}`.
pub async fn client(State(st): State<WebState>, ApiAuth(scope): ApiAuth, Path(client): Path<String>) -> Response {
    if !scope.sees(&client) {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let now = st.now();
    answer(st.run(move |q| q.client(&scope, &client, now)).await)
}

/// `GET /api/v1/c/{client}/h/{host}`.
pub async fn host(
    State(st): State<WebState>,
    ApiAuth(scope): ApiAuth,
    Path((client, host)): Path<(String, String)>,
) -> Response {
    if !scope.sees(&client) {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let now = st.now();
    answer(st.run(move |q| q.host(&scope, &client, &host, now)).await)
}

/// `GET /api/v1/c/{client}/h/{host}/control/{control_id}` (id percent-encoded).
pub async fn control(
    State(st): State<WebState>,
    ApiAuth(scope): ApiAuth,
    Path((client, host, control)): Path<(String, String, String)>,
) -> Response {
    if !scope.sees(&client) {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let now = st.now();
    answer(st.run(move |q| q.control(&scope, &client, &host, &control, now)).await)
}

/// `GET /api/v1/c/{client}/h/{host}/b/{bundle_id}`.
pub async fn bundle(
    State(st): State<WebState>,
    ApiAuth(scope): ApiAuth,
    Path((client, host, bundle)): Path<(String, String, String)>,
) -> Response {
    if !scope.sees(&client) {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    answer(st.run(move |q| q.bundle(&scope, &client, &host, &bundle)).await)
}

/// `GET /api/v1/c/{client}/packet/{month}`: the client's monthly packet document
/// (`packet.json` of `msp-fleet packet`), judged at the month's end, unsigned: the signed
/// packet, with its manifest, is made by `msp-fleet packet`. 400 for a month that is not
/// `YYYY-MM` or has not started.
pub async fn packet(
    State(st): State<WebState>,
    ApiAuth(scope): ApiAuth,
    Path((client, month)): Path<(String, String)>,
) -> Response {
    if !scope.sees(&client) {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let now = st.now();
    match crate::packet::month_bounds(&month) {
        Ok((start, _)) if start <= now => {}
        Ok(_) => return error(StatusCode::BAD_REQUEST, "that month has not started"),
        Err(_) => return error(StatusCode::BAD_REQUEST, "month must be YYYY-MM"),
    }
    let r = st
        .run(move |q| {
            if q.client(&scope, &client, now)?.is_none() {
                return Ok(None);
            }
            let m = crate::packet::collect(q, &scope, &client, &month, now)?;
            crate::packet::json_document(&m, now).map(Some)
        })
        .await;
    match r {
        Ok(Some(bytes)) => ([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        other => answer::<()>(other.map(|_| None)),
    }
}
