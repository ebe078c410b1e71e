//! The client side of an RTMP connection: connect, then publish or play one stream.
//!
//! Used by Rill's own client (tests, relays, the benchmark). After [`ClientSession::start`] the
//! session connects by itself; call [`ClientSession::publish`] or [`ClientSession::play`] at any
//! time (the request is queued until the connection is up) and read [`ClientEvent`]s.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::wire::Wire;
use super::{MediaKind, SessionError};
use crate::amf0::Amf0Value;
use crate::chunk::ChunkLimits;
use crate::handshake::{ClientHandshake, HandshakeKind};
use crate::message::{
    csid, encode_data, encode_u32, type_id, write_message, Command, Message, UserControl,
};

/// Tunables of a client session.
#[derive(Debug, Clone)]
pub struct ClientSessionConfig {
    pub app: String,
    pub tc_url: String,
    pub flash_ver: String,
    pub handshake: HandshakeKind,
    pub out_chunk_size: u32,
    pub limits: ChunkLimits,
    pub seed: u64,
    /// Buffer length announced for play, in milliseconds.
    pub buffer_ms: u32,
}

impl ClientSessionConfig {
    pub fn new(app: impl Into<String>, tc_url: impl Into<String>) -> Self {
        ClientSessionConfig {
            app: app.into(),
            tc_url: tc_url.into(),
            flash_ver: "FMLE/3.0 (compatible; Rill)".into(),
            handshake: HandshakeKind::Simple,
            out_chunk_size: 4096,
            limits: ChunkLimits::default(),
            seed: 0xC11E,
            buffer_ms: 1000,
        }
    }
}

/// What the server said or sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `NetConnection.Connect.Success`.
    Connected,
    /// An `onStatus` (or the `_error` of connect/createStream) with its code.
    Status {
        stream_id: u32,
        level: String,
        code: String,
        description: String,
    },
    Media {
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    },
    /// `onMetaData` (AMF0, `onMetaData` name included).
    Metadata { timestamp: u32, payload: Bytes },
}

#[derive(Debug, Clone, PartialEq)]
enum Intent {
    Publish(String),
    Play(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Connecting,
    Connected,
}

/// One client-side RTMP connection.
pub struct ClientSession {
    config: ClientSessionConfig,
    handshake: ClientHandshake,
    phase: Phase,
    wire: Wire,
    events: VecDeque<ClientEvent>,
    next_txn: f64,
    pending: HashMap<u64, Intent>,
    intent: Option<Intent>,
    stream_id: Option<u32>,
}

impl ClientSession {
    pub fn new(config: ClientSessionConfig) -> Self {
        ClientSession {
            handshake: ClientHandshake::new(config.handshake, config.seed),
            wire: Wire::new(config.limits),
            config,
            phase: Phase::Handshake,
            events: VecDeque::new(),
            next_txn: 1.0,
            pending: HashMap::new(),
            intent: None,
            stream_id: None,
        }
    }

    /// Writes C0+C1. Call once, first.
    pub fn start(&mut self) {
        self.handshake.start(&mut self.wire.out);
    }

    /// The stream id the server gave us, once created.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Publishes `name` (may carry `?query`) once connected.
    pub fn publish(&mut self, name: &str) {
        self.set_intent(Intent::Publish(name.to_owned()));
    }

    /// Plays `name` (may carry `?query`) once connected.
    pub fn play(&mut self, name: &str) {
        self.set_intent(Intent::Play(name.to_owned()));
    }

    fn set_intent(&mut self, intent: Intent) {
        if self.phase == Phase::Connected {
            self.create_stream(intent);
        } else {
            self.intent = Some(intent);
        }
    }

    /// Consumes received bytes from `input`.
    pub fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        let before = input.len();
        let result = self.feed_inner(input);
        self.wire.count_received(before - input.len());
        result
    }

    fn feed_inner(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        if self.phase == Phase::Handshake {
            if !self.handshake.process(input, &mut self.wire.out)? {
                return Ok(());
            }
            self.phase = Phase::Connecting;
            self.send_connect();
        }
        while let Some((stream_id, timestamp, msg)) = self.wire.next_message(input)? {
            self.handle(stream_id, timestamp, msg)?;
        }
        Ok(())
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    pub fn take_output(&mut self) -> Option<Bytes> {
        self.wire.take_output()
    }

    /// Sends one audio or video message on the published stream.
    pub fn send_media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) {
        let (cs, ty) = match kind {
            MediaKind::Audio => (csid::AUDIO, type_id::AUDIO),
            MediaKind::Video => (csid::VIDEO, type_id::VIDEO),
        };
        let sid = self.stream_id.unwrap_or(1);
        write_message(
            &self.wire.encoder,
            &mut self.wire.out,
            cs,
            ty,
            sid,
            timestamp,
            payload,
        );
    }

    /// Sends `@setDataFrame` + `payload` (an AMF0 `onMetaData` data message body).
    pub fn send_metadata(&mut self, payload: &[u8]) {
        let mut body = BytesMut::from(&encode_data(&[Amf0Value::string("@setDataFrame")])[..]);
        body.extend_from_slice(payload);
        let sid = self.stream_id.unwrap_or(1);
        self.wire.write(csid::DATA, type_id::DATA_AMF0, sid, &body);
    }

    /// Ends publishing or playing: FCUnpublish (when publishing) and deleteStream.
    pub fn close_stream(&mut self) {
        let Some(sid) = self.stream_id.take() else {
            return;
        };
        if let Some(Intent::Publish(name)) = &self.intent {
            let name = Amf0Value::string(name.clone());
            self.send_command(0, "FCUnpublish", 0.0, &[name]);
        }
        self.send_command(0, "deleteStream", 0.0, &[Amf0Value::Number(sid.into())]);
    }

    fn send_connect(&mut self) {
        self.wire.send_control(
            type_id::SET_CHUNK_SIZE,
            &encode_u32(self.config.out_chunk_size),
        );
        self.wire.encoder.set_chunk_size(self.config.out_chunk_size);
        let object = Amf0Value::object([
            ("app", Amf0Value::string(self.config.app.clone())),
            ("type", Amf0Value::string("nonprivate")),
            ("flashVer", Amf0Value::string(self.config.flash_ver.clone())),
            ("tcUrl", Amf0Value::string(self.config.tc_url.clone())),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
            // Enhanced RTMP: the codecs this client takes beyond the legacy ids, so that a
            // server which sends them only to clients that ask (as the spec lets it) does.
            (
                "fourCcList",
                Amf0Value::StrictArray(
                    [
                        "av01", "vp09", "hvc1", "Opus", "fLaC", "ac-3", "ec-3", "mp4a",
                    ]
                    .into_iter()
                    .map(Amf0Value::string)
                    .collect(),
                ),
            ),
        ]);
        self.wire.send_command(0, "connect", 1.0, &object, &[]);
        self.next_txn = 2.0;
    }

    fn create_stream(&mut self, intent: Intent) {
        if let Intent::Publish(name) = &intent {
            let name = Amf0Value::string(name.clone());
            self.send_command(
                0,
                "releaseStream",
                self.next_txn,
                std::slice::from_ref(&name),
            );
            self.next_txn += 1.0;
            self.send_command(0, "FCPublish", self.next_txn, &[name]);
            self.next_txn += 1.0;
        }
        let txn = self.next_txn;
        self.next_txn += 1.0;
        self.pending.insert(txn as u64, intent.clone());
        self.intent = Some(intent);
        self.send_command(0, "createStream", txn, &[]);
    }

    fn handle(&mut self, stream_id: u32, timestamp: u32, msg: Message) -> Result<(), SessionError> {
        match msg {
            Message::Audio(payload) => self.events.push_back(ClientEvent::Media {
                kind: MediaKind::Audio,
                timestamp,
                payload,
            }),
            Message::Video(payload) => self.events.push_back(ClientEvent::Media {
                kind: MediaKind::Video,
                timestamp,
                payload,
            }),
            Message::Data { name, payload, .. } if name.as_deref() == Some("onMetaData") => {
                self.events
                    .push_back(ClientEvent::Metadata { timestamp, payload });
            }
            Message::Command(cmd) => self.command(stream_id, cmd),
            _ => {}
        }
        Ok(())
    }

    fn command(&mut self, stream_id: u32, cmd: Command) {
        let info = cmd.args.first().cloned().unwrap_or(Amf0Value::Null);
        let field = |k: &str| {
            info.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        match cmd.name.as_str() {
            "_result" if cmd.transaction_id == 1.0 && self.phase == Phase::Connecting => {
                self.phase = Phase::Connected;
                self.events.push_back(ClientEvent::Connected);
                if let Some(intent) = self.intent.take() {
                    self.create_stream(intent);
                }
            }
            "_result" => {
                if let Some(intent) = self.pending.remove(&(cmd.transaction_id as u64)) {
                    let sid = info.as_f64().unwrap_or(1.0) as u32;
                    self.stream_id = Some(sid);
                    match intent {
                        Intent::Publish(name) => {
                            let args = [Amf0Value::string(name), Amf0Value::string("live")];
                            self.send_command(sid, "publish", 0.0, &args);
                        }
                        Intent::Play(name) => {
                            let ev = UserControl::SetBufferLength {
                                stream_id: sid,
                                millis: self.config.buffer_ms,
                            };
                            self.send_command(
                                sid,
                                "play",
                                0.0,
                                &[Amf0Value::string(name), Amf0Value::Number(-2.0)],
                            );
                            self.wire.send_user_control(&ev);
                        }
                    }
                }
            }
            "_error" | "onStatus" => {
                self.events.push_back(ClientEvent::Status {
                    stream_id,
                    level: field("level"),
                    code: field("code"),
                    description: field("description"),
                });
            }
            _ => {}
        }
    }

    fn send_command(&mut self, stream_id: u32, name: &str, txn: f64, args: &[Amf0Value]) {
        self.wire
            .send_command(stream_id, name, txn, &Amf0Value::Null, args);
    }
}
