//! Test plugin: `on-action` allocates 4 GiB in touched 64 MiB chunks. Proves
//! the host's memory cap ends the call (wasm32 cannot even address 4 GiB of
//! heap, so without a cap the guest would trap on allocation failure instead).

use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, export_plugin};

const CHUNK: usize = 64 << 20;
const CHUNKS: usize = 64;

struct Hog;

impl Plugin for Hog {
    fn on_action(_request: ActionRequest) -> ActionResult {
        let mut held = Vec::new();
        for _ in 0..CHUNKS {
            // Non-zero fill so every page is written, not just reserved.
            held.push(core::hint::black_box(vec![1u8; CHUNK]));
        }
        ActionResult::Done(format!("allocated {} MiB", held.len() * (CHUNK >> 20)))
    }
}

export_plugin!(Hog);
