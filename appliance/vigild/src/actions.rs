//! The seam to whatever carries out SRP actions. The plugin host implements
//! [`ActionSink`] later; until then actions are logged.

use vigil_core::incident::{ActionRequest, Directive};

/// Carries out action requests. `dispatch` must not block: a slow door
/// controller may never delay the next alert.
pub trait ActionSink: Send {
    /// Starts carrying out `request`; outcomes come back as events.
    fn dispatch(&mut self, request: &ActionRequest);
}

/// Logs every request; the stand-in until the plugin host lands.
#[derive(Debug, Default)]
pub struct LogActions;

impl ActionSink for LogActions {
    fn dispatch(&mut self, request: &ActionRequest) {
        tracing::warn!(
            incident = %request.incident,
            camera = %request.camera,
            location = %request.location,
            drill = request.drill,
            action = %describe(request.directive),
            "action requested (no plugin host yet: logged only)"
        );
    }
}

/// `activate:lockdown`, `revert:secure`, `all-clear`.
pub fn describe(directive: Directive) -> String {
    match directive {
        Directive::Activate(a) => format!("activate:{a}"),
        Directive::Revert(a) => format!("revert:{a}"),
        Directive::AllClear => "all-clear".to_string(),
    }
}
