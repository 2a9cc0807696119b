//! Test plugin: `on-action` busy-waits two seconds on the host's monotonic
//! clock, then answers `done("slept 2000 ms")`. Proves a slow plugin never
//! delays another (and fits a deadline longer than two seconds).

use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, export_plugin, host};

const WAIT_MS: u64 = 2_000;

struct Slow;

impl Plugin for Slow {
    fn on_action(_request: ActionRequest) -> ActionResult {
        let start = host::monotonic_ms();
        while host::monotonic_ms().saturating_sub(start) < WAIT_MS {}
        ActionResult::Done(format!("slept {WAIT_MS} ms"))
    }
}

export_plugin!(Slow);
