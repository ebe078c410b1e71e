//! AMF0 values: decoding and encoding of every AMF0 type, with an AMF3 escape (`avmplus-object`).

use bytes::BufMut;

/// Nesting deeper than this is refused, so hostile input cannot overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// One AMF0 value. Objects keep their properties in wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// Short (0x02) string. Invalid UTF-8 is replaced lossily.
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Index into the table of complex values already decoded in this message.
    Reference(u16),
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    Date { millis: f64, timezone: i16 },
    LongString(String),
    Unsupported,
    XmlDocument(String),
    TypedObject { class_name: String, properties: Vec<(String, Amf0Value)> },
    /// A value that was carried as AMF3 (after the 0x11 switch marker), mapped to the AMF0 model.
    /// Encoding writes it back as its AMF0 equivalent.
    Amf3(Box<Amf0Value>),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AmfError {
    #[error("AMF data ends early")]
    Truncated,
    #[error("unknown AMF0 type marker 0x{0:02x}")]
    UnknownMarker(u8),
    #[error("unknown AMF3 type marker 0x{0:02x}")]
    UnknownAmf3Marker(u8),
    #[error("AMF nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("AMF length or count out of range")]
    BadLength,
    #[error("AMF3 reference {0} not found")]
    BadReference(u32),
}

impl Amf0Value {
    /// The string of a `String` or `LongString` (looking through `Amf3`).
    pub fn as_str(&self) -> Option<&str> {
        todo!()
    }
    /// The number of a `Number` (looking through `Amf3`).
    pub fn as_f64(&self) -> Option<f64> {
        todo!()
    }
    /// The boolean of a `Boolean` (looking through `Amf3`).
    pub fn as_bool(&self) -> Option<bool> {
        todo!()
    }
    /// Property `key` of an `Object`, `EcmaArray` or `TypedObject` (looking through `Amf3`).
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        let _ = key;
        todo!()
    }
    /// Builds an `Object` from `(key, value)` pairs.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Self {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    /// A `String` (or `LongString` if longer than 65535 bytes).
    pub fn string(s: impl Into<String>) -> Self {
        let s = s.into();
        if s.len() > u16::MAX as usize {
            Amf0Value::LongString(s)
        } else {
            Amf0Value::String(s)
        }
    }
}

/// Decodes one value from the front of `buf`, advancing it.
pub fn decode(buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
    let _ = buf;
    todo!()
}

/// Decodes every value in `buf`.
pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(decode(&mut buf)?);
    }
    Ok(out)
}

/// Appends the AMF0 encoding of `value` to `out`.
pub fn encode(value: &Amf0Value, out: &mut impl BufMut) {
    let _ = (value, out);
    todo!()
}

/// Encodes a sequence of values into a new vector.
pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}
