//! Relays over RTMPS and with Enhanced RTMP codecs: a static pull from an `rtmps://` origin with a
//! self-signed certificate (refused with `relay.tls_verify = true`, taken with `false`), and HEVC
//! published by the modern ffmpeg as Enhanced RTMP that reaches an edge's viewer (pull on play) and
//! a push target with its codec and its FourCC headers intact; a pull on play carries its viewer's
//! query to the origin, shows in `/metrics`, and refuses the viewer cleanly when nothing comes; a
//! pull of a dead origin stops retrying once nobody waits for it.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::relay_peers::{http_request, Body};
use common::*;
use rill_media::codec::{Codec, VideoCodec};
use rill_media::{Frame, FrameKind};

/// The relays the API lists for `app/name`.
async fn relays(server: &rill::ServerHandle, app: &str, name: &str) -> Vec<serde_json::Value> {
    let path = format!("/api/relay/{app}/{name}");
    let r = http_request(server.http_addr(), "GET", &path, None, Body::None).await;
    r.json().as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pull_from_an_rtmps_origin() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let origin = start_server_with(&format!(
            "[rtmps]\ncert = {:?}\nkey = {:?}\n",
            cert_path.display().to_string(),
            key_path.display().to_string()
        ))
        .await;
        let rtmps = origin.rtmps_addr().expect("rtmps listener");
        let _publisher = publish_live(&origin, "live", "cam", 40).await;
        let source = format!("rtmps://localhost:{}/live/cam", rtmps.port());
        let task = |name: &str| {
            format!("[[relay.tasks]]\napp = \"live\"\nmode = \"static\"\nedge = \"{source}\"\nname = \"{name}\"\n")
        };
        let trusting = start_server_with(&format!("[relay]\ntls_verify = false\n{}", task("tls"))).await;
        let strict = start_server_with(&task("strict")).await;

        assert!(
            wait_until(Duration::from_secs(15), || trusting.is_publishing("live", "tls")).await,
            "the rtmps:// pull never published: {:?}",
            relays(&trusting, "live", "tls").await
        );
        let probe = ffprobe_frames(&rtmp_url(&trusting, "live", "tls"), 3).await;
        check_test_stream(&probe, 45, "a stream pulled over RTMPS");

        // The self-signed certificate is refused when certificates are checked.
        let mut refused = false;
        for _ in 0..50 {
            let listed = relays(&strict, "live", "strict").await;
            refused = listed.first().is_some_and(|r| {
                r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.to_ascii_lowercase().contains("certificate"))
            });
            if refused {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(refused, "{:?}", relays(&strict, "live", "strict").await);
        assert!(!strict.is_publishing("live", "strict"));
    })
    .await;
}

/// Video frames read by an RTMP player of `url` until `n` coded pictures came.
async fn video_frames(url: &str, n: usize) -> Vec<Frame> {
    let mut player = tokio::time::timeout(
        Duration::from_secs(15),
        rill::client::RtmpPlayer::connect(url),
    )
    .await
    .expect("play timed out")
    .expect("play failed");
    let mut frames = Vec::new();
    while frames
        .iter()
        .filter(|f: &&Frame| !f.sequence_header)
        .count()
        < n
    {
        let f = tokio::time::timeout(Duration::from_secs(10), player.next_frame())
            .await
            .expect("no frame within 10 s")
            .expect("read")
            .expect("stream ended");
        if f.kind == FrameKind::Video {
            frames.push(f);
        }
    }
    frames
}

fn assert_enhanced_hevc(frames: &[Frame], what: &str) {
    let first = frames.first().expect("frames");
    assert!(
        first.sequence_header,
        "{what}: starts with the sequence header"
    );
    for f in frames {
        assert_eq!(f.codec, Codec::Video(VideoCodec::Hevc), "{what}");
        // Enhanced RTMP: the IsExHeader bit and the hvc1 FourCC, as the publisher sent them.
        assert!(
            f.payload[0] & 0x80 != 0,
            "{what}: not an Enhanced RTMP header"
        );
        assert_eq!(&f.payload[1..5], b"hvc1", "{what}");
    }
    assert!(
        frames.iter().any(|f| f.is_video_keyframe()),
        "{what}: no keyframe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_rtmp_hevc_through_pull_and_push() {
    let Some(ffmpeg) = modern_ffmpeg(&["libx265", "aac"]) else {
        return;
    };
    let _turn = serial().await;
    bounded(async {
        let origin = start_server().await;
        let target = start_server().await;
        let edge = start_server_with(&format!(
            "[[relay.tasks]]\napp = \"live\"\nmode = \"pull\"\nedge = \"rtmp://127.0.0.1:{}\"\n\
             [[relay.tasks]]\napp = \"live\"\nmode = \"push\"\nedge = \"rtmp://127.0.0.1:{}/copy\"\n",
            origin.rtmp_addr().port(),
            target.rtmp_addr().port()
        ))
        .await;
        let mut cmd = ffmpeg_test_source(&ffmpeg, (640, 360), 25, 44100, true);
        cmd.args([
            "-c:v", "libx265", "-preset", "ultrafast", "-g", "25",
            "-x265-params", "log-level=error:bframes=0",
            "-c:a", "aac", "-t", "30", "-f", "flv",
        ])
        .arg(rtmp_url(&origin, "live", "hevc"));
        let mut publisher = spawn_quiet(&mut cmd, "modern ffmpeg");
        wait_publishing(&origin, "live", "hevc", &mut publisher).await;

        // Pull on play: the edge's viewer gets the HEVC as the origin has it.
        let pulled = video_frames(&rtmp_url(&edge, "live", "hevc"), 30).await;
        assert_enhanced_hevc(&pulled, "pulled by the edge");
        let at_origin = video_frames(&rtmp_url(&origin, "live", "hevc"), 1).await;
        assert_eq!(
            at_origin[0].payload, pulled[0].payload,
            "the sequence header changed on the way"
        );
        // The pulled publish is pushed on by the edge's push task.
        assert!(
            wait_until(Duration::from_secs(10), || target.is_publishing("copy", "hevc")).await,
            "the edge's push never reached the target"
        );
        let pushed = video_frames(&rtmp_url(&target, "copy", "hevc"), 30).await;
        assert_enhanced_hevc(&pushed, "pushed to the target");
        assert_eq!(pushed[0].payload, Bytes::clone(&pulled[0].payload));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_on_play_passes_the_viewers_query_and_shows_in_metrics() {
    bounded(async {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let origin = rill::Server::builder(rill::Config::loopback_ephemeral())
            .on_pre_play(move |e: rill::Event| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push(e.args.clone());
                    Ok(())
                }
            })
            .start()
            .await
            .expect("origin");
        let edge = start_server_with(&format!(
            "[relay]\nplay_wait = 3\n[[relay.tasks]]\napp = \"live\"\nmode = \"pull\"\nedge = \"rtmp://127.0.0.1:{}\"\n",
            origin.rtmp_addr().port()
        ))
        .await;
        // Nobody publishes on the origin: the viewer waits, and meanwhile the pull is listed.
        let url = format!("{}?token=abc", rtmp_url(&edge, "live", "s"));
        let viewer = tokio::spawn(async move { rill::client::RtmpPlayer::connect(&url).await });
        let asked = wait_until(Duration::from_secs(5), || {
            seen.lock().unwrap().iter().any(|args| args.get("token").map(String::as_str) == Some("abc"))
        })
        .await;
        assert!(asked, "the origin's prePlay never saw the viewer's query: {:?}", seen.lock().unwrap());
        let metrics = http_request(edge.http_addr(), "GET", "/metrics", None, Body::None).await;
        let text = metrics.text();
        assert!(
            text.lines().any(|l| l.starts_with("rill_relay_up{") && l.contains("mode=\"pull\"") && l.contains("stream=\"s\"")),
            "{text}"
        );
        assert!(text.contains("rill_relays{mode=\"pull\",state=\"connecting\"} 1"), "{text}");
        // No picture within play_wait: a clean refusal.
        let refused = tokio::time::timeout(Duration::from_secs(10), viewer)
            .await
            .expect("the viewer was held past play_wait")
            .expect("task");
        let e = refused.err().expect("refused").to_string();
        assert!(e.contains("StreamNotFound"), "{e}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_on_play_of_a_dead_origin_gives_up_once_nobody_waits() {
    bounded(async {
        let dead = common::relay_peers::free_port();
        let edge = start_server_with(&format!(
            "[relay]\nplay_wait = 2\n[[relay.tasks]]\napp = \"live\"\nmode = \"pull\"\nedge = \"rtmp://127.0.0.1:{dead}\"\n"
        ))
        .await;
        let started = std::time::Instant::now();
        let r = rill::client::RtmpPlayer::connect(&rtmp_url(&edge, "live", "s")).await;
        let e = r.err().expect("refused").to_string();
        assert!(e.contains("StreamNotFound"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        // Nobody watches any more: the relay is gone by its next retry, and stays gone.
        let addr = edge.http_addr();
        let gone = eventually(Duration::from_secs(8), || async move {
            let r = http_request(addr, "GET", "/api/relay", None, Body::None).await;
            r.json() == serde_json::json!({})
        })
        .await;
        assert!(gone, "the pull of a dead origin kept retrying with nobody watching");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let r = http_request(edge.http_addr(), "GET", "/api/relay", None, Body::None).await;
        assert_eq!(r.json(), serde_json::json!({}));
    })
    .await;
}
