//! A bounds-checked MSB-first bit reader with the exp-Golomb codes of H.264/H.265, the AV1
//! variable-length codes, and the removal of emulation-prevention bytes from NAL units.
//!
//! Every read past the end of the data fails with [`ParamsError::Malformed`] naming the codec the
//! reader was created for, so parsers can use `?` everywhere and never index blindly.

use super::ParamsError;

/// Reads bits from a byte slice, most significant bit first.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// `what` names the structure being parsed, for the error message.
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    pub(crate) fn malformed(&self) -> ParamsError {
        ParamsError::Malformed(self.what)
    }

    /// Bits not read yet.
    pub(crate) fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    pub(crate) fn bit(&mut self) -> Result<bool, ParamsError> {
        let byte = *self.data.get(self.pos / 8).ok_or(self.malformed())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    pub(crate) fn flag(&mut self) -> Result<bool, ParamsError> {
        self.bit()
    }

    /// Reads `n` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, ParamsError> {
        if n > 32 {
            return Err(self.malformed());
        }
        if self.bits_left() < n as usize {
            return Err(self.malformed());
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        // At most 32 bits were accumulated, so this cannot truncate.
        Ok(v as u32)
    }

    pub(crate) fn u8(&mut self, n: u32) -> Result<u8, ParamsError> {
        debug_assert!(n <= 8);
        Ok(self.bits(n.min(8))? as u8)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), ParamsError> {
        if self.bits_left() < n {
            return Err(self.malformed());
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned exp-Golomb `ue(v)`. Values need at most 32 bits in every field we read, so more
    /// than 31 leading zeros is malformed rather than a reason to use wider integers.
    pub(crate) fn ue(&mut self) -> Result<u32, ParamsError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(self.malformed());
            }
        }
        let rest = self.bits(zeros)?;
        // 2^zeros - 1 + rest fits in u32 for zeros <= 31.
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// Signed exp-Golomb `se(v)`.
    pub(crate) fn se(&mut self) -> Result<i32, ParamsError> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |v| <= 2^31, and only +2^31 does not fit: clamp it instead of failing.
        Ok(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// AV1 `uvlc()`: like ue(v), but 32 or more leading zeros mean "the maximum value".
    pub(crate) fn uvlc(&mut self) -> Result<u32, ParamsError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros >= 32 {
                return Ok(u32::MAX);
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }
}

/// Strips the emulation-prevention bytes (the `03` of every `00 00 03`) from a NAL unit, giving
/// the RBSP that the bit-level syntax describes. The output is never longer than the input.
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::VideoParams;
    use super::*;

    /// Test helper that writes the same codes the reader reads, to build records by hand.
    #[derive(Default)]
    pub(crate) struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn bit(&mut self, b: bool) -> &mut Self {
            if self.bits & 7 == 0 {
                self.bytes.push(0);
            }
            if b {
                let last = self.bytes.last_mut().unwrap();
                *last |= 1 << (7 - (self.bits % 8));
            }
            self.bits += 1;
            self
        }

        pub(crate) fn bits(&mut self, n: u32, v: u64) -> &mut Self {
            // Widths above 64 write leading zeros (reserved fields, zeroed profile blocks).
            for i in (0..n).rev() {
                self.bit(i < 64 && (v >> i) & 1 == 1);
            }
            self
        }

        pub(crate) fn ue(&mut self, v: u32) -> &mut Self {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            self.bits(len - 1, 0);
            self.bits(len, x)
        }

        pub(crate) fn se(&mut self, v: i32) -> &mut Self {
            let k = if v > 0 {
                2 * v as i64 - 1
            } else {
                -2 * v as i64
            };
            self.ue(k as u32)
        }

        /// rbsp_trailing_bits, then the bytes.
        pub(crate) fn finish_rbsp(&mut self) -> Vec<u8> {
            self.bit(true);
            while self.bits & 7 != 0 {
                self.bit(false);
            }
            self.bytes.clone()
        }

        pub(crate) fn bit_len(&self) -> usize {
            self.bits
        }

        /// The bytes, zero-padded to a byte boundary.
        pub(crate) fn finish(&mut self) -> Vec<u8> {
            self.bytes.clone()
        }
    }

    /// Adds emulation prevention to an RBSP (the inverse of `unescape_rbsp`).
    pub(crate) fn escape_rbsp(rbsp: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    /// profile, level, size, fps and codec string of a [`VideoParams`].
    pub(crate) type Facts<'a> = (
        Option<&'a str>,
        Option<f64>,
        (u32, u32),
        Option<f64>,
        Option<&'a str>,
    );

    /// What the sample tests compare, as one tuple so that a mismatch shows every field.
    pub(crate) fn facts(p: &VideoParams) -> Facts<'_> {
        (
            p.profile.as_deref(),
            p.level,
            (p.width, p.height),
            p.fps,
            p.codec_string.as_deref(),
        )
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn fixed_width_reads() {
        let mut r = BitReader::new(&[0b1010_1100, 0xFF, 0x01], "t");
        assert!(r.bit().unwrap());
        assert_eq!(r.bits(3).unwrap(), 0b010);
        assert_eq!(r.bits(4).unwrap(), 0b1100);
        assert_eq!(r.bits(16).unwrap(), 0xFF01);
        assert_eq!(r.bits_left(), 0);
        assert_eq!(r.bit(), Err(ParamsError::Malformed("t")));
        let mut r = BitReader::new(&[0x12, 0x34, 0x56, 0x78, 0x9A], "t");
        r.skip(4).unwrap();
        assert_eq!(r.bits(32).unwrap(), 0x2345_6789);
        assert!(r.bits(33).is_err());
        assert!(r.bits(5).is_err(), "only 4 bits left");
        assert_eq!(r.bits(0).unwrap(), 0);
        assert!(r.skip(5).is_err());
        r.skip(4).unwrap();
    }

    #[test]
    fn exp_golomb_known_codes() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3, 00111 -> 6
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0011, 0b1000_0000], "t");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.ue().unwrap(), 6);
        // se: 1 -> 0, 010 -> 1, 011 -> -1, 00100 -> 2, 00101 -> -2
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0010, 0b1000_0000], "t");
        assert_eq!(r.se().unwrap(), 0);
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
        assert_eq!(r.se().unwrap(), 2);
        assert_eq!(r.se().unwrap(), -2);
    }

    #[test]
    fn exp_golomb_extremes() {
        let mut w = BitWriter::new();
        w.ue(u32::MAX - 1).se(i32::MIN + 1).se(i32::MAX);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes, "t");
        assert_eq!(r.ue().unwrap(), u32::MAX - 1);
        assert_eq!(r.se().unwrap(), i32::MIN + 1);
        assert_eq!(r.se().unwrap(), i32::MAX);
        // 32 leading zeros: too long for ue, "max" for uvlc.
        let zeros = [0u8, 0, 0, 0, 0x80, 0, 0, 0, 0];
        assert!(BitReader::new(&zeros, "t").ue().is_err());
        assert_eq!(BitReader::new(&zeros, "t").uvlc().unwrap(), u32::MAX);
        assert!(BitReader::new(&[0, 0], "t").ue().is_err());
        assert!(BitReader::new(&[0x01], "t").ue().is_err(), "suffix missing");
    }

    #[test]
    fn uvlc_matches_ue_for_small_values() {
        for v in [0u32, 1, 2, 7, 1000, 65_535] {
            let bytes = BitWriter::new().ue(v).finish();
            assert_eq!(BitReader::new(&bytes, "t").uvlc().unwrap(), v);
        }
    }

    #[test]
    fn emulation_prevention() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
            [0, 0, 1, 0, 0, 0, 0]
        );
        // Only the first 03 after two zeros is dropped; the count restarts after it.
        assert_eq!(unescape_rbsp(&[0, 0, 3, 3]), [0, 0, 3]);
        assert_eq!(unescape_rbsp(&[0, 3, 0, 0]), [0, 3, 0, 0]);
        assert_eq!(unescape_rbsp(&[]), Vec::<u8>::new());
        for rbsp in [
            vec![0, 0, 0, 0, 1, 2, 3],
            vec![0, 0, 3, 0, 0, 2, 0xFF, 0],
            vec![0; 9],
        ] {
            assert_eq!(unescape_rbsp(&escape_rbsp(&rbsp)), rbsp);
        }
    }

    proptest::proptest! {
        #[test]
        fn prop_exp_golomb_round_trip(vals in proptest::collection::vec((proptest::prelude::any::<u32>(), proptest::prelude::any::<i32>()), 0..20)) {
            let mut w = BitWriter::new();
            for (u, s) in &vals {
                w.ue(u.saturating_sub(1)).se(s.saturating_add(if *s == i32::MIN { 1 } else { 0 }));
            }
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes, "t");
            for (u, s) in &vals {
                proptest::prop_assert_eq!(r.ue().unwrap(), u.saturating_sub(1));
                proptest::prop_assert_eq!(r.se().unwrap(), s.saturating_add(if *s == i32::MIN { 1 } else { 0 }));
            }
        }

        #[test]
        fn prop_unescape_inverts_escape(rbsp in proptest::collection::vec(0u8..5, 0..64)) {
            proptest::prop_assert_eq!(unescape_rbsp(&escape_rbsp(&rbsp)), rbsp);
        }
    }
}
