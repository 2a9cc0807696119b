//! Test plugin: `on-action` opens a TCP connection to the address in its
//! config, `{"connect": "127.0.0.1:PORT"}`, and answers `done("connected")` or
//! `failed("<error>")`. Proves WASI sockets are denied without a grant and
//! allowed with one.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Deserialize;
use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, export_plugin};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where to connect, as `ip:port`.
    connect: SocketAddr,
}

struct Netcat;

impl Plugin for Netcat {
    fn init() -> Result<(), String> {
        vigil_plugin_sdk::config::<Config>().map(drop)
    }

    fn on_action(_request: ActionRequest) -> ActionResult {
        let result = vigil_plugin_sdk::config::<Config>().and_then(|config| {
            TcpStream::connect_timeout(&config.connect, Duration::from_secs(2))
                .map_err(|e| format!("cannot connect to {}: {e}", config.connect))
        });
        match result {
            Ok(_stream) => ActionResult::Done("connected".into()),
            Err(e) => ActionResult::Failed(e),
        }
    }
}

export_plugin!(Netcat);
