//! Camera workers: one thread per camera, each running `run()` over
//! `run_once()` with jittered backoff, so one failing camera never affects
//! another and none ever gives up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_config::{CameraConfig, RtspTransport, SourceConfig, V4l2Format};
use vigil_core::{CameraId, Clock};
use vigil_sources::{
    DemoOptions, DemoScene, FrameSource, Opener, Scenario, SourceError, SourceErrorKind, Y4mOptions, Y4mSource,
};

use crate::scheduler::LatestFrames;
use vigil_core::backoff::Backoff;

/// What a camera is doing, for status and logs. The names are the ones the
/// district sees: `streaming`, `stalled`, `unauthorized`, `unreachable`, `bad-stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraState {
    /// Opening its stream.
    Starting,
    /// Frames are arriving.
    Streaming,
    /// Frames stopped arriving; the stream is being restarted.
    Stalled,
    /// The camera refused the credentials.
    Unauthorized,
    /// The camera cannot be reached.
    Unreachable,
    /// The camera sends something that cannot be decoded.
    BadStream,
    /// Any other failure (a missing file, bad options).
    Failed,
    /// A source that plays once (a file without `loop`) reached its end.
    Finished,
}

impl CameraState {
    /// The stable name used in status documents and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            CameraState::Starting => "starting",
            CameraState::Streaming => "streaming",
            CameraState::Stalled => "stalled",
            CameraState::Unauthorized => "unauthorized",
            CameraState::Unreachable => "unreachable",
            CameraState::BadStream => "bad-stream",
            CameraState::Failed => "failed",
            CameraState::Finished => "finished",
        }
    }

    fn of(error: &SourceError) -> CameraState {
        match error.kind() {
            SourceErrorKind::Stalled => CameraState::Stalled,
            SourceErrorKind::Unauthorized => CameraState::Unauthorized,
            SourceErrorKind::Unreachable => CameraState::Unreachable,
            SourceErrorKind::BadStream | SourceErrorKind::BadFormat => CameraState::BadStream,
            _ => CameraState::Failed,
        }
    }
}

/// A camera's health.
#[derive(Clone, Debug)]
pub struct CameraHealth {
    /// Current state.
    pub state: CameraState,
    /// The last failure, in words (credentials never appear).
    pub last_error: Option<String>,
    /// Frames handed to the detector's scheduler.
    pub frames: u64,
    /// Frames per second over the last complete measuring window.
    pub fps: f32,
    /// Times the stream was (re)opened successfully.
    pub opens: u64,
}

/// Opens the sources the config describes; the production [`Opener`]. The
/// camera table is replaced on a config reload, before workers restart.
pub struct ConfigOpener {
    cameras: RwLock<BTreeMap<CameraId, CameraConfig>>,
    clock: Arc<dyn Clock>,
    /// Live streams are scaled in their pipeline to fit the detector's input.
    fit: (u32, u32),
}

impl ConfigOpener {
    /// An opener for `cameras`, stamping frames with `clock`, scaling live streams to fit `fit`.
    pub fn new(cameras: &[CameraConfig], clock: Arc<dyn Clock>, fit: (u32, u32)) -> ConfigOpener {
        let opener = ConfigOpener { cameras: RwLock::default(), clock, fit };
        opener.update(cameras);
        opener
    }

    /// Replaces the camera table.
    pub fn update(&self, cameras: &[CameraConfig]) {
        *self.cameras.write().unwrap_or_else(|e| e.into_inner()) =
            cameras.iter().map(|c| (c.id.clone(), c.clone())).collect();
    }
}

impl Opener for ConfigOpener {
    fn open(&self, camera: &CameraId) -> Result<Box<dyn FrameSource>, SourceError> {
        let Some(cfg) = self.cameras.read().unwrap_or_else(|e| e.into_inner()).get(camera).cloned() else {
            return Err(SourceError::invalid_options(format!("camera {camera} is not configured")));
        };
        let clock = self.clock.clone();
        let id = camera.clone();
        Ok(match cfg.source {
            SourceConfig::Demo { scenario, width, height } => {
                let scenario = match scenario.as_str() {
                    "quiet" => Scenario::Quiet,
                    "armed" => Scenario::Armed,
                    _ => Scenario::Hallway,
                };
                let options = DemoOptions { width, height, fps: cfg.fps, scenario, pace: true };
                Box::new(DemoScene::new(id, clock, options)?)
            }
            SourceConfig::File { path, looped } => {
                let options = Y4mOptions { loop_at_end: looped, pace: true, fps_cap: Some(cfg.fps) };
                Box::new(Y4mSource::open(path, id, clock, options)?)
            }
            SourceConfig::Rtsp { detect_url, username, password, transport, hw_decode, .. } => {
                let options = vigil_rtsp::RtspOptions {
                    url: detect_url,
                    username,
                    password: password.map(|p| p.expose().to_string()),
                    transport: match transport {
                        RtspTransport::Tcp => vigil_rtsp::Transport::Tcp,
                        RtspTransport::Udp => vigil_rtsp::Transport::Udp,
                        RtspTransport::Auto => vigil_rtsp::Transport::Auto,
                    },
                    fit: Some(self.fit),
                    fps_cap: Some(cfg.fps),
                    hw_decode: if hw_decode { vigil_rtsp::HwDecode::Auto } else { vigil_rtsp::HwDecode::Off },
                    connect_timeout: cfg.stall_timeout,
                    stall_timeout: cfg.stall_timeout,
                };
                Box::new(vigil_rtsp::RtspSource::open(id, clock, options)?)
            }
            SourceConfig::V4l2 { device, width, height, format } => {
                let options = vigil_v4l2::V4l2Options {
                    device,
                    width,
                    height,
                    fps: cfg.fps,
                    format: format.map(|f| match f {
                        V4l2Format::Mjpeg => vigil_v4l2::PixelFormat::Mjpeg,
                        V4l2Format::Yuyv => vigil_v4l2::PixelFormat::Yuyv,
                    }),
                    fit: Some(self.fit),
                    stall_timeout: cfg.stall_timeout,
                };
                Box::new(vigil_v4l2::V4l2Source::open(id, clock, options)?)
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
        let health = Arc::new(Mutex::new(CameraHealth {
            state: CameraState::Starting,
            last_error: None,
            frames: 0,
            fps: 0.0,
            opens: 0,
        }));
        let worker =
            Worker { id: id.clone(), fps, play_once, opener, frames, stop: stop.clone(), health: health.clone() };
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

    /// Asks the worker to stop; it does within one frame, stall timeout or backoff step.
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
/// The frame rate in the status is measured over windows this long.
const FPS_WINDOW: Duration = Duration::from_secs(2);

impl Worker {
    fn run(self) {
        let seed = self
            .id
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
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
            let (state, reason) = match outcome {
                Ok(()) if self.play_once => {
                    tracing::info!(camera = %self.id, "the file has been played to its end");
                    self.update(|h| h.state = CameraState::Finished);
                    break;
                }
                Ok(()) => (CameraState::Failed, "the stream ended".to_string()),
                Err(e) => (CameraState::of(&e), e.to_string()),
            };
            let delay = backoff.next_delay();
            tracing::warn!(camera = %self.id, state = state.as_str(), error = %reason, retry_in_ms = delay.as_millis() as u64, "camera stream stopped; retrying");
            self.update(|h| {
                h.state = state;
                h.last_error = Some(reason);
                h.fps = 0.0;
            });
            let until = Instant::now() + delay;
            while !self.stopped() && Instant::now() < until {
                std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
            }
        }
    }

    fn run_once(&self) -> Result<(), SourceError> {
        let mut source = self.opener.open(&self.id)?;
        self.update(|h| h.opens += 1);
        // A source faster than the configured rate is thinned here, whatever it is.
        let min_gap = Duration::from_secs_f32(0.9 / self.fps);
        let mut last: Option<Duration> = None;
        let mut window = (Instant::now(), 0u32);
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
            window.1 += 1;
            let elapsed = window.0.elapsed();
            let fps = (elapsed >= FPS_WINDOW).then(|| window.1 as f32 / elapsed.as_secs_f32());
            if fps.is_some() {
                window = (Instant::now(), 0);
            }
            self.update(|h| {
                h.frames += 1;
                if let Some(fps) = fps {
                    h.fps = fps;
                }
                if first {
                    h.state = CameraState::Streaming;
                }
            });
            if first {
                first = false;
                tracing::info!(camera = %self.id, "camera streaming");
            }
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn update(&self, f: impl FnOnce(&mut CameraHealth)) {
        f(&mut self.health.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_map_to_the_states_the_district_sees() {
        let state = |kind| CameraState::of(&SourceError::new(kind, "x".into()));
        assert_eq!(state(SourceErrorKind::Unauthorized).as_str(), "unauthorized");
        assert_eq!(state(SourceErrorKind::Unreachable).as_str(), "unreachable");
        assert_eq!(state(SourceErrorKind::BadStream).as_str(), "bad-stream");
        assert_eq!(state(SourceErrorKind::Stalled).as_str(), "stalled");
        assert_eq!(state(SourceErrorKind::Io).as_str(), "failed");
    }
}
