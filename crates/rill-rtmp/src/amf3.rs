//! AMF3 decoding, mapped onto [`Amf0Value`] so that the rest of the stack handles one model.
//!
//! Clients send AMF3 in command messages (type 17) and data messages (type 15), and inside AMF0 after
//! the `avmplus-object` marker (0x11). Only decoding is needed: Rill always answers in AMF0.
//!
//! Mapping: integers and doubles become `Number`, strings `String` (or `LongString` past 65535
//! bytes), XML and XMLDocument `XmlDocument`, dates `Date` with timezone 0, arrays `StrictArray` (or
//! `EcmaArray` when they have an associative part, the dense elements then keyed "0", "1", ...),
//! anonymous objects `Object`, named ones `TypedObject`, vectors `StrictArray`, byte arrays
//! `Unsupported`. Externalizable objects and dictionaries cannot be parsed without knowing the
//! application's classes and are refused.
//!
//! References to earlier complex values are resolved to clones, within a work budget proportional
//! to the input size so that a few bytes of nested references cannot expand into gigabytes. Past
//! that budget, and for references to a value still being decoded (cycles), the result is
//! [`Amf0Value::Reference`] with the AMF3 object-table index.

use crate::amf0::{read_f64, read_u32, read_u8, take, Amf0Value, AmfError, MAX_DEPTH};

/// Decodes one AMF3 value from the front of `buf`, advancing it. String, object and trait reference
/// tables are per call (one top-level value).
pub fn decode(buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
    decode_at_depth(buf, 0)
}

/// Like [`decode`], for a value nested `depth` containers deep in an enclosing AMF0 value, so the
/// depth limit holds across the 0x11 switch.
pub(crate) fn decode_at_depth(buf: &mut &[u8], depth: usize) -> Result<Amf0Value, AmfError> {
    Decoder::new(buf.len()).value(buf, depth)
}

/// AMF3 type markers (AMF3 specification, section 3.1).
mod marker {
    pub const UNDEFINED: u8 = 0x00;
    pub const NULL: u8 = 0x01;
    pub const FALSE: u8 = 0x02;
    pub const TRUE: u8 = 0x03;
    pub const INTEGER: u8 = 0x04;
    pub const DOUBLE: u8 = 0x05;
    pub const STRING: u8 = 0x06;
    pub const XML_DOC: u8 = 0x07;
    pub const DATE: u8 = 0x08;
    pub const ARRAY: u8 = 0x09;
    pub const OBJECT: u8 = 0x0A;
    pub const XML: u8 = 0x0B;
    pub const BYTE_ARRAY: u8 = 0x0C;
    pub const VECTOR_INT: u8 = 0x0D;
    pub const VECTOR_UINT: u8 = 0x0E;
    pub const VECTOR_DOUBLE: u8 = 0x0F;
    pub const VECTOR_OBJECT: u8 = 0x10;
}

/// Work units charged per produced value, on top of one unit per string byte; roughly the size of
/// an `Amf0Value`, so the budget tracks memory.
const NODE_COST: usize = 16;
/// Clone budget: this many units per input byte, plus a floor for tiny inputs, with a hard cap.
const BUDGET_PER_BYTE: usize = 64;
const BUDGET_FLOOR: usize = 1 << 16;
const BUDGET_CAP: usize = 1 << 26;

/// One entry of the object reference table.
enum Slot {
    /// Being decoded: a reference to it is a cycle.
    Pending,
    Stored {
        value: Amf0Value,
        cost: usize,
    },
    /// Too large to keep within the budget.
    Dropped,
}

#[derive(Clone)]
struct Traits {
    class_name: String,
    sealed: Vec<String>,
    dynamic: bool,
}

struct Decoder {
    strings: Vec<String>,
    objects: Vec<Slot>,
    traits: Vec<Traits>,
    /// Units produced so far (fresh and cloned); differences give the cost of a value.
    produced: usize,
    /// Units spent on copies (clones handed out and values kept in the object table).
    spent: usize,
    budget: usize,
}

impl Decoder {
    fn new(input_len: usize) -> Self {
        Decoder {
            strings: Vec::new(),
            objects: Vec::new(),
            traits: Vec::new(),
            produced: 0,
            spent: 0,
            budget: input_len
                .saturating_mul(BUDGET_PER_BYTE)
                .saturating_add(BUDGET_FLOOR)
                .min(BUDGET_CAP),
        }
    }

    fn value(&mut self, buf: &mut &[u8], depth: usize) -> Result<Amf0Value, AmfError> {
        self.produced = self.produced.saturating_add(NODE_COST);
        let m = read_u8(buf)?;
        Ok(match m {
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::NULL => Amf0Value::Null,
            marker::FALSE => Amf0Value::Boolean(false),
            marker::TRUE => Amf0Value::Boolean(true),
            marker::INTEGER => Amf0Value::Number(f64::from(sign_extend_u29(read_u29(buf)?))),
            marker::DOUBLE => Amf0Value::Number(read_f64(buf)?),
            marker::STRING => Amf0Value::string(self.string(buf)?),
            marker::XML_DOC | marker::XML => self.xml(buf)?,
            marker::DATE => self.date(buf)?,
            marker::ARRAY => self.array(buf, depth)?,
            marker::OBJECT => self.object(buf, depth)?,
            marker::BYTE_ARRAY => self.byte_array(buf)?,
            marker::VECTOR_INT
            | marker::VECTOR_UINT
            | marker::VECTOR_DOUBLE
            | marker::VECTOR_OBJECT => self.vector(buf, m, depth)?,
            // Dictionary (0x11) keys are arbitrary values, which the AMF0 model cannot hold.
            other => return Err(AmfError::UnknownAmf3Marker(other)),
        })
    }

    /// Takes `cost` units from the budget, if there are that many left.
    fn try_spend(&mut self, cost: usize) -> bool {
        match self.spent.checked_add(cost) {
            Some(total) if total <= self.budget => {
                self.spent = total;
                true
            }
            _ => false,
        }
    }

    /// Accounts for a copy that cannot be avoided (strings, trait member names).
    fn charge_clone(&mut self, cost: usize) -> Result<(), AmfError> {
        if !self.try_spend(cost) {
            return Err(AmfError::BadLength);
        }
        self.produced = self.produced.saturating_add(cost);
        Ok(())
    }

    /// A `UTF-8-vr`: inline (added to the string table unless empty) or a string-table reference.
    fn string(&mut self, buf: &mut &[u8]) -> Result<String, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 0 {
            let idx = header >> 1;
            let len = self
                .strings
                .get(idx as usize)
                .ok_or(AmfError::BadReference(idx))?
                .len();
            self.charge_clone(len)?;
            return self
                .strings
                .get(idx as usize)
                .cloned()
                .ok_or(AmfError::BadReference(idx));
        }
        let len = (header >> 1) as usize;
        let s = String::from_utf8_lossy(take(buf, len)?).into_owned();
        self.produced = self.produced.saturating_add(len);
        if !s.is_empty() {
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    /// Resolves an object-table reference: a clone if it fits the budget, else `Reference`.
    fn object_ref(&mut self, idx: u32) -> Result<Amf0Value, AmfError> {
        let cost = match self.objects.get(idx as usize) {
            None => return Err(AmfError::BadReference(idx)),
            Some(Slot::Stored { cost, .. }) => Some(*cost),
            Some(Slot::Pending | Slot::Dropped) => None,
        };
        if let Some(cost) = cost {
            if self.try_spend(cost) {
                if let Some(Slot::Stored { value, .. }) = self.objects.get(idx as usize) {
                    self.produced = self.produced.saturating_add(cost);
                    return Ok(value.clone());
                }
            }
        }
        u16::try_from(idx)
            .map(Amf0Value::Reference)
            .map_err(|_| AmfError::BadLength)
    }

    /// Reserves the object-table index of a complex value before its contents are decoded, as the
    /// encoder numbered it.
    fn reserve(&mut self) -> usize {
        self.objects.push(Slot::Pending);
        self.objects.len() - 1
    }

    fn store(&mut self, slot: usize, value: &Amf0Value, cost: usize) {
        let entry = if self.try_spend(cost) {
            Slot::Stored {
                value: value.clone(),
                cost,
            }
        } else {
            Slot::Dropped
        };
        if let Some(s) = self.objects.get_mut(slot) {
            *s = entry;
        }
    }

    /// Stores a value that has no nested values and returns it.
    fn store_leaf(&mut self, value: Amf0Value, cost: usize) -> Amf0Value {
        let slot = self.reserve();
        self.store(slot, &value, cost);
        value
    }

    fn xml(&mut self, buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        let len = (header >> 1) as usize;
        let s = String::from_utf8_lossy(take(buf, len)?).into_owned();
        self.produced = self.produced.saturating_add(len);
        Ok(self.store_leaf(Amf0Value::XmlDocument(s), NODE_COST + len))
    }

    fn date(&mut self, buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        let millis = read_f64(buf)?;
        Ok(self.store_leaf(
            Amf0Value::Date {
                millis,
                timezone: 0,
            },
            NODE_COST,
        ))
    }

    fn byte_array(&mut self, buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        take(buf, (header >> 1) as usize)?;
        Ok(self.store_leaf(Amf0Value::Unsupported, NODE_COST))
    }

    fn array(&mut self, buf: &mut &[u8], depth: usize) -> Result<Amf0Value, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        check_depth(depth)?;
        let dense_len = (header >> 1) as usize;
        // Each element takes at least one byte.
        if dense_len > buf.len() {
            return Err(AmfError::Truncated);
        }
        let slot = self.reserve();
        let before = self.produced;
        let mut assoc = Vec::new();
        self.named_values(buf, depth, &mut assoc)?;
        let mut dense = Vec::with_capacity(dense_len);
        for _ in 0..dense_len {
            dense.push(self.value(buf, depth + 1)?);
        }
        let value = if assoc.is_empty() {
            Amf0Value::StrictArray(dense)
        } else {
            assoc.extend(
                dense
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v)),
            );
            Amf0Value::EcmaArray(assoc)
        };
        let cost = self.produced.saturating_sub(before);
        self.store(slot, &value, cost);
        Ok(value)
    }

    /// Name/value pairs up to the empty name that ends them: the associative part of an array
    /// and the dynamic members of an object share this layout.
    fn named_values(
        &mut self,
        buf: &mut &[u8],
        depth: usize,
        out: &mut Vec<(String, Amf0Value)>,
    ) -> Result<(), AmfError> {
        loop {
            let key = self.string(buf)?;
            if key.is_empty() {
                return Ok(());
            }
            let value = self.value(buf, depth + 1)?;
            out.push((key, value));
        }
    }

    fn object(&mut self, buf: &mut &[u8], depth: usize) -> Result<Amf0Value, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        check_depth(depth)?;
        let traits = if header & 2 == 0 {
            let idx = header >> 2;
            let traits = self
                .traits
                .get(idx as usize)
                .ok_or(AmfError::BadReference(idx))?;
            let cost =
                traits.class_name.len() + traits.sealed.iter().map(String::len).sum::<usize>();
            let traits = traits.clone();
            self.charge_clone(cost)?;
            traits
        } else if header & 4 != 0 {
            // Externalizable: the body is written by the class's own code, in a format we cannot know.
            return Err(AmfError::UnknownAmf3Marker(marker::OBJECT));
        } else {
            let dynamic = header & 8 != 0;
            let sealed_len = (header >> 4) as usize;
            let class_name = self.string(buf)?;
            // Each member name takes at least one byte.
            if sealed_len > buf.len() {
                return Err(AmfError::Truncated);
            }
            let mut sealed = Vec::with_capacity(sealed_len);
            for _ in 0..sealed_len {
                sealed.push(self.string(buf)?);
            }
            let traits = Traits {
                class_name,
                sealed,
                dynamic,
            };
            self.traits.push(traits.clone());
            traits
        };
        if traits.sealed.len() > buf.len() {
            return Err(AmfError::Truncated);
        }
        let slot = self.reserve();
        let before = self.produced;
        let mut props = Vec::with_capacity(traits.sealed.len());
        for name in traits.sealed {
            let value = self.value(buf, depth + 1)?;
            props.push((name, value));
        }
        if traits.dynamic {
            self.named_values(buf, depth, &mut props)?;
        }
        let value = if traits.class_name.is_empty() {
            Amf0Value::Object(props)
        } else {
            Amf0Value::TypedObject {
                class_name: traits.class_name,
                properties: props,
            }
        };
        let cost = self.produced.saturating_sub(before);
        self.store(slot, &value, cost);
        Ok(value)
    }

    fn vector(&mut self, buf: &mut &[u8], m: u8, depth: usize) -> Result<Amf0Value, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        check_depth(depth)?;
        let count = (header >> 1) as usize;
        let _fixed = read_u8(buf)?;
        if m == marker::VECTOR_OBJECT {
            let _type_name = self.string(buf)?;
        }
        let min_item = match m {
            marker::VECTOR_DOUBLE => 8,
            marker::VECTOR_OBJECT => 1,
            _ => 4,
        };
        if count.saturating_mul(min_item) > buf.len() {
            return Err(AmfError::Truncated);
        }
        let slot = self.reserve();
        let before = self.produced;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let item = match m {
                marker::VECTOR_INT => {
                    self.produced = self.produced.saturating_add(NODE_COST);
                    Amf0Value::Number(f64::from(read_u32(buf)? as i32))
                }
                marker::VECTOR_UINT => {
                    self.produced = self.produced.saturating_add(NODE_COST);
                    Amf0Value::Number(f64::from(read_u32(buf)?))
                }
                marker::VECTOR_DOUBLE => {
                    self.produced = self.produced.saturating_add(NODE_COST);
                    Amf0Value::Number(read_f64(buf)?)
                }
                _ => self.value(buf, depth + 1)?,
            };
            items.push(item);
        }
        let value = Amf0Value::StrictArray(items);
        let cost = self.produced.saturating_sub(before);
        self.store(slot, &value, cost);
        Ok(value)
    }
}

fn check_depth(depth: usize) -> Result<(), AmfError> {
    if depth >= MAX_DEPTH {
        Err(AmfError::TooDeep)
    } else {
        Ok(())
    }
}

/// Reads a U29: up to three bytes of 7 bits with a continuation flag, then a full 8-bit byte.
pub fn read_u29(buf: &mut &[u8]) -> Result<u32, AmfError> {
    let mut value = 0u32;
    for _ in 0..3 {
        let b = read_u8(buf)?;
        if b & 0x80 == 0 {
            return Ok((value << 7) | u32::from(b));
        }
        value = (value << 7) | u32::from(b & 0x7F);
    }
    Ok((value << 8) | u32::from(read_u8(buf)?))
}

/// Interprets a U29 as the 29-bit two's-complement integer of the AMF3 integer type.
pub fn sign_extend_u29(v: u32) -> i32 {
    // Shift the 29-bit sign into bit 31, then back with an arithmetic shift.
    ((v << 3) as i32) >> 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(bytes: &[u8]) -> Result<Amf0Value, AmfError> {
        let mut buf = bytes;
        let v = decode(&mut buf)?;
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        Ok(v)
    }

    /// Test-only U29 writer (Rill never encodes AMF3).
    fn u29(v: u32) -> Vec<u8> {
        match v {
            0..=0x7F => vec![v as u8],
            0x80..=0x3FFF => vec![(v >> 7) as u8 | 0x80, (v & 0x7F) as u8],
            0x4000..=0x1F_FFFF => {
                vec![
                    (v >> 14) as u8 | 0x80,
                    ((v >> 7) & 0x7F) as u8 | 0x80,
                    (v & 0x7F) as u8,
                ]
            }
            _ => vec![
                ((v >> 22) & 0x7F) as u8 | 0x80,
                ((v >> 15) & 0x7F) as u8 | 0x80,
                ((v >> 8) & 0x7F) as u8 | 0x80,
                v as u8,
            ],
        }
    }

    fn num(n: f64) -> Amf0Value {
        Amf0Value::Number(n)
    }

    #[test]
    fn simple_markers() {
        assert_eq!(dec(b"\x00"), Ok(Amf0Value::Undefined));
        assert_eq!(dec(b"\x01"), Ok(Amf0Value::Null));
        assert_eq!(dec(b"\x02"), Ok(Amf0Value::Boolean(false)));
        assert_eq!(dec(b"\x03"), Ok(Amf0Value::Boolean(true)));
        assert_eq!(dec(b"\x05\x3f\xf8\x00\x00\x00\x00\x00\x00"), Ok(num(1.5)));
    }

    #[test]
    fn integers() {
        let cases: &[(&[u8], f64)] = &[
            (b"\x04\x00", 0.0),
            (b"\x04\x01", 1.0),
            (b"\x04\x7f", 127.0),
            (b"\x04\x81\x00", 128.0),
            (b"\x04\xff\x7f", 16_383.0),
            (b"\x04\x81\x80\x00", 16_384.0),
            (b"\x04\xff\xff\x7f", 2_097_151.0),
            (b"\x04\x80\xc0\x80\x00", 2_097_152.0),
            // Largest positive 29-bit integer, 0x0FFFFFFF.
            (b"\x04\xbf\xff\xff\xff", 268_435_455.0),
            // All 29 bits set (U29 0x1FFFFFFF) is -1.
            (b"\x04\xff\xff\xff\xff", -1.0),
            (b"\x04\xff\xff\xff\xfe", -2.0),
            // Sign bit alone (U29 0x10000000) is the most negative value.
            (b"\x04\xc0\x80\x80\x00", -268_435_456.0),
        ];
        for (bytes, expected) in cases {
            assert_eq!(dec(bytes), Ok(num(*expected)), "{bytes:02x?}");
        }
        // The fourth byte uses all eight bits, so a U29 never has a fifth.
        let mut buf = &b"\x04\xff\xff\xff\xff\x05"[..];
        assert_eq!(decode(&mut buf), Ok(num(-1.0)));
        assert_eq!(buf, b"\x05");
        for cut in 1..5 {
            assert_eq!(
                dec(&b"\x04\xff\xff\xff\xff"[..cut]),
                Err(AmfError::Truncated)
            );
        }
    }

    #[test]
    fn sign_extension() {
        assert_eq!(sign_extend_u29(0), 0);
        assert_eq!(sign_extend_u29(0x0FFF_FFFF), 0x0FFF_FFFF);
        assert_eq!(sign_extend_u29(0x1000_0000), -0x1000_0000);
        assert_eq!(sign_extend_u29(0x1FFF_FFFF), -1);
    }

    #[test]
    fn strings_and_references() {
        assert_eq!(dec(b"\x06\x01"), Ok(Amf0Value::string("")));
        assert_eq!(dec(b"\x06\x07abc"), Ok(Amf0Value::string("abc")));
        // ["abc", ref 0, ""]
        assert_eq!(
            dec(b"\x09\x07\x01\x06\x07abc\x06\x00\x06\x01"),
            Ok(Amf0Value::StrictArray(vec![
                Amf0Value::string("abc"),
                Amf0Value::string("abc"),
                Amf0Value::string(""),
            ]))
        );
        // The empty string is never added to the table: ref 0 is "abc", not "".
        assert_eq!(
            dec(b"\x09\x07\x01\x06\x01\x06\x07abc\x06\x00"),
            Ok(Amf0Value::StrictArray(vec![
                Amf0Value::string(""),
                Amf0Value::string("abc"),
                Amf0Value::string("abc"),
            ]))
        );
        assert_eq!(dec(b"\x06\x02"), Err(AmfError::BadReference(1)));
        // A length far beyond the input.
        assert_eq!(dec(b"\x06\xff\xff\xff\xffab"), Err(AmfError::Truncated));
        assert_eq!(
            dec(b"\x06\x05\xff\xfe"),
            Ok(Amf0Value::string("\u{fffd}\u{fffd}"))
        );
    }

    #[test]
    fn sealed_object_then_traits_reference() {
        let bytes = b"\x09\x05\x01\
            \x0a\x23\x01\x03a\x03b\x04\x01\x04\x02\
            \x0a\x01\x04\x03\x04\x04";
        let obj = |a: f64, b: f64| Amf0Value::object([("a", num(a)), ("b", num(b))]);
        assert_eq!(
            dec(bytes),
            Ok(Amf0Value::StrictArray(vec![obj(1.0, 2.0), obj(3.0, 4.0)]))
        );
        // Member names go to the string table: the second inline traits name "a" by reference.
        let bytes = b"\x09\x05\x01\
            \x0a\x13\x01\x03a\x04\x01\
            \x0a\x13\x01\x00\x04\x02";
        assert_eq!(
            dec(bytes),
            Ok(Amf0Value::StrictArray(vec![
                Amf0Value::object([("a", num(1.0))]),
                Amf0Value::object([("a", num(2.0))]),
            ]))
        );
        assert_eq!(dec(b"\x0a\x05"), Err(AmfError::BadReference(1)));
    }

    #[test]
    fn dynamic_and_typed_objects() {
        assert_eq!(
            dec(b"\x0a\x0b\x01\x03x\x05\x3f\xf8\x00\x00\x00\x00\x00\x00\x03y\x01\x01"),
            Ok(Amf0Value::object([("x", num(1.5)), ("y", Amf0Value::Null)]))
        );
        // Sealed plus dynamic members, named class.
        assert_eq!(
            dec(b"\x0a\x1b\x07Foo\x03x\x03\x03z\x02\x01"),
            Ok(Amf0Value::TypedObject {
                class_name: "Foo".into(),
                properties: vec![
                    ("x".into(), Amf0Value::Boolean(true)),
                    ("z".into(), Amf0Value::Boolean(false))
                ],
            })
        );
        assert_eq!(
            dec(b"\x0a\x07\x07Foo\x00"),
            Err(AmfError::UnknownAmf3Marker(0x0a))
        );
    }

    #[test]
    fn object_references_are_cloned() {
        // [ {x: 5}, ref to object 1 ] (the array itself is object 0)
        assert_eq!(
            dec(b"\x09\x05\x01\x0a\x0b\x01\x03x\x04\x05\x01\x0a\x02"),
            Ok(Amf0Value::StrictArray(vec![
                Amf0Value::object([("x", num(5.0))]),
                Amf0Value::object([("x", num(5.0))]),
            ]))
        );
        // Any complex marker may carry a reference to any complex value.
        assert_eq!(
            dec(b"\x09\x05\x01\x08\x01\x40\x00\x00\x00\x00\x00\x00\x00\x09\x02"),
            Ok(Amf0Value::StrictArray(vec![
                Amf0Value::Date {
                    millis: 2.0,
                    timezone: 0
                },
                Amf0Value::Date {
                    millis: 2.0,
                    timezone: 0
                },
            ]))
        );
        // A cycle cannot be cloned.
        assert_eq!(
            dec(b"\x09\x03\x01\x09\x00"),
            Ok(Amf0Value::StrictArray(vec![Amf0Value::Reference(0)]))
        );
        assert_eq!(dec(b"\x09\x03\x01\x0a\x04"), Err(AmfError::BadReference(2)));
    }

    #[test]
    fn reference_expansion_is_bounded() {
        // Item k+1 is an array holding two references to item k: 2^60 leaves if fully cloned.
        let levels = 60u32;
        let mut bytes = vec![0x09];
        bytes.extend(u29(((levels + 1) << 1) | 1));
        bytes.extend([0x01, 0x09, 0x01, 0x01]);
        for k in 1..=levels {
            bytes.extend([0x09, 0x05, 0x01]);
            for _ in 0..2 {
                bytes.push(0x09);
                bytes.extend(u29(k << 1));
            }
        }
        let value = dec(&bytes).unwrap();
        fn count(v: &Amf0Value) -> usize {
            match v {
                Amf0Value::StrictArray(items) => 1 + items.iter().map(count).sum::<usize>(),
                _ => 1,
            }
        }
        let nodes = count(&value);
        assert!(nodes < BUDGET_CAP / NODE_COST, "{nodes} nodes");
        let Amf0Value::StrictArray(items) = &value else {
            panic!()
        };
        assert_eq!(items.len(), levels as usize + 1);
        // Early levels are cloned in full; the budget runs out before the last.
        assert_eq!(
            items[1],
            Amf0Value::StrictArray(vec![Amf0Value::StrictArray(vec![]); 2])
        );
        assert!(
            matches!(&items[levels as usize], Amf0Value::StrictArray(r) if r[0] == Amf0Value::Reference(levels as u16))
        );

        // Same for strings: a long string repeated by one-byte references fails rather than
        // allocating without bound.
        let mut bytes = vec![0x09];
        bytes.extend(u29((100_001 << 1) | 1));
        bytes.extend([0x01, 0x06]);
        bytes.extend(u29((10_000 << 1) | 1));
        bytes.extend(std::iter::repeat_n(b'a', 10_000));
        bytes.extend(std::iter::repeat_n([0x06, 0x00], 100_000).flatten());
        assert_eq!(dec(&bytes), Err(AmfError::BadLength));
    }

    #[test]
    fn arrays() {
        assert_eq!(dec(b"\x09\x01\x01"), Ok(Amf0Value::StrictArray(vec![])));
        assert_eq!(
            dec(b"\x09\x05\x01\x04\x01\x06\x03x"),
            Ok(Amf0Value::StrictArray(vec![
                num(1.0),
                Amf0Value::string("x")
            ]))
        );
        // Associative part, then the dense element keyed by its index.
        assert_eq!(
            dec(b"\x09\x03\x03k\x06\x03v\x01\x04\x07"),
            Ok(Amf0Value::EcmaArray(vec![
                ("k".into(), Amf0Value::string("v")),
                ("0".into(), num(7.0))
            ]))
        );
        assert_eq!(
            dec(b"\x09\x01\x03k\x02\x01"),
            Ok(Amf0Value::EcmaArray(vec![(
                "k".into(),
                Amf0Value::Boolean(false)
            )]))
        );
        assert_eq!(dec(b"\x09\xff\xff\xff\xff\x01"), Err(AmfError::Truncated));
    }

    #[test]
    fn other_types() {
        assert_eq!(
            dec(b"\x07\x09<a/>"),
            Ok(Amf0Value::XmlDocument("<a/>".into()))
        );
        assert_eq!(
            dec(b"\x0b\x09<b/>"),
            Ok(Amf0Value::XmlDocument("<b/>".into()))
        );
        assert_eq!(
            dec(b"\x08\x01\x42\x70\x00\x00\x00\x00\x00\x00"),
            Ok(Amf0Value::Date {
                millis: 1_099_511_627_776.0,
                timezone: 0
            })
        );
        assert_eq!(dec(b"\x0c\x07\x01\x02\x03"), Ok(Amf0Value::Unsupported));
        assert_eq!(dec(b"\x0c\x07\x01\x02"), Err(AmfError::Truncated));
        assert_eq!(
            dec(b"\x0d\x05\x00\xff\xff\xff\xff\x00\x00\x00\x02"),
            Ok(Amf0Value::StrictArray(vec![num(-1.0), num(2.0)]))
        );
        assert_eq!(
            dec(b"\x0e\x03\x01\xff\xff\xff\xff"),
            Ok(Amf0Value::StrictArray(vec![num(4_294_967_295.0)]))
        );
        assert_eq!(
            dec(b"\x0f\x03\x00\x3f\xf0\x00\x00\x00\x00\x00\x00"),
            Ok(Amf0Value::StrictArray(vec![num(1.0)]))
        );
        assert_eq!(
            dec(b"\x10\x05\x00\x01\x01\x03"),
            Ok(Amf0Value::StrictArray(vec![
                Amf0Value::Null,
                Amf0Value::Boolean(true)
            ]))
        );
        assert_eq!(dec(b"\x0d\xff\xff\xff\xff\x00"), Err(AmfError::Truncated));
        assert_eq!(dec(b"\x11\x01\x00"), Err(AmfError::UnknownAmf3Marker(0x11)));
        assert_eq!(dec(b"\x12"), Err(AmfError::UnknownAmf3Marker(0x12)));
    }

    #[test]
    fn depth_limit() {
        let nested = |n: usize| {
            let mut bytes = b"\x09\x03\x01".repeat(n);
            bytes.push(0x01);
            bytes
        };
        assert!(dec(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(dec(&nested(MAX_DEPTH + 1)), Err(AmfError::TooDeep));
        assert_eq!(
            dec(&b"\x0a\x0b\x01\x03a".repeat(100_000)),
            Err(AmfError::TooDeep)
        );
    }

    #[test]
    fn every_prefix_is_an_error() {
        // {k: "v", 0: Foo{a: 1, b: "k"}, 1: Foo{a: <bytes>, b: <xml>}, 2: ref 1, 3: 1.5, 4: int, 5: date}
        let bytes: &[u8] = b"\x09\x0d\x03k\x06\x03v\x01\
            \x0a\x23\x07Foo\x03a\x03b\x04\x01\x06\x00\
            \x0a\x01\x0c\x03\xff\x07\x09<a/>\
            \x0a\x02\
            \x05\x3f\xf8\x00\x00\x00\x00\x00\x00\
            \x04\xc0\x80\x80\x00\
            \x08\x01\x00\x00\x00\x00\x00\x00\x00\x00";
        let value = dec(bytes).unwrap();
        let Amf0Value::EcmaArray(props) = &value else {
            panic!("{value:?}")
        };
        assert_eq!(props.len(), 7);
        assert_eq!(props[3].1, props[1].1);
        assert_eq!(
            props[2].1,
            Amf0Value::TypedObject {
                class_name: "Foo".into(),
                properties: vec![
                    ("a".into(), Amf0Value::Unsupported),
                    ("b".into(), Amf0Value::XmlDocument("<a/>".into())),
                ],
            }
        );
        assert_eq!(props[1].1.get("b").and_then(Amf0Value::as_str), Some("k"));
        for len in 0..bytes.len() {
            assert!(dec(&bytes[..len]).is_err(), "prefix {len}");
        }
    }

    proptest! {
        #[test]
        fn prop_integers(v in 0u32..0x2000_0000) {
            let mut bytes = vec![0x04];
            bytes.extend(u29(v));
            let expected = if v >= 0x1000_0000 { i64::from(v) - 0x2000_0000 } else { i64::from(v) };
            prop_assert_eq!(dec(&bytes), Ok(num(expected as f64)));
        }

        #[test]
        fn prop_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&mut &bytes[..]);
        }
    }
}
