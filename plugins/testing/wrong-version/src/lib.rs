//! Test plugin: exports `vigil:plugin/plugin@9.0.0` (from `wit/plugin.wit`, a
//! copy of `wit/v0.1.0` with only the version changed). Proves the host
//! refuses an interface version it has no adapter for, naming the version.

wit_bindgen::generate!({
    path: "wit",
    world: "vigil-plugin",
});

use exports::vigil::plugin::plugin::Guest;
use vigil::plugin::types::{ActionRequest, ActionResult, Event};

struct WrongVersion;

impl Guest for WrongVersion {
    fn init() -> Result<(), String> {
        Ok(())
    }

    fn on_event(_event: Event) {}

    fn on_action(_request: ActionRequest) -> ActionResult {
        ActionResult::Done("wrong-version should never have been loaded".into())
    }

    fn on_tick(_now_ms: u64) {}
}

export!(WrongVersion);
