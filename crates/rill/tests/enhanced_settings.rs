//! Enhanced RTMP stream settings reach viewers that join late, with a real encoder.
//!
//! The modern ffmpeg (7 or newer, from the PyPI package imageio-ffmpeg, see
//! `scripts/setup-modern-ffmpeg`) publishes 10-bit HEVC tagged BT.2020 / PQ together with 5.1
//! Opus. Its FLV muxer then writes two tags that no sequence header repeats: an ExVideo Metadata
//! packet (packet type 4, the AMF `colorInfo` object) and an ExAudio MultichannelConfig packet
//! (packet type 4, the channel layout). It writes each exactly once, at the very start, and never
//! again; [`ffmpeg_sends_each_setting_once_at_the_start`] pins that down on an FLV file, because
//! it is what makes the live test meaningful.
//!
//! [`late_joiners_get_the_stream_settings`] publishes the same stream to Rill and joins once the
//! stream is two seconds in (keyframe every half second, so the GOP cache has moved past the
//! first GOP several times): Rill's own `RtmpPlayer` and a plain HTTP-FLV GET must each get the
//! video sequence header, then `colorInfo`, then the first picture, a keyframe; and the audio
//! sequence header, then the channel layout, then the first audio frame; with the encoder's exact
//! bytes. ffmpeg sent those two tags once, at 0 ms, and the late joiner's pictures start a second
//! or more later, so without the hub keeping them with the sequence headers the late joiner would
//! have neither (before that feature they went to the GOP cache, which dropped them as they came
//! before any keyframe).
//!
//! A missing modern ffmpeg skips the tests, except under CI=true where it fails them.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use common::*;
use rill::client::RtmpPlayer;
use rill_media::flv::{self, AudioPacket, FlvDemuxer, VideoPacket};
use rill_media::{Frame, FrameKind};
use rill_rtmp::amf0::{self, Amf0Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::{oneshot, watch};
use tokio::time::timeout;

/// Encoders the publisher uses.
const ENCODERS: [&str; 2] = ["libx265", "libopus"];
const FPS: u32 = 30;
/// A keyframe every half second: by [`LATE_JOIN_MS`] the GOP cache has restarted three times.
const GOP_FRAMES: u32 = 15;
/// The late joiners connect once the viewer from the start has seen a video frame this late.
const LATE_JOIN_MS: u32 = 2000;
/// Seconds the live publisher may run; it is killed as soon as the checks are done.
const PUBLISH_S: u32 = 15;
/// Seconds of the FLV file: six GOPs, ample to see that nothing repeats the settings.
const FILE_S: u32 = 3;
/// 5.1: more than two channels is what makes ffmpeg write a MultichannelConfig packet.
const CHANNELS: u8 = 6;
/// Coded video and audio frames each viewer reads past its first picture.
const READ_FRAMES: usize = 5;

/// ISO/IEC 23091-2 code points `colorInfo` must carry.
const PRIMARIES_BT2020: f64 = 9.0;
const TRANSFER_PQ: f64 = 16.0;
const MATRIX_BT2020_NCL: f64 = 9.0;

/// The publisher: a small 10-bit HEVC picture tagged BT.2020 / PQ and 5.1 Opus, as FLV, with the
/// output (a file or an RTMP URL) left to the caller.
fn hdr_source(ffmpeg: &Path, realtime: bool, seconds: u32) -> Command {
    let mut cmd = ffmpeg_test_source(ffmpeg, (320, 180), FPS, 48000, realtime);
    // The colour tags go on the frames with setparams: ffmpeg n9.0.2 given only the output options
    // -color_primaries/-color_trc/-colorspace put nothing but matrixCoefficients in colorInfo.
    cmd.args([
        "-vf",
        "setparams=color_primaries=bt2020:color_trc=smpte2084:colorspace=bt2020nc,\
         format=yuv420p10le",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-g",
        &GOP_FRAMES.to_string(),
        "-x265-params",
        &format!("log-level=error:keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}:scenecut=0"),
        "-c:a",
        "libopus",
        "-ac",
        &CHANNELS.to_string(),
        "-t",
        &seconds.to_string(),
        "-f",
        "flv",
    ]);
    cmd
}

// ---------------------------------------------------------------------------------------------
// What a tag sequence must show
// ---------------------------------------------------------------------------------------------

fn video_packet(f: &Frame) -> Option<VideoPacket> {
    (f.kind == FrameKind::Video)
        .then(|| flv::parse_video_header(&f.payload).ok().map(|h| h.packet))
        .flatten()
}

fn audio_packet(f: &Frame) -> Option<AudioPacket> {
    (f.kind == FrameKind::Audio)
        .then(|| flv::parse_audio_header(&f.payload).ok().map(|h| h.packet))
        .flatten()
}

/// The settings one viewer (or the file) got, where its first picture starts, and how many
/// keyframes followed.
struct Settings {
    color_info: Bytes,
    multichannel: Bytes,
    first_picture_ms: u32,
    keyframes: usize,
}

/// Checks the order a decoder needs, in `frames` as received: video sequence header, then the
/// one `colorInfo`, then the first picture, which must be a keyframe; audio sequence header, then
/// the one channel layout, then the first coded audio. Also checks what the two settings say.
fn check_settings(frames: &[Frame], what: &str) -> Settings {
    let index = |pred: &dyn Fn(&Frame) -> bool, name: &str| {
        frames
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("{what}: no {name} in {} tags", frames.len()))
    };
    let video_seq = index(
        &|f| video_packet(f) == Some(VideoPacket::SequenceStart),
        "video sequence header",
    );
    let audio_seq = index(
        &|f| audio_packet(f) == Some(AudioPacket::SequenceStart),
        "audio sequence header",
    );
    let picture = index(
        &|f| video_packet(f) == Some(VideoPacket::CodedFrames),
        "coded video",
    );
    let sound = index(
        &|f| audio_packet(f) == Some(AudioPacket::CodedFrames),
        "coded audio",
    );

    let colors: Vec<usize> = (0..frames.len())
        .filter(|&i| video_packet(&frames[i]) == Some(VideoPacket::Metadata))
        .collect();
    let layouts: Vec<usize> = (0..frames.len())
        .filter(|&i| audio_packet(&frames[i]) == Some(AudioPacket::MultichannelConfig))
        .collect();
    // Exactly one: none would be the missing feature, two would mean a replay on top of the live
    // copy (or a repeat from the encoder, which would make the late-join test prove nothing).
    assert_eq!(colors.len(), 1, "{what}: video Metadata tags at {colors:?}");
    assert_eq!(
        layouts.len(),
        1,
        "{what}: MultichannelConfig tags at {layouts:?}"
    );
    let (color, layout) = (colors[0], layouts[0]);

    assert!(
        video_seq < color && color < picture,
        "{what}: video sequence header #{video_seq}, colorInfo #{color}, first picture #{picture}"
    );
    assert!(
        audio_seq < layout && layout < sound,
        "{what}: audio sequence header #{audio_seq}, channel layout #{layout}, first audio #{sound}"
    );
    assert!(
        frames[picture].is_video_keyframe(),
        "{what}: the first picture (at {} ms) is not a keyframe",
        frames[picture].timestamp
    );
    check_color_info(&frames[color].payload, what);
    check_layout(&frames[layout].payload, what);
    Settings {
        color_info: frames[color].payload.clone(),
        multichannel: frames[layout].payload.clone(),
        first_picture_ms: frames[picture].timestamp,
        keyframes: frames.iter().filter(|f| f.is_video_keyframe()).count(),
    }
}

/// An ExVideo Metadata body: header byte, `hvc1`, then the AMF pair `"colorInfo"`, `{colorConfig:
/// {...}}` with the BT.2020 / PQ code points the encoder was given.
fn check_color_info(body: &[u8], what: &str) {
    assert!(body.len() > 5, "{what}: colorInfo body {body:02x?}");
    // Top bit: ExVideoTagHeader; low nibble: packet type 4 (not a ModEx escape).
    assert_eq!(body[0] & 0x8F, 0x84, "{what}: header byte {:#04x}", body[0]);
    assert_eq!(&body[1..5], b"hvc1", "{what}: FourCC");
    let values = amf0::decode_all(&body[5..])
        .unwrap_or_else(|e| panic!("{what}: colorInfo AMF does not decode: {e}"));
    assert_eq!(
        values.first().and_then(Amf0Value::as_str),
        Some("colorInfo"),
        "{what}: {values:?}"
    );
    let config = values
        .get(1)
        .and_then(|v| v.get("colorConfig"))
        .unwrap_or_else(|| panic!("{what}: no colorConfig in {values:?}"));
    for (key, want) in [
        ("colorPrimaries", PRIMARIES_BT2020),
        ("transferCharacteristics", TRANSFER_PQ),
        ("matrixCoefficients", MATRIX_BT2020_NCL),
    ] {
        assert_eq!(
            config.get(key).and_then(Amf0Value::as_f64),
            Some(want),
            "{what}: colorConfig.{key} in {config:?}"
        );
    }
}

/// An ExAudio MultichannelConfig body: sound format 9 with packet type 4, `Opus`, the channel
/// order, the channel count and, for a native order, a 32-bit mask naming each speaker.
fn check_layout(body: &[u8], what: &str) {
    assert!(body.len() >= 7, "{what}: channel layout body {body:02x?}");
    assert_eq!(body[0], 0x94, "{what}: header byte");
    assert_eq!(&body[1..5], b"Opus", "{what}: FourCC");
    assert_eq!(body[6], CHANNELS, "{what}: channel count in {body:02x?}");
    if body[5] == 1 {
        let mask = u32::from_be_bytes(
            body[7..11]
                .try_into()
                .unwrap_or_else(|_| panic!("{what}: no channel mask in {body:02x?}")),
        );
        assert_eq!(
            mask.count_ones(),
            u32::from(CHANNELS),
            "{what}: mask {mask:#x}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reading FLV: a file, HTTP-FLV
// ---------------------------------------------------------------------------------------------

/// Appends the audio, video and script tags the demuxer has complete in `buf` to `frames`.
fn demux(demuxer: &mut FlvDemuxer, buf: &mut BytesMut, frames: &mut Vec<Frame>, what: &str) {
    while let Some(tag) = demuxer
        .next_tag(buf)
        .unwrap_or_else(|e| panic!("{what}: invalid FLV: {e}"))
    {
        let kind = match tag.tag_type {
            8 => FrameKind::Audio,
            9 => FrameKind::Video,
            18 => FrameKind::Metadata,
            _ => continue,
        };
        let frame = Frame::from_flv_body(kind, tag.timestamp, tag.body)
            .unwrap_or_else(|e| panic!("{what}: tag at {} ms: {e}", tag.timestamp));
        frames.push(frame);
    }
}

/// Whether a viewer has read [`READ_FRAMES`] coded video and audio frames.
fn read_enough(frames: &[Frame]) -> bool {
    let count = |kind, pred: &dyn Fn(&Frame) -> bool| {
        frames.iter().filter(|f| f.kind == kind && pred(f)).count()
    };
    count(FrameKind::Video, &|f| {
        video_packet(f) == Some(VideoPacket::CodedFrames)
    }) >= READ_FRAMES
        && count(FrameKind::Audio, &|f| {
            audio_packet(f) == Some(AudioPacket::CodedFrames)
        }) >= READ_FRAMES
}

/// Moves every complete chunk of a chunked HTTP body from `raw` to `out`.
fn dechunk(raw: &mut BytesMut, out: &mut BytesMut) {
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&raw[..eol]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("HTTP-FLV: bad chunk size line {line:?}"));
        assert_ne!(size, 0, "HTTP-FLV: the server ended the body");
        if raw.len() < eol + 2 + size + 2 {
            return;
        }
        raw.advance(eol + 2);
        out.extend_from_slice(&raw.split_to(size));
        raw.advance(2);
    }
}

/// `GET /live/<stream>.flv` as a browser's flv.js would send it, read until [`read_enough`].
async fn http_flv_collect(server: &rill::ServerHandle, stream: &str) -> Vec<Frame> {
    let what = "late HTTP-FLV";
    let mut sock = TcpStream::connect(server.http_addr()).await.unwrap();
    sock.write_all(
        format!("GET /live/{stream}.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = BytesMut::new();
    let mut flv_bytes = BytesMut::new();
    let mut demuxer = FlvDemuxer::new(16 * 1024 * 1024);
    let mut frames = Vec::new();
    let mut chunked = None;
    let read = timeout(Duration::from_secs(10), async {
        while !read_enough(&frames) {
            let n = sock.read_buf(&mut raw).await.expect("HTTP-FLV read failed");
            assert!(n > 0, "{what}: closed after {} tags", frames.len());
            if chunked.is_none() {
                let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 200"), "{what}: response {head}");
                chunked = Some(head.contains("transfer-encoding: chunked"));
                raw.advance(end + 4);
            }
            if chunked == Some(true) {
                dechunk(&mut raw, &mut flv_bytes);
            } else {
                flv_bytes.extend_from_slice(&raw.split());
            }
            demux(&mut demuxer, &mut flv_bytes, &mut frames, what);
        }
    })
    .await;
    assert!(read.is_ok(), "{what}: only {} tags in 10 s", frames.len());
    frames
}

/// Rill's `RtmpPlayer` read until [`read_enough`].
async fn rtmp_collect(url: &str) -> Vec<Frame> {
    let what = "late RtmpPlayer";
    let mut player = timeout(Duration::from_secs(10), RtmpPlayer::connect(url))
        .await
        .unwrap_or_else(|_| panic!("{what}: play timed out"))
        .unwrap_or_else(|e| panic!("{what}: play failed: {e}"));
    let mut frames = Vec::new();
    let read = timeout(Duration::from_secs(10), async {
        while !read_enough(&frames) {
            match player.next_frame().await {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => panic!("{what}: server closed after {} frames", frames.len()),
                Err(e) => panic!("{what}: {e}"),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{what}: only {} frames in 10 s", frames.len());
    frames
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ffmpeg_sends_each_setting_once_at_the_start() {
    let Some(ffmpeg) = modern_ffmpeg(&ENCODERS) else {
        return;
    };
    let _turn = serial().await;
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hdr.flv");
        let mut cmd = hdr_source(&ffmpeg, false, FILE_S);
        cmd.arg("-y")
            .arg(&path)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = output_within(&mut cmd, Duration::from_secs(30), "ffmpeg writing FLV").await;
        assert!(
            out.status.success(),
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut data = BytesMut::from(&std::fs::read(&path).unwrap()[..]);
        let mut frames = Vec::new();
        demux(
            &mut FlvDemuxer::new(16 * 1024 * 1024),
            &mut data,
            &mut frames,
            "file",
        );
        assert!(
            data.is_empty(),
            "file: {} bytes after the last tag",
            data.len()
        );

        let file = check_settings(&frames, "file");
        assert_eq!(file.first_picture_ms, 0, "file: first picture");
        // One setting for six GOPs: the encoder does not repeat it at keyframes, so a viewer that
        // starts at a later keyframe can only get it from the server.
        let gops = (FILE_S * FPS / GOP_FRAMES) as usize;
        assert_eq!(file.keyframes, gops, "file: keyframes");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiners_get_the_stream_settings() {
    let Some(ffmpeg) = modern_ffmpeg(&ENCODERS) else {
        return;
    };
    let _turn = serial().await;
    bounded(async {
        let started = Instant::now();
        let server = start_server().await;
        let stream = "hdr";
        let rtmp = rtmp_url(&server, "live", stream);

        // This viewer plays before the publish, so it sees every tag ffmpeg sends live, from the
        // first one, and tells when the stream is far enough in for the late joiners.
        let mut player = timeout(Duration::from_secs(10), RtmpPlayer::connect(&rtmp))
            .await
            .expect("early play timed out")
            .expect("early play failed");
        let (progress_tx, mut progress) = watch::channel(0u32);
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let early = tokio::spawn(async move {
            let mut frames: Vec<Frame> = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return Ok(frames),
                    next = player.next_frame() => match next {
                        Ok(Some(f)) => {
                            if f.kind == FrameKind::Video {
                                progress_tx.send_replace(f.timestamp);
                            }
                            frames.push(f);
                        }
                        Ok(None) => return Err(format!("closed after {} frames", frames.len())),
                        Err(e) => return Err(format!("{e} after {} frames", frames.len())),
                    },
                }
            }
        });

        let mut publish = hdr_source(&ffmpeg, true, PUBLISH_S);
        publish.arg(&rtmp);
        let mut publisher = spawn_quiet(&mut publish, "the modern ffmpeg");
        wait_publishing(&server, "live", stream, &mut publisher).await;
        let reached = timeout(
            Duration::from_secs(10),
            progress.wait_for(|ts| *ts >= LATE_JOIN_MS),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !reached {
            panic!(
                "the stream never reached {LATE_JOIN_MS} ms (viewer at {} ms); ffmpeg: {}",
                *progress.borrow(),
                child_stderr(&mut publisher).await
            );
        }

        let (late_rtmp, late_http) =
            tokio::join!(rtmp_collect(&rtmp), http_flv_collect(&server, stream));
        let _ = stop_tx.send(());
        let early_frames = early
            .await
            .expect("early viewer task panicked")
            .unwrap_or_else(|e| panic!("early viewer: {e}"));
        assert!(
            matches!(publisher.try_wait(), Ok(None)),
            "the publisher stopped early: {}",
            child_stderr(&mut publisher).await
        );
        drop(publisher);
        server.shutdown().await;

        // Live from the first tag, over at least four GOPs: one copy of each setting, at the start.
        let live = check_settings(&early_frames, "viewer from the start");
        assert!(
            live.keyframes >= 4,
            "viewer from the start: only {} keyframes",
            live.keyframes
        );
        assert_eq!(
            live.first_picture_ms, 0,
            "viewer from the start: first picture"
        );

        for (frames, what) in [(late_rtmp, "late RtmpPlayer"), (late_http, "late HTTP-FLV")] {
            let late = check_settings(&frames, what);
            assert_eq!(late.color_info, live.color_info, "{what}: colorInfo bytes");
            assert_eq!(late.multichannel, live.multichannel, "{what}: layout bytes");
            // The settings went out at 0 ms; a GOP of 1 s or later was cached long after them.
            assert!(
                late.first_picture_ms >= 1000,
                "{what}: first picture at {} ms; the join at {LATE_JOIN_MS} ms should start at a \
                 later GOP, or the test does not show the settings were kept",
                late.first_picture_ms
            );
            eprintln!(
                "{what}: settings before the first picture at {} ms",
                late.first_picture_ms
            );
        }
        eprintln!("ok in {:.1} s", started.elapsed().as_secs_f64());
    })
    .await;
}
