//! The bridge between the incident book and the plugin host (`vigil-plugins`):
//! action requests go to the plugins that subscribe to them, incident
//! transitions go to every plugin as events, and each plugin's answer comes
//! back to the supervisor, which records it in the audit trail and sends it to
//! the district.
//!
//! Nothing here waits for a plugin: dispatch returns at once and answers
//! arrive on a channel, so a slow or crashed plugin never holds up an
//! incident.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use vigil_config::PluginsConfig;
use vigil_core::incident::{ActionRequest, Directive, Incident, IncidentId, Stage};
use vigil_core::playbook::SrpAction;
use vigil_plugins::{Grant, HostConfig, Limits, PluginHost};

use crate::actions::{ActionContext, ActionSink, describe, log_request};
use crate::supervisor::Notice;

/// A plugin's answer to an action request.
#[derive(Clone, Debug)]
pub struct ActionOutcome {
    /// The incident the request was for.
    pub incident: IncidentId,
    /// The plugin that answered.
    pub plugin: String,
    /// What was asked, as the audit trail writes it (`activate:lockdown`).
    pub directive: String,
    /// Whether the request was a drill.
    pub drill: bool,
    /// The answer.
    pub result: vigil_plugins::ActionResult,
}

impl ActionOutcome {
    /// `done: …`, `failed: …` or `not applicable`, for the audit trail.
    pub fn describe(&self) -> String {
        match &self.result {
            vigil_plugins::ActionResult::Done(d) => format!("done: {d}"),
            vigil_plugins::ActionResult::Failed(f) => format!("failed: {f}"),
            vigil_plugins::ActionResult::NotApplicable => "not applicable".into(),
        }
    }
}

/// Starts the plugin host for `config`: state under `<data_dir>/plugins`,
/// installed plugins loaded, packages in `install_dir` installed or upgraded.
pub fn start_host(config: &PluginsConfig, data_dir: &Path) -> anyhow::Result<Arc<PluginHost>> {
    let trusted_keys = config
        .trusted_keys
        .iter()
        .map(vigil_plugins::package::VerifyingKey::from_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("plugins.trusted_keys: a key is not a valid ed25519 public key: {e}"))?;
    let grants = config
        .grants
        .iter()
        .map(|(name, g)| {
            let grant = Grant {
                network: g.network.clone(),
                serial: g.serial.clone(),
                data_dir: g.data.clone(),
                config: g.config.clone(),
                enabled: g.enabled,
                call_deadline: g.call_timeout,
            };
            (name.clone(), grant)
        })
        .collect();
    let limits = Limits {
        memory_bytes: usize::try_from(config.memory_bytes).unwrap_or(usize::MAX),
        call_deadline: config.call_timeout,
        ..Limits::default()
    };
    let host = PluginHost::new(HostConfig { state_dir: data_dir.join("plugins"), trusted_keys, limits, grants })
        .map_err(|e| anyhow::anyhow!("starting the plugin host: {e}"))?;
    for (name, loaded) in host.load_installed() {
        match loaded {
            Ok(()) => tracing::info!(plugin = %name, "plugin loaded"),
            Err(e) => tracing::error!(plugin = %name, error = %e, "an installed plugin cannot start"),
        }
    }
    if let Some(dir) = &config.install_dir {
        install_folder(&host, dir);
    }
    Ok(Arc::new(host))
}

/// Installs every package in `dir` whose name and version are not installed yet.
fn install_folder(host: &PluginHost, dir: &Path) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot read plugins.install_dir");
            return;
        }
    };
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    paths.sort();
    for path in paths {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(package = %path.display(), error = %e, "cannot read a plugin package");
                continue;
            }
        };
        // Opening without trust just to learn the name and version; install checks the signature.
        let same = vigil_plugins::package::peek(&bytes)
            .ok()
            .is_some_and(|m| host.list().iter().any(|p| p.name == m.name && p.version == m.version));
        if same {
            continue;
        }
        match host.install(&bytes) {
            Ok(p) => {
                tracing::warn!(plugin = %p.name, version = %p.version, denied = ?p.denied, replaced = ?p.replaced, package = %path.display(), "plugin installed")
            }
            Err(e) => tracing::error!(package = %path.display(), error = %e, "plugin package refused"),
        }
    }
}

/// Hands action requests to the plugins and their answers to `outcomes`.
pub struct PluginActions {
    host: Arc<PluginHost>,
    outcomes: Sender<ActionOutcome>,
}

impl PluginActions {
    /// A sink dispatching to `host`; answers go to `outcomes`.
    pub fn new(host: Arc<PluginHost>, outcomes: Sender<ActionOutcome>) -> PluginActions {
        PluginActions { host, outcomes }
    }
}

impl ActionSink for PluginActions {
    fn dispatch(&mut self, request: &ActionRequest, context: ActionContext<'_>) {
        // Logged whether or not a plugin subscribes: the log must show every action ordered.
        log_request(request, "action requested");
        let plugin_request = vigil_plugins::ActionRequest {
            incident: plugin_incident_for(request, context),
            directive: match request.directive {
                Directive::Activate(a) => vigil_plugins::Directive::Activate(srp(a)),
                Directive::Revert(a) => vigil_plugins::Directive::Revert(srp(a)),
                Directive::AllClear => vigil_plugins::Directive::AllClear,
            },
            actor: request.actor.to_string(),
        };
        let tx = self.outcomes.clone();
        let (incident, drill, directive) = (request.incident, request.drill, describe(request.directive));
        // Returns at once; answers arrive on the host's collector thread.
        let _ = self.host.dispatch_action(&plugin_request, move |plugin, result| {
            let _ = tx.send(ActionOutcome {
                incident,
                plugin: plugin.to_string(),
                directive: directive.clone(),
                drill,
                result,
            });
        });
    }
}

/// Feeds incident notices to the plugins as events, and ticks them, until the notices end.
pub fn run_events(host: Arc<PluginHost>, notices: Receiver<Notice>, tick: Duration) {
    let ticker = crossbeam_channel::tick(tick);
    // Camera names, learned from raises (transitions carry only the camera id).
    let mut names = std::collections::HashMap::new();
    loop {
        crossbeam_channel::select! {
            recv(notices) -> n => match n {
                Ok(Notice::Raised { incident, camera_name, .. }) => {
                    names.insert(incident.camera.clone(), camera_name);
                }
                Ok(Notice::Transition { incident, .. }) => {
                    let name = names.get(&incident.camera).map_or(incident.camera.as_str(), String::as_str);
                    if let Some(event) = event_for(&incident, name) {
                        host.dispatch_event(&event);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            },
            recv(ticker) -> _ => host.tick(),
        }
    }
}

/// The plugin event a transition to `incident.stage` is, if any.
fn event_for(incident: &Incident, camera_name: &str) -> Option<vigil_plugins::Event> {
    let i = plugin_incident(incident, camera_name);
    Some(match incident.stage {
        Stage::Detected => vigil_plugins::Event::Raised(i),
        Stage::Confirmed => vigil_plugins::Event::Verified(i),
        Stage::Responding(_) => vigil_plugins::Event::ActionRequested(i),
        Stage::Dismissed => vigil_plugins::Event::Dismissed(i),
        Stage::AllClear => vigil_plugins::Event::AllClear(i),
        Stage::PendingVerification => return None,
    })
}

fn plugin_incident_for(request: &ActionRequest, context: ActionContext<'_>) -> vigil_plugins::Incident {
    match context.incident {
        Some(i) => plugin_incident(i, context.camera_name),
        None => vigil_plugins::Incident {
            id: request.incident.0,
            camera: request.camera.to_string(),
            camera_name: context.camera_name.to_string(),
            location: location(&request.location),
            label: request.label.to_string(),
            drill: request.drill,
            ..vigil_plugins::Incident::default()
        },
    }
}

fn plugin_incident(i: &Incident, camera_name: &str) -> vigil_plugins::Incident {
    vigil_plugins::Incident {
        id: i.id.0,
        camera: i.camera.to_string(),
        camera_name: camera_name.to_string(),
        location: location(&i.location),
        label: i.label.to_string(),
        score: i.score,
        drill: i.drill,
        stage: i.stage.as_str().to_string(),
        active: i.active.iter().map(|&a| srp(a)).collect(),
    }
}

fn location(l: &vigil_core::Location) -> vigil_plugins::Location {
    vigil_plugins::Location { building: l.building.clone(), floor: l.floor.clone(), zone: l.zone.clone() }
}

fn srp(a: SrpAction) -> vigil_plugins::SrpAction {
    match a {
        SrpAction::Hold => vigil_plugins::SrpAction::Hold,
        SrpAction::Secure => vigil_plugins::SrpAction::Secure,
        SrpAction::Lockdown => vigil_plugins::SrpAction::Lockdown,
        SrpAction::Evacuate => vigil_plugins::SrpAction::Evacuate,
        SrpAction::Shelter => vigil_plugins::SrpAction::Shelter,
    }
}
