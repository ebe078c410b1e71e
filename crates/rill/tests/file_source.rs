//! File sources of the relay against real files made by Debian's ffmpeg: a native FLV and an MP4
//! remuxed by a supervised ffmpeg child, both looped in real time; and the errors for files that
//! cannot be played.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rill::relay::file::{FileError, FileSource};
use rill_media::{flv, Frame, FrameKind};

/// Stream time each looping test reads: more than two loops of the 2 s files.
const READ_MS: u32 = 5000;

/// Makes a 2 s, 320x240, 25 fps H.264 (a keyframe every second) + AAC file in `dir`; its format
/// follows the extension of `name`.
fn make_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "2", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .expect("cannot run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {name}: {status}");
    path
}

/// Reads frames until one is stamped at least `READ_MS`, each with the wall-clock time it arrived.
async fn read_frames(source: &mut FileSource) -> Vec<(Instant, Frame)> {
    let mut frames = Vec::new();
    let limit = Duration::from_millis(u64::from(READ_MS)) + Duration::from_secs(15);
    tokio::time::timeout(limit, async {
        loop {
            let frame = source
                .next_frame()
                .await
                .expect("file source failed")
                .expect("file source ended");
            let ts = frame.timestamp;
            frames.push((Instant::now(), frame));
            if ts >= READ_MS {
                break;
            }
        }
    })
    .await
    .expect("file source too slow");
    frames
}

/// Looped past the 2 s of the file, each track non-decreasing, the sequence headers sent again at
/// each loop, a keyframe every second, and delivered in real time.
fn check_looped_live(frames: &[(Instant, Frame)], what: &str) {
    let of = |kind| {
        frames
            .iter()
            .map(|(_, f)| f)
            .filter(move |f| f.kind == kind)
    };
    for kind in [FrameKind::Audio, FrameKind::Video] {
        let ts: Vec<u32> = of(kind).map(|f| f.timestamp).collect();
        assert!(ts.len() > 50, "{what}: only {} {kind:?} frames", ts.len());
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "{what}: {kind:?} timestamps go back: {ts:?}"
        );
        assert!(*ts.last().unwrap() > 4000, "{what}: {kind:?} did not loop");
        let headers: Vec<u32> = of(kind)
            .filter(|f| f.sequence_header)
            .map(|f| f.timestamp)
            .collect();
        assert!(!headers.is_empty(), "{what}: no {kind:?} sequence header");
        assert!(
            of(kind).next().unwrap().sequence_header,
            "{what}: the first {kind:?} frame is not a sequence header"
        );
        eprintln!("{what}: {kind:?} sequence headers at {headers:?}");
    }
    let first_video = of(FrameKind::Video).find(|f| !f.sequence_header).unwrap();
    assert!(
        first_video.is_video_keyframe(),
        "{what}: starts without a keyframe"
    );
    let keyframes = of(FrameKind::Video)
        .filter(|f| f.is_video_keyframe())
        .count();
    assert!(keyframes >= 5, "{what}: {keyframes} keyframes in 5 s");

    let (start, first) = &frames[0];
    let (end, last) = &frames[frames.len() - 1];
    let span = f64::from(last.timestamp - first.timestamp) / 1000.0;
    let elapsed = end.duration_since(*start).as_secs_f64();
    eprintln!("{what}: {span:.3} s of stream in {elapsed:.3} s");
    assert!(
        (elapsed - span).abs() <= 0.2 * span,
        "{what}: {span:.3} s of stream took {elapsed:.3} s"
    );
}

/// True once `/proc/PID` is gone: ffmpeg is our own child and its supervisor reaps it, so not
/// even a zombie may remain.
fn process_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn native_flv_loops_in_real_time() {
    if !common::require_tool("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = make_file(dir.path(), "two-seconds.flv");
    let mut source = FileSource::open(path.to_str().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(source.ffmpeg_pid(), None, "an FLV file needs no ffmpeg");
    let frames = read_frames(&mut source).await;
    check_looped_live(&frames, "native FLV");
    // A native file's metadata goes out once, not at each loop.
    let metadata = frames
        .iter()
        .filter(|(_, f)| f.kind == FrameKind::Metadata)
        .count();
    assert_eq!(metadata, 1);
    // Loops rebase: the headers are sent again at each loop.
    let video_headers = frames
        .iter()
        .filter(|(_, f)| f.kind == FrameKind::Video && f.sequence_header)
        .count();
    assert!(
        video_headers >= 3,
        "{video_headers} video headers in 3 loops"
    );
}

#[tokio::test]
async fn file_url_is_accepted() {
    if !common::require_tool("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = make_file(dir.path(), "url.flv");
    let url = format!("file://{}", path.display());
    let mut source = FileSource::open(&url, None).await.unwrap();
    assert!(source.next_frame().await.unwrap().is_some());
}

#[tokio::test]
async fn mp4_through_ffmpeg_loops_in_real_time() {
    if !common::require_tool("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = make_file(dir.path(), "two-seconds.mp4");
    let mut source = FileSource::open(path.to_str().unwrap(), Some(Path::new("ffmpeg")))
        .await
        .unwrap();
    let pid = source.ffmpeg_pid().expect("ffmpeg is not running");
    assert!(!process_gone(pid));
    let frames = read_frames(&mut source).await;
    check_looped_live(&frames, "MP4 through ffmpeg");
    source.close().await;
    assert!(
        common::wait_until(Duration::from_secs(3), || process_gone(pid)).await,
        "ffmpeg {pid} still running after close"
    );

    // Dropped instead of closed: killed all the same.
    let mut source = FileSource::open(path.to_str().unwrap(), Some(Path::new("ffmpeg")))
        .await
        .unwrap();
    let pid = source.ffmpeg_pid().expect("ffmpeg is not running");
    assert!(source.next_frame().await.unwrap().is_some());
    drop(source);
    assert!(
        common::wait_until(Duration::from_secs(3), || process_gone(pid)).await,
        "ffmpeg {pid} still running after drop"
    );
}

#[tokio::test]
async fn ffmpeg_failure_reports_its_stderr() {
    if !common::require_tool("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-media.mp4");
    std::fs::write(&path, vec![0x5a; 4096]).unwrap();
    let err = FileSource::open(path.to_str().unwrap(), Some(Path::new("ffmpeg")))
        .await
        .err()
        .expect("a non-media file opened");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, FileError::Ffmpeg { .. }), "{text}");
    assert!(text.contains("not-media.mp4"), "{text}");
    let FileError::Ffmpeg { stderr, .. } = err else {
        unreachable!()
    };
    assert!(
        !stderr.is_empty(),
        "ffmpeg's stderr lines are missing: {text}"
    );
}

#[tokio::test]
async fn a_missing_ffmpeg_binary_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.mkv");
    std::fs::write(&path, b"whatever").unwrap();
    let err = FileSource::open(
        path.to_str().unwrap(),
        Some(Path::new("/nonexistent/ffmpeg")),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, FileError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/ffmpeg"), "{err}");
}

#[tokio::test]
async fn non_flv_without_ffmpeg_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("movie.mp4");
    std::fs::write(&path, b"not looked at").unwrap();
    let err = FileSource::open(path.to_str().unwrap(), None)
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(matches!(err, FileError::NeedsFfmpeg { .. }), "{text}");
    assert!(text.contains("relay.ffmpeg"), "{text}");
    assert!(text.contains("movie.mp4"), "{text}");
}

#[tokio::test]
async fn garbage_and_truncated_flv_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A valid start: header, a metadata tag, a video sequence header, a keyframe.
    let mut good = BytesMut::new();
    good.extend_from_slice(&flv::file_header(true, true));
    flv::write_tag(
        18,
        0,
        b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09",
        &mut good,
    );
    flv::write_tag(9, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f], &mut good);
    flv::write_tag(9, 0, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65], &mut good);

    let mut random = vec![0u8; 10_000];
    let mut x: u32 = 0x1234_5678;
    for b in &mut random {
        // xorshift: reproducible noise without a dependency.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let mut bad_size = good[..13].to_vec();
    // A video tag announcing 16 MiB - 1 bytes, then nothing.
    bad_size.extend_from_slice(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", random),
        ("cut in the header", good[..7].to_vec()),
        ("cut in the first tag", good[..40].to_vec()),
        ("cut after the metadata", good[..good.len() - 30].to_vec()),
        ("huge tag, no body", bad_size),
        ("header only", good[..13].to_vec()),
    ];
    for (what, data) in cases {
        let path = dir.path().join("bad.flv");
        std::fs::write(&path, &data).unwrap();
        let opened = tokio::time::timeout(
            Duration::from_secs(5),
            FileSource::open(path.to_str().unwrap(), None),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: open hangs"));
        let err = opened.err().unwrap_or_else(|| panic!("{what}: opened"));
        eprintln!("{what}: {err}");
        assert!(err.to_string().contains("bad.flv"), "{what}: {err}");
    }
}
