//! End-to-end tests of Rill's own clients and of WS-FLV delivery.
//!
//! - `RtmpPlayer` playing an ffmpeg-published stream: metadata and sequence headers first, then a
//!   keyframe, monotonic timestamps;
//! - a WebSocket viewer demuxing the FLV it receives: header flags, first tags, timestamps;
//! - `RtmpPublisher` to `RtmpPlayer` with synthetic frames: what arrives is byte-identical.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use rill::client::{ClientError, RtmpPlayer, RtmpPublisher};
use rill_media::flv::{self, AudioPacket, VideoPacket};
use rill_media::{AudioCodec, Codec, Frame, FrameKind, VideoCodec};
use rill_rtmp::amf0::{self, Amf0Value};
use tokio::time::timeout;

/// Coded video frames to collect from the 30 fps ffmpeg stream (two seconds).
const VIDEO_FRAMES: usize = 60;

/// Asserts that `payload` is `onMetaData` script data describing the 1280x720 ffmpeg test stream.
fn check_ffmpeg_metadata(payload: &[u8], what: &str) {
    let values =
        amf0::decode_all(payload).unwrap_or_else(|e| panic!("{what}: metadata is not AMF0: {e}"));
    assert_eq!(
        values.first().and_then(Amf0Value::as_str),
        Some("onMetaData"),
        "{what}: {values:?}"
    );
    let props = values
        .get(1)
        .unwrap_or_else(|| panic!("{what}: onMetaData without properties"));
    assert_eq!(
        props.get("width").and_then(Amf0Value::as_f64),
        Some(1280.0),
        "{what}: {props:?}"
    );
    assert_eq!(
        props.get("height").and_then(Amf0Value::as_f64),
        Some(720.0),
        "{what}: {props:?}"
    );
}

/// Non-decreasing timestamps per kind, and a video clock in milliseconds: `VIDEO_FRAMES` frames
/// at 30 fps span about two seconds.
fn check_timestamps(stamps: &[(FrameKind, u32)], what: &str) {
    for kind in [FrameKind::Video, FrameKind::Audio] {
        let ts: Vec<u32> = stamps
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
            .collect();
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "{what}: {kind:?} timestamps go back: {ts:?}"
        );
    }
    let video: Vec<u32> = stamps
        .iter()
        .filter(|(k, _)| *k == FrameKind::Video)
        .map(|(_, t)| *t)
        .collect();
    let span = video[video.len() - 1] - video[0];
    assert!(
        (1500..=2500).contains(&span),
        "{what}: {} video frames span {span} ms",
        video.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_player_gets_headers_then_a_keyframe() {
    if !require_tool("ffmpeg") {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let server = start_server().await;
        let url = rtmp_url(&server, "live", "cam1");
        let publisher = publish_live(&server, "live", "cam1", 30).await;

        let mut player = timeout(Duration::from_secs(10), RtmpPlayer::connect(&url))
            .await
            .expect("play timed out")
            .expect("play failed");
        let mut frames = Vec::new();
        timeout(Duration::from_secs(15), async {
            while frames
                .iter()
                .filter(|f: &&Frame| f.kind == FrameKind::Video && !f.sequence_header)
                .count()
                < VIDEO_FRAMES
            {
                let frame = player
                    .next_frame()
                    .await
                    .expect("player error")
                    .expect("server closed the player");
                frames.push(frame);
            }
        })
        .await
        .expect("too few frames within 15 s");

        assert_eq!(
            frames[0].kind,
            FrameKind::Metadata,
            "first frame: {:?}",
            frames[0]
        );
        check_ffmpeg_metadata(&frames[0].payload, "RTMP player");

        let first_coded = frames
            .iter()
            .position(|f| f.kind != FrameKind::Metadata && !f.sequence_header)
            .unwrap();
        let headers = &frames[..first_coded];
        assert!(
            headers
                .iter()
                .any(|f| f.kind == FrameKind::Video && f.codec == Codec::Video(VideoCodec::Avc)),
            "no AVC sequence header before the first coded frame: {headers:?}"
        );
        assert!(
            headers
                .iter()
                .any(|f| f.kind == FrameKind::Audio && f.codec == Codec::Audio(AudioCodec::Aac)),
            "no AAC sequence header before the first coded frame: {headers:?}"
        );
        let first_video = frames
            .iter()
            .find(|f| f.kind == FrameKind::Video && !f.sequence_header)
            .unwrap();
        assert!(
            first_video.keyframe,
            "first coded video frame is not a keyframe"
        );

        let coded: Vec<&Frame> = frames[first_coded..]
            .iter()
            .filter(|f| !f.sequence_header)
            .collect();
        for f in &coded {
            match f.kind {
                FrameKind::Video => assert_eq!(f.codec, Codec::Video(VideoCodec::Avc)),
                FrameKind::Audio => assert_eq!(f.codec, Codec::Audio(AudioCodec::Aac)),
                FrameKind::Metadata => {}
            }
        }
        assert!(
            coded.iter().any(|f| f.kind == FrameKind::Audio),
            "no audio frames"
        );
        let stamps: Vec<_> = coded
            .iter()
            .filter(|f| f.kind != FrameKind::Metadata)
            .map(|f| (f.kind, f.timestamp))
            .collect();
        check_timestamps(&stamps, "RTMP player");

        drop(player);
        drop(publisher);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_flv_viewer_gets_a_well_formed_flv_stream() {
    if !require_tool("ffmpeg") {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let server = start_server().await;
        let publisher = publish_live(&server, "live", "cam1", 30).await;

        let url = ws_flv_url(&server, "live", "cam1");
        let (mut ws, _) = timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .expect("WebSocket connect timed out")
        .expect("WebSocket connect failed");
        let (header, tags) = read_ws_flv(&mut ws, VIDEO_FRAMES, "over WS").await;

        assert_eq!(
            header,
            Some((true, true)),
            "FLV header must flag audio and video"
        );
        assert_eq!(tags[0].tag_type, 18, "first tag must be script data");
        check_ffmpeg_metadata(&tags[0].body, "WS-FLV");

        let first_coded = tags
            .iter()
            .position(|t| match t.tag_type {
                9 => flv::parse_video_header(&t.body).unwrap().packet != VideoPacket::SequenceStart,
                8 => flv::parse_audio_header(&t.body).unwrap().packet != AudioPacket::SequenceStart,
                _ => false,
            })
            .unwrap();
        let headers = &tags[..first_coded];
        assert!(
            headers.iter().any(|t| t.tag_type == 9
                && flv::parse_video_header(&t.body).unwrap().codec == VideoCodec::Avc),
            "no AVC sequence header before the first coded tag"
        );
        assert!(
            headers.iter().any(|t| t.tag_type == 8
                && flv::parse_audio_header(&t.body).unwrap().codec == AudioCodec::Aac),
            "no AAC sequence header before the first coded tag"
        );
        let first_video = tags.iter().find(|t| is_coded_video(t)).unwrap();
        assert!(
            flv::parse_video_header(&first_video.body).unwrap().keyframe,
            "first coded video tag is not a keyframe"
        );

        let stamps: Vec<_> = tags[first_coded..]
            .iter()
            .filter_map(|t| match t.tag_type {
                9 if is_coded_video(t) => Some((FrameKind::Video, t.timestamp)),
                8 => Some((FrameKind::Audio, t.timestamp)),
                _ => None,
            })
            .collect();
        check_timestamps(&stamps, "WS-FLV");

        drop(ws);
        drop(publisher);
        server.shutdown().await;
    })
    .await;
}

/// Deterministic filler so that a corrupted or shifted byte shows up in the comparison.
fn pattern(len: usize, seed: u32) -> impl Iterator<Item = u8> {
    (0..len as u32)
        .map(move |i| (i.wrapping_mul(31).wrapping_add(seed.wrapping_mul(7)) % 251) as u8)
}

fn metadata_frame() -> Frame {
    let payload = amf0::encode_all(&[
        Amf0Value::string("onMetaData"),
        Amf0Value::EcmaArray(vec![
            ("width".into(), Amf0Value::Number(640.0)),
            ("height".into(), Amf0Value::Number(360.0)),
            ("videocodecid".into(), Amf0Value::Number(7.0)),
            ("audiocodecid".into(), Amf0Value::Number(10.0)),
            ("framerate".into(), Amf0Value::Number(30.0)),
            ("encoder".into(), Amf0Value::string("rill-test")),
        ]),
    ]);
    Frame {
        kind: FrameKind::Metadata,
        timestamp: 0,
        composition_offset: 0,
        keyframe: false,
        sequence_header: false,
        codec: Codec::Data,
        payload: payload.into(),
    }
}

fn avc_sequence_header() -> Frame {
    // AVCDecoderConfigurationRecord (ISO 14496-15) with one made-up SPS and PPS.
    let mut body = vec![0x17, 0x00, 0, 0, 0];
    body.extend([
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1f,
    ]);
    body.extend([0x01, 0x00, 0x04, 0x68, 0xee, 0x3c, 0x80]);
    Frame {
        kind: FrameKind::Video,
        timestamp: 0,
        composition_offset: 0,
        keyframe: true,
        sequence_header: true,
        codec: Codec::Video(VideoCodec::Avc),
        payload: body.into(),
    }
}

fn avc_frame(timestamp: u32, keyframe: bool, composition_offset: i32, size: usize) -> Frame {
    let mut body = BytesMut::new();
    body.put_u8(if keyframe { 0x17 } else { 0x27 });
    body.put_u8(0x01);
    body.put_slice(&composition_offset.to_be_bytes()[1..]);
    body.put_u32(size as u32);
    body.put_u8(if keyframe { 0x65 } else { 0x41 });
    body.extend(pattern(size - 1, timestamp));
    Frame {
        kind: FrameKind::Video,
        timestamp,
        composition_offset,
        keyframe,
        sequence_header: false,
        codec: Codec::Video(VideoCodec::Avc),
        payload: body.freeze(),
    }
}

fn aac_sequence_header() -> Frame {
    // AudioSpecificConfig: AAC-LC, 44.1 kHz, stereo.
    Frame {
        kind: FrameKind::Audio,
        timestamp: 0,
        composition_offset: 0,
        keyframe: true,
        sequence_header: true,
        codec: Codec::Audio(AudioCodec::Aac),
        payload: Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]),
    }
}

fn aac_frame(timestamp: u32) -> Frame {
    let mut body = vec![0xaf, 0x01];
    body.extend(pattern(180 + (timestamp % 50) as usize, timestamp ^ 0x55));
    Frame {
        kind: FrameKind::Audio,
        timestamp,
        composition_offset: 0,
        keyframe: true,
        sequence_header: false,
        codec: Codec::Audio(AudioCodec::Aac),
        payload: body.into(),
    }
}

/// What must survive the trip unchanged.
fn essence(f: &Frame) -> (FrameKind, u32, Bytes) {
    (f.kind, f.timestamp, f.payload.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_publisher_to_rtmp_player_is_byte_identical() {
    bounded(async {
        let server = start_server().await;
        let url = rtmp_url(&server, "live", "synthetic");
        let mut publisher = timeout(Duration::from_secs(10), RtmpPublisher::connect(&url))
            .await
            .expect("publish timed out")
            .expect("publish failed");

        // Before the viewer arrives: what a GOP cache must replay. The keyframe is far larger than
        // any chunk size, so it crosses many chunks.
        let before = vec![
            metadata_frame(),
            avc_sequence_header(),
            aac_sequence_header(),
            avc_frame(0, true, 66, 60_000),
        ];
        for f in &before {
            publisher.send_frame(f).await.expect("send failed");
        }
        assert!(
            wait_until(Duration::from_secs(5), || server
                .is_publishing("live", "synthetic"))
            .await
        );

        let mut player = timeout(Duration::from_secs(10), RtmpPlayer::connect(&url))
            .await
            .expect("play timed out")
            .expect("play failed");

        // Live part: three more GOPs of interleaved audio and video, some with
        // non-zero composition offsets, then a jump past 2^24 ms that needs the extended timestamp field.
        let mut live = Vec::new();
        for i in 1..=90u32 {
            live.push(aac_frame(i * 33 - 10));
            live.push(avc_frame(
                i * 33,
                i % 30 == 0,
                if i % 2 == 0 { 33 } else { 0 },
                500 + (i as usize * 97) % 9000,
            ));
        }
        live.push(avc_frame(0x0100_0000, true, 0, 1234));
        live.push(aac_frame(0x0100_0010));
        live.push(avc_frame(0x0100_0021, false, 0, 321));
        for f in &live {
            publisher.send_frame(f).await.expect("send failed");
        }

        let mut received = Vec::new();
        timeout(Duration::from_secs(15), async {
            while received.len() < before.len() + live.len() {
                match player.next_frame().await.expect("player error") {
                    Some(f) => received.push(f),
                    None => panic!("server closed the player after {} frames", received.len()),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of {} frames arrived",
                received.len(),
                before.len() + live.len()
            )
        });

        // The replayed prefix may order the headers differently; each must arrive intact.
        let (head, tail) = received.split_at(before.len());
        for f in &before {
            assert!(
                head.iter().any(|r| essence(r) == essence(f)),
                "cached {:?} at {} ms did not arrive intact; got {:?}",
                f.kind,
                f.timestamp,
                head.iter()
                    .map(|r| (r.kind, r.timestamp, r.payload.len()))
                    .collect::<Vec<_>>()
            );
        }
        for (i, (got, sent)) in tail.iter().zip(&live).enumerate() {
            assert_eq!(essence(got), essence(sent), "live frame {i} differs");
            if got.kind == FrameKind::Video {
                assert_eq!(got.keyframe, sent.keyframe, "live frame {i}: keyframe flag");
                assert_eq!(
                    got.composition_offset, sent.composition_offset,
                    "live frame {i}: composition offset"
                );
                assert_eq!(got.codec, sent.codec, "live frame {i}: codec");
            }
        }

        publisher.close().await.expect("close failed");
        assert!(
            wait_until(Duration::from_secs(5), || !server
                .is_publishing("live", "synthetic"))
            .await,
            "the stream stayed live after the publisher closed"
        );
        drop(player);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn clients_reject_urls_that_are_not_rtmp_app_stream() {
    for url in [
        "http://127.0.0.1:1935/live/x",
        "rtmp://127.0.0.1:1935/live",
        "not a url",
    ] {
        let played = timeout(Duration::from_secs(5), RtmpPlayer::connect(url))
            .await
            .expect("connect hung");
        assert!(
            matches!(played, Err(ClientError::BadUrl(_))),
            "{url}: {:?}",
            played.err()
        );
        let published = timeout(Duration::from_secs(5), RtmpPublisher::connect(url))
            .await
            .expect("connect hung");
        assert!(
            matches!(published, Err(ClientError::BadUrl(_))),
            "{url}: {:?}",
            published.err()
        );
    }
}
