//! Test plugin: traps in `init`. Proves the host disables a plugin whose
//! initialisation traps (as opposed to returning an error) and reports why.

use vigil_plugin_sdk::{Plugin, export_plugin};

struct BadInit;

impl Plugin for BadInit {
    fn init() -> Result<(), String> {
        panic!("bad-init: refusing to start");
    }
}

export_plugin!(BadInit);
