//! vigild's link to the appliance OS, a thin layer over `vigil-system`:
//! systemd readiness and the heartbeat-gated watchdog, `os.update` jobs
//! through RAUC, the post-boot health check, clock sync state. (The device
//! id, from config or `/etc/machine-id`, is `vigil-config`'s.)
//!
//! Wiring (see each function):
//! 1. at startup: [`start`], then [`update_manager`] and [`after_boot`];
//! 2. once serving: `system.ready()`; heartbeats from the detector and uplink;
//! 3. `os.update` commands: [`start_update`]; job snapshots arrive at the listener
//!    (`serde_json::to_value(&job)` is the wire form: `phase` is `queued` ...
//!    `rolled-back`, failures carry `error.code`);
//! 4. on shutdown: `system.stopping()`, then drop the [`System`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use vigil_config::OsConfig;
pub use vigil_system::appliance::System;
pub use vigil_system::clock::{TimeSource, TimeStatus};
pub use vigil_system::update::{HealthVerdict, Job, Phase, UpdateManager, UpdateRequest};
pub use vigil_system::watchdog::{Heartbeat, Verdict};

/// How long the detector may go without producing a result before the
/// watchdog is withheld.
pub const DETECTOR_MAX_SILENCE: Duration = Duration::from_secs(20);
/// How long the uplink loop may go without a turn.
pub const UPLINK_MAX_SILENCE: Duration = Duration::from_secs(60);

/// Reads systemd's environment and starts the watchdog gate (a no-op outside systemd).
pub fn start() -> anyhow::Result<System> {
    System::from_env().context("reading systemd's NOTIFY_SOCKET / WATCHDOG_USEC environment")
}

/// Opens the update job file in `data_dir` (on the data partition, which
/// survives the A/B switch), rebooting with `os.reboot_command` and telling
/// reboots from restarts by `os.boot_id_file`; `on_job` is called with a
/// snapshot after every phase or progress change, from the update thread:
/// publish it over MQTT. RAUC is reached on the system bus
/// (`DBUS_SYSTEM_BUS_ADDRESS` when set).
pub fn update_manager(
    data_dir: &Path,
    os: &OsConfig,
    on_job: impl Fn(&Job) + Send + Sync + 'static,
) -> anyhow::Result<UpdateManager> {
    vigil_system::appliance::update_manager(data_dir, &os.reboot_command, &os.boot_id_file, Arc::new(on_job))
        .with_context(|| format!("opening the OS update job in {}", data_dir.display()))
}

/// The job in one line for telemetry: `succeeded 2.1.0`, `installing 40%`.
pub fn job_line(job: &Job) -> String {
    let mut line = job.phase.as_str().to_string();
    if let Some(p) = job.progress {
        line += &format!(" {p}%");
    }
    if let Some(v) = job.bundle_version.as_ref().or(job.expected_version.as_ref()) {
        line += &format!(" {v}");
    }
    line
}

/// The watchdog gate's verdict for telemetry: `healthy`, `withheld: …`, or
/// `off` when systemd set no watchdog.
pub fn watchdog_line(system: &System) -> String {
    match (system.watchdog_interval(), system.liveness()) {
        (None, _) => "off".into(),
        (Some(_), Verdict::Healthy) => "healthy".into(),
        (Some(_), stale) => stale.status_text(),
    }
}

/// Handles an `os.update` command: `bundle` is an absolute path or an
/// http(s) URL, `expected_version` the version the bundle must carry.
/// Returns the job id; the error's `UpdateError::code` is the MQTT error code.
pub fn start_update(
    manager: &UpdateManager,
    bundle: &str,
    expected_version: Option<&str>,
) -> Result<String, vigil_system::update::UpdateError> {
    manager.start(UpdateRequest { bundle: bundle.to_owned(), expected_version: expected_version.map(str::to_owned) })
}

/// The post-boot step, once at startup after the pipeline is built: `health`
/// runs only when the device just booted an updated slot, and should wait
/// (with its own deadline) for cameras, a detector inference and the broker,
/// returning [`HealthVerdict::Unhealthy`] with what is missing. Returns the
/// job that concluded or resumed, to publish.
pub fn after_boot(manager: &UpdateManager, health: impl FnOnce() -> HealthVerdict) -> anyhow::Result<Option<Job>> {
    vigil_system::appliance::after_boot(manager, health).context("finishing the OS update after boot")
}

/// Whether the wall clock is synchronized (timedated, else the kernel), for the status document.
pub fn time_status() -> TimeStatus {
    vigil_system::clock::time_status()
}
