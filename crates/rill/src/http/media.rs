//! HLS and DASH over HTTP: `/{app}/{stream}/index.m3u8`, `index.mpd` and the segments beside them,
//! served from memory. Playlists are short-cached and honour LL-HLS blocking reload
//! (`_HLS_msn`/`_HLS_part`); segments are immutable (their names are never reused) and support
//! HEAD and byte ranges. Names are looked up, never joined to a path, so traversal cannot happen.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::control::auth::{query_param, Action, SignError};
use crate::outputs::store::{HlsProgress, MediaStore};
use crate::server::Context;

/// Longest a blocking playlist reload or a preload-hinted part is held.
const MAX_HOLD: Duration = Duration::from_secs(10);

/// `GET /{app}/{stream}/{file}`.
pub async fn serve(
    State(ctx): State<Arc<Context>>,
    Path((app, stream, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let query = query.unwrap_or_default();
    let is_playlist = file == "index.m3u8" || file == "index.mpd";
    if is_playlist {
        if let Err(e) = ctx.sign.check(Action::Play, &app, &stream, &[&query]) {
            let status = if e == SignError::Missing {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FORBIDDEN
            };
            return (status, "unauthorized\n").into_response();
        }
    }
    let Some(store) = store(&ctx, &app, &stream, &query, is_playlist).await else {
        return recorded(&ctx, &app, &stream, &file, req).await;
    };
    match file.as_str() {
        "index.m3u8" => playlist(&store, &query).await,
        "index.mpd" => match store.mpd() {
            Some(mpd) => text(mpd, "application/dash+xml"),
            None => not_found(),
        },
        _ => match segment(&store, &file).await {
            Some(data) => ranged(data, content_type(&file), req.headers()),
            None => recorded(&ctx, &app, &stream, &file, req).await,
        },
    }
}

/// The HLS/DASH output of `app/stream`. A request for a stream that a pull relay can bring
/// starts the pull (and keeps it running while requests come); a playlist request waits for the
/// stream's output up to `relay.play_wait`.
async fn store(
    ctx: &Arc<Context>,
    app: &str,
    stream: &str,
    query: &str,
    wait: bool,
) -> Option<Arc<MediaStore>> {
    let pulled = ctx.relays.touch(ctx, app, stream, query);
    if let Some(store) = ctx.outputs.store(app, stream) {
        return Some(store);
    }
    if !(pulled && wait) {
        return None;
    }
    let limit = Duration::from_secs(ctx.config.relay.play_wait);
    let until = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(store) = ctx.outputs.store(app, stream) {
            return Some(store);
        }
    }
    None
}

/// A recording on disk (MP4/FLV under the media root), or 404.
async fn recorded(ctx: &Context, app: &str, stream: &str, file: &str, req: Request) -> Response {
    super::recordings::serve_file(ctx, app, stream, file, req)
        .await
        .unwrap_or_else(not_found)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn text(body: String, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Playlists change every segment (or part): caches may hold them for a moment at most.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=1, must-revalidate"),
    );
    r
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("ts") => "video/mp2t",
        Some("mp4") | Some("m4s") if file.contains("-audio-") => "audio/mp4",
        Some("mp4") | Some("m4s") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// The playlist, held until it contains `_HLS_msn` (and `_HLS_part`) when those are given.
async fn playlist(store: &MediaStore, query: &str) -> Response {
    let msn = query_param(query, "_HLS_msn").map(|v| v.parse::<u64>());
    let part = query_param(query, "_HLS_part").map(|v| v.parse::<usize>());
    let (msn, part) = match (msn, part) {
        (None, None) => (None, None),
        (Some(Ok(m)), None) => (Some(m), None),
        (Some(Ok(m)), Some(Ok(p))) => (Some(m), Some(p)),
        // RFC 8216bis 6.2.5.2: a part without a segment, or unparsable values, is a bad request.
        _ => return (StatusCode::BAD_REQUEST, "bad _HLS_msn/_HLS_part\n").into_response(),
    };
    if let Some(m) = msn {
        // More than two segments ahead of what exists can never be answered in time.
        if m > store.progress().next_msn + 2 {
            return (StatusCode::BAD_REQUEST, "_HLS_msn is too far ahead\n").into_response();
        }
    }
    let mut changes = store.subscribe();
    let wait = async {
        loop {
            let current = store.playlist();
            match (&current, msn) {
                (Some((text, progress)), Some(m)) if progress.has(m, part) || progress.ended => {
                    return Some(text.clone())
                }
                (Some((text, _)), None) => return Some(text.clone()),
                _ => {}
            }
            if changes.changed().await.is_err() {
                return current.map(|(t, _)| t);
            }
        }
    };
    match tokio::time::timeout(MAX_HOLD, wait).await {
        Ok(Some(text)) => self::text(text, "application/vnd.apple.mpegurl"),
        Ok(None) => not_found(),
        // RFC 8216bis: a request that cannot be satisfied in time gets 503.
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "playlist update not ready\n",
        )
            .into_response(),
    }
}

/// `part-EPOCH-MSN.INDEX.m4s` → (msn, index).
fn part_position(file: &str) -> Option<(u64, usize)> {
    let stem = file.strip_prefix("part-")?.strip_suffix(".m4s")?;
    let (_, pos) = stem.split_once('-')?;
    let (msn, index) = pos.split_once('.')?;
    Some((msn.parse().ok()?, index.parse().ok()?))
}

/// A file of the store. A part not there yet is waited for only if it is the one the playlist
/// announces next (its preload hint) and the stream goes on.
async fn segment(store: &MediaStore, file: &str) -> Option<Bytes> {
    if let Some(d) = store.get(file) {
        return Some(d);
    }
    let (msn, index) = part_position(file)?;
    let announced = |p: &HlsProgress| {
        !p.ended
            && ((msn == p.next_msn && index <= p.parts) || (msn == p.next_msn + 1 && index == 0))
    };
    if !announced(&store.progress()) {
        return None;
    }
    let mut changes = store.subscribe();
    let wait = async {
        loop {
            if let Some(d) = store.get(file) {
                return Some(d);
            }
            if !announced(&store.progress()) && store.get(file).is_none() {
                return None;
            }
            changes.changed().await.ok()?;
        }
    };
    tokio::time::timeout(MAX_HOLD, wait).await.ok().flatten()
}

/// A segment response, honouring a single `Range: bytes=` request.
fn ranged(data: Bytes, content_type: &'static str, headers: &HeaderMap) -> Response {
    let total = data.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, total));
    let (status, body, content_range) = match range {
        None => (StatusCode::OK, data, None),
        Some(Some((start, end))) => {
            let part = data.slice(start as usize..=end as usize);
            (
                StatusCode::PARTIAL_CONTENT,
                part,
                Some(format!("bytes {start}-{end}/{total}")),
            )
        }
        Some(None) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Segment names are never reused, so CDNs and players may keep them for good.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    r
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → inclusive (start, end); `None` when unsatisfiable.
fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (total.saturating_sub(n), total - 1)
        }
        (a, "") => (a.parse().ok()?, total - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(total - 1)),
    };
    (start <= end && start < total).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=x-1", 100), None);
    }

    #[test]
    fn part_positions() {
        assert_eq!(part_position("part-1795472903-12.3.m4s"), Some((12, 3)));
        assert_eq!(part_position("part-x.m4s"), None);
        assert_eq!(part_position("seg-1-2.m4s"), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("seg-1-2.ts"), "video/mp2t");
        assert_eq!(content_type("dash-1-audio-3.m4s"), "audio/mp4");
        assert_eq!(content_type("init-1-1.mp4"), "video/mp4");
    }
}
