//! Test plugin: initialises fine, then panics in every other export. Proves a
//! panic is a trap the host reports per call, with the plugin restarted or
//! disabled by policy, and never takes vigild down.

use vigil_plugin_sdk::{ActionRequest, ActionResult, Event, Plugin, export_plugin};

struct Panicky;

impl Plugin for Panicky {
    fn on_event(event: Event) {
        panic!("panicky: on-event {}", event.kind());
    }

    fn on_action(request: ActionRequest) -> ActionResult {
        panic!("panicky: on-action for incident {}", request.incident.id);
    }

    fn on_tick(now_ms: u64) {
        panic!("panicky: on-tick at {now_ms}");
    }
}

export_plugin!(Panicky);
