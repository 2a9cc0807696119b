//! The sample Vigil plugin. Copy this crate to start your own.
//!
//! It logs every incident event and every action request, counts the incidents
//! it has seen in its key-value store, publishes that count as its status, and
//! answers every action `done("logged by template")`. A real plugin would drive
//! a device in `on_action` and answer `failed(..)` when that goes wrong.

use serde::Serialize;
use vigil_plugin_sdk::{ActionRequest, ActionResult, Event, Incident, Plugin, export_plugin, host, kv};

/// The key-value store key holding the number of incidents seen. In the store,
/// not a `static`, so the count survives restarts and instance recycling.
const INCIDENTS_SEEN: &str = "incidents-seen";

/// The status document the district sees.
#[derive(Serialize)]
struct Status {
    incidents_seen: u64,
    /// The last thing that happened, in words.
    last: String,
}

struct Template;

impl Plugin for Template {
    fn init() -> Result<(), String> {
        let seen = kv::get_json::<u64>(INCIDENTS_SEEN)?.unwrap_or(0);
        host::info!("template plugin ready, {seen} incidents seen so far");
        Ok(())
    }

    fn on_event(event: Event) {
        let what = format!("{} {}", event.kind(), describe(event.incident()));
        host::info!("event: {what}");
        // Count each incident once, when it is first raised.
        let seen = if matches!(event, Event::Raised(_)) {
            kv::increment(INCIDENTS_SEEN)
        } else {
            kv::get_json(INCIDENTS_SEEN).map(Option::unwrap_or_default)
        };
        match seen {
            Ok(incidents_seen) => publish(Status { incidents_seen, last: what }),
            // A failed store write must not stop the plugin: say so and carry on.
            Err(e) => host::warn!("cannot count incidents: {e}"),
        }
    }

    fn on_action(request: ActionRequest) -> ActionResult {
        host::info!("action: {} for {} by {}", request.directive, describe(&request.incident), request.actor);
        ActionResult::Done("logged by template".into())
    }
}

/// An incident in one line, with what an operator reading the log needs.
fn describe(incident: &Incident) -> String {
    let l = &incident.location;
    format!(
        "incident {} ({} {:.2}) on camera {} \"{}\" at {}/{}/{}{}",
        incident.id,
        incident.label,
        incident.score,
        incident.camera,
        incident.camera_name,
        l.building,
        l.floor,
        l.zone,
        if incident.drill { " [DRILL]" } else { "" },
    )
}

fn publish(status: Status) {
    if let Err(e) = vigil_plugin_sdk::status(&status) {
        host::warn!("cannot publish status: {e}");
    }
}

export_plugin!(Template);
