//! The statistics and control API, in Node-Media-Server 2.x shapes, and the Prometheus metrics.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/server` | OS, CPU, memory, Rill's traffic, process, client counts |
//! | `GET /api/streams` | `{app: {stream: {publisher, subscribers, bitrate_in_kbps, bitrate_out_kbps}}}` |
//! | `GET /api/streams/{app}/{stream}` | one entry of the above, 404 if the hub has no such stream |
//! | `DELETE /api/streams/{app}/{stream}` | kicks the publisher: 204, or 404 if nobody publishes |
//! | `GET /api/sessions` | every session (RTMP connections, HTTP-FLV and WS-FLV viewers) |
//! | `DELETE /api/sessions/{id}` | ends that session: 204, or 404 if unknown |
//! | `GET /metrics` | Prometheus text format 0.0.4 |
//! | `/api/relay…` | the relays (see [`super::relay_api`]) |
//!
//! With `auth.api`, every route here (metrics included: Prometheus scrapers speak Basic auth, and
//! stream names and traffic are no less sensitive there) requires Basic auth; media routes stay
//! open. Without `auth.api`, the `DELETE` routes (and every other change under `/api`) are for
//! loopback clients only, and only with `auth.api_loopback` (see [`super::api_guard`]).
//! Node-Media-Server has no metrics; everything else keeps its field names.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::basic_auth::{self, BasicAuth};
use crate::control::metrics;
use crate::control::stats::{Stats, StreamStats};
use crate::server::Context;

/// What the handlers share: the server and the statistics state that lives between requests.
#[derive(Clone)]
pub struct ApiState {
    ctx: Arc<Context>,
    stats: Arc<Stats>,
}

/// The API and metrics routes, behind Basic auth when `auth.api` is set.
pub fn router(ctx: Arc<Context>) -> Router {
    let auth = &ctx.config.auth;
    let login = auth
        .api
        .then(|| BasicAuth::new("rill", &auth.api_user, &auth.api_pass));
    let state = ApiState {
        ctx: ctx.clone(),
        stats: Arc::new(Stats::new()),
    };
    let routes = Router::new()
        .route("/api/server", get(server))
        .route("/api/streams", get(streams))
        .route(
            "/api/streams/{app}/{stream}",
            get(stream).delete(kick_publisher),
        )
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", axum::routing::delete(kick_session))
        .route("/metrics", get(prometheus))
        .with_state(state)
        .merge(super::relay_api::router(ctx));
    match login {
        Some(login) => routes.route_layer(axum::middleware::from_fn_with_state(
            login,
            basic_auth::require,
        )),
        None => routes,
    }
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": format!("no such {what}") })),
    )
        .into_response()
}

async fn server(State(s): State<ApiState>) -> Response {
    Json(s.stats.server(&s.ctx)).into_response()
}

async fn streams(State(s): State<ApiState>) -> Response {
    let mut by_app: BTreeMap<String, BTreeMap<String, StreamStats>> = BTreeMap::new();
    for st in s.stats.streams(&s.ctx) {
        by_app
            .entry(st.app.clone())
            .or_default()
            .insert(st.name.clone(), st);
    }
    Json(by_app).into_response()
}

async fn stream(State(s): State<ApiState>, Path((app, name)): Path<(String, String)>) -> Response {
    match s.stats.stream(&s.ctx, &app, &name) {
        Some(st) => Json(st).into_response(),
        None => not_found("stream"),
    }
}

async fn kick_publisher(
    State(s): State<ApiState>,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    let publisher = s
        .ctx
        .hub
        .stream(&app, &name)
        .filter(|st| st.is_live())
        .and_then(|st| st.facts().publisher);
    match publisher {
        Some(id) if s.ctx.sessions.kick(id) => {
            tracing::info!(id, stream = %format!("/{app}/{name}"), "publisher kicked by the API");
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found("publisher"),
    }
}

async fn sessions(State(s): State<ApiState>) -> Response {
    Json(s.stats.sessions(&s.ctx)).into_response()
}

async fn kick_session(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match id.parse::<u64>() {
        Ok(id) if s.ctx.sessions.kick(id) => {
            tracing::info!(id, "session kicked by the API");
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found("session"),
    }
}

async fn prometheus(State(s): State<ApiState>) -> Response {
    let text = metrics::render(&s.stats.metrics(&s.ctx));
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}
