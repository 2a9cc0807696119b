//! The supervisor loop: the one owner of confirmation and incident state.
//!
//! It takes inference results and operator commands from two channels (a
//! closed set of events), runs the pure core on them, and carries out what the
//! core asks, in order: persist, render evidence, notify, dispatch actions.
//!
//! Architecture Invariant: every incident output is persisted before it is
//! announced, and no notice is ever dropped (notices use blocking sends).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, select};
use vigil_config::Config;
use vigil_core::confirm::Confirmer;
use vigil_core::incident::{
    ActionRequest, Actor, Command, CommandError, Incident, IncidentId, Incidents, Output, Transition,
};
use vigil_core::{CameraId, Clock, Location, Moment};
use vigil_detector::Inference;
use vigil_evidence::Annotation;
use vigil_store::{AuditEntry, Loaded, Store};

use crate::actions::{ActionContext, ActionSink, describe};
use crate::journal::Journal;
use crate::stats::Histogram;

/// Something observers (the console, later the district uplink) are told.
#[derive(Clone, Debug)]
pub enum Notice {
    /// A new incident, persisted, with its evidence.
    Raised {
        /// The incident as raised.
        incident: Incident,
        /// The camera's human name.
        camera_name: String,
        /// The evidence snapshot, if it could be written.
        snapshot: Option<PathBuf>,
    },
    /// An incident changed stage.
    Transition {
        /// The change.
        transition: Transition,
        /// The incident after it.
        incident: Incident,
    },
    /// An action was dispatched.
    Action(ActionRequest),
    /// An open incident's camera confirmed the threat again.
    Redetected {
        /// The incident.
        incident: IncidentId,
        /// The new detection's score.
        score: f32,
    },
    /// A plugin answered an action request.
    ActionResult(crate::plugins::ActionOutcome),
    /// Drill mode changed.
    Drill {
        /// On or off.
        active: bool,
        /// Who changed it.
        actor: Actor,
    },
}

/// An operator command and where to send the verdict.
pub struct CommandRequest {
    /// The command.
    pub command: Command,
    /// Who issued it (recorded in the audit trail).
    pub actor: Actor,
    /// Gets `Ok` once the command's effects are persisted, or why it was refused.
    pub reply: Option<Sender<Result<(), CommandError>>>,
}

/// Counters of the supervisor.
#[derive(Clone, Debug, Default)]
pub struct SupervisorStats {
    /// Inference results processed.
    pub frames: u64,
    /// Capture to confirmation decision, per frame (the glass-to-incident path).
    pub decision_latency: Histogram,
    /// Capture to raise, per incident.
    pub incident_latency: Histogram,
    /// Incidents raised.
    pub incidents: u64,
    /// Writes to the incident store that failed.
    pub store_errors: u64,
    /// Incidents open now.
    pub open: u64,
    /// Drill mode.
    pub drill: bool,
}

struct CameraEntry {
    name: String,
    location: Location,
    confirmer: Confirmer,
}

/// The latest inferred frame of each camera, with its detections (for the `snapshot` command).
pub type LatestInferences = Arc<Mutex<HashMap<CameraId, Inference>>>;

/// The loop's state.
pub struct Supervisor {
    cameras: BTreeMap<CameraId, CameraEntry>,
    incidents: Incidents,
    store: Store,
    actions: Box<dyn ActionSink>,
    journal: Option<Journal>,
    /// A raise waits here for the transition the core emits right after it,
    /// so it is announced only once persisted and journaled.
    pending_raise: Option<Notice>,
    latest: LatestInferences,
    notices: Vec<Sender<Notice>>,
    clock: Arc<dyn Clock>,
    jpeg_quality: u8,
    stats: Arc<Mutex<SupervisorStats>>,
}

impl Supervisor {
    /// A supervisor for `config`, resuming the incidents `loaded` from `store`.
    pub fn new(
        config: &Config,
        store: Store,
        loaded: Loaded,
        actions: Box<dyn ActionSink>,
        journal: Option<Journal>,
        notices: Vec<Sender<Notice>>,
        clock: Arc<dyn Clock>,
    ) -> Supervisor {
        let cameras = config.cameras.iter().map(|c| (c.id.clone(), camera_entry(c))).collect();
        for open in &loaded.open {
            tracing::warn!(incident = %open.id, camera = %open.camera, stage = %open.stage, active = ?open.active, "incident still open from before the restart");
        }
        // An operator's last drill start or stop outlives the config's initial setting.
        let drill = loaded.drill.unwrap_or(config.device.drill);
        let open_count = loaded.open.len() as u64;
        let incidents = Incidents::new(loaded.next_id, loaded.open, config.playbook.clone(), drill);
        Supervisor {
            cameras,
            incidents,
            store,
            actions,
            journal,
            pending_raise: None,
            latest: Arc::default(),
            notices,
            clock,
            jpeg_quality: config.evidence.jpeg_quality,
            stats: Arc::new(Mutex::new(SupervisorStats { open: open_count, drill, ..SupervisorStats::default() })),
        }
    }

    /// The latest inferred frame per camera, shared with the pipeline's owner.
    pub fn latest(&self) -> LatestInferences {
        self.latest.clone()
    }

    /// Shared counters, readable while the loop runs.
    pub fn stats(&self) -> Arc<Mutex<SupervisorStats>> {
        self.stats.clone()
    }

    /// Runs until the inference channel closes (the detector has stopped),
    /// answering commands all along.
    pub fn run(
        mut self,
        inferences: Receiver<Inference>,
        commands: Receiver<CommandRequest>,
        reconfigure: Receiver<(Arc<Config>, Sender<()>)>,
        outcomes: Receiver<crate::plugins::ActionOutcome>,
    ) {
        for output in self.incidents.resume() {
            if let Output::Dispatch(request) = output {
                let incident = self.incidents.get(request.incident).cloned();
                self.dispatch(request, "re-asserted after a restart", incident.as_ref());
            }
        }
        loop {
            select! {
                recv(inferences) -> msg => match msg {
                    Ok(inference) => self.on_inference(inference),
                    Err(_) => break,
                },
                recv(commands) -> msg => if let Ok(request) = msg {
                    self.on_command(request);
                },
                recv(reconfigure) -> msg => if let Ok((config, done)) = msg {
                    self.reconfigure(&config);
                    let _ = done.send(());
                },
                recv(outcomes) -> msg => if let Ok(outcome) = msg {
                    self.on_outcome(outcome);
                },
            }
        }
        // Commands that arrived during shutdown still get a verdict.
        while let Ok(request) = commands.try_recv() {
            self.on_command(request);
        }
    }

    /// Applies a new config's cameras, confirmation rules, playbook and
    /// evidence settings. Tracks in progress and open incidents are kept.
    fn reconfigure(&mut self, config: &Config) {
        self.cameras.retain(|id, _| config.camera(id).is_some());
        for c in &config.cameras {
            match self.cameras.get_mut(&c.id) {
                Some(entry) => {
                    entry.name = c.name.clone();
                    entry.location = c.location.clone();
                    if entry.confirmer.policy() != &c.confirm {
                        entry.confirmer.set_policy(c.confirm.clone());
                    }
                }
                None => {
                    self.cameras.insert(c.id.clone(), camera_entry(c));
                }
            }
        }
        self.incidents.set_playbook(config.playbook.clone());
        self.jpeg_quality = config.evidence.jpeg_quality;
    }

    fn on_inference(&mut self, inference: Inference) {
        let now = self.clock.now();
        let Some(camera) = self.cameras.get_mut(&inference.result.camera) else {
            return;
        };
        let alarms = camera.confirmer.observe(&inference.result, now);
        let decided = self.clock.now();
        {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.frames += 1;
            stats.decision_latency.record(decided.since(inference.result.captured));
        }
        for alarm in alarms {
            let location = camera_location(&self.cameras, &alarm.camera);
            let outputs = self.incidents.on_alarm(alarm, location, self.clock.now());
            self.apply(outputs, Some(&inference));
        }
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).insert(inference.result.camera.clone(), inference);
    }

    fn on_command(&mut self, request: CommandRequest) {
        let verdict = self
            .incidents
            .on_command(request.command.clone(), request.actor.clone(), self.clock.now())
            .map(|outputs| self.apply(outputs, None));
        if let Err(e) = &verdict {
            tracing::warn!(command = ?request.command, actor = %request.actor, code = e.code, error = %e.message, "command refused");
        }
        if let Some(reply) = request.reply {
            let _ = reply.send(verdict);
        }
    }

    fn apply(&mut self, outputs: Vec<Output>, inference: Option<&Inference>) {
        // Each incident as it stands after this batch: an all-clear's action
        // request comes before the transition that closes the incident.
        let batch: BTreeMap<IncidentId, Incident> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Raised(i) | Output::Transition(_, i) => Some((i.id, i.clone())),
                _ => None,
            })
            .collect();
        for output in outputs {
            match output {
                Output::Raised(incident) => {
                    // Saved with the Detected transition that follows at once.
                    let snapshot = inference.and_then(|inf| self.evidence(&incident, inf));
                    let latency = incident.times.raised.since(incident.times.captured);
                    {
                        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                        stats.incidents += 1;
                        stats.incident_latency.record(latency);
                    }
                    // An incident is not a fault of vigild: warn, which the demo's log level still shows.
                    tracing::warn!(
                        incident = %incident.id, camera = %incident.camera, label = %incident.label,
                        score = incident.score, location = %incident.location, drill = incident.drill,
                        glass_to_incident_ms = latency.as_secs_f64() * 1000.0,
                        "incident raised"
                    );
                    let camera_name = self.camera_name(&incident.camera);
                    self.pending_raise = Some(Notice::Raised { incident, camera_name, snapshot });
                }
                Output::Transition(transition, incident) => {
                    let entry = AuditEntry {
                        at_unix_ms: transition.at.unix_ms(),
                        actor: transition.actor.to_string(),
                        event: "transition".into(),
                        from: transition.from.map(|s| s.as_str().to_string()),
                        to: Some(transition.to.as_str().to_string()),
                        reason: transition.reason.clone(),
                    };
                    self.persist(|s| s.save_incident(&incident));
                    self.persist(|s| s.append_audit(incident.id, &entry));
                    let raise = self.pending_raise.take();
                    if let Some(journal) = &self.journal {
                        let snapshot = match &raise {
                            Some(Notice::Raised { snapshot, .. }) => snapshot.as_deref(),
                            _ => None,
                        };
                        journal.record(&transition, &incident, &self.camera_name(&incident.camera), snapshot);
                    }
                    tracing::info!(incident = %incident.id, from = ?transition.from.map(|s| s.as_str()), to = %transition.to, actor = %transition.actor, reason = %transition.reason, "incident transition");
                    if let Some(raise) = raise {
                        self.notify(raise);
                    }
                    self.notify(Notice::Transition { transition, incident });
                }
                Output::Dispatch(request) => {
                    let incident = batch.get(&request.incident).cloned();
                    self.dispatch(request, "dispatched", incident.as_ref());
                }
                Output::Redetected(id, alarm) => {
                    let entry = AuditEntry {
                        at_unix_ms: alarm.confirmed.unix_ms(),
                        actor: Actor::System.to_string(),
                        event: "redetected".into(),
                        from: None,
                        to: None,
                        reason: format!(
                            "{} {:.2} confirmed again on camera {} (track {})",
                            alarm.label, alarm.score, alarm.camera, alarm.track
                        ),
                    };
                    self.persist(|s| s.append_audit(id, &entry));
                    if let Some(incident) = self.incidents.get(id).cloned() {
                        self.persist(|s| s.save_incident(&incident));
                    }
                    self.notify(Notice::Redetected { incident: id, score: alarm.score });
                }
                Output::Drill { active, actor, at } => {
                    let entry = AuditEntry {
                        at_unix_ms: at.unix_ms(),
                        actor: actor.to_string(),
                        event: "drill".into(),
                        from: None,
                        to: Some(if active { "start" } else { "stop" }.into()),
                        reason: if active { "drill mode started" } else { "drill mode stopped" }.into(),
                    };
                    self.persist(|s| s.set_drill(active));
                    self.persist(|s| s.append_device_audit(&entry));
                    tracing::warn!(active, actor = %actor, "drill mode changed");
                    self.notify(Notice::Drill { active, actor });
                }
            }
        }
        // The core always follows a raise with its transition; should that ever change, the raise is still told.
        if let Some(raise) = self.pending_raise.take() {
            self.notify(raise);
        }
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.open = self.incidents.open().count() as u64;
        stats.drill = self.incidents.drill();
    }

    /// Records a plugin's answer in the incident's audit trail, queues it for
    /// the district and announces it.
    fn on_outcome(&mut self, outcome: crate::plugins::ActionOutcome) {
        let at = self.clock.now();
        let entry = AuditEntry {
            at_unix_ms: at.unix_ms(),
            actor: format!("plugin:{}", outcome.plugin),
            event: "action-result".into(),
            from: None,
            to: Some(outcome.directive.clone()),
            reason: outcome.describe(),
        };
        self.persist(|s| s.append_audit(outcome.incident, &entry));
        if let Some(journal) = &self.journal {
            journal.record_outcome(&outcome, at);
        }
        match &outcome.result {
            vigil_plugins::ActionResult::Failed(why) => {
                tracing::error!(incident = %outcome.incident, plugin = %outcome.plugin, action = %outcome.directive, error = %why, "ACTION FAILED")
            }
            _ => {
                tracing::info!(incident = %outcome.incident, plugin = %outcome.plugin, action = %outcome.directive, result = %outcome.describe(), "action result")
            }
        }
        self.notify(Notice::ActionResult(outcome));
    }

    /// Records, carries out and announces one action request.
    fn dispatch(&mut self, request: ActionRequest, reason: &str, incident: Option<&Incident>) {
        let entry = AuditEntry {
            at_unix_ms: self.clock.now().unix_ms(),
            actor: request.actor.to_string(),
            event: "action".into(),
            from: None,
            to: Some(describe(request.directive)),
            reason: if request.drill { format!("{reason} (drill)") } else { reason.to_string() },
        };
        self.persist(|s| s.append_audit(request.incident, &entry));
        let camera_name = self.camera_name(&request.camera);
        self.actions.dispatch(&request, ActionContext { incident, camera_name: &camera_name });
        self.notify(Notice::Action(request));
    }

    /// Renders and stores the snapshot of the confirming frame.
    fn evidence(&mut self, incident: &Incident, inference: &Inference) -> Option<PathBuf> {
        let threats =
            self.cameras.get(&incident.camera).map(|c| c.confirmer.policy().threat_labels.clone()).unwrap_or_default();
        let annotations: Vec<Annotation> = inference
            .result
            .detections
            .iter()
            .map(|d| Annotation {
                bbox: d.bbox,
                label: d.label.to_string(),
                score: d.score,
                threat: threats.contains(&d.label),
            })
            .collect();
        let caption = caption(incident, self.cameras.get(&incident.camera).map(|c| c.name.as_str()));
        match vigil_evidence::render_snapshot(&inference.frame, &annotations, &caption, self.jpeg_quality) {
            Ok(jpeg) => match self.store.save_snapshot(incident.id, &jpeg) {
                Ok(path) => Some(path),
                Err(e) => {
                    self.store_failed(&e);
                    None
                }
            },
            Err(e) => {
                tracing::error!(incident = %incident.id, error = %e, "cannot render the evidence snapshot");
                None
            }
        }
    }

    /// A camera's human name, or its id if it is no longer configured.
    fn camera_name(&self, camera: &CameraId) -> String {
        self.cameras.get(camera).map_or_else(|| camera.to_string(), |c| c.name.clone())
    }

    fn persist(&mut self, write: impl FnOnce(&Store) -> Result<(), vigil_store::StoreError>) {
        if let Err(e) = write(&self.store) {
            self.store_failed(&e);
        }
    }

    // A full or failed disk must not stop the alert: log, count, carry on.
    fn store_failed(&self, e: &vigil_store::StoreError) {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).store_errors += 1;
        tracing::error!(error = %e, "incident store write failed");
    }

    fn notify(&self, notice: Notice) {
        for n in &self.notices {
            // A departed observer is its own problem; the others still get told.
            let _ = n.send(notice.clone());
        }
    }
}

fn camera_entry(c: &vigil_config::CameraConfig) -> CameraEntry {
    CameraEntry {
        name: c.name.clone(),
        location: c.location.clone(),
        confirmer: Confirmer::new(c.id.clone(), c.confirm.clone()),
    }
}

fn camera_location(cameras: &BTreeMap<CameraId, CameraEntry>, id: &CameraId) -> Location {
    cameras.get(id).map(|c| c.location.clone()).unwrap_or_default()
}

/// The snapshot's caption: what, where, when, and whether it is a drill.
fn caption(incident: &Incident, camera_name: Option<&str>) -> String {
    let l = &incident.location;
    let place = [l.building.as_str(), l.floor.as_str(), l.zone.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" / ");
    let when: Moment = incident.times.captured;
    format!(
        "INCIDENT {}  {}  {}  {}{}",
        incident.id,
        camera_name.unwrap_or(incident.camera.as_str()),
        place,
        when.rfc3339(),
        if incident.drill { "  DRILL" } else { "" }
    )
}
