//! RTP (RFC 3550) for one outgoing G.711 stream: fixed 12-byte headers, no
//! CSRCs or extensions, 20 ms packets of 160 µ-law samples (RFC 3551).

use crate::g711;

/// Samples (and bytes) of µ-law in one 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;
/// The time one packet covers.
pub const PACKET_DURATION: std::time::Duration = std::time::Duration::from_millis(20);
/// The length of the fixed header.
pub const HEADER_LEN: usize = 12;

/// The fixed part of an RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Marks the first packet of a talkspurt.
    pub marker: bool,
    /// The payload type (0 for PCMU).
    pub payload_type: u8,
    /// Increments by one per packet, wrapping.
    pub sequence: u16,
    /// The sampling instant of the first sample, in 8 kHz ticks, wrapping.
    pub timestamp: u32,
    /// The synchronization source.
    pub ssrc: u32,
}

impl Header {
    /// Appends the 12 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80); // version 2, no padding, no extension, no CSRC
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Reads a version-2 packet into its header and payload (skipping CSRCs,
    /// an extension and padding); `None` if it is not one.
    pub fn parse(packet: &[u8]) -> Option<(Header, &[u8])> {
        let first = *packet.first()?;
        if first >> 6 != 2 || packet.len() < HEADER_LEN {
            return None;
        }
        let mut start = HEADER_LEN + 4 * usize::from(first & 0x0F);
        if first & 0x10 != 0 {
            let words = packet.get(start + 2..start + 4)?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut end = packet.len();
        if first & 0x20 != 0 {
            end = end.checked_sub(usize::from(*packet.last()?))?;
        }
        let header = Header {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7F,
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        };
        Some((header, packet.get(start..end)?))
    }
}

/// Cuts µ-law audio into RTP packets: sequence and timestamp advance per
/// packet from random starting points, the marker is set on the first.
#[derive(Debug, Clone)]
pub struct Packetizer {
    next: Header,
}

impl Packetizer {
    /// A stream with this SSRC and initial sequence number and timestamp.
    pub fn new(ssrc: u32, sequence: u16, timestamp: u32) -> Packetizer {
        Packetizer { next: Header { marker: true, payload_type: crate::sdp::PCMU, sequence, timestamp, ssrc } }
    }

    /// The next packet carrying `frame` (up to 160 samples; a short last
    /// frame is padded with silence so every packet covers 20 ms).
    pub fn packet(&mut self, frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + SAMPLES_PER_PACKET);
        self.next.write(&mut out);
        let frame = &frame[..frame.len().min(SAMPLES_PER_PACKET)];
        out.extend_from_slice(frame);
        out.resize(HEADER_LEN + SAMPLES_PER_PACKET, g711::SILENCE);
        self.next.marker = false;
        self.next.sequence = self.next.sequence.wrapping_add(1);
        self.next.timestamp = self.next.timestamp.wrapping_add(SAMPLES_PER_PACKET as u32);
        out
    }
}

/// How many packets `samples` of audio take.
pub fn packets_for(samples: usize) -> usize {
    samples.div_ceil(SAMPLES_PER_PACKET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_count_up_from_the_start_and_only_the_first_is_marked() {
        let mut p = Packetizer::new(0xDEADBEEF, u16::MAX, u32::MAX - 100);
        let audio: Vec<u8> = (0..400).map(|i| i as u8).collect();
        let packets: Vec<Vec<u8>> = audio.chunks(SAMPLES_PER_PACKET).map(|f| p.packet(f)).collect();
        assert_eq!(packets.len(), packets_for(audio.len()));
        let headers: Vec<Header> = packets.iter().map(|b| Header::parse(b).unwrap().0).collect();
        assert_eq!(headers.iter().map(|h| h.sequence).collect::<Vec<_>>(), [u16::MAX, 0, 1]);
        assert_eq!(headers.iter().map(|h| h.timestamp).collect::<Vec<_>>(), [u32::MAX - 100, 59, 219]);
        assert_eq!(headers.iter().map(|h| h.marker).collect::<Vec<_>>(), [true, false, false]);
        assert!(headers.iter().all(|h| h.ssrc == 0xDEADBEEF && h.payload_type == 0));
        assert_eq!(&packets[0][..2], [0x80, 0x80]);
        for b in &packets {
            assert_eq!(b.len(), HEADER_LEN + SAMPLES_PER_PACKET);
        }
        let last = Header::parse(&packets[2]).unwrap().1;
        assert_eq!(&last[..80], &audio[320..]);
        assert!(last[80..].iter().all(|&s| s == g711::SILENCE));
    }

    #[test]
    fn parse_skips_csrcs_extensions_and_padding() {
        let mut b = vec![0xA1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        b.extend_from_slice(b"ab");
        b.extend_from_slice(&[0, 2]); // two bytes of padding, counted by the last
        assert_eq!(Header::parse(&b).unwrap().1, b"ab");
        assert_eq!(Header::parse(&[0x40; 12]), None, "version 1");
        assert_eq!(Header::parse(&[0x80; 5]), None, "too short");
        assert_eq!(
            Header::parse(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50]),
            None,
            "padding longer than the packet"
        );
    }
}
