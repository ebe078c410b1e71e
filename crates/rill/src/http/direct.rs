//! HTTP-FLV and WS-FLV served directly on the socket, without hyper: the request head is peeked
//! and parsed here, and each batch of shared FLV tags leaves in one vectored write behind a chunk
//! or WebSocket frame header. Viewers are what the HTTP port carries most; this keeps their cost
//! that of an RTMP viewer (encode once, one write per batch, no per-viewer copy or buffer).
//!
//! Anything unusual (percent-encoded paths, a slow or oversized head, other methods) is left to
//! hyper and the router, which serve the same streams the ordinary way.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::flv::{self, Viewer};
use super::ws_frame::{self, ClientDecoder, ClientEvent, Opcode};
use crate::control::sessions::Protocol;
use crate::hub::{DirectViewer, Framing as FanoutFraming, HandBack};
use crate::io::write_all_timed;
use crate::server::Context;

/// Most bytes of a request head looked at; longer heads go to hyper.
const HEAD_MAX: usize = 4096;
/// How long the head may take to arrive complete before the connection goes to hyper.
const HEAD_WAIT: Duration = Duration::from_millis(200);
const MAX_HEADERS: usize = 32;
/// Entries kept in the write vectors once the start-up burst is out.
const KEEP_PARTS: usize = 10;

/// A request for a stream that this module serves.
#[derive(Debug, PartialEq, Eq)]
pub struct FlvRequest {
    app: String,
    name: String,
    query: String,
    /// `Sec-WebSocket-Key` of a WebSocket upgrade.
    websocket: Option<String>,
    /// HTTP/1.0: no chunked encoding, the body ends with the connection.
    http10: bool,
    head_len: usize,
}

/// Peeks at the connection's first request: `Some` if it is a plain `GET /{app}/{name}.flv`
/// (with or without a WebSocket upgrade). Nothing is consumed either way.
pub async fn detect(socket: &TcpStream) -> Option<FlvRequest> {
    let mut buf = vec![0u8; HEAD_MAX];
    let deadline = tokio::time::Instant::now() + HEAD_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let n = tokio::time::timeout_at(deadline, socket.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        match parse(buf.get(..n)?) {
            Parsed::Flv(r) => return Some(r),
            Parsed::Other => return None,
            // Peeking returns at once while the bytes are the same: wait a little for the rest.
            Parsed::Partial if n < HEAD_MAX && n > 0 => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
            }
            Parsed::Partial => return None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Flv(FlvRequest),
    Other,
    Partial,
}

fn parse(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if req.method != Some("GET") {
        return Parsed::Other;
    }
    let (Some(target), Some(version)) = (req.path, req.version) else {
        return Parsed::Other;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut segments = path.strip_prefix('/').unwrap_or("").split('/');
    let (Some(app), Some(file), None) = (segments.next(), segments.next(), segments.next()) else {
        return Parsed::Other;
    };
    let name = file.strip_suffix(".flv").unwrap_or("");
    if app.is_empty() || name.is_empty() || path.contains('%') {
        return Parsed::Other;
    }
    let header = |n: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(n))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let websocket = match header("upgrade") {
        None => None,
        Some(u) if u.eq_ignore_ascii_case("websocket") => {
            match (header("sec-websocket-key"), header("sec-websocket-version")) {
                (Some(key), Some("13")) if !key.is_empty() => Some(key.to_owned()),
                // A malformed upgrade gets hyper's and axum's answer.
                _ => return Parsed::Other,
            }
        }
        Some(_) => return Parsed::Other,
    };
    Parsed::Flv(FlvRequest {
        app: app.to_owned(),
        name: name.to_owned(),
        query: query.to_owned(),
        websocket,
        http10: version == 0,
        head_len,
    })
}

/// How each batch is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked,
    /// HTTP/1.0: the bytes as they are, the end of the body is the end of the connection.
    Raw,
    WebSocket,
}

/// How a viewer's writes are made.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Longest a write may wait for the peer.
    write: Duration,
    /// TCP_NODELAY once the start-up burst is out (`delivery.nodelay`).
    nodelay: bool,
    /// Whether the stream's fan-out may write (`delivery.direct`).
    direct: bool,
}

impl Framing {
    fn fanout(self) -> FanoutFraming {
        match self {
            Framing::Chunked => FanoutFraming::HttpChunked,
            Framing::Raw => FanoutFraming::HttpRaw,
            Framing::WebSocket => FanoutFraming::WebSocket,
        }
    }
}

/// Serves the request `detect` found, to its end.
pub async fn serve(mut socket: TcpStream, peer: SocketAddr, ctx: Arc<Context>, req: FlvRequest) {
    // The head was only peeked at: take it off the socket (it is all there already).
    let mut head = vec![0u8; req.head_len];
    if socket.read_exact(&mut head).await.is_err() {
        return;
    }
    let protocol = if req.websocket.is_some() {
        Protocol::WsFlv
    } else {
        Protocol::HttpFlv
    };
    let cors = match ctx.config.http.allow_origin.as_str() {
        "" => String::new(),
        origin => format!("Access-Control-Allow-Origin: {origin}\r\n"),
    };
    let mut viewer = match flv::admit(&ctx, &req.app, &req.name, &req.query, peer, protocol).await {
        Ok(v) => v,
        Err((status, body)) => {
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{cors}\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            return;
        }
    };
    let (framing, head) = match &req.websocket {
        Some(key) => (
            Framing::WebSocket,
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                ws_frame::accept_key(key)
            ),
        ),
        None => {
            let (framing, encoding) = if req.http10 {
                (Framing::Raw, "")
            } else {
                (Framing::Chunked, "Transfer-Encoding: chunked\r\n")
            };
            let status = StatusCode::OK;
            (
                framing,
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\nConnection: close\r\n{encoding}{cors}\r\n"
                ),
            )
        }
    };
    let limits = Limits {
        write: Duration::from_secs(ctx.config.rtmp.ping_timeout.max(10)),
        nodelay: ctx.config.delivery.media_nodelay(),
        direct: ctx.config.delivery.direct,
    };
    let reason = stream(&mut socket, &mut viewer, framing, Bytes::from(head), limits).await;
    if let Some(reason) = reason {
        viewer.end(reason);
    }
}

/// Writes batches until the viewer or the peer ends; the reason when this side saw it.
async fn stream(
    socket: &mut TcpStream,
    viewer: &mut Viewer,
    framing: Framing,
    head: Bytes,
    limits: Limits,
) -> Option<String> {
    let direct = limits.direct.then(|| {
        socket
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::net::TcpStream::from)
            .map(|fd| DirectViewer::new(fd, framing.fanout(), (*viewer.session).clone()))
    });
    let direct = direct.flatten();
    let r = stream_loop(socket, viewer, framing, head, limits, direct.as_ref()).await;
    if let Some(dv) = direct {
        dv.close();
    }
    r
}

async fn stream_loop(
    socket: &mut TcpStream,
    viewer: &mut Viewer,
    framing: Framing,
    head: Bytes,
    limits: Limits,
    direct: Option<&Arc<DirectViewer>>,
) -> Option<String> {
    let limit = limits.write;
    let (mut rd, mut wr) = socket.split();
    let mut out: Vec<Bytes> = vec![head];
    let mut body: Vec<Bytes> = Vec::new();
    // Enough for the largest control frame a WebSocket client may send; players send nothing else.
    let mut rbuf = BytesMut::with_capacity(ws_frame::MAX_HEADER + ws_frame::MAX_CONTROL_PAYLOAD);
    let mut decoder = ClientDecoder::new();
    let mut media_sent = false;
    let mut nagle_on = false;
    let mut grouped = false;
    let mut resume = None;
    // Registered once: a fresh wait on every batch would take the token's lock each time.
    let kick = viewer.session.kick.clone();
    let mut kicked = std::pin::pin!(kick.cancelled());
    loop {
        if !out.is_empty() {
            if let Err(e) = write_all_timed(&mut wr, &mut out, limit).await {
                return Some(e.to_string());
            }
            out.clear();
            if out.capacity() > KEEP_PARTS {
                // The start-up burst needed room that live batches never will.
                out.shrink_to(KEEP_PARTS);
                body.shrink_to(KEEP_PARTS);
                viewer.shrink();
            }
            if media_sent && !limits.nodelay && !nagle_on {
                // The start-up burst has left at once; from here on the kernel may merge writes.
                nagle_on = true;
                let _ = wr.as_ref().set_nodelay(false);
            }
        }
        if let Some(config) = resume.take() {
            // A receiver made before the rest was written would hold on to the ring's entries
            // for as long as a stalled peer takes to read.
            viewer.resume(config);
        }
        if let (true, false, Some(dv)) = (media_sent, grouped, direct) {
            grouped = viewer.go_direct(dv);
        }
        tokio::select! {
            biased;
            n = viewer.next_parts(&mut body), if !grouped => {
                let Some(len) = n else {
                    // Ended by the server (the viewer recorded why): say goodbye properly.
                    let _ = write_all_timed(&mut wr, &mut [end_of_stream(framing)], limit).await;
                    return None;
                };
                match framing {
                    Framing::Chunked => out.push(Bytes::from(format!("{len:x}\r\n"))),
                    Framing::WebSocket => out.push(ws_frame::frame_header(Opcode::Binary, len)),
                    Framing::Raw => {}
                }
                out.append(&mut body);
                if framing == Framing::Chunked {
                    out.push(Bytes::from_static(b"\r\n"));
                }
                media_sent = true;
            }
            _ = DirectViewer::handed_back(direct), if grouped => {
                grouped = false;
                if let Some(reason) = take_back(direct, &mut resume, &mut out) {
                    return Some(reason);
                }
            }
            _ = &mut kicked => {
                if grouped {
                    let _ = take_back(direct, &mut resume, &mut out);
                }
                out.push(end_of_stream(framing));
                let _ = write_all_timed(&mut wr, &mut out, limit).await;
                return Some(viewer.kick_reason());
            }
            r = rd.read_buf(&mut rbuf) => {
                match r {
                    Ok(0) => return Some("peer closed".into()),
                    Ok(_) => {}
                    Err(e) => return Some(format!("read error: {e}")),
                }
                if framing != Framing::WebSocket {
                    // A player has nothing more to say; whatever it sends is dropped.
                    rbuf.clear();
                    continue;
                }
                loop {
                    let event = decoder.decode(&mut rbuf);
                    let pong = match &event {
                        Ok(None) => break,
                        Ok(Some(ClientEvent::Ping(p))) => ws_frame::pong_frame(p),
                        Ok(Some(ClientEvent::Close(_))) => ws_frame::close_frame(1000),
                        Err(_) => ws_frame::close_frame(1002),
                    };
                    if let (true, Some(dv), Ok(Some(ClientEvent::Ping(_)))) = (grouped, direct, &event) {
                        // The group writes it before its next batch.
                        if dv.queue_control(pong.clone()) {
                            continue;
                        }
                    }
                    if grouped {
                        grouped = false;
                        let _ = take_back(direct, &mut resume, &mut out);
                    }
                    out.push(pong);
                    let reason = match event {
                        Ok(Some(ClientEvent::Close(_))) => "peer closed".to_string(),
                        Err(e) => format!("websocket protocol error: {e}"),
                        _ => continue,
                    };
                    let _ = write_all_timed(&mut wr, &mut out, limit).await;
                    return Some(reason);
                }
            }
        }
    }
}

/// Takes the viewer back from the fan-out: what the group left unwritten goes into `out` first,
/// and the subscription resumes once that is written (`resume`: with the codec configuration if
/// true); the reason to end the viewer, if writing failed.
fn take_back(
    direct: Option<&Arc<DirectViewer>>,
    resume: &mut Option<bool>,
    out: &mut Vec<Bytes>,
) -> Option<String> {
    let dv = direct?;
    let (rest, reason) = dv.reclaim();
    out.extend(rest);
    if let Some(HandBack::Failed(e)) = reason {
        return Some(e);
    }
    *resume = Some(HandBack::resends_config(reason.as_ref()));
    None
}

/// What ends the body when the server ends a viewer.
fn end_of_stream(framing: Framing) -> Bytes {
    match framing {
        Framing::Chunked => Bytes::from_static(b"0\r\n\r\n"),
        Framing::Raw => Bytes::new(),
        Framing::WebSocket => ws_frame::close_frame(1001),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flv(head: &str) -> FlvRequest {
        match parse(head.as_bytes()) {
            Parsed::Flv(r) => r,
            other => panic!("{head:?}: {other:?}"),
        }
    }

    #[test]
    fn plain_and_websocket_flv_requests_are_recognised() {
        let r = flv("GET /live/cam.flv?sign=1-abc HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            (r.app.as_str(), r.name.as_str(), r.query.as_str()),
            ("live", "cam", "sign=1-abc")
        );
        assert_eq!((r.websocket, r.http10, r.head_len), (None, false, 50));
        let r = flv("GET /live/cam.flv HTTP/1.0\r\n\r\n");
        assert!(r.http10);
        let r = flv("GET /a/b.flv HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(r.websocket.as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for head in [
            "POST /live/cam.flv HTTP/1.1\r\n\r\n",
            "HEAD /live/cam.flv HTTP/1.1\r\n\r\n",
            "GET /live/cam.m3u8 HTTP/1.1\r\n\r\n",
            "GET /cam.flv HTTP/1.1\r\n\r\n",
            "GET /live/x/cam.flv HTTP/1.1\r\n\r\n",
            "GET /live/.flv HTTP/1.1\r\n\r\n",
            "GET //cam.flv HTTP/1.1\r\n\r\n",
            "GET /live/ca%20m.flv HTTP/1.1\r\n\r\n",
            "GET /api/streams HTTP/1.1\r\n\r\n",
            "GET /live/cam.flv HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            "GET /live/cam.flv HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "GET /live/cam.flv HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "\x16\x03\x01garbage",
        ] {
            assert_eq!(parse(head.as_bytes()), Parsed::Other, "{head:?}");
        }
    }

    #[test]
    fn a_head_cut_anywhere_is_partial_never_a_panic() {
        let head = "GET /live/cam.flv HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
        for n in 0..head.len() {
            assert_ne!(
                parse(&head.as_bytes()[..n]),
                Parsed::Other,
                "cut at {n} is not an error"
            );
            assert!(!matches!(parse(&head.as_bytes()[..n]), Parsed::Flv(_)));
        }
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            parse(format!("GET /live/cam.flv HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Parsed::Other
        );
    }
}
