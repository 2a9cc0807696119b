//! OSDP frames on the wire, and finding them in a byte stream.
//!
//! ```text
//! SOM 0x53 | ADDR | LEN lsb | LEN msb | CTRL | [SCB] | CODE | DATA… | [MAC ×4] | CRC lsb, msb (or checksum)
//! ```
//!
//! `ADDR` has bit 7 set in replies. `LEN` counts the whole frame, SOM to the
//! check character. `CTRL` holds the sequence number (bits 0-1), CRC-16 vs
//! checksum (bit 2) and whether a security control block follows (bit 3).

use crate::crc::{checksum, crc16};

/// Start of message.
pub const SOM: u8 = 0x53;
/// The mark character OSDP 2.2 puts before SOM, so an RS-485 receiver
/// settles after the line turns around.
pub const MARK: u8 = 0xFF;
/// The largest frame the reader accepts; anything claiming more is noise.
pub const MAX_FRAME_LEN: usize = 1024;
/// The broadcast address (commands only).
pub const BROADCAST: u8 = 0x7F;

const CTRL_SEQUENCE: u8 = 0x03;
const CTRL_CRC: u8 = 0x04;
const CTRL_SCB: u8 = 0x08;
const REPLY_BIT: u8 = 0x80;
/// SOM, ADDR, LEN ×2, CTRL, CODE and a one-byte checksum.
const MIN_FRAME_LEN: usize = 7;

/// Which check character ends a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The CRC-16 (two bytes). Vigil always sends this.
    Crc16,
    /// The legacy 8-bit checksum, accepted from devices that still use it.
    Checksum,
}

/// The security control block: its type (SCS_11 … SCS_18) and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityBlock {
    /// The security block type, `0x11` … `0x18`.
    pub kind: u8,
    /// The bytes after the type (the key selector or handshake status; often none).
    pub data: Vec<u8>,
}

impl SecurityBlock {
    /// Whether frames with this block carry a 4-byte MAC (SCS_15 … SCS_18).
    pub fn has_mac(&self) -> bool {
        (0x15..=0x18).contains(&self.kind)
    }
}

/// The header fields of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The peripheral's address, 0-126 (127 is broadcast).
    pub address: u8,
    /// Whether this is a reply (address bit 7 set).
    pub reply: bool,
    /// The sequence number, 0-3.
    pub sequence: u8,
    /// The check character.
    pub check: Check,
}

/// One frame read off the wire, its parts as sent (data still encrypted
/// when the security block says so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The security control block, if any.
    pub security: Option<SecurityBlock>,
    /// The command or reply code.
    pub code: u8,
    /// The data after the code.
    pub data: Vec<u8>,
    /// The first four bytes of the MAC, for SCS_15 … SCS_18.
    pub mac: Option<[u8; 4]>,
    /// The frame's bytes from SOM up to the MAC: what the MAC covers.
    pub authenticated: Vec<u8>,
}

/// Computes a frame's MAC from the bytes it covers; returns what goes on the wire.
pub type MacFn<'a> = &'a mut dyn FnMut(&[u8]) -> [u8; 4];

/// Builds a frame. `mac` is called with the bytes from SOM to the end of
/// the data (the length field already counting the MAC) when the security
/// block has a MAC, and returns the four bytes to send.
pub fn encode(
    header: Header,
    security: Option<&SecurityBlock>,
    code: u8,
    data: &[u8],
    mac: Option<MacFn<'_>>,
) -> Vec<u8> {
    let scb_len = security.map_or(0, |s| 2 + s.data.len());
    let mac_len = if security.is_some_and(SecurityBlock::has_mac) { 4 } else { 0 };
    let check_len = match header.check {
        Check::Crc16 => 2,
        Check::Checksum => 1,
    };
    let len = 5 + scb_len + 1 + data.len() + mac_len + check_len;
    let mut out = Vec::with_capacity(len);
    out.push(SOM);
    out.push((header.address & 0x7F) | if header.reply { REPLY_BIT } else { 0 });
    out.extend_from_slice(&(len as u16).to_le_bytes());
    let mut ctrl = header.sequence & CTRL_SEQUENCE;
    if header.check == Check::Crc16 {
        ctrl |= CTRL_CRC;
    }
    if security.is_some() {
        ctrl |= CTRL_SCB;
    }
    out.push(ctrl);
    if let Some(sb) = security {
        out.push(scb_len as u8);
        out.push(sb.kind);
        out.extend_from_slice(&sb.data);
    }
    out.push(code);
    out.extend_from_slice(data);
    if mac_len > 0 {
        let tag = match mac {
            Some(f) => f(&out),
            None => [0; 4],
        };
        out.extend_from_slice(&tag);
    }
    match header.check {
        Check::Crc16 => {
            let crc = crc16(&out);
            out.extend_from_slice(&crc.to_le_bytes());
        }
        Check::Checksum => out.push(checksum(&out)),
    }
    out
}

enum Parse {
    Frame(Frame, usize),
    Incomplete,
    Invalid,
}

/// Parses the frame that starts at `b[0]` (a SOM).
fn parse_at(b: &[u8]) -> Parse {
    if b.len() < 5 {
        if b.len() >= 4 {
            let len = usize::from(u16::from_le_bytes([b[2], b[3]]));
            if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
                return Parse::Invalid;
            }
        }
        return Parse::Incomplete;
    }
    let len = usize::from(u16::from_le_bytes([b[2], b[3]]));
    if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Parse::Invalid;
    }
    if b.len() < len {
        return Parse::Incomplete;
    }
    let frame = &b[..len];
    let ctrl = frame[4];
    let (check, check_len) = if ctrl & CTRL_CRC != 0 { (Check::Crc16, 2) } else { (Check::Checksum, 1) };
    let body_end = len - check_len;
    let intact = match check {
        Check::Crc16 => crc16(&frame[..body_end]).to_le_bytes() == frame[body_end..],
        Check::Checksum => checksum(&frame[..body_end]) == frame[body_end],
    };
    if !intact {
        return Parse::Invalid;
    }
    let mut body = &frame[5..body_end];
    let security = if ctrl & CTRL_SCB != 0 {
        let scb_len = usize::from(*body.first().unwrap_or(&0));
        if scb_len < 2 || scb_len > body.len() {
            return Parse::Invalid;
        }
        let sb = SecurityBlock { kind: body[1], data: body[2..scb_len].to_vec() };
        body = &body[scb_len..];
        Some(sb)
    } else {
        None
    };
    let mut authenticated_len = body_end;
    let mac = if security.as_ref().is_some_and(SecurityBlock::has_mac) {
        if body.len() < 5 {
            return Parse::Invalid;
        }
        let (rest, tag) = body.split_at(body.len() - 4);
        body = rest;
        authenticated_len -= 4;
        Some([tag[0], tag[1], tag[2], tag[3]])
    } else {
        None
    };
    let Some((&code, data)) = body.split_first() else {
        return Parse::Invalid;
    };
    let header =
        Header { address: frame[1] & 0x7F, reply: frame[1] & REPLY_BIT != 0, sequence: ctrl & CTRL_SEQUENCE, check };
    Parse::Frame(
        Frame { header, security, code, data: data.to_vec(), mac, authenticated: frame[..authenticated_len].to_vec() },
        len,
    )
}

/// Reassembles frames from a byte stream that may split them, merge them,
/// or carry noise between them. A mark character before a frame is part of
/// it, not noise.
///
/// A candidate frame is any SOM whose length, header and check character
/// hold up; everything else is skipped (and counted). A candidate still
/// waiting for bytes does not block a complete frame that starts after it,
/// so noise that happens to look like the start of a long frame costs
/// nothing.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    skipped: u64,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the line.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if the bytes so far hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let mut first_incomplete = None;
        let mut from = 0;
        while let Some(offset) = self.buf[from..].iter().position(|&b| b == SOM) {
            let start = from + offset;
            match parse_at(&self.buf[start..]) {
                Parse::Frame(frame, len) => {
                    let mark = start > 0 && self.buf[start - 1] == MARK;
                    self.skipped += (start - usize::from(mark)) as u64;
                    self.buf.drain(..start + len);
                    return Some(frame);
                }
                Parse::Incomplete => {
                    first_incomplete.get_or_insert(start);
                }
                Parse::Invalid => {}
            }
            from = start + 1;
        }
        let keep_from = first_incomplete.unwrap_or(self.buf.len());
        self.skipped += keep_from as u64;
        self.buf.drain(..keep_from);
        None
    }

    /// Drops whatever partial frame is buffered (before a new command, so a
    /// stale half-reply cannot be mistaken for the start of the next one).
    pub fn clear(&mut self) {
        self.skipped += self.buf.len() as u64;
        self.buf.clear();
    }

    /// How many bytes were skipped as noise, broken or partial frames so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn poll(address: u8, sequence: u8) -> Vec<u8> {
        let header = Header { address, reply: false, sequence, check: Check::Crc16 };
        encode(header, None, 0x60, &[], None)
    }

    #[test]
    fn a_poll_is_encoded_as_the_spec_shows() {
        let bytes = poll(0x01, 1);
        assert_eq!(&bytes[..6], &[0x53, 0x01, 0x08, 0x00, 0x05, 0x60]);
        assert_eq!(bytes.len(), 8);
        let crc = crc16(&bytes[..6]).to_le_bytes();
        assert_eq!(&bytes[6..], &crc);
    }

    #[test]
    fn a_frame_round_trips_with_security_block_and_mac() {
        let header = Header { address: 5, reply: true, sequence: 3, check: Check::Crc16 };
        let sb = SecurityBlock { kind: 0x18, data: vec![] };
        let mut seen = Vec::new();
        let mut mac = |b: &[u8]| {
            seen = b.to_vec();
            [1, 2, 3, 4]
        };
        let bytes = encode(header, Some(&sb), 0x49, &[9; 16], Some(&mut mac));
        let mut reader = FrameReader::new();
        reader.push(&bytes);
        let frame = reader.next_frame().expect("frame");
        assert_eq!(frame.header, header);
        assert_eq!(frame.security, Some(sb));
        assert_eq!(frame.code, 0x49);
        assert_eq!(frame.data, vec![9; 16]);
        assert_eq!(frame.mac, Some([1, 2, 3, 4]));
        assert_eq!(frame.authenticated, seen);
        assert_eq!(usize::from(u16::from_le_bytes([bytes[2], bytes[3]])), bytes.len());
    }

    #[test]
    fn checksum_frames_are_accepted() {
        let header = Header { address: 1, reply: true, sequence: 2, check: Check::Checksum };
        let bytes = encode(header, None, 0x40, &[], None);
        assert_eq!(bytes.len(), 7);
        let mut reader = FrameReader::new();
        reader.push(&bytes);
        assert_eq!(reader.next_frame().map(|f| f.header), Some(header));
    }

    #[test]
    fn a_corrupted_frame_is_skipped_and_the_next_one_found() {
        let mut bad = poll(1, 1);
        bad[5] ^= 0x01;
        let good = poll(1, 2);
        let mut reader = FrameReader::new();
        reader.push(&bad);
        reader.push(&[MARK]);
        reader.push(&good);
        assert_eq!(reader.next_frame().map(|f| f.header.sequence), Some(2));
        assert_eq!(reader.skipped(), bad.len() as u64, "the mark before the good frame is not noise");
        assert_eq!(reader.next_frame(), None);
    }

    #[test]
    fn noise_that_looks_like_a_long_frame_does_not_hide_a_real_one() {
        let mut reader = FrameReader::new();
        // A SOM claiming a 1000-byte frame, then a real frame.
        reader.push(&[0x53, 0x81, 0xE8, 0x03, 0x05, 0x00]);
        reader.push(&poll(1, 1));
        assert_eq!(reader.next_frame().map(|f| f.code), Some(0x60));
    }

    #[test]
    fn a_frame_split_byte_by_byte_is_reassembled() {
        let bytes = poll(3, 1);
        let mut reader = FrameReader::new();
        for (i, b) in bytes.iter().enumerate() {
            reader.push(&[*b]);
            let frame = reader.next_frame();
            assert_eq!(frame.is_some(), i == bytes.len() - 1, "at byte {i}");
        }
    }

    proptest! {
        #[test]
        fn frames_survive_any_split_and_noise(
            frames in prop::collection::vec((0u8..0x7F, 0u8..4, any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 1..6),
            noise in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no SOM", |b| *b != SOM), 0..10), 6),
            cuts in prop::collection::vec(1usize..17, 1..50),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (i, (address, sequence, code, data)) in frames.iter().enumerate() {
                stream.extend_from_slice(&noise[i]);
                let header = Header { address: *address, reply: i % 2 == 0, sequence: *sequence, check: Check::Crc16 };
                stream.extend(encode(header, None, *code, data, None));
                expected.push((header, *code, data.clone()));
            }
            let mut reader = FrameReader::new();
            let mut got = Vec::new();
            let mut rest = &stream[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap()).min(rest.len());
                reader.push(&rest[..n]);
                rest = &rest[n..];
                while let Some(f) = reader.next_frame() {
                    got.push((f.header, f.code, f.data));
                }
            }
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn the_reader_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut reader = FrameReader::new();
            reader.push(&bytes);
            while reader.next_frame().is_some() {}
        }
    }
}
