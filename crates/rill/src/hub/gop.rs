//! The GOP cache: the frames since the last video keyframe, bounded in bytes and frames, so that a
//! joining viewer starts with a picture at once.

use std::collections::VecDeque;
use std::sync::Arc;

use rill_media::FrameKind;

use super::frame::HubFrame;

/// Audio frames kept for a stream that has no video (about a second of AAC).
const AUDIO_ONLY_FRAMES: usize = 64;

#[derive(Debug)]
pub struct GopCache {
    frames: VecDeque<Arc<HubFrame>>,
    bytes: usize,
    max_bytes: usize,
    max_frames: usize,
}

impl GopCache {
    pub fn new(max_bytes: usize, max_frames: usize) -> Self {
        GopCache {
            frames: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_frames,
        }
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// Adds a coded (non sequence header, non metadata) frame. `has_video` says whether the stream
    /// carries video: without it the cache is a short rolling window of audio.
    pub fn push(&mut self, frame: &Arc<HubFrame>, has_video: bool) {
        let f = &frame.frame;
        if f.kind == FrameKind::Metadata || f.sequence_header {
            return;
        }
        if f.is_video_keyframe() {
            self.clear();
        } else if has_video && self.frames.is_empty() {
            // A GOP must start at a keyframe; frames before the first one are useless to a viewer.
            return;
        }
        if !has_video && self.frames.len() >= AUDIO_ONLY_FRAMES {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.size();
            }
        }
        self.bytes += frame.size();
        self.frames.push_back(frame.clone());
        if self.bytes > self.max_bytes || self.frames.len() > self.max_frames {
            // Over the bound: a partial GOP cannot start a viewer, so drop it until the next keyframe.
            self.clear();
        }
    }

    pub fn frames(&self) -> impl Iterator<Item = &Arc<HubFrame>> {
        self.frames.iter()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rill_media::{AudioCodec, Codec, Frame, VideoCodec};

    use super::*;

    fn video(ts: u32, key: bool, size: usize) -> Arc<HubFrame> {
        Arc::new(HubFrame::new(
            Frame {
                kind: FrameKind::Video,
                timestamp: ts,
                composition_offset: 0,
                keyframe: key,
                sequence_header: false,
                codec: Codec::Video(VideoCodec::Avc),
                payload: Bytes::from(vec![0; size]),
            },
            4096,
        ))
    }

    fn audio(ts: u32) -> Arc<HubFrame> {
        Arc::new(HubFrame::new(
            Frame {
                kind: FrameKind::Audio,
                timestamp: ts,
                composition_offset: 0,
                keyframe: true,
                sequence_header: false,
                codec: Codec::Audio(AudioCodec::Aac),
                payload: Bytes::from_static(b"\xaf\x01x"),
            },
            4096,
        ))
    }

    #[test]
    fn starts_at_last_keyframe() {
        let mut g = GopCache::new(1 << 20, 100);
        g.push(&video(0, false, 10), true);
        assert_eq!(
            g.len(),
            0,
            "frames before the first keyframe are not cached"
        );
        g.push(&video(33, true, 10), true);
        g.push(&audio(40), true);
        g.push(&video(66, false, 10), true);
        g.push(&video(99, true, 10), true);
        g.push(&video(133, false, 10), true);
        let ts: Vec<u32> = g.frames().map(|f| f.frame.timestamp).collect();
        assert_eq!(ts, vec![99, 133]);
        assert_eq!(g.bytes(), 20);
    }

    #[test]
    fn bounded_in_bytes_and_frames() {
        let mut g = GopCache::new(100, 1000);
        g.push(&video(0, true, 60), true);
        g.push(&video(33, false, 60), true);
        assert_eq!(g.len(), 0, "over the byte bound the partial GOP is dropped");
        g.push(&video(66, false, 10), true);
        assert_eq!(g.len(), 0, "and stays empty until the next keyframe");
        let mut g = GopCache::new(1 << 20, 3);
        for i in 0..4 {
            g.push(&video(i, i == 0, 1), true);
        }
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn audio_only_is_a_rolling_window() {
        let mut g = GopCache::new(1 << 20, 1000);
        for i in 0..(AUDIO_ONLY_FRAMES as u32 + 10) {
            g.push(&audio(i * 23), false);
        }
        assert_eq!(g.len(), AUDIO_ONLY_FRAMES);
        assert_eq!(g.frames().next().unwrap().frame.timestamp, 10 * 23);
    }
}
