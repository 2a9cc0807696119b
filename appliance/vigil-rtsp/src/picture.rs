//! From an appsink sample to a picture: its RGB as the frame's pixels, and
//! its capture time. When the converter's rows are tightly packed (any width
//! whose RGB row is a multiple of 4 bytes, such as 640) the frame holds the
//! GStreamer buffer itself and Rust copies nothing; otherwise the rows are
//! packed into a new buffer, the one copy made.

use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use vigil_core::{CameraId, Clock, Moment, Pixels};

use crate::capture::{MAX_CAMERA_SKEW, camera_moment, pack_rows};

/// One decoded picture, packed and stamped, waiting for its frame number.
pub(crate) struct Picture {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) rgb: Pixels,
    pub(crate) captured: Moment,
}

/// A decoded buffer whose plane 0 is the frame's packed RGB, kept mapped.
struct Mapped {
    buffer: gst::MappedBuffer<gst::buffer::Readable>,
    plane: std::ops::Range<usize>,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.buffer.as_slice()[self.plane.clone()]
    }
}

/// The sample's buffer as pixels without a copy, if `plane` (the mapped plane
/// 0, `len` bytes of packed rows) lies inside one mapping of it.
fn shared(sample: &gst::Sample, plane: &[u8], len: usize) -> Option<Pixels> {
    let buffer = sample.buffer_owned()?.into_mapped_buffer_readable().ok()?;
    let base = buffer.as_slice().as_ptr() as usize;
    let start = (plane.as_ptr() as usize).checked_sub(base)?;
    let plane = start..start.checked_add(len)?;
    // A buffer of several memories maps to a copy elsewhere: then it is not ours to share.
    (plane.end <= buffer.as_slice().len()).then(|| Pixels::new(Mapped { buffer, plane }))
}

/// What turning samples into pictures needs to remember.
pub(crate) struct Unpacker {
    camera: CameraId,
    clock: Arc<dyn Clock>,
    /// The caps of the last picture and what they say.
    format: Option<(gst::Caps, gst_video::VideoInfo)>,
    last_mono: Duration,
    /// Whether pictures carry the camera's clock, to log when that changes.
    camera_clock: Option<bool>,
}

impl Unpacker {
    /// An unpacker for `camera`'s samples, stamping with `clock`.
    pub(crate) fn new(camera: CameraId, clock: Arc<dyn Clock>) -> Unpacker {
        Unpacker { camera, clock, format: None, last_mono: Duration::ZERO, camera_clock: None }
    }

    /// The picture in `sample`, pulled just now.
    pub(crate) fn picture(&mut self, sample: &gst::Sample) -> Result<Picture, String> {
        let now = self.clock.now();
        let buffer = sample.buffer().ok_or("a decoded picture came without data")?;
        let caps = sample.caps().ok_or("a decoded picture came without caps")?;
        // The caps change only when the stream does; parsing them for every picture shows in profiles.
        let info = match &self.format {
            Some((known, info)) if known.as_ptr() == caps.as_ptr() => info,
            _ => {
                let info =
                    gst_video::VideoInfo::from_caps(caps).map_err(|e| format!("unreadable picture caps: {e}"))?;
                &self.format.insert((caps.to_owned(), info)).1
            }
        };
        // Mapping through the video meta honours the strides the converter chose.
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
            .map_err(|e| format!("cannot map a decoded picture: {e}"))?;
        let data = frame.plane_data(0).map_err(|e| format!("cannot read a decoded picture: {e}"))?;
        let stride = usize::try_from(frame.plane_stride()[0]).unwrap_or(0);
        let (width, height) = (info.width(), info.height());
        let row = width as usize * 3;
        let rgb = match (stride == row).then(|| shared(sample, data, row * height as usize)).flatten() {
            Some(pixels) => pixels,
            None => pack_rows(data, row, height as usize, stride)?.into(),
        };
        Ok(Picture { width, height, rgb, captured: self.captured(buffer, now) })
    }

    /// When the picture in `buffer`, pulled at `now`, was taken; see [`RtspSource`](crate::RtspSource).
    fn captured(&mut self, buffer: &gst::BufferRef, now: Moment) -> Moment {
        let ntp = buffer
            .iter_meta::<gst::ReferenceTimestampMeta>()
            .find(|m| m.reference().structure(0).is_some_and(|s| s.name() == "timestamp/x-ntp"))
            .map(|m| Duration::from(m.timestamp()));
        let from_camera = ntp.and_then(|ntp| camera_moment(now, ntp));
        let uses_camera = from_camera.is_some();
        if self.camera_clock != Some(uses_camera) && (ntp.is_some() || self.camera_clock.is_some()) {
            if uses_camera {
                tracing::info!(camera = %self.camera, "stamping frames with the camera's RTCP clock");
            } else {
                tracing::warn!(
                    camera = %self.camera,
                    max_skew_s = MAX_CAMERA_SKEW.as_secs(),
                    "the camera's clock is too far from ours; stamping frames on arrival"
                );
            }
            self.camera_clock = Some(uses_camera);
        }
        let mut captured = from_camera.unwrap_or(now);
        // Moving from arrival times to the camera's (earlier) times must not make time run backwards.
        captured.mono = captured.mono.max(self.last_mono);
        self.last_mono = captured.mono;
        captured
    }
}
