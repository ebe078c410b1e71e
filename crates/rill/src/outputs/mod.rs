//! Outputs fed from the hub: the HLS/DASH segmenters of apps that have a `[[trans.tasks]]` entry.
//!
//! A segmenter starts when a stream of such an app is published and keeps running across
//! unpublish/republish (so its playlist continues with a discontinuity); it stops, and removes its
//! files, `cleanup_after` seconds after the stream ended.

pub mod recorder;
pub mod recording;
pub mod segmenter;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use segmenter::Segmenter;
use store::MediaStore;

use crate::config::Storage;
use crate::server::Context;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The running segmenters' stores, by `app/stream`.
#[derive(Debug, Default)]
pub struct Outputs {
    stores: Mutex<HashMap<String, Arc<MediaStore>>>,
}

impl Outputs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<MediaStore>>> {
        self.stores.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The HLS/DASH output of `app/stream`, while it exists.
    pub fn store(&self, app: &str, stream: &str) -> Option<Arc<MediaStore>> {
        self.map().get(&format!("{app}/{stream}")).cloned()
    }

    /// Starts what the app's task asks for: the recording, and the segmenter if none runs yet.
    pub fn on_publish(ctx: &Arc<Context>, app: &str, stream: &str) {
        if let Some(task) = ctx.config.trans.recording(app) {
            // A recording still running (continued across a reconnect) is kept: not an error.
            let _ = recording::Recordings::start(
                ctx,
                app,
                stream,
                recording::RecordOptions::from_task(task),
            );
        }
        Self::start_segmenter(ctx, app, stream);
    }

    fn start_segmenter(ctx: &Arc<Context>, app: &str, stream: &str) {
        let Some(task) = ctx.config.trans.segmenting(app) else {
            return;
        };
        let settings = task.settings();
        let key = format!("{app}/{stream}");
        let store = {
            let mut map = ctx.outputs.map();
            if map.contains_key(&key) {
                return;
            }
            let disk = (settings.storage == Storage::Disk).then(|| {
                PathBuf::from(&ctx.config.http.mediaroot)
                    .join(app)
                    .join(stream)
            });
            let store = Arc::new(MediaStore::new(disk));
            map.insert(key.clone(), store.clone());
            store
        };
        // Subscribing now, before the publisher's first frame, so no sequence header is missed.
        let mut sub = ctx.hub.subscribe_internal(app, stream);
        let ctx2 = ctx.clone();
        ctx.tasks.spawn(async move {
            let cleanup = Duration::from_secs(settings.cleanup_after);
            let epoch = now_ms() / 1000;
            let mut seg = Segmenter::new(settings, store.clone(), epoch);
            tracing::info!(stream = %key, "segmenter started");
            loop {
                let linger = async {
                    if seg.ended() {
                        tokio::time::sleep(cleanup).await
                    } else {
                        std::future::pending().await
                    }
                };
                tokio::select! {
                    p = sub.recv() => match p {
                        Ok(p) => seg.push(p, now_ms()),
                        Err(_) => break,
                    },
                    _ = linger => break,
                    _ = ctx2.shutdown.cancelled() => break,
                }
            }
            drop(sub);
            ctx2.outputs.map().remove(&key);
            store.clear();
            tracing::info!(stream = %key, "segmenter stopped; its files are removed");
        });
    }
}
