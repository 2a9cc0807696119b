//! The two check characters OSDP frames end with.

/// OSDP's CRC-16: polynomial 0x1021, initial value 0x1D0F, no reflection, no
/// final XOR (the catalogue calls it CRC-16/AUG-CCITT). Sent least
/// significant byte first.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0x1D0F;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The legacy 8-bit checksum: the two's complement of the byte sum, so that
/// all bytes of a frame including the checksum add up to zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)).wrapping_neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_catalogue_check_value() {
        // CRC-16/AUG-CCITT's published check value for "123456789".
        assert_eq!(crc16(b"123456789"), 0xE5CC);
    }

    #[test]
    fn crc16_of_nothing_is_the_initial_value() {
        assert_eq!(crc16(&[]), 0x1D0F);
    }

    #[test]
    fn checksum_makes_the_frame_sum_to_zero() {
        let frame = [0x53, 0x01, 0x08, 0x00, 0x00, 0x60];
        let sum = frame.iter().fold(checksum(&frame), |s, &b| s.wrapping_add(b));
        assert_eq!(sum, 0);
    }
}
