//! Test plugin: `on-action` never returns. Proves the host's per-call deadline
//! (epoch interruption) stops a guest that never yields.

use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, export_plugin};

struct Spin;

impl Plugin for Spin {
    fn on_action(_request: ActionRequest) -> ActionResult {
        // black_box keeps the optimiser from proving the loop side-effect free.
        loop {
            core::hint::black_box(());
        }
    }
}

export_plugin!(Spin);
