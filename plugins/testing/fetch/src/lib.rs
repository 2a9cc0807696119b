//! Test plugin: `on-action` fetches each URL in its config,
//! `{"urls": ["http://127.0.0.1:PORT/x", …]}`, over wasi:http and answers
//! `done` with one line per URL: `<status> <body>` or the error. Proves HTTP
//! is allowed to granted endpoints and denied elsewhere.

use serde::Deserialize;
use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, export_plugin, http};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    urls: Vec<String>,
}

struct Fetch;

impl Plugin for Fetch {
    fn init() -> Result<(), String> {
        vigil_plugin_sdk::config::<Config>().map(drop)
    }

    fn on_action(_request: ActionRequest) -> ActionResult {
        let config = match vigil_plugin_sdk::config::<Config>() {
            Ok(c) => c,
            Err(e) => return ActionResult::Failed(e),
        };
        let lines: Vec<String> = config
            .urls
            .iter()
            .map(|url| match http::get(url) {
                Ok(r) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
                Err(e) => e,
            })
            .collect();
        ActionResult::Done(lines.join("\n"))
    }
}

export_plugin!(Fetch);
