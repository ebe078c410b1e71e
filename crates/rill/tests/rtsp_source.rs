//! The RTSP pull source against a real RTSP server: Debian GStreamer's gst-rtsp-server
//! (tests/fixtures/rtsp_server.py, installed by scripts/setup-rtsp-peer) serving a live 640x360
//! 25 fps H.264 or H.265 picture and 48 kHz AAC audio on loopback.
//!
//! Each test reads about five seconds of frames through `rill::relay::rtsp::RtspSource` and checks
//! what the relay depends on: sequence headers first, the picture size they describe, keyframes,
//! monotonic decode timestamps, the frame rate, and that audio and video timestamps progress with
//! the wall clock together (A/V sync). Without GStreamer the tests skip, except under `CI=true`.

mod common;

use std::time::{Duration, Instant};

use rill::relay::rtsp::{RtspError, RtspSource, Transport};
use rill_media::codec::{AudioCodec, Codec, VideoCodec};
use rill_media::{Frame, FrameKind};
use tokio::time::timeout;

use common::rtsp_peer::start_peer;

/// How much media each test reads.
const READ_FOR: Duration = Duration::from_secs(5);

/// One frame as received, with its arrival time.
struct Received {
    frame: Frame,
    at: Instant,
}

/// Connects and reads frames for [`READ_FOR`] of media time (video), bounded in wall time.
async fn read_frames(url: &str, transport: Transport) -> Vec<Received> {
    let mut source = timeout(Duration::from_secs(20), RtspSource::connect(url, transport))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("connect to {url} failed: {e}"));
    let start = Instant::now();
    let mut frames = Vec::new();
    while start.elapsed() < READ_FOR {
        let next = timeout(Duration::from_secs(10), source.next_frame())
            .await
            .expect("no frame within 10 s");
        match next {
            Ok(Some(frame)) => frames.push(Received {
                frame,
                at: Instant::now(),
            }),
            Ok(None) => panic!("the server ended the session early"),
            Err(e) => panic!("next_frame failed: {e}"),
        }
    }
    frames
}

/// What every stream from the fixture must look like.
struct Expect {
    codec: VideoCodec,
    bframes: bool,
}

fn check_stream(frames: &[Received], expect: &Expect) {
    let video: Vec<&Received> = frames
        .iter()
        .filter(|r| r.frame.kind == FrameKind::Video)
        .collect();
    let audio: Vec<&Received> = frames
        .iter()
        .filter(|r| r.frame.kind == FrameKind::Audio)
        .collect();

    // Sequence headers first, describing the real picture and audio.
    let first = &video.first().expect("no video frames").frame;
    assert!(
        first.sequence_header,
        "first video frame is not a sequence header"
    );
    assert_eq!(first.codec, Codec::Video(expect.codec));
    let params = rill_media::params::video_params(&first.payload).expect("video params");
    assert_eq!((params.width, params.height), (640, 360));
    let first_audio = &audio.first().expect("no audio frames").frame;
    assert!(
        first_audio.sequence_header,
        "first audio frame is not a sequence header"
    );
    assert_eq!(first_audio.codec, Codec::Audio(AudioCodec::Aac));
    let aparams = rill_media::params::audio_params(&first_audio.payload).expect("audio params");
    assert_eq!(aparams.sample_rate, 48_000);

    let pictures: Vec<&Frame> = video
        .iter()
        .map(|r| &r.frame)
        .filter(|f| !f.sequence_header)
        .collect();
    assert!(
        pictures.first().is_some_and(|f| f.is_video_keyframe()),
        "the first picture is not a keyframe"
    );
    // key-int-max=50 at 25 fps: a keyframe every 2 s at least.
    let keyframes = pictures.iter().filter(|f| f.is_video_keyframe()).count();
    assert!(keyframes >= 2, "only {keyframes} keyframes in ~5 s");
    let sounds = audio.iter().filter(|r| !r.frame.sequence_header).count();
    // 48 kHz / 1024 samples: ~47 frames a second.
    assert!(sounds > 150, "only {sounds} audio frames in ~5 s");

    // Decode timestamps never go backwards on either track.
    for (what, track) in [("video", &video), ("audio", &audio)] {
        for w in track.windows(2) {
            assert!(
                w[1].frame.timestamp >= w[0].frame.timestamp,
                "{what} DTS went backwards: {} -> {}",
                w[0].frame.timestamp,
                w[1].frame.timestamp
            );
        }
    }

    // 25 fps from the decode timestamps.
    let span_ms = f64::from(pictures.last().unwrap().timestamp - pictures[0].timestamp);
    let fps = (pictures.len() - 1) as f64 * 1000.0 / span_ms;
    assert!((23.0..=27.0).contains(&fps), "frame rate {fps:.2}");

    // B-frames: presentation differs from decode order, and PTS = DTS + CTS stays unique and in
    // steps of whole frames; without them every CTS is zero.
    let cts_positive = pictures.iter().filter(|f| f.composition_offset > 0).count();
    if expect.bframes {
        assert!(
            cts_positive > 0,
            "B-frame stream without composition offsets"
        );
        for w in pictures.windows(2) {
            assert!(
                w[1].timestamp > w[0].timestamp,
                "DTS not strictly increasing"
            );
        }
        let mut pts: Vec<i64> = pictures
            .iter()
            .map(|f| i64::from(f.timestamp) + i64::from(f.composition_offset))
            .collect();
        assert!(pictures.iter().all(|f| f.composition_offset >= 0));
        pts.sort_unstable();
        // The last few pictures received may still miss pictures displayed between them, sent
        // after the cut-off: only the PTSs before those must be gap-free.
        pts.truncate(pts.len().saturating_sub(4));
        for w in pts.windows(2) {
            let step = w[1] - w[0];
            assert!((39..=41).contains(&step), "PTS step {step} ms: {pts:?}");
        }
    } else {
        assert_eq!(cts_positive, 0, "composition offsets without B-frames");
    }

    // A/V sync and drift: each track's timestamps advance with the wall clock, and the two
    // tracks' (timestamp - arrival time) agree within 100 ms over the last second.
    let offsets = |track: &[&Received]| -> Vec<f64> {
        let t0 = frames[0].at;
        track
            .iter()
            .filter(|r| !r.frame.sequence_header)
            .map(|r| {
                let pts = i64::from(r.frame.timestamp) + i64::from(r.frame.composition_offset);
                pts as f64 - r.at.duration_since(t0).as_secs_f64() * 1000.0
            })
            .collect()
    };
    let vo = offsets(&video);
    let ao = offsets(&audio);
    let tail_mean = |o: &[f64], n: usize| {
        let tail = &o[o.len().saturating_sub(n)..];
        tail.iter().sum::<f64>() / tail.len() as f64
    };
    let head_mean = |o: &[f64], n: usize| {
        let head = &o[..n.min(o.len())];
        head.iter().sum::<f64>() / head.len() as f64
    };
    // Skip the first second: the server's startup burst arrives faster than real time.
    let (v_late, a_late) = (tail_mean(&vo, 25), tail_mean(&ao, 47));
    // Encoders with B-frames hold pictures back (lookahead, reordering), so their video
    // arrives later than audio with the same timestamp: arrival times only measure sync for the
    // zero-latency streams. The drift check below holds for both.
    let sync = v_late - a_late;
    if !expect.bframes {
        assert!(
            sync.abs() < 100.0,
            "audio/video out of sync by {sync:.0} ms"
        );
    }
    let v_drift = v_late - head_mean(&vo[25.min(vo.len() - 1)..], 25);
    let a_drift = a_late - head_mean(&ao[47.min(ao.len() - 1)..], 47);
    assert!(
        (v_drift - a_drift).abs() < 100.0,
        "audio and video drift apart: video {v_drift:.0} ms, audio {a_drift:.0} ms"
    );
}

async fn run(codec: &str, bframes: u32, transport: Transport) {
    let _turn = common::serial().await;
    let Some(peer) = start_peer(codec, bframes, None).await else {
        return;
    };
    let frames = read_frames(&peer.url(""), transport).await;
    let codec = if codec == "h264" {
        VideoCodec::Avc
    } else {
        VideoCodec::Hevc
    };
    check_stream(
        &frames,
        &Expect {
            codec,
            bframes: bframes > 0,
        },
    );
}

#[tokio::test]
async fn h264_aac_over_tcp() {
    common::bounded(run("h264", 0, Transport::Tcp)).await;
}

#[tokio::test]
async fn h265_aac_over_tcp() {
    common::bounded(run("h265", 0, Transport::Tcp)).await;
}

#[tokio::test]
async fn h264_aac_over_udp() {
    common::bounded(run("h264", 0, Transport::Udp)).await;
}

#[tokio::test]
async fn h264_with_b_frames_gets_decode_timestamps() {
    common::bounded(run("h264", 2, Transport::Tcp)).await;
}

#[tokio::test]
async fn h265_with_b_frames_gets_decode_timestamps() {
    common::bounded(run("h265", 2, Transport::Tcp)).await;
}

async fn auth(method: &'static str) {
    let _turn = common::serial().await;
    let Some(peer) = start_peer("h264", 0, Some(("cam", "s3cr3t-pw", method))).await else {
        return;
    };
    // Right credentials: media flows.
    let mut source = timeout(
        Duration::from_secs(20),
        RtspSource::connect(&peer.url("cam:s3cr3t-pw@"), Transport::Tcp),
    )
    .await
    .expect("connect timed out")
    .unwrap_or_else(|e| panic!("{method} auth failed: {e}"));
    let frame = timeout(Duration::from_secs(10), source.next_frame())
        .await
        .expect("no frame")
        .expect("next_frame")
        .expect("session ended");
    assert!(frame.sequence_header);
    drop(source);

    // Wrong or missing credentials: a clear error that never shows the password.
    for userinfo in ["cam:wrong-pw@", ""] {
        let err = timeout(
            Duration::from_secs(20),
            RtspSource::connect(&peer.url(userinfo), Transport::Tcp),
        )
        .await
        .expect("connect timed out")
        .expect_err("connected without the right credentials");
        let msg = err.to_string();
        assert!(matches!(err, RtspError::Describe { .. }), "{msg}");
        assert!(msg.contains("401"), "{msg}");
        assert!(
            !msg.contains("wrong-pw") && !msg.contains("s3cr3t"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn digest_auth() {
    common::bounded(auth("digest")).await;
}

#[tokio::test]
async fn basic_auth() {
    common::bounded(auth("basic")).await;
}
