//! Camera workers: one thread per camera, each running `run()` over
//! `run_once()` with jittered backoff, so one failing camera never affects
//! another and none ever gives up.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_config::{CameraConfig, SourceConfig};
use vigil_core::{CameraId, Clock};
use vigil_sources::{DemoOptions, DemoScene, FrameSource, Opener, Scenario, SourceError, Y4mOptions, Y4mSource};

use crate::backoff::Backoff;
use crate::scheduler::LatestFrames;

/// What a camera is doing, for status and logs.
#[derive(Clone, Debug, PartialEq)]
pub enum CameraState {
    /// Opening its stream.
    Starting,
    /// Frames are arriving.
    Streaming,
    /// The stream failed; retrying after a backoff.
    Failed(String),
    /// A source that plays once (a file without `loop`) reached its end.
    Finished,
}

/// A camera's health.
#[derive(Clone, Debug)]
pub struct CameraHealth {
    /// Current state.
    pub state: CameraState,
    /// Frames handed to the detector's scheduler.
    pub frames: u64,
    /// Times the stream was (re)opened.
    pub opens: u64,
}

/// Opens the sources a config describes; the production [`Opener`].
pub struct ConfigOpener {
    cameras: Vec<CameraConfig>,
    clock: Arc<dyn Clock>,
}

impl ConfigOpener {
    /// An opener for `cameras`, stamping frames with `clock`.
    pub fn new(cameras: Vec<CameraConfig>, clock: Arc<dyn Clock>) -> ConfigOpener {
        ConfigOpener { cameras, clock }
    }
}

impl Opener for ConfigOpener {
    fn open(&self, camera: &CameraId) -> Result<Box<dyn FrameSource>, SourceError> {
        let Some(cfg) = self.cameras.iter().find(|c| &c.id == camera) else {
            return Err(SourceError::invalid_options(format!("camera {camera} is not configured")));
        };
        let clock = self.clock.clone();
        Ok(match &cfg.source {
            SourceConfig::Demo { scenario, width, height } => {
                let scenario = match scenario.as_str() {
                    "quiet" => Scenario::Quiet,
                    "armed" => Scenario::Armed,
                    _ => Scenario::Hallway,
                };
                let options = DemoOptions { width: *width, height: *height, fps: cfg.fps, scenario, pace: true };
                Box::new(DemoScene::new(camera.clone(), clock, options)?)
            }
            SourceConfig::File { path, looped } => {
                let options = Y4mOptions { loop_at_end: *looped, pace: true, fps_cap: Some(cfg.fps) };
                Box::new(Y4mSource::open(PathBuf::from(path), camera.clone(), clock, options)?)
            }
        })
    }
}

/// A running camera worker.
pub struct CameraWorker {
    id: CameraId,
    stop: Arc<AtomicBool>,
    health: Arc<Mutex<CameraHealth>>,
    thread: Option<JoinHandle<()>>,
}

impl CameraWorker {
    /// Starts the worker for `id`, feeding `frames`. A stream that ends
    /// cleanly is reopened, like a camera that hung up, unless `play_once`.
    pub fn spawn(
        id: CameraId,
        fps: f32,
        play_once: bool,
        opener: Arc<dyn Opener>,
        frames: Arc<LatestFrames>,
    ) -> CameraWorker {
        let stop = Arc::new(AtomicBool::new(false));
        let health = Arc::new(Mutex::new(CameraHealth { state: CameraState::Starting, frames: 0, opens: 0 }));
        let worker = Worker { id: id.clone(), fps, play_once, opener, frames, stop: stop.clone(), health: health.clone() };
        let thread = std::thread::Builder::new()
            .name(format!("camera-{id}"))
            .spawn(move || worker.run())
            .expect("spawning a camera thread");
        CameraWorker { id, stop, health, thread: Some(thread) }
    }

    /// The camera's id.
    pub fn id(&self) -> &CameraId {
        &self.id
    }

    /// A snapshot of its health.
    pub fn health(&self) -> CameraHealth {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the worker to stop; it does within one frame interval or backoff step.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the worker and waits for its thread; its health stays readable.
    pub fn join(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(camera = %self.id, "camera thread panicked");
        }
    }
}

struct Worker {
    id: CameraId,
    fps: f32,
    play_once: bool,
    opener: Arc<dyn Opener>,
    frames: Arc<LatestFrames>,
    stop: Arc<AtomicBool>,
    health: Arc<Mutex<CameraHealth>>,
}

/// Sleep in short steps so a stop request is seen quickly during a long backoff.
const STOP_POLL: Duration = Duration::from_millis(50);

impl Worker {
    fn run(self) {
        let seed = self.id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30), seed);
        while !self.stopped() {
            let started = Instant::now();
            let outcome = self.run_once();
            if self.stopped() {
                break;
            }
            // A stream that ran a good while before failing starts the backoff afresh.
            if started.elapsed() > Duration::from_secs(60) {
                backoff.reset();
            }
            let reason = match outcome {
                Ok(()) if self.play_once => {
                    tracing::info!(camera = %self.id, "the file has been played to its end");
                    self.set_state(CameraState::Finished);
                    break;
                }
                Ok(()) => "the stream ended".to_string(),
                Err(e) => e.to_string(),
            };
            let delay = backoff.next_delay();
            tracing::warn!(camera = %self.id, error = %reason, retry_in_ms = delay.as_millis() as u64, "camera stream stopped; retrying");
            self.set_state(CameraState::Failed(reason));
            let until = Instant::now() + delay;
            while !self.stopped() && Instant::now() < until {
                std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
            }
        }
    }

    fn run_once(&self) -> Result<(), SourceError> {
        self.set_state(CameraState::Starting);
        let mut source = self.opener.open(&self.id)?;
        self.health.lock().unwrap_or_else(|e| e.into_inner()).opens += 1;
        // A source faster than the configured rate is thinned here, whatever it is.
        let min_gap = Duration::from_secs_f32(0.9 / self.fps);
        let mut last: Option<Duration> = None;
        let mut first = true;
        while !self.stopped() {
            let Some(frame) = source.next_frame()? else {
                return Ok(());
            };
            if last.is_some_and(|l| frame.captured.mono.saturating_sub(l) < min_gap) {
                continue;
            }
            last = Some(frame.captured.mono);
            self.frames.put(frame);
            let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
            h.frames += 1;
            if first {
                h.state = CameraState::Streaming;
                first = false;
                drop(h);
                tracing::info!(camera = %self.id, "camera streaming");
            }
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn set_state(&self, state: CameraState) {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).state = state;
    }
}
