//! What every end-to-end test needs: the generated models, a config written
//! to a temporary folder and loaded the way vigild loads it, and a running
//! pipeline whose notices and action requests are recorded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tempfile::TempDir;
use vigil_config::Config;
use vigil_core::incident::{ActionRequest, Actor, Command, CommandError, Incident, IncidentId, Stage};
use vigil_core::{CameraId, Clock, Frame, Location, SystemClock};
use vigil_detector::Detector;
use vigil_sources::{DemoOptions, DemoScene, FrameSource, Opener, Scenario, SourceError};
use vigil_store::Store;
use vigild::actions::ActionSink;
use vigild::console::format_notice;
use vigild::{CommandRequest, Notice, Running, Status};

/// The longest any test waits for one thing to happen. Generous, because the
/// tests share two cores with each other and with OpenVINO's own threads;
/// nothing here is a performance assertion.
pub const WAIT: Duration = Duration::from_secs(20);

/// How often a condition on the pipeline's status is polled.
const POLL: Duration = Duration::from_millis(50);

/// The operator every command in these tests comes from.
pub fn operator() -> Actor {
    Actor::Operator("sro@district".into())
}

/// The folder of generated models: `VIGIL_MODELS`, else `<workspace>/target/models`.
pub fn models() -> PathBuf {
    let dir = std::env::var_os("VIGIL_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models"));
    let dir = dir.canonicalize().unwrap_or(dir);
    for file in ["demo-yolo.xml", "demo-yolo.bin", "demo.labels"] {
        assert!(
            dir.join(file).is_file(),
            "no generated model file {file} in {}: run `cargo xtask test`, which builds the models with models/generate.py \
             (or point VIGIL_MODELS at a folder holding them)",
            dir.display()
        );
    }
    dir
}

/// One `[[camera]]` of a test config. Every camera runs at 10 fps and sits at
/// [`location`]; its name is [`name`].
#[derive(Clone, Debug)]
pub struct Camera {
    id: &'static str,
    source: String,
    extra: String,
}

impl Camera {
    /// A synthetic hallway camera playing `scenario` (`armed`, `quiet` or `hallway`).
    pub fn demo(id: &'static str, scenario: &str) -> Camera {
        Camera { id, source: format!("{{ kind = \"demo\", scenario = \"{scenario}\" }}"), extra: String::new() }
    }

    /// A camera playing the .y4m file at `path` in a loop.
    pub fn file(id: &'static str, path: &Path) -> Camera {
        Camera {
            id,
            source: format!("{{ kind = \"file\", path = '{}', loop = true }}", path.display()),
            extra: String::new(),
        }
    }

    /// An RTSP camera on `url`.
    pub fn rtsp(id: &'static str, url: &str) -> Camera {
        Camera { id, source: format!("{{ kind = \"rtsp\", detect_url = \"{url}\" }}"), extra: String::new() }
    }

    /// The same camera with one more line of TOML in its table.
    pub fn with(mut self, line: &str) -> Camera {
        self.extra.push_str(line);
        self.extra.push('\n');
        self
    }
}

/// Where the test config puts camera `id`.
pub fn location(id: &str) -> Location {
    Location { building: "B".into(), floor: "2".into(), zone: format!("{id}-zone") }
}

/// The human name the test config gives camera `id`.
pub fn name(id: &str) -> String {
    format!("Camera {id}")
}

/// One school's box: a temporary folder holding the config file and the data
/// folder, kept across restarts of the pipeline.
pub struct Site {
    dir: TempDir,
}

impl Site {
    /// A fresh, empty site.
    pub fn new() -> Site {
        Site { dir: TempDir::new().expect("creating a temporary folder") }
    }

    /// The folder the config file is written to.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where incidents and state live (`data_dir`, relative in the file).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The incident store under the data folder, for checking what is on disk.
    pub fn store(&self) -> Store {
        Store::open(&self.data_dir()).expect("opening the incident store")
    }

    /// The config for `cameras` on the demo model and the CPU.
    pub fn config(&self, cameras: &[Camera]) -> Config {
        self.load(&self.text(false, cameras))
    }

    /// The same, starting in drill mode.
    pub fn drill_config(&self, cameras: &[Camera]) -> Config {
        self.load(&self.text(true, cameras))
    }

    /// The TOML of a config for `cameras`.
    pub fn text(&self, drill: bool, cameras: &[Camera]) -> String {
        let models = models();
        let mut text = format!(
            "[device]\n\
             id = \"e2e-school\"\n\
             data_dir = \"data\"\n\
             drill = {drill}\n\
             \n\
             [detector]\n\
             model = '{}'\n\
             labels_file = '{}'\n\
             device = \"CPU\"\n",
            models.join("demo-yolo.xml").display(),
            models.join("demo.labels").display(),
        );
        for c in cameras {
            text.push_str(&format!(
                "\n[[camera]]\n\
                 id = \"{id}\"\n\
                 name = \"{name}\"\n\
                 location = {{ building = \"B\", floor = \"2\", zone = \"{id}-zone\" }}\n\
                 fps = 10\n\
                 source = {source}\n\
                 {extra}",
                id = c.id,
                name = name(c.id),
                source = c.source,
                extra = c.extra,
            ));
        }
        text
    }

    /// Writes `text` as the site's config file and loads it as vigild does.
    pub fn load(&self, text: &str) -> Config {
        let path = self.dir.path().join("vigil.toml");
        std::fs::write(&path, text).expect("writing the config file");
        Config::load(&path).unwrap_or_else(|e| panic!("the test config does not load: {e}\n{text}"))
    }
}

/// Loads the detector `config` names, failing with what to do if OpenVINO or the models are missing.
pub fn detector(config: &Config) -> Detector {
    Detector::load_for_cameras(&config.detector, config.cameras.len()).unwrap_or_else(|e| {
        panic!(
            "{e}\nthe end-to-end tests run real OpenVINO inference: run `cargo xtask test`, which generates \
             the models and sets OPENVINO_LIB (or set OPENVINO_LIB to the folder of libopenvino_c.so yourself)"
        )
    })
}

/// An [`ActionSink`] that keeps every request it is given.
struct Recorder(Arc<Mutex<Vec<ActionRequest>>>);

impl ActionSink for Recorder {
    fn dispatch(&mut self, request: &ActionRequest, _context: vigild::actions::ActionContext<'_>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(request.clone());
    }
}

/// A running pipeline and everything it has told the test so far.
pub struct Vigil {
    running: Option<Running>,
    notices: Receiver<Notice>,
    seen: Vec<Notice>,
    actions: Arc<Mutex<Vec<ActionRequest>>>,
}

impl Vigil {
    /// Starts the pipeline for `config`, with cameras opened as the config says.
    pub fn start(config: &Config) -> Vigil {
        Vigil::launch(config, Arc::new(SystemClock::new()), None)
    }

    /// Starts the pipeline for `config` on `clock`, opening cameras with `opener` if given.
    pub fn launch(config: &Config, clock: Arc<SystemClock>, opener: Option<Arc<dyn Opener>>) -> Vigil {
        let (tx, notices) = crossbeam_channel::unbounded();
        let actions = Arc::new(Mutex::new(Vec::new()));
        let parts = vigild::Parts {
            clock,
            opener,
            actions: Box::new(Recorder(actions.clone())),
            journal: None,
            outcomes: None,
            notices: vec![tx],
        };
        let running =
            vigild::start(config, detector(config), parts).unwrap_or_else(|e| panic!("vigild::start failed: {e:#}"));
        Vigil { running: Some(running), notices, seen: Vec::new(), actions }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("the pipeline was shut down")
    }

    /// Waits until `find` picks something out of every notice seen so far.
    pub fn wait_for<T>(&mut self, what: &str, mut find: impl FnMut(&[Notice]) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = find(&self.seen) {
                return found;
            }
            match self.notices.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(notice) => self.seen.push(notice),
                Err(_) => panic!(
                    "waited {WAIT:?} for {what}; the notices so far:\n{}\nstatus: {}",
                    self.history(),
                    vigild::console::format_summary(&self.status())
                ),
            }
        }
    }

    /// Every notice received so far, as the console prints them.
    pub fn history(&self) -> String {
        self.seen.iter().map(|n| format!("  {}", format_notice(n))).collect::<Vec<_>>().join("\n")
    }

    /// Every notice received so far.
    pub fn seen(&self) -> &[Notice] {
        &self.seen
    }

    /// Takes in any notices already sent, without waiting.
    pub fn catch_up(&mut self) {
        self.seen.extend(self.notices.try_iter());
    }

    /// The incident raised on `camera`, and its snapshot, once it is raised.
    pub fn raised(&mut self, camera: &str) -> (Incident, Option<PathBuf>) {
        self.wait_for(&format!("an incident on camera {camera}"), |seen| {
            seen.iter().find_map(|n| match n {
                Notice::Raised { incident, snapshot, .. } if incident.camera.as_str() == camera => {
                    Some((incident.clone(), snapshot.clone()))
                }
                _ => None,
            })
        })
    }

    /// Incident `id` once it has entered `stage`, as it was then.
    pub fn reached(&mut self, id: IncidentId, stage: Stage) -> Incident {
        self.wait_for(&format!("incident {id} to reach {stage}"), |seen| {
            seen.iter().find_map(|n| match n {
                Notice::Transition { transition, incident } if transition.incident == id && transition.to == stage => {
                    Some(incident.clone())
                }
                _ => None,
            })
        })
    }

    /// The incident raised on `camera` once its automatic actions are out and it awaits a human.
    pub fn pending(&mut self, camera: &str) -> Incident {
        let (raised, _) = self.raised(camera);
        self.reached(raised.id, Stage::PendingVerification)
    }

    /// Sends `command` as [`operator`] and waits for the verdict.
    pub fn command(&self, command: Command) -> Result<(), CommandError> {
        let (reply, verdict) = crossbeam_channel::bounded(1);
        let request = CommandRequest { command: command.clone(), actor: operator(), reply: Some(reply) };
        self.running().commands().send(request).expect("the supervisor takes commands");
        verdict.recv_timeout(WAIT).unwrap_or_else(|e| panic!("no verdict on {command:?} within {WAIT:?}: {e}"))
    }

    /// Applies a new config to the running pipeline, as SIGHUP does.
    pub fn reconfigure(&mut self, config: Config) -> Result<vigild::pipeline::Reconfigured, String> {
        self.running.as_mut().expect("the pipeline was shut down").reconfigure(config)
    }

    /// Where to send commands directly.
    pub fn commands(&self) -> crossbeam_channel::Sender<CommandRequest> {
        self.running().commands()
    }

    /// Every action request the pipeline dispatched so far, in order.
    pub fn actions(&self) -> Vec<ActionRequest> {
        self.actions.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The pipeline's status now.
    pub fn status(&self) -> Status {
        self.running().status()
    }

    /// Polls the status until `ready` holds.
    pub fn wait_status(&self, what: &str, ready: impl Fn(&Status) -> bool) -> Status {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = self.status();
            if ready(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; status: {}",
                vigild::console::format_summary(&status)
            );
            std::thread::sleep(POLL);
        }
    }

    /// Shuts the pipeline down, failing if that does not finish within [`WAIT`]
    /// (a blocked thread), and returns the final status.
    pub fn shutdown(&mut self) -> Status {
        let running = self.running.take().expect("the pipeline was already shut down");
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = tx.send(running.shutdown());
        });
        rx.recv_timeout(WAIT).unwrap_or_else(|_| panic!("Running::shutdown did not return within {WAIT:?}"))
    }

    /// After [`Vigil::shutdown`]: takes in the last notices, failing unless the
    /// supervisor has let go of the channel (its thread ended).
    pub fn drain(&mut self) {
        loop {
            match self.notices.recv_timeout(WAIT) {
                Ok(notice) => self.seen.push(notice),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    panic!("the notice channel is still open {WAIT:?} after shutdown: the supervisor is still running")
                }
            }
        }
    }
}

impl Drop for Vigil {
    // A failed test must not leave its cameras and inference threads running
    // under the tests that follow.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown();
        }
    }
}

/// A live camera (paced to 10 fps) showing the armed demo scene while
/// `armed(seq)` holds and the quiet one otherwise, so a threat can leave the
/// view and come back.
pub struct Scripted {
    camera: CameraId,
    clock: Arc<dyn Clock>,
    armed: DemoScene,
    quiet: DemoScene,
    script: fn(u64) -> bool,
    seq: u64,
    started: Option<Instant>,
}

/// One frame at 10 fps.
const FRAME_INTERVAL: Duration = Duration::from_millis(100);

impl Scripted {
    /// A camera `camera` stamping frames with `clock` and following `script`.
    pub fn new(camera: &CameraId, clock: Arc<dyn Clock>, script: fn(u64) -> bool) -> Result<Scripted, SourceError> {
        let scene = |scenario| {
            let options = DemoOptions { scenario, pace: false, ..DemoOptions::default() };
            DemoScene::new(camera.clone(), clock.clone(), options)
        };
        Ok(Scripted {
            camera: camera.clone(),
            armed: scene(Scenario::Armed)?,
            quiet: scene(Scenario::Quiet)?,
            clock,
            script,
            seq: 0,
            started: None,
        })
    }
}

impl FrameSource for Scripted {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = started + FRAME_INTERVAL * u32::try_from(self.seq).unwrap_or(u32::MAX);
        if let Some(early) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(early);
        }
        let scene = if (self.script)(self.seq) { &self.armed } else { &self.quiet };
        let DemoOptions { width, height, .. } = *scene.options();
        let frame = Frame::new(self.camera.clone(), self.seq, self.clock.now(), width, height, scene.render(self.seq))
            .map_err(|e| SourceError::invalid_options(format!("scripted camera: {e}")))?;
        self.seq += 1;
        Ok(Some(frame))
    }
}
