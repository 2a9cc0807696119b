//! Frames from cameras and what the detector found in them.

use std::fmt;
use std::sync::Arc;

use crate::geom::BBox;
use crate::time::Moment;

/// A camera's configured id, cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CameraId(Arc<str>);

impl CameraId {
    /// Wraps an id; validation of the id's spelling belongs to the config.
    pub fn new(id: &str) -> CameraId {
        CameraId(Arc::from(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CameraId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a camera is, for telling responders where a threat was seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// Building name or number.
    pub building: String,
    /// Floor, as the school names it ("1", "Ground", "B1").
    pub floor: String,
    /// Zone within the floor ("east-hall", "gym").
    pub zone: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "building {}, floor {}, {}", self.building, self.floor, self.zone)
    }
}

/// The pixel memory of a frame, shared, never copied: a buffer Rust filled,
/// or one a decoder owns (an RTSP camera's GStreamer buffer), kept alive for
/// as long as any stage still looks at the frame.
#[derive(Clone)]
pub struct Pixels(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Pixels {
    /// Pixels held by `owner`, whatever owns them.
    pub fn new(owner: impl AsRef<[u8]> + Send + Sync + 'static) -> Pixels {
        Pixels(Arc::new(owner))
    }
}

impl std::ops::Deref for Pixels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(v: Vec<u8>) -> Pixels {
        Pixels::new(v)
    }
}

impl From<Arc<[u8]>> for Pixels {
    fn from(a: Arc<[u8]>) -> Pixels {
        Pixels(Arc::new(a))
    }
}

/// One decoded picture: packed 8-bit RGB, row-major, no padding.
#[derive(Clone)]
pub struct Frame {
    /// The camera it came from.
    pub camera: CameraId,
    /// Sequence number within that camera's stream, counting from 0.
    pub seq: u64,
    /// When the picture was taken (the stream's capture time where known).
    pub captured: Moment,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes of RGB, shared so evidence can keep a frame without a copy.
    pub rgb: Pixels,
}

impl Frame {
    /// A frame, checking that the buffer matches the size.
    pub fn new(
        camera: CameraId,
        seq: u64,
        captured: Moment,
        width: u32,
        height: u32,
        rgb: impl Into<Pixels>,
    ) -> Result<Frame, String> {
        let rgb = rgb.into();
        let expected = width as usize * height as usize * 3;
        if rgb.len() != expected || width == 0 || height == 0 {
            return Err(format!("a {width}x{height} RGB frame needs {expected} bytes, got {}", rgb.len()));
        }
        Ok(Frame { camera, seq, captured, width, height, rgb })
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("camera", &self.camera)
            .field("seq", &self.seq)
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .finish_non_exhaustive()
    }
}

/// One object the detector found, in the frame's pixel coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Class index in the model's label map.
    pub class: u32,
    /// The class's name from the label map.
    pub label: Arc<str>,
    /// Confidence, 0..=1.
    pub score: f32,
    /// Where it is.
    pub bbox: BBox,
}

/// What the detector made of one frame.
#[derive(Clone, Debug)]
pub struct FrameResult {
    /// The camera the frame came from.
    pub camera: CameraId,
    /// The frame's sequence number.
    pub seq: u64,
    /// The frame's size, for zone tests on normalised coordinates.
    pub width: u32,
    /// The frame's height.
    pub height: u32,
    /// When the frame was captured.
    pub captured: Moment,
    /// When the inference result was decoded.
    pub inferred: Moment,
    /// Everything found, after non-maximum suppression.
    pub detections: Vec<Detection>,
}
