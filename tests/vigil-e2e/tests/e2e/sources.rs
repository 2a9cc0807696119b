//! Where frames come from: recorded footage, and cameras that fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use vigil_core::{CameraId, SystemClock};
use vigil_sources::{
    DemoOptions, DemoScene, FrameRate, FrameSource, Scenario, SourceError, SourceErrorKind, Y4mWriter,
};
use vigild::cameras::CameraState;

use crate::harness::{Camera, Site, Vigil};

#[test]
fn a_recorded_y4m_file_raises_an_incident() {
    let site = Site::new();
    let clip = record_armed_clip(&site);

    let mut vigil = Vigil::start(&site.config(&[Camera::file("entrance-1", &clip)]));
    let (incident, snapshot) = vigil.raised("entrance-1");
    assert_eq!(&*incident.label, "handgun");
    assert!(incident.frame_seq < 40 * 3, "raised from frame {} of a looped 40-frame clip", incident.frame_seq);
    assert!(snapshot.is_some_and(|p| p.is_file()), "the evidence of a recorded clip is written too");
    let status = vigil.status();
    assert_eq!(status.cameras[0].health.state, CameraState::Streaming);
}

/// 40 frames of the armed demo scene at 10 fps, recorded to a .y4m in the site's folder.
pub fn record_armed_clip(site: &Site) -> std::path::PathBuf {
    let clip = site.path().join("armed.y4m");
    let options = DemoOptions { scenario: Scenario::Armed, pace: false, ..DemoOptions::default() };
    let mut scene =
        DemoScene::new(CameraId::new("recorder"), Arc::new(SystemClock::new()), options).expect("a demo scene");
    let mut writer =
        Y4mWriter::create(&clip, options.width, options.height, FrameRate::per_second(10)).expect("creating the clip");
    for _ in 0..40 {
        let frame = scene.next_frame().expect("rendering a frame").expect("the demo scene never ends");
        writer.write_frame(&frame).expect("recording a frame");
    }
    writer.finish().expect("finishing the clip");
    clip
}

#[test]
fn a_failing_camera_retries_without_stopping_the_others() {
    let site = Site::new();
    let config = site.config(&[Camera::demo("broken", "armed"), Camera::demo("ok", "armed")]);
    let clock = Arc::new(SystemClock::new());
    let attempts = Arc::new(AtomicUsize::new(0));
    let opener = {
        let clock = clock.clone();
        let attempts = attempts.clone();
        move |camera: &CameraId| -> Result<Box<dyn FrameSource>, SourceError> {
            if camera.as_str() == "broken" {
                attempts.fetch_add(1, Ordering::SeqCst);
                return Err(SourceError::new(
                    SourceErrorKind::Unreachable,
                    "rtsp://10.0.0.9/stream: connection refused".into(),
                ));
            }
            let options = DemoOptions { scenario: Scenario::Armed, pace: true, ..DemoOptions::default() };
            Ok(Box::new(DemoScene::new(camera.clone(), clock.clone(), options)?))
        }
    };
    let mut vigil = Vigil::launch(&config, clock, Some(Arc::new(opener)));

    let (incident, _) = vigil.raised("ok");
    assert_eq!(incident.camera.as_str(), "ok");
    let is_ok = |c: &&vigild::pipeline::CameraStatus| c.id.as_str() == "ok";
    let ok_frames = vigil.status().cameras.iter().find(is_ok).expect("the ok camera is in the status").health.frames;

    // The broken camera says why it fails, and keeps trying on its backoff.
    let is_broken = |c: &&vigild::pipeline::CameraStatus| c.id.as_str() == "broken";
    let status = vigil.wait_status("the broken camera to report its failure", |s| {
        s.cameras.iter().find(is_broken).is_some_and(|c| c.health.state == CameraState::Unreachable)
    });
    let broken = status.cameras.iter().find(is_broken).expect("the broken camera is in the status");
    let why = broken.health.last_error.as_deref().unwrap_or_default();
    assert!(why.contains("connection refused"), "the status says what failed: {why}");
    assert_eq!((broken.health.opens, broken.health.frames), (0, 0));
    vigil.wait_status("the broken camera to try again", |_| attempts.load(Ordering::SeqCst) >= 3);

    // Meanwhile the other camera streams on, from the stream it opened once.
    let status = vigil.wait_status("the ok camera to stream on", |s| {
        s.cameras.iter().find(is_ok).is_some_and(|c| c.health.frames >= ok_frames + 10)
    });
    let ok = status.cameras.iter().find(is_ok).expect("the ok camera is in the status");
    assert_eq!((&ok.health.state, ok.health.opens), (&CameraState::Streaming, 1), "the ok camera never stopped");
}
