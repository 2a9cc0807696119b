//! Assembling and tearing down the pipeline:
//!
//! ```text
//! camera workers ──put──▶ LatestFrames ──take──▶ detector pool ──bounded──▶ supervisor ──▶ notices
//!  (thread each)        (slot per camera)      (thread per request)        (one thread)     actions
//! ```
//!
//! Teardown runs in a fixed order so nothing in flight is lost: cameras stop,
//! the scheduler closes, the detector finishes the frames it holds, the
//! supervisor drains their results, and only then returns.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Sender;
use vigil_config::{CameraConfig, Config, SourceConfig};
use vigil_core::{CameraId, Clock};
use vigil_detector::{Detector, DetectorStats, ModelInfo, Pool};
use vigil_sources::Opener;
use vigil_store::Store;

use crate::actions::ActionSink;
use crate::cameras::{CameraHealth, CameraState, CameraWorker, ConfigOpener};
use crate::journal::Journal;
use crate::scheduler::{LatestFrames, SlotStats};
use crate::supervisor::{CommandRequest, LatestInferences, Notice, Supervisor, SupervisorStats};

/// Results waiting for the supervisor; small, because results are never dropped
/// and a backlog here only ages frames.
const RESULT_QUEUE: usize = 16;

/// What the pipeline is built from besides the config; tests swap these.
pub struct Parts {
    /// The clock frames and incidents are stamped with.
    pub clock: Arc<dyn Clock>,
    /// Opens camera streams; `None` opens what the config says.
    pub opener: Option<Arc<dyn Opener>>,
    /// Carries out actions.
    pub actions: Box<dyn ActionSink>,
    /// Queues alerts for the district; `None` without an uplink.
    pub journal: Option<Journal>,
    /// Plugins' answers to action requests; `None` without plugins.
    pub outcomes: Option<crossbeam_channel::Receiver<crate::plugins::ActionOutcome>>,
    /// Observers of incidents.
    pub notices: Vec<Sender<Notice>>,
}

/// One camera's line in the status.
#[derive(Clone, Debug)]
pub struct CameraStatus {
    /// Its id.
    pub id: CameraId,
    /// Its worker's health.
    pub health: CameraHealth,
    /// Its scheduler counters.
    pub slot: SlotStats,
}

/// A snapshot of the running pipeline.
#[derive(Clone, Debug)]
pub struct Status {
    /// Time since start.
    pub uptime: Duration,
    /// What model runs where.
    pub model: ModelInfo,
    /// Cameras.
    pub cameras: Vec<CameraStatus>,
    /// Frames inferred.
    pub inferences: u64,
    /// Inferences that failed.
    pub inference_errors: u64,
    /// Mean share of the infer requests in flight, 0..=1 (1: the device never waited for a frame).
    pub detector_utilization: f64,
    /// Frames dropped because a newer one arrived first.
    pub dropped: u64,
    /// Supervisor counters.
    pub supervisor: SupervisorStats,
}

impl Status {
    /// Whether any camera is delivering frames now.
    pub fn streaming(&self) -> bool {
        self.cameras.iter().any(|c| c.health.state == CameraState::Streaming)
    }
}

/// The running pipeline. Dropping it shuts it down like [`Running::shutdown`].
pub struct Running {
    inner: Option<Inner>,
}

struct Inner {
    config: Config,
    opener: Arc<dyn Opener>,
    /// The config-driven opener, told about new camera settings on a reload;
    /// `None` when a test supplied its own opener.
    config_opener: Option<Arc<ConfigOpener>>,
    reconfigure: Sender<(Arc<Config>, Sender<()>)>,
    cameras: Vec<CameraWorker>,
    frames: Arc<LatestFrames>,
    pool: Option<Pool>,
    detector: Arc<DetectorStats>,
    supervisor: Option<JoinHandle<()>>,
    supervisor_stats: Arc<Mutex<SupervisorStats>>,
    commands: Sender<CommandRequest>,
    latest: LatestInferences,
    model: ModelInfo,
    started: Instant,
}

/// Starts the pipeline for `config` on a loaded `detector`.
pub fn start(config: &Config, detector: Detector, parts: Parts) -> anyhow::Result<Running> {
    let store = Store::open(&config.device.data_dir).context("opening the incident store")?;
    let loaded = store.load().context("reading the incident store")?;
    for e in &loaded.unreadable {
        tracing::error!(error = %e, "an incident on disk cannot be read; it is left in place for inspection");
    }
    if let Some(journal) = &parts.journal {
        let names: std::collections::HashMap<&CameraId, &str> =
            config.cameras.iter().map(|c| (&c.id, c.name.as_str())).collect();
        journal.reconcile(&store, &loaded, |i| {
            names.get(&i.camera).map_or_else(|| i.camera.to_string(), |n| n.to_string())
        });
    }
    let supervisor =
        Supervisor::new(config, store, loaded, parts.actions, parts.journal, parts.notices, parts.clock.clone());
    let supervisor_stats = supervisor.stats();
    let latest = supervisor.latest();

    let frames = Arc::new(LatestFrames::new());
    let model = detector.info().clone();
    let (results_tx, results_rx) = crossbeam_channel::bounded(RESULT_QUEUE);
    let pool = Pool::start(detector, frames.clone(), results_tx, parts.clock.clone());
    let detector_stats = pool.stats();

    let (commands, commands_rx) = crossbeam_channel::bounded(64);
    let (reconfigure, reconfigure_rx) = crossbeam_channel::bounded(1);
    let outcomes = parts.outcomes.unwrap_or_else(crossbeam_channel::never);
    let supervisor = std::thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || supervisor.run(results_rx, commands_rx, reconfigure_rx, outcomes))
        .context("starting the supervisor thread")?;

    let (opener, config_opener): (Arc<dyn Opener>, _) = match parts.opener {
        Some(opener) => (opener, None),
        None => {
            let o = Arc::new(ConfigOpener::new(&config.cameras, parts.clock.clone(), model.input));
            (o.clone(), Some(o))
        }
    };
    let cameras = config.cameras.iter().map(|c| spawn_camera(c, &opener, &frames)).collect();
    Ok(Running {
        inner: Some(Inner {
            config: config.clone(),
            opener,
            config_opener,
            reconfigure,
            cameras,
            frames,
            pool: Some(pool),
            detector: detector_stats,
            supervisor: Some(supervisor),
            supervisor_stats,
            commands,
            latest,
            model,
            started: Instant::now(),
        }),
    })
}

fn spawn_camera(c: &CameraConfig, opener: &Arc<dyn Opener>, frames: &Arc<LatestFrames>) -> CameraWorker {
    let play_once = matches!(c.source, SourceConfig::File { looped: false, .. });
    CameraWorker::spawn(c.id.clone(), c.fps, play_once, opener.clone(), frames.clone())
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Cameras started.
    pub added: Vec<CameraId>,
    /// Cameras stopped and forgotten.
    pub removed: Vec<CameraId>,
    /// Cameras whose stream was restarted (source, rate or stall timeout changed).
    pub restarted: Vec<CameraId>,
    /// Cameras whose name, location or confirmation rule changed, stream untouched.
    pub updated: Vec<CameraId>,
}

impl Running {
    /// Applies a new, already validated config through the same path the
    /// start took, touching only what changed: other cameras keep streaming,
    /// tracks in progress and open incidents are kept. A change to the
    /// device's identity, data folder or detector is refused (it needs a
    /// restart) and nothing is applied.
    pub fn reconfigure(&mut self, config: Config) -> Result<Reconfigured, String> {
        let inner = self.inner.as_mut().expect("a Running is only emptied by shutdown or drop");
        let old = &inner.config;
        if config.device.id != old.device.id || config.device.data_dir != old.device.data_dir {
            return Err("device.id and device.data_dir take effect only when vigild restarts".into());
        }
        if config.detector != old.detector {
            return Err("[detector] changes take effect only when vigild restarts".into());
        }
        if config.uplink != old.uplink {
            return Err("[uplink] changes take effect only when vigild restarts".into());
        }
        if config.plugins != old.plugins {
            return Err("[plugins] changes take effect only when vigild restarts".into());
        }
        if config.os != old.os {
            return Err("[os] changes take effect only when vigild restarts".into());
        }
        let mut report = Reconfigured::default();
        for c in &old.cameras {
            match config.camera(&c.id) {
                None => report.removed.push(c.id.clone()),
                Some(new) if (new.source != c.source || new.fps != c.fps || new.stall_timeout != c.stall_timeout) => {
                    report.restarted.push(c.id.clone())
                }
                Some(new) if new != c => report.updated.push(c.id.clone()),
                Some(_) => {}
            }
        }
        report.added = config.cameras.iter().filter(|c| old.camera(&c.id).is_none()).map(|c| c.id.clone()).collect();

        if let Some(o) = &inner.config_opener {
            o.update(&config.cameras);
        }
        let stopping: Vec<&CameraId> = report.removed.iter().chain(&report.restarted).collect();
        for w in inner.cameras.iter().filter(|w| stopping.contains(&w.id())) {
            w.stop();
        }
        for w in inner.cameras.iter_mut().filter(|w| stopping.contains(&w.id())) {
            w.join();
        }
        inner.cameras.retain(|w| !stopping.contains(&w.id()));
        for id in &report.removed {
            inner.frames.remove(id);
        }
        let (done, applied) = crossbeam_channel::bounded(1);
        if inner.reconfigure.send((Arc::new(config.clone()), done)).is_err() || applied.recv().is_err() {
            return Err("the supervisor has stopped".into());
        }
        for id in report.added.iter().chain(&report.restarted) {
            let c = config.camera(id).expect("listed from this config");
            inner.cameras.push(spawn_camera(c, &inner.opener, &inner.frames));
        }
        inner.config = config;
        Ok(report)
    }

    fn inner(&self) -> &Inner {
        self.inner.as_ref().expect("a Running is only emptied by shutdown or drop")
    }

    /// Where to send operator commands.
    pub fn commands(&self) -> Sender<CommandRequest> {
        self.inner().commands.clone()
    }

    /// A snapshot of the pipeline's state.
    pub fn status(&self) -> Status {
        self.inner().status()
    }

    /// The config running now.
    pub fn config(&self) -> &Config {
        &self.inner().config
    }

    /// A JPEG of `camera`'s latest inferred frame with its detections drawn,
    /// or why there is none.
    pub fn snapshot(&self, camera: &CameraId) -> Result<Vec<u8>, String> {
        let inner = self.inner();
        let Some(c) = inner.config.camera(camera) else {
            let known: Vec<&str> = inner.config.cameras.iter().map(|c| c.id.as_str()).collect();
            return Err(format!("no camera {camera:?}: this device has {}", known.join(", ")));
        };
        let inference = inner.latest.lock().unwrap_or_else(|e| e.into_inner()).get(camera).cloned();
        let Some(inference) = inference else {
            return Err(format!("camera {camera} has not delivered a frame yet (see its state in the status)"));
        };
        let annotations: Vec<vigil_evidence::Annotation> = inference
            .result
            .detections
            .iter()
            .map(|d| vigil_evidence::Annotation {
                bbox: d.bbox,
                label: d.label.to_string(),
                score: d.score,
                threat: c.confirm.threat_labels.contains(&d.label),
            })
            .collect();
        let caption = format!("SNAPSHOT  {}  {}  {}", c.id, c.name, inference.frame.captured.rfc3339());
        vigil_evidence::render_snapshot(&inference.frame, &annotations, &caption, inner.config.evidence.jpeg_quality)
            .map_err(|e| format!("cannot encode the snapshot of camera {camera}: {e}"))
    }

    /// Stops everything in order and returns the final status.
    pub fn shutdown(mut self) -> Status {
        self.inner.take().expect("a Running is only emptied by shutdown or drop").shutdown()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.shutdown();
        }
    }
}

impl Inner {
    fn status(&self) -> Status {
        let slots = self.frames.stats();
        let uptime = self.started.elapsed();
        Status {
            uptime,
            model: self.model.clone(),
            cameras: self
                .cameras
                .iter()
                .map(|c| CameraStatus {
                    id: c.id().clone(),
                    health: c.health(),
                    slot: slots.iter().find(|(id, _)| id == c.id()).map(|(_, s)| *s).unwrap_or_default(),
                })
                .collect(),
            inferences: self.detector.inferences.load(Ordering::Relaxed),
            inference_errors: self.detector.errors.load(Ordering::Relaxed),
            detector_utilization: (self.detector.busy_time().as_secs_f64()
                / (uptime.as_secs_f64() * self.model.requests as f64).max(1e-9))
            .min(1.0),
            dropped: self.frames.dropped(),
            supervisor: self.supervisor_stats.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Teardown in order; the status is read once everything has drained, so
    /// it counts every frame the pipeline handled.
    fn shutdown(mut self) -> Status {
        for c in &self.cameras {
            c.stop();
        }
        for c in &mut self.cameras {
            c.join();
        }
        self.frames.close();
        if let Some(pool) = self.pool.take() {
            pool.join();
        }
        // The supervisor ends once the pool's result senders are gone; the
        // command sender kept here only lets late commands be answered.
        if let Some(supervisor) = self.supervisor.take()
            && supervisor.join().is_err()
        {
            tracing::error!("the supervisor thread panicked");
        }
        self.status()
    }
}
