//! AMF3 decoding, mapped onto [`Amf0Value`] so that the rest of the stack handles one model.
//!
//! Clients send AMF3 in command messages (type 17) and data messages (type 15), and inside AMF0 after
//! the `avmplus-object` marker (0x11). Only decoding is needed: Rill always answers in AMF0.

use crate::amf0::{Amf0Value, AmfError};

/// Decodes one AMF3 value from the front of `buf`, advancing it. String, object and trait reference
/// tables are per call (one top-level value).
pub fn decode(buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
    let _ = buf;
    todo!()
}
