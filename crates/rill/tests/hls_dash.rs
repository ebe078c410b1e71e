//! Rill's in-process HLS (MPEG-TS and fMP4), LL-HLS and DASH output, end to end: ffmpeg publishes
//! a live 1280x720 30 fps H.264 (keyframe every second) + AAC test pattern over RTMP, and the
//! tests read what a player reads over loopback HTTP.
//!
//! What is checked, per output:
//! - the playlist parses with `m3u8-rs` (the MPD with `roxmltree`); target duration, segment
//!   durations (at most target + one GOP), a media sequence that moves, a window that slides and
//!   segments that disappear (404) once they are beyond it plus the extra ones kept;
//! - ffprobe reads the playlist/MPD URL (h264 1280x720 + aac), and the listed segments, joined,
//!   hold about 30 frames per listed second with continuous, monotonic timestamps across segment
//!   boundaries;
//! - HTTP: Content-Type and Cache-Control (playlists short-lived, segments immutable), HEAD, byte
//!   ranges (206 with the right bytes, 416), path traversal never answered with 200;
//! - LL-HLS: PART-INF, PARTs, PRELOAD-HINT, SERVER-CONTROL, blocking reload held until the asked
//!   segment (or part) exists, preload-hinted part held until it exists;
//! - DASH: dynamic MPD, two AdaptationSets with SegmentTimeline whose times match the segments'
//!   `tfdt`; static once the stream ends;
//! - lifecycle: EXT-X-ENDLIST after unpublish, EXT-X-DISCONTINUITY on a republish inside the
//!   cleanup window, everything 404 (and the disk mirror removed) after `cleanup_after`.
//!
//! The raw HTTP client below is deliberate: it sends request targets byte for byte (a real client
//! would normalise `../` away) and shows exactly the headers Rill wrote.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use rill::config::{SegmentFormat, Storage, TransTask};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;

const APP: &str = "live";
/// The publisher's frame rate and GOP (see `common::spawn_ffmpeg_publisher`).
const FPS: f64 = 30.0;
const GOP_SECS: f64 = 1.0;
const SEGMENT_SECS: f64 = 1.0;
const PLAYLIST_LENGTH: usize = 4;
/// How long the disk mirror (a thread of its own) may lag behind what HTTP serves.
const MIRROR_WAIT: Duration = Duration::from_secs(2);
const EXTRA_SEGMENTS: usize = 1;
const CLEANUP_SECS: u64 = 2;
const PART_SECS: f64 = 0.33;

// ---------------------------------------------------------------------------------------------
// Server and publisher
// ---------------------------------------------------------------------------------------------

fn task(format: SegmentFormat, low_latency: bool, storage: Storage, dash: bool) -> TransTask {
    TransTask {
        app: APP.into(),
        hls: true,
        dash,
        segment_duration: Some(SEGMENT_SECS),
        playlist_length: Some(PLAYLIST_LENGTH),
        extra_segments: Some(EXTRA_SEGMENTS),
        format,
        low_latency,
        part_duration: PART_SECS,
        storage,
        cleanup_after: CLEANUP_SECS,
        ..Default::default()
    }
}

async fn start_with(task: TransTask, mediaroot: Option<&Path>) -> rill::ServerHandle {
    assert!(task.problem().is_none(), "bad task {:?}", task.problem());
    let mut config = rill::Config::loopback_ephemeral();
    config.trans.tasks = vec![task];
    if let Some(root) = mediaroot {
        config.http.mediaroot = root.to_string_lossy().into_owned();
    }
    start_server_from(config).await
}

async fn publish(server: &rill::ServerHandle, stream: &str, seconds: u32) -> Child {
    let mut p = spawn_ffmpeg_publisher(&rtmp_url(server, APP, stream), seconds);
    wait_publishing(server, APP, stream, &mut p).await;
    p
}

/// Stops a publisher the way a crashed encoder does (the RTMP connection just drops).
async fn stop(server: &rill::ServerHandle, stream: &str, mut publisher: Child) {
    let _ = publisher.start_kill();
    let _ = timeout(Duration::from_secs(5), publisher.wait()).await;
    assert!(
        wait_until(Duration::from_secs(5), || !server
            .is_publishing(APP, stream))
        .await,
        "{stream} still publishing after its ffmpeg was killed"
    );
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `method target` with `Connection: close`, the response read to EOF. `target` goes on the wire
/// as given.
async fn http(addr: SocketAddr, method: &str, target: &str, extra: &[(&str, &str)]) -> Resp {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.expect("connect to Rill");
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: rill-test\r\n"
        );
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.expect("send request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {target}: no response within 20 s"));
    parse_response(&raw, method == "HEAD")
        .unwrap_or_else(|| panic!("{method} {target}: malformed response {raw:?}"))
}

fn parse_response(raw: &[u8], head: bool) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head_text = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head_text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if head {
        rest.to_vec()
    } else if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn url(server: &rill::ServerHandle, stream: &str, file: &str) -> String {
    format!(
        "http://127.0.0.1:{}/{APP}/{stream}/{file}",
        server.http_addr().port()
    )
}

fn target(stream: &str, file: &str) -> String {
    format!("/{APP}/{stream}/{file}")
}

async fn get(server: &rill::ServerHandle, stream: &str, file: &str) -> Resp {
    http(server.http_addr(), "GET", &target(stream, file), &[]).await
}

/// `max-age` of a Cache-Control value.
fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.parse().ok())
}

fn assert_playlist_headers(r: &Resp, content_type: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {r:?}");
    assert_eq!(r.header("content-type"), Some(content_type), "{what}");
    let cc = r.header("cache-control").unwrap_or_default();
    let short =
        cc.contains("no-cache") || cc.contains("no-store") || max_age(cc).is_some_and(|a| a <= 2);
    assert!(
        short,
        "{what}: a live playlist must not be cached for long: {cc:?}"
    );
    assert!(
        !cc.contains("immutable"),
        "{what}: playlist marked immutable: {cc:?}"
    );
}

fn assert_segment_headers(r: &Resp, content_type: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.header("content-type"), Some(content_type), "{what}");
    let cc = r.header("cache-control").unwrap_or_default();
    assert!(
        cc.contains("immutable") && max_age(cc).is_some_and(|a| a >= 3600),
        "{what}: segment Cache-Control {cc:?}"
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"), "{what}");
    assert_eq!(
        r.header("content-length")
            .and_then(|v| v.parse::<usize>().ok()),
        Some(r.body.len()),
        "{what}: content-length"
    );
    assert!(!r.body.is_empty(), "{what}: empty segment");
}

// ---------------------------------------------------------------------------------------------
// HLS playlists
// ---------------------------------------------------------------------------------------------

fn parse_playlist(text: &str, what: &str) -> m3u8_rs::MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: m3u8-rs cannot parse the playlist ({e:?}):\n{text}"))
}

/// Media sequence number of the last listed segment.
fn last_msn(pl: &m3u8_rs::MediaPlaylist) -> Option<u64> {
    (!pl.segments.is_empty()).then(|| pl.media_sequence + pl.segments.len() as u64 - 1)
}

/// Polls the playlist until `cond` holds; returns its text and parse.
async fn wait_playlist(
    server: &rill::ServerHandle,
    stream: &str,
    limit: Duration,
    what: &str,
    mut cond: impl FnMut(&str, &m3u8_rs::MediaPlaylist) -> bool,
) -> (String, m3u8_rs::MediaPlaylist) {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        let r = get(server, stream, "index.m3u8").await;
        if r.status == 200 {
            last = r.text();
            let pl = parse_playlist(&last, what);
            if cond(&last, &pl) {
                return (last, pl);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: condition not met within {limit:?}; last playlist (status {}):\n{last}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks every playlist must pass: durations and target, consecutive URIs, no end yet.
fn check_live_playlist(pl: &m3u8_rs::MediaPlaylist, ext: &str, what: &str) {
    assert_eq!(
        pl.target_duration,
        SEGMENT_SECS.ceil() as u64,
        "{what}: EXT-X-TARGETDURATION"
    );
    assert!(!pl.end_list, "{what}: live playlist has EXT-X-ENDLIST");
    assert!(
        pl.segments.len() <= PLAYLIST_LENGTH,
        "{what}: {} segments listed",
        pl.segments.len()
    );
    for s in &pl.segments {
        let d = f64::from(s.duration);
        assert!(d > 0.0, "{what}: segment {s:?} has no duration");
        // Segments are cut on keyframes, so one can overrun the target by at most one GOP.
        assert!(
            d <= pl.target_duration as f64 + GOP_SECS + 1e-3,
            "{what}: {} lasts {d} s, target {} s",
            s.uri,
            pl.target_duration
        );
        assert!(
            d.ceil() as u64 <= pl.target_duration,
            "{what}: EXTINF {d} > TARGETDURATION"
        );
        assert!(s.uri.ends_with(ext), "{what}: segment URI {}", s.uri);
        assert!(
            !s.uri.contains('/'),
            "{what}: segment URI is not relative: {}",
            s.uri
        );
        assert!(
            s.program_date_time.is_some(),
            "{what}: no PROGRAM-DATE-TIME on {}",
            s.uri
        );
    }
    // Names carry the media sequence number, so a listed window is consecutive.
    for (i, s) in pl.segments.iter().enumerate() {
        let msn = pl.media_sequence + i as u64;
        assert!(
            s.uri.ends_with(&format!("-{msn}{ext}")),
            "{what}: segment {i} ({}) is not msn {msn}",
            s.uri
        );
    }
    // Wall-clock times advance with the durations.
    for w in pl.segments.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if b.discontinuity {
            continue;
        }
        let (Some(ta), Some(tb)) = (a.program_date_time, b.program_date_time) else {
            continue;
        };
        let step = (tb.timestamp_millis() - ta.timestamp_millis()) as f64 / 1000.0;
        assert!(
            (step - f64::from(a.duration)).abs() < 0.05,
            "{what}: PROGRAM-DATE-TIME steps {step} s after a {} s segment",
            a.duration
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ffprobe on joined segments
// ---------------------------------------------------------------------------------------------

async fn ffprobe_json(args: &[&str], what: &str) -> serde_json::Value {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-of", "json"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = timeout(Duration::from_secs(30), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: ffprobe did not finish in 30 s"))
        .expect("cannot run ffprobe");
    assert!(
        out.status.success(),
        "{what}: ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe printed invalid JSON")
}

#[derive(Debug, Clone, Copy)]
struct Pkt {
    video: bool,
    pts: f64,
    dts: f64,
    duration: f64,
}

fn num(v: &serde_json::Value) -> Option<f64> {
    v.as_str()?.parse().ok()
}

/// Downloads the given files (an init segment first for fMP4) and joins them into one file.
async fn join_segments(
    server: &rill::ServerHandle,
    stream: &str,
    files: &[String],
    dir: &Path,
    name: &str,
) -> PathBuf {
    let mut joined = Vec::new();
    for f in files {
        let r = get(server, stream, f).await;
        assert_eq!(r.status, 200, "{f} vanished while being read");
        joined.extend_from_slice(&r.body);
    }
    let path = dir.join(name);
    std::fs::write(&path, joined).unwrap();
    path
}

/// `-count_frames` over a joined file must give about 30 fps × `listed_secs`, and the packets'
/// timestamps must be monotonic with no hole at the segment joins.
async fn check_joined(path: &Path, listed_secs: f64, what: &str) {
    let p = path.to_str().unwrap();
    let counted = ffprobe_json(
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,nb_read_frames",
            p,
        ],
        what,
    )
    .await;
    let streams = counted["streams"].as_array().expect("streams").clone();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("{what}: no video stream: {counted}"));
    assert_eq!(video["codec_name"], "h264", "{what}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1280), Some(720)),
        "{what}"
    );
    assert!(
        streams
            .iter()
            .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac"),
        "{what}: no aac stream: {counted}"
    );
    let frames: f64 = num(&video["nb_read_frames"]).expect("nb_read_frames");
    let expected = FPS * listed_secs;
    assert!(
        (frames - expected).abs() <= 2.0,
        "{what}: {frames} frames decoded over {listed_secs} s listed, expected {expected}"
    );

    let json = ffprobe_json(
        &[
            "-show_entries",
            "packet=codec_type,pts_time,dts_time,duration_time",
            p,
        ],
        what,
    )
    .await;
    let packets: Vec<Pkt> = json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|k| Pkt {
            video: k["codec_type"] == "video",
            pts: num(&k["pts_time"]).unwrap_or_else(|| panic!("{what}: packet without pts: {k}")),
            dts: num(&k["dts_time"]).unwrap_or_else(|| panic!("{what}: packet without dts: {k}")),
            duration: num(&k["duration_time"]).unwrap_or(0.0),
        })
        .collect();
    for video in [true, false] {
        let kind = if video { "video" } else { "audio" };
        let list: Vec<Pkt> = packets
            .iter()
            .copied()
            .filter(|k| k.video == video)
            .collect();
        assert!(
            list.len() > 10,
            "{what}: only {} {kind} packets",
            list.len()
        );
        // A hole larger than this at a segment join means samples were lost or mistimed.
        let max_step = if video { 2.5 / FPS } else { 0.05 };
        for w in list.windows(2) {
            let step = w[1].dts - w[0].dts;
            assert!(
                step > 0.0 && step <= max_step,
                "{what}: {kind} dts steps {step} s from {:?} to {:?}",
                w[0],
                w[1]
            );
            if video {
                // The publisher has no B-frames: presentation order is decode order.
                assert!(w[1].pts > w[0].pts, "{what}: video pts goes back: {w:?}");
            }
        }
        let span = list.last().unwrap().dts - list[0].dts + list.last().unwrap().duration.max(0.0);
        assert!(
            (span - listed_secs).abs() < 0.15,
            "{what}: {kind} spans {span} s but {listed_secs} s are listed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ISOBMFF: the tfdt of a fragment
// ---------------------------------------------------------------------------------------------

/// Boxes directly inside `data`: (type, payload).
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let typ: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        if size < 8 || at + size > data.len() {
            break;
        }
        out.push((typ, &data[at + 8..at + size]));
        at += size;
    }
    out
}

/// One `traf` of a fragment: track id, `baseMediaDecodeTime`, and the `trun` sample durations.
#[derive(Debug)]
struct TrackFragment {
    track_id: u32,
    tfdt: u64,
    durations: Vec<u32>,
}

impl TrackFragment {
    fn end(&self) -> u64 {
        self.tfdt + self.durations.iter().map(|d| u64::from(*d)).sum::<u64>()
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Every `traf` of every `moof` in a fragment.
fn track_fragments(fragment: &[u8]) -> Vec<TrackFragment> {
    let mut out = Vec::new();
    for (t, moof) in boxes(fragment) {
        if &t != b"moof" {
            continue;
        }
        for (t, traf) in boxes(moof) {
            if &t != b"traf" {
                continue;
            }
            let mut tf = TrackFragment {
                track_id: 0,
                tfdt: 0,
                durations: Vec::new(),
            };
            for (t, b) in boxes(traf) {
                match &t {
                    b"tfhd" => tf.track_id = be32(b, 4),
                    b"tfdt" if b[0] == 1 => {
                        tf.tfdt = u64::from_be_bytes(b[4..12].try_into().unwrap())
                    }
                    b"tfdt" => tf.tfdt = u64::from(be32(b, 4)),
                    b"trun" => {
                        let flags = be32(b, 0) & 0xff_ffff;
                        let count = be32(b, 4) as usize;
                        let mut at = 8;
                        at += if flags & 0x1 != 0 { 4 } else { 0 };
                        at += if flags & 0x4 != 0 { 4 } else { 0 };
                        assert!(flags & 0x100 != 0, "trun without sample durations");
                        let per = [0x100, 0x200, 0x400, 0x800]
                            .iter()
                            .filter(|f| flags & **f != 0)
                            .count()
                            * 4;
                        for i in 0..count {
                            tf.durations.push(be32(b, at + i * per));
                        }
                    }
                    _ => {}
                }
            }
            out.push(tf);
        }
    }
    out
}

/// `baseMediaDecodeTime` of every `traf` of every `moof` in a fragment.
fn tfdts(fragment: &[u8]) -> Vec<u64> {
    track_fragments(fragment).iter().map(|t| t.tfdt).collect()
}

/// Each track's fragments in `files` (in order) must follow one another with no hole: a
/// fragment's `tfdt` plus its sample durations is the next fragment's `tfdt`, give or take
/// `slack` ticks (RTMP timestamps are whole milliseconds, so ±1 ms of rounding is unavoidable).
async fn assert_fragments_abut(
    server: &rill::ServerHandle,
    stream: &str,
    files: &[String],
    slack: u64,
) {
    let mut last_end: std::collections::HashMap<u32, (String, u64)> = Default::default();
    let mut problems = Vec::new();
    for f in files {
        let r = get(server, stream, f).await;
        assert_eq!(r.status, 200, "{f}");
        for tf in track_fragments(&r.body) {
            if let Some((prev, end)) = last_end.get(&tf.track_id) {
                if end.abs_diff(tf.tfdt) > slack {
                    problems.push(format!(
                        "track {} of {f} starts at {} but {prev} ends at {end} (last sample durations {:?})",
                        tf.track_id,
                        tf.tfdt,
                        &tf.durations[tf.durations.len().saturating_sub(3)..],
                    ));
                }
            }
            last_end.insert(tf.track_id, (f.clone(), tf.end()));
        }
    }
    assert!(
        problems.is_empty(),
        "fragments do not abut:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the tests
// ---------------------------------------------------------------------------------------------

/// Raw request targets that try to leave the stream's directory.
fn traversal_targets(stream: &str) -> Vec<String> {
    vec![
        format!("/{APP}/{stream}/..%2f..%2fetc%2fpasswd"),
        format!("/{APP}/{stream}/..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/{APP}/{stream}/../../x"),
        format!("/{APP}/{stream}/../../../../etc/passwd"),
        format!("/{APP}/{stream}/%2e%2e/%2e%2e/etc/passwd"),
        format!("/{APP}/{stream}/%2e%2e%2f%2e%2e%2fsecret.txt"),
        format!("/{APP}/{stream}/..%2fsecret.txt"),
        format!("/{APP}/{stream}/..%5c..%5csecret.txt"),
        format!("/{APP}/..%2f{stream}/index.m3u8"),
        format!("/{APP}/{stream}/%2fetc%2fpasswd"),
        format!("/{APP}/{stream}/.index.m3u8.tmp"),
        "/..%2f..%2fetc/passwd/x".to_string(),
    ]
}

async fn assert_no_traversal(server: &rill::ServerHandle, stream: &str) {
    for t in traversal_targets(stream) {
        let r = http(server.http_addr(), "GET", &t, &[]).await;
        assert!(
            r.status != 200 && r.status != 206,
            "GET {t} answered {}: {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("root:"), "GET {t} leaked a system file");
        assert!(
            !r.text().contains("top secret"),
            "GET {t} leaked a file next to the media"
        );
    }
}

/// HEAD and byte ranges on one segment.
async fn check_head_and_ranges(server: &rill::ServerHandle, stream: &str, file: &str, full: &[u8]) {
    let addr = server.http_addr();
    let t = target(stream, file);
    let len = full.len();
    assert!(len > 1200, "{file}: segment of only {len} bytes");

    let head = http(addr, "HEAD", &t, &[]).await;
    assert_eq!(head.status, 200, "HEAD {t}");
    assert!(head.body.is_empty(), "HEAD {t} sent a body");
    assert_eq!(
        head.header("content-length"),
        Some(len.to_string().as_str()),
        "HEAD {t}"
    );

    let r = http(addr, "GET", &t, &[("Range", "bytes=100-1099")]).await;
    assert_eq!(r.status, 206, "range 100-1099 of {t}");
    assert_eq!(r.body, &full[100..1100], "range 100-1099 of {t}");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-1099/{len}").as_str())
    );
    assert_eq!(r.header("content-length"), Some("1000"));

    let r = http(addr, "GET", &t, &[("Range", "bytes=-188")]).await;
    assert_eq!(r.status, 206, "suffix range of {t}");
    assert_eq!(r.body, &full[len - 188..], "suffix range of {t}");

    let from = len - 10;
    let r = http(addr, "GET", &t, &[("Range", &format!("bytes={from}-"))]).await;
    assert_eq!(r.status, 206, "open range of {t}");
    assert_eq!(r.body, &full[from..], "open range of {t}");

    let r = http(addr, "GET", &t, &[("Range", &format!("bytes={len}-"))]).await;
    assert_eq!(r.status, 416, "range past the end of {t}");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
}

/// After `cleanup_after`, every URL of the stream is gone.
async fn assert_cleaned_up(server: &rill::ServerHandle, stream: &str, files: &[String]) {
    let gone_at = Instant::now() + Duration::from_secs(CLEANUP_SECS + 5);
    loop {
        let r = get(server, stream, "index.m3u8").await;
        if r.status == 404 {
            break;
        }
        assert!(
            Instant::now() < gone_at,
            "playlist still served {CLEANUP_SECS} s + 5 s after the stream ended: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for f in files
        .iter()
        .map(String::as_str)
        .chain(["index.m3u8", "index.mpd"])
    {
        let r = get(server, stream, f).await;
        assert_eq!(r.status, 404, "{f} still served after cleanup");
    }
}

// ---------------------------------------------------------------------------------------------
// MPEG-TS HLS, disk mirror
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_hls_window_headers_ranges_traversal_disk_mirror_and_cleanup() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(ts_hls()).await;
}

async fn ts_hls() {
    const STREAM: &str = "ts";
    let root = tempfile::tempdir().unwrap();
    // Files an attacker would like to read: beside the stream directory and above it.
    std::fs::create_dir_all(root.path().join(APP)).unwrap();
    std::fs::write(root.path().join("secret.txt"), "top secret").unwrap();
    std::fs::write(root.path().join(APP).join("secret.txt"), "top secret").unwrap();
    let disk = root.path().join(APP).join(STREAM);

    let server = start_with(
        task(SegmentFormat::Ts, false, Storage::Disk, false),
        Some(root.path()),
    )
    .await;
    let publisher = publish(&server, STREAM, 14).await;

    let (text, first) = wait_playlist(&server, STREAM, Duration::from_secs(15), "TS", |_, pl| {
        pl.segments.len() >= 3
    })
    .await;
    check_live_playlist(&first, ".ts", "TS");
    assert!(
        text.contains("#EXT-X-VERSION:3"),
        "TS playlist version:\n{text}"
    );
    assert!(
        !text.contains("#EXT-X-MAP"),
        "TS playlist with EXT-X-MAP:\n{text}"
    );
    assert!(
        !text.contains("#EXT-X-PART"),
        "LL-HLS tags without low_latency:\n{text}"
    );

    let r = get(&server, STREAM, "index.m3u8").await;
    assert_playlist_headers(&r, "application/vnd.apple.mpegurl", "TS playlist");
    let head = http(
        server.http_addr(),
        "HEAD",
        &target(STREAM, "index.m3u8"),
        &[],
    )
    .await;
    assert_eq!(head.status, 200, "HEAD playlist");
    assert!(head.body.is_empty(), "HEAD playlist sent a body");
    assert!(
        get(&server, STREAM, "index.mpd").await.status == 404,
        "MPD without dash"
    );

    // What a real player reads.
    let probe = ffprobe_frames(&url(&server, STREAM, "index.m3u8"), 2).await;
    check_test_stream(&probe, 45, "ffprobe on the TS playlist");

    // The listed segments: headers, disk copies, and as one file.
    let (_, pl) = wait_playlist(&server, STREAM, Duration::from_secs(10), "TS", |_, pl| {
        pl.segments.len() >= 3
    })
    .await;
    check_live_playlist(&pl, ".ts", "TS");
    let names: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
    let newest = names.last().unwrap().clone();
    let seg = get(&server, STREAM, &newest).await;
    assert_segment_headers(&seg, "video/mp2t", &newest);
    assert_eq!(
        seg.body[0], 0x47,
        "{newest} does not start with a TS sync byte"
    );
    assert_eq!(seg.body.len() % 188, 0, "{newest}: not whole TS packets");
    let seg_path = disk.join(&newest);
    // The disk mirror is written by a thread of its own, a moment after HTTP serves the file.
    let mirrored = wait_until(MIRROR_WAIT, || {
        std::fs::read(&seg_path).is_ok_and(|b| b == seg.body)
    })
    .await;
    assert!(
        mirrored,
        "disk mirror of {newest} differs from what HTTP serves"
    );
    let on_disk = std::fs::read_to_string(disk.join("index.m3u8")).unwrap_or_default();
    assert!(on_disk.starts_with("#EXTM3U"), "disk playlist: {on_disk:?}");
    let listed: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
    let joined = join_segments(&server, STREAM, &names, root.path(), "joined.ts").await;
    check_joined(&joined, listed, "TS segments joined").await;
    check_head_and_ranges(&server, STREAM, &newest, &seg.body).await;
    assert_no_traversal(&server, STREAM).await;

    // The window slides: a segment that left the playlist is kept for EXTRA_SEGMENTS more
    // segments, then it is gone, from memory and from disk.
    let gone = first.segments[0].uri.clone();
    let gone_msn = first.media_sequence;
    let (_, later) = wait_playlist(&server, STREAM, Duration::from_secs(12), "TS", |_, pl| {
        pl.media_sequence > gone_msn + EXTRA_SEGMENTS as u64
    })
    .await;
    check_live_playlist(&later, ".ts", "TS later");
    assert_eq!(
        later.segments.len(),
        PLAYLIST_LENGTH,
        "a full window is listed"
    );
    assert!(
        later.media_sequence > first.media_sequence,
        "media sequence did not move"
    );
    let r = get(&server, STREAM, &gone).await;
    assert_eq!(
        r.status, 404,
        "{gone} (msn {gone_msn}) is still served beyond the window"
    );
    let gone_path = disk.join(&gone);
    assert!(
        wait_until(MIRROR_WAIT, || !gone_path.exists()).await,
        "{gone} still on disk beyond the window"
    );
    let kept_msn = later.media_sequence - 1;
    let kept = later.segments[0].uri.replace(
        &format!("-{}.ts", later.media_sequence),
        &format!("-{kept_msn}.ts"),
    );
    let r = get(&server, STREAM, &kept).await;
    assert_eq!(
        r.status, 200,
        "{kept}: the extra segment kept for late players is gone"
    );

    // Unpublish: the playlist ends and is still served until cleanup.
    let all: Vec<String> = later.segments.iter().map(|s| s.uri.clone()).collect();
    stop(&server, STREAM, publisher).await;
    let (ended_text, ended) = wait_playlist(
        &server,
        STREAM,
        Duration::from_secs(5),
        "TS ended",
        |_, pl| pl.end_list,
    )
    .await;
    assert!(ended.segments.len() <= PLAYLIST_LENGTH);
    assert!(
        ended_text.trim_end().ends_with("#EXT-X-ENDLIST"),
        "{ended_text}"
    );
    assert!(
        disk.join("index.m3u8").exists(),
        "disk playlist removed before cleanup"
    );

    assert_cleaned_up(&server, STREAM, &all).await;
    wait_until(MIRROR_WAIT, || !disk.exists()).await;
    let left: Vec<_> = std::fs::read_dir(&disk)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "mediaroot/{APP}/{STREAM} still holds {left:?}"
    );
    assert!(
        root.path().join("secret.txt").exists(),
        "cleanup removed a file it does not own"
    );

    timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server shutdown timed out");
}

// ---------------------------------------------------------------------------------------------
// fMP4 HLS + DASH, republish
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fmp4_hls_and_dash_end_republish_discontinuity_and_cleanup() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(fmp4_and_dash()).await;
}

/// One `AdaptationSet` of the MPD, as the test needs it.
#[derive(Debug)]
struct DashTrack {
    content_type: String,
    codecs: String,
    width: Option<u32>,
    height: Option<u32>,
    timescale: u64,
    init: String,
    media: String,
    rep_id: String,
    start_number: u64,
    /// (t, d) of every segment in the timeline.
    times: Vec<(u64, u64)>,
}

impl DashTrack {
    fn file(&self, template: &str, number: u64) -> String {
        template
            .replace("$RepresentationID$", &self.rep_id)
            .replace("$Number$", &number.to_string())
    }
}

struct Mpd {
    dynamic: bool,
    tracks: Vec<DashTrack>,
}

fn parse_mpd(text: &str) -> Mpd {
    let doc = roxmltree::Document::parse(text)
        .unwrap_or_else(|e| panic!("the MPD is not XML ({e}):\n{text}"));
    let mpd = doc.root_element();
    assert_eq!(mpd.tag_name().name(), "MPD", "{text}");
    assert_eq!(
        mpd.tag_name().namespace(),
        Some("urn:mpeg:dash:schema:mpd:2011")
    );
    let kind = mpd.attribute("type").unwrap_or("static");
    assert!(kind == "dynamic" || kind == "static", "MPD type {kind}");
    if kind == "dynamic" {
        for attr in [
            "availabilityStartTime",
            "publishTime",
            "minimumUpdatePeriod",
        ] {
            assert!(
                mpd.attribute(attr).is_some(),
                "dynamic MPD without {attr}:\n{text}"
            );
        }
    }
    let periods: Vec<_> = mpd
        .children()
        .filter(|n| n.has_tag_name("Period"))
        .collect();
    assert_eq!(periods.len(), 1, "periods:\n{text}");
    fn el<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
        n.children()
            .find(|c| c.has_tag_name(name))
            .unwrap_or_else(|| panic!("no {name} in {n:?}"))
    }
    let tracks = periods[0]
        .children()
        .filter(|n| n.has_tag_name("AdaptationSet"))
        .map(|set| {
            let rep = el(set, "Representation");
            let tpl = el(rep, "SegmentTemplate");
            let timeline = el(tpl, "SegmentTimeline");
            let mut times = Vec::new();
            let mut next = 0u64;
            for s in timeline.children().filter(|n| n.has_tag_name("S")) {
                let num = |a: &str| s.attribute(a).map(|v| v.parse::<u64>().unwrap());
                let d = num("d").expect("S@d");
                let mut t = num("t").unwrap_or(next);
                for _ in 0..=num("r").unwrap_or(0) {
                    times.push((t, d));
                    t += d;
                }
                next = t;
            }
            let attr = |n: roxmltree::Node<'_, '_>, a: &str| {
                n.attribute(a)
                    .or_else(|| set.attribute(a))
                    .map(str::to_owned)
            };
            DashTrack {
                content_type: attr(set, "contentType")
                    .or_else(|| attr(rep, "mimeType").map(|m| m.split('/').next().unwrap().into()))
                    .unwrap_or_default(),
                codecs: attr(rep, "codecs").unwrap_or_default(),
                width: attr(rep, "width").and_then(|v| v.parse().ok()),
                height: attr(rep, "height").and_then(|v| v.parse().ok()),
                timescale: tpl
                    .attribute("timescale")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                init: tpl.attribute("initialization").unwrap_or_default().into(),
                media: tpl.attribute("media").unwrap_or_default().into(),
                rep_id: rep.attribute("id").unwrap_or_default().into(),
                start_number: tpl
                    .attribute("startNumber")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                times,
            }
        })
        .collect();
    Mpd {
        dynamic: kind == "dynamic",
        tracks,
    }
}

async fn fmp4_and_dash() {
    const STREAM: &str = "fmp4";
    let work = tempfile::tempdir().unwrap();
    let server = start_with(
        task(SegmentFormat::Fmp4, false, Storage::Memory, true),
        None,
    )
    .await;
    let publisher = publish(&server, STREAM, 12).await;

    // ---- fMP4 HLS
    let (text, pl) = wait_playlist(&server, STREAM, Duration::from_secs(15), "fMP4", |_, pl| {
        pl.segments.len() >= 3
    })
    .await;
    check_live_playlist(&pl, ".m4s", "fMP4");
    assert!(
        text.contains("#EXT-X-VERSION:6"),
        "fMP4 playlist version:\n{text}"
    );
    let map = pl.segments[0]
        .map
        .as_ref()
        .unwrap_or_else(|| panic!("fMP4 playlist without EXT-X-MAP:\n{text}"));
    let init = map.uri.clone();
    let r = get(&server, STREAM, &init).await;
    assert_segment_headers(&r, "video/mp4", &init);
    let top: Vec<[u8; 4]> = boxes(&r.body).iter().map(|b| b.0).collect();
    assert_eq!(top, [*b"ftyp", *b"moov"], "{init}: top-level boxes");
    assert_playlist_headers(
        &get(&server, STREAM, "index.m3u8").await,
        "application/vnd.apple.mpegurl",
        "fMP4 playlist",
    );

    let probe = ffprobe_frames(&url(&server, STREAM, "index.m3u8"), 2).await;
    check_test_stream(&probe, 45, "ffprobe on the fMP4 playlist");

    let (_, pl) = wait_playlist(&server, STREAM, Duration::from_secs(10), "fMP4", |_, pl| {
        pl.segments.len() >= 3
    })
    .await;
    let mut files = vec![pl.segments[0].map.as_ref().expect("EXT-X-MAP").uri.clone()];
    files.extend(pl.segments.iter().map(|s| s.uri.clone()));
    let newest = files.last().unwrap().clone();
    let seg = get(&server, STREAM, &newest).await;
    assert_segment_headers(&seg, "video/mp4", &newest);
    let top: Vec<[u8; 4]> = boxes(&seg.body).iter().map(|b| b.0).collect();
    assert!(
        top.len() >= 2 && top[top.len() - 2] == *b"moof" && top[top.len() - 1] == *b"mdat",
        "{newest}: top-level boxes {:?}",
        top.iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect::<Vec<_>>()
    );
    let listed: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
    let joined = join_segments(&server, STREAM, &files, work.path(), "joined.mp4").await;
    check_joined(&joined, listed, "fMP4 init + segments joined").await;
    check_head_and_ranges(&server, STREAM, &newest, &seg.body).await;
    assert_no_traversal(&server, STREAM).await;

    // ---- DASH
    let r = get(&server, STREAM, "index.mpd").await;
    assert_playlist_headers(&r, "application/dash+xml", "MPD");
    let mpd = parse_mpd(&r.text());
    assert!(mpd.dynamic, "live MPD is not dynamic:\n{}", r.text());
    assert_eq!(mpd.tracks.len(), 2, "AdaptationSets:\n{}", r.text());
    let video = mpd
        .tracks
        .iter()
        .find(|t| t.content_type == "video")
        .expect("video set");
    let audio = mpd
        .tracks
        .iter()
        .find(|t| t.content_type == "audio")
        .expect("audio set");
    assert!(
        video.codecs.starts_with("avc1."),
        "video codecs {}",
        video.codecs
    );
    assert_eq!((video.width, video.height), (Some(1280), Some(720)));
    assert_eq!(audio.codecs, "mp4a.40.2");
    for t in &mpd.tracks {
        assert!(
            !t.times.is_empty() && t.times.len() <= PLAYLIST_LENGTH,
            "{}: {} timeline entries",
            t.content_type,
            t.times.len()
        );
        for w in t.times.windows(2) {
            assert_eq!(
                w[0].0 + w[0].1,
                w[1].0,
                "{}: timeline has a hole",
                t.content_type
            );
        }
        let d_secs = t.times.iter().map(|x| x.1 as f64).sum::<f64>() / t.timescale as f64;
        assert!(
            (d_secs - t.times.len() as f64 * SEGMENT_SECS).abs() < 0.1 * t.times.len() as f64,
            "{}: timeline lasts {d_secs} s for {} segments",
            t.content_type,
            t.times.len()
        );
        let init = get(&server, STREAM, &t.file(&t.init, 0)).await;
        let ct = if t.content_type == "video" {
            "video/mp4"
        } else {
            "audio/mp4"
        };
        assert_segment_headers(&init, ct, &t.init);
        // Each listed segment exists; the video fragments start exactly where the timeline says.
        for (i, (start, _)) in t.times.iter().enumerate() {
            let name = t.file(&t.media, t.start_number + i as u64);
            let r = get(&server, STREAM, &name).await;
            if r.status == 404 && i == 0 {
                continue; // slid out between the MPD and this request
            }
            assert_segment_headers(&r, ct, &name);
            let tf = tfdts(&r.body);
            assert_eq!(
                tf.len(),
                1,
                "{name}: one track fragment expected, tfdt {tf:?}"
            );
            if t.content_type == "video" {
                assert_eq!(tf[0], *start, "{name}: tfdt vs SegmentTimeline t");
            } else {
                // Audio frames do not start on the video keyframe a segment is cut at.
                let off = tf[0].abs_diff(*start) as f64 / t.timescale as f64;
                assert!(off < 0.03, "{name}: audio tfdt {} vs t {start}", tf[0]);
            }
        }
    }
    // ffprobe as a DASH client.
    let probe = ffprobe_json(
        &[
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            &url(&server, STREAM, "index.mpd"),
        ],
        "ffprobe on the MPD",
    )
    .await;
    let streams = probe["streams"].as_array().expect("streams");
    assert!(
        streams
            .iter()
            .any(|s| s["codec_name"] == "h264" && s["width"] == 1280 && s["height"] == 720),
        "ffprobe on the MPD: {probe}"
    );
    assert!(
        streams.iter().any(|s| s["codec_name"] == "aac"),
        "ffprobe on the MPD: {probe}"
    );

    // ---- Unpublish: HLS ends, the MPD turns static.
    stop(&server, STREAM, publisher).await;
    let (_, ended) = wait_playlist(
        &server,
        STREAM,
        Duration::from_secs(5),
        "fMP4 ended",
        |_, pl| pl.end_list,
    )
    .await;
    let last_before = last_msn(&ended).expect("segments");
    let r = get(&server, STREAM, "index.mpd").await;
    assert_eq!(r.status, 200, "MPD gone right after unpublish");
    let mpd = parse_mpd(&r.text());
    assert!(
        !mpd.dynamic,
        "MPD still dynamic after unpublish:\n{}",
        r.text()
    );

    // ---- Republish inside the cleanup window: the same playlist goes on, with a discontinuity.
    let publisher = publish(&server, STREAM, 8).await;
    let (text, again) = wait_playlist(
        &server,
        STREAM,
        Duration::from_secs(10),
        "republished",
        |_, pl| !pl.end_list && last_msn(pl).is_some_and(|m| m > last_before),
    )
    .await;
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n"),
        "no discontinuity after republish:\n{text}"
    );
    let first_new = (last_before + 1 - again.media_sequence) as usize;
    assert!(
        again.segments[first_new].discontinuity,
        "EXT-X-DISCONTINUITY is not on the first republished segment (msn {}):\n{text}",
        last_before + 1
    );
    assert_eq!(
        again.segments.iter().filter(|s| s.discontinuity).count(),
        1,
        "one discontinuity expected:\n{text}"
    );
    let mut files: Vec<String> = again.segments.iter().map(|s| s.uri.clone()).collect();
    let r = get(&server, STREAM, "index.mpd").await;
    let mpd = parse_mpd(&r.text());
    assert!(
        mpd.dynamic,
        "MPD not dynamic again after republish:\n{}",
        r.text()
    );
    for t in &mpd.tracks {
        files.push(t.file(&t.init, 0));
        files.push(t.file(&t.media, t.start_number));
    }

    stop(&server, STREAM, publisher).await;
    wait_playlist(
        &server,
        STREAM,
        Duration::from_secs(5),
        "ended again",
        |_, pl| pl.end_list,
    )
    .await;
    assert_cleaned_up(&server, STREAM, &files).await;

    timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server shutdown timed out");
}

// ---------------------------------------------------------------------------------------------
// LL-HLS
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_parts_blocking_reload_and_preload_hint() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(ll_hls()).await;
}

/// `NAME=value` of an attribute list (unquoted).
fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let list = line.split_once(':')?.1;
    list.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

fn tag_lines<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(tag) && l[tag.len()..].starts_with(':'))
        .collect()
}

/// The parts of the segment in progress (EXT-X-PART lines after the last URI line).
fn pending_parts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for l in text.lines() {
        if l.starts_with("#EXT-X-PART:") {
            parts.push(attribute(l, "URI").unwrap_or_default().to_owned());
        } else if !l.starts_with('#') && !l.is_empty() {
            parts.clear();
        }
    }
    parts
}

fn preload_hint(text: &str) -> Option<String> {
    tag_lines(text, "#EXT-X-PRELOAD-HINT").first().map(|l| {
        assert_eq!(attribute(l, "TYPE"), Some("PART"), "{l}");
        attribute(l, "URI").expect("hint URI").to_owned()
    })
}

async fn ll_hls() {
    const STREAM: &str = "ll";
    let server = start_with(
        task(SegmentFormat::Fmp4, true, Storage::Memory, false),
        None,
    )
    .await;
    let publisher = publish(&server, STREAM, 14).await;
    let addr = server.http_addr();

    let (text, pl) = wait_playlist(
        &server,
        STREAM,
        Duration::from_secs(15),
        "LL-HLS",
        |_, pl| pl.segments.len() >= 3,
    )
    .await;
    check_live_playlist(&pl, ".m4s", "LL-HLS");
    assert!(
        pl.segments[0].map.is_some(),
        "LL-HLS without EXT-X-MAP:\n{text}"
    );

    let control = tag_lines(&text, "#EXT-X-SERVER-CONTROL");
    assert_eq!(control.len(), 1, "SERVER-CONTROL:\n{text}");
    assert_eq!(
        attribute(control[0], "CAN-BLOCK-RELOAD"),
        Some("YES"),
        "{}",
        control[0]
    );
    let part_inf = tag_lines(&text, "#EXT-X-PART-INF");
    assert_eq!(part_inf.len(), 1, "PART-INF:\n{text}");
    let part_target: f64 = attribute(part_inf[0], "PART-TARGET")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (PART_SECS..PART_SECS + 0.05).contains(&part_target),
        "PART-TARGET {part_target} for part_duration {PART_SECS}"
    );
    let hold_back: f64 = attribute(control[0], "PART-HOLD-BACK")
        .expect("PART-HOLD-BACK")
        .parse()
        .unwrap();
    assert!(
        hold_back >= 2.0 * part_target,
        "PART-HOLD-BACK {hold_back} < 2 × {part_target}"
    );

    let parts = tag_lines(&text, "#EXT-X-PART");
    assert!(parts.len() >= 3, "EXT-X-PART lines:\n{text}");
    for p in &parts {
        let d: f64 = attribute(p, "DURATION").expect("DURATION").parse().unwrap();
        assert!(
            d > 0.0 && d <= part_target + 1e-9,
            "{p}: duration over PART-TARGET"
        );
        assert!(
            attribute(p, "URI").is_some_and(|u| u.ends_with(".m4s")),
            "{p}"
        );
    }
    assert!(
        parts.iter().any(|p| p.contains("INDEPENDENT=YES")),
        "no independent part:\n{text}"
    );
    // The parts listed under a complete segment add up to it.
    let mut since_uri: Vec<f64> = Vec::new();
    for l in text.lines() {
        if l.starts_with("#EXT-X-PART:") {
            since_uri.push(attribute(l, "DURATION").unwrap().parse().unwrap());
        } else if let Some(d) = l.strip_prefix("#EXTINF:") {
            let extinf: f64 = d.trim_end_matches(',').parse().unwrap();
            if !since_uri.is_empty() {
                let sum: f64 = since_uri.iter().sum();
                assert!(
                    (sum - extinf).abs() < 0.01,
                    "parts sum to {sum}, EXTINF {extinf}:\n{text}"
                );
            }
            since_uri.clear();
        }
    }
    assert!(preload_hint(&text).is_some(), "no PRELOAD-HINT:\n{text}");
    let r = get(&server, STREAM, attribute(parts[0], "URI").unwrap()).await;
    assert_segment_headers(&r, "video/mp4", "first listed part");

    // Blocking reload of the next segment: held until it is complete, about a segment at most.
    let (_, now) = wait_playlist(&server, STREAM, Duration::from_secs(5), "LL", |_, _| true).await;
    let next = last_msn(&now).unwrap() + 1;
    let t0 = Instant::now();
    let r = http(
        addr,
        "GET",
        &target(STREAM, &format!("index.m3u8?_HLS_msn={next}")),
        &[],
    )
    .await;
    let held = t0.elapsed();
    assert_playlist_headers(&r, "application/vnd.apple.mpegurl", "blocking reload");
    let got = parse_playlist(&r.text(), "blocking reload");
    assert!(
        last_msn(&got).unwrap() >= next,
        "reload for msn {next} returned:\n{}",
        r.text()
    );
    assert!(
        held <= Duration::from_secs_f64(SEGMENT_SECS + GOP_SECS * 0.5),
        "reload for the next segment held {held:?}"
    );
    // Two segments ahead cannot be ready before the one in progress and a whole other one end.
    let ahead = last_msn(&got).unwrap() + 2;
    let t0 = Instant::now();
    let r = http(
        addr,
        "GET",
        &target(STREAM, &format!("index.m3u8?_HLS_msn={ahead}")),
        &[],
    )
    .await;
    let held_ahead = t0.elapsed();
    assert_eq!(r.status, 200);
    assert!(last_msn(&parse_playlist(&r.text(), "reload +2")).unwrap() >= ahead);
    assert!(
        held_ahead >= Duration::from_secs_f64(SEGMENT_SECS * 0.7)
            && held_ahead <= Duration::from_secs_f64(2.0 * SEGMENT_SECS + 0.6),
        "reload two segments ahead held {held_ahead:?}"
    );
    // A part: _HLS_msn with _HLS_part waits for that part only.
    let (text, now) =
        wait_playlist(&server, STREAM, Duration::from_secs(5), "LL", |_, _| true).await;
    let msn = last_msn(&now).unwrap() + 1;
    let part = pending_parts(&text).len();
    let t0 = Instant::now();
    let r = http(
        addr,
        "GET",
        &target(
            STREAM,
            &format!("index.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        ),
        &[],
    )
    .await;
    let held_part = t0.elapsed();
    assert_eq!(r.status, 200);
    let body = r.text();
    let has = last_msn(&parse_playlist(&body, "part reload")).unwrap() >= msn
        || pending_parts(&body).len() > part;
    assert!(has, "reload for part {msn}.{part} returned:\n{body}");
    assert!(
        held_part <= Duration::from_secs_f64(PART_SECS + 0.5),
        "reload for the next part held {held_part:?}"
    );

    // The preload-hinted part: requested before it exists, answered as soon as it does.
    let (text, _) = wait_playlist(&server, STREAM, Duration::from_secs(5), "LL", |_, _| true).await;
    let hint = preload_hint(&text).expect("hint");
    let t0 = Instant::now();
    let r = get(&server, STREAM, &hint).await;
    let held_hint = t0.elapsed();
    assert_segment_headers(&r, "video/mp4", &hint);
    let top: Vec<[u8; 4]> = boxes(&r.body).iter().map(|b| b.0).collect();
    assert!(
        top.contains(b"moof") && top.contains(b"mdat"),
        "{hint}: boxes {top:?}"
    );
    assert!(
        held_hint <= Duration::from_secs_f64(PART_SECS + 0.5),
        "preload-hinted part held {held_hint:?}"
    );
    let (text, _) = wait_playlist(&server, STREAM, Duration::from_secs(3), "LL", |t, _| {
        t.contains(&format!("URI=\"{hint}\""))
    })
    .await;
    assert!(
        tag_lines(&text, "#EXT-X-PART")
            .iter()
            .any(|l| attribute(l, "URI") == Some(hint.as_str())),
        "{hint} is not listed as a part:\n{text}"
    );
    eprintln!(
        "LL-HLS: next-segment reload held {held:?}, +2 segments {held_ahead:?}, next part {held_part:?}, \
         preload-hinted part {held_hint:?}"
    );

    // ffprobe reads the LL-HLS playlist as plain fMP4 HLS, and the segments are the parts joined.
    let probe = ffprobe_frames(&url(&server, STREAM, "index.m3u8"), 2).await;
    check_test_stream(&probe, 45, "ffprobe on the LL-HLS playlist");
    let (_, pl) = wait_playlist(&server, STREAM, Duration::from_secs(5), "LL", |_, pl| {
        pl.segments.len() >= 3
    })
    .await;
    let mut files = vec![pl.segments[0].map.as_ref().unwrap().uri.clone()];
    files.extend(pl.segments.iter().map(|s| s.uri.clone()));
    let listed: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
    let work = tempfile::tempdir().unwrap();
    let joined = join_segments(&server, STREAM, &files, work.path(), "ll.mp4").await;
    check_joined(&joined, listed, "LL-HLS init + segments joined").await;

    // Unpublish: no hint for a part that will never come, and the playlist ends.
    stop(&server, STREAM, publisher).await;
    let (text, _) = wait_playlist(
        &server,
        STREAM,
        Duration::from_secs(5),
        "LL ended",
        |_, pl| pl.end_list,
    )
    .await;
    assert!(preload_hint(&text).is_none(), "hint after the end:\n{text}");

    timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server shutdown timed out");
}

// ---------------------------------------------------------------------------------------------
// Known problem, kept as a check for the fix
// ---------------------------------------------------------------------------------------------

/// The last audio sample of every fMP4 fragment (HLS segment, LL-HLS part, DASH segment) must
/// last until the next audio sample, as its `trun` duration says. Today the segmenter ends every
/// track's run at the *video* frame that cuts the segment or part, so the last AAC frame is cut
/// short (3-20 ms instead of 23 ms) and MSE sees a hole before the next fragment's audio. In a
/// SourceBuffer holding both tracks (hls.js with fMP4 or LL-HLS) Chromium then freezes the video
/// for seconds; see `chromium_plays_ll_hls_and_fmp4_hls_and_measures_latency` in browser_hls.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fmp4_audio_fragments_abut() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        const STREAM: &str = "abut";
        // LL-HLS with DASH: the HLS segments are their parts joined, so every part is checked too.
        let server = start_with(task(SegmentFormat::Fmp4, true, Storage::Memory, true), None).await;
        let publisher = publish(&server, STREAM, 8).await;
        let (_, pl) = wait_playlist(&server, STREAM, Duration::from_secs(15), "abut", |_, pl| {
            pl.segments.len() >= 3
        })
        .await;
        let mpd = parse_mpd(&get(&server, STREAM, "index.mpd").await.text());
        // Video first: it passes, so a failure below is about audio only.
        for kind in ["video", "audio"] {
            let t = mpd.tracks.iter().find(|t| t.content_type == kind).unwrap();
            let files: Vec<String> = (0..t.times.len() as u64)
                .map(|i| t.file(&t.media, t.start_number + i))
                .collect();
            assert_fragments_abut(&server, STREAM, &files, t.timescale / 1000 + 1).await;
        }
        let files: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
        // Video at 90 kHz and audio at 44.1 kHz share these files: 1 ms of video, 2 ms of audio.
        assert_fragments_abut(&server, STREAM, &files, 90).await;
        stop(&server, STREAM, publisher).await;
        timeout(Duration::from_secs(10), server.shutdown())
            .await
            .expect("server shutdown timed out");
    })
    .await;
}
