//! The `os.update` job as a pure state machine: phases, the transitions
//! allowed between them, and the decisions taken after a boot. No I/O here;
//! the runner persists the [`Job`] after every change.

use serde::{Deserialize, Serialize};

/// Where an update job stands. Serialized in kebab-case (`health-check`,
/// `rolled-back`): the job file and vigild's MQTT reports use these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Accepted, not started.
    Queued,
    /// Fetching the bundle over HTTP(S) to the data partition.
    Downloading,
    /// RAUC checks the bundle's signature and manifest.
    Verifying,
    /// RAUC writes the inactive slot.
    Installing,
    /// Installed; the device reboots into the new slot.
    Rebooting,
    /// Booted into the new slot; waiting for vigild's health verdict.
    HealthCheck,
    /// The new slot is healthy and marked good.
    Succeeded,
    /// The update did not happen, or the new slot was unhealthy.
    Failed,
    /// The device came back up on the old slot (or an unexpected version).
    RolledBack,
}

impl Phase {
    /// Whether the job is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::RolledBack)
    }

    /// The phase's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Downloading => "downloading",
            Phase::Verifying => "verifying",
            Phase::Installing => "installing",
            Phase::Rebooting => "rebooting",
            Phase::HealthCheck => "health-check",
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
            Phase::RolledBack => "rolled-back",
        }
    }

    fn may_become(self, next: Phase) -> bool {
        use Phase::*;
        match (self, next) {
            (a, _) if a.is_terminal() => false,
            (_, Failed) => true,
            (Queued, Downloading | Verifying) => true,
            // Interrupted phases restart (a download resumes) after vigild restarts.
            (Downloading, Downloading | Verifying) => true,
            (Verifying, Verifying | Installing) => true,
            (Installing, Verifying | Installing | Rebooting) => true,
            (Rebooting | HealthCheck, HealthCheck | Succeeded | RolledBack) => true,
            // Unhealthy: the new slot is marked bad and the device reboots into the old one.
            (HealthCheck, Rebooting) => true,
            _ => false,
        }
    }
}

/// Where the bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "location")]
pub enum BundleSource {
    /// A bundle already on the device (an absolute path).
    Path(String),
    /// An `http://` or `https://` URL, downloaded to the data partition first
    /// (Debian's and our image's RAUC 1.8 are built without streaming).
    Url(String),
}

impl BundleSource {
    /// Parses what an operator sent: an absolute path or an HTTP(S) URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with("http://") || s.starts_with("https://") {
            Ok(BundleSource::Url(s.to_owned()))
        } else if s.starts_with('/') {
            Ok(BundleSource::Path(s.to_owned()))
        } else {
            Err(format!("bundle {s:?} is neither an absolute path nor an http(s):// URL"))
        }
    }
}

/// A failure with a stable machine-readable code for MQTT reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Stable code: `bad-bundle`, `download`, `rauc-refused`, `version-mismatch`,
    /// `rauc-unavailable`, `rauc`, `mark`, `unhealthy`, `rolled-back`, `internal`.
    pub code: String,
    /// What happened, for people.
    pub message: String,
}

/// One `os.update` job: what was asked and how far it got. This is also the
/// job file's format, so it keeps its fields across versions of vigild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id, as returned to the requester.
    pub id: String,
    /// The bundle asked for.
    pub source: BundleSource,
    /// The version the requester expects the bundle to carry, if any.
    pub expected_version: Option<String>,
    /// The current phase.
    pub phase: Phase,
    /// Progress within the phase, 0-100, when the phase reports one.
    pub progress: Option<u8>,
    /// The latest human-readable step ("Copying image to rootfs.1").
    pub detail: String,
    /// The local bundle RAUC installs (the download target for URLs).
    pub bundle_path: Option<String>,
    /// The bundle's version as RAUC read it from the manifest.
    pub bundle_version: Option<String>,
    /// The bootname the device ran when the install began (`A`).
    pub from_boot: Option<String>,
    /// The slot RAUC installed into and made primary (`rootfs.1`).
    pub to_slot: Option<String>,
    /// That slot's bootname (`B`).
    pub to_boot: Option<String>,
    /// The kernel's boot id when the job asked for the reboot: finding the
    /// same id at startup means the device has not rebooted yet.
    pub reboot_boot_id: Option<String>,
    /// Why the job failed or rolled back.
    pub error: Option<JobError>,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("update job {id} cannot go from {from} to {to}")]
pub struct InvalidTransition {
    /// The job.
    pub id: String,
    /// Its phase.
    pub from: &'static str,
    /// The refused phase.
    pub to: &'static str,
}

impl Job {
    /// A new queued job.
    pub fn new(id: String, source: BundleSource, expected_version: Option<String>) -> Self {
        Self {
            id,
            source,
            expected_version,
            phase: Phase::Queued,
            progress: None,
            detail: String::new(),
            bundle_path: None,
            bundle_version: None,
            from_boot: None,
            to_slot: None,
            to_boot: None,
            reboot_boot_id: None,
            error: None,
        }
    }

    /// Moves to `next`, resetting the progress.
    pub fn enter(&mut self, next: Phase, detail: impl Into<String>) -> Result<(), InvalidTransition> {
        if !self.phase.may_become(next) {
            return Err(InvalidTransition { id: self.id.clone(), from: self.phase.as_str(), to: next.as_str() });
        }
        self.phase = next;
        self.progress = None;
        self.detail = detail.into();
        Ok(())
    }

    /// Ends the job as `Failed` or `RolledBack` with a coded error.
    pub fn fail(&mut self, phase: Phase, code: &str, message: impl Into<String>) -> Result<(), InvalidTransition> {
        let message = message.into();
        self.enter(phase, message.clone())?;
        self.error = Some(JobError { code: code.to_owned(), message });
        Ok(())
    }

    /// Records progress; returns whether the whole percentage changed (worth reporting).
    pub fn set_progress(&mut self, percent: u8, detail: &str) -> bool {
        let percent = percent.min(100);
        let changed = self.progress != Some(percent) || self.detail != detail;
        self.progress = Some(percent);
        if self.detail != detail {
            self.detail = detail.to_owned();
        }
        changed
    }
}

/// What a booted system sees of itself, from RAUC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootObservation {
    /// RAUC's `BootSlot`: the bootname the kernel command line says we booted (`B`).
    pub boot_slot: String,
    /// `bundle.version` of that slot in RAUC's slot status, if RAUC installed it.
    pub booted_version: Option<String>,
}

/// What to do with a job found in the job file at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupAction {
    /// No job, or a finished one.
    Nothing,
    /// vigild stopped mid-pipeline (power loss, crash): run it again; a
    /// download resumes where it stopped.
    Rerun,
    /// The job rebooted the device: look at which slot came up.
    ObserveBoot,
    /// The job asked for a reboot that has not happened yet (vigild only
    /// restarted): judging the slot now would mistake it for a rollback.
    AwaitReboot,
}

/// The pure decision for a job found at startup; `boot_id` is the kernel's
/// current boot id, when readable.
pub fn startup_action(job: Option<&Job>, boot_id: Option<&str>) -> StartupAction {
    let Some(job) = job else { return StartupAction::Nothing };
    match job.phase {
        p if p.is_terminal() => StartupAction::Nothing,
        Phase::Queued | Phase::Downloading | Phase::Verifying | Phase::Installing => StartupAction::Rerun,
        Phase::Rebooting if boot_id.is_some() && job.reboot_boot_id.as_deref() == boot_id => StartupAction::AwaitReboot,
        _ => StartupAction::ObserveBoot,
    }
}

/// After a boot: did we come up on the updated slot with the expected version?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootDecision {
    /// Yes: run the health check, then mark the slot good or leave it.
    HealthCheck,
    /// No: the bootloader fell back, or the slot holds something else.
    RolledBack(String),
    /// The new slot failed its health check, was marked bad, and booted anyway.
    StillUnhealthy(String),
}

/// The error code of a job whose new slot failed vigild's health check.
pub const UNHEALTHY: &str = "unhealthy";

/// Decides from the slot the job installed (`to_boot`, `bundle_version`) and
/// what RAUC reports about the running system.
///
/// The booted slot comes from RAUC's `BootSlot` (the bootloader's
/// `rauc.slot=` on the kernel command line) and the running version from
/// `bundle.version` in RAUC's slot status for that slot: both survive in
/// RAUC's own records, whereas `/etc/os-release` only describes the image
/// and cannot tell a rollback to an equal version apart.
pub fn boot_decision(job: &Job, seen: &BootObservation) -> BootDecision {
    if let Some(error) = job.error.as_ref().filter(|e| e.code == UNHEALTHY) {
        // The new slot failed its health check and was marked bad before this boot.
        return match &job.to_boot {
            Some(to) if *to == seen.boot_slot => BootDecision::StillUnhealthy(format!(
                "{}; the bootloader booted slot {to} again instead of falling back",
                error.message
            )),
            _ => BootDecision::RolledBack(format!("{}; rolled back to slot {}", error.message, seen.boot_slot)),
        };
    }
    if let Some(to) = &job.to_boot
        && *to != seen.boot_slot
    {
        return BootDecision::RolledBack(format!(
            "booted slot {} instead of the updated slot {to}: the bootloader fell back",
            seen.boot_slot
        ));
    }
    if let Some(want) = &job.bundle_version
        && seen.booted_version.as_deref() != Some(want.as_str())
    {
        return BootDecision::RolledBack(format!(
            "booted slot {} runs version {}, not the installed {want}",
            seen.boot_slot,
            seen.booted_version.as_deref().unwrap_or("(unknown)")
        ));
    }
    BootDecision::HealthCheck
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed_job() -> Job {
        let mut job = Job::new("j1".into(), BundleSource::Path("/data/u.raucb".into()), Some("2.0".into()));
        job.enter(Phase::Verifying, "").unwrap();
        job.enter(Phase::Installing, "").unwrap();
        job.enter(Phase::Rebooting, "").unwrap();
        job.from_boot = Some("A".into());
        job.to_boot = Some("B".into());
        job.bundle_version = Some("2.0".into());
        job
    }

    #[test]
    fn phases_follow_the_pipeline_and_terminal_phases_are_final() {
        let mut job = Job::new("j".into(), BundleSource::Url("http://x/u.raucb".into()), None);
        assert!(job.enter(Phase::Installing, "").is_err(), "must verify first");
        job.enter(Phase::Downloading, "").unwrap();
        job.enter(Phase::Downloading, "resumed").unwrap();
        job.enter(Phase::Verifying, "").unwrap();
        assert!(job.enter(Phase::Succeeded, "").is_err(), "cannot succeed before installing");
        job.fail(Phase::Failed, "rauc-refused", "RAUC refused the bundle: x").unwrap();
        assert_eq!(job.error.as_ref().unwrap().code, "rauc-refused");
        let e = job.enter(Phase::Verifying, "").unwrap_err();
        assert_eq!(e.to_string(), "update job j cannot go from failed to verifying");
    }

    #[test]
    fn progress_reports_only_changes() {
        let mut job = Job::new("j".into(), BundleSource::Path("/b".into()), None);
        assert!(job.set_progress(10, "Copying"));
        assert!(!job.set_progress(10, "Copying"));
        assert!(job.set_progress(10, "Done"));
        assert!(job.set_progress(250, "Done"));
        assert_eq!(job.progress, Some(100));
    }

    #[test]
    fn startup_action_per_phase() {
        let mut job = Job::new("j".into(), BundleSource::Path("/b".into()), None);
        assert_eq!(startup_action(None, Some("boot-1")), StartupAction::Nothing);
        assert_eq!(startup_action(Some(&job), Some("boot-1")), StartupAction::Rerun);
        job = installed_job();
        job.reboot_boot_id = Some("boot-1".into());
        assert_eq!(startup_action(Some(&job), Some("boot-2")), StartupAction::ObserveBoot);
        assert_eq!(startup_action(Some(&job), None), StartupAction::ObserveBoot, "no boot id: trust RAUC");
        job.enter(Phase::HealthCheck, "").unwrap();
        assert_eq!(startup_action(Some(&job), Some("boot-2")), StartupAction::ObserveBoot);
        job.enter(Phase::Succeeded, "").unwrap();
        assert_eq!(startup_action(Some(&job), Some("boot-2")), StartupAction::Nothing);
    }

    #[test]
    fn a_restart_without_a_reboot_waits_for_the_reboot() {
        let mut job = installed_job();
        job.reboot_boot_id = Some("boot-1".into());
        assert_eq!(startup_action(Some(&job), Some("boot-1")), StartupAction::AwaitReboot);
    }

    #[test]
    fn boot_on_the_new_slot_with_the_new_version_goes_to_health_check() {
        let seen = BootObservation { boot_slot: "B".into(), booted_version: Some("2.0".into()) };
        assert_eq!(boot_decision(&installed_job(), &seen), BootDecision::HealthCheck);
    }

    #[test]
    fn boot_on_the_old_slot_is_a_rollback() {
        let seen = BootObservation { boot_slot: "A".into(), booted_version: Some("1.0".into()) };
        let BootDecision::RolledBack(why) = boot_decision(&installed_job(), &seen) else { panic!() };
        assert_eq!(why, "booted slot A instead of the updated slot B: the bootloader fell back");
    }

    #[test]
    fn boot_on_the_new_slot_with_another_version_is_a_rollback() {
        let seen = BootObservation { boot_slot: "B".into(), booted_version: Some("1.9".into()) };
        let BootDecision::RolledBack(why) = boot_decision(&installed_job(), &seen) else { panic!() };
        assert_eq!(why, "booted slot B runs version 1.9, not the installed 2.0");
    }

    #[test]
    fn bundle_sources_parse() {
        assert_eq!(BundleSource::parse("https://d/u.raucb"), Ok(BundleSource::Url("https://d/u.raucb".into())));
        assert_eq!(BundleSource::parse("/data/u.raucb"), Ok(BundleSource::Path("/data/u.raucb".into())));
        assert!(BundleSource::parse("ftp://x").is_err());
        assert!(BundleSource::parse("u.raucb").is_err());
    }

    #[test]
    fn job_file_format_uses_wire_names() {
        let mut job = installed_job();
        job.enter(Phase::HealthCheck, "").unwrap();
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["phase"], "health-check");
        assert_eq!(json["source"], serde_json::json!({"kind": "path", "location": "/data/u.raucb"}));
        let back: Job = serde_json::from_value(json).unwrap();
        assert_eq!(back, job);
    }
}
