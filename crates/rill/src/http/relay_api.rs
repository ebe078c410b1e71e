//! The relay API, as Node-Media-Server 2.4+ has it, answering in its shapes:
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/relay` | `{app: {name: {relays: [{app, name, path, url, mode, ts, id, …}]}}}` |
//! | `GET /api/relay/{id}` | `[relay]` (empty if unknown) |
//! | `GET /api/relay/{app}/{name}` | the relays of that stream, as an array |
//! | `POST /api/relay/pull {url, app, name, rtsp_transport?}` | pulls `url` into `app/name`: the id |
//! | `POST /api/relay/push {url, app, name}` | pushes `app/name` to `url`: the id |
//! | `POST /api/relay/task {path, url}` | `path` `/app/name` pushed to `url`, or a source URL pulled into the local `url` |
//! | `DELETE /api/relay/{id}` | stops it: `OK`, or 404 |
//!
//! Bodies are JSON or `application/x-www-form-urlencoded`; a missing field is a 400. Unlike NMS,
//! the relays of the configuration are listed too, and each also reports `state`, `restarts`,
//! `last_error`, `bytes` and `started_at` (extra fields an NMS client ignores). The `POST` and
//! `DELETE` routes go through [`super::api_guard`] like every change under `/api`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::config::RtspTransport;
use crate::relay::{RelayView, Relays};
use crate::server::Context;

/// Largest request body: a relay is a few URLs.
const MAX_BODY: usize = 16 * 1024;

pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/api/relay", get(list))
        .route("/api/relay/pull", post(pull))
        .route("/api/relay/push", post(push))
        .route("/api/relay/task", post(task))
        .route("/api/relay/{id}", get(by_id).delete(delete))
        .route("/api/relay/{app}/{name}", get(by_name))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

type Tree = BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, Vec<RelayView>>>>;

async fn list(State(ctx): State<Arc<Context>>) -> Json<Tree> {
    let mut tree = Tree::new();
    for r in ctx.relays.list() {
        tree.entry(r.app.clone())
            .or_default()
            .entry(r.name.clone())
            .or_default()
            .entry("relays")
            .or_default()
            .push(r.view());
    }
    Json(tree)
}

async fn by_id(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Json<Vec<RelayView>> {
    Json(ctx.relays.get(&id).map(|r| r.view()).into_iter().collect())
}

async fn by_name(
    State(ctx): State<Arc<Context>>,
    Path((app, name)): Path<(String, String)>,
) -> Json<Vec<RelayView>> {
    Json(
        ctx.relays
            .list()
            .into_iter()
            .filter(|r| r.app == app && r.name == name)
            .map(|r| r.view())
            .collect(),
    )
}

async fn delete(State(ctx): State<Arc<Context>>, Path(id): Path<String>) -> Response {
    if ctx.relays.remove(&id) {
        tracing::info!(relay = %id, "relay deleted by the API");
        "OK".into_response()
    } else {
        (StatusCode::NOT_FOUND, "Not Found").into_response()
    }
}

async fn pull(State(ctx): State<Arc<Context>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = match Fields::parse(&headers, &body, &["url", "app", "name"]) {
        Ok(f) => f,
        Err(e) => return bad(&e),
    };
    let transport = match f.get("rtsp_transport") {
        "" | "tcp" => RtspTransport::Tcp,
        "udp" => RtspTransport::Udp,
        other => return bad(&format!("rtsp_transport {other:?} is not tcp or udp")),
    };
    created(Relays::add_pull(
        &ctx,
        f.get("url"),
        f.get("app"),
        f.get("name"),
        transport,
    ))
}

async fn push(State(ctx): State<Arc<Context>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = match Fields::parse(&headers, &body, &["url", "app", "name"]) {
        Ok(f) => f,
        Err(e) => return bad(&e),
    };
    created(Relays::add_push(
        &ctx,
        f.get("app"),
        f.get("name"),
        f.get("url"),
    ))
}

async fn task(State(ctx): State<Arc<Context>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = match Fields::parse(&headers, &body, &["path", "url"]) {
        Ok(f) => f,
        Err(e) => return bad(&e),
    };
    let (path, url) = (f.get("path"), f.get("url"));
    if let Some((app, name)) = local_stream(path) {
        return created(Relays::add_push(&ctx, app, name, url));
    }
    // A source pulled into a local stream, named by its path or by its local RTMP URL.
    let local = local_stream(url)
        .map(|(a, n)| (a.to_owned(), n.to_owned()))
        .or_else(|| {
            crate::client::RtmpUrl::parse(url)
                .ok()
                .filter(|u| u.port == ctx.rtmp_addr.port())
                .map(|u| (u.app.clone(), u.stream_name().to_owned()))
        });
    match local {
        Some((app, name)) => created(Relays::add_pull(
            &ctx,
            path,
            &app,
            &name,
            RtspTransport::Tcp,
        )),
        None => bad("one of path and url must be a local stream (/app/name)"),
    }
}

/// `/app/name` → (app, name).
fn local_stream(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (app, name) = rest.split_once('/')?;
    (!app.is_empty() && !name.is_empty() && !name.contains('/')).then_some((app, name))
}

fn created(r: Result<String, crate::relay::RelayError>) -> Response {
    match r {
        Ok(id) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], id).into_response(),
        Err(e) => bad(&e.to_string()),
    }
}

fn bad(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}

/// A request body's fields, from JSON or a form.
struct Fields(HashMap<String, String>);

impl Fields {
    /// The fields of `body`; an error (for a 400) if it cannot be read or one of `required` is missing or empty.
    fn parse(headers: &HeaderMap, body: &[u8], required: &[&str]) -> Result<Fields, String> {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let map: HashMap<String, String> = if json {
            let value: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(body).map_err(|e| format!("bad JSON body: {e}"))?;
            value
                .into_iter()
                .filter_map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k, s)),
                    serde_json::Value::Number(n) => Some((k, n.to_string())),
                    serde_json::Value::Bool(b) => Some((k, b.to_string())),
                    _ => None,
                })
                .collect()
        } else {
            serde_urlencoded::from_bytes(body).map_err(|e| format!("bad form body: {e}"))?
        };
        if let Some(missing) = required
            .iter()
            .find(|k| map.get(**k).is_none_or(|v| v.is_empty()))
        {
            return Err(format!("missing field {missing:?}"));
        }
        Ok(Fields(map))
    }

    fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_stream_paths() {
        assert_eq!(local_stream("/live/s"), Some(("live", "s")));
        assert_eq!(local_stream("live/s"), None);
        assert_eq!(local_stream("/live/"), None);
        assert_eq!(local_stream("/a/b/c"), None);
        assert_eq!(local_stream("rtmp://h/a/b"), None);
    }

    #[test]
    fn bodies_as_json_or_form() {
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let f = Fields::parse(
            &json,
            br#"{"url":"rtmp://h/a/b","app":"x","name":"y"}"#,
            &["url"],
        )
        .unwrap();
        assert_eq!(f.get("app"), "x");
        let f = Fields::parse(
            &HeaderMap::new(),
            b"url=rtmp%3A%2F%2Fh%2Fa%2Fb&app=x",
            &["url"],
        )
        .unwrap();
        assert_eq!(f.get("url"), "rtmp://h/a/b");
        let e = Fields::parse(&HeaderMap::new(), b"app=x", &["url"])
            .err()
            .unwrap();
        assert!(e.contains("url"), "{e}");
        assert!(Fields::parse(&json, b"{not json", &["url"]).is_err());
        assert!(Fields::parse(&json, br#"{"url":""}"#, &["url"]).is_err());
    }
}
