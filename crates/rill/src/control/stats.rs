//! Numbers about the running server, computed in one place for both the REST API (`/api/*`, in
//! Node-Media-Server 2.x shapes) and the Prometheus metrics, so that the two never disagree.
//!
//! Sources: the session registry (connections, per-session bytes), the hub (streams, viewers,
//! codec facts, drop counters) and, for `/api/server`, the operating system through `sysinfo`.
//!
//! Live bitrates are measured, not estimated from metadata: at every request the byte counters of
//! the sessions that make up a stream (its publisher's `bytes_in` for the way in, each subscriber's
//! `bytes_out` for the way out) are compared with the counters stored by an earlier request. A
//! sample is stored at most once a second and samples older than [`BITRATE_WINDOW`] are dropped
//! (keeping the newest one that is at least that old), so the rate covers roughly the last five
//! seconds when the API is polled, and the time since the previous poll when it is polled rarely.
//! A session the stored sample does not know (it joined since, or nothing was stored yet) counts
//! with its average since it connected. Each session is compared with itself only, so a viewer that
//! leaves never makes a rate negative.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rill_media::{AudioCodec, AudioParams, VideoCodec, VideoParams};
use serde::Serialize;
use sysinfo::{CpuRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::control::sessions::{Protocol, Role, SessionInfo};
use crate::hub::Stream;
use crate::server::Context;

/// How far back a live bitrate looks when the API is polled at least that often.
pub const BITRATE_WINDOW: Duration = Duration::from_secs(5);
/// Least time between two stored byte samples of a stream (bounds the samples kept per stream).
const SAMPLE_SPACING: Duration = Duration::from_secs(1);
/// A stored sample younger than this is too close to "now" to divide by.
const MIN_BASELINE_AGE: Duration = Duration::from_secs(1);
/// Samples of a stream nobody asked about for this long are forgotten.
const SAMPLES_STALE: Duration = Duration::from_secs(60);
/// Least time between two reads of the operating system's counters. `sysinfo` needs two CPU reads
/// at least `MINIMUM_CPU_UPDATE_INTERVAL` apart to compute a usage; a second is well above that.
const SYSTEM_REFRESH: Duration = Duration::from_secs(1);

/// Unix time in milliseconds.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats Unix milliseconds as ISO 8601 UTC (`2024-05-06T07:08:09.010Z`), as JavaScript's
/// `Date.toISOString()` does for Node-Media-Server's `connectCreated`.
pub fn iso8601(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras of 146097 days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Video codec names as Node-Media-Server prints them.
pub fn video_codec_name(codec: VideoCodec) -> String {
    let name = match codec {
        VideoCodec::SorensonH263 => "Sorenson-H263",
        VideoCodec::ScreenVideo => "ScreenVideo",
        VideoCodec::Vp6 => "On2-VP6",
        VideoCodec::Vp6Alpha => "On2-VP6-Alpha",
        VideoCodec::ScreenVideo2 => "ScreenVideo2",
        VideoCodec::Avc => "H264",
        VideoCodec::Hevc => "HEVC",
        VideoCodec::Av1 => "AV1",
        VideoCodec::Vp9 => "VP9",
        VideoCodec::Vp8 => "VP8",
        VideoCodec::FourCc(fourcc) => return fourcc_name(fourcc),
        VideoCodec::Legacy(_) => "Unknown",
    };
    name.to_owned()
}

/// Audio codec names as Node-Media-Server prints them.
pub fn audio_codec_name(codec: AudioCodec) -> String {
    let name = match codec {
        AudioCodec::LinearPcmPlatform => "LinearPCM",
        AudioCodec::Adpcm => "ADPCM",
        AudioCodec::Mp3 => "MP3",
        AudioCodec::LinearPcmLe => "LinearLE",
        AudioCodec::Nellymoser => "Nellymoser",
        AudioCodec::G711A => "G711A",
        AudioCodec::G711U => "G711U",
        AudioCodec::Aac => "AAC",
        AudioCodec::Speex => "Speex",
        AudioCodec::Opus => "OPUS",
        AudioCodec::Flac => "FLAC",
        AudioCodec::Ac3 => "AC3",
        AudioCodec::Eac3 => "EAC3",
        AudioCodec::FourCc(fourcc) => return fourcc_name(fourcc),
        AudioCodec::Legacy(_) => "Unknown",
    };
    name.to_owned()
}

/// An unknown FourCC as its four characters when they are printable, else "Unknown".
fn fourcc_name(fourcc: u32) -> String {
    let b = fourcc.to_be_bytes();
    if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        b.iter().map(|&c| char::from(c)).collect()
    } else {
        "Unknown".to_owned()
    }
}

/// `publisher.video` of `/api/streams`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VideoStats {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub profile: Option<String>,
    pub level: Option<f64>,
    pub fps: Option<f64>,
}

impl From<&VideoParams> for VideoStats {
    fn from(v: &VideoParams) -> Self {
        VideoStats {
            codec: video_codec_name(v.codec),
            width: v.width,
            height: v.height,
            profile: v.profile.clone(),
            level: v.level,
            fps: v.fps,
        }
    }
}

/// `publisher.audio` of `/api/streams`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AudioStats {
    pub codec: String,
    pub profile: Option<String>,
    pub samplerate: u32,
    pub channels: u8,
}

impl From<&AudioParams> for AudioStats {
    fn from(a: &AudioParams) -> Self {
        AudioStats {
            codec: audio_codec_name(a.codec),
            profile: a.profile.clone(),
            samplerate: a.sample_rate,
            channels: a.channels,
        }
    }
}

/// The fields Node-Media-Server gives every client of a stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientStats {
    pub app: String,
    pub stream: String,
    /// The session id, as a string like Node-Media-Server's ids (`DELETE /api/sessions/{id}`
    /// takes it).
    #[serde(rename = "clientId")]
    pub client_id: String,
    #[serde(rename = "connectCreated")]
    pub connect_created: String,
    /// Bytes received from a publisher, or sent to a subscriber, on the wire.
    pub bytes: u64,
    pub ip: String,
}

impl ClientStats {
    fn new(app: &str, stream: &str, s: &SessionInfo, bytes: u64) -> Self {
        ClientStats {
            app: app.to_owned(),
            stream: stream.to_owned(),
            client_id: s.id.to_string(),
            connect_created: iso8601(s.created_ms),
            bytes,
            ip: s.peer.ip().to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PublisherStats {
    #[serde(flatten)]
    pub client: ClientStats,
    pub audio: Option<AudioStats>,
    pub video: Option<VideoStats>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubscriberStats {
    #[serde(flatten)]
    pub client: ClientStats,
    /// `rtmp`, `http` (HTTP-FLV) or `ws` (WS-FLV), as Node-Media-Server names them.
    pub protocol: &'static str,
}

/// One entry of `/api/streams`. `app` and `name` are the keys of the JSON maps around it; the
/// skipped fields feed the metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamStats {
    #[serde(skip)]
    pub app: String,
    #[serde(skip)]
    pub name: String,
    /// `None` while nobody publishes (viewers are waiting).
    pub publisher: Option<PublisherStats>,
    pub subscribers: Vec<SubscriberStats>,
    pub bitrate_in_kbps: u64,
    pub bitrate_out_kbps: u64,
    /// Viewers the hub counts (every subscription).
    #[serde(skip)]
    pub viewers: usize,
    /// Media payload bytes received by the hub since the current publish started.
    #[serde(skip)]
    pub received_bytes: u64,
    #[serde(skip)]
    pub live: bool,
}

/// One entry of `/api/sessions`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionStats {
    pub id: u64,
    pub protocol: &'static str,
    pub ip: String,
    pub port: u16,
    /// Empty until the session connects to an app.
    pub app: String,
    /// Empty until the session publishes or plays.
    pub stream: String,
    pub role: Option<Role>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// ISO 8601 UTC.
    pub created: String,
}

/// `os` of `/api/server` (Node's `os.arch()`, `os.platform()`, `os.release()` spellings).
#[derive(Debug, Clone, Serialize)]
pub struct OsStats {
    pub arch: String,
    pub platform: String,
    pub release: String,
}

/// `cpu` of `/api/server`.
#[derive(Debug, Clone, Serialize)]
pub struct CpuStats {
    pub num: usize,
    /// Whole-system CPU usage in percent (0-100), over the last second or so.
    pub load: u32,
    pub model: String,
    /// MHz.
    pub speed: u64,
}

/// `mem` of `/api/server`, in bytes. `totle` is Node-Media-Server's spelling, kept for its
/// dashboards; `total` is the same number.
#[derive(Debug, Clone, Serialize)]
pub struct MemStats {
    pub totle: u64,
    pub total: u64,
    /// Memory available to new programs (`MemAvailable` on Linux, as Node's `os.freemem()`).
    pub free: u64,
}

/// `net` of `/api/server`: Rill's own traffic, ended sessions included.
#[derive(Debug, Clone, Serialize)]
pub struct NetStats {
    pub inbytes: u64,
    pub outbytes: u64,
}

/// `process` of `/api/server` (Node-Media-Server calls it `nodejs`).
#[derive(Debug, Clone, Serialize)]
pub struct ProcessStats {
    /// Seconds since the process started.
    pub uptime: u64,
    pub version: &'static str,
    /// Resident set size in bytes.
    pub mem: u64,
}

/// `clients` of `/api/server`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientCounts {
    /// Connections accepted since start.
    pub accepted: u64,
    /// Sessions attached to a stream (publishing or playing).
    pub active: usize,
    /// Sessions connected but not attached to a stream yet.
    pub idle: usize,
    pub rtmp: usize,
    pub http: usize,
    pub ws: usize,
}

/// `/api/server`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStats {
    pub os: OsStats,
    pub cpu: CpuStats,
    pub mem: MemStats,
    pub net: NetStats,
    pub process: ProcessStats,
    pub version: &'static str,
    pub clients: ClientCounts,
}

/// What `/metrics` exposes; see [`crate::control::metrics`].
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    pub live_streams: usize,
    pub sessions_rtmp: usize,
    pub sessions_http_flv: usize,
    pub sessions_ws_flv: usize,
    pub sessions_relay: usize,
    pub accepted: u64,
    pub refused: u64,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    pub frames_dropped: u64,
    pub viewers_dropped: u64,
    pub streams: Vec<StreamStats>,
    pub relays: Vec<crate::relay::RelayView>,
    pub resident_memory_bytes: u64,
    pub start_time_seconds: f64,
}

/// A session's byte counter at one moment, for rates.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    pub id: u64,
    pub bytes: u64,
    /// Time since the session connected.
    pub age: Duration,
}

/// Per-session counters of one stream at one moment.
#[derive(Debug)]
struct Sample {
    at: Instant,
    bytes: HashMap<u64, u64>,
}

/// Stored byte samples per stream, for live rates (the method is in the module doc).
#[derive(Debug, Default)]
pub struct RateSampler {
    streams: HashMap<String, VecDeque<Sample>>,
}

impl RateSampler {
    /// The current rate of `sessions` together, in bytes per second; stores a sample for later.
    pub fn observe(&mut self, key: &str, now: Instant, sessions: &[Counted]) -> f64 {
        let ring = self.streams.entry(key.to_owned()).or_default();
        let base = ring
            .front()
            .filter(|s| now.saturating_duration_since(s.at) >= MIN_BASELINE_AGE);
        let mut rate = 0.0;
        for s in sessions {
            let earlier = base.and_then(|b| {
                b.bytes
                    .get(&s.id)
                    .filter(|&&v| v <= s.bytes)
                    .map(|&v| (v, now.saturating_duration_since(b.at)))
            });
            let (from, span) = earlier.unwrap_or((0, s.age));
            if !span.is_zero() {
                rate += (s.bytes - from) as f64 / span.as_secs_f64();
            }
        }
        let due = ring
            .back()
            .is_none_or(|b| now.saturating_duration_since(b.at) >= SAMPLE_SPACING);
        if due {
            ring.push_back(Sample {
                at: now,
                bytes: sessions.iter().map(|s| (s.id, s.bytes)).collect(),
            });
        }
        // Keep the newest sample that is at least a window old, so the rate spans the window.
        while ring
            .get(1)
            .is_some_and(|s| now.saturating_duration_since(s.at) >= BITRATE_WINDOW)
        {
            ring.pop_front();
        }
        rate
    }

    /// Forgets streams not observed for a minute.
    pub fn prune(&mut self, now: Instant) {
        self.streams.retain(|_, ring| {
            ring.back()
                .is_some_and(|s| now.saturating_duration_since(s.at) < SAMPLES_STALE)
        });
    }

    /// Streams with stored samples.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// What the operating system says, as of the last refresh.
#[derive(Debug, Clone, Default)]
struct SystemSnapshot {
    cpu_num: usize,
    cpu_load: f32,
    cpu_model: String,
    cpu_mhz: u64,
    mem_total: u64,
    mem_available: u64,
    rss: u64,
    /// Unix seconds.
    process_start: Option<u64>,
}

/// A `sysinfo::System` read lazily, at most once per [`SYSTEM_REFRESH`].
struct SystemProbe {
    sys: Option<System>,
    pid: Option<Pid>,
    refreshed: Instant,
    last: SystemSnapshot,
}

impl SystemProbe {
    fn new() -> Self {
        let mut probe = SystemProbe {
            sys: System::new().ok(),
            pid: sysinfo::get_current_pid().ok(),
            refreshed: Instant::now(),
            last: SystemSnapshot::default(),
        };
        // The first CPU read only sets the reference point of the next one.
        probe.read();
        probe
    }

    fn read(&mut self) {
        self.refreshed = Instant::now();
        let Some(sys) = self.sys.as_mut() else {
            return;
        };
        sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage().with_frequency());
        sys.refresh_memory();
        let mut rss = 0;
        let mut start = None;
        if let Some(pid) = self.pid {
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                false,
                ProcessRefreshKind::nothing().with_memory().without_tasks(),
            );
            if let Some(p) = sys.process(pid) {
                rss = p.memory();
                start = Some(p.start_time()).filter(|&t| t > 0);
            }
        }
        let cpus = sys.cpus();
        self.last = SystemSnapshot {
            cpu_num: cpus.len(),
            cpu_load: sys.global_cpu_usage(),
            cpu_model: cpus
                .first()
                .map(|c| c.brand().trim().to_owned())
                .unwrap_or_default(),
            cpu_mhz: cpus.first().map(|c| c.frequency()).unwrap_or(0),
            mem_total: sys.total_memory(),
            mem_available: sys.available_memory(),
            rss,
            process_start: start,
        };
    }

    fn snapshot(&mut self) -> SystemSnapshot {
        if self.refreshed.elapsed() >= SYSTEM_REFRESH {
            self.read();
        }
        self.last.clone()
    }
}

/// Node's `os.arch()` names, which Node-Media-Server dashboards show.
fn node_arch(arch: &str) -> String {
    match arch {
        "x86_64" | "amd64" => "x64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i586" | "i686" => "ia32",
        "powerpc64" => "ppc64",
        other => other,
    }
    .to_owned()
}

/// The statistics source: holds what must persist between requests (the OS probe, byte samples).
pub struct Stats {
    started_ms: u64,
    system: Mutex<SystemProbe>,
    rates_in: Mutex<RateSampler>,
    rates_out: Mutex<RateSampler>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("started_ms", &self.started_ms)
            .finish_non_exhaustive()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here is left half-updated in a way that matters if a reader panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            started_ms: unix_ms(),
            system: Mutex::new(SystemProbe::new()),
            rates_in: Mutex::new(RateSampler::default()),
            rates_out: Mutex::new(RateSampler::default()),
        }
    }

    /// Unix seconds when the process started (when the OS does not say: when these stats began).
    fn process_start_secs(&self, sys: &SystemSnapshot) -> f64 {
        sys.process_start
            .map(|s| s as f64)
            .unwrap_or(self.started_ms as f64 / 1000.0)
    }

    /// `/api/server`.
    pub fn server(&self, ctx: &Context) -> ServerStats {
        let sys = lock(&self.system).snapshot();
        let sessions = ctx.sessions.list();
        let (inbytes, outbytes) = ctx.sessions.total_bytes();
        let now_s = unix_ms() as f64 / 1000.0;
        let uptime = (now_s - self.process_start_secs(&sys)).max(0.0) as u64;
        let version = env!("CARGO_PKG_VERSION");
        ServerStats {
            os: OsStats {
                arch: node_arch(&System::cpu_arch()),
                platform: std::env::consts::OS.to_owned(),
                release: System::kernel_version().unwrap_or_default(),
            },
            cpu: CpuStats {
                num: sys.cpu_num,
                load: sys.cpu_load.clamp(0.0, 100.0).round() as u32,
                model: sys.cpu_model,
                speed: sys.cpu_mhz,
            },
            mem: MemStats {
                totle: sys.mem_total,
                total: sys.mem_total,
                free: sys.mem_available,
            },
            net: NetStats { inbytes, outbytes },
            process: ProcessStats {
                uptime,
                version,
                mem: sys.rss,
            },
            version,
            clients: client_counts(ctx, &sessions),
        }
    }

    /// Every stream of the hub, sorted by app then name.
    pub fn streams(&self, ctx: &Context) -> Vec<StreamStats> {
        let mut streams = ctx.hub.streams();
        streams.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        let index = SessionIndex::new(ctx);
        let now = Instant::now();
        let out = streams
            .iter()
            .map(|s| self.stream_stats(s, &index, now))
            .collect();
        lock(&self.rates_in).prune(now);
        lock(&self.rates_out).prune(now);
        out
    }

    /// One stream, if the hub has it.
    pub fn stream(&self, ctx: &Context, app: &str, name: &str) -> Option<StreamStats> {
        let stream = ctx.hub.stream(app, name)?;
        let index = SessionIndex::new(ctx);
        Some(self.stream_stats(&stream, &index, Instant::now()))
    }

    fn stream_stats(&self, stream: &Stream, index: &SessionIndex, now: Instant) -> StreamStats {
        let facts = stream.facts();
        let live = stream.is_live();
        let now_ms = unix_ms();
        let age = |s: &SessionInfo| Duration::from_millis(now_ms.saturating_sub(s.created_ms));
        let (app, name) = (stream.app.as_str(), stream.name.as_str());

        let publisher = facts
            .publisher
            .filter(|_| live)
            .and_then(|id| index.by_id.get(&id));
        let mut inputs = Vec::new();
        let publisher = publisher.map(|s| {
            let bytes = s.bytes_in.load(Ordering::Relaxed);
            inputs.push(Counted {
                id: s.id,
                bytes,
                age: age(s),
            });
            PublisherStats {
                client: ClientStats::new(app, name, s, bytes),
                audio: facts.audio.as_ref().map(AudioStats::from),
                video: facts.video.as_ref().map(VideoStats::from),
            }
        });

        let mut outputs = Vec::new();
        let subscribers = index
            .players(app, name)
            .iter()
            .map(|s| {
                let bytes = s.bytes_out.load(Ordering::Relaxed);
                outputs.push(Counted {
                    id: s.id,
                    bytes,
                    age: age(s),
                });
                SubscriberStats {
                    client: ClientStats::new(app, name, s, bytes),
                    protocol: s.protocol.nms_name(),
                }
            })
            .collect();

        let key = format!("{app}/{name}");
        let kbps = |bytes_per_s: f64| (bytes_per_s * 8.0 / 1000.0).round() as u64;
        StreamStats {
            app: app.to_owned(),
            name: name.to_owned(),
            publisher,
            subscribers,
            bitrate_in_kbps: kbps(lock(&self.rates_in).observe(&key, now, &inputs)),
            bitrate_out_kbps: kbps(lock(&self.rates_out).observe(&key, now, &outputs)),
            viewers: stream.viewer_count(),
            received_bytes: facts.bytes_in,
            live,
        }
    }

    /// `/api/sessions`, by id.
    pub fn sessions(&self, ctx: &Context) -> Vec<SessionStats> {
        ctx.sessions
            .list()
            .iter()
            .map(|s| {
                let a = s.attachment();
                SessionStats {
                    id: s.id,
                    protocol: s.protocol.as_str(),
                    ip: s.peer.ip().to_string(),
                    port: s.peer.port(),
                    app: a.app,
                    stream: a.stream,
                    role: a.role,
                    bytes_in: s.bytes_in.load(Ordering::Relaxed),
                    bytes_out: s.bytes_out.load(Ordering::Relaxed),
                    created: iso8601(s.created_ms),
                }
            })
            .collect()
    }

    /// Everything `/metrics` shows.
    pub fn metrics(&self, ctx: &Context) -> MetricsSnapshot {
        let sys = lock(&self.system).snapshot();
        let sessions = ctx.sessions.list();
        let count = |p: Protocol| sessions.iter().filter(|s| s.protocol == p).count();
        let (received_bytes, sent_bytes) = ctx.sessions.total_bytes();
        let c = &ctx.sessions.counters;
        let h = &ctx.hub.counters;
        let streams = self.streams(ctx);
        MetricsSnapshot {
            live_streams: streams.iter().filter(|s| s.live).count(),
            sessions_rtmp: count(Protocol::Rtmp),
            sessions_http_flv: count(Protocol::HttpFlv),
            sessions_ws_flv: count(Protocol::WsFlv),
            sessions_relay: count(Protocol::Relay),
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            received_bytes,
            sent_bytes,
            frames_dropped: h.frames_dropped.load(Ordering::Relaxed),
            viewers_dropped: h.viewers_dropped.load(Ordering::Relaxed),
            streams,
            relays: ctx.relays.list().iter().map(|r| r.view()).collect(),
            resident_memory_bytes: sys.rss,
            start_time_seconds: self.process_start_secs(&sys),
        }
    }
}

/// The sessions looked up by id and players grouped by stream, built once per request so that
/// listing every stream stays linear in streams + sessions.
struct SessionIndex {
    by_id: HashMap<u64, Arc<SessionInfo>>,
    players: HashMap<(String, String), Vec<Arc<SessionInfo>>>,
}

impl SessionIndex {
    fn new(ctx: &Context) -> Self {
        let mut index = SessionIndex {
            by_id: HashMap::new(),
            players: HashMap::new(),
        };
        // `list()` is sorted by id, so each stream's players are too.
        for s in ctx.sessions.list() {
            let a = s.attachment();
            if a.role == Some(Role::Player) {
                index
                    .players
                    .entry((a.app, a.stream))
                    .or_default()
                    .push(s.clone());
            }
            index.by_id.insert(s.id, s);
        }
        index
    }

    fn players(&self, app: &str, name: &str) -> &[Arc<SessionInfo>] {
        self.players
            .get(&(app.to_owned(), name.to_owned()))
            .map_or(&[], Vec::as_slice)
    }
}

/// `clients` of `/api/server`.
fn client_counts(ctx: &Context, sessions: &[Arc<SessionInfo>]) -> ClientCounts {
    let count = |p: Protocol| sessions.iter().filter(|s| s.protocol == p).count();
    let idle = sessions
        .iter()
        .filter(|s| s.attachment().role.is_none())
        .count();
    ClientCounts {
        accepted: ctx.sessions.counters.accepted.load(Ordering::Relaxed),
        active: sessions.len() - idle,
        idle,
        rtmp: count(Protocol::Rtmp),
        http: count(Protocol::HttpFlv),
        ws: count(Protocol::WsFlv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (leap day of a century leap year) 12:34:56.789
        assert_eq!(iso8601(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(iso8601(1_704_067_199_999), "2023-12-31T23:59:59.999Z");
        assert_eq!(iso8601(1_704_067_200_000), "2024-01-01T00:00:00.000Z");
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(iso8601(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn codec_names_follow_nms() {
        assert_eq!(video_codec_name(VideoCodec::Avc), "H264");
        assert_eq!(video_codec_name(VideoCodec::Hevc), "HEVC");
        assert_eq!(video_codec_name(VideoCodec::Av1), "AV1");
        assert_eq!(video_codec_name(VideoCodec::Vp9), "VP9");
        assert_eq!(video_codec_name(VideoCodec::Legacy(9)), "Unknown");
        assert_eq!(
            video_codec_name(VideoCodec::FourCc(u32::from_be_bytes(*b"avs3"))),
            "avs3"
        );
        assert_eq!(video_codec_name(VideoCodec::FourCc(0x0001_0203)), "Unknown");
        assert_eq!(audio_codec_name(AudioCodec::Aac), "AAC");
        assert_eq!(audio_codec_name(AudioCodec::Mp3), "MP3");
        assert_eq!(audio_codec_name(AudioCodec::Opus), "OPUS");
        assert_eq!(audio_codec_name(AudioCodec::Speex), "Speex");
        assert_eq!(audio_codec_name(AudioCodec::Nellymoser), "Nellymoser");
    }

    #[test]
    fn node_arch_names() {
        assert_eq!(node_arch("x86_64"), "x64");
        assert_eq!(node_arch("aarch64"), "arm64");
        assert_eq!(node_arch("riscv64"), "riscv64");
    }

    fn c(id: u64, bytes: u64, age_s: u64) -> Counted {
        Counted {
            id,
            bytes,
            age: Duration::from_secs(age_s),
        }
    }

    #[test]
    fn first_observation_uses_lifetime_average() {
        let mut r = RateSampler::default();
        let t0 = Instant::now();
        // 10 000 bytes over 2 s + 3 000 over 3 s.
        let rate = r.observe("a/b", t0, &[c(1, 10_000, 2), c(2, 3_000, 3)]);
        assert!((rate - 6_000.0).abs() < 1e-6, "{rate}");
        // A session that just connected (age 0) adds nothing rather than dividing by zero.
        let rate = r.observe("x/y", t0, &[c(3, 100, 0)]);
        assert_eq!(rate, 0.0);
    }

    #[test]
    fn later_observations_use_stored_samples() {
        let mut r = RateSampler::default();
        let t0 = Instant::now();
        r.observe("a/b", t0, &[c(1, 1_000, 10)]);
        // Half a second later the stored sample is too fresh: lifetime average again.
        let rate = r.observe("a/b", t0 + Duration::from_millis(500), &[c(1, 2_000, 10)]);
        assert!((rate - 200.0).abs() < 1e-6, "{rate}");
        // Two seconds later: (5000 - 1000) / 2 s.
        let rate = r.observe("a/b", t0 + Duration::from_secs(2), &[c(1, 5_000, 12)]);
        assert!((rate - 2_000.0).abs() < 1e-6, "{rate}");
        // A newcomer counts with its own lifetime; one that left is simply absent.
        let rate = r.observe(
            "a/b",
            t0 + Duration::from_secs(3),
            &[c(1, 7_000, 13), c(2, 1_000, 1)],
        );
        assert!((rate - (6_000.0 / 3.0 + 1_000.0)).abs() < 1e-6, "{rate}");
    }

    #[test]
    fn window_bounds_samples_and_follows_recent_traffic() {
        let mut r = RateSampler::default();
        let t0 = Instant::now();
        // 1000 B/s for 20 s, observed every 100 ms.
        for i in 0..=200u64 {
            let t = t0 + Duration::from_millis(i * 100);
            r.observe("a/b", t, &[c(1, i * 100, 100)]);
        }
        let ring = &r.streams["a/b"];
        assert!(ring.len() <= 7, "{} samples kept", ring.len());
        // Then silence: after the window the rate falls to zero.
        let t = t0 + Duration::from_secs(20);
        let mut last = f64::MAX;
        for i in 1..=12u64 {
            last = r.observe(
                "a/b",
                t + Duration::from_millis(i * 500),
                &[c(1, 20_000, 100)],
            );
        }
        assert_eq!(last, 0.0);
    }

    #[test]
    fn counter_going_backwards_falls_back_to_lifetime() {
        // The same id reused after a restart of the registry must not produce a negative rate.
        let mut r = RateSampler::default();
        let t0 = Instant::now();
        r.observe("a/b", t0, &[c(1, 5_000, 10)]);
        let rate = r.observe("a/b", t0 + Duration::from_secs(2), &[c(1, 400, 2)]);
        assert!((rate - 200.0).abs() < 1e-6, "{rate}");
    }

    #[test]
    fn prune_forgets_stale_streams() {
        let mut r = RateSampler::default();
        let t0 = Instant::now();
        r.observe("a/b", t0, &[]);
        r.observe("c/d", t0 + Duration::from_secs(59), &[]);
        r.prune(t0 + Duration::from_secs(61));
        assert_eq!(r.len(), 1);
        assert!(r.streams.contains_key("c/d"));
    }
}
