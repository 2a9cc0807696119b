//! Where frames come from.
//!
//! Every camera stream sits behind [`FrameSource`], opened through an
//! [`Opener`] so the supervisor can reopen a failed stream and tests can inject
//! their own. This crate provides two sources that need no camera: recorded
//! .y4m files ([`Y4mSource`], with [`Y4mWriter`] to make them) and a synthetic
//! school hallway ([`DemoScene`]) for the demo, the benchmarks and tests.
//!
//! Architecture Invariant: sources produce frames and nothing else. They know
//! nothing of detection, incidents, threads or channels; the caller drives
//! them by calling [`FrameSource::next_frame`] from its own worker.

mod demo;
mod error;
mod pace;
mod y4m;

use vigil_core::{CameraId, Frame};

pub use demo::{DemoOptions, DemoScene, MarkerKind, Scenario};
pub use error::{SourceError, SourceErrorKind};
pub use y4m::{FrameRate, Y4mOptions, Y4mSource, Y4mWriter};

/// A stream of frames from one camera. Blocking; pacing to real time is the source's business.
///
/// Frames are numbered from 0 in `seq`, one more for each frame handed out,
/// and `captured` is the source's clock when the frame is handed out. After an
/// error the stream is in an unknown place: drop the source and open it again.
pub trait FrameSource: Send {
    /// Next frame, `Ok(None)` at a clean end of stream.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        (**self).next_frame()
    }
}

/// Opens a camera's stream; called again after every failure, and replaced by a fake in tests.
pub trait Opener: Send + Sync {
    /// A fresh stream for `camera`.
    fn open(&self, camera: &CameraId) -> Result<Box<dyn FrameSource>, SourceError>;
}

/// Any suitable closure is an opener, which keeps test fakes to one line.
impl<F> Opener for F
where
    F: Fn(&CameraId) -> Result<Box<dyn FrameSource>, SourceError> + Send + Sync,
{
    fn open(&self, camera: &CameraId) -> Result<Box<dyn FrameSource>, SourceError> {
        self(camera)
    }
}
