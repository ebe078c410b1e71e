//! Recording one stream to files under `http.mediaroot`: MP4 (fragmented while recording, rewritten
//! with `moov` first when the recording ends), fragmented MP4 kept as is, or FLV.
//!
//! Crash safety: MP4 recordings are written as fragmented MP4 to `NAME.mp4.rec`, one fragment per
//! GOP (or second of audio), each synced to disk, so `kill -9` leaves a playable file and loses at
//! most the GOP in progress; [`recover`] renames what a crash left at the next start. Timestamps
//! that go backwards or jump are smoothed per track, so the file's timeline stays sane.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rill_media::{flv, Frame, FrameKind};
use rill_mux::fmp4::{Fmp4Writer, TrackRun};
use rill_mux::mp4::{Mp4Builder, SampleEntry};
use rill_mux::sample::{sample_from_frame, Sample, TrackKind};
use rill_mux::track::TrackInfo;

use crate::config::RecordFormat;

/// Extension of a fragmented MP4 recording in progress.
pub const IN_PROGRESS: &str = "rec";
/// A forward jump longer than this is closed up (a stalled encoder must not leave a gap).
const MAX_JUMP_MS: u64 = 5_000;

/// Why a recording stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot record this stream: {0}")]
    Mux(#[from] rill_mux::MuxError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Keeps one track's decode times increasing and without long gaps.
#[derive(Debug, Default, Clone, Copy)]
struct Timeline {
    last_in: Option<u64>,
    last_out: u64,
    gap: u64,
}

impl Timeline {
    fn map(&mut self, dts: u64) -> u64 {
        let out = match self.last_in {
            None => dts,
            Some(prev) if dts <= prev => self.last_out + 1,
            Some(prev) if dts - prev > MAX_JUMP_MS => self.last_out + self.gap.max(1),
            Some(prev) => {
                self.gap = dts - prev;
                self.last_out + (dts - prev)
            }
        };
        self.last_in = Some(dts);
        self.last_out = out;
        out
    }
}

/// One file being written.
pub enum Recording {
    Flv(FlvFile),
    Mp4(Box<Mp4File>),
}

impl Recording {
    /// Opens `path` (extension chosen by the format) and writes what is known so far.
    pub fn open(
        format: RecordFormat,
        base: &Path,
        header: &[Frame],
    ) -> Result<Recording, RecordError> {
        if let Some(dir) = base.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let ext = if format == RecordFormat::Flv {
            "flv"
        } else {
            "mp4"
        };
        let base = unique_base(base, ext);
        let base = base.as_path();
        match format {
            RecordFormat::Flv => Ok(Recording::Flv(FlvFile::open(
                base.with_extension("flv"),
                header,
            )?)),
            RecordFormat::Mp4 | RecordFormat::Fmp4 => {
                let mut f = Mp4File::open(base.with_extension("mp4"), format == RecordFormat::Mp4)?;
                for fr in header {
                    f.write(fr)?;
                }
                Ok(Recording::Mp4(Box::new(f)))
            }
        }
    }

    pub fn write(&mut self, frame: &Frame) -> Result<(), RecordError> {
        match self {
            Recording::Flv(f) => f.write(frame),
            Recording::Mp4(f) => f.write(frame),
        }
    }

    /// The final file's path.
    pub fn path(&self) -> &Path {
        match self {
            Recording::Flv(f) => &f.path,
            Recording::Mp4(f) => &f.path,
        }
    }

    /// Bytes written so far and the media duration in milliseconds.
    pub fn progress(&self) -> (u64, u64) {
        match self {
            Recording::Flv(f) => (f.bytes, f.duration()),
            Recording::Mp4(f) => (f.bytes, f.duration()),
        }
    }

    /// Finishes the file; returns its final path.
    pub fn finish(self) -> Result<PathBuf, RecordError> {
        match self {
            Recording::Flv(f) => f.finish(),
            Recording::Mp4(f) => (*f).finish(),
        }
    }
}

/// FLV: append-only, so every tag written is already a playable file.
pub struct FlvFile {
    path: PathBuf,
    /// Whether a media tag has been written: metadata comes only before.
    media_written: bool,
    out: BufWriter<File>,
    bytes: u64,
    first_ts: Option<u32>,
    last_ts: u32,
}

impl FlvFile {
    fn open(path: PathBuf, header: &[Frame]) -> Result<Self, RecordError> {
        let file = File::create(&path).map_err(io(&path))?;
        let mut out = BufWriter::new(file);
        let audio = header.iter().any(|f| f.kind == FrameKind::Audio);
        let video = header.iter().any(|f| f.kind == FrameKind::Video);
        let (audio, video) = if !audio && !video {
            (true, true)
        } else {
            (audio, video)
        };
        out.write_all(&flv::file_header(audio, video))
            .map_err(io(&path))?;
        let mut f = FlvFile {
            path,
            media_written: false,
            out,
            bytes: flv::FLV_HEADER_SIZE as u64,
            first_ts: None,
            last_ts: 0,
        };
        for fr in header {
            f.write(fr)?;
        }
        Ok(f)
    }

    fn write(&mut self, frame: &Frame) -> Result<(), RecordError> {
        if frame.kind == FrameKind::Metadata {
            if self.media_written {
                // A republish's metadata mid-file would reset players' view of the file.
                return Ok(());
            }
            let body = without_duration(&frame.payload);
            let tag = flv::tag_bytes(frame.kind.flv_tag_type(), 0, &body);
            self.out.write_all(&tag).map_err(io(&self.path))?;
            self.bytes += tag.len() as u64;
            return Ok(());
        }
        self.media_written = true;
        // FLV players expect the file to start near zero.
        let first = *self.first_ts.get_or_insert(frame.timestamp);
        let ts = if frame.kind == FrameKind::Metadata {
            0
        } else {
            frame.timestamp.saturating_sub(first)
        };
        self.last_ts = self.last_ts.max(ts);
        let tag = flv::tag_bytes(frame.kind.flv_tag_type(), ts, &frame.payload);
        self.out.write_all(&tag).map_err(io(&self.path))?;
        self.bytes += tag.len() as u64;
        if frame.is_video_keyframe() {
            self.out.flush().map_err(io(&self.path))?;
        }
        Ok(())
    }

    fn duration(&self) -> u64 {
        u64::from(self.last_ts)
    }

    fn finish(mut self) -> Result<PathBuf, RecordError> {
        self.out.flush().map_err(io(&self.path))?;
        self.out.get_ref().sync_all().map_err(io(&self.path))?;
        Ok(self.path)
    }
}

/// The publisher's `onMetaData` without `duration` and `filesize`, which describe its input, not
/// this file (players then take the duration from the timestamps).
fn without_duration(payload: &Bytes) -> Bytes {
    use rill_rtmp::amf0::{self, Amf0Value};
    let Ok(mut values) = amf0::decode_all(payload) else {
        return payload.clone();
    };
    for v in &mut values {
        if let Amf0Value::EcmaArray(props) | Amf0Value::Object(props) = v {
            props.retain(|(k, _)| k != "duration" && k != "filesize");
        }
    }
    Bytes::from(amf0::encode_all(&values))
}

/// Where a chunk's bytes lie in the in-progress file.
struct ChunkRef {
    track: usize,
    entries: Vec<SampleEntry>,
    end_dts: u64,
    offset: u64,
    len: u64,
}

/// MP4: fragmented MP4 in `NAME.mp4.rec` while recording.
pub struct Mp4File {
    path: PathBuf,
    rec_path: PathBuf,
    faststart: bool,
    out: Option<File>,
    video: Option<TrackInfo>,
    audio: Option<TrackInfo>,
    writer: Option<Fmp4Writer>,
    pending: Vec<Sample>,
    timelines: [Timeline; 2],
    chunks: Vec<ChunkRef>,
    bytes: u64,
    first_dts: Option<u64>,
    last_dts: u64,
}

impl Mp4File {
    fn open(path: PathBuf, faststart: bool) -> Result<Self, RecordError> {
        let rec_path = path.with_extension(format!("mp4.{IN_PROGRESS}"));
        Ok(Mp4File {
            path,
            rec_path,
            faststart,
            out: None,
            video: None,
            audio: None,
            writer: None,
            pending: Vec::new(),
            timelines: [Timeline::default(); 2],
            chunks: Vec::new(),
            bytes: 0,
            first_dts: None,
            last_dts: 0,
        })
    }

    fn write(&mut self, frame: &Frame) -> Result<(), RecordError> {
        if frame.kind == FrameKind::Metadata {
            return Ok(());
        }
        if frame.sequence_header {
            // A new configuration once the file has started cannot go into the same tracks.
            if self.writer.is_none() {
                if let Ok(t) = TrackInfo::from_sequence_header(frame) {
                    match t.kind {
                        TrackKind::Video => self.video = Some(t),
                        TrackKind::Audio => self.audio = Some(t),
                    }
                }
            }
            return Ok(());
        }
        if frame.kind == FrameKind::Audio && self.audio.is_none() && self.writer.is_none() {
            self.audio = TrackInfo::audio(frame).ok();
        }
        let Some(mut sample) = sample_from_frame(frame) else {
            return Ok(());
        };
        let has_track = match sample.kind {
            TrackKind::Video => self.video.is_some(),
            TrackKind::Audio => self.audio.is_some(),
        };
        if !has_track {
            return Ok(());
        }
        if self.writer.is_none() {
            // Start with a keyframe (or with audio when there is no video).
            if self.video.is_some() && !(sample.kind == TrackKind::Video && sample.keyframe) {
                return Ok(());
            }
            self.start()?;
        }
        let idx = usize::from(sample.kind == TrackKind::Audio);
        sample.dts_ms = self.timelines[idx].map(sample.dts_ms);
        self.first_dts.get_or_insert(sample.dts_ms);
        self.last_dts = self.last_dts.max(sample.dts_ms);
        let cut = if self.video.is_some() {
            sample.kind == TrackKind::Video && sample.keyframe
        } else {
            self.pending
                .first()
                .is_some_and(|p| sample.dts_ms >= p.dts_ms + 1000)
        };
        if cut && !self.pending.is_empty() {
            self.flush(Some(sample.dts_ms))?;
        }
        self.pending.push(sample);
        Ok(())
    }

    fn tracks(&self) -> Vec<TrackInfo> {
        self.video
            .iter()
            .chain(self.audio.iter())
            .cloned()
            .collect()
    }

    fn start(&mut self) -> Result<(), RecordError> {
        let writer = Fmp4Writer::new(self.tracks())?;
        let mut file = File::create(&self.rec_path).map_err(io(&self.rec_path))?;
        let init = writer.init_segment();
        file.write_all(&init).map_err(io(&self.rec_path))?;
        self.bytes = init.len() as u64;
        self.out = Some(file);
        self.writer = Some(writer);
        Ok(())
    }

    /// Writes the pending samples as one fragment and syncs it to disk.
    fn flush(&mut self, end: Option<u64>) -> Result<(), RecordError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut by: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        for s in pending {
            by[usize::from(s.kind == TrackKind::Audio)].push(s);
        }
        let mut plan = Vec::new();
        let mut track = 0;
        for (k, present) in [(0, self.video.is_some()), (1, self.audio.is_some())] {
            if !present {
                continue;
            }
            if let Some(last) = by[k].last().map(|s| s.dts_ms) {
                let gap = self.timelines[k].gap.max(1);
                plan.push((track, k, end.filter(|e| *e > last).unwrap_or(last + gap)));
            }
            track += 1;
        }
        let runs: Vec<TrackRun<'_>> = plan
            .iter()
            .map(|&(track, k, end_dts_ms)| TrackRun {
                track,
                samples: &by[k],
                end_dts_ms,
            })
            .collect();
        let (Some(writer), Some(out)) = (self.writer.as_mut(), self.out.as_mut()) else {
            return Ok(());
        };
        let frag = writer.fragment(&runs)?;
        let data_len: u64 = runs
            .iter()
            .flat_map(|r| r.samples.iter())
            .map(|s| s.data.len() as u64)
            .sum();
        let mut offset = self.bytes + frag.len() as u64 - data_len;
        for r in &runs {
            let len: u64 = r.samples.iter().map(|s| s.data.len() as u64).sum();
            let entries = r
                .samples
                .iter()
                .map(|s| SampleEntry {
                    dts_ms: s.dts_ms,
                    cts_ms: s.cts_ms,
                    size: s.data.len() as u32,
                    sync: s.keyframe,
                })
                .collect();
            self.chunks.push(ChunkRef {
                track: r.track,
                entries,
                end_dts: r.end_dts_ms,
                offset,
                len,
            });
            offset += len;
        }
        out.write_all(&frag).map_err(io(&self.rec_path))?;
        out.sync_data().map_err(io(&self.rec_path))?;
        self.bytes += frag.len() as u64;
        Ok(())
    }

    fn duration(&self) -> u64 {
        self.last_dts
            .saturating_sub(self.first_dts.unwrap_or(self.last_dts))
    }

    fn finish(mut self) -> Result<PathBuf, RecordError> {
        self.flush(None)?;
        if self.out.is_none() {
            // Nothing was ever recorded: no file.
            return Ok(self.path);
        }
        if !self.faststart {
            std::fs::rename(&self.rec_path, &self.path).map_err(io(&self.path))?;
            return Ok(self.path);
        }
        let mut builder = Mp4Builder::new(self.tracks())?;
        for c in &self.chunks {
            builder.add_chunk(c.track, &c.entries, c.end_dts);
        }
        let header = builder.header()?;
        let tmp = self.path.with_extension("mp4.tmp");
        write_faststart(&tmp, &header, &self.rec_path, &self.chunks).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        std::fs::remove_file(&self.rec_path).map_err(io(&self.rec_path))?;
        Ok(self.path)
    }
}

/// Writes `header` then every chunk's bytes copied from the fragmented file, and syncs.
fn write_faststart(
    dest: &Path,
    header: &Bytes,
    src: &Path,
    chunks: &[ChunkRef],
) -> std::io::Result<()> {
    let mut input = File::open(src)?;
    let mut out = BufWriter::new(File::create(dest)?);
    out.write_all(header)?;
    let mut buf = vec![0u8; 1 << 16];
    for c in chunks {
        input.seek(SeekFrom::Start(c.offset))?;
        let mut left = c.len;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            input.read_exact(&mut buf[..n])?;
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
    out.flush()?;
    out.get_ref().sync_all()
}

/// After a crash: every `*.mp4.rec` under `root` is a playable fragmented MP4; give it its name.
pub fn recover(root: &Path) -> Vec<PathBuf> {
    let mut recovered = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == IN_PROGRESS) {
                let target = p.with_extension("");
                if std::fs::rename(&p, &target).is_ok() {
                    recovered.push(target);
                }
            }
        }
    }
    recovered
}

/// `base`, or `base-1`, `base-2`, ... if a file of that name (final or in progress) exists, so a
/// recording never overwrites another one started in the same second.
fn unique_base(base: &Path, ext: &str) -> PathBuf {
    let taken = |b: &Path| {
        b.with_extension(ext).exists() || b.with_extension(format!("{ext}.{IN_PROGRESS}")).exists()
    };
    if !taken(base) {
        return base.to_path_buf();
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (1..)
        .map(|n| base.with_file_name(format!("{name}-{n}")))
        .find(|b| !taken(b))
        .unwrap_or_else(|| base.to_path_buf())
}

/// `mediaroot/app/stream/YYYY-MM-DD-HH-mm-ss` (UTC), without extension.
pub fn default_base(mediaroot: &Path, app: &str, stream: &str, unix_ms: u64) -> PathBuf {
    let iso = rill_mux::hls::iso8601_utc(unix_ms);
    let stamp: String = iso
        .chars()
        .take(19)
        .map(|c| if c == 'T' || c == ':' { '-' } else { c })
        .collect();
    mediaroot.join(app).join(stream).join(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_smooths_backwards_and_jumps() {
        let mut t = Timeline::default();
        assert_eq!(t.map(1000), 1000);
        assert_eq!(t.map(1033), 1033);
        assert_eq!(t.map(1020), 1034, "backwards becomes just after");
        assert_eq!(t.map(1066), 1080);
        assert_eq!(t.map(60_000), 1126, "a long jump is closed up to one frame");
        assert_eq!(t.map(60_033), 1159);
    }

    #[test]
    fn names_and_recovery() {
        let base = default_base(Path::new("/m"), "live", "cam", 1_503_458_721_000);
        assert_eq!(base, PathBuf::from("/m/live/cam/2017-08-23-03-25-21"));
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("live/cam");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("a.mp4.rec"), b"x").unwrap();
        std::fs::write(sub.join("b.mp4"), b"y").unwrap();
        let got = recover(dir.path());
        assert_eq!(got, vec![sub.join("a.mp4")]);
        assert!(sub.join("a.mp4").exists() && !sub.join("a.mp4.rec").exists());
    }
}
