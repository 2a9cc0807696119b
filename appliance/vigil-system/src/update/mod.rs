//! `os.update`: a persistent job that downloads a RAUC bundle, has RAUC
//! verify and install it, reboots, and after the reboot either confirms the
//! new slot (health check passed: `Mark good`) or lets the bootloader fall
//! back.
//!
//! The job's phases are the pure state machine in [`job`]; [`JobStore`]
//! keeps it on disk across reboots; [`UpdateManager`] drives RAUC in a
//! worker thread and tells a listener about every phase and progress change.
//!
//! Architecture Invariant: only this crate knows RAUC and D-Bus; vigild sees
//! [`Job`]s, [`UpdateRequest`]s and [`HealthVerdict`]s.

pub mod download;
pub mod job;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use download::{DownloadError, DownloadLimits};
pub use job::{BootDecision, BootObservation, BundleSource, Job, JobError, Phase};
pub use store::{JobStore, StoreError};

use crate::rauc::{Bus, MarkState, RaucClient, RaucError};

/// Asks the OS to reboot; returns a description of what went wrong.
pub type Reboot = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Called with a snapshot of the job after every phase or progress change.
pub type JobListener = Arc<dyn Fn(&Job) + Send + Sync>;

/// How the update manager reaches RAUC, where it keeps things, how it reboots.
#[derive(Clone)]
pub struct UpdateConfig {
    /// Holds the job file and downloaded bundles (`bundles/`); must be on a
    /// partition that survives the A/B switch.
    pub data_dir: PathBuf,
    /// RAUC's bus.
    pub bus: Bus,
    /// Limits for bundle downloads.
    pub download: DownloadLimits,
    /// Reboots into the new slot.
    pub reboot: Reboot,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`), which tells
    /// a reboot from a mere restart of vigild.
    pub boot_id_file: PathBuf,
}

impl std::fmt::Debug for UpdateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateConfig")
            .field("data_dir", &self.data_dir)
            .field("bus", &self.bus)
            .field("download", &self.download)
            .field("boot_id_file", &self.boot_id_file)
            .finish_non_exhaustive()
    }
}

/// What an operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// An absolute path on the device or an `http(s)://` URL.
    pub bundle: String,
    /// The version the bundle must carry; the job fails before installing otherwise.
    pub expected_version: Option<String>,
}

/// vigild's verdict on the system after booting the new slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthVerdict {
    /// Cameras deliver, the detector infers, the broker is connected.
    Healthy,
    /// Something essential does not work; the text says what.
    Unhealthy(String),
}

/// What [`UpdateManager::on_boot`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    /// No unfinished job.
    Idle,
    /// An interrupted job was started again (its download resumes).
    Resumed(Job),
    /// The device runs the updated slot: compute a [`HealthVerdict`] and pass
    /// it to [`UpdateManager::finish_health_check`].
    HealthCheckDue(Job),
    /// The job ended at boot (rolled back).
    Concluded(Job),
    /// The job asked for a reboot that has not happened yet; nothing to do.
    AwaitingReboot(Job),
}

/// Why an update request or step was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Another update is in progress.
    #[error("update job {id} is still {phase}; wait for it to finish")]
    Busy {
        /// The running job.
        id: String,
        /// Its phase.
        phase: &'static str,
    },
    /// The request is malformed.
    #[error("invalid update request: {0}")]
    BadRequest(String),
    /// No job is waiting for a health verdict.
    #[error("no update job is waiting for a health check")]
    NoHealthCheckPending,
    /// The job file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// RAUC.
    #[error(transparent)]
    Rauc(#[from] RaucError),
}

impl UpdateError {
    /// A stable machine-readable code for MQTT replies.
    pub fn code(&self) -> &'static str {
        match self {
            UpdateError::Busy { .. } => "busy",
            UpdateError::BadRequest(_) => "bad-request",
            UpdateError::NoHealthCheckPending => "no-health-check",
            UpdateError::Store(_) => "job-file",
            UpdateError::Rauc(RaucError::NoBus { .. } | RaucError::NoService { .. }) => "rauc-unavailable",
            UpdateError::Rauc(_) => "rauc",
        }
    }
}

/// Runs `os.update` jobs. Cheap to clone; one job at a time.
#[derive(Clone)]
pub struct UpdateManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: UpdateConfig,
    store: JobStore,
    job: Mutex<Option<Job>>,
    listener: JobListener,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl UpdateManager {
    /// Opens the job file in `config.data_dir`; `listener` hears every change.
    pub fn open(config: UpdateConfig, listener: JobListener) -> Result<Self, UpdateError> {
        let store = JobStore::open(&config.data_dir)?;
        let job = store.load()?;
        Ok(Self { inner: Arc::new(Inner { config, store, job: Mutex::new(job), listener, worker: Mutex::new(None) }) })
    }

    /// The current or last job, for status reports.
    pub fn job(&self) -> Option<Job> {
        self.inner.job.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Accepts a request and starts its job in a worker thread; returns the job id.
    pub fn start(&self, request: UpdateRequest) -> Result<String, UpdateError> {
        let source = BundleSource::parse(&request.bundle).map_err(UpdateError::BadRequest)?;
        let expected_version = request.expected_version.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let job = {
            let mut slot = self.inner.job.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(running) = slot.as_ref().filter(|j| !j.phase.is_terminal()) {
                return Err(UpdateError::Busy { id: running.id.clone(), phase: running.phase.as_str() });
            }
            let job = Job::new(new_job_id(), source, expected_version);
            self.inner.store.save(&job)?;
            *slot = Some(job.clone());
            job
        };
        tracing::info!(job = %job.id, source = ?job.source, "update job queued");
        (self.inner.listener)(&job);
        self.spawn_worker();
        Ok(job.id)
    }

    /// Call once at startup: resumes an interrupted job, or after an update
    /// reboot decides between health check and rollback.
    pub fn on_boot(&self) -> Result<BootOutcome, UpdateError> {
        let job = self.job();
        let boot_id = self.inner.boot_id();
        match job::startup_action(job.as_ref(), boot_id.as_deref()) {
            job::StartupAction::Nothing => Ok(BootOutcome::Idle),
            job::StartupAction::AwaitReboot => Ok(BootOutcome::AwaitingReboot(job.expect("a job awaiting reboot"))),
            job::StartupAction::Rerun => {
                self.spawn_worker();
                Ok(BootOutcome::Resumed(self.job().expect("a job to rerun")))
            }
            job::StartupAction::ObserveBoot => {
                let rauc = RaucClient::connect(self.inner.config.bus.clone())?;
                let seen = observe_boot(&rauc)?;
                tracing::info!(boot_slot = %seen.boot_slot, version = ?seen.booted_version, "booted after an update");
                let job = match job::boot_decision(job.as_ref().expect("a job to observe"), &seen) {
                    BootDecision::HealthCheck => {
                        let detail = format!("running slot {}; checking health", seen.boot_slot);
                        let job = self.inner.update(|j| j.enter(Phase::HealthCheck, detail).map_err(drop));
                        return Ok(BootOutcome::HealthCheckDue(job));
                    }
                    BootDecision::RolledBack(why) => {
                        let code = job.as_ref().and_then(|j| j.error.as_ref()).map_or("rolled-back", |e| {
                            if e.code == job::UNHEALTHY { job::UNHEALTHY } else { "rolled-back" }
                        });
                        self.inner.update(|j| j.fail(Phase::RolledBack, code, why).map_err(drop))
                    }
                    BootDecision::StillUnhealthy(why) => {
                        self.inner.update(|j| j.fail(Phase::Failed, job::UNHEALTHY, why).map_err(drop))
                    }
                };
                Ok(BootOutcome::Concluded(job))
            }
        }
    }

    /// Ends the health check: a healthy system marks the booted slot good and
    /// the job `succeeded`. An unhealthy one is marked bad and the device
    /// reboots into the old slot (the job waits in `rebooting` with the
    /// reason, and the next boot reports `rolled-back`); if marking or the
    /// reboot fails, the slot is left unmarked, so the bootloader gives it up
    /// after its boot attempts, and the job says so.
    pub fn finish_health_check(&self, verdict: HealthVerdict) -> Result<Job, UpdateError> {
        let job = self.job().filter(|j| j.phase == Phase::HealthCheck).ok_or(UpdateError::NoHealthCheckPending)?;
        let slot = job.to_boot.clone().unwrap_or_else(|| "the new slot".into());
        let old = job.from_boot.clone().unwrap_or_else(|| "the previous slot".into());
        let job = match verdict {
            HealthVerdict::Healthy => {
                let marked = RaucClient::connect(self.inner.config.bus.clone())
                    .and_then(|rauc| rauc.mark(MarkState::Good, "booted"));
                match marked {
                    Ok(name) => self.inner.update(|j| {
                        j.enter(Phase::Succeeded, format!("slot {slot} ({name}) is healthy and marked good"))
                            .map_err(drop)
                    }),
                    Err(e) => {
                        let why =
                            format!("could not mark slot {slot} good ({e}); the bootloader will fall back to {old}");
                        self.inner.update(|j| j.fail(Phase::Failed, "mark", why).map_err(drop))
                    }
                }
            }
            HealthVerdict::Unhealthy(reason) => {
                tracing::error!(%reason, slot, "updated system is unhealthy; marking it bad and rebooting into {old}");
                let marked = RaucClient::connect(self.inner.config.bus.clone())
                    .and_then(|rauc| rauc.mark(MarkState::Bad, "booted"));
                let why = format!("health check failed: {reason}");
                match marked {
                    Err(e) => {
                        let why = format!(
                            "{why}; could not mark slot {slot} bad ({e}); it is not marked good, so the bootloader \
                             falls back to {old} after its boot attempts"
                        );
                        self.inner.update(|j| j.fail(Phase::Failed, job::UNHEALTHY, why).map_err(drop))
                    }
                    Ok(_) => {
                        let boot_id = self.inner.boot_id();
                        let detail = format!("{why}; slot {slot} marked bad; rebooting into {old}");
                        self.inner.update(|j| {
                            j.reboot_boot_id = boot_id;
                            j.enter(Phase::Rebooting, detail.clone()).map_err(drop)?;
                            j.error = Some(job::JobError { code: job::UNHEALTHY.into(), message: why.clone() });
                            Ok(())
                        });
                        match (self.inner.config.reboot)() {
                            Ok(()) => self.job().expect("the job just updated"),
                            Err(e) => {
                                let why = format!(
                                    "{why}; slot {slot} marked bad, but the reboot failed ({e}): {old} boots at the next reboot"
                                );
                                self.inner.update(|j| j.fail(Phase::Failed, job::UNHEALTHY, why).map_err(drop))
                            }
                        }
                    }
                }
            }
        };
        Ok(job)
    }

    /// Waits for the worker thread, if one runs (tests, orderly shutdown).
    pub fn wait(&self) {
        let worker = self.inner.worker.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(worker) = worker {
            let _ = worker.join();
        }
    }

    fn spawn_worker(&self) {
        let inner = Arc::clone(&self.inner);
        let mut worker = self.inner.worker.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = worker.take() {
            let _ = old.join();
        }
        let spawned = std::thread::Builder::new().name("os-update".into()).spawn(move || inner.run());
        match spawned {
            Ok(handle) => *worker = Some(handle),
            Err(e) => {
                drop(worker);
                self.inner.update(|j| {
                    j.fail(Phase::Failed, "internal", format!("cannot start update thread: {e}")).map_err(drop)
                });
            }
        }
    }
}

/// What RAUC says about the running system: `BootSlot` and the `bundle.version`
/// of the slot with that bootname.
pub fn observe_boot(rauc: &RaucClient) -> Result<BootObservation, RaucError> {
    let boot_slot = rauc.boot_slot()?;
    let booted_version = rauc
        .slot_status()?
        .into_iter()
        .find(|s| s.bootname.as_deref() == Some(boot_slot.as_str()))
        .and_then(|s| s.bundle_version);
    Ok(BootObservation { boot_slot, booted_version })
}

fn new_job_id() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("os-{ms}")
}

/// The longest wait between download attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Ends the pipeline with a failure: `code` and message recorded in the job.
struct Stop(&'static str, String);

impl From<RaucError> for Stop {
    fn from(e: RaucError) -> Self {
        let code = match e {
            RaucError::Refused { .. } | RaucError::Unverifiable { .. } => "rauc-refused",
            RaucError::NoBus { .. } | RaucError::NoService { .. } | RaucError::ServiceLost => "rauc-unavailable",
            _ => "rauc",
        };
        Stop(code, e.to_string())
    }
}

impl Inner {
    /// Applies `change` to the job, persists it and tells the listener; a
    /// change the state machine refuses is logged and dropped.
    fn update(&self, change: impl FnOnce(&mut Job) -> Result<(), ()>) -> Job {
        let snapshot = {
            let mut slot = self.job.lock().unwrap_or_else(PoisonError::into_inner);
            let job = slot.as_mut().expect("update() needs a job");
            let before = job.clone();
            if change(job).is_err() {
                tracing::error!(job = %job.id, phase = job.phase.as_str(), "refused an invalid update job transition");
                *job = before;
            }
            if let Err(e) = self.store.save(job) {
                tracing::error!(job = %job.id, error = %e, "could not persist the update job; it will not survive a reboot");
            }
            job.clone()
        };
        (self.listener)(&snapshot);
        snapshot
    }

    fn progress(&self, percent: u8, detail: &str) {
        let changed = {
            let mut slot = self.job.lock().unwrap_or_else(PoisonError::into_inner);
            slot.as_mut().is_some_and(|j| j.set_progress(percent, detail))
        };
        if changed {
            self.update(|_| Ok(()));
        }
    }

    fn boot_id(&self) -> Option<String> {
        match std::fs::read_to_string(&self.config.boot_id_file) {
            Ok(id) => Some(id.trim().to_owned()).filter(|id| !id.is_empty()),
            Err(e) => {
                tracing::warn!(file = %self.config.boot_id_file.display(), error = %e, "cannot read the boot id");
                None
            }
        }
    }

    fn job_progress(&self) -> u8 {
        self.job.lock().unwrap_or_else(PoisonError::into_inner).as_ref().and_then(|j| j.progress).unwrap_or(0)
    }

    fn run(&self) {
        if let Err(Stop(code, message)) = self.pipeline() {
            tracing::error!(code, %message, "update job failed");
            let job = self.update(|j| j.fail(Phase::Failed, code, message).map_err(drop));
            self.discard_download(&job);
        }
    }

    /// Frees the data partition of a failed job's downloaded (or partly downloaded) bundle.
    fn discard_download(&self, job: &Job) {
        if !matches!(job.source, BundleSource::Url(_)) {
            return;
        }
        let Some(bundle) = job.bundle_path.as_deref().map(Path::new) else { return };
        for file in [bundle.to_owned(), download::partial_path(bundle)] {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %file.display(), error = %e, "could not delete a failed job's bundle"),
            }
        }
    }

    fn pipeline(&self) -> Result<(), Stop> {
        let job = self.update(|_| Ok(()));
        let rauc = RaucClient::connect(self.config.bus.clone())?;

        let bundle = match &job.source {
            BundleSource::Path(path) => {
                // RAUC's Info would only say "rauc info error" about a missing file.
                std::fs::metadata(path)
                    .map_err(|e| Stop("bad-bundle", format!("bundle {path} cannot be read: {e}")))?;
                PathBuf::from(path)
            }
            BundleSource::Url(url) => {
                let dest = self.config.data_dir.join("bundles").join(format!("{}.raucb", job.id));
                self.update(|j| {
                    j.bundle_path = Some(dest.display().to_string());
                    j.enter(Phase::Downloading, format!("downloading {url}")).map_err(drop)
                });
                if !dest.exists() {
                    self.fetch(url, &dest)?;
                }
                dest
            }
        };
        let bundle_str =
            bundle.to_str().ok_or_else(|| Stop("bad-request", format!("bundle path {bundle:?} is not UTF-8")))?;

        self.update(|j| {
            j.bundle_path = Some(bundle_str.to_owned());
            j.enter(Phase::Verifying, "RAUC is checking the bundle's signature").map_err(drop)
        });
        let info = rauc.bundle_info(bundle_str)?;
        if let Some(want) = job.expected_version.as_deref().filter(|&want| want != info.version) {
            return Err(Stop(
                "version-mismatch",
                format!("bundle version {} does not match the expected {want}", info.version),
            ));
        }
        let from_boot = rauc.boot_slot()?;
        self.update(|j| {
            j.bundle_version = Some(info.version.clone());
            j.from_boot = Some(from_boot.clone());
            j.enter(Phase::Installing, format!("installing version {}", info.version)).map_err(drop)
        });

        let outcome = rauc.install(bundle_str, |p| self.progress(p.percent, &p.message))?;
        let to_boot = rauc.slot_status()?.into_iter().find(|s| s.name == outcome.primary).and_then(|s| s.bootname);
        if matches!(job.source, BundleSource::Url(_))
            && let Err(e) = std::fs::remove_file(&bundle)
        {
            tracing::warn!(bundle = %bundle.display(), error = %e, "could not delete the installed bundle");
        }
        let detail = format!(
            "installed version {} into {} (boot {}); rebooting",
            info.version,
            outcome.primary,
            to_boot.as_deref().unwrap_or("?")
        );
        let boot_id = self.boot_id();
        self.update(|j| {
            j.to_slot = Some(outcome.primary.clone());
            j.to_boot = to_boot.clone();
            j.reboot_boot_id = boot_id;
            j.enter(Phase::Rebooting, detail).map_err(drop)
        });
        if let Err(e) = (self.config.reboot)() {
            // The slot is installed and primary: the job completes on whatever reboot comes next.
            tracing::error!(error = %e, "reboot after the update failed");
            let detail = format!("installed, but the reboot failed ({e}); the update completes on the next reboot");
            self.update(|j| {
                j.detail = detail;
                Ok(())
            });
        }
        Ok(())
    }

    fn fetch(&self, url: &str, dest: &Path) -> Result<(), Stop> {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Stop("download", format!("cannot create {}: {e}", dir.display())))?;
        }
        let limits = &self.config.download;
        let mut delay = limits.retry_delay;
        let mut attempt = 1;
        loop {
            let result = download::download(url, dest, limits, |received, total| {
                if let Some(total) = total.filter(|&t| t > 0) {
                    let percent = (received.saturating_mul(100) / total).min(100) as u8;
                    self.progress(percent, &format!("downloading {url}"));
                }
            });
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && attempt < limits.attempts => {
                    tracing::warn!(url, attempt, error = %e, retry_in = ?delay, "bundle download interrupted; will resume");
                    self.progress(self.job_progress(), &format!("{e}; resuming in {}s", delay.as_secs()));
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                    attempt += 1;
                }
                Err(e) => return Err(Stop("download", e.to_string())),
            }
        }
    }
}
