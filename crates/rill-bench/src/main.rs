//! `rill-bench`: a load generator for Rill and any other live server on this machine.
//!
//! - `fanout`: one publisher (an FLV file looped in real time over RTMP) and N viewers over RTMP,
//!   HTTP-FLV, WS-FLV or HLS, ramped;
//! - `ingest`: N publishers, each on its own stream with one viewer;
//! - `floor`: the minimal HTTP-FLV fan-out server that gives the "x floor" reference;
//! - `make-flv`: a test FLV from ffmpeg's synthetic sources.
//!
//! Targets must be loopback; counts and durations are bounded (see `run`). One tokio runtime,
//! single-threaded by default so the tool's cost is one core at most and easy to read.

mod floor;
mod http;
mod procstat;
mod publisher;
mod run;
mod rxstamp;
mod stats;
mod target;
mod viewer;
mod wsread;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::run::RunOpts;
use crate::viewer::Protocol;

#[derive(Parser)]
#[command(
    name = "rill-bench",
    version,
    about = "Load generator for live media servers on loopback"
)]
struct Cli {
    /// Runtime worker threads (1 = a current-thread runtime).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One publisher, N viewers of its stream.
    Fanout(FanoutArgs),
    /// N publishers, each on its own stream with one viewer.
    Ingest(IngestArgs),
    /// The floor: a minimal HTTP-FLV fan-out server (runs until killed).
    Floor(FloorCli),
    /// Make a test FLV with ffmpeg (testsrc2 + sine, H.264 + AAC).
    MakeFlv(MakeFlv),
}

#[derive(Args)]
struct Common {
    /// RTMP URL to publish to (loopback only).
    #[arg(long, default_value = "rtmp://127.0.0.1:1935/live/bench")]
    url: String,
    /// How viewers play.
    #[arg(long, value_enum, default_value_t = Protocol::Rtmp)]
    protocol: Protocol,
    /// Play URL (`{stream}` is replaced by the stream name); derived from --url and --http-port
    /// when absent.
    #[arg(long)]
    play_url: Option<String>,
    /// HTTP port for derived HTTP-FLV/WS-FLV/HLS URLs.
    #[arg(long, default_value_t = 8000)]
    http_port: u16,
    /// Connections opened per second.
    #[arg(long, default_value_t = 200.0)]
    ramp_per_sec: f64,
    /// Measurement window in seconds (after the ramp and the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds between the end of the ramp and the window, for GOP backlogs to drain.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Server process to measure (CPU seconds, RSS) from /proc/PID.
    #[arg(long)]
    server_pid: Option<u32>,
    /// FLV file to publish (looped).
    #[arg(long)]
    file: Option<PathBuf>,
    /// An earlier --json report (e.g. against the floor) to compare with.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Pause between reads of bulk viewers, in ms: makes thousands of viewers cheap for the tool;
    /// those viewers report no latency (0: every viewer reads as data arrives).
    #[arg(long, default_value_t = 0)]
    read_interval_ms: u64,
    /// With --read-interval-ms, the first N viewers still read at once and measure latency.
    #[arg(long, default_value_t = 100)]
    precise_viewers: usize,
}

impl Common {
    fn opts(&self) -> RunOpts {
        RunOpts {
            url: self.url.clone(),
            protocol: self.protocol,
            play_url: self.play_url.clone(),
            http_port: self.http_port,
            ramp_per_sec: self.ramp_per_sec,
            duration: self.duration,
            warmup: self.warmup,
            server_pid: self.server_pid,
            file: self.file.clone(),
            baseline: self.baseline.clone(),
            read_interval_ms: self.read_interval_ms,
            precise_viewers: self.precise_viewers,
        }
    }
}

#[derive(Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Viewers to open (at most 5000).
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Do not publish: play a stream someone else publishes (no latency figures).
    #[arg(long)]
    no_publish: bool,
}

#[derive(Args)]
struct IngestArgs {
    #[command(flatten)]
    common: Common,
    /// Publishers to open (at most 1000), each with one viewer.
    #[arg(long, default_value_t = 10)]
    publishers: usize,
}

#[derive(Args)]
struct FloorCli {
    /// HTTP-FLV port on 127.0.0.1.
    #[arg(long, default_value_t = 18000)]
    port: u16,
    /// Accept RTMP publishers on this port (127.0.0.1); every stream name is its own channel.
    #[arg(long)]
    rtmp_port: Option<u16>,
    /// Play this FLV in real time instead (every stream name gets it).
    #[arg(long)]
    file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = floor::Mode::Frame)]
    mode: floor::Mode,
}

#[derive(Args)]
struct MakeFlv {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 2500)]
    kbps: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::MakeFlv(m) = &cli.cmd {
        return report_err(make_flv(m));
    }
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads.min(64))
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => return report_err(Err(format!("runtime: {e}"))),
    };
    report_err(rt.block_on(async_main(cli.cmd)))
}

fn report_err(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rill-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn async_main(cmd: Cmd) -> Result<(), String> {
    let (report, json) = match cmd {
        Cmd::Fanout(a) => (
            run::fanout(&a.common.opts(), a.viewers, !a.no_publish).await?,
            a.common.json,
        ),
        Cmd::Ingest(a) => (
            run::ingest(&a.common.opts(), a.publishers).await?,
            a.common.json,
        ),
        Cmd::Floor(f) => {
            return floor::run(floor::FloorArgs {
                port: f.port,
                rtmp_port: f.rtmp_port,
                file: f.file,
                mode: f.mode,
            })
            .await
        }
        Cmd::MakeFlv(_) => return Ok(()),
    };
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", run::summary(&report));
    }
    Ok(())
}

/// Parses `WIDTHxHEIGHT` (even sizes, as yuv420p needs, within 16..=7680).
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--size {s:?}: want WIDTHxHEIGHT with even sizes in 16..=7680");
    let (w, h) = s.split_once('x').ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    let ok = |v: u32| (16..=7680).contains(&v) && v & 1 == 0;
    if ok(w) && ok(h) {
        Ok((w, h))
    } else {
        Err(bad())
    }
}

fn make_flv(m: &MakeFlv) -> Result<(), String> {
    let (w, h) = parse_size(&m.size)?;
    if m.seconds == 0
        || m.seconds > 3600
        || m.kbps == 0
        || m.kbps > 200_000
        || !(1..=120).contains(&m.fps)
    {
        return Err("--seconds 1..=3600, --kbps 1..=200000, --fps 1..=120".into());
    }
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={w}x{h}:rate={}", m.fps))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &m.seconds.to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .arg("-b:v")
        .arg(format!("{}k", m.kbps))
        .arg("-maxrate")
        .arg(format!("{}k", m.kbps))
        .arg("-bufsize")
        .arg(format!("{}k", m.kbps * 2))
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(&m.out)
        .status()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !status.success() {
        return Err(format!("ffmpeg failed: {status}"));
    }
    eprintln!("wrote {}", m.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        for bad in ["1280", "x720", "1281x720", "0x0", "99999x2", "axb"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_parses() {
        let c = Cli::try_parse_from([
            "rill-bench",
            "fanout",
            "--viewers",
            "10",
            "--protocol",
            "http-flv",
            "--json",
        ])
        .unwrap();
        let Cmd::Fanout(f) = c.cmd else {
            panic!("not fanout")
        };
        assert_eq!(f.viewers, 10);
        assert_eq!(f.common.protocol, Protocol::HttpFlv);
        assert!(f.common.json);
        assert!(Cli::try_parse_from(["rill-bench", "floor", "--mode", "batch100"]).is_ok());
        assert!(Cli::try_parse_from(["rill-bench", "fanout", "--protocol", "srt"]).is_err());
    }
}
