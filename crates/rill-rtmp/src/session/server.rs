//! The server side of an RTMP connection: handshake, protocol control, and the NetConnection /
//! NetStream commands of publishers and players.
//!
//! Decisions that need the rest of the server (may this client connect, publish, play?) come out
//! as [`ServerEvent`]s; the caller answers with `accept_*` / `reject_*`. Everything that needs no
//! decision (acknowledgements, createStream, releaseStream, FCPublish, ...) is answered here.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::wire::Wire;
use super::{split_query, status_object, MediaKind, SessionError};
use crate::amf0::Amf0Value;
use crate::chunk::{ChunkEncoder, ChunkLimits};
use crate::handshake::ServerHandshake;
use crate::message::{
    csid, encode_data, encode_peer_bandwidth, encode_u32, encode_user_control, type_id, Command,
    Message, UserControl,
};

/// Tunables of a server session.
#[derive(Debug, Clone, Copy)]
pub struct ServerSessionConfig {
    /// Chunk size Rill sends with (announced right after connect).
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size announced to the peer.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth announced to the peer.
    pub peer_bandwidth: u32,
    pub limits: ChunkLimits,
    /// Most NetStreams one connection may create.
    pub max_streams: usize,
    /// Seed for the handshake's random bytes.
    pub seed: u64,
}

impl Default for ServerSessionConfig {
    fn default() -> Self {
        ServerSessionConfig {
            out_chunk_size: 60000,
            window_ack_size: 5_000_000,
            peer_bandwidth: 5_000_000,
            limits: ChunkLimits::default(),
            max_streams: 8,
            seed: 0x5EED,
        }
    }
}

/// How a publisher wants its stream handled (the publish command's type argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    Live,
    Record,
    Append,
}

/// What a client asked for, or sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect`: answer with [`ServerSession::accept_connect`] or [`ServerSession::reject_connect`].
    Connect {
        /// Application name without query and trailing slash.
        app: String,
        tc_url: Option<String>,
        /// Query string found after `?` in the app or the tcUrl.
        query: String,
        /// The whole command object (flashVer, fourCcList, objectEncoding, ...).
        object: Amf0Value,
    },
    /// `publish`: answer with `accept_publish` or `reject_publish`.
    Publish {
        stream_id: u32,
        name: String,
        query: String,
        mode: PublishMode,
    },
    /// `play`: answer with `accept_play` or `reject_play`.
    Play {
        stream_id: u32,
        name: String,
        query: String,
        start: f64,
        duration: f64,
        reset: bool,
    },
    /// The publisher on `stream_id` stopped (FCUnpublish, closeStream or deleteStream).
    Unpublish {
        stream_id: u32,
    },
    /// The player on `stream_id` stopped (closeStream or deleteStream).
    StopPlay {
        stream_id: u32,
    },
    Media {
        kind: MediaKind,
        stream_id: u32,
        timestamp: u32,
        payload: Bytes,
    },
    /// `@setDataFrame onMetaData` (or a bare `onMetaData`); the payload is without the wrapper.
    Metadata {
        stream_id: u32,
        timestamp: u32,
        payload: Bytes,
    },
    Pause {
        stream_id: u32,
        pause: bool,
        millis: f64,
    },
    ReceiveAudio {
        stream_id: u32,
        enabled: bool,
    },
    ReceiveVideo {
        stream_id: u32,
        enabled: bool,
    },
    PingResponse(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Idle,
    Publishing,
    Playing,
}

enum Phase {
    Handshake(ServerHandshake),
    Connecting,
    Connected,
}

/// One server-side RTMP connection.
pub struct ServerSession {
    config: ServerSessionConfig,
    phase: Phase,
    wire: Wire,
    events: VecDeque<ServerEvent>,
    connect_txn: f64,
    /// Enhanced RTMP capabilities the client announced in connect, answered in `_result`.
    client_caps: Vec<(String, Amf0Value)>,
    streams: HashMap<u32, Role>,
    next_stream_id: u32,
}

impl ServerSession {
    pub fn new(config: ServerSessionConfig) -> Self {
        ServerSession {
            config,
            phase: Phase::Handshake(ServerHandshake::new(config.seed)),
            wire: Wire::new(config.limits),
            events: VecDeque::new(),
            connect_txn: 1.0,
            client_caps: Vec::new(),
            streams: HashMap::new(),
            next_stream_id: 1,
        }
    }

    /// True once the handshake is over.
    pub fn handshake_done(&self) -> bool {
        !matches!(self.phase, Phase::Handshake(_))
    }

    /// The encoder at the negotiated outgoing chunk size, for media the caller writes itself.
    pub fn encoder(&self) -> ChunkEncoder {
        self.wire.encoder
    }

    /// Consumes received bytes from `input` (what is left is an incomplete chunk).
    pub fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        let before = input.len();
        let result = self.feed_inner(input);
        self.wire.count_received(before - input.len());
        result
    }

    fn feed_inner(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        if let Phase::Handshake(hs) = &mut self.phase {
            if !hs.process(input, &mut self.wire.out)? {
                return Ok(());
            }
            self.phase = Phase::Connecting;
        }
        while let Some((stream_id, timestamp, msg)) = self.wire.next_message(input)? {
            self.handle(stream_id, timestamp, msg)?;
        }
        Ok(())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Bytes to send, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        self.wire.take_output()
    }

    fn handle(&mut self, stream_id: u32, timestamp: u32, msg: Message) -> Result<(), SessionError> {
        match msg {
            Message::UserControl(UserControl::PingResponse(t)) => {
                self.events.push_back(ServerEvent::PingResponse(t))
            }
            Message::UserControl(_) => {}
            Message::Audio(payload) | Message::Video(payload)
                if self.role(stream_id) != Role::Publishing =>
            {
                // Media on a stream that is not publishing is ignored, as a receiving server should.
                let _ = payload;
            }
            Message::Audio(payload) => self.events.push_back(ServerEvent::Media {
                kind: MediaKind::Audio,
                stream_id,
                timestamp,
                payload,
            }),
            Message::Video(payload) => self.events.push_back(ServerEvent::Media {
                kind: MediaKind::Video,
                stream_id,
                timestamp,
                payload,
            }),
            Message::Data { name, payload, .. }
                if self.role(stream_id) == Role::Publishing
                    && name.as_deref() == Some("onMetaData") =>
            {
                self.events.push_back(ServerEvent::Metadata {
                    stream_id,
                    timestamp,
                    payload,
                });
            }
            Message::Command(cmd) => self.command(stream_id, cmd)?,
            // Protocol control was applied by the wire; shared objects and unknown types are ignored.
            _ => {}
        }
        Ok(())
    }

    fn role(&self, stream_id: u32) -> Role {
        self.streams.get(&stream_id).copied().unwrap_or(Role::Idle)
    }

    fn command(&mut self, stream_id: u32, cmd: Command) -> Result<(), SessionError> {
        let arg_str = |i: usize| {
            cmd.args
                .get(i)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let arg_num = |i: usize, d: f64| cmd.args.get(i).and_then(|v| v.as_f64()).unwrap_or(d);
        match cmd.name.as_str() {
            "connect" => {
                if !matches!(self.phase, Phase::Connecting) {
                    return Err(SessionError::Protocol("connect sent twice".into()));
                }
                self.connect_txn = cmd.transaction_id;
                self.client_caps = enhanced_caps(&cmd.object);
                let raw_app = cmd.object.get("app").and_then(|v| v.as_str()).unwrap_or("");
                let tc_url = cmd
                    .object
                    .get("tcUrl")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                let (app, mut query) = split_query(raw_app);
                if query.is_empty() {
                    query = tc_url.as_deref().map(|t| split_query(t).1).unwrap_or("");
                }
                let event = ServerEvent::Connect {
                    app: app.trim_end_matches('/').to_owned(),
                    query: query.to_owned(),
                    tc_url: tc_url.clone(),
                    object: cmd.object.clone(),
                };
                self.events.push_back(event);
            }
            _ if !matches!(self.phase, Phase::Connected) => {
                return Err(SessionError::Protocol(format!(
                    "{} before connect",
                    cmd.name
                )));
            }
            "createStream" => {
                if self.streams.len() >= self.config.max_streams {
                    self.send_command(
                        0,
                        "_error",
                        cmd.transaction_id,
                        Amf0Value::Null,
                        &[status_object(
                            "error",
                            "NetConnection.Call.Failed",
                            "too many streams",
                        )],
                    );
                    return Ok(());
                }
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.streams.insert(id, Role::Idle);
                self.send_command(
                    0,
                    "_result",
                    cmd.transaction_id,
                    Amf0Value::Null,
                    &[Amf0Value::Number(id.into())],
                );
            }
            "releaseStream" | "FCPublish" | "getStreamLength" | "_checkbw" | "FCSubscribe" => {
                if cmd.name == "FCPublish" {
                    let info = status_object("status", "NetStream.Publish.Start", &arg_str(0));
                    self.send_command(0, "onFCPublish", 0.0, Amf0Value::Null, &[info]);
                }
                if cmd.transaction_id != 0.0 {
                    let result = if cmd.name == "getStreamLength" {
                        Amf0Value::Number(0.0)
                    } else {
                        Amf0Value::Undefined
                    };
                    self.send_command(0, "_result", cmd.transaction_id, Amf0Value::Null, &[result]);
                }
            }
            "publish" => {
                let sid = self.known_stream(stream_id)?;
                let (name, query) = split_query(&arg_str(0)).into_owned_pair();
                let mode = match arg_str(1).as_str() {
                    "record" => PublishMode::Record,
                    "append" => PublishMode::Append,
                    _ => PublishMode::Live,
                };
                self.events.push_back(ServerEvent::Publish {
                    stream_id: sid,
                    name,
                    query,
                    mode,
                });
            }
            "play" => {
                let sid = self.known_stream(stream_id)?;
                let (name, query) = split_query(&arg_str(0)).into_owned_pair();
                let reset = cmd.args.get(3).and_then(|v| v.as_bool()).unwrap_or(true);
                self.events.push_back(ServerEvent::Play {
                    stream_id: sid,
                    name,
                    query,
                    start: arg_num(1, -2.0),
                    duration: arg_num(2, -1.0),
                    reset,
                });
            }
            "FCUnpublish" => {
                // Ends whichever stream of this connection publishes; deleteStream may follow.
                let publishing: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, r)| **r == Role::Publishing)
                    .map(|(id, _)| *id)
                    .collect();
                for id in publishing {
                    self.end_stream(id);
                }
                if cmd.transaction_id != 0.0 {
                    self.send_command(
                        0,
                        "_result",
                        cmd.transaction_id,
                        Amf0Value::Null,
                        &[Amf0Value::Undefined],
                    );
                }
            }
            "closeStream" => self.end_stream(stream_id),
            "deleteStream" => {
                let id = arg_num(0, f64::from(stream_id));
                if id >= 0.0 && id <= f64::from(u32::MAX) {
                    let id = id as u32;
                    self.end_stream(id);
                    self.streams.remove(&id);
                }
            }
            "pause" => {
                let pause = cmd.args.first().and_then(|v| v.as_bool()).unwrap_or(true);
                let millis = arg_num(1, 0.0);
                if self.role(stream_id) == Role::Playing {
                    let code = if pause {
                        "NetStream.Pause.Notify"
                    } else {
                        "NetStream.Unpause.Notify"
                    };
                    self.send_status(
                        stream_id,
                        "status",
                        code,
                        if pause { "Paused." } else { "Unpaused." },
                    );
                    self.events.push_back(ServerEvent::Pause {
                        stream_id,
                        pause,
                        millis,
                    });
                }
            }
            "receiveAudio" | "receiveVideo" => {
                let enabled = cmd.args.first().and_then(|v| v.as_bool()).unwrap_or(true);
                self.events.push_back(if cmd.name == "receiveAudio" {
                    ServerEvent::ReceiveAudio { stream_id, enabled }
                } else {
                    ServerEvent::ReceiveVideo { stream_id, enabled }
                });
            }
            _ => {
                // Unknown calls that expect an answer get a polite error instead of silence.
                if cmd.transaction_id != 0.0 {
                    let info =
                        status_object("error", "NetConnection.Call.Failed", "unknown method");
                    self.send_command(0, "_error", cmd.transaction_id, Amf0Value::Null, &[info]);
                }
            }
        }
        Ok(())
    }

    /// The stream a publish/play arrived on. Some encoders skip createStream and use stream 1
    /// (or 0) directly, so an unknown id is created on the spot, within the same limit.
    fn known_stream(&mut self, stream_id: u32) -> Result<u32, SessionError> {
        match self.streams.get(&stream_id) {
            Some(Role::Idle) => Ok(stream_id),
            Some(_) => Err(SessionError::Protocol(format!(
                "stream {stream_id} is already in use"
            ))),
            None if self.streams.len() < self.config.max_streams => {
                self.streams.insert(stream_id, Role::Idle);
                self.next_stream_id = self.next_stream_id.max(stream_id.saturating_add(1));
                Ok(stream_id)
            }
            None => Err(SessionError::Protocol("too many streams".into())),
        }
    }

    fn end_stream(&mut self, stream_id: u32) {
        match self.role(stream_id) {
            Role::Publishing => {
                self.send_status(
                    stream_id,
                    "status",
                    "NetStream.Unpublish.Success",
                    "Stopped publishing.",
                );
                self.events.push_back(ServerEvent::Unpublish { stream_id });
            }
            Role::Playing => self.events.push_back(ServerEvent::StopPlay { stream_id }),
            Role::Idle => return,
        }
        self.streams.insert(stream_id, Role::Idle);
    }

    /// Accepts the pending connect: window, bandwidth, chunk size, `_result`, `onBWDone`.
    pub fn accept_connect(&mut self, object_encoding: f64) {
        self.phase = Phase::Connected;
        self.send_control(
            type_id::WINDOW_ACK_SIZE,
            encode_u32(self.config.window_ack_size),
        );
        self.send_control(
            type_id::SET_PEER_BANDWIDTH,
            encode_peer_bandwidth(self.config.peer_bandwidth, 2),
        );
        self.send_control(
            type_id::SET_CHUNK_SIZE,
            encode_u32(self.config.out_chunk_size),
        );
        self.wire.encoder.set_chunk_size(self.config.out_chunk_size);
        let mut props = vec![
            ("fmsVer".to_owned(), Amf0Value::string("FMS/3,0,1,123")),
            ("capabilities".to_owned(), Amf0Value::Number(31.0)),
            ("mode".to_owned(), Amf0Value::Number(1.0)),
        ];
        props.append(&mut self.client_caps);
        let props = Amf0Value::Object(props);
        let info = Amf0Value::object([
            ("level", Amf0Value::string("status")),
            ("code", Amf0Value::string("NetConnection.Connect.Success")),
            ("description", Amf0Value::string("Connection succeeded.")),
            ("objectEncoding", Amf0Value::Number(object_encoding)),
        ]);
        self.send_command(0, "_result", self.connect_txn, props, &[info]);
        self.send_command(
            0,
            "onBWDone",
            0.0,
            Amf0Value::Null,
            &[Amf0Value::Number(8192.0)],
        );
    }

    /// Refuses the pending connect (the caller closes the connection after flushing).
    pub fn reject_connect(&mut self, description: &str) {
        let info = status_object("error", "NetConnection.Connect.Rejected", description);
        self.send_command(0, "_error", self.connect_txn, Amf0Value::Null, &[info]);
    }

    /// Accepts a publish: StreamBegin and `NetStream.Publish.Start`.
    pub fn accept_publish(&mut self, stream_id: u32, name: &str) {
        self.streams.insert(stream_id, Role::Publishing);
        self.send_control(
            type_id::USER_CONTROL,
            encode_user_control(&UserControl::StreamBegin(stream_id)),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
        );
    }

    /// Refuses a publish with `code` (e.g. `NetStream.Publish.BadName`).
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        self.send_status(stream_id, "error", code, description);
    }

    /// Accepts a play: StreamBegin, Play.Reset, Play.Start, `|RtmpSampleAccess`.
    pub fn accept_play(&mut self, stream_id: u32, name: &str, reset: bool) {
        self.streams.insert(stream_id, Role::Playing);
        self.send_control(
            type_id::USER_CONTROL,
            encode_user_control(&UserControl::StreamBegin(stream_id)),
        );
        if reset {
            self.send_status(
                stream_id,
                "status",
                "NetStream.Play.Reset",
                &format!("Playing and resetting {name}."),
            );
        }
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
        );
        let access = encode_data(&[
            Amf0Value::string("|RtmpSampleAccess"),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true),
        ]);
        // No `onStatus NetStream.Data.Start` data message: ffmpeg turns unknown script data into
        // an extra "data" stream, which confuses players.
        self.wire
            .write(csid::DATA, type_id::DATA_AMF0, stream_id, &access);
    }

    /// Refuses a play with `code` (e.g. `NetStream.Play.StreamNotFound`, `NetStream.Play.Failed`).
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) {
        self.send_status(stream_id, "error", code, description);
    }

    /// Tells a waiting or playing viewer that a publisher started.
    pub fn publish_notify(&mut self, stream_id: u32, name: &str) {
        self.send_control(
            type_id::USER_CONTROL,
            encode_user_control(&UserControl::StreamBegin(stream_id)),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.PublishNotify",
            &format!("{name} is now published."),
        );
    }

    /// Tells a playing viewer that the publisher left.
    pub fn unpublish_notify(&mut self, stream_id: u32, name: &str) {
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            &format!("{name} is now unpublished."),
        );
        self.send_control(
            type_id::USER_CONTROL,
            encode_user_control(&UserControl::StreamEof(stream_id)),
        );
    }

    /// Sends a ping request carrying `timestamp`.
    pub fn ping(&mut self, timestamp: u32) {
        self.send_control(
            type_id::USER_CONTROL,
            encode_user_control(&UserControl::PingRequest(timestamp)),
        );
    }

    /// Sends an `onStatus` on `stream_id`.
    pub fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = status_object(level, code, description);
        self.send_command(stream_id, "onStatus", 0.0, Amf0Value::Null, &[info]);
    }

    fn send_command(
        &mut self,
        stream_id: u32,
        name: &str,
        txn: f64,
        object: Amf0Value,
        args: &[Amf0Value],
    ) {
        self.wire.send_command(stream_id, name, txn, &object, args);
    }

    fn send_control(&mut self, type_id: u8, payload: Bytes) {
        self.wire.send_control(type_id, &payload);
    }
}

/// `CanForward` in Enhanced RTMP v2's FourCcInfoMask: Rill passes every codec through unchanged.
const CAN_FORWARD: f64 = 4.0;
/// capsEx bits Rill honours by forwarding unchanged: Multitrack, ModEx, TimestampNanoOffset.
const CAPS_EX_FORWARDED: u32 = 0x02 | 0x04 | 0x08;

/// The Enhanced RTMP capability answer (v1 `fourCcList`, v2 `videoFourCcInfoMap`,
/// `audioFourCcInfoMap`, `capsEx`) to what the client announced: every codec the client lists is
/// one Rill can forward.
fn enhanced_caps(object: &Amf0Value) -> Vec<(String, Amf0Value)> {
    let mut caps = Vec::new();
    if let Some(Amf0Value::StrictArray(list)) = object.get("fourCcList") {
        let list = list
            .iter()
            .filter(|v| v.as_str().is_some())
            .cloned()
            .collect();
        caps.push(("fourCcList".to_owned(), Amf0Value::StrictArray(list)));
    }
    for key in ["videoFourCcInfoMap", "audioFourCcInfoMap"] {
        let entries = match object.get(key) {
            Some(Amf0Value::Object(e) | Amf0Value::EcmaArray(e)) => e,
            _ => continue,
        };
        let map = entries
            .iter()
            .map(|(k, _)| (k.clone(), Amf0Value::Number(CAN_FORWARD)))
            .collect();
        caps.push((key.to_owned(), Amf0Value::Object(map)));
    }
    if let Some(ex) = object.get("capsEx").and_then(|v| v.as_f64()) {
        let bits = (ex.clamp(0.0, f64::from(u32::MAX)) as u32) & CAPS_EX_FORWARDED;
        caps.push(("capsEx".to_owned(), Amf0Value::Number(f64::from(bits))));
    }
    caps
}

#[cfg(test)]
pub(crate) fn enhanced_caps_for_test(object: &Amf0Value) -> Vec<(String, Amf0Value)> {
    enhanced_caps(object)
}

trait IntoOwnedPair {
    fn into_owned_pair(self) -> (String, String);
}

impl IntoOwnedPair for (&str, &str) {
    fn into_owned_pair(self) -> (String, String) {
        (self.0.to_owned(), self.1.to_owned())
    }
}
