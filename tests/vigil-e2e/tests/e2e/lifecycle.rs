//! Starting and stopping: a model the config names wrongly is refused before
//! anything starts, and shutdown drains the pipeline and lets every thread go.

use vigil_core::incident::{Actor, Command};
use vigil_detector::{Detector, ErrorKind};
use vigild::CommandRequest;
use vigild::cameras::CameraState;

use crate::harness::{Camera, Site, Vigil, models};

#[test]
fn a_missing_model_or_a_wrong_label_count_is_refused_naming_the_file() {
    let site = Site::new();
    let quiet = [Camera::demo("gym-1", "quiet")];
    let good = site.text(false, &quiet);
    let yolo = models().join("demo-yolo.xml");

    // A relative path is resolved against the config file's folder, and the error names the result.
    let missing = site.load(&good.replace(&format!("model = '{}'", yolo.display()), "model = 'models/absent.xml'"));
    assert_eq!(missing.detector.model, site.path().join("models/absent.xml"));
    let err = Detector::load(&missing.detector).err().expect("a missing model is refused");
    assert_eq!(err.kind, ErrorKind::Missing, "{err}");
    assert!(err.to_string().contains(&site.path().join("models/absent.xml").display().to_string()), "{err}");

    let labels = format!("labels_file = '{}'", models().join("demo.labels").display());
    let three = site.load(&good.replace(&labels, "labels = [\"handgun\", \"phone\", \"rifle\"]"));
    let err = Detector::load(&three.detector).err().expect("a label map of the wrong length is refused");
    assert_eq!(err.kind, ErrorKind::Output, "{err}");
    let message = err.to_string();
    assert!(message.contains(&yolo.display().to_string()), "{message}");
    assert!(message.contains("2 classes but the label map has 3"), "{message}");
}

#[test]
fn shutdown_drains_the_pipeline_and_lets_every_thread_go() {
    let site = Site::new();
    let config = site.config(&[Camera::demo("hall-1", "armed"), Camera::demo("gym-1", "quiet")]);
    let mut vigil = Vigil::start(&config);
    vigil.pending("hall-1");
    vigil.wait_status("both cameras' frames inferred", |s| s.cameras.iter().all(|c| c.slot.taken >= 10));
    let commands = vigil.commands();

    let status = vigil.shutdown();
    assert_eq!(status.supervisor.incidents, 1);
    assert_eq!(status.supervisor.store_errors, 0);
    assert_eq!(status.inference_errors, 0);
    assert!(status.inferences > 0);
    for c in &status.cameras {
        assert_eq!((&c.health.state, c.health.opens), (&CameraState::Streaming, 1), "camera {}", c.id);
        // Not the slot counters: a camera that stops quickly takes its slot, counters and all, with it.
        assert!(c.health.frames >= 10, "camera {}: {c:?}", c.id);
    }
    assert!(status.supervisor.decision_latency.quantile(0.5).is_some(), "per-frame decisions were recorded");
    assert!(status.supervisor.frames > 0);

    // The supervisor has let go of the notices, and a late command is refused rather than left hanging.
    vigil.drain();
    let (reply, verdict) = crossbeam_channel::bounded(1);
    let late = CommandRequest { command: Command::DrillStart, actor: Actor::System, reply: Some(reply) };
    assert!(commands.send(late).is_err(), "the command channel is closed after shutdown");
    assert!(verdict.recv().is_err());
}

#[test]
fn the_final_status_counts_every_frame_inferred_before_shutdown() {
    let site = Site::new();
    let config = site.config(&[Camera::demo("hall-1", "armed"), Camera::demo("gym-1", "quiet")]);
    let mut vigil = Vigil::start(&config);
    vigil.wait_status("both cameras' frames inferred", |s| s.cameras.iter().all(|c| c.slot.taken >= 10));

    // Shutdown lets the detector finish the frames it holds and the
    // supervisor judge them, so the final counts must agree.
    let status = vigil.shutdown();
    assert_eq!(
        status.inferences, status.supervisor.frames,
        "the final status says {} frames were inferred but the supervisor judged {}: Running::shutdown reads the \
         detector's (and the cameras') counters before the pool drains and the supervisor's after",
        status.inferences, status.supervisor.frames
    );
}
