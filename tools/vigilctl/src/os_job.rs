//! The device's OS update job as it reports it on `os/update` (retained,
//! after every phase or progress change; see `docs/mqtt.md`), read
//! tolerantly since `vigilctl` and the device may be of different versions,
//! and the pure decision of what `os update` does with each report.

use serde_json::Value;

use crate::failure::Failure;

/// Where `os update` stops following: the device waits for its reboot here.
pub const REBOOTING: &str = "rebooting";

/// One report of an update job.
#[derive(Debug, Clone, PartialEq)]
pub struct OsJob {
    /// The job id the device answered `os.update` with.
    pub id: String,
    /// `queued`, `downloading`, `verifying`, `installing`, `rebooting`,
    /// `health-check`, `succeeded`, `failed` or `rolled-back`.
    pub phase: String,
    /// Progress within the phase, 0-100, when the phase reports one.
    pub progress: Option<u64>,
    /// The device's latest words about the job.
    pub detail: String,
    /// The bundle asked for: the path on the device or the URL.
    pub bundle: Option<String>,
    /// The version the requester asked for.
    pub expected_version: Option<String>,
    /// The bundle's version, once RAUC read it.
    pub bundle_version: Option<String>,
    /// The boot slot the device ran when the install began.
    pub from_boot: Option<String>,
    /// The slot installed into.
    pub to_slot: Option<String>,
    /// That slot's boot name.
    pub to_boot: Option<String>,
    /// Why the job failed or rolled back: stable code and message.
    pub error: Option<(String, String)>,
    /// The report as received, for `--json`.
    pub raw: Value,
}

impl OsJob {
    /// Reads a report; says what is wrong with one that is not a job.
    pub fn parse(payload: &[u8]) -> Result<OsJob, String> {
        let raw: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let id = text(&raw, "id").filter(|id| !id.is_empty()).ok_or("not an OS update job: no \"id\"")?;
        let phase = text(&raw, "phase").filter(|p| !p.is_empty()).ok_or("not an OS update job: no \"phase\"")?;
        let error = raw
            .get("error")
            .filter(|e| !e.is_null())
            .map(|e| (text(e, "code").unwrap_or_else(|| "unknown".into()), text(e, "message").unwrap_or_default()));
        Ok(OsJob {
            id,
            phase,
            progress: raw.get("progress").and_then(Value::as_u64),
            detail: text(&raw, "detail").unwrap_or_default(),
            bundle: raw.get("source").and_then(|s| text(s, "location")),
            expected_version: text(&raw, "expected_version"),
            bundle_version: text(&raw, "bundle_version"),
            from_boot: text(&raw, "from_boot"),
            to_slot: text(&raw, "to_slot"),
            to_boot: text(&raw, "to_boot"),
            error,
            raw,
        })
    }

    /// Whether the job is over: `succeeded`, `failed` or `rolled-back`.
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase.as_str(), "succeeded" | "failed" | "rolled-back")
    }

    /// The job's end as `os update`'s result: a failed or rolled-back job is
    /// a failure with the job's code; `None` while it runs.
    pub fn outcome(&self) -> Option<Result<(), Failure>> {
        match self.phase.as_str() {
            "succeeded" | REBOOTING => Some(Ok(())),
            "failed" | "rolled-back" => {
                let (code, message) = self.error.clone().unwrap_or_else(|| {
                    let code = if self.phase == "failed" { "failed" } else { "rolled-back" };
                    (code.to_string(), self.detail.clone())
                });
                Some(Err(Failure::UpdateFailed { code, message }))
            }
            _ => None,
        }
    }
}

/// What `os update` makes of a report on `os/update` while following one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Another job's report (the one retained from before), or a repeat.
    Ignore,
    /// Progress within the phase already shown.
    Progress(OsJob),
    /// The job entered a new phase and goes on.
    Phase(OsJob),
    /// The job reached the reboot or its end: stop following.
    Done(OsJob),
}

/// Follows the reports of one job: pure, fed every report received.
#[derive(Debug)]
pub struct Follower {
    id: String,
    last: Option<OsJob>,
}

impl Follower {
    /// Follows the job with `id`.
    pub fn new(id: impl Into<String>) -> Follower {
        Follower { id: id.into(), last: None }
    }

    /// The last report of the job, if any came.
    pub fn last(&self) -> Option<&OsJob> {
        self.last.as_ref()
    }

    /// Takes one report; a report that is not a job is an error to warn about.
    pub fn on_report(&mut self, payload: &[u8]) -> Result<Step, String> {
        if payload.is_empty() {
            return Ok(Step::Ignore); // a cleared retained message
        }
        let job = OsJob::parse(payload)?;
        if job.id != self.id || self.last.as_ref().is_some_and(|last| last.raw == job.raw) {
            return Ok(Step::Ignore);
        }
        let new_phase = self.last.as_ref().is_none_or(|last| last.phase != job.phase);
        self.last = Some(job.clone());
        Ok(if job.phase == REBOOTING || job.is_terminal() {
            Step::Done(job)
        } else if new_phase {
            Step::Phase(job)
        } else {
            Step::Progress(job)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(id: &str, phase: &str, progress: Option<u8>, detail: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": id, "source": {"kind": "path", "location": "/data/u.raucb"}, "expected_version": "2.0",
            "phase": phase, "progress": progress, "detail": detail, "bundle_path": "/data/u.raucb",
            "bundle_version": null, "from_boot": null, "to_slot": null, "to_boot": null,
            "reboot_boot_id": null, "error": null,
        }))
        .unwrap()
    }

    #[test]
    fn a_job_report_is_read_with_its_fields() {
        let mut doc: Value = serde_json::from_slice(&report("os-1", "failed", None, "no")).unwrap();
        doc["error"] = json!({"code": "unhealthy", "message": "no frames from hall-1"});
        doc["to_boot"] = json!("B");
        let job = OsJob::parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!((job.id.as_str(), job.phase.as_str(), job.to_boot.as_deref()), ("os-1", "failed", Some("B")));
        assert_eq!(job.bundle.as_deref(), Some("/data/u.raucb"));
        assert_eq!(job.error, Some(("unhealthy".into(), "no frames from hall-1".into())));
        assert_eq!(
            job.outcome(),
            Some(Err(Failure::UpdateFailed { code: "unhealthy".into(), message: "no frames from hall-1".into() }))
        );
        // Newer devices may add fields; only id and phase are required.
        let minimal = OsJob::parse(br#"{"id": "os-2", "phase": "installing", "extra": 1}"#).unwrap();
        assert_eq!((minimal.progress, minimal.outcome()), (None, None));
        for (bad, why) in
            [(&b"nope"[..], "not JSON"), (br#"{"phase": "queued"}"#, "no \"id\""), (br#"{"id": "x"}"#, "no \"phase\"")]
        {
            assert!(OsJob::parse(bad).unwrap_err().contains(why), "{why}");
        }
    }

    #[test]
    fn following_shows_each_phase_once_and_stops_at_the_reboot() {
        let mut f = Follower::new("os-2");
        let old = report("os-1", "succeeded", None, "slot B is healthy");
        assert_eq!(f.on_report(&old), Ok(Step::Ignore), "the job retained from before is not ours");
        assert_eq!(f.on_report(b""), Ok(Step::Ignore));
        let queued = report("os-2", "queued", None, "");
        assert!(matches!(f.on_report(&queued), Ok(Step::Phase(j)) if j.phase == "queued"));
        assert_eq!(f.on_report(&queued), Ok(Step::Ignore), "a repeat");
        assert!(matches!(f.on_report(&report("os-2", "installing", None, "installing 2.0")), Ok(Step::Phase(_))));
        let progress = f.on_report(&report("os-2", "installing", Some(40), "Copying image")).unwrap();
        assert!(matches!(progress, Step::Progress(j) if j.progress == Some(40)));
        let Ok(Step::Done(done)) = f.on_report(&report("os-2", "rebooting", None, "rebooting")) else { panic!() };
        assert_eq!(done.outcome(), Some(Ok(())));
        assert_eq!(f.last().unwrap().phase, "rebooting");
        assert!(f.on_report(b"{").is_err());
    }

    #[test]
    fn failed_and_rolled_back_jobs_end_the_follow_as_failures() {
        for phase in ["failed", "rolled-back"] {
            let mut f = Follower::new("os-3");
            let Ok(Step::Done(job)) = f.on_report(&report("os-3", phase, None, "the bootloader fell back")) else {
                panic!("{phase}")
            };
            let Some(Err(failure)) = job.outcome() else { panic!("{phase}") };
            assert_eq!(failure.exit_code(), 1);
            assert_eq!(failure.to_string(), format!("failed: {phase}: the bootloader fell back"), "no error object");
        }
        let mut f = Follower::new("os-4");
        assert!(matches!(f.on_report(&report("os-4", "succeeded", None, "")), Ok(Step::Done(_))));
    }
}
