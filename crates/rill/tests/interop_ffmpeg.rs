//! Interoperability with real ffmpeg/ffprobe: publishing, playing over RTMP and HTTP-FLV, late
//! joiners, a refused second publisher, hostile connections, and ffmpeg as an RTMP player.
//!
//! The publisher is a synthetic 1280x720 30 fps H.264 (keyframe every second, no B-frames) + AAC
//! stream. Without ffmpeg the tests skip, except under CI where they fail (see
//! `common::require_tool`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use rill_media::FrameKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

/// Two seconds of a 30 fps stream is 60 frames; the slack absorbs a GOP boundary and a slow machine.
const MIN_FRAMES_IN_2S: usize = 45;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_then_play_over_rtmp_and_http_flv() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let server = start_server().await;
        let publisher = publish_live(&server, "live", "cam1", 30).await;

        let probe = ffprobe_frames(&rtmp_url(&server, "live", "cam1"), 2).await;
        check_test_stream(&probe, MIN_FRAMES_IN_2S, "RTMP play");
        let probe = ffprobe_frames(&http_flv_url(&server, "live", "cam1"), 2).await;
        check_test_stream(&probe, MIN_FRAMES_IN_2S, "HTTP-FLV");

        assert!(
            server.is_publishing("live", "cam1"),
            "the publisher dropped while being watched"
        );
        drop(publisher);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_starts_on_a_keyframe_without_waiting() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let server = start_server().await;
        let url = rtmp_url(&server, "live", "cam1");
        let publisher = publish_live(&server, "live", "cam1", 40).await;
        tokio::time::sleep(Duration::from_secs(5)).await;

        // Rill's own player: from connect to the first decodable picture. With a GOP cache this is
        // one round trip plus the burst of the cached GOP, far below the 1 s GOP length.
        let started = Instant::now();
        let mut player = rill::client::RtmpPlayer::connect(&url)
            .await
            .expect("RTMP play failed");
        let mut seen_video_header = false;
        let first_key = timeout(Duration::from_secs(5), async {
            loop {
                let frame = player
                    .next_frame()
                    .await
                    .expect("player error")
                    .expect("server closed the player");
                if frame.kind != FrameKind::Video {
                    continue;
                }
                if frame.sequence_header {
                    seen_video_header = true;
                    continue;
                }
                return frame;
            }
        })
        .await
        .expect("no video frame within 5 s");
        let latency = started.elapsed();
        eprintln!("late joiner: RtmpPlayer got its first keyframe {latency:?} after connecting");
        assert!(
            seen_video_header,
            "the AVC sequence header did not precede the first picture"
        );
        assert!(
            first_key.keyframe,
            "the late joiner's first picture is not a keyframe"
        );
        assert!(
            latency < Duration::from_secs(1),
            "first keyframe took {latency:?}"
        );
        drop(player);

        for (what, url) in [
            ("HTTP-FLV", http_flv_url(&server, "live", "cam1")),
            ("RTMP", url.clone()),
        ] {
            let started = Instant::now();
            let probe = ffprobe_frames(&url, 1).await;
            let took = started.elapsed();
            eprintln!("late joiner: ffprobe over {what} read 1 s of stream in {took:?}");
            let frames = video_frames(&probe);
            assert!(
                frames.len() >= 20,
                "{what} late joiner: only {} video frames",
                frames.len()
            );
            assert!(
                frames[0].key,
                "{what} late joiner: first video frame is not a keyframe"
            );
            assert_monotonic(
                frames.iter().map(|f| f.dts),
                &format!("{what} late joiner dts"),
            );
            // One second of stream time; the cached GOP arrives at once, so well under real time
            // plus ffprobe's start-up. Mostly this catches a viewer left waiting for data.
            assert!(
                took < Duration::from_secs(6),
                "{what} late joiner: ffprobe took {took:?}"
            );
        }
        drop(publisher);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_on_the_same_name_is_refused() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let server = start_server().await;
        let url = rtmp_url(&server, "live", "cam1");
        let mut first = publish_live(&server, "live", "cam1", 40).await;
        let viewer = BackgroundViewer::start(&url).await;
        viewer
            .assert_flowing(10, Duration::from_secs(5), "before the intruder")
            .await;

        let mut second = spawn_ffmpeg_publisher(&url, 5);
        let status = timeout(Duration::from_secs(20), second.wait())
            .await
            .expect("the second publisher was neither refused nor finished")
            .expect("cannot wait for ffmpeg");
        assert!(
            !status.success(),
            "the second publisher on live/cam1 was accepted"
        );

        assert!(
            matches!(first.try_wait(), Ok(None)),
            "the first publisher died"
        );
        assert!(server.is_publishing("live", "cam1"));
        viewer
            .assert_flowing(30, Duration::from_secs(5), "after the intruder")
            .await;
        let probe = ffprobe_frames(&http_flv_url(&server, "live", "cam1"), 2).await;
        check_test_stream(
            &probe,
            MIN_FRAMES_IN_2S,
            "HTTP-FLV after the refused publisher",
        );

        drop(viewer);
        drop(first);
        server.shutdown().await;
    })
    .await;
}

/// A deterministic xorshift stream, so a failure replays identically.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// Reads until the server closes the connection; panics if it is still open after `within`.
async fn expect_closed_by_server(stream: &mut TcpStream, within: Duration, what: &str) {
    let mut buf = [0u8; 4096];
    let closed = timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{what}: the server kept the connection open for {within:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_close_alone_while_a_stream_flows() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let server = start_server().await;
        let url = rtmp_url(&server, "live", "cam1");
        let mut publisher = publish_live(&server, "live", "cam1", 40).await;
        let viewer = BackgroundViewer::start(&url).await;
        viewer
            .assert_flowing(10, Duration::from_secs(5), "before the attacks")
            .await;
        let rtmp = server.rtmp_addr();
        let close_within = Duration::from_secs(10);

        // An HTTP request on the RTMP port: 'G' is not an RTMP version (32..=255 are not allowed).
        let mut s = TcpStream::connect(rtmp).await.unwrap();
        s.write_all(b"GET /live/cam1.flv HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        expect_closed_by_server(&mut s, close_within, "HTTP on the RTMP port").await;

        // Random bytes, many connections at once, the first byte never a valid version.
        let mut conns = Vec::new();
        for seed in 1..=16u64 {
            let mut bytes = garbage(8192, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            bytes[0] |= 0x80;
            let mut s = TcpStream::connect(rtmp).await.unwrap();
            // The server may close before reading everything; a reset here is fine.
            let _ = s.write_all(&bytes).await;
            conns.push(s);
        }
        for (i, s) in conns.iter_mut().enumerate() {
            expect_closed_by_server(s, close_within, &format!("random bytes #{i}")).await;
        }

        // C0 with a bad version followed by a full C1.
        let mut s = TcpStream::connect(rtmp).await.unwrap();
        let mut c0c1 = vec![0xff];
        c0c1.extend(garbage(1536, 42));
        let _ = s.write_all(&c0c1).await;
        expect_closed_by_server(&mut s, close_within, "C0 version 0xff").await;

        // A truncated handshake: 100 bytes of C0+C1, then our side closes.
        let mut s = TcpStream::connect(rtmp).await.unwrap();
        let mut partial = vec![3u8];
        partial.extend(garbage(99, 7));
        s.write_all(&partial).await.unwrap();
        s.shutdown().await.unwrap();
        expect_closed_by_server(&mut s, close_within, "truncated C0+C1").await;

        // A valid simple C0+C1+C2 then chunk-stream garbage: the connection may stay open waiting for
        // a message that never completes, but it must not disturb anyone else.
        let mut s = TcpStream::connect(rtmp).await.unwrap();
        let mut hs = vec![3u8];
        hs.extend(std::iter::repeat_n(0u8, 8));
        hs.extend(garbage(1528 + 1536 + 4096, 99));
        let _ = s.write_all(&hs).await;
        drop(s);

        // A connection that stops in the middle of the handshake and just stays there.
        let mut idle = TcpStream::connect(rtmp).await.unwrap();
        idle.write_all(&[3u8; 200]).await.unwrap();

        assert!(
            server.is_publishing("live", "cam1"),
            "the publisher was dropped"
        );
        assert!(
            matches!(publisher.try_wait(), Ok(None)),
            "the ffmpeg publisher died"
        );
        viewer
            .assert_flowing(30, Duration::from_secs(5), "after the attacks")
            .await;
        let probe = ffprobe_frames(&http_flv_url(&server, "live", "cam1"), 2).await;
        check_test_stream(
            &probe,
            MIN_FRAMES_IN_2S,
            "a new HTTP-FLV viewer after the attacks",
        );

        drop(idle);
        drop(viewer);
        drop(publisher);
        server.shutdown().await;
    })
    .await;
}

/// The last `frame=  N` of ffmpeg's progress output.
fn reported_frames(stderr: &str) -> Option<u64> {
    stderr.split(['\r', '\n']).rev().find_map(|line| {
        line.trim_start()
            .strip_prefix("frame=")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_back_over_rtmp() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let server = start_server().await;
        let url = rtmp_url(&server, "live", "cam1");
        let publisher = publish_live(&server, "live", "cam1", 30).await;

        let mut player = Command::new("ffmpeg");
        player
            .args([
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "info",
                "-stats",
                "-i",
                &url,
            ])
            .args(["-t", "2", "-f", "null", "-"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = timeout(Duration::from_secs(20), player.output())
            .await
            .expect("ffmpeg player did not finish")
            .expect("cannot run ffmpeg");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "ffmpeg player failed ({}): {stderr}",
            out.status
        );
        let frames =
            reported_frames(&stderr).unwrap_or_else(|| panic!("no frame count in: {stderr}"));
        assert!(
            frames >= MIN_FRAMES_IN_2S as u64,
            "ffmpeg decoded only {frames} frames: {stderr}"
        );
        assert!(
            stderr.contains("h264"),
            "no H.264 input stream reported: {stderr}"
        );
        assert!(
            stderr.contains("aac"),
            "no AAC input stream reported: {stderr}"
        );

        drop(publisher);
        server.shutdown().await;
    })
    .await;
}

#[test]
fn reported_frames_reads_the_last_progress_line() {
    let stderr = "frame=    1 fps=0.0 q=-0.0 size=N/A\rframe=   54 fps=0.0\rframe=   59 fps=0.0 q=-0.0 Lsize=N/A\n";
    assert_eq!(reported_frames(stderr), Some(59));
    assert_eq!(reported_frames("nothing here"), None);
}
