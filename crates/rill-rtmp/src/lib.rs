//! Sans-IO implementation of the RTMP wire protocol.
//!
//! Bytes go in, events come out; commands go in, bytes come out. Nothing here touches a socket or a
//! runtime, so every part is testable and fuzzable on its own:
//! - [`handshake`]: simple and digest ("complex", FP9) handshakes, server and client roles;
//! - [`chunk`]: the chunk stream decoder and the stateless, shareable chunk encoder;
//! - [`amf0`] / [`amf3`]: Action Message Format values;
//! - [`message`]: typed RTMP messages (protocol control, user control, commands, data, media);
//! - [`session`]: server and client session state machines built on all of the above.

pub mod amf0;
pub mod amf3;
pub mod chunk;
pub mod handshake;
pub mod message;
pub mod session;
