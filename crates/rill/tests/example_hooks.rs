//! Runs `examples/hooks.rs` (built by `cargo test`) and checks what it promises: allow-listed
//! names publish, others are refused with `NetStream.Publish.Unauthorized`, events are reported,
//! and a publisher is kicked by id after the time limit.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use rill::client::{ClientError, RtmpPublisher};
use rill_media::{Frame, FrameKind};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

fn example_binary() -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/hooks
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    profile_dir
        .join("examples")
        .join(format!("hooks{}", std::env::consts::EXE_SUFFIX))
}

fn has(seen: &[String], prefix: &str, stream: &str) -> bool {
    seen.iter()
        .any(|l| l.starts_with(prefix) && l.contains(stream))
}

#[tokio::test]
async fn hooks_example_allows_refuses_reports_and_kicks() {
    let bin = example_binary();
    assert!(bin.exists(), "{} is built by cargo test", bin.display());
    let mut child = Command::new(&bin)
        .args(["127.0.0.1:0", "127.0.0.1:0", "ok,cam", "2"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("example starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let rtmp = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rtmp="))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();

    match RtmpPublisher::connect(&format!("rtmp://{rtmp}/live/nope")).await {
        Err(ClientError::Refused(msg)) => {
            assert!(msg.contains("NetStream.Publish.Unauthorized"), "{msg}")
        }
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    let mut publisher = RtmpPublisher::connect(&format!("rtmp://{rtmp}/live/ok1"))
        .await
        .expect("allowed");
    let key = Frame::from_flv_body(
        FrameKind::Video,
        0,
        Bytes::from_static(b"\x17\x01\x00\x00\x00\x00\x00\x00\x01\x65"),
    )
    .unwrap();
    publisher.send_frame(&key).await.unwrap();

    // Read the example's event log until the kick after 2 s.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("kicked session"))
    {
        let line = timeout(deadline - tokio::time::Instant::now(), lines.next_line())
            .await
            .expect("the example kicks within its limit")
            .unwrap()
            .expect("example still running");
        seen.push(line);
    }
    assert!(has(&seen, "event prePublish", "/live/nope"), "{seen:?}");
    assert!(
        !has(&seen, "event postPublish", "/live/nope"),
        "a refused publish has no postPublish: {seen:?}"
    );
    assert!(has(&seen, "event postPublish", "/live/ok1"), "{seen:?}");
    // After the kick the session ends and its donePublish follows.
    while !has(&seen, "event donePublish", "/live/ok1") {
        let line = timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(line);
    }
    let _ = child.kill().await;
}
