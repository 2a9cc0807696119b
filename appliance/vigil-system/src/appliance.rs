//! What vigild starts from this crate, in one place: the systemd notifier
//! and watchdog gate ([`System`]), the update manager's defaults, and the
//! post-boot health-check step.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::notify::{self, Notifier, NotifyError};
use crate::rauc::Bus;
use crate::update::{
    BootOutcome, DownloadLimits, HealthVerdict, Job, JobListener, Reboot, UpdateConfig, UpdateError, UpdateManager,
};
use crate::watchdog::{Heartbeat, Verdict, Watchdog};

/// vigild's line to systemd: readiness, status, and the gated watchdog.
/// Dropping it stops the watchdog thread.
#[derive(Debug)]
pub struct System {
    notifier: Notifier,
    watchdog: Watchdog,
    interval: Option<Duration>,
}

impl System {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`; every
    /// call is a no-op when vigild does not run under systemd.
    pub fn from_env() -> Result<Self, NotifyError> {
        let notifier = Notifier::from_env()?;
        let interval = notify::watchdog_interval_from_env()?;
        Ok(Self::new(notifier, interval))
    }

    /// With an explicit notifier and watchdog interval (tests).
    pub fn new(notifier: Notifier, interval: Option<Duration>) -> Self {
        let watchdog = Watchdog::start(notifier.clone(), interval);
        Self { notifier, watchdog, interval }
    }

    /// The watchdog interval systemd set, if any: heartbeat max ages should be well below it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Registers a component that must beat at least every `max_age` for the
    /// watchdog to be fed (`detector` after each inference, `uplink` each loop turn).
    pub fn heartbeat(&self, name: &str, max_age: Duration) -> Heartbeat {
        self.watchdog.register(name, max_age)
    }

    /// The watchdog gate's verdict now (for vigild's status document).
    pub fn liveness(&self) -> Verdict {
        self.watchdog.verdict()
    }

    /// `READY=1`. A failure is logged: systemd then times vigild's start out, which says enough.
    pub fn ready(&self) {
        self.log(self.notifier.ready());
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.log(self.notifier.stopping());
    }

    /// `STATUS=text`.
    pub fn status(&self, text: &str) {
        self.log(self.notifier.status(text));
    }

    fn log(&self, result: Result<(), NotifyError>) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "systemd notify failed");
        }
    }
}

/// The update manager on the appliance: RAUC on the system bus
/// (`DBUS_SYSTEM_BUS_ADDRESS` when set), the job file and downloads in
/// `data_dir`, `reboot_command` (argv, e.g. `systemctl reboot`) to reboot,
/// and the kernel's boot id read from `boot_id_file`.
pub fn update_manager(
    data_dir: &Path,
    reboot_command: &[String],
    boot_id_file: &Path,
    listener: JobListener,
) -> Result<UpdateManager, UpdateError> {
    let config = UpdateConfig {
        data_dir: data_dir.to_owned(),
        bus: Bus::System,
        download: DownloadLimits::default(),
        reboot: command_reboot(reboot_command.to_vec()),
        boot_id_file: boot_id_file.to_owned(),
    };
    UpdateManager::open(config, listener)
}

/// Reboots by running `argv` (on the appliance `systemctl reboot`: an
/// orderly shutdown, so vigild gets SIGTERM first). An empty `argv` fails
/// every reboot, saying so.
pub fn command_reboot(argv: Vec<String>) -> Reboot {
    Arc::new(move || {
        let (program, args) = argv.split_first().ok_or("no reboot command is configured")?;
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .map_err(|e| format!("cannot run the reboot command {argv:?}: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("the reboot command {argv:?} failed ({status})")) }
    })
}

/// The post-boot step: resumes an interrupted job, reports a rollback, or
/// (when the device booted the updated slot) asks `health` for a verdict and
/// marks the slot good or leaves it for the bootloader to abandon. `health`
/// runs only in that last case and may block while vigild's cameras,
/// detector and broker connection come up. Returns the unfinished or
/// concluded job, if any, for vigild to publish.
pub fn after_boot(manager: &UpdateManager, health: impl FnOnce() -> HealthVerdict) -> Result<Option<Job>, UpdateError> {
    match manager.on_boot()? {
        BootOutcome::Idle => Ok(None),
        BootOutcome::Resumed(job) | BootOutcome::Concluded(job) | BootOutcome::AwaitingReboot(job) => Ok(Some(job)),
        BootOutcome::HealthCheckDue(job) => {
            tracing::info!(job = %job.id, "booted into the updated slot; running the health check");
            manager.finish_health_check(health()).map(Some)
        }
    }
}
