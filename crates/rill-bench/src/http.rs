//! The bench's minimal HTTP/1.1 client pieces, all zero-copy and allocation-free per frame:
//! response head parsing, a streaming chunked-transfer decoder, and a streaming FLV tag scanner
//! that reads only tag headers (plus the first two body bytes) and skips bodies without buffering.
//!
//! A viewer reads into one reused buffer, hands the slice to [`ChunkedDecoder`], which hands the
//! de-chunked pieces to [`FlvScanner`], which reports one [`TagInfo`] per complete tag. No tag is
//! ever copied or reassembled, which is what keeps thousands of viewers cheap.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::target::Target;

/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// The parts of a response head the bench needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<u64>,
    /// `Sec-WebSocket-Accept`, for an upgrade.
    pub ws_accept: Option<String>,
}

/// Parses a response head at the start of `buf`: `Ok(None)` if incomplete, else the head and its
/// length (including the blank line).
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err("response head too long".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 response: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
        ws_accept: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            head.ws_accept = Some(value.to_owned());
        }
    }
    Ok(Some((head, end + 4)))
}

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkedError {
    BadSize,
    SizeTooLarge,
    ExtensionTooLong,
    MissingCrlf,
    TrailerTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CState {
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    Done,
}

/// Streaming decoder of `Transfer-Encoding: chunked`. Holds no data, only a few counters.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: CState,
    size: u64,
    digits: u8,
    line: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: CState::Size,
            size: 0,
            digits: 0,
            line: 0,
        }
    }
}

/// Chunk extensions and trailer lines are useless to us; past these lengths they are an attack.
const MAX_EXT: usize = 1024;
const MAX_TRAILER_LINE: usize = 8192;

impl ChunkedDecoder {
    /// Decodes all of `input`, passing each run of body bytes to `out`. Returns true once the last
    /// chunk and trailer have been read (later bytes are ignored).
    pub fn feed<'a>(
        &mut self,
        mut input: &'a [u8],
        mut out: impl FnMut(&'a [u8]),
    ) -> Result<bool, ChunkedError> {
        while let Some((&b, rest)) = input.split_first() {
            match self.state {
                CState::Data => {
                    let n = (self.size.min(input.len() as u64)) as usize;
                    let (data, rest) = input.split_at(n);
                    out(data);
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = CState::DataCr;
                    }
                    input = rest;
                    continue;
                }
                CState::Done => return Ok(true),
                CState::Size => {
                    if let Some(d) = (b as char).to_digit(16) {
                        if self.digits >= 15 {
                            return Err(ChunkedError::SizeTooLarge);
                        }
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                    } else if self.digits == 0 {
                        return Err(ChunkedError::BadSize);
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        self.state = CState::Ext;
                        self.line = 0;
                    } else if b == b'\r' {
                        self.state = CState::SizeLf;
                    } else {
                        return Err(ChunkedError::BadSize);
                    }
                }
                CState::Ext => {
                    if b == b'\r' {
                        self.state = CState::SizeLf;
                    } else {
                        self.line += 1;
                        if self.line > MAX_EXT {
                            return Err(ChunkedError::ExtensionTooLong);
                        }
                    }
                }
                CState::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::MissingCrlf);
                    }
                    self.digits = 0;
                    if self.size == 0 {
                        self.state = CState::Trailer;
                        self.line = 0;
                    } else {
                        self.state = CState::Data;
                    }
                }
                CState::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkedError::MissingCrlf);
                    }
                    self.state = CState::DataLf;
                }
                CState::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::MissingCrlf);
                    }
                    self.state = CState::Size;
                }
                CState::Trailer => {
                    if b == b'\r' {
                        self.state = CState::TrailerLf;
                    } else {
                        self.line += 1;
                        if self.line > MAX_TRAILER_LINE {
                            return Err(ChunkedError::TrailerTooLong);
                        }
                    }
                }
                CState::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::MissingCrlf);
                    }
                    if self.line == 0 {
                        self.state = CState::Done;
                        return Ok(true);
                    }
                    self.state = CState::Trailer;
                    self.line = 0;
                }
            }
            input = rest;
        }
        Ok(self.state == CState::Done)
    }
}

/// One complete FLV tag seen by [`FlvScanner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagInfo {
    pub tag_type: u8,
    pub timestamp: u32,
    pub size: u32,
    /// The first two body bytes (zero-padded): enough to tell a sequence header from a picture.
    pub first: [u8; 2],
}

/// Why an FLV byte stream could not be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    BadSignature,
    UnknownTagType(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FState {
    FileHeader,
    Skip,
    TagHeader,
    Body,
}

/// Streaming FLV reader that never buffers a tag: it collects the 11-byte tag header, remembers
/// two body bytes, and counts the rest of the body (and the PreviousTagSize) away.
#[derive(Debug, Clone)]
pub struct FlvScanner {
    state: FState,
    hdr: [u8; 11],
    got: usize,
    /// Bytes left in the current body or skip.
    left: u32,
    tag: TagInfo,
}

impl Default for FlvScanner {
    fn default() -> Self {
        FlvScanner {
            state: FState::FileHeader,
            hdr: [0; 11],
            got: 0,
            left: 0,
            tag: TagInfo {
                tag_type: 0,
                timestamp: 0,
                size: 0,
                first: [0; 2],
            },
        }
    }
}

const MAX_DATA_OFFSET: u32 = 1024;

impl FlvScanner {
    /// Consumes `input`, calling `on_tag` for each tag whose body completes in it.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on_tag: impl FnMut(TagInfo),
    ) -> Result<(), ScanError> {
        while !input.is_empty() {
            match self.state {
                FState::FileHeader | FState::TagHeader => {
                    let want = if self.state == FState::FileHeader {
                        9
                    } else {
                        11
                    };
                    let n = (want - self.got).min(input.len());
                    self.hdr[self.got..self.got + n].copy_from_slice(&input[..n]);
                    self.got += n;
                    input = &input[n..];
                    if self.got < want {
                        continue;
                    }
                    self.got = 0;
                    if self.state == FState::FileHeader {
                        let offset = u32::from_be_bytes([
                            self.hdr[5],
                            self.hdr[6],
                            self.hdr[7],
                            self.hdr[8],
                        ]);
                        if &self.hdr[..3] != b"FLV" || !(9..=MAX_DATA_OFFSET).contains(&offset) {
                            return Err(ScanError::BadSignature);
                        }
                        // Rest of the header, then PreviousTagSize0.
                        self.left = offset - 9 + 4;
                        self.state = FState::Skip;
                    } else {
                        let h = &self.hdr;
                        if !matches!(h[0], 8 | 9 | 18) {
                            return Err(ScanError::UnknownTagType(h[0]));
                        }
                        let u24 = |b: &[u8]| {
                            (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
                        };
                        self.tag = TagInfo {
                            tag_type: h[0],
                            size: u24(&h[1..4]),
                            timestamp: (u32::from(h[7]) << 24) | u24(&h[4..7]),
                            first: [0; 2],
                        };
                        self.left = self.tag.size;
                        self.state = FState::Body;
                        if self.left == 0 {
                            self.finish_tag(&mut on_tag);
                        }
                    }
                }
                FState::Skip => {
                    let n = (self.left as usize).min(input.len());
                    input = &input[n..];
                    self.left -= n as u32;
                    if self.left == 0 {
                        self.state = FState::TagHeader;
                    }
                }
                FState::Body => {
                    let pos = self.tag.size - self.left;
                    for (i, &b) in input.iter().take(2.min(self.left as usize)).enumerate() {
                        if let Some(slot) = self.tag.first.get_mut(pos as usize + i) {
                            *slot = b;
                        }
                    }
                    let n = (self.left as usize).min(input.len());
                    input = &input[n..];
                    self.left -= n as u32;
                    if self.left == 0 {
                        self.finish_tag(&mut on_tag);
                    }
                }
            }
        }
        Ok(())
    }

    fn finish_tag(&mut self, on_tag: &mut impl FnMut(TagInfo)) {
        on_tag(self.tag);
        self.left = 4;
        self.state = FState::Skip;
    }
}

/// A whole-body GET over a fresh connection (`Connection: close`), for HLS playlists and segments.
/// The body is bounded by `max_body`.
pub async fn get(target: &Target, path: &str, max_body: usize) -> Result<(u16, Vec<u8>), String> {
    let mut sock = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rill-bench\r\nConnection: close\r\n\r\n",
        target.authority
    );
    sock.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(16 * 1024);
    let (head, used) = loop {
        if let Some(h) = parse_head(&buf)? {
            break h;
        }
        let n = read_more(&mut sock, &mut buf, MAX_HEAD + 4).await?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
    };
    let mut body = Vec::new();
    let mut raw = buf.split_off(used);
    let mut dec = ChunkedDecoder::default();
    loop {
        let done = if head.chunked {
            let mut piece_err = false;
            let done = dec
                .feed(&raw, |d| {
                    if body.len() + d.len() > max_body {
                        piece_err = true;
                    } else {
                        body.extend_from_slice(d);
                    }
                })
                .map_err(|e| format!("chunked: {e:?}"))?;
            if piece_err {
                return Err("body too large".into());
            }
            done
        } else {
            if body.len() + raw.len() > max_body {
                return Err("body too large".into());
            }
            body.extend_from_slice(&raw);
            head.content_length.is_some_and(|l| body.len() as u64 >= l)
        };
        if done {
            break;
        }
        raw.clear();
        if read_more(&mut sock, &mut raw, 64 * 1024).await? == 0 {
            if head.chunked || head.content_length.is_some() {
                return Err("connection closed mid-body".into());
            }
            break;
        }
    }
    Ok((head.status, body))
}

/// Appends up to `room` more bytes from `sock` to `buf`.
async fn read_more(sock: &mut TcpStream, buf: &mut Vec<u8>, room: usize) -> Result<usize, String> {
    let start = buf.len();
    buf.resize(start + room.max(1), 0);
    let n = sock.read(&mut buf[start..]).await;
    match n {
        Ok(n) => {
            buf.truncate(start + n);
            Ok(n)
        }
        Err(e) => {
            buf.truncate(start);
            Err(format!("read: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rill_media::flv::{file_header, write_tag};

    fn chunk(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            v.extend_from_slice(p);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"0\r\n\r\n");
        v
    }

    fn decode_split(input: &[u8], split: usize) -> Result<(Vec<u8>, bool), ChunkedError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let (a, b) = input.split_at(split);
        d.feed(a, |x| out.extend_from_slice(x))?;
        let done = d.feed(b, |x| out.extend_from_slice(x))?;
        Ok((out, done))
    }

    #[test]
    fn chunked_decodes_at_every_split() {
        let body: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let wire = chunk(&[&body[..1], &body[1..17], &body[17..]]);
        for split in 0..=wire.len() {
            let (out, done) = decode_split(&wire, split).unwrap();
            assert_eq!(out, body, "split {split}");
            assert!(done);
        }
        // Byte by byte.
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b), |x| out.extend_from_slice(x))
                .unwrap();
        }
        assert_eq!(out, body);
    }

    #[test]
    fn chunked_extensions_trailers_and_case() {
        let wire = b"A;name=value\r\n0123456789\r\n5 \r\nabcde\r\n0\r\nX-T: 1\r\n\r\nignored";
        let (out, done) = decode_split(wire, 3).unwrap();
        assert_eq!(out, b"0123456789abcde");
        assert!(done);
        let (out, _) = decode_split(b"a\r\n0123456789\r\n", 0).unwrap();
        assert_eq!(out.len(), 10);
        // Not finished without the last chunk.
        let (_, done) = decode_split(b"1\r\nx\r\n", 2).unwrap();
        assert!(!done);
    }

    #[test]
    fn chunked_rejects_garbage() {
        let cases: [(&[u8], ChunkedError); 6] = [
            (b"zz\r\n", ChunkedError::BadSize),
            (b"\r\n", ChunkedError::BadSize),
            (b"1\rx", ChunkedError::MissingCrlf),
            (b"1\r\nab", ChunkedError::MissingCrlf),
            (b"1\r\na\rx", ChunkedError::MissingCrlf),
            (b"1000000000000000\r\n", ChunkedError::SizeTooLarge),
        ];
        for (wire, want) in cases {
            let mut d = ChunkedDecoder::default();
            assert_eq!(d.feed(wire, |_| {}), Err(want), "{wire:?}");
        }
        let mut long_ext = b"1;".to_vec();
        long_ext.resize(3000, b'x');
        assert_eq!(
            ChunkedDecoder::default().feed(&long_ext, |_| {}),
            Err(ChunkedError::ExtensionTooLong)
        );
        let mut long_trailer = b"0\r\n".to_vec();
        long_trailer.resize(10_000, b'x');
        assert_eq!(
            ChunkedDecoder::default().feed(&long_trailer, |_| {}),
            Err(ChunkedError::TrailerTooLong)
        );
    }

    fn sample_flv() -> (Vec<u8>, Vec<TagInfo>) {
        let mut out = BytesMut::new();
        out.extend_from_slice(&file_header(true, true));
        let tags: Vec<(u8, u32, Vec<u8>)> = vec![
            (18, 0, b"\x02\x00\x0aonMetaData".to_vec()),
            (9, 0, vec![0x17, 0x00, 0, 0, 0, 1, 2, 3]),
            (8, 0, vec![0xAF, 0x00, 0x12, 0x10]),
            (9, 33, vec![0x17, 0x01, 0, 0, 0, 9, 9]),
            (9, 0x0123_4567, vec![0x27]),
            (8, 40, vec![]),
            (9, 66, [0x27, 0x01, 0, 0, 0].repeat(100)),
        ];
        let mut infos = Vec::new();
        for (ty, ts, body) in tags {
            write_tag(ty, ts, &body, &mut out);
            let mut first = [0; 2];
            for (i, b) in body.iter().take(2).enumerate() {
                first[i] = *b;
            }
            infos.push(TagInfo {
                tag_type: ty,
                timestamp: ts,
                size: body.len() as u32,
                first,
            });
        }
        (out.to_vec(), infos)
    }

    #[test]
    fn scanner_reads_tags_at_every_split() {
        let (flv, want) = sample_flv();
        for split in 0..=flv.len() {
            let mut s = FlvScanner::default();
            let mut got = Vec::new();
            s.feed(&flv[..split], |t| got.push(t)).unwrap();
            s.feed(&flv[split..], |t| got.push(t)).unwrap();
            assert_eq!(got, want, "split {split}");
        }
        let mut s = FlvScanner::default();
        let mut got = Vec::new();
        for b in &flv {
            s.feed(std::slice::from_ref(b), |t| got.push(t)).unwrap();
        }
        assert_eq!(got, want);
    }

    #[test]
    fn scanner_through_chunked() {
        let (flv, want) = sample_flv();
        let pieces: Vec<&[u8]> = flv.chunks(7).collect();
        let wire = chunk(&pieces);
        for split in (0..wire.len()).step_by(5) {
            let mut d = ChunkedDecoder::default();
            let mut s = FlvScanner::default();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                d.feed(part, |x| s.feed(x, |t| got.push(t)).unwrap())
                    .unwrap();
            }
            assert_eq!(got, want);
        }
    }

    #[test]
    fn scanner_rejects_garbage() {
        let mut s = FlvScanner::default();
        assert_eq!(
            s.feed(b"GIF89a\0\0\0\0", |_| {}),
            Err(ScanError::BadSignature)
        );
        let mut s = FlvScanner::default();
        let mut flv = file_header(false, true).to_vec();
        flv.extend_from_slice(&[7; 11]);
        assert_eq!(s.feed(&flv, |_| {}), Err(ScanError::UnknownTagType(7)));
        // A huge DataOffset is refused rather than skipped.
        let mut s = FlvScanner::default();
        assert_eq!(
            s.feed(b"FLV\x01\x05\x7f\xff\xff\xff", |_| {}),
            Err(ScanError::BadSignature)
        );
    }

    #[test]
    fn response_heads() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\nFLV";
        let (h, n) = parse_head(r).unwrap().unwrap();
        assert_eq!(
            h,
            Head {
                status: 200,
                chunked: true,
                content_length: None,
                ws_accept: None,
            }
        );
        assert_eq!(&r[n..], b"FLV");
        let up = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let (h, _) = parse_head(up).unwrap().unwrap();
        assert_eq!(h.status, 101);
        assert_eq!(h.ws_accept.as_deref(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        let (h, _) = parse_head(b"HTTP/1.0 404 Not Found\r\ncontent-length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.chunked, h.content_length),
            (404, false, Some(12))
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        assert!(parse_head(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_head(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }
}
