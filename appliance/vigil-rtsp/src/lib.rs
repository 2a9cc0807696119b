//! RTSP IP cameras as a [`FrameSource`](vigil_sources::FrameSource), on GStreamer.
//!
//! [`RtspSource::open`] connects to the camera, takes the first H.264 or
//! H.265 video stream it offers, decodes it (VA-API where that works,
//! software otherwise) and scales it inside GStreamer to fit the detector's
//! input, so Rust only ever copies the reduced RGB picture. Failures come
//! back as [`SourceError`](vigil_sources::SourceError)s classified by kind
//! (`Unauthorized`, `Unreachable`, `BadStream`, `Stalled`, ...) whose
//! messages name the camera's URL with its credentials hidden.
//!
//! Architecture Invariant: this crate is the only one that knows GStreamer.
//! Like every source it produces frames and nothing else; the caller's
//! worker drives it and decides when to reopen.
//!
//! Architecture Invariant: credentials never reach a log line or an error.
//! They are taken out of the URL before GStreamer sees it and handed to
//! rtspsrc as properties, and everything GStreamer says is scrubbed of them.
//!
//! The pure parts (URL handling, error classification, row packing, capture
//! times, the rate cap) have unit tests; `tests/rtsp.rs` runs the whole
//! source against a real RTSP server, `tests/peers/rtsp_server.py`, and
//! `vigil-bench`'s `ingest` binary measures its CPU against `gst-launch-1.0`.

mod capture;
mod classify;
mod picture;
mod pipeline;
mod source;
mod url;

use std::fmt;
use std::time::Duration;

pub use source::RtspSource;
pub use url::redact;

/// How RTP travels from the camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved in the RTSP TCP connection: passes firewalls and NAT, and
    /// never loses a packet, so no smeared pictures reach the detector.
    #[default]
    Tcp,
    /// Separate UDP ports: the least overhead on a clean LAN.
    Udp,
    /// UDP, falling back to TCP when no UDP packet arrives.
    Auto,
}

/// Whether to decode on the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HwDecode {
    /// VA-API (`vah264dec`, `vaapih264dec`, ...) where installed and working, software otherwise.
    #[default]
    Auto,
    /// Software only.
    Off,
}

/// How to open one camera.
#[derive(Clone)]
pub struct RtspOptions {
    /// `rtsp://[user:pass@]host[:port]/path`; `rtsps://` works too.
    pub url: String,
    /// User name; wins over one in the URL. Never logged.
    pub username: Option<String>,
    /// Password; wins over one in the URL. Never logged.
    pub password: Option<String>,
    /// How RTP travels.
    pub transport: Transport,
    /// Scale down, keeping the aspect ratio and never up, to fit this box (width, height).
    pub fit: Option<(u32, u32)>,
    /// Drop pictures above this rate before converting them.
    pub fps_cap: Option<f32>,
    /// Whether to decode on the GPU.
    pub hw_decode: HwDecode,
    /// No first picture by then is an error.
    pub connect_timeout: Duration,
    /// No picture for this long while streaming is an error.
    pub stall_timeout: Duration,
}

impl RtspOptions {
    /// Options for `url` with the defaults: TCP, no scaling, no cap, VA-API if it works, 5 s timeouts.
    pub fn new(url: &str) -> RtspOptions {
        RtspOptions {
            url: url.to_string(),
            username: None,
            password: None,
            transport: Transport::default(),
            fit: None,
            fps_cap: None,
            hw_decode: HwDecode::default(),
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(5),
        }
    }
}

/// Shows the URL redacted and the credentials as `***`, so options can be logged.
impl fmt::Debug for RtspOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("RtspOptions")
            .field("url", &redact(&self.url))
            .field("username", &hidden(&self.username))
            .field("password", &hidden(&self.password))
            .field("transport", &self.transport)
            .field("fit", &self.fit)
            .field("fps_cap", &self.fps_cap)
            .field("hw_decode", &self.hw_decode)
            .field("connect_timeout", &self.connect_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_credentials() {
        let mut o = RtspOptions::new("rtsp://admin:hunter2@cam/x");
        o.username = Some("operator".into());
        o.password = Some("s3cret".into());
        let shown = format!("{o:?}");
        for secret in ["admin", "hunter2", "operator", "s3cret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("rtsp://***@cam/x"));
    }
}
