//! The `fanout` and `ingest` runs: start publishers, ramp viewers, let the GOP backlogs drain
//! (warm-up), measure over a fixed window, and turn the counters into a [`Report`].

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::procstat::{self, Usage};
use crate::publisher::{self, FlvFile, PublisherStats};
use crate::stats::{
    now_us, percentile_sorted, Errors, Histogram, Latencies, Latency, SendLogs, ViewerState,
    ViewerStats,
};
use crate::target::{fill, Target};
use crate::viewer::{self, Protocol, Viewer};

/// Most viewers one fanout may open.
pub const MAX_VIEWERS: usize = 5000;
/// Most publishers (each with its viewer) one ingest may open.
pub const MAX_PUBLISHERS: usize = 1000;
/// Longest measurement window, ramp and warm-up, in seconds.
pub const MAX_DURATION: f64 = 600.0;
pub const MAX_RAMP: f64 = 600.0;
pub const MAX_WARMUP: f64 = 60.0;

/// What every run needs.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// RTMP URL the bench publishes to (`rtmp://127.0.0.1:1935/live/bench`).
    pub url: String,
    pub protocol: Protocol,
    /// Play URL; `{stream}` is replaced by the stream name. Derived from `url` when absent.
    pub play_url: Option<String>,
    /// HTTP port used when deriving HTTP-FLV/WS-FLV/HLS play URLs.
    pub http_port: u16,
    pub ramp_per_sec: f64,
    pub duration: f64,
    pub warmup: f64,
    pub server_pid: Option<u32>,
    pub file: Option<PathBuf>,
    /// A previous `--json` report (e.g. of the floor server) to compare against.
    pub baseline: Option<PathBuf>,
    /// Pause between reads of the bulk viewers, in ms (0: read as data arrives).
    pub read_interval_ms: u64,
    /// Viewers that always read at once and measure latency, when `read_interval_ms` > 0.
    pub precise_viewers: usize,
}

impl RunOpts {
    /// The read pause of viewer `i`: only viewers past the precise ones are paced.
    fn pace(&self, i: usize) -> Option<Duration> {
        (self.read_interval_ms > 0 && i >= self.precise_viewers)
            .then(|| Duration::from_millis(self.read_interval_ms))
    }
}

/// Checks the bounds that keep a run finite and local.
pub fn validate(o: &RunOpts, connections: usize, max: usize) -> Result<(), String> {
    if connections == 0 || connections > max {
        return Err(format!("count must be 1..={max}, not {connections}"));
    }
    if !(o.duration > 0.0 && o.duration <= MAX_DURATION) {
        return Err(format!("--duration must be in (0, {MAX_DURATION}] seconds"));
    }
    if !(o.warmup >= 0.0 && o.warmup <= MAX_WARMUP) {
        return Err(format!("--warmup must be in [0, {MAX_WARMUP}] seconds"));
    }
    if o.read_interval_ms > 1000 {
        return Err("--read-interval-ms must be at most 1000".into());
    }
    if !(o.ramp_per_sec > 0.0 && connections as f64 / o.ramp_per_sec <= MAX_RAMP) {
        return Err(format!(
            "--ramp-per-sec must be > 0 and ramp within {MAX_RAMP} s"
        ));
    }
    Target::parse(&o.url)?;
    Ok(())
}

/// The host part of `authority` (`[::1]:1935` → `[::1]`).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map(|i| &authority[..=i])
            .unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The play URL for stream `name` (no query) published at `publish` (an RTMP URL).
pub fn play_url(o: &RunOpts, publish: &str) -> Result<String, String> {
    let t = Target::parse(publish)?;
    let (app, stream) = t.rtmp_parts()?;
    let name = stream.split('?').next().unwrap_or(&stream);
    if let Some(tpl) = &o.play_url {
        return Ok(fill(tpl, name));
    }
    let host = host_of(&t.authority);
    let port = o.http_port;
    Ok(match o.protocol {
        Protocol::Rtmp => publish.to_owned(),
        Protocol::HttpFlv => format!("http://{host}:{port}/{app}/{name}.flv"),
        Protocol::WsFlv => format!("ws://{host}:{port}/{app}/{name}.flv"),
        Protocol::Hls => format!("http://{host}:{port}/{app}/{name}/index.m3u8"),
    })
}

/// Parses a play URL and checks that its scheme fits the protocol.
fn play_target(o: &RunOpts, url: &str) -> Result<Target, String> {
    let t = Target::parse(url)?;
    if t.scheme != o.protocol.scheme() {
        return Err(format!("{url}: wrong scheme for {:?}", o.protocol));
    }
    Ok(t)
}

/// The publish URL of ingest stream `i`: `{i}` in the URL is replaced, else `-i` is appended to
/// the stream name.
pub fn ingest_url(url: &str, i: usize) -> Result<String, String> {
    if url.contains("{i}") {
        return Ok(url.replace("{i}", &i.to_string()));
    }
    let t = Target::parse(url)?;
    let (app, stream) = t.rtmp_parts()?;
    let (name, query) = match stream.split_once('?') {
        Some((n, q)) => (n, format!("?{q}")),
        None => (stream.as_str(), String::new()),
    };
    Ok(format!("rtmp://{}/{app}/{name}-{i}{query}", t.authority))
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Pcts {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub min: f64,
    pub p50: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewerCounts {
    pub requested: usize,
    pub connected: usize,
    pub failed: usize,
    pub dropped: usize,
    /// Connected viewers that never got a coded video frame (an HLS viewer counts segments).
    pub without_frames: usize,
    /// Fewest video frames any connected viewer received.
    pub min_video_frames: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublisherCounts {
    pub requested: usize,
    pub publishing: usize,
    pub failed: usize,
    pub dropped: usize,
    pub frames_sent: u64,
    /// Worst lateness of a send against the real-time schedule, within the window.
    pub max_late_ms: f64,
}

/// Latency of one media kind: `latency_ms` (video, the historical key) or `audio_latency_ms`.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// Frames measured (arrived within the window, sent after their viewer connected).
    pub samples: u64,
    /// Frames skipped as GOP-cache backlog (sent before their viewer connected).
    pub backlog_frames: u64,
    /// Frames whose timestamp the publisher never sent.
    pub unmatched_frames: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl LatencyReport {
    fn of(l: &Latency) -> LatencyReport {
        let ms = |p: f64| l.hist.percentile(p).unwrap_or(0) as f64 / 1000.0;
        LatencyReport {
            samples: l.hist.count(),
            backlog_frames: l.backlog.load(Relaxed),
            unmatched_frames: l.unmatched.load(Relaxed),
            p50: ms(50.0),
            p95: ms(95.0),
            p99: ms(99.0),
            max: l.hist.max().unwrap_or(0) as f64 / 1000.0,
        }
    }
}

impl Pcts {
    /// Percentiles of a microsecond histogram, in ms; `None` when it is empty.
    fn of_us(h: &Histogram) -> Option<Pcts> {
        let ms = |p: f64| h.percentile(p).map(|us| us as f64 / 1000.0);
        Some(Pcts {
            count: h.count(),
            p50: ms(50.0)?,
            p95: ms(95.0)?,
            p99: ms(99.0)?,
            max: h.max()? as f64 / 1000.0,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub message: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub file: String,
    /// Server CPU per delivered Gbit, this run over the baseline ("x floor").
    pub cpu_per_gbit_x: Option<f64>,
    pub latency_p50_x: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub protocol: Protocol,
    pub publish_url: Option<String>,
    /// The first viewer's play URL.
    pub play_url: String,
    pub file_kbps: Option<f64>,
    pub window_secs: f64,
    /// Pause between reads of the bulk viewers (0: every viewer reads as data arrives).
    pub read_interval_ms: u64,
    /// Viewers whose frames feed the latency figures.
    pub latency_viewers: usize,
    pub viewers: ViewerCounts,
    pub publishers: Option<PublisherCounts>,
    pub aggregate_mbps: f64,
    pub per_viewer_mbps: Option<Spread>,
    pub ttff_ms: Option<Pcts>,
    /// Video frames only: the figure older reports have, kept as it was so they compare.
    pub latency_ms: Option<LatencyReport>,
    /// Audio frames, measured the same way (absent where video latency is).
    pub audio_latency_ms: Option<LatencyReport>,
    /// Audio and video frames together: the figure to hold a server to, since one that delays
    /// audio shows it only here and in `audio_latency_ms`. Absent when no frame was measured.
    pub all_frames_latency_ms: Option<Pcts>,
    pub server: Option<Usage>,
    /// Server CPU seconds per Gbit delivered to viewers in the window: the figure to compare
    /// between servers (and against the floor).
    pub server_cpu_s_per_gbit: Option<f64>,
    pub tool: Option<Usage>,
    pub baseline: Option<Baseline>,
    pub errors: Vec<ErrorCount>,
}

/// State shared by a run's tasks.
struct Shared {
    latency: Arc<Latencies>,
    errors: Arc<Errors>,
}

fn spawn_viewer(
    protocol: Protocol,
    target: Target,
    log: Option<Arc<SendLogs>>,
    pace: Option<Duration>,
    shared: &Shared,
) -> (Arc<ViewerStats>, JoinHandle<()>) {
    let stats = Arc::new(ViewerStats::default());
    let v = Viewer {
        stats: stats.clone(),
        latency: shared.latency.clone(),
        log: log.filter(|_| pace.is_none()),
        errors: shared.errors.clone(),
        pace,
    };
    (stats, tokio::spawn(viewer::run(protocol, target, v)))
}

/// A started publisher.
struct Started {
    log: Arc<SendLogs>,
    stats: Arc<PublisherStats>,
    ready: oneshot::Receiver<Result<(), String>>,
    task: JoinHandle<()>,
}

fn spawn_publisher(target: Target, file: Arc<FlvFile>, shared: &Shared) -> Started {
    let log = Arc::new(SendLogs::default());
    let stats = Arc::new(PublisherStats::default());
    let (tx, ready) = oneshot::channel();
    let task = tokio::spawn(publisher::run(
        target,
        file,
        log.clone(),
        stats.clone(),
        shared.errors.clone(),
        tx,
    ));
    Started {
        log,
        stats,
        ready,
        task,
    }
}

fn load(o: &RunOpts) -> Result<Arc<FlvFile>, String> {
    let path = o
        .file
        .as_ref()
        .ok_or("--file is required to publish (make one with `rill-bench make-flv`)")?;
    Ok(Arc::new(FlvFile::load(path)?))
}

/// `fanout`: one publisher (unless `publish` is false), `n` viewers of its stream.
pub async fn fanout(o: &RunOpts, n: usize, publish: bool) -> Result<Report, String> {
    validate(o, n, MAX_VIEWERS)?;
    let play = play_url(o, &o.url)?;
    let play_target = play_target(o, &play)?;
    check_fd_limit(n + 16);
    let shared = Shared {
        latency: Arc::new(Latencies::new()),
        errors: Arc::new(Errors::default()),
    };
    let mut tasks = Vec::with_capacity(n + 1);
    let mut pubs = Vec::new();
    let mut log = None;
    let mut file_kbps = None;
    if publish {
        let file = load(o)?;
        file_kbps = Some(file.kbps());
        let p = spawn_publisher(Target::parse(&o.url)?, file, &shared);
        tasks.push(p.task);
        pubs.push(p.stats);
        match tokio::time::timeout(Duration::from_secs(15), p.ready).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(format!("publishing to {} failed: {e}", o.url)),
            _ => return Err(format!("publishing to {} did not start", o.url)),
        }
        log = Some(p.log);
    }
    let ramp_start = Instant::now();
    let mut viewers = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(ramp_start + Duration::from_secs_f64(i as f64 / o.ramp_per_sec))
            .await;
        let (s, h) = spawn_viewer(
            o.protocol,
            play_target.clone(),
            log.clone(),
            o.pace(i),
            &shared,
        );
        viewers.push(s);
        tasks.push(h);
    }
    let report = measure(o, "fanout", &shared, &viewers, &pubs, play, file_kbps).await;
    for t in &tasks {
        t.abort();
    }
    report
}

/// `ingest`: `n` publishers, each on its own stream with one viewer.
pub async fn ingest(o: &RunOpts, n: usize) -> Result<Report, String> {
    validate(o, n, MAX_PUBLISHERS)?;
    let file = load(o)?;
    let file_kbps = Some(file.kbps());
    // Check every URL before opening anything.
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let p = ingest_url(&o.url, i)?;
        let v = play_target(o, &play_url(o, &p)?)?;
        pairs.push((Target::parse(&p)?, v));
    }
    let first_play = play_url(o, &ingest_url(&o.url, 0)?)?;
    check_fd_limit(2 * n + 16);
    let shared = Shared {
        latency: Arc::new(Latencies::new()),
        errors: Arc::new(Errors::default()),
    };
    let mut tasks = Vec::with_capacity(2 * n);
    let mut pubs = Vec::with_capacity(n);
    let mut viewers = Vec::with_capacity(n);
    let ramp_start = Instant::now();
    for (i, (pt, vt)) in pairs.into_iter().enumerate() {
        tokio::time::sleep_until(ramp_start + Duration::from_secs_f64(i as f64 / o.ramp_per_sec))
            .await;
        let Started {
            log,
            stats: pstats,
            ready,
            task,
        } = spawn_publisher(pt, file.clone(), &shared);
        tasks.push(task);
        pubs.push(pstats);
        let vstats = Arc::new(ViewerStats::default());
        viewers.push(vstats.clone());
        let pace = o.pace(i);
        let v = Viewer {
            stats: vstats,
            latency: shared.latency.clone(),
            log: Some(log).filter(|_| pace.is_none()),
            errors: shared.errors.clone(),
            pace,
        };
        let protocol = o.protocol;
        // The viewer starts once its stream is live, as a real audience would find it.
        tasks.push(tokio::spawn(async move {
            match ready.await {
                Ok(Ok(())) => viewer::run(protocol, vt, v).await,
                _ => v.stats.set_state(ViewerState::Failed),
            }
        }));
    }
    let report = measure(o, "ingest", &shared, &viewers, &pubs, first_play, file_kbps).await;
    for t in &tasks {
        t.abort();
    }
    report
}

fn check_fd_limit(need: usize) {
    if let Some(limit) = procstat::open_files_limit() {
        if (limit as usize) < need {
            eprintln!(
                "warning: open files limit {limit} < {need} needed; raise it (ulimit -n) or connections will fail"
            );
        }
    }
}

/// Warm-up, then the measurement window, then the report.
async fn measure(
    o: &RunOpts,
    command: &'static str,
    shared: &Shared,
    viewers: &[Arc<ViewerStats>],
    pubs: &[Arc<PublisherStats>],
    play_url: String,
    file_kbps: Option<f64>,
) -> Result<Report, String> {
    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    let server = match o.server_pid {
        Some(pid) => Some(
            procstat::Watch::start(&pid.to_string())
                .map_err(|e| format!("cannot read /proc/{pid}: {e}"))?,
        ),
        None => None,
    };
    let tool = procstat::Watch::start("self").ok();
    let open_bytes: Vec<u64> = viewers.iter().map(|v| v.bytes.load(Relaxed)).collect();
    let opened = Instant::now();
    shared.latency.open_window(now_us());
    // Lateness during the ramp says little (connection set-up shares the thread); in the window
    // it says whether the tool kept pace.
    for p in pubs {
        p.max_late_us.store(0, Relaxed);
    }
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    let window = opened.elapsed().as_secs_f64();
    let deltas: Vec<u64> = viewers
        .iter()
        .zip(&open_bytes)
        .map(|(v, &b)| v.bytes.load(Relaxed).saturating_sub(b))
        .collect();
    let server = server.and_then(|w| w.finish());
    let tool = tool.and_then(|w| w.finish());

    let states: Vec<ViewerState> = viewers.iter().map(|v| v.state()).collect();
    let reached = |s: &ViewerState| matches!(s, ViewerState::Connected | ViewerState::Dropped);
    let connected: Vec<&Arc<ViewerStats>> = viewers
        .iter()
        .zip(&states)
        .filter(|(_, s)| reached(s))
        .map(|(v, _)| v)
        .collect();
    let counts = ViewerCounts {
        requested: viewers.len(),
        connected: connected.len(),
        failed: states.iter().filter(|s| !reached(s)).count(),
        dropped: states
            .iter()
            .filter(|s| **s == ViewerState::Dropped)
            .count(),
        without_frames: connected
            .iter()
            .filter(|v| v.video_frames.load(Relaxed) == 0)
            .count(),
        min_video_frames: connected
            .iter()
            .map(|v| v.video_frames.load(Relaxed))
            .min()
            .unwrap_or(0),
    };
    let total_bytes: u64 = deltas.iter().sum();
    let aggregate_mbps = total_bytes as f64 * 8.0 / window / 1e6;
    let mut per: Vec<f64> = deltas
        .iter()
        .zip(&states)
        .filter(|(_, s)| **s == ViewerState::Connected)
        .map(|(&b, _)| b as f64 * 8.0 / window / 1e6)
        .collect();
    per.sort_by(f64::total_cmp);
    let per_viewer_mbps = match (per.first(), per.last()) {
        (Some(&min), Some(&max)) => Some(Spread {
            min,
            p50: percentile_sorted(&per, 50.0).unwrap_or(min),
            max,
        }),
        _ => None,
    };
    let mut ttff: Vec<f64> = viewers
        .iter()
        .filter_map(|v| v.ttff())
        .map(|us| us as f64 / 1000.0)
        .collect();
    ttff.sort_by(f64::total_cmp);
    let ttff_ms = exact_pcts(&ttff);
    let lat = &shared.latency;
    let measured = !pubs.is_empty() && o.protocol != Protocol::Hls;
    let latency_ms = measured.then(|| LatencyReport::of(&lat.video));
    let audio_latency_ms = measured.then(|| LatencyReport::of(&lat.audio));
    let all_frames_latency_ms = measured.then(|| Pcts::of_us(&lat.combined())).flatten();
    let publishers = (!pubs.is_empty()).then(|| {
        let st = |v: u8| pubs.iter().filter(|p| p.state.load(Relaxed) == v).count();
        PublisherCounts {
            requested: pubs.len(),
            publishing: st(publisher::PUB_PUBLISHING),
            failed: st(publisher::PUB_FAILED) + st(publisher::PUB_CONNECTING),
            dropped: st(publisher::PUB_DROPPED),
            frames_sent: pubs.iter().map(|p| p.frames.load(Relaxed)).sum(),
            max_late_ms: pubs
                .iter()
                .map(|p| p.max_late_us.load(Relaxed))
                .max()
                .unwrap_or(0) as f64
                / 1000.0,
        }
    });
    let gbit = total_bytes as f64 * 8.0 / 1e9;
    let server_cpu_s_per_gbit = server.filter(|_| gbit > 0.0).map(|s| s.cpu_seconds / gbit);
    let mut report = Report {
        command,
        protocol: o.protocol,
        publish_url: (!pubs.is_empty()).then(|| o.url.clone()),
        play_url,
        file_kbps,
        window_secs: window,
        read_interval_ms: o.read_interval_ms,
        latency_viewers: if o.read_interval_ms > 0 {
            viewers.len().min(o.precise_viewers)
        } else {
            viewers.len()
        },
        viewers: counts,
        publishers,
        aggregate_mbps,
        per_viewer_mbps,
        ttff_ms,
        latency_ms,
        audio_latency_ms,
        all_frames_latency_ms,
        server,
        server_cpu_s_per_gbit,
        tool,
        baseline: None,
        errors: shared
            .errors
            .snapshot()
            .into_iter()
            .map(|(message, count)| ErrorCount { message, count })
            .collect(),
    };
    let pending = states
        .iter()
        .filter(|s| **s == ViewerState::Connecting)
        .count();
    if pending > 0 {
        report.errors.push(ErrorCount {
            message: "viewer still connecting when the window closed (no Play.Start, HTTP 404 \
                      retried, or no response)"
                .into(),
            count: pending as u64,
        });
    }
    if let Some(path) = &o.baseline {
        report.baseline = Some(compare(&report, path)?);
    }
    Ok(report)
}

fn exact_pcts(sorted: &[f64]) -> Option<Pcts> {
    Some(Pcts {
        count: sorted.len() as u64,
        p50: percentile_sorted(sorted, 50.0)?,
        p95: percentile_sorted(sorted, 95.0)?,
        p99: percentile_sorted(sorted, 99.0)?,
        max: *sorted.last()?,
    })
}

/// Ratios of this run to an earlier `--json` report.
fn compare(r: &Report, path: &PathBuf) -> Result<Baseline, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    Ok(Baseline {
        file: path.display().to_string(),
        cpu_per_gbit_x: ratio(
            r.server_cpu_s_per_gbit,
            base["server_cpu_s_per_gbit"].as_f64(),
        ),
        latency_p50_x: ratio(
            r.latency_ms.as_ref().map(|l| l.p50),
            base["latency_ms"]["p50"].as_f64(),
        ),
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The human summary.
pub fn summary(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let proto = serde_json::to_value(r.protocol)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "rill-bench {}: {} {} viewer(s) of {}, window {:.1} s{}",
        r.command,
        r.viewers.requested,
        proto,
        r.play_url,
        r.window_secs,
        r.file_kbps
            .map(|k| format!(", file {k:.0} kbit/s"))
            .unwrap_or_default()
    );
    let v = &r.viewers;
    let _ = writeln!(
        s,
        "  viewers     connected {}  failed {}  dropped {}  without frames {}  (min {} video frames)",
        v.connected, v.failed, v.dropped, v.without_frames, v.min_video_frames
    );
    if let Some(p) = &r.publishers {
        let _ = writeln!(
            s,
            "  publishers  publishing {}/{}  failed {}  dropped {}  frames sent {}  max lateness in window {:.1} ms",
            p.publishing, p.requested, p.failed, p.dropped, p.frames_sent, p.max_late_ms
        );
    }
    let _ = write!(s, "  throughput  aggregate {:.1} Mbit/s", r.aggregate_mbps);
    if let Some(p) = &r.per_viewer_mbps {
        let _ = write!(
            s,
            "   per viewer min {:.2} / p50 {:.2} / max {:.2} Mbit/s",
            p.min, p.p50, p.max
        );
    }
    s.push('\n');
    match &r.ttff_ms {
        Some(t) => {
            let _ = writeln!(
                s,
                "  first frame p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms  ({} viewers)",
                t.p50, t.p95, t.max, t.count
            );
        }
        None => s.push_str("  first frame none\n"),
    }
    for (label, l) in [
        ("latency     video", &r.latency_ms),
        ("            audio", &r.audio_latency_ms),
    ] {
        if let Some(l) = l {
            let _ = writeln!(
                s,
                "  {label} p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} frames of {} viewers; {} backlog, {} unmatched skipped)",
                l.p50, l.p95, l.p99, l.max, l.samples, r.latency_viewers, l.backlog_frames, l.unmatched_frames
            );
        }
    }
    if let Some(a) = &r.all_frames_latency_ms {
        let _ = writeln!(
            s,
            "              all frames p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} audio + video frames)",
            a.p50, a.p95, a.p99, a.max, a.count
        );
    }
    if let Some(u) = &r.server {
        let _ = write!(
            s,
            "  server      {:.2} CPU-s ({:.1}% of a core)  peak RSS {:.1} MiB (VmHWM {:.1} MiB)",
            u.cpu_seconds,
            u.cpu_percent,
            mib(u.peak_rss_kib),
            mib(u.vm_hwm_kib)
        );
        if let Some(c) = r.server_cpu_s_per_gbit {
            let _ = write!(s, "  {c:.3} CPU-s per Gbit delivered");
        }
        s.push('\n');
    }
    if let Some(u) = &r.tool {
        let _ = writeln!(
            s,
            "  tool        {:.2} CPU-s ({:.1}% of a core)  peak RSS {:.1} MiB",
            u.cpu_seconds,
            u.cpu_percent,
            mib(u.peak_rss_kib)
        );
    }
    if let Some(b) = &r.baseline {
        let f = |x: Option<f64>| {
            x.map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "n/a".into())
        };
        let _ = writeln!(
            s,
            "  vs {}: CPU per Gbit {}  latency p50 {}",
            b.file,
            f(b.cpu_per_gbit_x),
            f(b.latency_p50_x)
        );
    }
    for e in &r.errors {
        let _ = writeln!(s, "  error       {} x{}", e.message, e.count);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(protocol: Protocol) -> RunOpts {
        RunOpts {
            url: "rtmp://127.0.0.1:1935/live/bench?k=v".into(),
            protocol,
            play_url: None,
            http_port: 8000,
            ramp_per_sec: 100.0,
            duration: 10.0,
            warmup: 2.0,
            server_pid: None,
            file: None,
            baseline: None,
            read_interval_ms: 0,
            precise_viewers: 100,
        }
    }

    #[test]
    fn derives_play_urls() {
        let u = "rtmp://127.0.0.1:1935/live/bench?k=v";
        assert_eq!(play_url(&opts(Protocol::Rtmp), u).unwrap(), u);
        assert_eq!(
            play_url(&opts(Protocol::HttpFlv), u).unwrap(),
            "http://127.0.0.1:8000/live/bench.flv"
        );
        assert_eq!(
            play_url(&opts(Protocol::WsFlv), "rtmp://[::1]/live/x").unwrap(),
            "ws://[::1]:8000/live/x.flv"
        );
        assert_eq!(
            play_url(&opts(Protocol::Hls), "rtmp://localhost:19350/a/s").unwrap(),
            "http://localhost:8000/a/s/index.m3u8"
        );
        let mut o = opts(Protocol::HttpFlv);
        o.play_url = Some("http://127.0.0.1:9/x/{stream}.flv".into());
        assert_eq!(play_url(&o, u).unwrap(), "http://127.0.0.1:9/x/bench.flv");
    }

    #[test]
    fn play_scheme_must_fit() {
        let mut o = opts(Protocol::WsFlv);
        assert!(play_target(&o, "ws://127.0.0.1/live/x.flv").is_ok());
        assert!(play_target(&o, "http://127.0.0.1/live/x.flv").is_err());
        o.protocol = Protocol::Hls;
        assert!(play_target(&o, "http://127.0.0.1/live/x/index.m3u8").is_ok());
    }

    #[test]
    fn ingest_urls() {
        assert_eq!(
            ingest_url("rtmp://127.0.0.1/live/b?k=1", 3).unwrap(),
            "rtmp://127.0.0.1/live/b-3?k=1"
        );
        assert_eq!(
            ingest_url("rtmp://127.0.0.1/live/cam{i}", 7).unwrap(),
            "rtmp://127.0.0.1/live/cam7"
        );
        assert!(ingest_url("rtmp://10.0.0.1/live/b", 0).is_err());
    }

    #[test]
    fn bounds() {
        let o = opts(Protocol::Rtmp);
        assert!(validate(&o, 100, MAX_VIEWERS).is_ok());
        assert!(validate(&o, 0, MAX_VIEWERS).is_err());
        assert!(validate(&o, MAX_VIEWERS + 1, MAX_VIEWERS).is_err());
        let mut long = o.clone();
        long.duration = 601.0;
        assert!(validate(&long, 1, MAX_VIEWERS).is_err());
        let mut slow = o.clone();
        slow.ramp_per_sec = 1.0;
        assert!(validate(&slow, 601, MAX_VIEWERS).is_err());
        slow.ramp_per_sec = 0.0;
        assert!(validate(&slow, 1, MAX_VIEWERS).is_err());
        let mut remote = o.clone();
        remote.url = "rtmp://192.168.0.10/live/x".into();
        assert!(validate(&remote, 1, MAX_VIEWERS).is_err());
        let mut nan = o.clone();
        nan.warmup = f64::NAN;
        assert!(validate(&nan, 1, MAX_VIEWERS).is_err());
        let mut lazy = o;
        lazy.read_interval_ms = 1001;
        assert!(validate(&lazy, 1, MAX_VIEWERS).is_err());
    }

    #[test]
    fn only_bulk_viewers_are_paced() {
        let mut o = opts(Protocol::Rtmp);
        assert_eq!(o.pace(500), None);
        o.read_interval_ms = 50;
        o.precise_viewers = 10;
        assert_eq!(o.pace(9), None);
        assert_eq!(o.pace(10), Some(Duration::from_millis(50)));
    }

    fn report_with(lat: &Latencies) -> Report {
        Report {
            command: "fanout",
            protocol: Protocol::Rtmp,
            publish_url: Some("rtmp://127.0.0.1/live/b".into()),
            play_url: "rtmp://127.0.0.1/live/b".into(),
            file_kbps: Some(2500.0),
            window_secs: 8.0,
            read_interval_ms: 0,
            latency_viewers: 2,
            viewers: ViewerCounts {
                requested: 2,
                connected: 2,
                failed: 0,
                dropped: 0,
                without_frames: 0,
                min_video_frames: 240,
            },
            publishers: None,
            aggregate_mbps: 5.0,
            per_viewer_mbps: None,
            ttff_ms: None,
            latency_ms: Some(LatencyReport::of(&lat.video)),
            audio_latency_ms: Some(LatencyReport::of(&lat.audio)),
            all_frames_latency_ms: Pcts::of_us(&lat.combined()),
            server: None,
            server_cpu_s_per_gbit: None,
            tool: None,
            baseline: None,
            errors: Vec::new(),
        }
    }

    #[test]
    fn reports_audio_and_all_frames_next_to_video() {
        let lat = Latencies::new();
        lat.open_window(0);
        let logs = SendLogs::default();
        for i in 0..100u32 {
            logs.video.push(i * 33, u64::from(i) * 33_000);
            logs.audio.push(i * 21, u64::from(i) * 21_000);
        }
        for i in 0..100u32 {
            // Video arrives 1 ms after sending; audio waits 20 ms (held for the next picture).
            lat.video
                .frame(&logs.video, i * 33, u64::from(i) * 33_000 + 1_000, 0);
            lat.audio
                .frame(&logs.audio, i * 21, u64::from(i) * 21_000 + 20_000, 0);
        }
        lat.audio.frame(&logs.audio, 5, 1, 0); // no such audio timestamp
        let r = report_with(&lat);
        let v = r.latency_ms.as_ref().unwrap();
        let a = r.audio_latency_ms.as_ref().unwrap();
        let all = r.all_frames_latency_ms.as_ref().unwrap();
        assert_eq!((v.samples, a.samples, all.count), (100, 100, 200));
        assert_eq!(a.unmatched_frames, 1);
        assert!((v.p99 - 1.0).abs() < 0.02, "{}", v.p99);
        assert!((a.p99 - 20.0).abs() < 0.4, "{}", a.p99);
        // Half the frames are audio: the combined p99 is audio's, the combined p50 still video's.
        assert!((all.p99 - 20.0).abs() < 0.4, "{}", all.p99);
        assert!((all.p50 - 1.0).abs() < 0.02, "{}", all.p50);
        assert_eq!(all.max, 20.0);

        // The video keys are those of older reports; the new figures sit beside them.
        let j = serde_json::to_value(&r).unwrap();
        let keys: Vec<&str> = j["latency_ms"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "samples",
            "backlog_frames",
            "unmatched_frames",
            "p50",
            "p95",
            "p99",
            "max",
        ] {
            assert!(keys.contains(&k), "{k}");
        }
        assert_eq!(keys.len(), 7);
        assert_eq!(j["audio_latency_ms"]["unmatched_frames"], 1);
        assert_eq!(j["all_frames_latency_ms"]["count"], 200);

        let text = summary(&r);
        assert!(text.contains("latency     video p50 1.0"), "{text}");
        assert!(text.contains("audio p50 20."), "{text}");
        assert!(text.contains("1 unmatched skipped"), "{text}");
        assert!(text.contains("all frames p50 1.0"), "{text}");
        assert!(text.contains("(200 audio + video frames)"), "{text}");
    }

    #[test]
    fn no_samples_no_combined_figure() {
        let lat = Latencies::new();
        assert!(Pcts::of_us(&lat.combined()).is_none());
        let r = report_with(&lat);
        assert_eq!(r.audio_latency_ms.as_ref().map(|a| a.samples), Some(0));
        let j = serde_json::to_value(&r).unwrap();
        assert!(j["all_frames_latency_ms"].is_null());
        assert!(!summary(&r).contains("all frames"));
    }
}
