//! Raising incidents from live cameras: one incident per threat, with its
//! evidence, stage times and audit trail, and none without a threat.

use std::sync::Arc;

use vigil_core::incident::{Directive, IncidentId, Stage};
use vigil_core::playbook::SrpAction;
use vigil_core::{CameraId, Clock, SystemClock};
use vigil_sources::{FrameSource, SourceError};
use vigild::Notice;

use crate::harness::{Camera, Scripted, Site, Vigil, location, name};

#[test]
fn an_armed_camera_raises_one_incident_with_evidence_and_an_audit_trail() {
    let site = Site::new();
    let config = site.config(&[Camera::demo("hall-1", "armed")]);
    let mut vigil = Vigil::start(&config);

    let (incident, snapshot) = vigil.raised("hall-1");
    assert_eq!(incident.id, IncidentId(1), "the first incident of a fresh box");
    assert_eq!(&*incident.label, "handgun");
    assert_eq!(incident.location, location("hall-1"), "the camera's location from the config");
    assert!(!incident.drill);
    let camera_name = vigil.seen().iter().find_map(|n| match n {
        Notice::Raised { camera_name, .. } => Some(camera_name.clone()),
        _ => None,
    });
    assert_eq!(camera_name, Some(name("hall-1")));

    let t = incident.times;
    assert!(
        t.captured.mono <= t.inferred.mono && t.inferred.mono <= t.confirmed.mono && t.confirmed.mono <= t.raised.mono,
        "stage times out of order: {t:?}"
    );

    let snapshot = snapshot.expect("the notice names the evidence snapshot");
    let store = site.store();
    assert_eq!(snapshot, store.snapshot_path(incident.id));
    let jpeg = std::fs::read(&snapshot).expect("the snapshot is on disk");
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "not a JPEG: starts with {:02X?}", &jpeg[..jpeg.len().min(4)]);
    assert!(jpeg.len() > 5_000, "a {} byte snapshot is too small to show the scene", jpeg.len());
    let picture = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).expect("the snapshot decodes");
    assert_eq!((picture.width(), picture.height()), (640, 360), "the snapshot is the whole camera frame");

    let pending = vigil.reached(incident.id, Stage::PendingVerification);
    assert_eq!(pending.active, vec![SrpAction::Secure]);
    let actions = vigil.actions();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].directive, Directive::Activate(SrpAction::Secure));
    assert_eq!(
        (actions[0].incident, &actions[0].camera, &actions[0].location),
        (incident.id, &incident.camera, &incident.location)
    );
    assert!(!actions[0].drill);

    // The threat stays in view; the pipeline goes on inferring its frames.
    let after_raise = vigil.status().supervisor.frames;
    let status =
        vigil.wait_status("20 more frames through the supervisor", |s| s.supervisor.frames >= after_raise + 20);
    vigil.catch_up();
    let raised = vigil.seen().iter().filter(|n| matches!(n, Notice::Raised { .. })).count();
    assert_eq!(raised, 1, "one incident, not one per frame:\n{}", vigil.history());
    assert_eq!(status.supervisor.incidents, 1);
    assert_eq!(status.supervisor.store_errors, 0);
    assert_eq!(vigil.actions().len(), 1, "the automatic action is dispatched once");

    let loaded = store.load().expect("the store reads back");
    assert_eq!(loaded.next_id, 2);
    assert_eq!(loaded.open.len(), 1, "exactly one incident on disk");
    let on_disk = &loaded.open[0];
    assert_eq!(
        (on_disk.id, on_disk.stage, &on_disk.active),
        (incident.id, Stage::PendingVerification, &pending.active)
    );
    assert_eq!((&*on_disk.label, &on_disk.location), ("handgun", &incident.location));

    let audit_file = store.incident_dir(incident.id).join("audit.jsonl");
    assert!(audit_file.is_file(), "{} is missing", audit_file.display());
    let audit = store.audit(incident.id).expect("the audit trail reads back");
    let steps: Vec<(&str, &str, Option<&str>, Option<&str>)> =
        audit.iter().map(|e| (e.event.as_str(), e.actor.as_str(), e.from.as_deref(), e.to.as_deref())).collect();
    assert_eq!(
        steps[..3],
        [
            ("transition", "system", None, Some("detected")),
            ("action", "system", None, Some("activate:secure")),
            ("transition", "system", Some("detected"), Some("pending-verification")),
        ],
        "{audit:#?}"
    );
    assert!(audit[0].reason.contains("handgun"), "{:?}", audit[0].reason);
    assert!(steps[3..].iter().all(|(event, ..)| *event == "redetected"), "{audit:#?}");
}

#[test]
fn a_quiet_camera_raises_nothing_while_its_frames_are_inferred() {
    let site = Site::new();
    let config = site.config(&[Camera::demo("gym-1", "quiet")]);
    let mut vigil = Vigil::start(&config);

    // About three seconds of the camera's frames, every one inferred and judged.
    let status =
        vigil.wait_status("30 frames inferred and judged", |s| s.inferences >= 30 && s.supervisor.frames >= 30);
    assert_eq!(status.inference_errors, 0);
    assert!(status.cameras[0].health.frames >= 30, "{:?}", status.cameras[0].health);

    vigil.catch_up();
    assert!(vigil.seen().is_empty(), "a quiet hallway raised:\n{}", vigil.history());
    assert_eq!(status.supervisor.incidents, 0);
    assert!(vigil.actions().is_empty());
    let loaded = site.store().load().expect("the store reads back");
    assert!(loaded.open.is_empty());
    assert_eq!(loaded.next_id, 1, "no incident folder was created");
}

/// Armed for 1.5 s, out of view for 1.5 s, and so on.
fn comes_and_goes(seq: u64) -> bool {
    (seq / 15).is_multiple_of(2)
}

#[test]
fn a_threat_seen_again_is_a_persisted_redetection_not_a_new_incident() {
    let site = Site::new();
    // A short track timeout so the threat's track is forgotten while it is out of view.
    let config = site.config(&[Camera::demo("hall-1", "armed").with("confirmation = { track_timeout_ms = 300 }")]);
    let clock = Arc::new(SystemClock::new());
    let frames_clock: Arc<dyn Clock> = clock.clone();
    let opener = move |camera: &CameraId| -> Result<Box<dyn FrameSource>, SourceError> {
        Ok(Box::new(Scripted::new(camera, frames_clock.clone(), comes_and_goes)?))
    };
    let mut vigil = Vigil::launch(&config, clock, Some(Arc::new(opener)));

    let incident = vigil.pending("hall-1");
    let score = vigil.wait_for("the threat to be confirmed again after leaving the view", |seen| {
        seen.iter().find_map(|n| match n {
            Notice::Redetected { incident: id, score } if *id == incident.id => Some(*score),
            _ => None,
        })
    });
    assert!(score >= 0.5, "a redetection passes the same confirmation rule: {score}");
    assert_eq!(vigil.seen().iter().filter(|n| matches!(n, Notice::Raised { .. })).count(), 1, "{}", vigil.history());
    assert_eq!(vigil.actions().len(), 1, "a redetection dispatches nothing new: {:?}", vigil.actions());

    // Announced means persisted: the audit trail has it, and so does the
    // incident's own record, which is what a restart resumes from.
    let store = site.store();
    let audit = store.audit(incident.id).expect("the audit trail reads back");
    assert!(audit.iter().any(|e| e.event == "redetected"), "{audit:#?}");
    let on_disk = store.load().expect("the store reads back").open.remove(0);
    assert!(
        on_disk.redetections >= 1,
        "incident.json still says {} redetections after a Redetected notice: the supervisor appends the audit \
         line but never saves the incident on a redetection, so a restart forgets them",
        on_disk.redetections
    );
}
