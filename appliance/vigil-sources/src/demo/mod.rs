//! A synthetic school-hallway camera for the demo, the benchmarks and tests.
//!
//! People walk along a hallway; at scripted times one holds a solid magenta
//! rectangle (the demo model's "handgun") or a solid cyan one (its "phone").
//! Everything else in the picture keeps well away from those hues, so a
//! model keyed on them finds exactly the scripted markers, and
//! [`DemoScene::marker_boxes`] says where they are.

mod hallway;
mod paint;
mod people;

use std::fmt;
use std::sync::Arc;

use vigil_core::{CameraId, Clock, Frame};

use crate::FrameSource;
use crate::error::SourceError;
use crate::pace::Pacer;
use paint::Canvas;

/// The largest frame side accepted; larger frames are not a demo camera.
const MAX_SIDE: u32 = 8192;
/// The smallest frame side accepted; the people would be a few pixels tall.
const MIN_SIDE: u32 = 32;

/// A scripted object that stands in for something the detector looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    /// A solid magenta rectangle, about 26x16 px at 640x360.
    Handgun,
    /// A solid cyan rectangle, about 14x22 px at 640x360.
    Phone,
}

impl MarkerKind {
    /// The marker's exact colour; nothing else in the scene has it.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            MarkerKind::Handgun => [255, 0, 255],
            MarkerKind::Phone => [0, 255, 255],
        }
    }
}

/// What happens in the hallway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Repeats every 60 s of scene time: a handgun from 8 s to 16 s and from
    /// 38 s to 44 s, a phone from 22 s to 30 s, otherwise nothing.
    #[default]
    Hallway,
    /// People walking, never a marker.
    Quiet,
    /// A handgun in view in every frame, for tests that need an incident quickly.
    Armed,
}

/// How a [`DemoScene`] looks and runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DemoOptions {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second of scene time.
    pub fps: f32,
    /// What happens.
    pub scenario: Scenario,
    /// Sleep so frames come out at `fps`, like a live camera.
    pub pace: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { width: 640, height: 360, fps: 10.0, scenario: Scenario::Hallway, pace: false }
    }
}

/// A synthetic hallway camera; frame `seq` shows scene time `seq / fps`, and
/// the same options and index always give the same picture.
pub struct DemoScene {
    camera: CameraId,
    clock: Arc<dyn Clock>,
    options: DemoOptions,
    /// The empty hallway, drawn once.
    background: Vec<u8>,
    pacer: Pacer,
    seq: u64,
}

impl DemoScene {
    /// A scene starting at frame 0.
    pub fn new(camera: CameraId, clock: Arc<dyn Clock>, options: DemoOptions) -> Result<DemoScene, SourceError> {
        for (field, value) in [("width", options.width), ("height", options.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&value) {
                return Err(SourceError::invalid_options(format!(
                    "demo scene {field} must be {MIN_SIDE} to {MAX_SIDE} pixels, got {value}"
                )));
            }
        }
        if !(options.fps.is_finite() && options.fps > 0.0) {
            return Err(SourceError::invalid_options(format!(
                "demo scene fps must be a positive number, got {}",
                options.fps
            )));
        }
        let background = hallway::render(options.width as usize, options.height as usize);
        Ok(DemoScene { camera, clock, options, background, pacer: Pacer::new(options.pace, None)?, seq: 0 })
    }

    /// The options the scene was made with.
    pub fn options(&self) -> &DemoOptions {
        &self.options
    }

    fn time(&self, frame_index: u64) -> f64 {
        frame_index as f64 / f64::from(self.options.fps)
    }

    fn cast(&self, frame_index: u64) -> Vec<people::Figure> {
        people::cast(
            self.options.scenario,
            self.time(frame_index),
            self.options.width as usize,
            self.options.height as usize,
        )
    }

    /// The picture of frame `frame_index` as packed RGB, without pacing or stamping.
    pub fn render(&self, frame_index: u64) -> Arc<[u8]> {
        let (w, h) = (self.options.width as usize, self.options.height as usize);
        let mut rgb: Arc<[u8]> = Arc::from(&self.background[..]);
        let mut canvas = Canvas::new(Arc::make_mut(&mut rgb), w, h);
        let cast = self.cast(frame_index);
        for figure in &cast {
            figure.draw(&mut canvas);
        }
        // Markers go on last, over everyone, so each is exactly its ground-truth box.
        for (kind, r) in cast.iter().filter_map(people::Figure::marker) {
            canvas.fill_rect(r, kind.rgb());
        }
        rgb
    }

    /// Ground truth for frame `frame_index`: each visible marker and its box
    /// `[x1, y1, x2, y2]` in pixels, covering pixel columns `x1..x2` and rows `y1..y2`.
    pub fn marker_boxes(&self, frame_index: u64) -> Vec<(MarkerKind, [f32; 4])> {
        let (w, h) = (self.options.width as f32, self.options.height as f32);
        self.cast(frame_index)
            .iter()
            .filter_map(people::Figure::marker)
            .map(|(kind, r)| (kind, [r.x1.clamp(0.0, w), r.y1.clamp(0.0, h), r.x2.clamp(0.0, w), r.y2.clamp(0.0, h)]))
            .filter(|(_, [x1, y1, x2, y2])| x1 < x2 && y1 < y2)
            .collect()
    }
}

impl FrameSource for DemoScene {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let rgb = self.render(self.seq);
        self.pacer.wait(self.time(self.seq));
        let (w, h) = (self.options.width, self.options.height);
        let frame = Frame::new(self.camera.clone(), self.seq, self.clock.now(), w, h, rgb)
            .map_err(|e| SourceError::invalid_options(format!("demo scene: {e}")))?;
        self.seq += 1;
        Ok(Some(frame))
    }
}

impl fmt::Debug for DemoScene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoScene")
            .field("camera", &self.camera)
            .field("options", &self.options)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
