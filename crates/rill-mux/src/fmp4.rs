//! Fragmented MP4 (CMAF) writer: an init segment (`ftyp` + `moov` with `mvex`) and fragments
//! (`moof` + `mdat`), for H.264, HEVC, AV1, VP9, AAC, Opus and MP3 tracks. Used for HLS fMP4
//! segments and LL-HLS parts, and DASH.
//!
//! The boxes shared with the progressive writer (`ftyp`, `mvhd`, `trak` down to the sample entries)
//! come from `boxes`. Every track and run is validated before a byte is written, so sizes always
//! fit their 32-bit fields.

use bytes::Bytes;

use crate::boxes::{
    composition_offset, duration_ticks, entries, ticks, write_ftyp, write_mvhd, write_trak,
    BoxWriter, Entry, Trak,
};
use crate::sample::{Sample, TrackKind};
use crate::track::TrackInfo;
use crate::MuxError;

pub use crate::boxes::{dops_from_opus_head, MAX_CONFIG_LEN, MAX_TRACKS};

/// Samples of one track for one fragment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    /// Index into the writer's tracks (track id is index + 1).
    pub track: usize,
    /// In decode order.
    pub samples: &'a [Sample],
    /// Decode time (ms) where the next fragment's first sample of this track starts: gives the
    /// last sample its duration.
    pub end_dts_ms: u64,
}

/// `trun` sample flags of a sync sample: sample_depends_on = 2 (depends on no other sample).
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `trun` sample flags of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// `tfhd` flag: data offsets are relative to the start of the enclosing `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x001;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTO: u32 = 0x800;

/// Writes an fMP4 presentation.
pub struct Fmp4Writer {
    tracks: Vec<TrackInfo>,
    entries: Vec<Entry>,
    sequence: u32,
}

impl Fmp4Writer {
    pub fn new(tracks: Vec<TrackInfo>) -> Result<Fmp4Writer, MuxError> {
        let entries = entries(&tracks)?;
        Ok(Fmp4Writer {
            tracks,
            entries,
            sequence: 0,
        })
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// `ftyp` + `moov`.
    pub fn init_segment(&self) -> Bytes {
        let mut w = BoxWriter::default();
        write_ftyp(
            &mut w,
            b"iso6",
            0,
            &[b"iso6", b"cmfc", b"mp41", b"iso5", b"dash"],
        );
        let moov = w.start(b"moov");
        // Durations are unknown (0): the presentation is fragmented.
        write_mvhd(&mut w, 0, self.tracks.len());
        for (i, (track, entry)) in self.tracks.iter().zip(&self.entries).enumerate() {
            let trak = Trak {
                id: i as u32 + 1,
                track,
                entry,
                duration: 0,
                media_duration: 0,
            };
            // Empty sample tables: the samples are in the fragments.
            write_trak(&mut w, &trak, |_| {}, write_empty_tables);
        }
        let mvex = w.start(b"mvex");
        for i in 0..self.tracks.len() {
            let trex = w.full(b"trex", 0, 0);
            w.u32(i as u32 + 1);
            w.u32(1); // default_sample_description_index
            w.u32(0); // default_sample_duration
            w.u32(0); // default_sample_size
            w.u32(0); // default_sample_flags
            w.end(trex);
        }
        w.end(mvex);
        w.end(moov);
        Bytes::from(w.buf)
    }

    /// One `moof` + `mdat` with the given runs; sequence numbers increase by one per call.
    pub fn fragment(&mut self, runs: &[TrackRun<'_>]) -> Result<Bytes, MuxError> {
        let mut plans = Vec::with_capacity(runs.len());
        // Everything is checked and timed before writing, so an error leaves no state behind.
        let mut payload: u64 = 0;
        for run in runs {
            if run.samples.is_empty() {
                continue;
            }
            let track = self
                .tracks
                .get(run.track)
                .ok_or(MuxError::Malformed("track index out of range"))?;
            let plan = plan_run(track, run)?;
            payload = payload.saturating_add(plan.bytes);
            plans.push((run.track, plan, run.samples));
        }
        if plans.is_empty() {
            return Err(MuxError::Malformed("fragment without samples"));
        }
        let moof_len: u64 = 8
            + 16
            + plans
                .iter()
                .map(|(_, p, _)| {
                    let entry = if p.cto.is_some() { 16 } else { 12 };
                    8 + 16 + 20 + 20 + entry * p.durations.len() as u64
                })
                .sum::<u64>();
        // data_offset is a signed 32-bit field, so the whole fragment stays below 2 GiB; that
        // also keeps the mdat size within its 32-bit header.
        let total = moof_len.saturating_add(8).saturating_add(payload);
        if total > i32::MAX as u64 {
            return Err(MuxError::Malformed("fragment larger than 2 GiB"));
        }
        let sequence = self.sequence.wrapping_add(1);

        let mut w = BoxWriter::default();
        w.buf.reserve(total as usize);
        let moof = w.start(b"moof");
        let mfhd = w.full(b"mfhd", 0, 0);
        w.u32(sequence);
        w.end(mfhd);
        let mut offsets = Vec::with_capacity(plans.len());
        for (track, plan, _) in &plans {
            let traf = w.start(b"traf");
            let tfhd = w.full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
            w.u32(*track as u32 + 1);
            w.end(tfhd);
            let tfdt = w.full(b"tfdt", 1, 0);
            w.u64(plan.base_time);
            w.end(tfdt);
            let mut flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS;
            let version = if plan.cto.is_some() {
                flags |= TRUN_CTO;
                1
            } else {
                0
            };
            let trun = w.full(b"trun", version, flags);
            w.u32(plan.durations.len() as u32);
            offsets.push(w.buf.len());
            w.u32(0); // data_offset, patched once the moof size is known
            for (i, &duration) in plan.durations.iter().enumerate() {
                w.u32(duration);
                w.u32(plan.sizes.get(i).copied().unwrap_or(0));
                w.u32(plan.flags.get(i).copied().unwrap_or(SAMPLE_FLAGS_SYNC));
                if let Some(cto) = &plan.cto {
                    w.u32(cto.get(i).copied().unwrap_or(0) as u32);
                }
            }
            w.end(trun);
            w.end(traf);
        }
        w.end(moof);

        let mut data_offset = w.buf.len() as u64 + 8;
        for ((_, plan, _), at) in plans.iter().zip(offsets) {
            // Checked against i32::MAX above.
            w.patch_u32(at, data_offset as u32);
            data_offset += plan.bytes;
        }
        let mdat = w.start(b"mdat");
        for s in plans.iter().flat_map(|(_, _, samples)| samples.iter()) {
            w.put(&s.data);
        }
        w.end(mdat);
        self.sequence = sequence;
        Ok(Bytes::from(w.buf))
    }
}

/// A run's timing and sizes, computed before anything is written.
struct RunPlan {
    base_time: u64,
    durations: Vec<u32>,
    sizes: Vec<u32>,
    flags: Vec<u32>,
    /// Composition time offsets (video tracks only).
    cto: Option<Vec<i32>>,
    bytes: u64,
}

fn plan_run(track: &TrackInfo, run: &TrackRun<'_>) -> Result<RunPlan, MuxError> {
    let scale = u64::from(track.timescale);
    let video = track.kind == TrackKind::Video;
    let n = run.samples.len();
    let mut plan = RunPlan {
        base_time: 0,
        durations: Vec::with_capacity(n),
        sizes: Vec::with_capacity(n),
        flags: Vec::with_capacity(n),
        cto: video.then(|| Vec::with_capacity(n)),
        bytes: 0,
    };
    for (i, s) in run.samples.iter().enumerate() {
        if s.kind != track.kind {
            return Err(MuxError::Malformed("sample kind does not match its track"));
        }
        let next_ms = run.samples.get(i + 1).map_or(run.end_dts_ms, |n| n.dts_ms);
        if i == 0 {
            plan.base_time = ticks(s.dts_ms, scale);
        }
        plan.durations
            .push(duration_ticks(s.dts_ms, next_ms, scale)?);
        let size = u32::try_from(s.data.len())
            .map_err(|_| MuxError::Malformed("sample larger than 4 GiB"))?;
        plan.sizes.push(size);
        plan.bytes += u64::from(size);
        // Every AAC, Opus and MP3 frame is a sync sample, whatever the caller marked.
        plan.flags.push(if s.keyframe || !video {
            SAMPLE_FLAGS_SYNC
        } else {
            SAMPLE_FLAGS_NON_SYNC
        });
        if let Some(cto) = &mut plan.cto {
            cto.push(composition_offset(s.dts_ms, s.cts_ms, scale)?);
        }
    }
    Ok(plan)
}

/// The sample tables of an init segment, which has no samples.
fn write_empty_tables(w: &mut BoxWriter) {
    for name in [b"stts", b"stsc", b"stco"] {
        let b = w.full(name, 0, 0);
        w.u32(0);
        w.end(b);
    }
    let stsz = w.full(b"stsz", 0, 0);
    w.u32(0); // sample_size
    w.u32(0); // sample_count
    w.end(stsz);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::signed_ticks;
    use crate::boxes::testing::*;
    use proptest::prelude::*;
    use rill_media::{AudioCodec, VideoCodec};

    fn stsd_entry<'a>(init: &'a [u8], track: usize) -> Bx<'a> {
        let top = boxes(init, 0);
        let trak = all(&top[1], b"trak")[track].clone();
        let stsd = path(&trak, "mdia/minf/stbl/stsd");
        assert_eq!(be32(stsd.payload, 4), 1);
        children(&stsd, 8).remove(0)
    }

    // ---- init segment ------------------------------------------------------------------------

    #[test]
    fn init_segment_structure() {
        let w = Fmp4Writer::new(vec![
            video(VideoCodec::Avc, AVCC),
            audio(AudioCodec::Aac, ASC, 44_100, 2),
        ])
        .unwrap();
        assert_eq!(w.tracks().len(), 2);
        let init = w.init_segment();
        let top = boxes(&init, 0);
        assert_eq!(top.len(), 2);
        assert_eq!(&top[0].name, b"ftyp");
        assert_eq!(&top[0].payload[..8], b"iso6\0\0\0\0");
        assert!(top[0].payload[8..].chunks(4).any(|c| c == b"cmfc"));
        assert!(top[0].payload[8..].chunks(4).any(|c| c == b"iso6"));
        let moov = &top[1];
        assert_eq!(&moov.name, b"moov");
        check_nesting(moov);
        let names: Vec<_> = children(moov, 0).iter().map(|b| show(&b.name)).collect();
        assert_eq!(names, ["mvhd", "trak", "trak", "mvex"]);
        let mvhd = child(moov, b"mvhd");
        assert_eq!(mvhd.payload.len(), 100);
        assert_eq!(be32(mvhd.payload, 12), 1000);
        assert_eq!(be32(mvhd.payload, 96), 3); // next_track_ID

        let traks = all(moov, b"trak");
        for (i, trak) in traks.iter().enumerate() {
            let tkhd = child(trak, b"tkhd");
            assert_eq!(be32(tkhd.payload, 0), 3); // version 0, enabled | in_movie
            assert_eq!(be32(tkhd.payload, 12), i as u32 + 1);
            assert_eq!(tkhd.payload.len(), 84);
        }
        let tkhd = child(&traks[0], b"tkhd");
        assert_eq!(
            (be32(tkhd.payload, 76), be32(tkhd.payload, 80)),
            (640 << 16, 360 << 16)
        );
        assert_eq!(be16(tkhd.payload, 36), 0); // video volume
        assert_eq!(be16(child(&traks[1], b"tkhd").payload, 36), 0x0100);

        let mdhd = path(&traks[0], "mdia/mdhd");
        assert_eq!(be32(mdhd.payload, 12), 90_000);
        assert_eq!(be16(mdhd.payload, 20), 0x55C4);
        assert_eq!(be32(path(&traks[1], "mdia/mdhd").payload, 12), 44_100);
        assert_eq!(&path(&traks[0], "mdia/hdlr").payload[8..12], b"vide");
        assert_eq!(&path(&traks[1], "mdia/hdlr").payload[8..12], b"soun");
        assert_eq!(
            path(&traks[0], "mdia/minf/vmhd").payload,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(path(&traks[1], "mdia/minf/smhd").payload, &[0; 8]);
        let url = path(&traks[0], "mdia/minf/dinf/dref/url ");
        assert_eq!(url.payload, &[0, 0, 0, 1]);
        let stbl = path(&traks[0], "mdia/minf/stbl");
        let names: Vec<_> = children(&stbl, 0).iter().map(|b| show(&b.name)).collect();
        assert_eq!(names, ["stsd", "stts", "stsc", "stco", "stsz"]);
        assert_eq!(child(&stbl, b"stts").payload, &[0; 8]);
        assert_eq!(child(&stbl, b"stsz").payload, &[0; 12]);

        let avc1 = stsd_entry(&init, 0);
        assert_eq!(&avc1.name, b"avc1");
        assert_eq!(be16(avc1.payload, 6), 1); // data_reference_index
        assert_eq!((be16(avc1.payload, 24), be16(avc1.payload, 26)), (640, 360));
        assert_eq!(be16(avc1.payload, 74), 0x18);
        assert_eq!(child_with_skip(&avc1, 78, b"avcC").payload, AVCC);
        let mp4a = stsd_entry(&init, 1);
        assert_eq!(&mp4a.name, b"mp4a");
        assert_eq!(be16(mp4a.payload, 16), 2); // channelcount
        assert_eq!(be16(mp4a.payload, 18), 16);
        assert_eq!(be32(mp4a.payload, 24), 44_100 << 16);

        let trex = all(&child(moov, b"mvex"), b"trex");
        assert_eq!(trex.len(), 2);
        assert_eq!(
            trex[1].payload,
            &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn esds_bytes_for_aac_and_mp3() {
        let w = Fmp4Writer::new(vec![audio(AudioCodec::Aac, ASC, 44_100, 2)]).unwrap();
        let init = w.init_segment();
        let esds = child_with_skip(&stsd_entry(&init, 0), 28, b"esds");
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,
            0x03, 25, 0, 0, 0,
            0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0x05, 2, 0x12, 0x10,
            0x06, 1, 2,
        ];
        assert_eq!(esds.payload, expected);

        let w = Fmp4Writer::new(vec![audio(AudioCodec::Mp3, b"", 44_100, 2)]).unwrap();
        let init = w.init_segment();
        let esds = child_with_skip(&stsd_entry(&init, 0), 28, b"esds");
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,
            0x03, 21, 0, 0, 0,
            0x04, 13, 0x6B, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0x06, 1, 2,
        ];
        assert_eq!(esds.payload, expected);
    }

    #[test]
    fn esds_long_asc_uses_multibyte_lengths() {
        let asc = vec![0x12; 200];
        let w = Fmp4Writer::new(vec![audio(AudioCodec::Aac, &asc, 48_000, 2)]).unwrap();
        let init = w.init_segment();
        let esds = child_with_skip(&stsd_entry(&init, 0), 28, b"esds");
        let p = esds.payload;
        // ES_Descriptor: 3 + DCD (1 + 2 + 13 + DSI (1 + 2 + 200)) + SL (3) = 225.
        assert_eq!(&p[4..7], &[0x03, 0x81, 225 - 128]);
        assert_eq!(&p[10..13], &[0x04, 0x81, 216 - 128]);
        assert_eq!(&p[26..29], &[0x05, 0x81, 200 - 128]);
        assert_eq!(&p[29..229], &asc[..]);
        assert_eq!(&p[229..], &[0x06, 1, 2]);
    }

    #[test]
    fn opus_entry_and_dops() {
        let w = Fmp4Writer::new(vec![audio(AudioCodec::Opus, OPUS_HEAD, 48_000, 2)]).unwrap();
        let init = w.init_segment();
        let entry = stsd_entry(&init, 0);
        assert_eq!(&entry.name, b"Opus");
        assert_eq!(be16(entry.payload, 16), 2);
        assert_eq!(be32(entry.payload, 24), 48_000 << 16);
        let dops = child_with_skip(&entry, 28, b"dOps");
        // Pre-skip 312 (0x0138), rate 48000, gain -2, family 0, all now big-endian.
        assert_eq!(
            dops.payload,
            &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0xff, 0xfe, 0]
        );
    }

    #[test]
    fn dops_with_mapping_table_and_bad_heads() {
        let mut head = b"OpusHead\x01\x03\x00\x00\x44\xac\x00\x00\x00\x00\x01".to_vec();
        head.extend_from_slice(&[2, 1, 0, 2, 1]);
        let (dops, ch) = dops_from_opus_head(&head).unwrap();
        assert_eq!(ch, 3);
        assert_eq!(dops, [0, 3, 0, 0, 0, 0, 0xac, 0x44, 0, 0, 1, 2, 1, 0, 2, 1]);
        for n in 0..head.len() {
            assert!(dops_from_opus_head(&head[..n]).is_err(), "length {n}");
        }
        assert!(
            dops_from_opus_head(b"OpusTags\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00").is_err()
        );
        assert!(
            dops_from_opus_head(b"OpusHead\x01\x00\x38\x01\x80\xbb\x00\x00\x00\x00\x00").is_err()
        );
    }

    #[test]
    fn other_video_entries() {
        let hvcc = [1u8, 2, 3, 4, 5];
        let av1c = [0x81u8, 0x08, 0x0c, 0x00];
        let vpcc = [0u8, 0x0b, 0x82, 2, 2, 2, 0, 0];
        let mut vpcc_full = vec![1, 0, 0, 0];
        vpcc_full.extend_from_slice(&vpcc);
        for (codec, config, name, cfg, payload) in [
            (VideoCodec::Hevc, &hvcc[..], b"hvc1", b"hvcC", hvcc.to_vec()),
            (VideoCodec::Av1, &av1c[..], b"av01", b"av1C", av1c.to_vec()),
            (
                VideoCodec::Vp9,
                &vpcc[..],
                b"vp09",
                b"vpcC",
                vpcc_full.clone(),
            ),
            (
                VideoCodec::Vp9,
                &vpcc_full[..],
                b"vp09",
                b"vpcC",
                vpcc_full.clone(),
            ),
        ] {
            let w = Fmp4Writer::new(vec![video(codec, config)]).unwrap();
            let init = w.init_segment();
            check_nesting(&boxes(&init, 0)[1]);
            let entry = stsd_entry(&init, 0);
            assert_eq!(&entry.name, name);
            assert_eq!(child_with_skip(&entry, 78, cfg).payload, &payload[..]);
        }
        assert_eq!(
            Fmp4Writer::new(vec![video(VideoCodec::Vp9, &[0, 1, 2])]).err(),
            Some(MuxError::Malformed("vpcC"))
        );
    }

    #[test]
    fn rejects_bad_tracks() {
        assert!(Fmp4Writer::new(vec![]).is_err());
        assert_eq!(
            Fmp4Writer::new(vec![video(VideoCodec::Vp6, b"")]).err(),
            Some(MuxError::UnsupportedCodec("vp6"))
        );
        assert_eq!(
            Fmp4Writer::new(vec![audio(AudioCodec::Speex, b"", 16_000, 1)]).err(),
            Some(MuxError::UnsupportedCodec("speex"))
        );
        assert!(Fmp4Writer::new(vec![video(VideoCodec::Avc, b"")]).is_err());
        assert!(Fmp4Writer::new(vec![audio(AudioCodec::Aac, b"", 44_100, 2)]).is_err());
        let mut t = video(VideoCodec::Avc, AVCC);
        t.kind = TrackKind::Audio;
        assert!(Fmp4Writer::new(vec![t]).is_err());
        let mut t = video(VideoCodec::Avc, AVCC);
        t.timescale = 0;
        assert!(Fmp4Writer::new(vec![t]).is_err());
        let t = video(VideoCodec::Avc, &vec![0; MAX_CONFIG_LEN + 1]);
        assert!(Fmp4Writer::new(vec![t]).is_err());
        let many = vec![audio(AudioCodec::Mp3, b"", 44_100, 2); MAX_TRACKS + 1];
        assert!(Fmp4Writer::new(many).is_err());
    }

    #[test]
    fn odd_dimensions_and_rates_do_not_panic() {
        let mut v = video(VideoCodec::Avc, AVCC);
        v.width = u32::MAX;
        v.height = 70_000;
        let mut a = audio(AudioCodec::Mp3, b"", 96_000, 0);
        a.timescale = 96_000;
        let init = Fmp4Writer::new(vec![v, a]).unwrap().init_segment();
        check_nesting(&boxes(&init, 0)[1]);
        let tkhd = path(&all(&boxes(&init, 0)[1], b"trak")[0], "tkhd");
        assert_eq!(be32(tkhd.payload, 76), 0xFFFF << 16);
        let mp4a = stsd_entry(&init, 1);
        assert_eq!(be16(mp4a.payload, 16), 1);
        assert_eq!(be32(mp4a.payload, 24), 0);
    }

    // ---- fragments ---------------------------------------------------------------------------

    struct Trun {
        track_id: u32,
        base: u64,
        data_offset: usize,
        /// (duration, size, flags, composition offset)
        entries: Vec<(u32, u32, u32, i32)>,
    }

    /// Parses a fragment: sequence number and each traf's tfhd/tfdt/trun.
    fn parse_fragment(frag: &[u8]) -> (u32, Vec<Trun>, Bx<'_>) {
        let top = boxes(frag, 0);
        assert_eq!(top.len(), 2);
        let (moof, mdat) = (&top[0], top[1].clone());
        assert_eq!((&moof.name, &mdat.name), (b"moof", b"mdat"));
        assert_eq!(moof.start, 0);
        check_nesting(moof);
        let mfhd = child(moof, b"mfhd");
        assert_eq!(mfhd.payload.len(), 8);
        let seq = be32(mfhd.payload, 4);
        let mut runs = Vec::new();
        for traf in all(moof, b"traf") {
            let names: Vec<_> = children(&traf, 0).iter().map(|b| show(&b.name)).collect();
            assert_eq!(names, ["tfhd", "tfdt", "trun"]);
            let tfhd = child(&traf, b"tfhd");
            assert_eq!(be32(tfhd.payload, 0), TFHD_DEFAULT_BASE_IS_MOOF);
            assert_eq!(tfhd.payload.len(), 8);
            let tfdt = child(&traf, b"tfdt");
            assert_eq!(tfdt.payload[0], 1);
            assert_eq!(tfdt.payload.len(), 12);
            let base = u64::from_be_bytes(tfdt.payload[4..12].try_into().unwrap());
            let trun = child(&traf, b"trun").payload;
            let vf = be32(trun, 0);
            let cto = vf & TRUN_CTO != 0;
            assert_eq!(vf & 0xFF_FFFF & !TRUN_CTO, 0x701);
            assert_eq!(vf >> 24, u32::from(cto));
            let n = be32(trun, 4) as usize;
            let data_offset = be32(trun, 8) as usize;
            let per = if cto { 16 } else { 12 };
            assert_eq!(trun.len(), 12 + n * per);
            let entries = (0..n)
                .map(|i| {
                    let e = 12 + i * per;
                    let c = if cto { be32(trun, e + 12) as i32 } else { 0 };
                    (be32(trun, e), be32(trun, e + 4), be32(trun, e + 8), c)
                })
                .collect();
            runs.push(Trun {
                track_id: be32(tfhd.payload, 4),
                base,
                data_offset,
                entries,
            });
        }
        (seq, runs, mdat)
    }

    #[test]
    fn fragment_structure_timing_and_offsets() {
        let mut w = Fmp4Writer::new(vec![
            video(VideoCodec::Avc, AVCC),
            audio(AudioCodec::Aac, ASC, 44_100, 2),
        ])
        .unwrap();
        let v = [
            sample(TrackKind::Video, 1000, 80, true, b"I-frame"),
            sample(TrackKind::Video, 1040, 120, false, b"P1"),
            sample(TrackKind::Video, 1080, 0, false, b"B"),
            sample(TrackKind::Video, 1120, -40, false, b"P2!"),
        ];
        let a = [
            sample(TrackKind::Audio, 1000, 0, true, b"aac0"),
            sample(TrackKind::Audio, 1023, 0, true, b"aac1."),
            sample(TrackKind::Audio, 1046, 0, true, b"a2"),
        ];
        let frag = w
            .fragment(&[
                TrackRun {
                    track: 0,
                    samples: &v,
                    end_dts_ms: 1160,
                },
                TrackRun {
                    track: 1,
                    samples: &a,
                    end_dts_ms: 1070,
                },
            ])
            .unwrap();
        let (seq, runs, mdat) = parse_fragment(&frag);
        assert_eq!(seq, 1);
        assert_eq!(runs.len(), 2);
        let (rv, ra) = (&runs[0], &runs[1]);
        assert_eq!((rv.track_id, ra.track_id), (1, 2));
        assert_eq!(rv.base, 90_000);
        assert_eq!(ra.base, 44_100);
        assert_eq!(
            rv.entries,
            [
                (3600, 7, SAMPLE_FLAGS_SYNC, 7200),
                (3600, 2, SAMPLE_FLAGS_NON_SYNC, 10_800),
                (3600, 1, SAMPLE_FLAGS_NON_SYNC, 0),
                (3600, 3, SAMPLE_FLAGS_NON_SYNC, -3600),
            ]
        );
        // 1000 ms = 44100, 1023 ms = 45114 (floor of 45114.3), 1046 = 46128 (46128.6), 1070 =
        // 47187: durations are differences of those absolute times.
        assert_eq!(
            ra.entries,
            [
                (1014, 4, SAMPLE_FLAGS_SYNC, 0),
                (1014, 5, SAMPLE_FLAGS_SYNC, 0),
                (1059, 2, SAMPLE_FLAGS_SYNC, 0),
            ]
        );
        // Data offsets point at each run's first byte; the mdat holds exactly the sample data.
        assert_eq!(rv.data_offset, mdat.payload_start);
        assert_eq!(&frag[rv.data_offset..rv.data_offset + 7], b"I-frame");
        assert_eq!(ra.data_offset, mdat.payload_start + 13);
        assert_eq!(&frag[ra.data_offset..ra.data_offset + 4], b"aac0");
        assert_eq!(mdat.payload, b"I-frameP1BP2!aac0aac1.a2");

        let frag = w
            .fragment(&[TrackRun {
                track: 1,
                samples: &a[..1],
                end_dts_ms: 1023,
            }])
            .unwrap();
        let (seq, runs, _) = parse_fragment(&frag);
        assert_eq!((seq, runs.len(), runs[0].track_id), (2, 1, 2));
    }

    #[test]
    fn empty_runs_are_skipped() {
        let mut w = Fmp4Writer::new(vec![
            video(VideoCodec::Avc, AVCC),
            audio(AudioCodec::Aac, ASC, 44_100, 2),
        ])
        .unwrap();
        let v = [sample(TrackKind::Video, 0, 0, true, b"x")];
        let frag = w
            .fragment(&[
                TrackRun {
                    track: 1,
                    samples: &[],
                    end_dts_ms: 0,
                },
                TrackRun {
                    track: 0,
                    samples: &v,
                    end_dts_ms: 40,
                },
            ])
            .unwrap();
        let (_, runs, mdat) = parse_fragment(&frag);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].track_id, 1);
        assert_eq!(runs[0].data_offset, mdat.payload_start);
    }

    #[test]
    fn fragment_errors_leave_the_sequence_alone() {
        let mut w = Fmp4Writer::new(vec![video(VideoCodec::Avc, AVCC)]).unwrap();
        let v = [sample(TrackKind::Video, 0, 0, true, b"x")];
        let a = [sample(TrackKind::Audio, 0, 0, true, b"x")];
        let run = |samples, end| TrackRun {
            track: 0,
            samples,
            end_dts_ms: end,
        };
        assert!(w.fragment(&[]).is_err());
        assert!(w.fragment(&[run(&[], 0)]).is_err());
        assert!(w
            .fragment(&[TrackRun {
                track: 1,
                samples: &v,
                end_dts_ms: 40
            }])
            .is_err());
        assert!(w.fragment(&[run(&a, 40)]).is_err());
        // 2^32 ticks at 90 kHz is about 13 hours.
        assert!(w.fragment(&[run(&v, 48_000_000)]).is_err());
        let far = [sample(TrackKind::Video, 0, i32::MAX, true, b"x")];
        assert!(w.fragment(&[run(&far, 40)]).is_err());
        let (seq, _, _) = parse_fragment(&w.fragment(&[run(&v, 40)]).unwrap());
        assert_eq!(seq, 1);
    }

    #[test]
    fn odd_timing_does_not_panic() {
        let mut w = Fmp4Writer::new(vec![video(VideoCodec::Avc, AVCC)]).unwrap();
        let v = [
            sample(TrackKind::Video, u64::MAX, i32::MIN, true, b"x"),
            sample(TrackKind::Video, 5, 0, false, b"y"),
            sample(TrackKind::Video, 0, -10, false, b"z"),
        ];
        // Backwards timestamps give zero durations, never an underflow.
        let frag = w
            .fragment(&[TrackRun {
                track: 0,
                samples: &v[1..],
                end_dts_ms: 0,
            }])
            .unwrap();
        let (_, runs, _) = parse_fragment(&frag);
        assert_eq!(runs[0].entries[0].0, 0);
        assert_eq!(runs[0].entries[1].3, -900);
        let _ = w.fragment(&[TrackRun {
            track: 0,
            samples: &v,
            end_dts_ms: u64::MAX,
        }]);
    }

    #[test]
    fn ticks_do_not_drift_or_overflow() {
        assert_eq!(ticks(1000, 44_100), 44_100);
        assert_eq!(ticks(u64::MAX, 90_000), u64::MAX);
        let t = audio(AudioCodec::Aac, ASC, 44_100, 2);
        for ms in [0, 1, 23, 999, 123_456_789] {
            assert_eq!(ticks(ms, 44_100), t.ticks(ms));
        }
        assert_eq!(signed_ticks(-1, 90_000), -90);
        assert_eq!(signed_ticks(-1, 44_100), -45);
    }

    proptest! {
        #[test]
        fn fragments_parse_back(
            gaps in proptest::collection::vec((0u64..100, -50i32..200, any::<bool>(), 0usize..40), 1..40),
            audio_gaps in proptest::collection::vec((0u64..50, 0usize..20), 0..40),
            start in 0u64..10_000_000_000,
            tail in 0u64..100,
        ) {
            let mut w = Fmp4Writer::new(vec![
                video(VideoCodec::Hevc, b"cfg"),
                audio(AudioCodec::Aac, ASC, 44_100, 1),
            ]).unwrap();
            let mut dts = start;
            let mut v = Vec::new();
            for (i, (gap, cts, key, len)) in gaps.iter().enumerate() {
                dts += gap;
                v.push(sample(TrackKind::Video, dts, *cts, *key, &vec![i as u8; *len]));
            }
            let v_end = dts + tail;
            let mut dts = start;
            let mut a = Vec::new();
            for (i, (gap, len)) in audio_gaps.iter().enumerate() {
                dts += gap;
                a.push(sample(TrackKind::Audio, dts, 0, true, &vec![0x80 | i as u8; *len]));
            }
            let a_end = dts + tail;
            let frag = w.fragment(&[
                TrackRun { track: 0, samples: &v, end_dts_ms: v_end },
                TrackRun { track: 1, samples: &a, end_dts_ms: a_end },
            ]).unwrap();
            let (_, runs, mdat) = parse_fragment(&frag);
            prop_assert_eq!(runs.len(), if a.is_empty() { 1 } else { 2 });
            let mut expected_mdat = Vec::new();
            for (run, (samples, end, scale)) in runs.iter().zip([(&v, v_end, 90_000u64), (&a, a_end, 44_100)]) {
                prop_assert_eq!(run.base, ticks(samples[0].dts_ms, scale));
                let total: u64 = run.entries.iter().map(|e| u64::from(e.0)).sum();
                prop_assert_eq!(run.base + total, ticks(end, scale));
                let mut at = run.data_offset;
                for (s, e) in samples.iter().zip(&run.entries) {
                    prop_assert_eq!(&frag[at..at + s.data.len()], &s.data[..]);
                    prop_assert_eq!(e.1 as usize, s.data.len());
                    at += s.data.len();
                    let pts = ticks((s.dts_ms as i64 + i64::from(s.cts_ms)).max(0) as u64, scale);
                    if s.dts_ms as i64 + i64::from(s.cts_ms) >= 0 && scale == 90_000 {
                        prop_assert_eq!(ticks(s.dts_ms, scale) as i64 + i64::from(e.3), pts as i64);
                    }
                    expected_mdat.extend_from_slice(&s.data);
                }
            }
            prop_assert_eq!(mdat.payload, &expected_mdat[..]);
        }

        #[test]
        fn arbitrary_configs_never_panic(config in proptest::collection::vec(any::<u8>(), 0..64), codec in 0usize..7) {
            let t = match codec {
                0 => video(VideoCodec::Avc, &config),
                1 => video(VideoCodec::Hevc, &config),
                2 => video(VideoCodec::Av1, &config),
                3 => video(VideoCodec::Vp9, &config),
                4 => audio(AudioCodec::Aac, &config, 48_000, 2),
                5 => audio(AudioCodec::Opus, &config, 48_000, 2),
                _ => audio(AudioCodec::Mp3, &config, 44_100, 2),
            };
            if let Ok(w) = Fmp4Writer::new(vec![t]) {
                let init = w.init_segment();
                check_nesting(&boxes(&init, 0)[1]);
            }
        }
    }

    // ---- end to end with ffmpeg -------------------------------------------------------------

    mod e2e {
        use super::*;
        use std::path::Path;

        /// Demuxes `flv`, writes init + one fragment per GOP to `out`, returns the durations
        /// (seconds) of the video and audio tracks summed over every trun.
        fn remux(flv: &Path, out: &Path, e: &Expect) -> (f64, f64) {
            let d = demux_flv(flv, e);
            let mut w = Fmp4Writer::new(vec![d.vtrack.clone(), d.atrack.clone()]).unwrap();
            let mut file = w.init_segment().to_vec();
            let (mut vdur, mut adur) = (0u64, 0u64);
            for g in gops(&d, e) {
                let frag = w
                    .fragment(&[
                        TrackRun {
                            track: 0,
                            samples: &d.video[g.video],
                            end_dts_ms: g.video_end_ms,
                        },
                        TrackRun {
                            track: 1,
                            samples: &d.audio[g.audio],
                            end_dts_ms: g.audio_end_ms,
                        },
                    ])
                    .unwrap();
                let (_, runs, _) = parse_fragment(&frag);
                for r in runs {
                    let d: u64 = r.entries.iter().map(|e| u64::from(e.0)).sum();
                    if r.track_id == 1 {
                        vdur += d
                    } else {
                        adur += d
                    }
                }
                file.extend_from_slice(&frag);
            }
            std::fs::write(out, &file).unwrap();
            (
                vdur as f64 / 90_000.0,
                adur as f64 / f64::from(w.tracks()[1].timescale),
            )
        }

        fn round_trip(ffmpeg: &str, name: &str, size: &str, v: &[&str], a: &[&str], e: Expect) {
            let dir = tempdir(name);
            let flv = make_flv(ffmpeg, &dir, size, v, a);
            let mp4 = dir.join("x.mp4");
            let (vdur, adur) = remux(&flv, &mp4, &e);
            assert!((vdur - 4.0).abs() < 0.05, "video lasts {vdur} s");
            assert!((adur - 4.0).abs() < 0.1, "audio lasts {adur} s");
            probe_streams(&mp4, &e);
            ffmpeg_clean_both(ffmpeg, &mp4);
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn h264_aac_from_debian_ffmpeg() {
            if system_ffmpeg().is_none() {
                return;
            }
            let (v, a) = (["-c:v", "libx264"], ["-c:a", "aac"]);
            round_trip("ffmpeg", "avc", "640x360", &v, &a, Expect::h264_aac());
        }

        #[test]
        fn hevc_opus_from_modern_ffmpeg() {
            modern_round_trip("hevc", &HEVC_ARGS, "hevc", round_trip);
        }

        #[test]
        fn av1_opus_from_modern_ffmpeg() {
            modern_round_trip("av1", &AV1_ARGS, "av1", round_trip);
        }

        #[test]
        fn vp9_opus_from_modern_ffmpeg() {
            modern_round_trip("vp9", &VP9_ARGS, "vp9", round_trip);
        }
    }
}
