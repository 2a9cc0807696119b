//! Test plugin: `on-action` connects to the address in its config,
//! `{"connect": "127.0.0.1:PORT"}`, and reads with no timeout from a peer
//! that never writes: the call blocks in the host's WASI I/O, where epoch
//! interruption cannot reach it. Proves the host's call timeout does.
//! `on-event` answers at once, so the test can see the plugin back.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};

use serde::Deserialize;
use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, export_plugin, kv};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    connect: SocketAddr,
}

struct Stall;

impl Plugin for Stall {
    fn on_action(_request: ActionRequest) -> ActionResult {
        let config = match vigil_plugin_sdk::config::<Config>() {
            Ok(c) => c,
            Err(e) => return ActionResult::Failed(e),
        };
        let mut stream = match TcpStream::connect(config.connect) {
            Ok(s) => s,
            Err(e) => return ActionResult::Failed(format!("cannot connect: {e}")),
        };
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(n) => ActionResult::Done(format!("read {n} bytes")),
            Err(e) => ActionResult::Failed(format!("read failed: {e}")),
        }
    }

    fn on_event(_event: vigil_plugin_sdk::Event) {
        let _ = kv::increment("events");
    }
}

export_plugin!(Stall);
