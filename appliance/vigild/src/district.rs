//! The district's side of vigild: commands, remote config and telemetry,
//! carried over the link (`vigil-link`), answered from the running pipeline.
//!
//! ```text
//! LinkEvent ──▶ district thread ──CommandRequest──▶ supervisor (incident commands)
//!                     │   ──MainRequest──▶ main thread (owns Running: reconfigure, status, snapshot)
//!                     └──▶ LinkHandle::publish (responses, reports, telemetry)
//! ```
//!
//! Every command gets exactly one response, on its MQTT 5 response topic
//! (or `responses/unaddressed` when it named none), echoing its correlation
//! data. A request id seen before gets the first response again and is not
//! executed twice.

use crate::uploads::{Progress, Uploads};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, select};
use vigil_config::Config;
use vigil_core::incident::Actor;
use vigil_core::{CameraId, Clock};
use vigil_link::{Incoming, LinkEvent, LinkHandle, Outgoing};
use vigil_outbox::Outbox;
use vigil_uplink::telemetry::{
    CameraHealth, DetectorHealth, IncidentCounts, LinkHealth, OutboxHealth, PluginHealth, SystemHealth,
};
use vigil_uplink::{Desired, Reported, Telemetry, Topics, UplinkCommand, Verdict, parse_command, response_with_data};

use crate::pipeline::{Reconfigured, Status};
use crate::supervisor::CommandRequest;

/// How many request ids are remembered for idempotency.
const REMEMBERED_REQUESTS: usize = 1024;
/// How long a command may take before it is answered with `timeout`.
const COMMAND_DEADLINE: Duration = Duration::from_secs(10);
/// When the extra telemetry after a connect goes out.
const SETTLE: Duration = Duration::from_secs(5);
/// The file the last applied district config is kept in, under the data folder.
pub const DISTRICT_CONFIG_FILE: &str = "district-config.json";

/// What the district thread asks of the thread that owns the pipeline.
pub enum MainRequest {
    /// Apply a validated config.
    Reconfigure(Box<Config>, Sender<Result<Reconfigured, String>>),
    /// The pipeline's status.
    Status(Sender<Status>),
    /// A JPEG of a camera's latest frame.
    Snapshot(CameraId, Sender<Result<Vec<u8>, String>>),
}

/// Changes the log filter; `Err` says why a level was not applied.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// What the district thread needs.
pub struct DistrictParts {
    /// The device's topics.
    pub topics: Topics,
    /// How often telemetry goes out.
    pub telemetry_interval: Duration,
    /// Relative paths in a district config resolve against this folder (the config file's).
    pub config_base: PathBuf,
    /// Where the applied district config is kept.
    pub data_dir: PathBuf,
    /// The version of the config running at start (0: the local file).
    pub running_version: u64,
    /// The link.
    pub link: LinkHandle,
    /// Its events.
    pub events: Receiver<LinkEvent>,
    /// The pipeline's owner.
    pub main: Sender<MainRequest>,
    /// The supervisor's command queue.
    pub commands: Sender<CommandRequest>,
    /// The outbox, for its depth.
    pub outbox: Arc<Outbox>,
    /// Alerts the journal could not queue.
    pub refused: Arc<AtomicU64>,
    /// Stamps documents.
    pub clock: Arc<dyn Clock>,
    /// The `log-level` command's effect.
    pub set_log_level: SetLogLevel,
    /// The plugin host, for `plugin.*` commands and telemetry.
    pub plugins: Option<Arc<vigil_plugins::PluginHost>>,
    /// OS updates, for `os.update`; `None` when `[os] updates = false`.
    pub updates: Option<crate::system::UpdateManager>,
    /// Fed every few seconds while the district thread turns (systemd's watchdog gate).
    pub heartbeat: Option<crate::system::Heartbeat>,
    /// The appliance OS's line for telemetry.
    pub system_health: Option<Box<dyn Fn() -> SystemHealth + Send>>,
}

/// How often the district thread proves it is alive to the watchdog gate.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// The running district thread.
pub struct District {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl District {
    /// Starts the thread.
    pub fn start(parts: DistrictParts) -> std::io::Result<District> {
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let thread =
            std::thread::Builder::new().name("district".into()).spawn(move || Agent::new(parts).run(stopped))?;
        Ok(District { stop, thread: Some(thread) })
    }

    /// Stops the thread (commands in progress finish first).
    pub fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Agent {
    p: DistrictParts,
    running_version: u64,
    last_report: Reported,
    answered: HashMap<String, Bytes>,
    answered_order: VecDeque<String>,
    last_telemetry: Option<(Instant, u64)>,
}

impl Agent {
    fn new(p: DistrictParts) -> Agent {
        let at = p.clock.now().rfc3339();
        let running_version = p.running_version;
        Agent {
            p,
            running_version,
            last_report: Reported {
                running_version,
                desired_version: None,
                verdict: None,
                error: None,
                changes: Vec::new(),
                at,
            },
            answered: HashMap::new(),
            answered_order: VecDeque::new(),
            last_telemetry: None,
        }
    }

    fn run(mut self, stopped: Receiver<()>) {
        let ticker = crossbeam_channel::tick(self.p.telemetry_interval);
        // Cameras are still starting when the link first connects: a second
        // document shortly after keeps the retained telemetry from showing
        // "starting" for a whole period.
        let mut settled = crossbeam_channel::never();
        let alive = crossbeam_channel::tick(HEARTBEAT);
        if let Some(h) = &self.p.heartbeat {
            h.beat();
        }
        loop {
            select! {
                recv(alive) -> _ => {
                    if let Some(h) = &self.p.heartbeat {
                        h.beat();
                    }
                }
                recv(self.p.events) -> e => match e {
                    Ok(LinkEvent::Connected { .. }) => {
                        self.publish_report();
                        self.publish_telemetry();
                        if let Some(job) = self.p.updates.as_ref().and_then(|u| u.job()) {
                            publish_job(&self.p.link, &self.p.topics, &job);
                        }
                        settled = crossbeam_channel::after(SETTLE.min(self.p.telemetry_interval));
                    }
                    Ok(LinkEvent::Disconnected { .. }) => {}
                    Ok(LinkEvent::Message(m)) => self.on_message(m),
                    Err(_) => return,
                },
                recv(ticker) -> _ => self.publish_telemetry(),
                recv(settled) -> _ => {
                    settled = crossbeam_channel::never();
                    self.publish_telemetry();
                }
                recv(stopped) -> _ => return,
            }
        }
    }

    fn on_message(&mut self, m: Incoming) {
        let topics = &self.p.topics;
        if m.topic == topics.config_desired() {
            self.on_desired(&m.payload);
        } else if let Some(name) = topics.parse_command_topic(&m.topic).map(str::to_string) {
            self.on_command(&name, m);
        } else {
            tracing::warn!(topic = %m.topic, "ignoring a message on a topic vigild does not handle");
        }
    }

    fn on_command(&mut self, name: &str, m: Incoming) {
        let reply_to = m.response_topic.clone().unwrap_or_else(|| self.p.topics.response("unaddressed"));
        if m.retain {
            // A retained command would run again on every reconnect.
            tracing::warn!(command = name, "refusing a retained command");
            let payload = response_with_data(
                "",
                Err((
                    "malformed",
                    "commands must not be retained: a retained command would run again on every reconnect; clear it by publishing an empty retained message",
                )),
                None,
            );
            return self.respond(&reply_to, payload.into(), m.correlation);
        }
        let request = match parse_command(name, &m.payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(command = name, code = e.code(), error = %e.message, "command refused");
                let payload =
                    response_with_data(e.request_id.as_deref().unwrap_or(""), Err((e.code(), &e.message)), None);
                return self.respond(&reply_to, payload.into(), m.correlation);
            }
        };
        if let Some(payload) = self.answered.get(&request.request_id) {
            tracing::info!(command = name, request_id = %request.request_id, "repeated request id: answering again without executing");
            return self.respond(&reply_to, payload.clone(), m.correlation);
        }
        tracing::info!(command = name, request_id = %request.request_id, operator = %request.operator, "command");
        let id = request.request_id.clone();
        let actor = request.actor();
        let (result, data) = match request.command {
            UplinkCommand::Incident(command) => (self.incident_command(command, actor), None),
            UplinkCommand::Snapshot { camera } => match self.snapshot(&camera, m.correlation.clone()) {
                Ok((topic, bytes)) => (Ok(()), Some(serde_json::json!({"topic": topic, "bytes": bytes}))),
                Err(e) => (Err(e), None),
            },
            UplinkCommand::Rebirth => {
                self.p.link.rebirth();
                self.publish_report();
                self.publish_telemetry();
                (Ok(()), None)
            }
            UplinkCommand::PluginInstall { .. }
            | UplinkCommand::PluginUpload(_)
            | UplinkCommand::PluginRemove { .. }
            | UplinkCommand::PluginEnabled { .. }
            | UplinkCommand::PluginList => match &self.p.plugins {
                None => (Err(("unavailable", "this vigild has no plugin host".to_string())), None),
                Some(host) => plugin_command(host, &self.p.data_dir, request.command.clone(), &request.operator),
            },
            UplinkCommand::OsUpdate { bundle, version } => match &self.p.updates {
                None => {
                    (Err(("unavailable", "OS updates are off on this device ([os] updates = false)".to_string())), None)
                }
                Some(updates) => match crate::system::start_update(updates, &bundle, version.as_deref()) {
                    Ok(job) => {
                        tracing::warn!(%job, %bundle, operator = %request.operator, "OS update started by the district");
                        (Ok(()), Some(serde_json::json!({ "job": job })))
                    }
                    Err(e) => (Err((e.code(), e.to_string())), None),
                },
            },
            UplinkCommand::LogLevel(level) => {
                let r = (self.p.set_log_level)(&level).map_err(|e| ("bad-argument", e));
                if r.is_ok() {
                    tracing::warn!(level, operator = %request.operator, "log level changed by the district");
                }
                (r, None)
            }
        };
        let payload: Bytes =
            response_with_data(&id, result.as_ref().map(|_| ()).map_err(|(c, m)| (*c, m.as_str())), data).into();
        self.remember(id, payload.clone());
        self.respond(&reply_to, payload, m.correlation);
    }

    fn incident_command(
        &self,
        command: vigil_core::incident::Command,
        actor: Actor,
    ) -> Result<(), (&'static str, String)> {
        let (reply, verdict) = crossbeam_channel::bounded(1);
        if self.p.commands.send(CommandRequest { command, actor, reply: Some(reply) }).is_err() {
            return Err(("unavailable", "the incident supervisor has stopped (vigild is shutting down)".into()));
        }
        match verdict.recv_timeout(COMMAND_DEADLINE) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err((e.code, e.message)),
            Err(_) => Err(("timeout", format!("the supervisor did not answer within {COMMAND_DEADLINE:?}"))),
        }
    }

    /// Publishes the camera's current frame (with the request's correlation
    /// data, so concurrent requesters can tell their frames apart); returns its topic and size.
    fn snapshot(
        &self,
        camera: &CameraId,
        correlation: Option<Bytes>,
    ) -> Result<(String, usize), (&'static str, String)> {
        let (reply, jpeg) = crossbeam_channel::bounded(1);
        if self.p.main.send(MainRequest::Snapshot(camera.clone(), reply)).is_err() {
            return Err(("unavailable", "vigild is shutting down".into()));
        }
        let jpeg = match jpeg.recv_timeout(COMMAND_DEADLINE) {
            Ok(Ok(jpeg)) => jpeg,
            Ok(Err(e)) => return Err(("bad-argument", e)),
            Err(_) => return Err(("timeout", format!("no snapshot within {COMMAND_DEADLINE:?}"))),
        };
        let topic = self.p.topics.camera_snapshot(camera.as_str());
        let bytes = jpeg.len();
        self.p.link.publish(Outgoing {
            topic: topic.clone(),
            payload: jpeg.into(),
            retain: false,
            qos1: true,
            correlation,
        });
        Ok((topic, bytes))
    }

    fn remember(&mut self, id: String, payload: Bytes) {
        if self.answered_order.len() >= REMEMBERED_REQUESTS
            && let Some(old) = self.answered_order.pop_front()
        {
            self.answered.remove(&old);
        }
        self.answered_order.push_back(id.clone());
        self.answered.insert(id, payload);
    }

    fn respond(&self, topic: &str, payload: Bytes, correlation: Option<Bytes>) {
        self.p.link.publish(Outgoing { topic: topic.to_string(), payload, retain: false, qos1: true, correlation });
    }

    fn on_desired(&mut self, payload: &[u8]) {
        if payload.is_empty() {
            return; // the district cleared its retained document
        }
        let report = match Desired::parse(payload) {
            Err(e) => self.report(None, Verdict::Rejected, Some(e), Vec::new()),
            Ok(d) if d.version <= self.running_version => {
                let same =
                    read_district_config(&self.p.data_dir).is_some_and(|(v, text)| v == d.version && text == d.toml);
                if same || d.version < self.running_version {
                    self.report(Some(d.version), Verdict::Unchanged, None, Vec::new())
                } else {
                    let why = format!(
                        "version {} is already applied with different content; publish the change with a higher version",
                        d.version
                    );
                    self.report(Some(d.version), Verdict::Rejected, Some(why), Vec::new())
                }
            }
            Ok(d) => match self.apply(&d) {
                Ok(changes) => {
                    self.running_version = d.version;
                    if let Err(e) = write_district_config(&self.p.data_dir, &d) {
                        tracing::error!(error = %e, "the district config is applied but could not be saved; a restart runs the previous one until the district's retained document arrives");
                    }
                    tracing::warn!(version = d.version, ?changes, "district config applied");
                    self.report(Some(d.version), Verdict::Applied, None, changes)
                }
                Err(e) => {
                    tracing::error!(version = d.version, error = %e, "district config rejected; the running config is kept");
                    self.report(Some(d.version), Verdict::Rejected, Some(e), Vec::new())
                }
            },
        };
        self.last_report = report;
        self.publish_report();
    }

    /// Validates and applies a desired config through the startup path.
    fn apply(&self, d: &Desired) -> Result<Vec<String>, String> {
        let label = PathBuf::from(format!("config/desired v{}", d.version));
        let config = Config::parse(&d.toml, &label, &self.p.config_base).map_err(|e| e.to_string())?;
        crate::check_files(&config).map_err(|e| format!("{label:?}: {e:#}", label = label.display().to_string()))?;
        let (reply, applied) = crossbeam_channel::bounded(1);
        self.p
            .main
            .send(MainRequest::Reconfigure(Box::new(config), reply))
            .map_err(|_| "vigild is shutting down".to_string())?;
        let r = applied.recv_timeout(Duration::from_secs(60)).map_err(|_| "applying took over 60 s".to_string())??;
        let mut changes = Vec::new();
        for (what, ids) in
            [("added", &r.added), ("removed", &r.removed), ("restarted", &r.restarted), ("updated", &r.updated)]
        {
            changes.extend(ids.iter().map(|id| format!("camera {id} {what}")));
        }
        Ok(changes)
    }

    fn report(&self, desired: Option<u64>, verdict: Verdict, error: Option<String>, changes: Vec<String>) -> Reported {
        Reported {
            running_version: self.running_version,
            desired_version: desired,
            verdict: Some(verdict),
            error,
            changes,
            at: self.p.clock.now().rfc3339(),
        }
    }

    fn publish_report(&self) {
        self.p.link.publish(Outgoing {
            topic: self.p.topics.config_reported(),
            payload: self.last_report.to_json().into(),
            retain: true,
            qos1: true,
            correlation: None,
        });
    }

    fn publish_telemetry(&mut self) {
        let (reply, status) = crossbeam_channel::bounded(1);
        if self.p.main.send(MainRequest::Status(reply)).is_err() {
            return;
        }
        let Ok(status) = status.recv_timeout(Duration::from_secs(5)) else { return };
        let now = Instant::now();
        let fps = match self.last_telemetry {
            Some((at, n)) => {
                (status.inferences.saturating_sub(n)) as f64 / now.duration_since(at).as_secs_f64().max(1e-3)
            }
            None => status.inferences as f64 / status.uptime.as_secs_f64().max(1e-3),
        };
        self.last_telemetry = Some((now, status.inferences));
        let outbox = OutboxHealth {
            depth: self.p.outbox.depth().unwrap_or(0),
            oldest_age_s: self
                .p
                .outbox
                .oldest_unix_ms()
                .ok()
                .flatten()
                .map(|t| self.p.clock.now().unix_ms().saturating_sub(t) / 1000),
            refused: self.p.refused.load(Ordering::Relaxed),
        };
        let link = self.p.link.status();
        let mut t = telemetry(
            &status,
            fps,
            outbox,
            LinkHealth { session: link.session, connects: link.connects, published: link.published },
            self.p.clock.now().rfc3339(),
        );
        if let Some(host) = &self.p.plugins {
            t.plugins = host.list().iter().map(plugin_health).collect();
        }
        if let Some(system) = &self.p.system_health {
            t.system = system();
        }
        self.p.link.publish(Outgoing {
            topic: self.p.topics.telemetry(),
            payload: t.to_json().into(),
            retain: true,
            qos1: false,
            correlation: None,
        });
    }
}

/// Carries out a `plugin.*` command.
fn plugin_command(
    host: &vigil_plugins::PluginHost,
    data_dir: &Path,
    command: UplinkCommand,
    operator: &str,
) -> (Result<(), (&'static str, String)>, Option<serde_json::Value>) {
    let install = |package: &[u8]| match host.install(package) {
        Ok(p) => {
            tracing::warn!(plugin = %p.name, version = %p.version, replaced = ?p.replaced, denied = ?p.denied, operator, "plugin installed by the district");
            let data =
                serde_json::json!({"name": p.name, "version": p.version, "replaced": p.replaced, "denied": p.denied});
            (Ok(()), Some(data))
        }
        Err(e) => (Err(("plugin-refused", e.to_string())), None),
    };
    match command {
        UplinkCommand::PluginInstall { package } => install(&package),
        UplinkCommand::PluginUpload(part) => match Uploads::new(data_dir).add(&part) {
            Ok(Progress::Partial { received, parts }) => {
                (Ok(()), Some(serde_json::json!({"upload": part.upload, "received": received, "parts": parts})))
            }
            Ok(Progress::Complete(package)) => install(&package),
            Err(e) => (Err(("bad-argument", e)), None),
        },
        UplinkCommand::PluginRemove { name } => match host.remove(&name) {
            Ok(()) => {
                tracing::warn!(plugin = %name, operator, "plugin removed by the district");
                (Ok(()), None)
            }
            Err(e) => (Err(("plugin-refused", e.to_string())), None),
        },
        UplinkCommand::PluginEnabled { name, enabled } => {
            let done = if enabled { host.enable(&name) } else { host.disable(&name) };
            match done {
                Ok(()) => {
                    let what = if enabled { "enabled" } else { "disabled" };
                    tracing::warn!(plugin = %name, operator, "plugin {what} by the district");
                    (Ok(()), None)
                }
                Err(e) => (Err(("plugin-refused", e.to_string())), None),
            }
        }
        UplinkCommand::PluginList => {
            // The same lines telemetry carries.
            let plugins: Vec<PluginHealth> = host.list().iter().map(plugin_health).collect();
            (Ok(()), Some(serde_json::json!({ "plugins": plugins })))
        }
        _ => unreachable!("only plugin commands come here"),
    }
}

fn plugin_health(p: &vigil_plugins::PluginInfo) -> PluginHealth {
    let m = &p.metrics;
    PluginHealth {
        name: p.name.clone(),
        state: p.state.to_string(),
        version: p.version.clone(),
        calls: m.calls,
        errors: m.errors,
        traps: m.traps,
        restarts: m.restarts,
        avg_latency_us: m.avg_latency_us,
        memory_bytes: m.memory_bytes,
        status: p.status.as_deref().and_then(|s| serde_json::from_str(s).ok()),
    }
}

/// The telemetry document for a status.
pub fn telemetry(status: &Status, detector_fps: f64, outbox: OutboxHealth, link: LinkHealth, at: String) -> Telemetry {
    Telemetry {
        at,
        uptime_s: status.uptime.as_secs(),
        drill: status.supervisor.drill,
        cameras: status
            .cameras
            .iter()
            .map(|c| CameraHealth {
                id: c.id.to_string(),
                state: c.health.state.as_str().to_string(),
                fps: f64::from(c.health.fps),
                inferred: c.slot.taken,
                dropped: c.slot.dropped,
                opens: c.health.opens,
                last_error: c.health.last_error.clone(),
            })
            .collect(),
        detector: DetectorHealth {
            device: status.model.execution_devices.clone(),
            fps: detector_fps,
            utilization: status.detector_utilization,
            inferences: status.inferences,
            errors: status.inference_errors,
        },
        incidents: IncidentCounts { raised: status.supervisor.incidents, open: status.supervisor.open },
        outbox,
        link,
        plugins: Vec::new(),
        system: SystemHealth::default(),
    }
}

/// Publishes an `os.update` job's state, retained, so the district sees the
/// last job whenever it looks.
pub fn publish_job(link: &LinkHandle, topics: &Topics, job: &crate::system::Job) {
    match serde_json::to_vec(job) {
        Ok(payload) => link.publish(Outgoing {
            topic: topics.os_update(),
            payload: payload.into(),
            retain: true,
            qos1: true,
            correlation: None,
        }),
        Err(e) => tracing::error!(error = %e, "cannot encode the OS update job"),
    }
}

/// The district config applied last: its version and text, if any was.
pub fn read_district_config(data_dir: &Path) -> Option<(u64, String)> {
    let bytes = std::fs::read(data_dir.join(DISTRICT_CONFIG_FILE)).ok()?;
    Desired::parse(&bytes).ok().map(|d| (d.version, d.toml))
}

fn write_district_config(data_dir: &Path, d: &Desired) -> std::io::Result<()> {
    use std::io::Write;
    let path = data_dir.join(DISTRICT_CONFIG_FILE);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&d.to_json())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()
}
