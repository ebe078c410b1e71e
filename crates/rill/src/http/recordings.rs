//! Recording control over the API (`/api/recordings`), and recorded files served back with HEAD
//! and byte ranges from `mediaroot/app/stream/`.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::basic_auth::{self, BasicAuth};
use crate::config::RecordFormat;
use crate::control::auth::query_param;
use crate::outputs::recording::{RecordOptions, Recordings};
use crate::server::Context;

/// `/api/recordings` routes, behind Basic auth when `auth.api` is set.
pub fn router(ctx: Arc<Context>) -> Router {
    let auth = &ctx.config.auth;
    let login = auth
        .api
        .then(|| BasicAuth::new("rill", &auth.api_user, &auth.api_pass));
    let routes = Router::new()
        .route("/api/recordings", get(list))
        .route(
            "/api/recordings/{app}/{stream}",
            axum::routing::post(start).delete(stop),
        )
        .with_state(ctx);
    match login {
        Some(login) => routes.route_layer(axum::middleware::from_fn_with_state(
            login,
            basic_auth::require,
        )),
        None => routes,
    }
}

/// Active recordings and the recorded files under the media root.
async fn list(State(ctx): State<Arc<Context>>) -> Response {
    let root = PathBuf::from(&ctx.config.http.mediaroot);
    let files = tokio::task::spawn_blocking(move || recorded_files(&root))
        .await
        .unwrap_or_default();
    Json(json!({ "active": ctx.recordings.list(), "files": files })).into_response()
}

/// `POST /api/recordings/{app}/{stream}?format=mp4|fmp4|flv`.
async fn start(
    State(ctx): State<Arc<Context>>,
    Path((app, stream)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let format = match query_param(q.as_deref().unwrap_or(""), "format").unwrap_or("mp4") {
        "mp4" => RecordFormat::Mp4,
        "fmp4" => RecordFormat::Fmp4,
        "flv" => RecordFormat::Flv,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("unknown format {other:?}") })),
            )
                .into_response()
        }
    };
    if !ctx.hub.stream(&app, &stream).is_some_and(|s| s.is_live()) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "stream is not live" })),
        )
            .into_response();
    }
    match Recordings::start(&ctx, &app, &stream, RecordOptions::on_demand(format)) {
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({ "recording": format!("/{app}/{stream}") })),
        )
            .into_response(),
        Err(e) => (StatusCode::CONFLICT, Json(json!({ "error": e }))).into_response(),
    }
}

/// `DELETE /api/recordings/{app}/{stream}`.
async fn stop(
    State(ctx): State<Arc<Context>>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    if ctx.recordings.stop(&app, &stream) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "not recording" })),
        )
            .into_response()
    }
}

/// Every `*.mp4`/`*.flv` two levels under the root (`app/stream/file`).
fn recorded_files(root: &FsPath) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let dirs = |p: &FsPath| {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
    };
    for app in dirs(root) {
        for stream in dirs(&app.path()) {
            for f in std::fs::read_dir(stream.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                if !(name.ends_with(".mp4") || name.ends_with(".flv")) {
                    continue;
                }
                let (a, s) = (
                    app.file_name().to_string_lossy().into_owned(),
                    stream.file_name().to_string_lossy().into_owned(),
                );
                out.push(json!({
                    "app": a,
                    "stream": s,
                    "file": name,
                    "size": f.metadata().map(|m| m.len()).unwrap_or(0),
                    "url": format!("/{a}/{s}/{name}"),
                }));
            }
        }
    }
    out
}

/// A recorded file, if `app`, `stream` and `file` are plain names of one under the media root.
pub async fn serve_file(
    ctx: &Context,
    app: &str,
    stream: &str,
    file: &str,
    req: Request,
) -> Option<Response> {
    let plain =
        |s: &str| !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\']) && s != "..";
    if !(plain(app) && plain(stream) && plain(file))
        || !(file.ends_with(".mp4") || file.ends_with(".flv"))
    {
        return None;
    }
    let path = PathBuf::from(&ctx.config.http.mediaroot)
        .join(app)
        .join(stream)
        .join(file);
    if !path.is_file() {
        return None;
    }
    let mime = if file.ends_with(".flv") {
        "video/x-flv"
    } else {
        "video/mp4"
    };
    let svc = ServeFile::new_with_mime(path, &mime.parse().ok()?);
    svc.oneshot(req).await.ok().map(IntoResponse::into_response)
}
