//! Test plugin: `on-action` tries to read `/etc/passwd` and `../../etc/passwd`,
//! to read `/data/readme.txt` (its granted read-only data folder is mounted at
//! `/data`), and to write `/data/x`. It answers `done` with which succeeded,
//! e.g. `{"etc_passwd": false, "dotdot": false, "data_read": true, "data_write": false}`.
//! Proves the filesystem grant is exactly one read-only folder.

use serde::Serialize;
use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, export_plugin};

#[derive(Serialize)]
struct Findings {
    etc_passwd: bool,
    dotdot: bool,
    data_read: bool,
    data_write: bool,
}

struct Snoop;

impl Plugin for Snoop {
    fn on_action(_request: ActionRequest) -> ActionResult {
        let findings = Findings {
            etc_passwd: std::fs::read("/etc/passwd").is_ok(),
            dotdot: std::fs::read("../../etc/passwd").is_ok(),
            data_read: std::fs::read("/data/readme.txt").is_ok(),
            data_write: std::fs::write("/data/x", b"snoop").is_ok(),
        };
        match serde_json::to_string(&findings) {
            Ok(json) => ActionResult::Done(json),
            Err(e) => ActionResult::Failed(e.to_string()),
        }
    }
}

export_plugin!(Snoop);
