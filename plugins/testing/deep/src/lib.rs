//! Test plugin: `on-action` recurses without bound. Proves a stack overflow is
//! a trap the host reports, not a crash of vigild.

use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, export_plugin};

struct Deep;

impl Plugin for Deep {
    fn on_action(_request: ActionRequest) -> ActionResult {
        ActionResult::Done(format!("depth {}", descend(0)))
    }
}

/// Never returns: the frame holds a black-boxed array and uses the callee's
/// result, so the optimiser can turn it into neither a loop nor a tail call.
#[allow(unconditional_recursion)]
fn descend(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 32]);
    descend(frame[0] + 1).wrapping_add(frame[31])
}

export_plugin!(Deep);
