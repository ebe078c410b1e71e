//! Session state machines: [`server`] answers publishers and players, [`client`] publishes and plays.
//!
//! Both are sans-IO: the caller appends received bytes to a `BytesMut` and calls `feed`, then
//! drains events with `poll_event` and bytes to send with `take_output`.

pub mod client;
pub mod server;
mod wire;

use crate::amf0::Amf0Value;
use crate::chunk::ChunkError;
use crate::handshake::HandshakeError;
use crate::message::MessageError;

/// Why a session cannot go on. Each ends that connection only.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("message: {0}")]
    Message(#[from] MessageError),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

/// Splits `name?query` into its parts (query without the `?`).
pub fn split_query(s: &str) -> (&str, &str) {
    match s.split_once('?') {
        Some((n, q)) => (n, q),
        None => (s, ""),
    }
}

/// A `NetStatus` info object.
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

#[cfg(test)]
mod tests;
