//! Reloading the config while running: cameras are added, removed and
//! changed without touching the others, and a config that needs a restart
//! is refused with the running one kept.

use vigild::cameras::CameraState;

use crate::harness::{Camera, Site, Vigil};

#[test]
fn a_reload_adds_removes_and_changes_only_the_cameras_it_names() {
    let site = Site::new();
    let before = site.config(&[
        Camera::demo("keep", "quiet"),
        Camera::demo("drop", "quiet"),
        Camera::demo("retune", "quiet"),
        Camera::demo("move", "quiet"),
    ]);
    let mut vigil = Vigil::start(&before);
    vigil.wait_status("every camera to stream", |s| s.cameras.iter().all(|c| c.health.frames >= 3));

    let after = site.config(&[
        Camera::demo("keep", "quiet"),
        Camera::demo("retune", "quiet").with("confirmation = { hits = 2 }"),
        Camera::demo("move", "armed"),
        Camera::demo("new", "quiet"),
    ]);
    let report = vigil.reconfigure(after).expect("the reload is applied");
    let ids = |v: &[vigil_core::CameraId]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&report.added), ["new"]);
    assert_eq!(ids(&report.removed), ["drop"]);
    assert_eq!(ids(&report.restarted), ["move"], "a changed source restarts only that camera");
    assert_eq!(ids(&report.updated), ["retune"], "a changed rule keeps the stream");

    let status = vigil.wait_status("the new camera to stream", |s| {
        s.cameras.iter().any(|c| c.id.as_str() == "new" && c.health.frames >= 3)
    });
    let names: Vec<&str> = status.cameras.iter().map(|c| c.id.as_str()).collect();
    assert!(!names.contains(&"drop"), "{names:?}");
    for untouched in ["keep", "retune"] {
        let c = status.cameras.iter().find(|c| c.id.as_str() == untouched).expect("still there");
        assert_eq!((c.health.state, c.health.opens), (CameraState::Streaming, 1), "camera {untouched} was restarted");
    }
    // The moved camera now plays the armed scene: its new source is live.
    vigil.raised("move");
}

#[test]
fn a_reload_that_needs_a_restart_is_refused_and_the_running_config_kept() {
    let site = Site::new();
    let config = site.config(&[Camera::demo("hall-1", "armed")]);
    let mut vigil = Vigil::start(&config);
    let mut changed = config.clone();
    changed.detector.confidence = 0.5;
    let err = vigil.reconfigure(changed).expect_err("a detector change needs a restart");
    assert!(err.contains("[detector] changes take effect only when vigild restarts"), "{err}");
    // Still running on the old config: the armed camera raises its incident.
    vigil.raised("hall-1");
}
