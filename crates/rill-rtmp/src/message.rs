//! Typed RTMP messages: protocol control, user control, commands, data and media.
//!
//! [`Message::decode`] turns a reassembled [`RawMessage`] into a typed message; the `encode_*`
//! functions build the payloads the sessions send. Media payloads stay `Bytes` slices of the
//! received message (no copy).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::amf0::{self, Amf0Value, AmfError};
use crate::chunk::{ChunkEncoder, MessageHeader, RawMessage};

/// Message type ids.
pub mod type_id {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream ids Rill sends on. Every message is written with a type-0 header, so the choice
/// only matters to peers that dislike mixing kinds on one chunk stream.
pub mod csid {
    pub const PROTOCOL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const AUDIO: u32 = 4;
    pub const DATA: u32 = 5;
    pub const VIDEO: u32 = 6;
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MessageError {
    #[error("{what} message is {len} bytes, too short")]
    Truncated { what: &'static str, len: usize },
    #[error("bad AMF in command or data message: {0}")]
    Amf(#[from] AmfError),
    #[error("command message without a name")]
    NoCommandName,
    #[error("malformed aggregate message")]
    BadAggregate,
}

/// User control events (message type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength { stream_id: u32, millis: u32 },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    Other { event_type: u16, data: Bytes },
}

/// A command message (type 20, or type 17 with its leading format byte).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    /// The command object (usually `Null` except for `connect` and `_result`).
    pub object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

/// One decoded RTMP message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort(u32),
    Acknowledgement(u32),
    UserControl(UserControl),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit_type: u8,
    },
    Audio(Bytes),
    Video(Bytes),
    /// A data message. `name` is the first value when it is a string (`@setDataFrame`,
    /// `onMetaData`, `|RtmpSampleAccess`, ...); `payload` is the AMF0 encoding of what follows
    /// a leading `@setDataFrame`, or the whole message otherwise.
    Data {
        name: Option<String>,
        values: Vec<Amf0Value>,
        payload: Bytes,
    },
    Command(Command),
    /// Aggregate message split into its sub-messages (each with its absolute timestamp).
    Aggregate(Vec<(MessageHeader, Bytes)>),
    /// A type Rill does not act on (shared objects, unknown types).
    Other {
        type_id: u8,
    },
}

fn be_u32(p: &[u8], what: &'static str) -> Result<u32, MessageError> {
    match p.get(..4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(MessageError::Truncated { what, len: p.len() }),
    }
}

impl Message {
    /// Decodes a reassembled message.
    pub fn decode(raw: &RawMessage) -> Result<Message, MessageError> {
        let p = &raw.payload;
        Ok(match raw.header.type_id {
            type_id::SET_CHUNK_SIZE => {
                Message::SetChunkSize(be_u32(p, "set chunk size")? & 0x7FFF_FFFF)
            }
            type_id::ABORT => Message::Abort(be_u32(p, "abort")?),
            type_id::ACKNOWLEDGEMENT => Message::Acknowledgement(be_u32(p, "acknowledgement")?),
            type_id::WINDOW_ACK_SIZE => Message::WindowAckSize(be_u32(p, "window ack size")?),
            type_id::SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
                size: be_u32(p, "set peer bandwidth")?,
                limit_type: p.get(4).copied().unwrap_or(2),
            },
            type_id::USER_CONTROL => Message::UserControl(decode_user_control(p)?),
            type_id::AUDIO => Message::Audio(p.clone()),
            type_id::VIDEO => Message::Video(p.clone()),
            type_id::COMMAND_AMF0 => Message::Command(decode_command(p)?),
            type_id::COMMAND_AMF3 => {
                // AMF3 command messages start with a format byte (0), then AMF0 values that may
                // switch to AMF3 per value.
                let body = p.get(1..).unwrap_or_default();
                Message::Command(decode_command(body)?)
            }
            type_id::DATA_AMF0 => decode_data(p.clone())?,
            type_id::DATA_AMF3 => {
                let body = if p.first() == Some(&0) {
                    p.slice(1..)
                } else {
                    p.clone()
                };
                decode_data(body)?
            }
            type_id::AGGREGATE => Message::Aggregate(split_aggregate(raw)?),
            other => Message::Other { type_id: other },
        })
    }
}

fn decode_user_control(p: &[u8]) -> Result<UserControl, MessageError> {
    if p.len() < 2 {
        return Err(MessageError::Truncated {
            what: "user control",
            len: p.len(),
        });
    }
    let event = u16::from_be_bytes([p[0], p[1]]);
    let data = &p[2..];
    let id = || be_u32(data, "user control");
    Ok(match event {
        0 => UserControl::StreamBegin(id()?),
        1 => UserControl::StreamEof(id()?),
        2 => UserControl::StreamDry(id()?),
        3 => UserControl::SetBufferLength {
            stream_id: id()?,
            millis: be_u32(data.get(4..).unwrap_or_default(), "set buffer length")?,
        },
        4 => UserControl::StreamIsRecorded(id()?),
        6 => UserControl::PingRequest(id()?),
        7 => UserControl::PingResponse(id()?),
        other => UserControl::Other {
            event_type: other,
            data: Bytes::copy_from_slice(data),
        },
    })
}

/// Decodes one value; `amf0::decode` itself switches to AMF3 at the `avmplus-object` marker.
fn decode_value(buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
    amf0::decode(buf)
}

fn decode_command(mut p: &[u8]) -> Result<Command, MessageError> {
    let name = decode_value(&mut p)?
        .as_str()
        .map(str::to_owned)
        .ok_or(MessageError::NoCommandName)?;
    let transaction_id = if p.is_empty() {
        0.0
    } else {
        decode_value(&mut p)?.as_f64().unwrap_or(0.0)
    };
    let object = if p.is_empty() {
        Amf0Value::Null
    } else {
        decode_value(&mut p)?
    };
    let mut args = Vec::new();
    while !p.is_empty() {
        args.push(decode_value(&mut p)?);
    }
    Ok(Command {
        name,
        transaction_id,
        object,
        args,
    })
}

fn decode_data(payload: Bytes) -> Result<Message, MessageError> {
    let mut rest: &[u8] = &payload;
    let mut values = Vec::new();
    let mut name = None;
    let mut payload_out = payload.clone();
    if !rest.is_empty() {
        let first = decode_value(&mut rest)?;
        if first.as_str() == Some("@setDataFrame") {
            // The stored metadata is what follows the wrapper, byte for byte.
            payload_out = payload.slice(payload.len() - rest.len()..);
            values.clear();
        } else {
            name = first.as_str().map(str::to_owned);
            values.push(first);
        }
    }
    while !rest.is_empty() {
        values.push(decode_value(&mut rest)?);
    }
    if name.is_none() {
        name = values.first().and_then(|v| v.as_str()).map(str::to_owned);
    }
    Ok(Message::Data {
        name,
        values,
        payload: payload_out,
    })
}

/// An aggregate message holds FLV-style tags; their timestamps are rebased on the aggregate's.
fn split_aggregate(raw: &RawMessage) -> Result<Vec<(MessageHeader, Bytes)>, MessageError> {
    let mut out = Vec::new();
    let mut buf = raw.payload.clone();
    let mut first_ts: Option<u32> = None;
    while buf.len() >= 11 {
        let tag_type = buf[0];
        let size = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
        let ts = u32::from_be_bytes([buf[7], buf[4], buf[5], buf[6]]);
        buf.advance(11);
        if buf.len() < size {
            return Err(MessageError::BadAggregate);
        }
        let body = buf.split_to(size);
        // Back pointer (previous tag size); tolerate its absence at the very end.
        buf.advance(buf.len().min(4));
        let base = *first_ts.get_or_insert(ts);
        let timestamp = raw.header.timestamp.wrapping_add(ts.wrapping_sub(base));
        out.push((
            MessageHeader {
                timestamp,
                type_id: tag_type,
                stream_id: raw.header.stream_id,
            },
            body,
        ));
    }
    Ok(out)
}

/// Payload of a Set Chunk Size / Abort / Acknowledgement / Window Ack Size message.
pub fn encode_u32(value: u32) -> Bytes {
    Bytes::copy_from_slice(&value.to_be_bytes())
}

/// Payload of a Set Peer Bandwidth message.
pub fn encode_peer_bandwidth(size: u32, limit_type: u8) -> Bytes {
    let mut b = BytesMut::with_capacity(5);
    b.put_u32(size);
    b.put_u8(limit_type);
    b.freeze()
}

/// Payload of a user control message.
pub fn encode_user_control(event: &UserControl) -> Bytes {
    let mut b = BytesMut::with_capacity(10);
    match event {
        UserControl::StreamBegin(id) => put_event(&mut b, 0, *id),
        UserControl::StreamEof(id) => put_event(&mut b, 1, *id),
        UserControl::StreamDry(id) => put_event(&mut b, 2, *id),
        UserControl::SetBufferLength { stream_id, millis } => {
            put_event(&mut b, 3, *stream_id);
            b.put_u32(*millis);
        }
        UserControl::StreamIsRecorded(id) => put_event(&mut b, 4, *id),
        UserControl::PingRequest(t) => put_event(&mut b, 6, *t),
        UserControl::PingResponse(t) => put_event(&mut b, 7, *t),
        UserControl::Other { event_type, data } => {
            b.put_u16(*event_type);
            b.put_slice(data);
        }
    }
    b.freeze()
}

fn put_event(b: &mut BytesMut, event: u16, value: u32) {
    b.put_u16(event);
    b.put_u32(value);
}

/// Payload of an AMF0 command message.
pub fn encode_command(
    name: &str,
    transaction_id: f64,
    object: &Amf0Value,
    args: &[Amf0Value],
) -> Bytes {
    let mut b = BytesMut::with_capacity(128);
    amf0::encode(&Amf0Value::string(name), &mut b);
    amf0::encode(&Amf0Value::Number(transaction_id), &mut b);
    amf0::encode(object, &mut b);
    for a in args {
        amf0::encode(a, &mut b);
    }
    b.freeze()
}

/// Payload of an AMF0 data message.
pub fn encode_data(values: &[Amf0Value]) -> Bytes {
    Bytes::from(amf0::encode_all(values))
}

/// Writes one message as chunks into `out`.
pub fn write_message(
    encoder: &ChunkEncoder,
    out: &mut BytesMut,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
) {
    let header = MessageHeader {
        timestamp,
        type_id,
        stream_id,
    };
    encoder.encode(csid, &header, payload, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(type_id: u8, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid: 3,
            header: MessageHeader {
                timestamp: 0,
                type_id,
                stream_id: 0,
            },
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn protocol_control_messages() {
        assert_eq!(
            Message::decode(&raw(1, &[0, 0, 16, 0])).unwrap(),
            Message::SetChunkSize(4096)
        );
        assert_eq!(
            Message::decode(&raw(6, &[0, 0x26, 0x25, 0xA0, 2])).unwrap(),
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit_type: 2
            }
        );
        assert!(matches!(
            Message::decode(&raw(5, &[0, 0])),
            Err(MessageError::Truncated { .. })
        ));
    }

    #[test]
    fn user_control_round_trip() {
        for ev in [
            UserControl::StreamBegin(1),
            UserControl::StreamEof(1),
            UserControl::SetBufferLength {
                stream_id: 1,
                millis: 3000,
            },
            UserControl::PingRequest(77),
            UserControl::PingResponse(78),
        ] {
            let payload = encode_user_control(&ev);
            assert_eq!(
                Message::decode(&raw(4, &payload)).unwrap(),
                Message::UserControl(ev)
            );
        }
        assert!(Message::decode(&raw(4, &[0, 3, 0, 0, 0, 1])).is_err());
    }

    #[test]
    fn command_round_trip_amf0_and_amf3_envelope() {
        let obj = Amf0Value::object([("app", Amf0Value::string("live"))]);
        let payload = encode_command("connect", 1.0, &obj, &[Amf0Value::Boolean(true)]);
        let expected = Message::Command(Command {
            name: "connect".into(),
            transaction_id: 1.0,
            object: obj,
            args: vec![Amf0Value::Boolean(true)],
        });
        assert_eq!(Message::decode(&raw(20, &payload)).unwrap(), expected);
        let mut amf3_env = vec![0u8];
        amf3_env.extend_from_slice(&payload);
        assert_eq!(Message::decode(&raw(17, &amf3_env)).unwrap(), expected);
    }

    #[test]
    fn set_data_frame_wrapper_is_stripped_without_copy() {
        let meta = encode_data(&[
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(1280.0))]),
        ]);
        let mut wrapped = encode_data(&[Amf0Value::string("@setDataFrame")]).to_vec();
        wrapped.extend_from_slice(&meta);
        match Message::decode(&raw(18, &wrapped)).unwrap() {
            Message::Data {
                name,
                payload,
                values,
            } => {
                assert_eq!(name.as_deref(), Some("onMetaData"));
                assert_eq!(payload, meta);
                assert_eq!(values.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aggregate_is_split_and_rebased() {
        let mut p = Vec::new();
        for (ty, ts, body) in [(9u8, 1000u32, &b"abc"[..]), (8, 1020, &b"de"[..])] {
            p.push(ty);
            p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            p.extend_from_slice(&ts.to_be_bytes()[1..]);
            p.push((ts >> 24) as u8);
            p.extend_from_slice(&[0, 0, 0]);
            p.extend_from_slice(body);
            p.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        let mut r = raw(22, &p);
        r.header.timestamp = 5000;
        r.header.stream_id = 1;
        let Message::Aggregate(parts) = Message::decode(&r).unwrap() else {
            panic!()
        };
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].0,
            MessageHeader {
                timestamp: 5000,
                type_id: 9,
                stream_id: 1
            }
        );
        assert_eq!(parts[1].0.timestamp, 5020);
        assert_eq!(&parts[1].1[..], b"de");
        assert_eq!(
            Message::decode(&raw(22, &p[..13])),
            Err(MessageError::BadAggregate)
        );
    }
}
