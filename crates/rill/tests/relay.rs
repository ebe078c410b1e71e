//! The relay (Node-Media-Server's `relay`), black-box: servers started in-process from TOML text,
//! observed only over the network (RTMP, HTTP-FLV, WS-FLV, HLS, the HTTP API) with ffmpeg/ffprobe,
//! Rill's own RTMP client and a raw HTTP client; the third-party RTMP peer is Debian's nginx-rtmp.
//!
//! What is specified here:
//! - `mode = "pull"`: a play of a stream the edge does not have starts ONE upstream play of
//!   `edge/app/stream`, shared by every viewer (RTMP, HTTP-FLV, WS-FLV, HLS); it outlives its last
//!   viewer by `idle_timeout` (a viewer arriving then reuses it), then stops and is not retried;
//!   a stream the origin does not have is refused after `play_wait` (RTMP StreamNotFound, HTTP 404);
//! - `mode = "static"`: started with the server, kept alive across an origin restart (the viewer
//!   stays connected, timestamps monotonic, `state` and `restarts` in the API); files (FLV, MP4
//!   through `[relay] ffmpeg`) loop;
//! - `mode = "push"`: every publish of the app is pushed (with its query args) to another Rill and
//!   to nginx-rtmp, comes back after the target restarts, and ends with the publish;
//! - `/api/relay` (NMS 2.4 shape): create (JSON and form bodies), list, get by id and by app/name,
//!   400 on a missing field, delete (200 `OK`, then 404), Basic auth when `[auth] api = true`;
//! - loops (a relay onto the same server's same stream) are refused.
//!
//! Two tests run today and check the peers themselves: nginx-rtmp round trip and the clip maker.

mod common;
use common::relay_peers;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use relay_peers::{http_get_status, http_request, make_clip, which, Body, HttpReply, NginxRtmp};
use rill::{Event, ServerHandle};
use serde_json::{json, Value};
use tokio::process::Child;
use tokio::time::{sleep, timeout};

const APP: &str = "live";
const MODES: [&str; 3] = ["static", "pull", "push"];
const STATES: [&str; 4] = ["connecting", "live", "backing_off", "stopped"];
const RELAY_FIELDS: [&str; 12] = [
    "app",
    "name",
    "path",
    "url",
    "mode",
    "ts",
    "id",
    "state",
    "restarts",
    "last_error",
    "bytes",
    "started_at",
];

// ---------------------------------------------------------------------------------------------
// Servers from TOML text
// ---------------------------------------------------------------------------------------------

/// `[rtmp]` and `[http]` on loopback (RTMP on `rtmp_port`, 0 for an ephemeral one; HTTP always
/// ephemeral), then `extra` (the `[relay]`, `[auth]`, `[[trans.tasks]]` tables of a test).
fn toml_text(rtmp_port: u16, extra: &str) -> String {
    format!(
        "[rtmp]\nhost = \"127.0.0.1\"\nport = {rtmp_port}\n\n\
         [http]\nhost = \"127.0.0.1\"\nport = 0\n\n\
         [https]\nhost = \"127.0.0.1\"\nport = 0\n\n\
         [rtmps]\nhost = \"127.0.0.1\"\nport = 0\n\n{extra}"
    )
}

/// The configuration of [`toml_text`], parsed and validated as a config file is.
fn config_on(rtmp_port: u16, extra: &str) -> rill::Config {
    let text = toml_text(rtmp_port, extra);
    rill::Config::from_toml(&text, "relay test config")
        .unwrap_or_else(|e| panic!("the relay configuration is refused: {e}\n---\n{text}"))
}

fn config(extra: &str) -> rill::Config {
    config_on(0, extra)
}

/// A plain server (no relay) whose RTMP listener is on `port`: an origin or target coming back on
/// the port its peers know. The old listener has just closed, so the bind is retried for 5 s.
async fn restart_on(
    port: u16,
    builder: impl Fn(rill::Config) -> rill::ServerBuilder,
) -> ServerHandle {
    let mut config = rill::Config::loopback_ephemeral();
    config.rtmp.port = port;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match timeout(Duration::from_secs(10), builder(config.clone()).start())
            .await
            .expect("server start timed out")
        {
            Ok(server) => return server,
            Err(e) if Instant::now() < deadline => {
                eprintln!("restart on RTMP port {port}: {e}; retrying");
                sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot restart a server on RTMP port {port}: {e}"),
        }
    }
}

fn local_rtmp(server: &ServerHandle, app: &str, name: &str) -> String {
    format!(
        "rtmp://127.0.0.1:{}/{app}/{name}",
        server.rtmp_addr().port()
    )
}

/// A light live publisher (320x240 15 fps, keyframe every second, AAC) for the tests that need a
/// stream but do not look at its pictures.
fn spawn_small_publisher(url: &str, seconds: u32) -> Child {
    let mut cmd = ffmpeg_test_source("ffmpeg", (320, 240), 15, 22050, true);
    cmd.args(X264_LIVE)
        .args([
            "-g", "15", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k",
        ])
        .args(["-t", &seconds.to_string(), "-f", "flv", url]);
    spawn_quiet(&mut cmd, "ffmpeg (small publisher)")
}

async fn kill(mut child: Child) {
    let _ = child.start_kill();
    let _ = timeout(Duration::from_secs(5), child.wait()).await;
}

// ---------------------------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------------------------

/// Samples `probe` every 100 ms in the background until [`Watch::stop`].
struct Watch<T> {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<T>>,
}

fn watch<T, F, Fut>(mut probe: F) -> Watch<T>
where
    T: Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        while !flag.load(Ordering::SeqCst) {
            seen.push(probe().await);
            sleep(Duration::from_millis(100)).await;
        }
        seen
    });
    Watch { stop, task }
}

impl<T> Watch<T> {
    async fn stop(self) -> Vec<T> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("watch task panicked")
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP API
// ---------------------------------------------------------------------------------------------

/// A server's HTTP API, with Basic credentials when `[auth] api = true`.
#[derive(Clone, Copy)]
struct Api {
    addr: SocketAddr,
    login: Option<(&'static str, &'static str)>,
}

impl Api {
    fn of(server: &ServerHandle) -> Api {
        Api {
            addr: server.http_addr(),
            login: None,
        }
    }

    fn with_login(server: &ServerHandle, user: &'static str, pass: &'static str) -> Api {
        Api {
            addr: server.http_addr(),
            login: Some((user, pass)),
        }
    }

    async fn get(self, path: &str) -> HttpReply {
        http_request(self.addr, "GET", path, self.login, Body::None).await
    }

    async fn get_json(self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    async fn post(self, path: &str, body: Body<'_>) -> HttpReply {
        http_request(self.addr, "POST", path, self.login, body).await
    }

    async fn delete(self, path: &str) -> HttpReply {
        http_request(self.addr, "DELETE", path, self.login, Body::None).await
    }

    /// `GET /api/relay`, its shape checked, flattened into the relay objects.
    async fn relays(self) -> Vec<Value> {
        let all = self.get_json("/api/relay").await;
        flatten_relays(&all)
    }

    /// The first relay listed for `app/name` (of `mode`, if given).
    async fn relay(self, app: &str, name: &str, mode: Option<&str>) -> Option<Value> {
        self.relays()
            .await
            .into_iter()
            .find(|r| r["app"] == app && r["name"] == name && mode.is_none_or(|m| r["mode"] == m))
    }

    /// The `state` of [`Api::relay`].
    async fn relay_state(self, app: &str, name: &str, mode: Option<&str>) -> Option<String> {
        self.relay(app, name, mode)
            .await
            .map(|r| r["state"].as_str().unwrap_or("<not a string>").to_owned())
    }

    /// Whether the relay reports a lost peer (`backing_off` or `connecting`) within 8 s.
    async fn reports_loss(self, app: &str, name: &str, mode: &str) -> bool {
        eventually(Duration::from_secs(8), || async move {
            matches!(
                self.relay_state(app, name, Some(mode)).await.as_deref(),
                Some("backing_off" | "connecting")
            )
        })
        .await
    }

    /// `GET /api/streams` → `[app][stream]`, `Null` when the stream is not listed.
    async fn stream(self, app: &str, stream: &str) -> Value {
        let all = self.get_json("/api/streams").await;
        all.get(app)
            .and_then(|a| a.get(stream))
            .cloned()
            .unwrap_or(Value::Null)
    }

    async fn subscribers(self, app: &str, stream: &str) -> Vec<Value> {
        self.stream(app, stream).await["subscribers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The session ids of the stream's subscribers.
    async fn subscriber_ids(self, app: &str, stream: &str) -> Vec<String> {
        self.subscribers(app, stream)
            .await
            .iter()
            .map(|s| s["clientId"].to_string())
            .collect()
    }

    /// True when `/api/streams` lists `app/stream` with a publisher.
    async fn has_publisher(self, app: &str, stream: &str) -> bool {
        self.stream(app, stream).await["publisher"].is_object()
    }
}

/// `{ "<app>": { "<name>": { "relays": [ ... ] } } }` → the relay objects, each checked with
/// [`check_relay_fields`] and against the keys it is listed under.
fn flatten_relays(all: &Value) -> Vec<Value> {
    let apps = all
        .as_object()
        .unwrap_or_else(|| panic!("/api/relay is not an object: {all:#}"));
    let mut out = Vec::new();
    for (app, names) in apps {
        let names = names
            .as_object()
            .unwrap_or_else(|| panic!("/api/relay[{app}] is not an object: {all:#}"));
        for (name, entry) in names {
            let relays = entry["relays"].as_array().unwrap_or_else(|| {
                panic!("/api/relay[{app}][{name}].relays is not an array: {all:#}")
            });
            for r in relays {
                check_relay_fields(r, &format!("/api/relay[{app}][{name}]"));
                assert_eq!(r["app"], app.as_str(), "{r:#}");
                assert_eq!(r["name"], name.as_str(), "{r:#}");
                out.push(r.clone());
            }
        }
    }
    out
}

fn is_relay_id(id: &str) -> bool {
    id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Every field of a relay object, of the right kind.
fn check_relay_fields(r: &Value, what: &str) {
    for key in RELAY_FIELDS {
        assert!(r.get(key).is_some(), "{what}: relay without `{key}`: {r:#}");
    }
    for key in ["app", "name", "path", "url", "mode", "id", "state"] {
        assert!(r[key].is_string(), "{what}: `{key}` is not a string: {r:#}");
    }
    assert!(
        is_relay_id(r["id"].as_str().unwrap()),
        "{what}: id is not 8 characters of [A-Z0-9]: {r:#}"
    );
    assert!(
        MODES.contains(&r["mode"].as_str().unwrap()),
        "{what}: mode: {r:#}"
    );
    assert!(
        STATES.contains(&r["state"].as_str().unwrap()),
        "{what}: state: {r:#}"
    );
    assert!(r["restarts"].is_u64(), "{what}: restarts: {r:#}");
    assert!(r["bytes"].is_u64(), "{what}: bytes: {r:#}");
    assert!(
        r["last_error"].is_null() || r["last_error"].is_string(),
        "{what}: last_error: {r:#}"
    );
    assert!(!r["ts"].is_null(), "{what}: ts: {r:#}");
}

/// The relay id a successful create answered with (the body, trimmed).
fn created_id(r: &HttpReply, what: &str) -> String {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    let id = r.text().trim().to_owned();
    assert!(
        is_relay_id(&id),
        "{what}: body is not an 8-character id: {id:?}"
    );
    id
}

/// Consecutive duplicates removed.
fn changes(states: Vec<Option<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in states
        .into_iter()
        .map(|s| s.unwrap_or_else(|| "<unlisted>".into()))
    {
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    out
}

/// `live`, later `backing_off` or `connecting`, later `live` again.
fn went_down_and_back(states: &[String]) -> bool {
    let Some(up) = states.iter().position(|s| s == "live") else {
        return false;
    };
    let Some(down) = states[up..]
        .iter()
        .position(|s| s == "backing_off" || s == "connecting")
    else {
        return false;
    };
    states[up + down..].iter().any(|s| s == "live")
}

/// Asserts the origin has exactly one subscriber on `app/stream` (within 5 s, then for 1 s); its id.
async fn one_upstream(origin: Api, app: &str, stream: &str, what: &str) -> String {
    let one = eventually(Duration::from_secs(5), || async move {
        origin.subscriber_ids(app, stream).await.len() == 1
    })
    .await;
    let ids = origin.subscriber_ids(app, stream).await;
    assert!(
        one,
        "{what}: the origin has subscribers {ids:?}, expected exactly one"
    );
    for _ in 0..10 {
        sleep(Duration::from_millis(100)).await;
        let now = origin.subscriber_ids(app, stream).await;
        assert_eq!(now, ids, "{what}: the origin's subscribers changed");
    }
    ids[0].clone()
}

// ---------------------------------------------------------------------------------------------
// The peers themselves (these run today)
// ---------------------------------------------------------------------------------------------

/// nginx-rtmp as the tests start it takes a publish from ffmpeg and plays it back to ffprobe, from
/// a keyframe; after a kill and a restart on the same port it does so again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rtmp_peer_round_trip() {
    if !require_ffmpeg() {
        return;
    }
    if let Err(why) = relay_peers::nginx_rtmp() {
        tool_missing(&why);
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let mut nginx = NginxRtmp::start().await;
        for round in ["first start", "after a restart"] {
            let url = nginx.rtmp_url(APP, "peer");
            let mut publisher = spawn_ffmpeg_publisher(&url, 20);
            // nginx holds a player of a stream nobody publishes yet; it starts at a keyframe.
            let probe = ffprobe_frames(&url, 2).await;
            check_test_stream(&probe, 45, &format!("nginx-rtmp {round}"));
            assert!(
                matches!(publisher.try_wait(), Ok(None)),
                "the publisher to nginx ended early: {}",
                child_stderr(&mut publisher).await
            );
            kill(publisher).await;
            nginx.kill().await;
            assert!(
                !relay_peers::wait_accepting(nginx.addr(), Duration::from_millis(300)).await,
                "nginx still accepts after the kill"
            );
            nginx.restart().await;
        }
        assert!(nginx.is_running(), "nginx: {}", nginx.log());
    })
    .await;
}

/// The clips of the file-source test: FLV and MP4, about 2 s of H.264 1280x720 + AAC each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_maker_writes_two_second_flv_and_mp4() {
    if !require_ffmpeg() {
        return;
    }
    bounded(async {
        let ffmpeg = which("ffmpeg").expect("ffmpeg runs but is not on PATH");
        let dir = tempfile::tempdir().unwrap();
        for name in ["clip.flv", "clip.mp4"] {
            let path = dir.path().join(name);
            make_clip(&ffmpeg, &path, 2).await;
            let probe = ffprobe_frames(path.to_str().unwrap(), 10).await;
            check_test_stream(&probe, 60, name);
            let frames = video_frames(&probe);
            assert_eq!(frames.len(), 60, "{name}: 2 s at 30 fps");
            assert_eq!(
                frames.iter().filter(|f| f.key).count(),
                2,
                "{name}: a keyframe a second"
            );
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Pull on play
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_on_play_one_upstream_play_shared_by_every_viewer() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let origin = start_server().await;
        let origin_api = Api::of(&origin);
        let _publisher = publish_live(&origin, APP, "cam", 85).await;
        let origin_port = origin.rtmp_addr().port();
        let edge = start_server_from(config(&format!(
            r#"
[relay]
idle_timeout = 2
play_wait = 10

[[relay.tasks]]
app = "live"
mode = "pull"
edge = "rtmp://127.0.0.1:{origin_port}"

[[trans.tasks]]
app = "live"
hls = true
segment_duration = 1.0
playlist_length = 4
"#
        )))
        .await;
        let edge_api = Api::of(&edge);

        // Nothing is pulled before somebody plays.
        sleep(Duration::from_millis(500)).await;
        assert!(
            origin_api.subscribers(APP, "cam").await.is_empty(),
            "the edge pulled before anybody played"
        );
        assert!(!edge.is_publishing(APP, "cam"));

        // Each protocol starts the pull and gets the whole stream from a keyframe.
        let probe = ffprobe_frames(&rtmp_url(&edge, APP, "cam"), 3).await;
        check_test_stream(&probe, 70, "RTMP play on the edge");
        let probe = ffprobe_frames(&http_flv_url(&edge, APP, "cam"), 3).await;
        check_test_stream(&probe, 70, "HTTP-FLV on the edge");
        {
            let url = ws_flv_url(&edge, APP, "cam");
            let (mut ws, _) = timeout(
                Duration::from_secs(10),
                tokio_tungstenite::connect_async(url.as_str()),
            )
            .await
            .expect("WS-FLV connect to the edge timed out")
            .expect("WS-FLV connect to the edge failed");
            let (header, tags) = read_ws_flv(&mut ws, 30, "over WS-FLV from the edge").await;
            assert_eq!(header, Some((true, true)), "WS-FLV header flags");
            let video: Vec<_> = tags.iter().filter(|t| is_coded_video(t)).collect();
            let first = rill_media::flv::parse_video_header(&video[0].body).unwrap();
            assert!(
                first.keyframe,
                "WS-FLV from the edge starts without a keyframe"
            );
            assert_monotonic(
                video.iter().map(|t| Some(f64::from(t.timestamp))),
                "WS-FLV video timestamps",
            );
        }
        let playlist = format!("/{APP}/cam/index.m3u8");
        let listed = eventually(Duration::from_secs(20), || {
            let playlist = playlist.clone();
            async move {
                let r = edge_api.get(&playlist).await;
                r.status == 200 && r.text().matches("#EXTINF").count() >= 3
            }
        })
        .await;
        assert!(
            listed,
            "the edge's HLS playlist never listed 3 segments: {}",
            edge_api.get(&playlist).await.text()
        );
        let probe = ffprobe_frames(&format!("http://{}{playlist}", edge.http_addr()), 2).await;
        check_test_stream(&probe, 45, "HLS on the edge");

        // Once those viewers are gone (and idle_timeout has passed) nothing is pulled.
        let drained = eventually(Duration::from_secs(15), || async move {
            origin_api.subscribers(APP, "cam").await.is_empty()
        })
        .await;
        assert!(
            drained,
            "the origin still has subscribers long after every edge viewer left: {:?}",
            origin_api.subscribers(APP, "cam").await
        );

        // Three viewers at once: one upstream play.
        let url = rtmp_url(&edge, APP, "cam");
        let (a, b, c) = tokio::join!(
            BackgroundViewer::start(&url),
            BackgroundViewer::start(&url),
            BackgroundViewer::start(&url)
        );
        for (v, n) in [(&a, 1), (&b, 2), (&c, 3)] {
            v.assert_flowing(30, Duration::from_secs(10), &format!("edge viewer {n}"))
                .await;
        }
        let upstream = one_upstream(origin_api, APP, "cam", "3 edge viewers").await;
        let origin_sub = &origin_api.subscribers(APP, "cam").await[0];
        assert_eq!(origin_sub["protocol"], "rtmp", "{origin_sub:#}");

        // On the edge it is a full stream: published, with its 3 viewers, and its relay listed.
        let cam = edge_api.stream(APP, "cam").await;
        assert!(cam["publisher"].is_object(), "edge /api/streams: {cam:#}");
        let rtmp_viewers = cam["subscribers"]
            .as_array()
            .map(|s| s.iter().filter(|s| s["protocol"] == "rtmp").count())
            .unwrap_or(0);
        assert_eq!(rtmp_viewers, 3, "edge /api/streams: {cam:#}");
        let relay = edge_api
            .relay(APP, "cam", Some("pull"))
            .await
            .expect("no pull relay listed for live/cam on the edge");
        assert_eq!(relay["state"], "live", "{relay:#}");
        assert_eq!(
            relay["path"],
            format!("rtmp://127.0.0.1:{origin_port}/{APP}/cam"),
            "{relay:#}"
        );
        assert_eq!(relay["url"], local_rtmp(&edge, APP, "cam"), "{relay:#}");
        assert!(relay["bytes"].as_u64().unwrap() > 0, "{relay:#}");

        // Everybody leaves; a viewer arriving within idle_timeout rides the same upstream play.
        let origin_ids = watch(move || async move { origin_api.subscriber_ids(APP, "cam").await });
        drop((a, b, c));
        sleep(Duration::from_millis(700)).await;
        let late = BackgroundViewer::start(&url).await;
        late.assert_flowing(
            30,
            Duration::from_secs(5),
            "viewer arriving in the idle grace",
        )
        .await;
        let seen = origin_ids.stop().await;
        assert!(
            seen.iter()
                .all(|ids| ids == std::slice::from_ref(&upstream)),
            "the origin's subscribers during the grace should be only {upstream}: {seen:?}"
        );

        // The last viewer leaves: the pull outlives it by idle_timeout (2 s), then stops for good.
        drop(late);
        let left = Instant::now();
        sleep(Duration::from_millis(800)).await;
        assert_eq!(
            origin_api.subscriber_ids(APP, "cam").await,
            std::slice::from_ref(&upstream),
            "the pull stopped before idle_timeout"
        );
        let stopped = eventually(Duration::from_secs(6), || async move {
            origin_api.subscribers(APP, "cam").await.is_empty()
        })
        .await;
        assert!(
            stopped,
            "the pull still runs {:?} after its last viewer left (idle_timeout = 2 s)",
            left.elapsed()
        );
        for _ in 0..10 {
            sleep(Duration::from_millis(250)).await;
            assert!(
                origin_api.subscribers(APP, "cam").await.is_empty(),
                "the edge pulled again with nobody watching"
            );
        }
        assert!(
            wait_until(Duration::from_secs(3), || !edge.is_publishing(APP, "cam")).await,
            "the edge still publishes live/cam after the pull stopped"
        );
        edge.shutdown().await;
        origin.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_on_play_of_a_stream_the_origin_lacks_is_refused_after_play_wait() {
    bounded(async {
        let origin = start_server().await;
        let origin_api = Api::of(&origin);
        let origin_port = origin.rtmp_addr().port();
        let edge = start_server_from(config(&format!(
            r#"
[relay]
idle_timeout = 1
play_wait = 2

[[relay.tasks]]
app = "live"
mode = "pull"
edge = "rtmp://127.0.0.1:{origin_port}"
"#
        )))
        .await;
        let limit = Duration::from_secs(2 + 3);

        // RTMP: NetStream.Play.StreamNotFound, as the refusal of the play or right after it.
        let t0 = Instant::now();
        let outcome = timeout(limit, async {
            match rill::client::RtmpPlayer::connect(&rtmp_url(&edge, APP, "ghost")).await {
                Err(e) => e.to_string(),
                Ok(mut player) => loop {
                    match player.next_status().await {
                        Ok(Some(code)) if code.contains("StreamNotFound") => break code,
                        Ok(Some(_)) => continue,
                        Ok(None) => break "closed without StreamNotFound".to_owned(),
                        Err(e) => break e.to_string(),
                    }
                },
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("RTMP play of a missing pulled stream still held after {limit:?}")
        });
        assert!(
            outcome.contains("NetStream.Play.StreamNotFound"),
            "RTMP play of a missing pulled stream: {outcome}"
        );
        eprintln!("RTMP StreamNotFound after {:?}", t0.elapsed());

        // HTTP-FLV: 404 (not a 200 that then waits).
        let t0 = Instant::now();
        let status = http_get_status(edge.http_addr(), &format!("/{APP}/ghost.flv"), limit).await;
        assert_eq!(
            status,
            Some(404),
            "HTTP-FLV of a missing pulled stream (after {:?})",
            t0.elapsed()
        );

        // Nobody watches: no upstream play lingers or is retried.
        sleep(Duration::from_secs(2)).await;
        for _ in 0..8 {
            assert!(
                origin_api.subscribers(APP, "ghost").await.is_empty(),
                "the edge keeps playing live/ghost on the origin with no viewer"
            );
            sleep(Duration::from_millis(250)).await;
        }
        edge.shutdown().await;
        origin.shutdown().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Static relays
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pull_survives_an_origin_restart() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let origin = start_server().await;
        let origin_port = origin.rtmp_addr().port();
        let publisher = publish_live(&origin, APP, "cam", 85).await;
        let source = format!("rtmp://127.0.0.1:{origin_port}/{APP}/cam");
        let edge = start_server_from(config(&format!(
            r#"
[relay]

[[relay.tasks]]
app = "live"
mode = "static"
edge = "{source}"
name = "relayed"
"#
        )))
        .await;
        let api = Api::of(&edge);
        assert!(
            wait_until(Duration::from_secs(10), || edge
                .is_publishing(APP, "relayed"))
            .await,
            "the static relay never published live/relayed"
        );
        let live = eventually(Duration::from_secs(5), || async move {
            api.relay_state(APP, "relayed", Some("static"))
                .await
                .as_deref()
                == Some("live")
        })
        .await;
        let relay = api.relay(APP, "relayed", Some("static")).await;
        assert!(live, "static relay not listed as live: {relay:#?}");
        let relay = relay.unwrap();
        assert_eq!(relay["path"], source.as_str(), "{relay:#}");
        assert_eq!(relay["url"], local_rtmp(&edge, APP, "relayed"), "{relay:#}");
        let restarts_before = relay["restarts"].as_u64().unwrap();
        assert!(
            api.has_publisher(APP, "relayed").await,
            "not in /api/streams"
        );

        let viewer = BackgroundViewer::start(&rtmp_url(&edge, APP, "relayed")).await;
        viewer
            .assert_flowing(30, Duration::from_secs(5), "edge viewer before the restart")
            .await;

        let states =
            watch(move || async move { api.relay_state(APP, "relayed", Some("static")).await });
        // Let the watcher see the relay live before the origin goes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(publisher);
        origin.shutdown().await;
        let noticed = api.reports_loss(APP, "relayed", "static").await;
        assert!(
            noticed,
            "the relay did not report the lost origin: {:?}",
            api.relay(APP, "relayed", None).await
        );

        let origin = restart_on(origin_port, rill::Server::builder).await;
        let _publisher = publish_live(&origin, APP, "cam", 60).await;
        // The same RTMP connection gets frames again, timestamps never going back.
        viewer
            .assert_flowing(
                30,
                Duration::from_secs(25),
                "the edge viewer that stayed connected, after the origin came back",
            )
            .await;
        let back = eventually(Duration::from_secs(10), || async move {
            api.relay(APP, "relayed", Some("static"))
                .await
                .is_some_and(|r| {
                    r["state"] == "live" && r["restarts"].as_u64() > Some(restarts_before)
                })
        })
        .await;
        let relay = api.relay(APP, "relayed", Some("static")).await;
        assert!(
            back,
            "the relay is not live again with restarts >= 1: {relay:#?}"
        );
        let states = changes(states.stop().await);
        assert!(
            went_down_and_back(&states),
            "relay states should go live -> backing_off/connecting -> live: {states:?}"
        );
        edge.shutdown().await;
        origin.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_relay_of_flv_and_mp4_files_loops() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let ffmpeg = which("ffmpeg").expect("ffmpeg runs but is not on PATH");
        let dir = tempfile::tempdir().unwrap();
        let flv = dir.path().join("clip.flv");
        let mp4 = dir.path().join("clip.mp4");
        make_clip(&ffmpeg, &flv, 2).await;
        make_clip(&ffmpeg, &mp4, 2).await;
        let (flv, mp4, ffmpeg) = (
            flv.display().to_string(),
            mp4.display().to_string(),
            ffmpeg.display().to_string(),
        );
        let server = start_server_from(config(&format!(
            r#"
[relay]
ffmpeg = "{ffmpeg}"

[[relay.tasks]]
app = "live"
mode = "static"
edge = "{flv}"
name = "fromflv"

[[relay.tasks]]
app = "live"
mode = "static"
edge = "{mp4}"
name = "frommp4"
"#
        )))
        .await;
        for name in ["fromflv", "frommp4"] {
            assert!(
                wait_until(Duration::from_secs(15), || server.is_publishing(APP, name)).await,
                "the file relay never published live/{name}"
            );
        }
        let api = Api::of(&server);
        for (name, file) in [("fromflv", &flv), ("frommp4", &mp4)] {
            let relay = api
                .relay(APP, name, Some("static"))
                .await
                .unwrap_or_else(|| panic!("no static relay listed for live/{name}"));
            assert_eq!(relay["path"], file.as_str(), "{relay:#}");
        }
        // 5 s of stream time out of 2-s files: looped, with timestamps that keep going up.
        let (flv_url, mp4_url) = (
            rtmp_url(&server, APP, "fromflv"),
            rtmp_url(&server, APP, "frommp4"),
        );
        let (from_flv, from_mp4) =
            tokio::join!(ffprobe_frames(&flv_url, 5), ffprobe_frames(&mp4_url, 5));
        for (probe, what) in [(&from_flv, "FLV file relay"), (&from_mp4, "MP4 file relay")] {
            check_test_stream(probe, 120, what);
            let frames = video_frames(probe);
            let first = frames.first().and_then(|f| f.pts).unwrap();
            let last = frames.last().and_then(|f| f.pts).unwrap();
            assert!(
                last - first >= 4.0,
                "{what}: {} frames cover only {:.2} s; the 2-s file does not loop",
                frames.len(),
                last - first
            );
        }
        server.shutdown().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Push on publish
// ---------------------------------------------------------------------------------------------

type Publishes = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// A plain Rill (RTMP on `port`, 0 for any) that notes every publish's stream name and query args.
async fn start_target(port: u16, seen: &Publishes) -> ServerHandle {
    let seen = seen.clone();
    restart_on(port, move |config| {
        let seen = seen.clone();
        rill::Server::builder(config).on_pre_publish(move |e: Event| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push((e.stream.clone(), e.args.clone()));
                Ok(())
            }
        })
    })
    .await
}

fn publishes_of(seen: &Publishes, stream: &str, key: &str, value: &str) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(s, args)| s == stream && args.get(key).map(String::as_str) == Some(value))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_on_publish_to_another_rill_survives_a_target_restart() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let seen = Publishes::default();
        let target = start_target(0, &seen).await;
        let target_port = target.rtmp_addr().port();
        let source = start_server_from(config(&format!(
            r#"
[relay]

[[relay.tasks]]
app = "live"
mode = "push"
edge = "rtmp://127.0.0.1:{target_port}/live"

[[relay.tasks]]
app = "fixed"
mode = "push"
edge = "rtmp://127.0.0.1:{target_port}/live/fixedname"
appendName = false
"#
        )))
        .await;
        let api = Api::of(&source);
        assert!(
            api.relays().await.iter().all(|r| r["state"] != "live"),
            "a push relay is live before anybody publishes"
        );

        let mut publisher =
            spawn_ffmpeg_publisher(&format!("{}?token=abc", rtmp_url(&source, APP, "cam")), 85);
        wait_publishing(&source, APP, "cam", &mut publisher).await;
        assert!(
            wait_until(Duration::from_secs(10), || target.is_publishing(APP, "cam")).await,
            "the push never reached the target"
        );
        assert!(
            publishes_of(&seen, "cam", "token", "abc") >= 1,
            "the push did not carry the publish's query args: {:?}",
            seen.lock().unwrap()
        );
        let probe = ffprobe_frames(&rtmp_url(&target, APP, "cam"), 3).await;
        check_test_stream(&probe, 70, "the pushed stream on the target");
        assert!(
            Api::of(&target).has_publisher(APP, "cam").await,
            "the target's /api/streams does not show the push"
        );
        let live = eventually(Duration::from_secs(5), || async move {
            api.relay_state(APP, "cam", Some("push")).await.as_deref() == Some("live")
        })
        .await;
        let relay = api.relay(APP, "cam", Some("push")).await;
        assert!(live, "push relay not listed as live: {relay:#?}");
        let relay = relay.unwrap();
        assert_eq!(relay["path"], local_rtmp(&source, APP, "cam"), "{relay:#}");
        let to = format!("rtmp://127.0.0.1:{target_port}/{APP}/cam");
        assert!(
            relay["url"].as_str().unwrap().starts_with(&to),
            "push url should be {to}[?args]: {relay:#}"
        );
        let restarts_before = relay["restarts"].as_u64().unwrap();

        // The target goes away and comes back on the same port: the push resumes.
        target.shutdown().await;
        let noticed = api.reports_loss(APP, "cam", "push").await;
        assert!(noticed, "the push relay did not report the lost target");
        let target = start_target(target_port, &seen).await;
        assert!(
            wait_until(Duration::from_secs(15), || target.is_publishing(APP, "cam")).await,
            "the push did not come back after the target restarted"
        );
        let probe = ffprobe_frames(&rtmp_url(&target, APP, "cam"), 2).await;
        check_test_stream(&probe, 45, "the pushed stream after the target restart");
        let counted = eventually(Duration::from_secs(5), || async move {
            api.relay(APP, "cam", Some("push"))
                .await
                .is_some_and(|r| r["restarts"].as_u64() > Some(restarts_before))
        })
        .await;
        assert!(
            counted,
            "restarts did not grow: {:?}",
            api.relay(APP, "cam", None).await
        );
        assert!(
            publishes_of(&seen, "cam", "token", "abc") >= 2,
            "the retried push lost the query args: {:?}",
            seen.lock().unwrap()
        );

        // Unpublish: the push ends on the target at once.
        kill(publisher).await;
        let t0 = Instant::now();
        assert!(
            wait_until(Duration::from_millis(2500), || !target
                .is_publishing(APP, "cam"))
            .await,
            "the push still publishes on the target 2.5 s after the unpublish"
        );
        let target_api = Api::of(&target);
        assert!(
            eventually(Duration::from_secs(1), || async move {
                !target_api.has_publisher(APP, "cam").await
            })
            .await,
            "the target's /api/streams still shows the push {:?} after the unpublish",
            t0.elapsed()
        );

        // appendName = false: the edge is the whole target URL, whatever the local name.
        let mut small = spawn_small_publisher(&rtmp_url(&source, "fixed", "anything"), 40);
        wait_publishing(&source, "fixed", "anything", &mut small).await;
        assert!(
            wait_until(Duration::from_secs(10), || target
                .is_publishing(APP, "fixedname"))
            .await,
            "appendName = false: nothing published at live/fixedname on the target"
        );
        assert!(!target.is_publishing(APP, "anything"));
        assert!(!target.is_publishing("fixed", "anything"));
        kill(small).await;
        assert!(
            wait_until(Duration::from_millis(2500), || !target
                .is_publishing(APP, "fixedname"))
            .await,
            "the appendName = false push outlived its publisher"
        );
        source.shutdown().await;
        target.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_on_publish_to_nginx_rtmp_survives_an_nginx_restart() {
    if !require_ffmpeg() {
        return;
    }
    if let Err(why) = relay_peers::nginx_rtmp() {
        tool_missing(&why);
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let mut nginx = NginxRtmp::start().await;
        let source = start_server_from(config(&format!(
            r#"
[relay]

[[relay.tasks]]
app = "live"
mode = "push"
edge = "rtmp://127.0.0.1:{}/live"
"#,
            nginx.port()
        )))
        .await;
        let api = Api::of(&source);
        let publisher = publish_live(&source, APP, "cam", 85).await;
        let live = eventually(Duration::from_secs(10), || async move {
            api.relay_state(APP, "cam", Some("push")).await.as_deref() == Some("live")
        })
        .await;
        assert!(
            live,
            "push to nginx not live: {:?}; nginx log: {}",
            api.relay(APP, "cam", None).await,
            nginx.log()
        );
        let url = nginx.rtmp_url(APP, "cam");
        let probe = ffprobe_frames(&url, 3).await;
        check_test_stream(&probe, 70, "the stream pushed to nginx-rtmp");
        let relay = api.relay(APP, "cam", Some("push")).await.unwrap();
        assert!(
            relay["url"].as_str().unwrap().starts_with(&url),
            "push url should be {url}: {relay:#}"
        );
        let restarts_before = relay["restarts"].as_u64().unwrap();

        let states = watch(move || async move { api.relay_state(APP, "cam", Some("push")).await });
        nginx.kill().await;
        let noticed = api.reports_loss(APP, "cam", "push").await;
        assert!(noticed, "the push relay did not report the killed nginx");
        nginx.restart().await;
        let back = eventually(Duration::from_secs(15), || async move {
            api.relay(APP, "cam", Some("push")).await.is_some_and(|r| {
                r["state"] == "live" && r["restarts"].as_u64() > Some(restarts_before)
            })
        })
        .await;
        assert!(
            back,
            "the push to nginx did not come back: {:?}; nginx log: {}",
            api.relay(APP, "cam", None).await,
            nginx.log()
        );
        let probe = ffprobe_frames(&url, 2).await;
        check_test_stream(&probe, 45, "the push to nginx-rtmp after its restart");
        let states = changes(states.stop().await);
        assert!(
            went_down_and_back(&states),
            "push states should go live -> backing_off/connecting -> live: {states:?}"
        );

        // Unpublish: the push stops (listed as stopped, or no longer listed) within ~1 s.
        kill(publisher).await;
        let stopped = eventually(Duration::from_millis(2500), || async move {
            api.relay_state(APP, "cam", Some("push"))
                .await
                .is_none_or(|s| s == "stopped")
        })
        .await;
        assert!(
            stopped,
            "the push to nginx outlived the unpublish: {:?}",
            api.relay(APP, "cam", None).await
        );
        source.shutdown().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

const USER: &str = "admin";
const PASS: &str = "s3cret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_api_creates_lists_gets_and_deletes_under_basic_auth() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let origin = start_server().await;
        let mut publisher = spawn_small_publisher(&rtmp_url(&origin, APP, "src"), 85);
        wait_publishing(&origin, APP, "src", &mut publisher).await;
        let src = local_rtmp(&origin, APP, "src");
        let server = start_server_from(config(&format!(
            r#"
[auth]
api = true
api_user = "{USER}"
api_pass = "{PASS}"

[relay]
"#
        )))
        .await;
        let api = Api::with_login(&server, USER, PASS);
        let anonymous = Api::of(&server);

        // Basic auth guards every relay route.
        assert_eq!(anonymous.get("/api/relay").await.status, 401);
        let body = json!({"url": src, "app": APP, "name": "nope"});
        assert_eq!(
            anonymous
                .post("/api/relay/pull", Body::Json(&body))
                .await
                .status,
            401
        );
        assert_eq!(anonymous.delete("/api/relay/ABCD1234").await.status, 401);
        assert!(api.relays().await.is_empty(), "relays before any was made");

        // Pull, with a JSON body and with a form body.
        let by_json = created_id(
            &api.post(
                "/api/relay/pull",
                Body::Json(&json!({"url": src, "app": APP, "name": "viajson"})),
            )
            .await,
            "POST /api/relay/pull (JSON)",
        );
        let by_form = created_id(
            &api.post(
                "/api/relay/pull",
                Body::Form(&[("url", src.as_str()), ("app", APP), ("name", "viaform")]),
            )
            .await,
            "POST /api/relay/pull (form)",
        );
        assert_ne!(by_json, by_form);
        for name in ["viajson", "viaform"] {
            assert!(
                wait_until(Duration::from_secs(10), || server.is_publishing(APP, name)).await,
                "the pulled live/{name} never published"
            );
            assert!(
                api.has_publisher(APP, name).await,
                "{name} not in /api/streams"
            );
        }
        let settled = eventually(Duration::from_secs(5), || async move {
            api.relay(APP, "viajson", None)
                .await
                .is_some_and(|r| r["state"] == "live" && r["bytes"].as_u64() > Some(0))
        })
        .await;
        let listed = api.get_json("/api/relay").await;
        assert!(
            settled,
            "the JSON-made relay is not live with bytes > 0: {listed:#}"
        );
        let entry = &listed[APP]["viajson"]["relays"];
        assert_eq!(entry.as_array().map(Vec::len), Some(1), "{listed:#}");
        let r = &entry[0];
        assert_eq!(r["id"], by_json.as_str(), "{r:#}");
        assert!(r["mode"] == "pull" || r["mode"] == "static", "{r:#}");
        assert_eq!(r["path"], src.as_str(), "{r:#}");
        assert_eq!(r["url"], local_rtmp(&server, APP, "viajson"), "{r:#}");
        assert!(
            !r["started_at"].is_null(),
            "a live relay has started_at: {r:#}"
        );
        assert_eq!(listed[APP]["viaform"]["relays"][0]["id"], by_form.as_str());

        // By id and by app/name: arrays.
        let one = api.get_json(&format!("/api/relay/{by_json}")).await;
        let one = one
            .as_array()
            .unwrap_or_else(|| panic!("GET by id: not an array: {one:#}"));
        assert_eq!(one.len(), 1, "{one:#?}");
        check_relay_fields(&one[0], "GET /api/relay/{id}");
        assert_eq!(one[0]["id"], by_json.as_str());
        let named = api.get_json(&format!("/api/relay/{APP}/viaform")).await;
        let named = named
            .as_array()
            .unwrap_or_else(|| panic!("GET by app/name: not an array: {named:#}"));
        assert!(
            !named.is_empty() && named.iter().all(|r| r["name"] == "viaform"),
            "{named:#?}"
        );
        for r in named {
            check_relay_fields(r, "GET /api/relay/{app}/{name}");
        }

        // A missing field is a 400.
        for (path, body) in [
            ("/api/relay/pull", json!({"url": src, "app": APP})),
            ("/api/relay/pull", json!({"app": APP, "name": "x"})),
            ("/api/relay/pull", json!({"url": src, "name": "x"})),
            ("/api/relay/push", json!({"app": APP, "name": "viajson"})),
            ("/api/relay/push", json!({"url": src, "app": APP})),
            (
                "/api/relay/task",
                json!({"path": format!("/{APP}/viajson")}),
            ),
            ("/api/relay/task", json!({"url": src})),
        ] {
            let r = api.post(path, Body::Json(&body)).await;
            assert_eq!(r.status, 400, "POST {path} {body}: {}", r.text());
        }
        let r = api
            .post(
                "/api/relay/pull",
                Body::Form(&[("app", APP), ("name", "x")]),
            )
            .await;
        assert_eq!(r.status, 400, "form without url: {}", r.text());

        // Push a local stream out, and relay a local path (NMS `task`): both reach the origin.
        let pushed = created_id(
            &api.post(
                "/api/relay/push",
                Body::Json(&json!({
                    "url": local_rtmp(&origin, APP, "pushed"),
                    "app": APP,
                    "name": "viajson",
                })),
            )
            .await,
            "POST /api/relay/push",
        );
        let tasked = created_id(
            &api.post(
                "/api/relay/task",
                Body::Form(&[
                    ("path", format!("/{APP}/viaform").as_str()),
                    ("url", local_rtmp(&origin, APP, "tasked").as_str()),
                ]),
            )
            .await,
            "POST /api/relay/task",
        );
        for name in ["pushed", "tasked"] {
            assert!(
                wait_until(Duration::from_secs(10), || origin.is_publishing(APP, name)).await,
                "the API-made push never published live/{name} on the origin"
            );
        }
        let push = api.get_json(&format!("/api/relay/{pushed}")).await;
        assert_eq!(push[0]["mode"], "push", "{push:#}");
        assert_eq!(
            push[0]["url"],
            local_rtmp(&origin, APP, "pushed"),
            "{push:#}"
        );

        // Delete: OK, the relayed stream goes away within ~1.5 s, and the id is then unknown.
        for (id, gone_on_origin) in [(&pushed, "pushed"), (&tasked, "tasked")] {
            let r = api.delete(&format!("/api/relay/{id}")).await;
            assert_eq!((r.status, r.text().trim()), (200, "OK"), "DELETE {id}");
            assert!(
                wait_until(Duration::from_millis(1500), || !origin
                    .is_publishing(APP, gone_on_origin))
                .await,
                "deleting {id} did not stop the push to live/{gone_on_origin}"
            );
        }
        let r = api.delete(&format!("/api/relay/{by_json}")).await;
        assert_eq!((r.status, r.text().trim()), (200, "OK"), "DELETE {by_json}");
        let t0 = Instant::now();
        let gone = eventually(Duration::from_millis(1500), || async move {
            !api.has_publisher(APP, "viajson").await
        })
        .await;
        assert!(
            gone,
            "live/viajson still published {:?} after DELETE",
            t0.elapsed()
        );
        assert!(!server.is_publishing(APP, "viajson"));
        assert!(
            server.is_publishing(APP, "viaform"),
            "DELETE stopped the other relay"
        );
        assert_eq!(
            api.delete(&format!("/api/relay/{by_json}")).await.status,
            404
        );
        assert_eq!(api.delete("/api/relay/ZZZZ9999").await.status, 404);
        let left: Vec<_> = api.relays().await;
        assert!(
            left.iter()
                .all(|r| r["id"] != by_json.as_str() || r["state"] == "stopped"),
            "the deleted relay is still listed as running: {left:#?}"
        );

        kill(publisher).await;
        server.shutdown().await;
        origin.shutdown().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Loops
// ---------------------------------------------------------------------------------------------

/// Starts a server whose RTMP port is known in advance (a relay of its own address is in its
/// configuration); `None` if the configuration is refused for being a loop (an acceptable way of
/// refusing one). Any other refusal fails the test.
async fn start_self_relaying(extra: impl Fn(u16) -> String) -> Option<(ServerHandle, u16)> {
    let port = relay_peers::free_port();
    let text = toml_text(port, &extra(port));
    let refused_for_loop =
        |e: &dyn std::fmt::Display| e.to_string().to_lowercase().contains("loop");
    let config = match rill::Config::from_toml(&text, "self-relaying config") {
        Ok(c) => c,
        Err(e) if refused_for_loop(&e) => return None,
        Err(e) => panic!("the relay configuration is refused: {e}\n---\n{text}"),
    };
    match timeout(
        Duration::from_secs(10),
        rill::Server::builder(config).start(),
    )
    .await
    .expect("server start timed out")
    {
        Ok(server) => Some((server, port)),
        Err(e) if refused_for_loop(&e) => None,
        Err(e) => panic!("server failed to start: {e}"),
    }
}

/// No relay of `app/name` runs, and any listed reports a loop within 5 s.
async fn assert_loop_reported(api: Api, app: &'static str, name: &'static str, what: &str) {
    // Time to try (and list) the relay first: an empty list right away proves nothing.
    sleep(Duration::from_millis(1500)).await;
    let reported = eventually(Duration::from_secs(5), || async move {
        let mine: Vec<Value> = api
            .relays()
            .await
            .into_iter()
            .filter(|r| r["app"] == app && r["name"] == name)
            .collect();
        mine.iter().all(|r| {
            r["state"] != "live"
                && r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.to_lowercase().contains("loop"))
        })
    })
    .await;
    assert!(
        reported,
        "{what}: a relay of {app}/{name} runs or does not report a loop: {:#?}",
        api.relays().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_onto_their_own_stream_are_refused() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        // A push task whose edge is this server's own app.
        if let Some((server, port)) = start_self_relaying(|port| {
            format!(
                "[relay]\n\n[[relay.tasks]]\napp = \"live\"\nmode = \"push\"\n\
                 edge = \"rtmp://127.0.0.1:{port}/live\"\n"
            )
        })
        .await
        {
            let api = Api::of(&server);
            let mut publisher = spawn_small_publisher(&rtmp_url(&server, APP, "cam"), 60);
            wait_publishing(&server, APP, "cam", &mut publisher).await;
            let first = api.stream(APP, "cam").await["publisher"]["clientId"].clone();
            assert!(!first.is_null());
            let publishers = watch(move || async move {
                let sessions = api.get_json("/api/sessions").await;
                sessions
                    .as_array()
                    .map(|l| l.iter().filter(|s| s["role"] == "publisher").count())
                    .unwrap_or(0)
            });
            assert_loop_reported(api, APP, "cam", "push onto itself (config)").await;
            // Through the API too: refused with 400, or made and reporting the loop.
            let r = api
                .post(
                    "/api/relay/push",
                    Body::Json(&json!({
                        "url": format!("rtmp://127.0.0.1:{port}/{APP}/cam"),
                        "app": APP,
                        "name": "cam",
                    })),
                )
                .await;
            assert!(
                r.status == 200 || r.status == 400,
                "POST push onto itself: {}",
                r.status
            );
            assert_loop_reported(api, APP, "cam", "push onto itself (API)").await;
            sleep(Duration::from_secs(1)).await;
            let counts = publishers.stop().await;
            assert!(
                counts.iter().all(|&n| n == 1),
                "publisher sessions over time {counts:?}: the stream was republished onto itself"
            );
            let now = api.stream(APP, "cam").await["publisher"]["clientId"].clone();
            assert_eq!(now, first, "the original publisher was replaced");
            assert!(
                matches!(publisher.try_wait(), Ok(None)),
                "the real publisher was disconnected"
            );
            kill(publisher).await;
            server.shutdown().await;
        }

        // A static pull of this server's own stream into itself.
        if let Some((server, port)) = start_self_relaying(|port| {
            format!(
                "[relay]\n\n[[relay.tasks]]\napp = \"self\"\nmode = \"static\"\n\
                 edge = \"rtmp://127.0.0.1:{port}/self/selfie\"\nname = \"selfie\"\n"
            )
        })
        .await
        {
            let api = Api::of(&server);
            assert_loop_reported(api, "self", "selfie", "static pull of itself (config)").await;
            let r = api
                .post(
                    "/api/relay/pull",
                    Body::Json(&json!({
                        "url": format!("rtmp://127.0.0.1:{port}/self/other"),
                        "app": "self",
                        "name": "other",
                    })),
                )
                .await;
            assert!(
                r.status == 200 || r.status == 400,
                "POST pull of itself: {}",
                r.status
            );
            assert_loop_reported(api, "self", "other", "pull of itself (API)").await;
            assert!(!server.is_publishing("self", "selfie"));
            assert!(!server.is_publishing("self", "other"));
            let sessions = api.get_json("/api/sessions").await;
            assert!(
                sessions.as_array().is_some_and(|l| l.len() <= 2),
                "connections pile up on a self-pull: {sessions:#}"
            );
            server.shutdown().await;
        }
    })
    .await;
}
