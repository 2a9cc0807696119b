//! Test plugin: well behaved. Counts every call in its key-value store under
//! `calls`, answers every action `done("ok <incident id>")`, and publishes
//! `{"calls": n}` as its status after each call.

use vigil_plugin_sdk::{ActionRequest, ActionResult, Event, Plugin, export_plugin, kv};

struct Good;

impl Plugin for Good {
    fn init() -> Result<(), String> {
        count()
    }

    fn on_event(_event: Event) {
        let _ = count();
    }

    fn on_action(request: ActionRequest) -> ActionResult {
        match count() {
            Ok(()) => ActionResult::Done(format!("ok {}", request.incident.id)),
            Err(e) => ActionResult::Failed(e),
        }
    }

    fn on_tick(_now_ms: u64) {
        let _ = count();
    }
}

fn count() -> Result<(), String> {
    let calls = kv::increment("calls")?;
    vigil_plugin_sdk::status(&Status { calls })
}

#[derive(serde::Serialize)]
struct Status {
    calls: u64,
}

export_plugin!(Good);
