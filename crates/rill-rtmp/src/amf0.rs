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
    Date {
        millis: f64,
        timezone: i16,
    },
    LongString(String),
    Unsupported,
    XmlDocument(String),
    TypedObject {
        class_name: String,
        properties: Vec<(String, Amf0Value)>,
    },
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
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            Amf0Value::Amf3(inner) => inner.as_str(),
            _ => None,
        }
    }
    /// The number of a `Number` (looking through `Amf3`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            Amf0Value::Amf3(inner) => inner.as_f64(),
            _ => None,
        }
    }
    /// The boolean of a `Boolean` (looking through `Amf3`).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            Amf0Value::Amf3(inner) => inner.as_bool(),
            _ => None,
        }
    }
    /// Property `key` of an `Object`, `EcmaArray` or `TypedObject` (looking through `Amf3`).
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(props)
            | Amf0Value::EcmaArray(props)
            | Amf0Value::TypedObject {
                properties: props, ..
            } => props.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Amf0Value::Amf3(inner) => inner.get(key),
            _ => None,
        }
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
///
/// A top-level object or ECMA array whose end marker is missing at the very end of `buf` is accepted
/// as complete: some old Flash-era encoders omit it (typically in `onMetaData`), and nothing can
/// follow it anyway. Nested containers must be terminated properly.
pub fn decode(buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
    decode_value(buf, 0)
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
///
/// Lengths the format cannot express are cut rather than written wrongly: property keys and class
/// names longer than 65535 bytes are truncated at a character boundary, and strings or arrays
/// beyond `u32::MAX` bytes or elements are truncated to that size.
pub fn encode(value: &Amf0Value, out: &mut impl BufMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        // The short form cannot hold more than 65535 bytes, whatever the variant says.
        Amf0Value::String(s) if s.len() > u16::MAX as usize => put_long_string(out, s),
        Amf0Value::String(s) => {
            out.put_u8(marker::STRING);
            put_short_str(out, s);
        }
        Amf0Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            put_props(out, props);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::Reference(idx) => {
            out.put_u8(marker::REFERENCE);
            out.put_u16(*idx);
        }
        Amf0Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            put_props(out, props);
        }
        Amf0Value::StrictArray(items) => {
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(count);
            for item in items.iter().take(count as usize) {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Amf0Value::LongString(s) => put_long_string(out, s),
        Amf0Value::Unsupported => out.put_u8(marker::UNSUPPORTED),
        Amf0Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            put_long_str(out, s);
        }
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_short_str(out, class_name);
            put_props(out, properties);
        }
        Amf0Value::Amf3(inner) => encode(inner, out),
    }
}

/// AMF0 type markers (AMF0 specification, section 2.1).
mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const RECORDSET: u8 = 0x0E;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS_OBJECT: u8 = 0x11;
}

fn decode_value(buf: &mut &[u8], depth: usize) -> Result<Amf0Value, AmfError> {
    let m = read_u8(buf)?;
    Ok(match m {
        marker::NUMBER => Amf0Value::Number(read_f64(buf)?),
        marker::BOOLEAN => Amf0Value::Boolean(read_u8(buf)? != 0),
        marker::STRING => Amf0Value::String(read_short_string(buf)?),
        marker::OBJECT => {
            check_depth(depth)?;
            Amf0Value::Object(read_props(buf, depth)?)
        }
        marker::NULL => Amf0Value::Null,
        marker::UNDEFINED => Amf0Value::Undefined,
        marker::REFERENCE => Amf0Value::Reference(read_u16(buf)?),
        marker::ECMA_ARRAY => {
            check_depth(depth)?;
            // The count is only a hint (encoders get it wrong); the end marker is authoritative.
            let _count = read_u32(buf)?;
            Amf0Value::EcmaArray(read_props(buf, depth)?)
        }
        marker::STRICT_ARRAY => {
            check_depth(depth)?;
            let count = read_u32(buf)? as usize;
            // Every element takes at least one byte, so a larger count cannot be satisfied.
            if count > buf.len() {
                return Err(AmfError::Truncated);
            }
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(decode_value(buf, depth + 1)?);
            }
            Amf0Value::StrictArray(items)
        }
        marker::DATE => {
            let millis = read_f64(buf)?;
            let timezone = read_i16(buf)?;
            Amf0Value::Date { millis, timezone }
        }
        marker::LONG_STRING => Amf0Value::LongString(read_long_string(buf)?),
        marker::UNSUPPORTED => Amf0Value::Unsupported,
        marker::XML_DOCUMENT => Amf0Value::XmlDocument(read_long_string(buf)?),
        marker::TYPED_OBJECT => {
            check_depth(depth)?;
            let class_name = read_short_string(buf)?;
            let properties = read_props(buf, depth)?;
            Amf0Value::TypedObject {
                class_name,
                properties,
            }
        }
        marker::AVMPLUS_OBJECT => {
            Amf0Value::Amf3(Box::new(crate::amf3::decode_at_depth(buf, depth)?))
        }
        // Movieclip and recordset are reserved and have no defined encoding; object-end is only
        // meaningful as a terminator inside a property list.
        marker::MOVIECLIP | marker::RECORDSET | marker::OBJECT_END => {
            return Err(AmfError::UnknownMarker(m))
        }
        other => return Err(AmfError::UnknownMarker(other)),
    })
}

fn check_depth(depth: usize) -> Result<(), AmfError> {
    if depth >= MAX_DEPTH {
        Err(AmfError::TooDeep)
    } else {
        Ok(())
    }
}

/// Reads `key value` pairs up to the `00 00 09` terminator. `depth` is the container's own depth.
fn read_props(buf: &mut &[u8], depth: usize) -> Result<Vec<(String, Amf0Value)>, AmfError> {
    // Only the outermost container may lack its end marker (see `decode`).
    let lenient = depth == 0;
    let mut props = Vec::new();
    loop {
        if lenient && buf.is_empty() {
            break;
        }
        let key = read_short_string(buf)?;
        if key.is_empty() {
            if lenient && buf.is_empty() {
                break;
            }
            if buf.first() == Some(&marker::OBJECT_END) {
                take(buf, 1)?;
                break;
            }
            // An empty key followed by a real value is a property named "" (no value can start
            // with the object-end marker, so this is unambiguous).
        }
        let value = decode_value(buf, depth + 1)?;
        props.push((key, value));
    }
    Ok(props)
}

/// Splits `n` bytes off the front of `buf`.
pub(crate) fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    if buf.len() < n {
        return Err(AmfError::Truncated);
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn take_array<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], AmfError> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(buf, N)?);
    Ok(out)
}

pub(crate) fn read_u8(buf: &mut &[u8]) -> Result<u8, AmfError> {
    Ok(take_array::<1>(buf)?[0])
}

pub(crate) fn read_u16(buf: &mut &[u8]) -> Result<u16, AmfError> {
    take_array(buf).map(u16::from_be_bytes)
}

fn read_i16(buf: &mut &[u8]) -> Result<i16, AmfError> {
    take_array(buf).map(i16::from_be_bytes)
}

pub(crate) fn read_u32(buf: &mut &[u8]) -> Result<u32, AmfError> {
    take_array(buf).map(u32::from_be_bytes)
}

pub(crate) fn read_f64(buf: &mut &[u8]) -> Result<f64, AmfError> {
    take_array(buf).map(f64::from_be_bytes)
}

fn read_short_string(buf: &mut &[u8]) -> Result<String, AmfError> {
    let len = read_u16(buf)? as usize;
    Ok(String::from_utf8_lossy(take(buf, len)?).into_owned())
}

fn read_long_string(buf: &mut &[u8]) -> Result<String, AmfError> {
    let len = read_u32(buf)? as usize;
    Ok(String::from_utf8_lossy(take(buf, len)?).into_owned())
}

/// The longest prefix of `s` that fits in `max` bytes without splitting a character.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_short_str(out: &mut impl BufMut, s: &str) {
    let s = truncate_utf8(s, u16::MAX as usize);
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

fn put_long_str(out: &mut impl BufMut, s: &str) {
    let s = truncate_utf8(s, u32::MAX as usize);
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn put_long_string(out: &mut impl BufMut, s: &str) {
    out.put_u8(marker::LONG_STRING);
    put_long_str(out, s);
}

fn put_props(out: &mut impl BufMut, props: &[(String, Amf0Value)]) {
    for (key, value) in props {
        put_short_str(out, key);
        encode(value, out);
    }
    out.put_slice(&[0x00, 0x00, marker::OBJECT_END]);
}

/// Encodes a sequence of values into a new vector.
pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `["connect", 1.0, {app, type, flashVer, tcUrl}]` as FFmpeg's RTMP client sends it.
    const CONNECT: &[u8] = b"\x02\x00\x07connect\
        \x00\x3f\xf0\x00\x00\x00\x00\x00\x00\
        \x03\
        \x00\x03app\x02\x00\x04live\
        \x00\x04type\x02\x00\x0anonprivate\
        \x00\x08flashVer\x02\x00\x1fFMLE/3.0 (compatible; FMSc/1.0)\
        \x00\x05tcUrl\x02\x00\x15rtmp://localhost/live\
        \x00\x00\x09";

    fn connect_values() -> Vec<Amf0Value> {
        vec![
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("type", Amf0Value::string("nonprivate")),
                (
                    "flashVer",
                    Amf0Value::string("FMLE/3.0 (compatible; FMSc/1.0)"),
                ),
                ("tcUrl", Amf0Value::string("rtmp://localhost/live")),
            ]),
        ]
    }

    fn round_trip(bytes: &[u8], expected: Amf0Value) {
        let mut buf = bytes;
        assert_eq!(decode(&mut buf).unwrap(), expected);
        assert!(buf.is_empty(), "decode left {} bytes", buf.len());
        assert_eq!(encode_all(&[expected]), bytes);
    }

    #[test]
    fn connect_command_round_trips() {
        let values = decode_all(CONNECT).unwrap();
        assert_eq!(values, connect_values());
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_f64(), Some(1.0));
        assert_eq!(
            values[2].get("tcUrl").and_then(Amf0Value::as_str),
            Some("rtmp://localhost/live")
        );
        assert_eq!(encode_all(&values), CONNECT);
    }

    #[test]
    fn scalars_round_trip() {
        round_trip(
            b"\x00\x3f\xf0\x00\x00\x00\x00\x00\x00",
            Amf0Value::Number(1.0),
        );
        round_trip(
            b"\x00\xc0\x09\x21\xfb\x54\x44\x2d\x18",
            Amf0Value::Number(-std::f64::consts::PI),
        );
        round_trip(b"\x01\x01", Amf0Value::Boolean(true));
        round_trip(b"\x01\x00", Amf0Value::Boolean(false));
        round_trip(b"\x02\x00\x00", Amf0Value::String(String::new()));
        round_trip(b"\x02\x00\x03abc", Amf0Value::String("abc".into()));
        round_trip(b"\x02\x00\x02\xc3\xa9", Amf0Value::String("é".into()));
        round_trip(b"\x05", Amf0Value::Null);
        round_trip(b"\x06", Amf0Value::Undefined);
        round_trip(b"\x07\x01\x02", Amf0Value::Reference(0x0102));
        round_trip(b"\x0d", Amf0Value::Unsupported);
        round_trip(
            b"\x0b\x42\x70\x00\x00\x00\x00\x00\x00\xff\xc4",
            Amf0Value::Date {
                millis: 1_099_511_627_776.0,
                timezone: -60,
            },
        );
        round_trip(
            b"\x0c\x00\x00\x00\x02hi",
            Amf0Value::LongString("hi".into()),
        );
        round_trip(
            b"\x0f\x00\x00\x00\x04<a/>",
            Amf0Value::XmlDocument("<a/>".into()),
        );
    }

    #[test]
    fn containers_round_trip() {
        round_trip(b"\x03\x00\x00\x09", Amf0Value::Object(vec![]));
        round_trip(
            b"\x03\x00\x01a\x05\x00\x01b\x03\x00\x01c\x01\x01\x00\x00\x09\x00\x00\x09",
            Amf0Value::object([
                ("a", Amf0Value::Null),
                ("b", Amf0Value::object([("c", Amf0Value::Boolean(true))])),
            ]),
        );
        round_trip(
            b"\x08\x00\x00\x00\x02\x00\x05width\x00\x40\x94\x00\x00\x00\x00\x00\x00\
              \x00\x06height\x00\x40\x86\x80\x00\x00\x00\x00\x00\x00\x00\x09",
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(1280.0)),
                ("height".into(), Amf0Value::Number(720.0)),
            ]),
        );
        round_trip(
            b"\x08\x00\x00\x00\x00\x00\x00\x09",
            Amf0Value::EcmaArray(vec![]),
        );
        round_trip(
            b"\x0a\x00\x00\x00\x03\x05\x06\x02\x00\x01x",
            Amf0Value::StrictArray(vec![
                Amf0Value::Null,
                Amf0Value::Undefined,
                Amf0Value::string("x"),
            ]),
        );
        round_trip(b"\x0a\x00\x00\x00\x00", Amf0Value::StrictArray(vec![]));
        round_trip(
            b"\x10\x00\x03Foo\x00\x01n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09",
            Amf0Value::TypedObject {
                class_name: "Foo".into(),
                properties: vec![("n".into(), Amf0Value::Number(0.0))],
            },
        );
    }

    #[test]
    fn empty_key_with_value_is_a_property() {
        round_trip(
            b"\x03\x00\x00\x05\x00\x00\x09",
            Amf0Value::object([("", Amf0Value::Null)]),
        );
    }

    #[test]
    fn ecma_array_count_is_only_a_hint() {
        let bytes = b"\x08\xff\xff\xff\xff\x00\x01a\x05\x00\x00\x09";
        let mut buf = &bytes[..];
        assert_eq!(
            decode(&mut buf).unwrap(),
            Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Null)])
        );
        assert!(buf.is_empty());
        // Re-encoding writes the true count.
        assert_eq!(
            encode_all(&[decode_all(bytes).unwrap().remove(0)])[1..5],
            [0, 0, 0, 1]
        );
    }

    #[test]
    fn strict_array_count_beyond_input_is_rejected() {
        assert_eq!(
            decode(&mut &b"\x0a\xff\xff\xff\xff\x05\x05"[..]),
            Err(AmfError::Truncated)
        );
    }

    #[test]
    fn long_string_variant_is_always_long_and_long_string_is_forced() {
        // A short string in a long-string marker stays a LongString so it re-encodes identically.
        round_trip(
            b"\x0c\x00\x00\x00\x00",
            Amf0Value::LongString(String::new()),
        );
        let big = "x".repeat(70_000);
        let bytes = encode_all(&[Amf0Value::String(big.clone())]);
        assert_eq!(bytes[0], 0x0c);
        assert_eq!(bytes[1..5], 70_000u32.to_be_bytes());
        assert_eq!(bytes.len(), 5 + 70_000);
        assert_eq!(
            decode_all(&bytes).unwrap(),
            vec![Amf0Value::LongString(big.clone())]
        );
        assert_eq!(Amf0Value::string(big.clone()), Amf0Value::LongString(big));
        let exact = "y".repeat(65_535);
        assert_eq!(
            encode_all(&[Amf0Value::String(exact)])[..3],
            [0x02, 0xff, 0xff]
        );
    }

    #[test]
    fn overlong_key_is_truncated_on_a_char_boundary() {
        let key = "é".repeat(40_000); // 80000 bytes
        let bytes = encode_all(&[Amf0Value::object([(key, Amf0Value::Null)])]);
        let decoded = decode_all(&bytes).unwrap();
        let Amf0Value::Object(props) = &decoded[0] else {
            panic!("not an object")
        };
        assert_eq!(props[0].0.len(), 65_534);
        assert!(props[0].0.chars().all(|c| c == 'é'));
    }

    #[test]
    fn reserved_and_unknown_markers_are_rejected() {
        for m in [0x04u8, 0x09, 0x0e, 0x12, 0xff] {
            assert_eq!(
                decode(&mut &[m, 0, 0, 0][..]),
                Err(AmfError::UnknownMarker(m))
            );
        }
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let v = decode_all(b"\x02\x00\x02\xff\xfe").unwrap();
        assert_eq!(v, vec![Amf0Value::String("\u{fffd}\u{fffd}".into())]);
        let v = decode_all(b"\x03\x00\x01\xff\x05\x00\x00\x09").unwrap();
        assert!(v[0].get("\u{fffd}").is_some());
    }

    #[test]
    fn missing_end_marker_accepted_only_for_last_top_level_object() {
        let props = vec![("a".to_string(), Amf0Value::Null)];
        assert_eq!(
            decode_all(b"\x03\x00\x01a\x05").unwrap(),
            vec![Amf0Value::Object(props.clone())]
        );
        assert_eq!(
            decode_all(b"\x03\x00\x01a\x05\x00\x00").unwrap(),
            vec![Amf0Value::Object(props.clone())]
        );
        assert_eq!(
            decode_all(b"\x02\x00\x01k\x08\x00\x00\x00\x01\x00\x01a\x05").unwrap(),
            vec![Amf0Value::string("k"), Amf0Value::EcmaArray(props)]
        );
        // Nested containers must be closed.
        assert_eq!(
            decode_all(b"\x03\x00\x01o\x03\x00\x01a\x05"),
            Err(AmfError::Truncated)
        );
        assert_eq!(
            decode_all(b"\x0a\x00\x00\x00\x01\x03\x00\x01a\x05"),
            Err(AmfError::Truncated)
        );
        // A half-written key or value is still truncation.
        assert_eq!(decode_all(b"\x03\x00\x01a"), Err(AmfError::Truncated));
        assert_eq!(decode_all(b"\x03\x00"), Err(AmfError::Truncated));
    }

    fn all_types_value() -> Amf0Value {
        Amf0Value::StrictArray(vec![
            Amf0Value::Number(2.5),
            Amf0Value::Boolean(true),
            Amf0Value::string("str"),
            Amf0Value::object([("k", Amf0Value::Null), ("u", Amf0Value::Undefined)]),
            Amf0Value::Reference(3),
            Amf0Value::EcmaArray(vec![("e".into(), Amf0Value::Number(1.0))]),
            Amf0Value::Date {
                millis: 5.0,
                timezone: 0,
            },
            Amf0Value::LongString("long".into()),
            Amf0Value::Unsupported,
            Amf0Value::XmlDocument("<x/>".into()),
            Amf0Value::TypedObject {
                class_name: "C".into(),
                properties: vec![],
            },
        ])
    }

    #[test]
    fn every_prefix_of_closed_input_is_an_error() {
        let bytes = encode_all(&[all_types_value()]);
        assert_eq!(decode_all(&bytes).unwrap(), vec![all_types_value()]);
        for len in 0..bytes.len() {
            let mut buf = &bytes[..len];
            assert!(decode(&mut buf).is_err(), "prefix of {len} bytes decoded");
        }
    }

    #[test]
    fn every_prefix_of_connect_is_an_error_or_a_lenient_prefix() {
        let full = connect_values();
        let Amf0Value::Object(full_props) = &full[2] else {
            unreachable!()
        };
        for len in 0..CONNECT.len() {
            match decode_all(&CONNECT[..len]) {
                Err(_) => {}
                // Only a cut between values, or at a property boundary of the last object, can
                // succeed.
                Ok(values) if values.len() < 3 => assert_eq!(values[..], full[..values.len()]),
                Ok(values) => {
                    assert_eq!(values.len(), 3, "prefix {len}");
                    assert_eq!(values[..2], full[..2]);
                    let Amf0Value::Object(props) = &values[2] else {
                        panic!("prefix {len}")
                    };
                    assert_eq!(props[..], full_props[..props.len()]);
                }
            }
        }
    }

    #[test]
    fn depth_limit() {
        let nested = |n: usize| {
            let mut bytes = Vec::new();
            for _ in 0..n {
                bytes.extend_from_slice(b"\x0a\x00\x00\x00\x01");
            }
            bytes.push(0x05);
            bytes
        };
        assert!(decode_all(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(decode_all(&nested(MAX_DEPTH + 1)), Err(AmfError::TooDeep));
        assert_eq!(decode_all(&nested(100_000)), Err(AmfError::TooDeep));

        let mut objects = Vec::new();
        for _ in 0..100_000 {
            objects.extend_from_slice(b"\x03\x00\x01a");
        }
        assert_eq!(decode_all(&objects), Err(AmfError::TooDeep));
    }

    #[test]
    fn avmplus_switch_decodes_amf3() {
        // ["connect", 1.0, AMF3 {app: "live"}]
        let bytes = b"\x02\x00\x07connect\x00\x3f\xf0\x00\x00\x00\x00\x00\x00\
            \x11\x0a\x0b\x01\x07app\x06\x09live\x01\
            \x05";
        let values = decode_all(bytes).unwrap();
        let inner = Amf0Value::object([("app", Amf0Value::string("live"))]);
        assert_eq!(
            values,
            vec![
                Amf0Value::string("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::Amf3(Box::new(inner.clone())),
                Amf0Value::Null,
            ]
        );
        assert_eq!(
            values[2].get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
        // Written back as plain AMF0.
        assert_eq!(encode_all(&values[2..3]), encode_all(&[inner]));
        // The depth limit holds across the switch.
        let deep = |amf0_levels: usize| {
            let mut bytes = vec![];
            for _ in 0..amf0_levels {
                bytes.extend_from_slice(b"\x0a\x00\x00\x00\x01");
            }
            bytes.extend_from_slice(b"\x11\x09\x03\x01\x01");
            bytes
        };
        assert!(decode_all(&deep(MAX_DEPTH - 1)).is_ok());
        assert_eq!(decode_all(&deep(MAX_DEPTH)), Err(AmfError::TooDeep));
    }

    #[test]
    fn accessors() {
        let wrapped = Amf0Value::Amf3(Box::new(Amf0Value::Number(3.0)));
        assert_eq!(wrapped.as_f64(), Some(3.0));
        assert_eq!(Amf0Value::Boolean(true).as_bool(), Some(true));
        assert_eq!(
            Amf0Value::Amf3(Box::new(Amf0Value::Boolean(false))).as_bool(),
            Some(false)
        );
        assert_eq!(Amf0Value::LongString("l".into()).as_str(), Some("l"));
        assert_eq!(Amf0Value::Number(1.0).as_str(), None);
        assert_eq!(Amf0Value::Null.as_f64(), None);
        assert_eq!(Amf0Value::Null.as_bool(), None);
        let typed = Amf0Value::TypedObject {
            class_name: "C".into(),
            properties: vec![("p".into(), Amf0Value::Null)],
        };
        assert_eq!(typed.get("p"), Some(&Amf0Value::Null));
        assert_eq!(typed.get("q"), None);
        let ecma = Amf0Value::EcmaArray(vec![("p".into(), Amf0Value::Undefined)]);
        assert_eq!(ecma.get("p"), Some(&Amf0Value::Undefined));
        assert_eq!(Amf0Value::StrictArray(vec![]).get("p"), None);
    }

    fn arb_f64() -> impl Strategy<Value = f64> {
        any::<f64>().prop_filter("NaN never compares equal", |f| !f.is_nan())
    }

    fn arb_value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            arb_f64().prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,12}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
            any::<u16>().prop_map(Amf0Value::Reference),
            (arb_f64(), any::<i16>())
                .prop_map(|(millis, timezone)| Amf0Value::Date { millis, timezone }),
            ".{0,12}".prop_map(Amf0Value::LongString),
            Just(Amf0Value::Unsupported),
            ".{0,12}".prop_map(Amf0Value::XmlDocument),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let props = prop::collection::vec((".{0,6}", inner.clone()), 0..6);
            prop_oneof![
                props.clone().prop_map(Amf0Value::Object),
                props.clone().prop_map(Amf0Value::EcmaArray),
                prop::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
                (".{0,6}", props).prop_map(|(class_name, properties)| Amf0Value::TypedObject {
                    class_name,
                    properties
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn prop_round_trip(values in prop::collection::vec(arb_value(), 0..4)) {
            let bytes = encode_all(&values);
            prop_assert_eq!(&decode_all(&bytes).unwrap(), &values);
            prop_assert_eq!(encode_all(&decode_all(&bytes).unwrap()), bytes);
        }

        #[test]
        fn prop_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_all(&bytes);
        }

        #[test]
        fn prop_prefixes_never_panic(value in arb_value(), cut in any::<prop::sample::Index>()) {
            let bytes = encode_all(&[value]);
            let len = cut.index(bytes.len().max(1));
            let mut buf = &bytes[..len.min(bytes.len())];
            let _ = decode(&mut buf);
        }
    }
}
