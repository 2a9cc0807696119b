//! The Secure Channel's cryptography (OSDP v2.2 annex D), all AES-128.
//!
//! - Session keys from the base key and the CP's random number RND.A:
//!   `S-ENC = AES(SCBK, 01 82 RND.A[0..6] 00…)`, `S-MAC1` with `01 01`,
//!   `S-MAC2` with `01 02`.
//! - Client (PD) cryptogram `AES(S-ENC, RND.A ‖ RND.B)`, server (CP)
//!   cryptogram `AES(S-ENC, RND.B ‖ RND.A)`, initial reply MAC
//!   `RMAC-I = AES(S-MAC2, AES(S-MAC1, server cryptogram))`.
//! - Every secure message's MAC is a CBC-MAC over the frame (SOM to the end
//!   of the data, padded with `80 00…` when not a whole number of blocks),
//!   S-MAC1 for all blocks but the last, S-MAC2 for the last, chained: a
//!   command's MAC starts from the last reply's MAC, a reply's from the
//!   command's. Four bytes of it go on the wire.
//! - Data is AES-CBC with S-ENC, always padded `80 00…`, the IV being the
//!   bitwise complement of that same chaining MAC.

use aes::Aes128;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};

/// One AES block.
pub type Block = [u8; 16];

/// A Secure Channel Base Key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Scbk(pub [u8; 16]);

impl Scbk {
    /// SCBK-D, the well-known default key of install mode (`30 31 … 3F`).
    /// Anyone can compute every session key made from it.
    pub const DEFAULT: Scbk =
        Scbk([0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F]);

    /// Parses 32 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Option<Scbk> {
        let hex = hex.trim();
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut key = [0u8; 16];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Scbk(key))
    }

    /// Whether this is the install-mode default key SCBK-D.
    pub fn is_default(&self) -> bool {
        *self == Scbk::DEFAULT
    }
}

impl std::fmt::Debug for Scbk {
    /// Never prints the key itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_default() { "Scbk(SCBK-D)" } else { "Scbk(..)" })
    }
}

fn aes_encrypt(key: &Block, block: &Block) -> Block {
    let cipher = Aes128::new(GenericArray::from_slice(key));
    let mut b = GenericArray::clone_from_slice(block);
    cipher.encrypt_block(&mut b);
    b.into()
}

fn xor(a: &Block, b: &[u8]) -> Block {
    let mut out = *a;
    for (o, x) in out.iter_mut().zip(b) {
        *o ^= x;
    }
    out
}

fn complement(b: &Block) -> Block {
    b.map(|x| !x)
}

/// The three session keys of one secure channel session.
#[derive(Clone)]
pub struct SessionKeys {
    enc: Block,
    mac1: Block,
    mac2: Block,
}

impl SessionKeys {
    /// Derives the session keys from the base key and the CP's RND.A.
    pub fn derive(scbk: &Scbk, rnd_a: &[u8; 8]) -> SessionKeys {
        let derive = |kind: [u8; 2]| {
            let mut input = [0u8; 16];
            input[..2].copy_from_slice(&kind);
            input[2..8].copy_from_slice(&rnd_a[..6]);
            aes_encrypt(&scbk.0, &input)
        };
        SessionKeys { enc: derive([0x01, 0x82]), mac1: derive([0x01, 0x01]), mac2: derive([0x01, 0x02]) }
    }

    /// The PD's ("client") cryptogram the CP expects in osdp_CCRYPT.
    pub fn client_cryptogram(&self, rnd_a: &[u8; 8], rnd_b: &[u8; 8]) -> Block {
        self.enc_block(rnd_a, rnd_b)
    }

    /// The CP's ("server") cryptogram it sends in osdp_SCRYPT.
    pub fn server_cryptogram(&self, rnd_a: &[u8; 8], rnd_b: &[u8; 8]) -> Block {
        self.enc_block(rnd_b, rnd_a)
    }

    /// The initial reply MAC the PD sends in osdp_RMAC_I, which seeds the MAC chain.
    pub fn initial_rmac(&self, server_cryptogram: &Block) -> Block {
        aes_encrypt(&self.mac2, &aes_encrypt(&self.mac1, server_cryptogram))
    }

    fn enc_block(&self, first: &[u8; 8], second: &[u8; 8]) -> Block {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(first);
        input[8..].copy_from_slice(second);
        aes_encrypt(&self.enc, &input)
    }

    /// The full 16-byte MAC of `message` chained from `iv`.
    pub fn mac(&self, iv: &Block, message: &[u8]) -> Block {
        let mut padded = message.to_vec();
        if padded.is_empty() || !padded.len().is_multiple_of(16) {
            padded.push(0x80);
            padded.resize(padded.len().div_ceil(16) * 16, 0);
        }
        let blocks = padded.len() / 16;
        let mut chain = *iv;
        for (i, block) in padded.chunks(16).enumerate() {
            let key = if i + 1 == blocks { &self.mac2 } else { &self.mac1 };
            chain = aes_encrypt(key, &xor(&chain, block));
        }
        chain
    }

    /// Encrypts message data with S-ENC, the IV being the complement of `chain`.
    pub fn encrypt(&self, chain: &Block, data: &[u8]) -> Vec<u8> {
        let cipher = Aes128::new(GenericArray::from_slice(&self.enc));
        let mut padded = data.to_vec();
        padded.push(0x80);
        padded.resize(padded.len().div_ceil(16) * 16, 0);
        let mut iv = complement(chain);
        for block in padded.chunks_mut(16) {
            let mut b = GenericArray::clone_from_slice(&xor(&iv, block));
            cipher.encrypt_block(&mut b);
            block.copy_from_slice(&b);
            iv.copy_from_slice(block);
        }
        padded
    }

    /// Decrypts message data; `None` when it is not whole blocks or its
    /// padding is wrong (a sign of the wrong keys or a broken chain).
    pub fn decrypt(&self, chain: &Block, data: &[u8]) -> Option<Vec<u8>> {
        if data.is_empty() || !data.len().is_multiple_of(16) {
            return None;
        }
        let cipher = Aes128::new(GenericArray::from_slice(&self.enc));
        let mut out = Vec::with_capacity(data.len());
        let mut iv = complement(chain);
        for block in data.chunks(16) {
            let mut b = GenericArray::clone_from_slice(block);
            cipher.decrypt_block(&mut b);
            out.extend_from_slice(&xor(&b.into(), &iv));
            iv.copy_from_slice(block);
        }
        let end = out.iter().rposition(|&b| b != 0)?;
        if out[end] != 0x80 {
            return None;
        }
        out.truncate(end);
        Some(out)
    }
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RND_A: [u8; 8] = [0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7];
    const RND_B: [u8; 8] = [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7];

    #[test]
    fn aes_matches_fips_197() {
        // FIPS-197 appendix C.1.
        let key: Block = core::array::from_fn(|i| i as u8);
        let plain: Block = core::array::from_fn(|i| (i as u8) * 0x11);
        let expected = [0x69, 0xC4, 0xE0, 0xD8, 0x6A, 0x7B, 0x04, 0x30, 0xD8, 0xCD, 0xB7, 0x80, 0x70, 0xB4, 0xC5, 0x5A];
        assert_eq!(aes_encrypt(&key, &plain), expected);
    }

    #[test]
    fn session_keys_follow_the_derivation_inputs() {
        let keys = SessionKeys::derive(&Scbk::DEFAULT, &RND_A);
        let mut input = [0u8; 16];
        input[..2].copy_from_slice(&[0x01, 0x82]);
        input[2..8].copy_from_slice(&RND_A[..6]);
        assert_eq!(keys.enc, aes_encrypt(&Scbk::DEFAULT.0, &input));
        // Only the first six bytes of RND.A count.
        let mut other = RND_A;
        other[7] ^= 0xFF;
        assert_eq!(SessionKeys::derive(&Scbk::DEFAULT, &other).mac1, keys.mac1);
    }

    #[test]
    fn the_cryptograms_differ_by_order() {
        let keys = SessionKeys::derive(&Scbk::DEFAULT, &RND_A);
        assert_ne!(keys.client_cryptogram(&RND_A, &RND_B), keys.server_cryptogram(&RND_A, &RND_B));
        assert_eq!(keys.client_cryptogram(&RND_A, &RND_B), keys.server_cryptogram(&RND_B, &RND_A));
    }

    #[test]
    fn a_one_block_mac_is_one_aes_with_smac2() {
        let keys = SessionKeys::derive(&Scbk::DEFAULT, &RND_A);
        let iv = [7u8; 16];
        let msg = [1u8; 16];
        assert_eq!(keys.mac(&iv, &msg), aes_encrypt(&keys.mac2, &xor(&iv, &msg)));
        let mut short = [0u8; 16];
        short[..3].copy_from_slice(&[1, 2, 3]);
        short[3] = 0x80;
        assert_eq!(keys.mac(&iv, &[1, 2, 3]), aes_encrypt(&keys.mac2, &xor(&iv, &short)));
    }

    #[test]
    fn scbk_parses_hex_and_hides_itself() {
        assert_eq!(Scbk::from_hex("303132333435363738393a3b3c3d3e3f"), Some(Scbk::DEFAULT));
        assert_eq!(Scbk::from_hex("3031"), None);
        assert_eq!(Scbk::from_hex("zz3132333435363738393a3b3c3d3e3f"), None);
        assert_eq!(format!("{:?}", Scbk([1; 16])), "Scbk(..)");
    }

    proptest! {
        #[test]
        fn data_round_trips_and_is_padded(data in prop::collection::vec(any::<u8>(), 0..70), chain in any::<[u8; 16]>()) {
            let keys = SessionKeys::derive(&Scbk([3; 16]), &RND_A);
            let sealed = keys.encrypt(&chain, &data);
            prop_assert_eq!(sealed.len(), (data.len() / 16 + 1) * 16);
            prop_assert_eq!(keys.decrypt(&chain, &sealed), Some(data));
        }

        #[test]
        fn another_chain_does_not_decrypt(data in prop::collection::vec(any::<u8>(), 1..40)) {
            let keys = SessionKeys::derive(&Scbk([3; 16]), &RND_A);
            let sealed = keys.encrypt(&[1; 16], &data);
            prop_assert_ne!(keys.decrypt(&[2; 16], &sealed), Some(data));
        }
    }
}
