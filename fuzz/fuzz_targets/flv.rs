//! The FLV demuxer, the tag header parsers and `Frame::from_flv_body` accept arbitrary input.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rill_media::flv::{parse_audio_header, parse_video_header, FlvDemuxer};
use rill_media::{Frame, FrameKind};

const MAX_TAG: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    // Deliver the input in pieces of `step` bytes so partial headers and bodies are exercised.
    let step = usize::from(step).max(1);
    let mut demuxer = FlvDemuxer::new(MAX_TAG);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match demuxer.next_tag(&mut buf) {
                Ok(Some(tag)) => {
                    assert!(tag.body.len() <= MAX_TAG as usize, "tag above the limit");
                    let _ = parse_video_header(&tag.body);
                    let _ = parse_audio_header(&tag.body);
                    let kind = match tag.tag_type {
                        8 => FrameKind::Audio,
                        9 => FrameKind::Video,
                        18 => FrameKind::Metadata,
                        _ => continue,
                    };
                    let _ = Frame::from_flv_body(kind, tag.timestamp, tag.body.clone());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        let _ = demuxer.header();
    }
});
