//! Delivery to one RTMP player: turns hub packets into the shared chunk bytes and honours pause
//! and receiveAudio/receiveVideo.

use bytes::Bytes;
use rill_media::FrameKind;
use rill_rtmp::session::server::ServerSession;

use crate::control::gate::{Admission, Playing};
use crate::hub::{Packet, Subscription};

/// A player on one NetStream of a connection.
pub struct Player {
    pub stream_id: u32,
    pub name: String,
    pub sub: Subscription,
    /// Dropped after `sub`: `donePlay` once the player has left.
    _admission: Admission,
    pub paused: bool,
    pub audio: bool,
    pub video: bool,
    /// After an unpause, video resumes at a keyframe.
    need_keyframe: bool,
}

impl Player {
    pub fn new(stream_id: u32, name: String, playing: Playing) -> Self {
        Player {
            stream_id,
            name,
            sub: playing.sub,
            _admission: playing.admission,
            paused: false,
            audio: true,
            video: true,
            need_keyframe: false,
        }
    }

    /// Whether the stream's fan-out may write this player's media: it takes everything as it
    /// comes, on the message stream the shared chunks are made for.
    pub fn can_go_direct(&self) -> bool {
        !self.paused
            && self.audio
            && self.video
            && !self.need_keyframe
            && self.stream_id == crate::hub::COMMON_STREAM_ID
    }

    pub fn set_paused(&mut self, paused: bool) {
        if self.paused && !paused {
            self.need_keyframe = true;
        }
        self.paused = paused;
    }

    /// Appends what `packet` means for this player to `out`, in order with the session's own
    /// messages (status notifications go through `session`).
    pub fn deliver(&mut self, packet: Packet, session: &mut ServerSession, out: &mut Vec<Bytes>) {
        match packet {
            Packet::Frame(f) => {
                let fr = &f.frame;
                let wanted = match fr.kind {
                    FrameKind::Audio => self.audio,
                    FrameKind::Video => self.video,
                    FrameKind::Metadata => true,
                };
                if !wanted || self.paused {
                    return;
                }
                if self.need_keyframe && fr.kind == FrameKind::Video && !fr.sequence_header {
                    if !fr.is_video_keyframe() {
                        return;
                    }
                    self.need_keyframe = false;
                }
                out.push(f.rtmp_chunks(session.encoder().chunk_size(), self.stream_id));
            }
            Packet::Publish => {
                session.publish_notify(self.stream_id, &self.name);
                out.extend(session.take_output());
            }
            Packet::Unpublish => {
                session.unpublish_notify(self.stream_id, &self.name);
                out.extend(session.take_output());
            }
        }
    }
}
