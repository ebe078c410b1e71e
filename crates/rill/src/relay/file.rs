//! File sources for the relay: a local file played as a live stream, in real time, looped forever.
//!
//! `.flv` files are demuxed natively. Anything else (MP4, MKV, TS, ...) is remuxed to FLV by one
//! supervised ffmpeg child (`-c copy`, no transcoding) whose stdout goes through the same FLV
//! reader. Both read incrementally into a buffer bounded by the demuxer's largest tag, so a
//! multi-gigabyte file costs a few megabytes at most.
//!
//! Timestamps: a native file is rebased to start at 0 and, at every loop, continues from the
//! last timestamp plus one frame interval, so each track's timestamps never go back; the file is
//! reopened at each loop (replacing it on disk takes effect at the next loop) and its sequence
//! headers, normally at its start, are sent again. ffmpeg loops by itself (`-stream_loop -1`) and
//! keeps its timestamps increasing; the same per-track guard applies to its output.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use rill_media::flv::{
    FlvDemuxer, FlvError, FlvTag, MAX_TAG_BODY_SIZE, TAG_TYPE_AUDIO, TAG_TYPE_SCRIPT,
    TAG_TYPE_VIDEO,
};
use rill_media::{Frame, FrameKind};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use super::child::{ChildSpec, SupervisedChild};

/// The largest tag accepted: the most the FLV format can describe (24-bit size), which also
/// bounds our read buffer (to about 16 MiB).
const MAX_TAG_SIZE: u32 = MAX_TAG_BODY_SIZE as u32;
/// Bytes read from the file or pipe at a time.
const READ_CHUNK: usize = 64 * 1024;
/// How long ffmpeg gets to produce the first frame before [`FileSource::open`] gives up.
const FFMPEG_START_LIMIT: Duration = Duration::from_secs(15);
/// ffmpeg paces with `-re`, so a silence longer than this means it is stuck.
const FFMPEG_STALL_LIMIT: Duration = Duration::from_secs(30);
/// After ffmpeg closed its stdout, how long it gets to exit before it is killed.
const FFMPEG_EXIT_LIMIT: Duration = Duration::from_secs(5);
/// The SIGTERM grace of [`FileSource::close`].
const FFMPEG_STOP_GRACE: Duration = Duration::from_secs(2);
/// The frame interval assumed at a loop when the file did not show one (a single frame, or all
/// frames at one timestamp): 25 fps. It also keeps such a file from looping in a busy loop.
const DEFAULT_INTERVAL_MS: u64 = 40;
/// A frame interval above this is a gap, not a frame rate.
const MAX_INTERVAL_MS: u64 = 1000;
/// A frame due longer ago than this (the consumer stalled) restarts the pacing schedule instead
/// of bursting everything missed.
const MAX_LATE: Duration = Duration::from_secs(1);
/// A frame due further ahead than this (a gap in the file's timestamps) restarts the pacing
/// schedule instead of holding the stream for that long.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Why a file source cannot be opened or read further. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("file source {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("cannot open file source {}: {source}", .path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read file source {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("file source {}: malformed FLV at byte {offset}: {source}", .path.display())]
    Malformed {
        path: PathBuf,
        offset: u64,
        source: FlvError,
    },
    #[error("file source {}: the FLV ends inside its header or first tag", .path.display())]
    Truncated { path: PathBuf },
    #[error("file source {} contains no audio or video frames", .path.display())]
    NoFrames { path: PathBuf },
    #[error(
        "file source {}: a non-FLV file source needs ffmpeg: set relay.ffmpeg or put ffmpeg on PATH",
        .path.display()
    )]
    NeedsFfmpeg { path: PathBuf },
    #[error("file source {}: cannot start ffmpeg {}: {source}", .path.display(), .ffmpeg.display())]
    Spawn {
        path: PathBuf,
        ffmpeg: PathBuf,
        source: io::Error,
    },
    /// ffmpeg exited, stalled or failed; `stderr` holds its last lines.
    #[error("file source {}: ffmpeg {what}{}", .path.display(), said(.stderr))]
    Ffmpeg {
        path: PathBuf,
        what: String,
        stderr: Vec<String>,
    },
}

fn said(stderr: &[String]) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; it said: {}", stderr.join(" | "))
    }
}

/// A file played as a live stream; see the module documentation.
pub struct FileSource {
    path: PathBuf,
    input: Input,
    timeline: Timeline,
    /// `None` for ffmpeg, whose `-re` already paces.
    pacer: Option<Pacer>,
    pending: VecDeque<Frame>,
    headers: HeaderCache,
    /// Loops completed (native FLV only).
    pass: u64,
    /// Audio and video frames read in the current pass.
    pass_frames: u64,
    warned_partial: bool,
    /// ffmpeg ended cleanly: every later call returns `Ok(None)`.
    finished: bool,
}

enum Input {
    Flv(FlvReader<tokio::fs::File>),
    Ffmpeg {
        reader: FlvReader<tokio::process::ChildStdout>,
        child: SupervisedChild,
    },
}

impl FileSource {
    /// `path` is a local path or a `file://` URL. `.flv` files (by extension, any case) are read
    /// natively; anything else goes through ONE supervised ffmpeg child,
    /// `ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i file:PATH -c copy -f flv pipe:1`
    /// (the `file:` prefix keeps a name containing `:` from being taken for a protocol).
    /// `ffmpeg` is the binary to run; `None` for a non-FLV file is [`FileError::NeedsFfmpeg`].
    ///
    /// Returns once the first frame has been read, so an unreadable, malformed or empty file (or
    /// one ffmpeg cannot remux) is reported here rather than by the first
    /// [`FileSource::next_frame`].
    pub async fn open(path: &str, ffmpeg: Option<&Path>) -> Result<FileSource, FileError> {
        let path = local_path(path)?;
        let is_flv = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("flv"));
        // Opened either way: a missing or unreadable file gets our clear error, not ffmpeg's.
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|source| FileError::Open {
                path: path.clone(),
                source,
            })?;
        // A directory opens fine on Linux and only fails at the first read, less clearly.
        let is_dir = file.metadata().await.is_ok_and(|m| m.is_dir());
        if is_dir {
            return Err(FileError::Open {
                path,
                source: io::Error::new(io::ErrorKind::InvalidInput, "is a directory"),
            });
        }
        let (input, pacer) = if is_flv {
            (Input::Flv(FlvReader::new(file)), Some(Pacer::default()))
        } else {
            drop(file);
            let ffmpeg = ffmpeg.ok_or_else(|| FileError::NeedsFfmpeg { path: path.clone() })?;
            (spawn_ffmpeg(&path, ffmpeg)?, None)
        };
        let mut source = FileSource {
            path,
            input,
            timeline: Timeline::default(),
            pacer,
            pending: VecDeque::new(),
            headers: HeaderCache::default(),
            pass: 0,
            pass_frames: 0,
            warned_partial: false,
            finished: false,
        };
        source.read_first_frame().await?;
        Ok(source)
    }

    /// The next frame, looped forever.
    ///
    /// Native FLV is paced in real time (each frame is returned when its timestamp is due,
    /// relative to the first frame) and never returns `Ok(None)`: at the end of the file it
    /// starts again from the beginning, and an error means the file became unreadable (deleted,
    /// replaced by a malformed or empty one). From ffmpeg, frames are returned as ffmpeg emits
    /// them (its `-re` paces); `Ok(None)` means ffmpeg ended its output and exited successfully,
    /// which `-stream_loop -1` only does when the input has nothing left to play; any other end,
    /// or 30 s of silence, is [`FileError::Ffmpeg`] with its last stderr lines.
    ///
    /// Cancel-safe (it may sit in a `select!` against shutdown): a frame leaves the queue only
    /// once it is due, and reads keep their bytes in the reader's buffer.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FileError> {
        loop {
            if let Some(frame) = self.pending.front() {
                if let Some(pacer) = &mut self.pacer {
                    // Asking again after a cancellation is harmless: the schedule only moves
                    // for a frame that is very late or far ahead.
                    let due = pacer.due(Instant::now(), frame.timestamp);
                    tokio::time::sleep_until(due).await;
                }
                return Ok(self.pending.pop_front());
            }
            if self.finished {
                return Ok(None);
            }
            if !self.read_more().await? {
                return Ok(None);
            }
        }
    }

    /// The file played.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ffmpeg child's PID, for a non-FLV file whose ffmpeg is running.
    pub fn ffmpeg_pid(&self) -> Option<u32> {
        match &self.input {
            Input::Ffmpeg { child, .. } => child.pid(),
            Input::Flv(_) => None,
        }
    }

    /// Ends the source, stopping ffmpeg gracefully (SIGTERM, SIGKILL after 2 s). Dropping the
    /// source kills ffmpeg at once instead.
    pub async fn close(self) {
        if let Input::Ffmpeg { child, .. } = self.input {
            child.stop(FFMPEG_STOP_GRACE).await;
        }
    }

    /// Reads tags until the first audio or video frame is queued.
    async fn read_first_frame(&mut self) -> Result<(), FileError> {
        let is_ffmpeg = matches!(self.input, Input::Ffmpeg { .. });
        let path = self.path.clone();
        let first = async {
            while self.pass_frames == 0 {
                if !self.read_more().await? {
                    // A clean end of ffmpeg's output before any frame.
                    return Err(FileError::NoFrames { path });
                }
            }
            Ok(())
        };
        // A local file either has the bytes or has ended; only ffmpeg can keep us waiting.
        if !is_ffmpeg {
            return first.await;
        }
        let result = tokio::time::timeout(FFMPEG_START_LIMIT, first).await;
        result.unwrap_or_else(|_| {
            Err(self.ffmpeg_error(format!("produced no frame within {FFMPEG_START_LIMIT:?}")))
        })
    }

    /// Reads one tag (or handles the end of the input), queueing what it yields. False when
    /// ffmpeg ended cleanly.
    async fn read_more(&mut self) -> Result<bool, FileError> {
        let read = match &mut self.input {
            Input::Flv(reader) => reader.next_tag().await,
            Input::Ffmpeg { reader, .. } => {
                let timed = tokio::time::timeout(FFMPEG_STALL_LIMIT, reader.next_tag()).await;
                match timed {
                    Ok(read) => read,
                    Err(_) => {
                        return Err(
                            self.ffmpeg_error(format!("sent nothing for {FFMPEG_STALL_LIMIT:?}"))
                        )
                    }
                }
            }
        };
        match read {
            Ok(Some(tag)) => {
                self.queue_tag(tag);
                Ok(true)
            }
            Ok(None) => self.end_of_input().await,
            Err(ReadError::Partial { offset }) => {
                if self.pass_frames == 0 && self.pass == 0 {
                    return Err(match self.input {
                        Input::Flv(_) => FileError::Truncated {
                            path: self.path.clone(),
                        },
                        Input::Ffmpeg { .. } => {
                            self.ffmpeg_error_after_exit("ended its output before the first frame")
                                .await
                        }
                    });
                }
                if matches!(self.input, Input::Flv(_)) && !self.warned_partial {
                    // A recording cut short (a killed recorder) is common: play what is whole.
                    tracing::warn!(
                        file = %self.path.display(),
                        "FLV file ends inside a tag at byte {offset}; looping over the complete tags"
                    );
                    self.warned_partial = true;
                }
                self.end_of_input().await
            }
            Err(ReadError::Flv { offset, source }) => Err(FileError::Malformed {
                path: self.path.clone(),
                offset,
                source,
            }),
            Err(ReadError::Io(source)) => Err(match self.input {
                Input::Flv(_) => FileError::Read {
                    path: self.path.clone(),
                    source,
                },
                Input::Ffmpeg { .. } => self.ffmpeg_error(format!("output unreadable: {source}")),
            }),
        }
    }

    /// The end of the file (loop) or of ffmpeg's output (it must have exited).
    async fn end_of_input(&mut self) -> Result<bool, FileError> {
        match &mut self.input {
            Input::Flv(_) => {
                if self.pass_frames == 0 {
                    return Err(FileError::NoFrames {
                        path: self.path.clone(),
                    });
                }
                let file =
                    tokio::fs::File::open(&self.path)
                        .await
                        .map_err(|source| FileError::Open {
                            path: self.path.clone(),
                            source,
                        })?;
                self.input = Input::Flv(FlvReader::new(file));
                self.timeline.next_pass();
                self.headers.next_pass();
                self.pass += 1;
                self.pass_frames = 0;
                Ok(true)
            }
            Input::Ffmpeg { child, .. } => {
                let waited = tokio::time::timeout(FFMPEG_EXIT_LIMIT, child.wait()).await;
                let status = match waited {
                    Ok(Ok(status)) => status,
                    Ok(Err(e)) => {
                        return Err(self.ffmpeg_error(format!("cannot be waited for: {e}")))
                    }
                    Err(_) => {
                        return Err(self.ffmpeg_error(format!(
                            "closed its output but did not exit within {FFMPEG_EXIT_LIMIT:?}"
                        )))
                    }
                };
                if status.success() {
                    tracing::info!(file = %self.path.display(), "ffmpeg ended the file source");
                    self.finished = true;
                    return Ok(false);
                }
                Err(self.ffmpeg_error(format!("exited ({status})")))
            }
        }
    }

    /// Waits briefly for ffmpeg to exit so its last stderr lines are in, then builds the error.
    async fn ffmpeg_error_after_exit(&mut self, what: &str) -> FileError {
        if let Input::Ffmpeg { child, .. } = &mut self.input {
            let waited = tokio::time::timeout(FFMPEG_EXIT_LIMIT, child.wait()).await;
            if let Ok(Ok(status)) = waited {
                return self.ffmpeg_error(format!("{what}, exited ({status})"));
            }
        }
        self.ffmpeg_error(what.to_owned())
    }

    fn ffmpeg_error(&self, what: String) -> FileError {
        let stderr = match &self.input {
            Input::Ffmpeg { child, .. } => child.last_lines(),
            Input::Flv(_) => Vec::new(),
        };
        FileError::Ffmpeg {
            path: self.path.clone(),
            what,
            stderr,
        }
    }

    /// Turns a tag into frames on the queue: rebased timestamp, and a cached sequence header put
    /// back in front of a track's first coded frame if this pass had none.
    fn queue_tag(&mut self, tag: FlvTag) {
        let kind = match tag.tag_type {
            TAG_TYPE_AUDIO => FrameKind::Audio,
            TAG_TYPE_VIDEO => FrameKind::Video,
            TAG_TYPE_SCRIPT => {
                // The file's onMetaData describes the file (duration, size); once is enough,
                // the hub keeps it for late viewers.
                if self.pass > 0 {
                    return;
                }
                FrameKind::Metadata
            }
            // The demuxer rejects other types.
            _ => return,
        };
        let mut frame = match Frame::from_flv_body(kind, 0, tag.body) {
            Ok(frame) => frame,
            Err(e) => {
                // One undecodable tag (muxers write empty ones at the end) is skipped, not fatal;
                // a file without any usable frame still fails with NoFrames.
                tracing::debug!(file = %self.path.display(), "skipping an unusable {kind:?} tag: {e}");
                return;
            }
        };
        let coded = kind != FrameKind::Metadata && !frame.sequence_header;
        frame.timestamp = self.timeline.map(kind, tag.timestamp, coded);
        if kind != FrameKind::Metadata {
            self.pass_frames += 1;
            if let Some(header) = self.headers.before(&frame) {
                self.pending.push_back(header);
            }
        }
        self.pending.push_back(frame);
    }
}

/// The ffmpeg remuxer for a non-FLV file.
fn spawn_ffmpeg(path: &Path, ffmpeg: &Path) -> Result<Input, FileError> {
    let spawn_error = |source| FileError::Spawn {
        path: path.to_owned(),
        ffmpeg: ffmpeg.to_owned(),
        source,
    };
    let Some(name) = path.to_str() else {
        return Err(spawn_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is not UTF-8",
        )));
    };
    let args = [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-stream_loop",
        "-1",
        "-i",
        &format!("file:{name}"),
        "-c",
        "copy",
        "-f",
        "flv",
        "pipe:1",
    ];
    let spec = ChildSpec {
        program: ffmpeg.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        label: format!("ffmpeg {name}"),
    };
    let mut child = SupervisedChild::spawn(&spec).map_err(spawn_error)?;
    let stdout = child
        .take_stdout()
        .ok_or_else(|| spawn_error(io::Error::other("no stdout pipe")))?;
    Ok(Input::Ffmpeg {
        reader: FlvReader::new(stdout),
        child,
    })
}

/// `path`, or the path of a `file://` URL (`file:///p`, `file://localhost/p`, `file:/p`), with its
/// percent escapes decoded.
fn local_path(input: &str) -> Result<PathBuf, FileError> {
    let bad = |reason| FileError::BadUrl {
        url: input.to_owned(),
        reason,
    };
    let Some(rest) = input
        .get(..5)
        .filter(|scheme| scheme.eq_ignore_ascii_case("file:"))
        .map(|_| &input[5..])
    else {
        if input.is_empty() {
            return Err(bad("empty path"));
        }
        return Ok(PathBuf::from(input));
    };
    let path = match rest.strip_prefix("//") {
        Some(after) if after.starts_with('/') => after,
        Some(after) => match after.get(..10) {
            Some(host) if host.eq_ignore_ascii_case("localhost/") => &after[9..],
            _ => return Err(bad("only local file:// URLs are supported (no host name)")),
        },
        None if rest.starts_with('/') => rest,
        None => return Err(bad("a file: URL needs an absolute path")),
    };
    // A URL's query and fragment are not part of the path (a literal '?' or '#' is %3F, %23).
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let bytes = percent_decode(path).ok_or_else(|| bad("invalid percent escape"))?;
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            // Two hex digits: at most 255.
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// Why [`FlvReader::next_tag`] stopped.
#[derive(Debug)]
enum ReadError {
    Io(io::Error),
    Flv {
        offset: u64,
        source: FlvError,
    },
    /// The input ended inside the file header or a tag; `offset` is where that starts.
    Partial {
        offset: u64,
    },
}

/// Incremental FLV reading from a file or a pipe, buffering at most one tag.
struct FlvReader<R> {
    reader: R,
    demuxer: FlvDemuxer,
    buf: BytesMut,
    chunk: Vec<u8>,
    /// Bytes read so far; minus what is buffered, the offset of the next tag.
    read: u64,
}

impl<R: AsyncRead + Unpin> FlvReader<R> {
    fn new(reader: R) -> FlvReader<R> {
        FlvReader {
            reader,
            demuxer: FlvDemuxer::new(MAX_TAG_SIZE),
            buf: BytesMut::new(),
            chunk: vec![0; READ_CHUNK],
            read: 0,
        }
    }

    fn offset(&self) -> u64 {
        self.read - self.buf.len() as u64
    }

    /// The next tag; `Ok(None)` at an end of input that falls between tags.
    async fn next_tag(&mut self) -> Result<Option<FlvTag>, ReadError> {
        loop {
            match self.demuxer.next_tag(&mut self.buf) {
                Ok(Some(tag)) => return Ok(Some(tag)),
                Ok(None) => {}
                Err(source) => {
                    return Err(ReadError::Flv {
                        offset: self.offset(),
                        source,
                    })
                }
            }
            // The demuxer rejects any header announcing more than max_buffered, so reading only
            // when it needs more keeps the buffer within that plus one chunk.
            debug_assert!(self.buf.len() <= self.demuxer.max_buffered());
            let n = self
                .reader
                .read(&mut self.chunk)
                .await
                .map_err(ReadError::Io)?;
            if n == 0 {
                // A missing final PreviousTagSize is tolerated: the demuxer skips it lazily.
                return if self.buf.is_empty() && self.demuxer.header().is_some() {
                    Ok(None)
                } else {
                    Err(ReadError::Partial {
                        offset: self.offset(),
                    })
                };
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
            self.read += n as u64;
        }
    }
}

/// Index of a frame kind in per-track arrays.
fn track(kind: FrameKind) -> usize {
    match kind {
        FrameKind::Audio => 0,
        FrameKind::Video => 1,
        FrameKind::Metadata => 2,
    }
}

/// Output timestamps: each pass rebased to start at `offset`, each track kept non-decreasing.
#[derive(Debug, Default)]
struct Timeline {
    /// Output timestamp of the pass's first tag.
    offset: u64,
    /// File timestamp of the pass's first tag.
    base: Option<u32>,
    /// The largest output timestamp so far, of any track.
    end: Option<u64>,
    /// Per track: last file timestamp of a coded frame in this pass, and the last positive
    /// distance between two of them.
    last_file_ts: [Option<u32>; 3],
    interval: [Option<u64>; 3],
    /// Per track: last output timestamp.
    last_out: [Option<u64>; 3],
}

impl Timeline {
    /// The output timestamp of a tag stamped `file_ts`; `coded` frames (not sequence headers nor
    /// metadata) measure the frame interval.
    fn map(&mut self, kind: FrameKind, file_ts: u32, coded: bool) -> u32 {
        let base = *self.base.get_or_insert(file_ts);
        // A tag a little before the first (audio leading video) lands on the pass start.
        let mut out = self.offset + u64::from(file_ts.saturating_sub(base));
        let t = track(kind);
        if coded {
            if let Some(prev) = self.last_file_ts[t] {
                if file_ts > prev {
                    self.interval[t] = Some(u64::from(file_ts - prev).min(MAX_INTERVAL_MS));
                }
            }
            self.last_file_ts[t] = Some(file_ts);
        }
        // A file whose timestamps go back would make players stall or drop; hold them instead.
        if let Some(last) = self.last_out[t] {
            out = out.max(last);
        }
        self.last_out[t] = Some(out);
        self.end = Some(self.end.map_or(out, |end| end.max(out)));
        // Like any RTMP timestamp, it wraps after 49.7 days.
        out as u32
    }

    /// Starts a new pass one frame interval after the last timestamp of any track.
    fn next_pass(&mut self) {
        let interval = self.interval[track(FrameKind::Video)]
            .or(self.interval[track(FrameKind::Audio)])
            .unwrap_or(DEFAULT_INTERVAL_MS);
        if let Some(end) = self.end {
            self.offset = end + interval;
        }
        self.base = None;
        self.last_file_ts = [None; 3];
    }
}

/// Real-time pacing: a frame is due when as much time has passed since the anchor (the first
/// frame) as its timestamp is past the anchor's.
#[derive(Debug, Default)]
struct Pacer {
    anchor: Option<(Instant, u64)>,
}

impl Pacer {
    /// When the frame stamped `ts` is due, given that it is `now`. Restarts the schedule at this
    /// frame when that is more than [`MAX_LATE`] ago or more than [`MAX_WAIT`] ahead.
    fn due(&mut self, now: Instant, ts: u32) -> Instant {
        let ts = u64::from(ts);
        if let Some((at, anchor_ts)) = self.anchor {
            // Before the anchor (after a wrap of the timestamps) counts as very late.
            let due = at + Duration::from_millis(ts.saturating_sub(anchor_ts));
            if due + MAX_LATE >= now && due <= now + MAX_WAIT {
                return due;
            }
        }
        self.anchor = Some((now, ts));
        now
    }
}

/// The last sequence header of each track, put back in front of the track's first coded frame of
/// a pass that had none of its own (a file whose headers are not at its start).
#[derive(Debug, Default)]
struct HeaderCache {
    last: [Option<Frame>; 2],
    seen_this_pass: [bool; 2],
}

impl HeaderCache {
    /// Notes `frame` (audio or video); returns a header to send before it, if needed.
    fn before(&mut self, frame: &Frame) -> Option<Frame> {
        let t = track(frame.kind);
        if t > 1 {
            return None;
        }
        if frame.sequence_header {
            self.last[t] = Some(frame.clone());
            self.seen_this_pass[t] = true;
            return None;
        }
        if self.seen_this_pass[t] {
            return None;
        }
        self.seen_this_pass[t] = true;
        let mut header = self.last[t].clone()?;
        header.timestamp = frame.timestamp;
        Some(header)
    }

    fn next_pass(&mut self) {
        self.seen_this_pass = [false; 2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rill_media::flv;

    const AVC_HEADER: &[u8] = &[0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f];
    const AVC_KEY: &[u8] = &[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65];
    const AVC_INTER: &[u8] = &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41];
    const AAC_HEADER: &[u8] = &[0xAF, 0x00, 0x12, 0x10];
    const AAC_FRAME: &[u8] = &[0xAF, 0x01, 0x21, 0x00];

    /// An FLV file: headers at 0, then video every 40 ms and audio every 20 ms up to `ms`.
    fn flv_file(ms: u32) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.extend_from_slice(&flv::file_header(true, true));
        flv::write_tag(TAG_TYPE_VIDEO, 0, AVC_HEADER, &mut out);
        flv::write_tag(TAG_TYPE_AUDIO, 0, AAC_HEADER, &mut out);
        for ts in (0..ms).step_by(20) {
            if ts % 40 == 0 {
                let body = if ts % 1000 == 0 { AVC_KEY } else { AVC_INTER };
                flv::write_tag(TAG_TYPE_VIDEO, ts, body, &mut out);
            }
            flv::write_tag(TAG_TYPE_AUDIO, ts, AAC_FRAME, &mut out);
        }
        out.to_vec()
    }

    fn write_temp(name: &str, data: &[u8]) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let path = path.to_str().unwrap().to_owned();
        (dir, path)
    }

    #[test]
    fn timeline_rebases_each_pass() {
        let mut t = Timeline::default();
        // A file starting at 1000 ms: video 1000, 1040; audio 1000, 1020, 1060.
        assert_eq!(t.map(FrameKind::Video, 1000, false), 0);
        assert_eq!(t.map(FrameKind::Video, 1000, true), 0);
        assert_eq!(t.map(FrameKind::Audio, 1000, true), 0);
        assert_eq!(t.map(FrameKind::Audio, 1020, true), 20);
        assert_eq!(t.map(FrameKind::Video, 1040, true), 40);
        assert_eq!(t.map(FrameKind::Audio, 1060, true), 60);
        t.next_pass();
        // Next pass: last timestamp (60) plus the video interval (40).
        assert_eq!(t.map(FrameKind::Video, 1000, false), 100);
        assert_eq!(t.map(FrameKind::Video, 1000, true), 100);
        assert_eq!(t.map(FrameKind::Audio, 1020, true), 120);
    }

    #[test]
    fn timeline_falls_back_to_audio_then_default_interval() {
        let mut t = Timeline::default();
        t.map(FrameKind::Audio, 0, true);
        t.map(FrameKind::Audio, 23, true);
        t.next_pass();
        assert_eq!(t.map(FrameKind::Audio, 0, true), 46);

        let mut t = Timeline::default();
        t.map(FrameKind::Video, 5, true);
        t.next_pass();
        assert_eq!(t.map(FrameKind::Video, 5, true), DEFAULT_INTERVAL_MS as u32);
        t.next_pass();
        assert_eq!(
            t.map(FrameKind::Video, 5, true),
            2 * DEFAULT_INTERVAL_MS as u32
        );
    }

    #[test]
    fn timeline_never_goes_back_per_track() {
        let mut t = Timeline::default();
        assert_eq!(t.map(FrameKind::Video, 100, true), 0);
        assert_eq!(t.map(FrameKind::Video, 300, true), 200);
        // Back in the file: held at 200.
        assert_eq!(t.map(FrameKind::Video, 200, true), 200);
        // Other tracks are independent; before the base lands on the pass start.
        assert_eq!(t.map(FrameKind::Audio, 50, true), 0);
        assert_eq!(t.map(FrameKind::Video, 340, true), 240);
    }

    #[test]
    fn timeline_caps_the_interval() {
        let mut t = Timeline::default();
        t.map(FrameKind::Video, 0, true);
        t.map(FrameKind::Video, 60_000, true);
        t.next_pass();
        assert_eq!(t.map(FrameKind::Video, 0, true), 61_000);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_schedule() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        assert_eq!(p.due(t0, 5000), t0);
        assert_eq!(p.due(t0, 5040), t0 + Duration::from_millis(40));
        // Interleaved audio slightly behind the last video frame: due in the past, but not late.
        let t1 = t0 + Duration::from_millis(60);
        assert_eq!(p.due(t1, 5020), t0 + Duration::from_millis(20));
        // The consumer stalled for 3 s: restart at this frame rather than burst.
        let t2 = t0 + Duration::from_secs(3);
        assert_eq!(p.due(t2, 5080), t2);
        assert_eq!(p.due(t2, 5120), t2 + Duration::from_millis(40));
        // A 10 s gap in the timestamps is not waited for.
        assert_eq!(p.due(t2, 15_120), t2);
    }

    #[test]
    fn header_cache_reinjects_missing_headers() {
        let frame = |body: &[u8], ts| {
            let kind = if body[0] == 0xAF {
                FrameKind::Audio
            } else {
                FrameKind::Video
            };
            Frame::from_flv_body(kind, ts, Bytes::copy_from_slice(body)).unwrap()
        };
        let mut c = HeaderCache::default();
        assert!(c.before(&frame(AVC_HEADER, 0)).is_none());
        assert!(c.before(&frame(AVC_KEY, 0)).is_none());
        c.next_pass();
        // This pass starts without a header: the cached one goes first, stamped like the frame.
        let header = c.before(&frame(AVC_KEY, 500)).unwrap();
        assert!(header.sequence_header);
        assert_eq!(header.timestamp, 500);
        assert!(c.before(&frame(AVC_INTER, 540)).is_none());
        // Audio never had one: nothing to add.
        assert!(c.before(&frame(AAC_FRAME, 500)).is_none());
    }

    #[test]
    fn file_urls() {
        let p = |s| local_path(s).map(|p| p.to_str().unwrap().to_owned());
        assert_eq!(p("/a/b.flv").unwrap(), "/a/b.flv");
        assert_eq!(p("rel/b.flv").unwrap(), "rel/b.flv");
        assert_eq!(p("file:///a/b%20c.flv").unwrap(), "/a/b c.flv");
        assert_eq!(p("FILE://localhost/a/b.mp4").unwrap(), "/a/b.mp4");
        assert_eq!(p("file:/a/b.flv?x=1#y").unwrap(), "/a/b.flv");
        for bad in ["", "file://host/a.flv", "file:a.flv", "file:///a%2"] {
            let err = local_path(bad).unwrap_err();
            assert!(matches!(err, FileError::BadUrl { .. }), "{bad}: {err}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn native_flv_loops_paced_with_headers() {
        let (_dir, path) = write_temp("a.flv", &flv_file(1000));
        let mut source = FileSource::open(&path, None).await.unwrap();
        let start = Instant::now();
        let mut frames = Vec::new();
        while frames.len() < 3 * 77 {
            frames.push(source.next_frame().await.unwrap().unwrap());
        }
        // 77 frames per pass: 2 headers, 25 video, 50 audio.
        for pass in 0..3 {
            let f = &frames[pass * 77..(pass + 1) * 77];
            assert!(f[0].sequence_header && f[0].kind == FrameKind::Video);
            assert!(f[1].sequence_header && f[1].kind == FrameKind::Audio);
            assert!(f[2].is_video_keyframe());
            // Pass n starts at n * (980 + 40).
            assert_eq!(f[0].timestamp, pass as u32 * 1020);
        }
        for kind in [FrameKind::Audio, FrameKind::Video] {
            let ts: Vec<u32> = frames
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| f.timestamp)
                .collect();
            assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{kind:?}: {ts:?}");
        }
        let last = frames.last().unwrap().timestamp;
        assert_eq!(start.elapsed(), Duration::from_millis(u64::from(last)));
    }

    #[tokio::test]
    async fn malformed_files_are_errors() {
        let good = flv_file(200);
        let cases: [(&str, Vec<u8>); 4] = [
            ("garbage", b"this is not an FLV file at all".to_vec()),
            ("header only", good[..20].to_vec()),
            ("bad tag type", {
                let mut v = good[..13].to_vec();
                v.extend_from_slice(&[0x42; 40]);
                v
            }),
            ("no frames", flv::file_header(true, true).to_vec()),
        ];
        for (what, data) in cases {
            let (_dir, path) = write_temp("bad.flv", &data);
            let err = FileSource::open(&path, None).await.err().unwrap();
            assert!(err.to_string().contains(&path), "{what}: {err}");
            match what {
                "garbage" | "bad tag type" => {
                    assert!(matches!(err, FileError::Malformed { .. }), "{what}: {err}")
                }
                "header only" => {
                    assert!(matches!(err, FileError::Truncated { .. }), "{what}: {err}")
                }
                _ => assert!(matches!(err, FileError::NoFrames { .. }), "{what}: {err}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_cut_inside_a_tag_plays_its_whole_tags() {
        let mut data = flv_file(200);
        data.truncate(data.len() - 3);
        let (_dir, path) = write_temp("cut.flv", &data);
        let mut source = FileSource::open(&path, None).await.unwrap();
        let mut headers = 0;
        for _ in 0..60 {
            let f = source.next_frame().await.unwrap().unwrap();
            headers += usize::from(f.sequence_header);
        }
        assert!(headers >= 4, "looped with headers: {headers}");
    }

    #[test]
    fn sources_can_move_between_tasks() {
        fn send<T: Send>() {}
        send::<FileSource>();
        send::<SupervisedChild>();
    }

    #[tokio::test]
    async fn missing_file_and_missing_ffmpeg() {
        let err = FileSource::open("/nonexistent/rill/x.flv", None)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, FileError::Open { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/rill/x.flv"));
        let (dir, path) = write_temp("a.mp4", b"not really");
        let err = FileSource::open(dir.path().to_str().unwrap(), None)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, FileError::Open { .. }), "{err}");
        let err = FileSource::open(&path, None).await.err().unwrap();
        assert!(matches!(err, FileError::NeedsFfmpeg { .. }), "{err}");
        assert!(err.to_string().contains("relay.ffmpeg"), "{err}");
    }
}
