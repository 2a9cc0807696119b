//! The seam to whatever carries out SRP actions. The plugin host implements
//! [`ActionSink`] later; until then actions are logged.

use vigil_core::incident::{ActionRequest, Directive};

/// Carries out action requests. `dispatch` must not block: a slow door
/// controller may never delay the next alert.
pub trait ActionSink: Send {
    /// Starts carrying out `request`; outcomes come back as events.
    fn dispatch(&mut self, request: &ActionRequest, context: ActionContext<'_>);
}

/// What else a sink may want to know about the request's incident.
#[derive(Clone, Copy, Debug)]
pub struct ActionContext<'a> {
    /// The incident as it stands after the change that caused the request (`None` if unknown).
    pub incident: Option<&'a vigil_core::incident::Incident>,
    /// The camera's human name.
    pub camera_name: &'a str,
}

/// Logs every request; used when no plugin host runs.
#[derive(Debug, Default)]
pub struct LogActions;

impl ActionSink for LogActions {
    fn dispatch(&mut self, request: &ActionRequest, _context: ActionContext<'_>) {
        log_request(request, "action requested (no plugins: logged only)");
    }
}

/// Logs an action request as a warning: the log shows every action ordered.
pub fn log_request(request: &ActionRequest, message: &str) {
    tracing::warn!(
        incident = %request.incident,
        camera = %request.camera,
        location = %request.location,
        drill = request.drill,
        action = %describe(request.directive),
        actor = %request.actor,
        "{message}"
    );
}

/// `activate:lockdown`, `revert:secure`, `all-clear`.
pub fn describe(directive: Directive) -> String {
    match directive {
        Directive::Activate(a) => format!("activate:{a}"),
        Directive::Revert(a) => format!("revert:{a}"),
        Directive::AllClear => "all-clear".to_string(),
    }
}
