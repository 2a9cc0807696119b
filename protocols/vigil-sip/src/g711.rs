//! G.711 µ-law (ITU-T G.711, the North American companding law): 14-bit
//! linear samples to 8-bit codes and back. The pager plays µ-law directly;
//! the encoder is here for tests and tools that start from linear audio.

/// The bias added before finding the segment, so that segment boundaries fall on powers of two.
const BIAS: i32 = 0x84;
/// The largest magnitude that still encodes without overflowing segment 7.
const CLIP: i32 = 32635;

/// The µ-law code of silence (a positive zero).
pub const SILENCE: u8 = 0xFF;

/// Encodes one 16-bit linear sample.
pub fn encode(sample: i16) -> u8 {
    let value = i32::from(sample);
    let sign: u8 = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    // The segment is the position of the highest set bit above bit 7.
    let segment = (31 - magnitude.leading_zeros()).saturating_sub(7).min(7) as u8;
    let mantissa = ((magnitude >> (segment + 3)) & 0x0F) as u8;
    !(sign | (segment << 4) | mantissa)
}

/// Decodes one µ-law code to a 16-bit linear sample.
pub fn decode(code: u8) -> i16 {
    let code = !code;
    let segment = (code >> 4) & 0x07;
    let mantissa = i32::from(code & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << segment) - BIAS;
    (if code & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(encode(0), SILENCE);
        assert_eq!(encode(-1), 0x7F);
        assert_eq!(encode(i16::MAX), 0x80);
        assert_eq!(encode(i16::MIN), 0x00);
        assert_eq!(decode(0x80), 32124);
        assert_eq!(decode(0x00), -32124);
        assert_eq!(decode(SILENCE), 0);
    }

    /// Every code decodes to a value that encodes back to the same code
    /// (apart from the negative zero, 0x7F, which reads back as positive zero).
    #[test]
    fn decoding_then_encoding_is_the_identity() {
        for code in 0..=255u8 {
            let back = encode(decode(code));
            assert!(
                back == code || (code == 0x7F && back == SILENCE),
                "{code:#04x} -> {} -> {back:#04x}",
                decode(code)
            );
        }
    }

    #[test]
    fn the_error_stays_within_the_segment_step() {
        for sample in (-32000..32000).step_by(37) {
            let s = sample as i16;
            let error = (i32::from(decode(encode(s))) - i32::from(s)).abs();
            // The step doubles per segment: 8 in the first, 1024 in the last; half a step plus rounding.
            assert!(error <= (i32::from(s).abs() >> 4).max(8) + 8, "{s}: error {error}");
        }
    }
}
