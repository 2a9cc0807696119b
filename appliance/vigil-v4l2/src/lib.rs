//! Cameras on the appliance's own bus: USB (UVC) cameras and analog capture
//! cards, read through Video4Linux2.
//!
//! [`V4l2Source`] opens `/dev/videoN`, negotiates a mode the device offers
//! (MJPEG or YUYV, see [`V4l2Options::format`]), streams through a few
//! memory-mapped buffers and hands out RGB [`vigil_core::Frame`]s, shrunk to
//! fit the detector's input when asked.
//!
//! Code map:
//! - `negotiate`: what the device offers in, the mode to ask for out; then
//!   what the driver actually set, checked and explained. Pure.
//! - `convert`: YUYV and MJPEG to RGB, missing Huffman tables restored, area
//!   averaging downscale. Pure.
//! - `decode`: one frame's bytes to a picture, skipping corrupt frames until
//!   too many come in a row. Pure.
//! - `device`: the only module that touches the device (through the `v4l` crate).
//!
//! Architecture Invariant: everything but `device` works on plain values and
//! byte slices, so it is tested without a camera; the tests that need one are
//! opt-in (`VIGIL_V4L2_DEVICE`).

mod convert;
mod decode;
mod device;
mod negotiate;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use vigil_sources::SourceError;

pub use device::V4l2Source;
pub use negotiate::Mode;

/// The pixel formats this crate decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion JPEG (FourCC `MJPG`): one JPEG per frame, what USB cameras send at high resolutions.
    Mjpeg,
    /// YUV 4:2:2 packed as Y0 U Y1 V (FourCC `YUYV`), uncompressed.
    Yuyv,
}

impl PixelFormat {
    /// The V4L2 FourCC code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
        }
    }

    /// The format with this FourCC, if it is one this crate decodes.
    pub fn from_fourcc(code: [u8; 4]) -> Option<PixelFormat> {
        match &code {
            b"MJPG" => Some(PixelFormat::Mjpeg),
            b"YUYV" => Some(PixelFormat::Yuyv),
            _ => None,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Mjpeg => "MJPG",
            PixelFormat::Yuyv => "YUYV",
        })
    }
}

/// What to ask of a V4L2 camera; the device may offer something else, see [`V4l2Source::mode`].
#[derive(Clone, Debug, PartialEq)]
pub struct V4l2Options {
    /// The device node, `/dev/videoN` (or a stable `/dev/v4l/by-id/...` link).
    pub device: PathBuf,
    /// Wanted width in pixels: the exact size if offered, else the smallest larger one, else the largest.
    pub width: u32,
    /// Wanted height in pixels.
    pub height: u32,
    /// Wanted frame rate: the closest offered rate not above it, else the slowest.
    pub fps: f32,
    /// Pixel format to insist on; `None` prefers MJPEG above 640x480 (a USB 2 link cannot carry
    /// uncompressed HD at full rate) and YUYV otherwise, falling back to whichever the device has.
    pub format: Option<PixelFormat>,
    /// Shrink each decoded frame to fit this width and height, keeping its aspect; never enlarges.
    pub fit: Option<(u32, u32)>,
    /// Give up with a `Stalled` error when no frame arrives for this long.
    pub stall_timeout: Duration,
}

impl V4l2Options {
    /// Options for `device` at 640x480, 15 frames per second, any format, no fit, 5 s stall timeout.
    pub fn new(device: impl Into<PathBuf>) -> V4l2Options {
        V4l2Options {
            device: device.into(),
            width: 640,
            height: 480,
            fps: 15.0,
            format: None,
            fit: None,
            stall_timeout: Duration::from_secs(5),
        }
    }

    /// Refuses options that cannot work, naming the field.
    pub(crate) fn validate(&self) -> Result<(), SourceError> {
        let bad = |message: String| Err(SourceError::invalid_options(message));
        if self.device.as_os_str().is_empty() {
            return bad("device is empty; give the camera's node, e.g. /dev/video0".to_string());
        }
        if self.width == 0 || self.height == 0 {
            return bad(format!("width and height must be at least 1, got {}x{}", self.width, self.height));
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return bad(format!("fps must be a positive number, got {}", self.fps));
        }
        if let Some((w, h)) = self.fit
            && (w == 0 || h == 0)
        {
            return bad(format!("fit must be at least 1x1, got {w}x{h}"));
        }
        if self.stall_timeout.is_zero() {
            return bad("stall_timeout must be longer than zero".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use vigil_sources::SourceErrorKind;

    use super::*;

    #[test]
    fn fourcc_round_trips_for_the_decoded_formats_only() {
        for format in [PixelFormat::Mjpeg, PixelFormat::Yuyv] {
            assert_eq!(PixelFormat::from_fourcc(format.fourcc()), Some(format));
            assert_eq!(format.to_string().as_bytes(), format.fourcc());
        }
        assert_eq!(PixelFormat::from_fourcc(*b"NV12"), None);
    }

    #[test]
    fn options_that_cannot_work_name_their_field() {
        let ok = V4l2Options::new("/dev/video0");
        assert!(ok.validate().is_ok());
        let cases: [(V4l2Options, &str); 6] = [
            (V4l2Options { device: PathBuf::new(), ..ok.clone() }, "device"),
            (V4l2Options { width: 0, ..ok.clone() }, "width"),
            (V4l2Options { fps: 0.0, ..ok.clone() }, "fps"),
            (V4l2Options { fps: f32::NAN, ..ok.clone() }, "fps"),
            (V4l2Options { fit: Some((0, 480)), ..ok.clone() }, "fit"),
            (V4l2Options { stall_timeout: Duration::ZERO, ..ok.clone() }, "stall_timeout"),
        ];
        for (options, field) in cases {
            let err = options.validate().unwrap_err();
            assert_eq!(err.kind(), SourceErrorKind::InvalidOptions);
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }
}
