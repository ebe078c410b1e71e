//! Origin and edge as two `rill` processes on loopback: the edge pulls on play from the origin,
//! its viewers share one upstream play, survive a `kill -9` of the origin (the edge reconnects
//! with backoff when it comes back) with timestamps that never go back, and the pull ends once
//! nobody watches.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::relay_peers::{free_port, http_request, wait_accepting, Body};
use common::*;
use tokio::process::{Child, Command};

/// A `rill` process with `config`, once its RTMP port accepts.
async fn rill(dir: &Path, name: &str, config: &str, rtmp: u16) -> Child {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("--config")
        .arg(&path)
        .args(["--log-level", "info"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start rill");
    let addr = format!("127.0.0.1:{rtmp}").parse().unwrap();
    assert!(
        wait_accepting(addr, Duration::from_secs(15)).await,
        "{name} never listened on {addr}"
    );
    child
}

fn ports(rtmp: u16, http: u16) -> String {
    format!(
        "[rtmp]\nhost = \"127.0.0.1\"\nport = {rtmp}\n[http]\nhost = \"127.0.0.1\"\nport = {http}\nmediaroot = \"media\"\n"
    )
}

/// The subscribers of `app/stream` in a server's `/api/streams`.
async fn subscribers(http: u16, app: &str, stream: &str) -> Vec<serde_json::Value> {
    let addr = format!("127.0.0.1:{http}").parse().unwrap();
    let r = http_request(addr, "GET", "/api/streams", None, Body::None).await;
    if r.status != 200 {
        return Vec::new();
    }
    r.json()[app][stream]["subscribers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_process_pulls_from_an_origin_process_that_is_killed_and_restarted() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (origin_rtmp, origin_http) = (free_port(), free_port());
        let (edge_rtmp, edge_http) = (free_port(), free_port());
        let origin_config = ports(origin_rtmp, origin_http);
        let mut origin = rill(dir.path(), "origin", &origin_config, origin_rtmp).await;
        let edge_config = format!(
            "{}[relay]\nidle_timeout = 2\n[[relay.tasks]]\napp = \"live\"\nmode = \"pull\"\nedge = \"rtmp://127.0.0.1:{origin_rtmp}\"\n",
            ports(edge_rtmp, edge_http)
        );
        let _edge = rill(dir.path(), "edge", &edge_config, edge_rtmp).await;
        let origin_url = format!("rtmp://127.0.0.1:{origin_rtmp}/live/cam");
        let _publisher = spawn_ffmpeg_publisher(&origin_url, 60);
        tokio::time::sleep(Duration::from_secs(2)).await;

        // Two viewers on the edge, one upstream play on the origin.
        let edge_url = format!("rtmp://127.0.0.1:{edge_rtmp}/live/cam");
        let a = BackgroundViewer::start(&edge_url).await;
        let b = BackgroundViewer::start(&edge_url).await;
        a.assert_flowing(30, Duration::from_secs(10), "first edge viewer").await;
        b.assert_flowing(30, Duration::from_secs(10), "second edge viewer").await;
        let subs = subscribers(origin_http, "live", "cam").await;
        assert_eq!(subs.len(), 1, "the origin must see one upstream play: {subs:#?}");
        let probe = ffprobe_frames(&format!("http://127.0.0.1:{edge_http}/live/cam.flv"), 3).await;
        check_test_stream(&probe, 45, "HTTP-FLV from the edge process");

        // kill -9 the origin; bring it back on the same port with the publisher.
        origin.start_kill().unwrap();
        let _ = origin.wait().await;
        drop(_publisher);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _origin = rill(dir.path(), "origin2", &origin_config, origin_rtmp).await;
        let _publisher = spawn_ffmpeg_publisher(&origin_url, 60);
        a.assert_flowing(
            30,
            Duration::from_secs(30),
            "edge viewer after the origin was killed and restarted",
        )
        .await;
        b.assert_flowing(30, Duration::from_secs(5), "second viewer after the restart")
            .await;
        let edge_log = std::fs::read_to_string(dir.path().join("edge.log")).unwrap();
        assert!(
            edge_log.contains("relay backing_off") && edge_log.matches("relay live").count() >= 2,
            "the edge's log shows no reconnect:\n{edge_log}"
        );

        // Nobody watches: the pull ends after idle_timeout, and the origin sees no subscriber.
        drop((a, b));
        let gone = eventually(Duration::from_secs(10), || async {
            subscribers(origin_http, "live", "cam").await.is_empty()
        })
        .await;
        assert!(gone, "the edge still pulls with nobody watching");
    })
    .await;
}
