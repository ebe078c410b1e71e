//! Recordings in progress: started when a stream of a recording app is published, or on demand by
//! API; each runs on its own thread so that file writes and syncs never stall the runtime, and a
//! full or unwritable disk stops only that recording (with an error event and a log line).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill_media::{Frame, FrameKind};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::now_ms;
use super::recorder::{default_base, Recording};
use crate::config::{RecordFormat, TransTask};
use crate::control::hooks::{Event, EventKind};
use crate::control::sessions::Protocol;
use crate::hub::Packet;
use crate::server::Context;

/// What a recording is doing, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingInfo {
    pub app: String,
    pub stream: String,
    pub format: RecordFormat,
    /// The file being written (final name).
    pub path: String,
    pub started: u64,
    pub bytes: u64,
    pub duration_ms: u64,
}

/// How to record.
#[derive(Debug, Clone, Copy)]
pub struct RecordOptions {
    pub format: RecordFormat,
    pub split_seconds: u64,
    pub split_bytes: u64,
    pub continue_on_republish: bool,
    pub linger: Duration,
}

impl RecordOptions {
    pub fn from_task(t: &TransTask) -> Self {
        RecordOptions {
            format: t.record_format,
            split_seconds: t.record_split_seconds,
            split_bytes: t.record_split_bytes,
            continue_on_republish: t.record_continue,
            linger: Duration::from_secs(t.cleanup_after),
        }
    }

    pub fn on_demand(format: RecordFormat) -> Self {
        RecordOptions {
            format,
            split_seconds: 0,
            split_bytes: 0,
            continue_on_republish: false,
            linger: Duration::from_secs(30),
        }
    }
}

struct Active {
    /// Tells this recording from a later one of the same stream.
    id: u64,
    stop: CancellationToken,
    info: Arc<Mutex<RecordingInfo>>,
}

/// The recordings in progress, by `app/stream`.
#[derive(Default)]
pub struct Recordings {
    active: Mutex<HashMap<String, Active>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("active", &self.map().len())
            .finish()
    }
}

impl Recordings {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn list(&self) -> Vec<RecordingInfo> {
        self.map()
            .values()
            .map(|a| a.info.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Stops the recording of `app/stream`; false if none runs.
    pub fn stop(&self, app: &str, stream: &str) -> bool {
        match self.map().remove(&format!("{app}/{stream}")) {
            Some(a) => {
                a.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Starts recording `app/stream`; an error if it is already being recorded.
    pub fn start(
        ctx: &Arc<Context>,
        app: &str,
        stream: &str,
        options: RecordOptions,
    ) -> Result<(), String> {
        let key = format!("{app}/{stream}");
        let stop = CancellationToken::new();
        let id = ctx
            .recordings
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let info = Arc::new(Mutex::new(RecordingInfo {
            app: app.to_owned(),
            stream: stream.to_owned(),
            format: options.format,
            path: String::new(),
            started: now_ms(),
            bytes: 0,
            duration_ms: 0,
        }));
        {
            let mut map = ctx.recordings.map();
            if map.contains_key(&key) {
                return Err(format!("{key} is already being recorded"));
            }
            map.insert(
                key.clone(),
                Active {
                    id,
                    stop: stop.clone(),
                    info: info.clone(),
                },
            );
        }
        let sub = ctx.hub.subscribe_internal(app, stream);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Handle::current();
        let ctx2 = ctx.clone();
        let (app, stream, key2) = (app.to_owned(), stream.to_owned(), key.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("rec {key}"))
            .spawn(move || {
                runtime.block_on(run(&ctx2, &app, &stream, sub, options, stop, info));
                // Only this recording's entry: a new one may already run for the same stream.
                let mut map = ctx2.recordings.map();
                if map.get(&key2).is_some_and(|a| a.id == id) {
                    map.remove(&key2);
                }
                drop(map);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            let mut map = ctx.recordings.map();
            if map.get(&key).is_some_and(|a| a.id == id) {
                map.remove(&key);
            }
            return Err(format!("cannot start a recording thread: {e}"));
        }
        // Shutdown waits for the recording to finish its file.
        ctx.tasks.spawn(async move {
            let _ = done_rx.await;
        });
        Ok(())
    }
}

async fn run(
    ctx: &Arc<Context>,
    app: &str,
    stream: &str,
    mut sub: crate::hub::Subscription,
    options: RecordOptions,
    stop: CancellationToken,
    info: Arc<Mutex<RecordingInfo>>,
) {
    let mediaroot = PathBuf::from(&ctx.config.http.mediaroot);
    // Metadata and sequence headers, written first into every file (also after a split).
    let mut header: Vec<Frame> = Vec::new();
    let mut rec: Option<Recording> = None;
    let mut ended = false;
    let mut error: Option<String> = None;
    // Timestamp of the current file's first frame.
    let mut file_started: Option<u32> = None;
    loop {
        let linger = async {
            if ended {
                tokio::time::sleep(options.linger).await
            } else {
                std::future::pending().await
            }
        };
        let packet = tokio::select! {
            p = sub.recv() => p,
            _ = stop.cancelled() => break,
            _ = ctx.shutdown.cancelled() => break,
            _ = linger => break,
        };
        let frame = match packet {
            Ok(Packet::Frame(f)) => f,
            Ok(Packet::Unpublish) => {
                if !options.continue_on_republish {
                    break;
                }
                ended = true;
                continue;
            }
            Ok(Packet::Publish) => {
                ended = false;
                continue;
            }
            Err(_) => break,
        };
        let fr = &frame.frame;
        let is_header = fr.kind == FrameKind::Metadata || fr.sequence_header;
        if is_header {
            header.retain(|h| !(h.kind == fr.kind && (h.sequence_header == fr.sequence_header)));
            header.push(fr.clone());
        }
        // A file ends just before a keyframe once it is long or big enough, so that every file
        // starts with one and no frame is lost between files.
        if fr.is_video_keyframe() {
            if let (Some(r), Some(t0)) = (rec.as_ref(), file_started) {
                let long = options.split_seconds > 0
                    && u64::from(fr.timestamp.wrapping_sub(t0)) >= options.split_seconds * 1000;
                let big = options.split_bytes > 0 && r.progress().0 >= options.split_bytes;
                if long || big {
                    if let Some(r) = rec.take() {
                        finish(ctx, app, stream, r, None);
                    }
                }
            }
        }
        let result = match rec.as_mut() {
            None if is_header => Ok(()),
            None => {
                let base = default_base(&mediaroot, app, stream, now_ms());
                Recording::open(options.format, &base, &header)
                    .and_then(|mut r| r.write(fr).map(|_| r))
                    .map(|r| {
                        let file = r.path().display().to_string();
                        tracing::info!(stream = %format!("/{app}/{stream}"), %file, "recording");
                        if let Ok(mut i) = info.lock() {
                            i.path = file;
                        }
                        file_started = Some(fr.timestamp);
                        rec = Some(r);
                    })
            }
            Some(r) => r.write(fr),
        };
        if let Err(e) = result {
            error = Some(e.to_string());
            break;
        }
        if let Some(r) = rec.as_ref() {
            let (bytes, duration) = r.progress();
            if let Ok(mut i) = info.lock() {
                (i.bytes, i.duration_ms) = (bytes, duration);
            }
        }
    }
    match rec {
        Some(r) => finish(ctx, app, stream, r, error),
        None => {
            if let Some(e) = error {
                report(ctx, app, stream, None, Some(e));
            }
        }
    }
}

fn finish(ctx: &Context, app: &str, stream: &str, rec: Recording, error: Option<String>) {
    match rec.finish() {
        Ok(path) => report(ctx, app, stream, Some(path.display().to_string()), error),
        Err(e) => report(ctx, app, stream, None, Some(e.to_string())),
    }
}

/// Logs the end of a recording and fires `doneRecord` with its path (and error, if any).
fn report(ctx: &Context, app: &str, stream: &str, path: Option<String>, error: Option<String>) {
    match &error {
        Some(e) => {
            tracing::error!(stream = %format!("/{app}/{stream}"), file = path.as_deref().unwrap_or(""), error = %e, "recording stopped")
        }
        None => {
            tracing::info!(stream = %format!("/{app}/{stream}"), file = path.as_deref().unwrap_or(""), "recording finished")
        }
    }
    let mut event = Event::new(
        EventKind::DoneRecord,
        0,
        app,
        stream,
        "",
        "",
        Protocol::Rtmp,
    );
    event.path = path;
    event.error = error;
    ctx.hooks.notify(event);
}
