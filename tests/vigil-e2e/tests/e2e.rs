//! End-to-end tests: vigild's whole pipeline in-process, from camera workers
//! through the frame scheduler and real OpenVINO inference on the generated
//! demo model to confirmation, incidents, evidence and the audit trail on disk.
//!
//! Every test builds its config the way vigild does (a TOML file loaded with
//! `Config::load`), on the CPU, with its data folder in a temporary folder.
//! They need OpenVINO and the generated models: `cargo xtask test` provides
//! both; run alone, set `OPENVINO_LIB` (and `VIGIL_MODELS` if the models are
//! not in `target/models`). Without them the tests fail saying so.
//!
//! Tests wait for notices and status changes with deadlines, never for fixed
//! times, and assert no timings: performance belongs in the benchmarks.

#[path = "e2e/commands.rs"]
mod commands;
#[path = "e2e/daemon.rs"]
mod daemon;
#[path = "e2e/district.rs"]
mod district;
#[path = "e2e/door_lock.rs"]
mod door_lock;
#[path = "e2e/door_lock_osdp.rs"]
mod door_lock_osdp;
#[path = "e2e/drill.rs"]
mod drill;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/incidents.rs"]
mod incidents;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/os_update.rs"]
mod os_update;
#[path = "e2e/pa_paging.rs"]
mod pa_paging;
#[path = "e2e/peers.rs"]
mod peers;
#[path = "e2e/plugin_site.rs"]
mod plugin_site;
#[path = "e2e/plugins.rs"]
mod plugins;
#[path = "e2e/reconfig.rs"]
mod reconfig;
#[path = "e2e/restart.rs"]
mod restart;
#[path = "e2e/rtsp.rs"]
mod rtsp;
#[path = "e2e/shield_inventory.rs"]
mod shield_inventory;
#[path = "e2e/sources.rs"]
mod sources;
