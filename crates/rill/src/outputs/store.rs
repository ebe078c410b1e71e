//! Where one stream's HLS/DASH output lives: segments, parts and init segments in memory (served
//! with no disk I/O), optionally mirrored to `mediaroot/app/stream/`, plus the current playlist and
//! MPD. Every change bumps a version that blocked requests (LL-HLS blocking reload, preload hints)
//! wait on.
//!
//! The disk mirror is written by one thread of its own, in order, from a bounded queue: a slow or
//! stalled disk never holds up a segmenter (a runtime worker); when the queue is full, mirror
//! writes are dropped with a warning while memory keeps serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::watch;

/// How far the HLS playlist has got: the last complete segment and the parts of the next one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HlsProgress {
    /// Media sequence number of the next (in progress) segment.
    pub next_msn: u64,
    /// Parts already published of the segment in progress.
    pub parts: usize,
    /// The playlist has ended (no more segments or parts will come).
    pub ended: bool,
}

impl HlsProgress {
    /// Whether the playlist already holds segment `msn` (or part `part` of it).
    pub fn has(&self, msn: u64, part: Option<usize>) -> bool {
        match part {
            None => msn < self.next_msn,
            Some(p) => msn < self.next_msn || (msn == self.next_msn && p < self.parts),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<String, Bytes>,
    playlist: Option<String>,
    mpd: Option<String>,
    progress: HlsProgress,
}

/// One stream's output.
#[derive(Debug)]
pub struct MediaStore {
    inner: Mutex<Inner>,
    version: watch::Sender<u64>,
    disk: Option<PathBuf>,
}

impl MediaStore {
    /// `disk`: the directory to mirror files into, if any.
    pub fn new(disk: Option<PathBuf>) -> Self {
        MediaStore {
            inner: Mutex::new(Inner::default()),
            version: watch::Sender::new(0),
            disk,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Watches changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn get(&self, name: &str) -> Option<Bytes> {
        self.lock().files.get(name).cloned()
    }

    pub fn progress(&self) -> HlsProgress {
        self.lock().progress
    }

    pub fn playlist(&self) -> Option<(String, HlsProgress)> {
        let g = self.lock();
        g.playlist.clone().map(|p| (p, g.progress))
    }

    pub fn mpd(&self) -> Option<String> {
        self.lock().mpd.clone()
    }

    /// Adds files (and mirrors them to disk).
    pub fn put(&self, files: Vec<(String, Bytes)>) {
        if let Some(dir) = &self.disk {
            for (name, data) in &files {
                disk(DiskOp::Write(dir.clone(), name.clone(), data.clone()));
            }
        }
        let mut g = self.lock();
        g.files.extend(files);
    }

    /// Removes files (and their disk copies).
    pub fn remove(&self, names: &[String]) {
        let mut g = self.lock();
        for n in names {
            g.files.remove(n);
        }
        drop(g);
        if let Some(dir) = &self.disk {
            disk(DiskOp::Remove(dir.clone(), names.to_vec()));
        }
    }

    /// Publishes new playlist and/or MPD text and wakes blocked requests.
    pub fn publish(&self, playlist: Option<String>, progress: HlsProgress, mpd: Option<String>) {
        if let Some(dir) = &self.disk {
            if let Some(p) = &playlist {
                let text = Bytes::copy_from_slice(p.as_bytes());
                disk(DiskOp::Write(dir.clone(), "index.m3u8".into(), text));
            }
            if let Some(m) = &mpd {
                let text = Bytes::copy_from_slice(m.as_bytes());
                disk(DiskOp::Write(dir.clone(), "index.mpd".into(), text));
            }
        }
        let mut g = self.lock();
        if playlist.is_some() {
            g.playlist = playlist;
            g.progress = progress;
        }
        if mpd.is_some() {
            g.mpd = mpd;
        }
        drop(g);
        self.bump();
    }

    /// Number of files held, and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.lock();
        (g.files.len(), g.files.values().map(Bytes::len).sum())
    }

    /// Removes everything, on disk too.
    pub fn clear(&self) {
        let names: Vec<String> = self.lock().files.keys().cloned().collect();
        self.remove(&names);
        if let Some(dir) = &self.disk {
            let names = vec!["index.m3u8".to_string(), "index.mpd".to_string()];
            disk(DiskOp::Remove(dir.clone(), names));
            disk(DiskOp::RemoveDir(dir.clone()));
        }
        let mut g = self.lock();
        g.playlist = None;
        g.mpd = None;
    }
}

/// Mirror operations waiting for the disk thread; beyond this, new ones are dropped.
const DISK_QUEUE: usize = 1024;
/// Bytes waiting for the disk thread; beyond this, new writes are dropped.
const DISK_QUEUE_BYTES: usize = 64 << 20;
/// Bytes queued for the disk thread now.
static DISK_QUEUED: AtomicUsize = AtomicUsize::new(0);

/// One thing for the disk thread to do.
enum DiskOp {
    Write(PathBuf, String, Bytes),
    Remove(PathBuf, Vec<String>),
    RemoveDir(PathBuf),
    /// Answers once everything queued before it is done.
    #[cfg(test)]
    Sync(mpsc::Sender<()>),
}

/// Queues `op` for the disk thread (started on first use, shared by every stream, so that the
/// operations of one stream stay in order).
fn disk(op: DiskOp) {
    static QUEUE: OnceLock<Option<SyncSender<DiskOp>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<DiskOp>(DISK_QUEUE);
        let started = std::thread::Builder::new()
            .name("rill-disk".into())
            .spawn(move || {
                for op in rx {
                    run(op);
                }
            });
        match started {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the disk mirror thread: no disk copies");
                None
            }
        }
    });
    let Some(tx) = queue else { return };
    let size = match &op {
        DiskOp::Write(_, _, data) => data.len(),
        _ => 0,
    };
    let over_bytes = DISK_QUEUED.fetch_add(size, Ordering::Relaxed) + size > DISK_QUEUE_BYTES;
    let refused = if over_bytes && size > 0 {
        Some(op)
    } else {
        match tx.try_send(op) {
            Ok(()) => None,
            Err(TrySendError::Full(op) | TrySendError::Disconnected(op)) => Some(op),
        }
    };
    let Some(op) = refused else { return };
    DISK_QUEUED.fetch_sub(size, Ordering::Relaxed);
    match op {
        // A full queue: the operations before this one are still to come, but a test only needs
        // not to wait forever.
        #[cfg(test)]
        DiskOp::Sync(done) => {
            let _ = done.send(());
        }
        _ => tracing::warn!("disk mirror behind (disk too slow): a file was not mirrored"),
    }
}

fn run(op: DiskOp) {
    match op {
        DiskOp::Write(dir, name, data) => {
            write_file(&dir, &name, &data);
            DISK_QUEUED.fetch_sub(data.len(), Ordering::Relaxed);
        }
        DiskOp::Remove(dir, names) => {
            for n in names {
                let _ = std::fs::remove_file(dir.join(n));
            }
        }
        DiskOp::RemoveDir(dir) => {
            let _ = std::fs::remove_dir(dir);
        }
        #[cfg(test)]
        DiskOp::Sync(done) => {
            let _ = done.send(());
        }
    }
}

/// Waits (blocking) until the disk mirror has done what was queued so far.
#[cfg(test)]
fn sync_disk() {
    let (tx, rx) = mpsc::channel();
    disk(DiskOp::Sync(tx));
    let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
}

/// Writes through a temporary name and renames, so a reader never sees half a file. A failure
/// is logged and leaves memory serving unaffected.
fn write_file(dir: &Path, name: &str, data: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&tmp, data))
        .and_then(|_| std::fs::rename(&tmp, dir.join(name)));
    if let Err(e) = result {
        tracing::warn!(dir = %dir.display(), file = name, error = %e, "cannot write segment to disk");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_answers_blocking_reload_questions() {
        let p = HlsProgress {
            next_msn: 5,
            parts: 2,
            ended: false,
        };
        assert!(p.has(4, None));
        assert!(!p.has(5, None));
        assert!(p.has(5, Some(1)));
        assert!(!p.has(5, Some(2)));
        assert!(!p.has(6, Some(0)));
    }

    #[test]
    fn files_mirror_to_disk_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("live/cam");
        let store = MediaStore::new(Some(sub.clone()));
        let rx = store.subscribe();
        store.put(vec![("seg-1.ts".into(), Bytes::from_static(b"abc"))]);
        store.publish(
            Some("#EXTM3U\n".into()),
            HlsProgress {
                next_msn: 2,
                parts: 0,
                ended: false,
            },
            None,
        );
        assert!(rx.has_changed().unwrap());
        sync_disk();
        assert_eq!(std::fs::read(sub.join("seg-1.ts")).unwrap(), b"abc");
        assert_eq!(
            std::fs::read_to_string(sub.join("index.m3u8")).unwrap(),
            "#EXTM3U\n"
        );
        assert_eq!(store.get("seg-1.ts").unwrap(), Bytes::from_static(b"abc"));
        store.remove(&["seg-1.ts".into()]);
        sync_disk();
        assert!(!sub.join("seg-1.ts").exists());
        assert!(store.get("seg-1.ts").is_none());
        store.clear();
        sync_disk();
        assert!(!sub.exists());
        assert!(store.playlist().is_none());
    }

    #[test]
    fn the_disk_mirror_queue_is_bounded_in_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(Some(dir.path().to_path_buf()));
        // More than the queue may hold at once: not mirrored (memory still serves it).
        let big = Bytes::from(vec![0u8; DISK_QUEUE_BYTES + 1]);
        store.put(vec![("big.ts".into(), big.clone())]);
        store.put(vec![("small.ts".into(), Bytes::from_static(b"ok"))]);
        sync_disk();
        assert!(!dir.path().join("big.ts").exists());
        assert_eq!(std::fs::read(dir.path().join("small.ts")).unwrap(), b"ok");
        assert_eq!(store.get("big.ts").unwrap().len(), big.len());
    }
}
