//! A SIP user agent that makes one paging call: INVITE over UDP with an SDP
//! offer for G.711 µ-law, digest authentication, ACK, the message streamed
//! as RTP in real time, then BYE. It is what the `pa-paging` plugin uses to
//! announce Standard Response Protocol directives over a school's PA.
//!
//! Layers, each usable alone:
//! - pure protocol: [`message`] (SIP text), [`digest`] (RFC 2617 credentials),
//!   [`sdp`] (offer and answer), [`rtp`] (packetizer), [`g711`] (µ-law),
//!   [`call`] (the call's state: which request to send for which response);
//! - I/O: [`ua::page`], a blocking agent over `std::net::UdpSocket`.
//!
//! Architecture Invariant: only std and pure-Rust dependencies, no threads,
//! no DNS: the crate builds for `wasm32-wasip2`, where the plugin host
//! filters every socket address, and is tested natively against sipp.
//!
//! Not covered: TCP, TLS, SRTP, DNS (SRV/NAPTR), re-INVITE and UPDATE,
//! early media (183's SDP is ignored), PRACK, Record-Route/route sets,
//! forking (the first 2xx wins), auth-int and SHA-256 digests.

pub mod call;
pub mod digest;
pub mod g711;
pub mod message;
pub mod rtp;
pub mod sdp;
pub mod ua;

pub use digest::Credentials;
pub use ua::{Page, PageError, PageReport, page};

/// 64 unpredictable bits for tags, Call-IDs, nonces and the RTP SSRC.
///
/// Std has no public random API; `RandomState` is seeded from the OS (WASI's
/// `random_get` on wasm32-wasip2) with fresh keys per instance, which is
/// enough for identifiers that must not collide or be guessed trivially.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}
