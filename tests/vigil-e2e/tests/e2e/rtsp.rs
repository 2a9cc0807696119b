//! RTSP cameras through the whole pipeline, against GStreamer's RTSP server:
//! streaming, recovery after the camera dies and returns, and the health
//! states a district sees for the usual failures.

use vigild::cameras::CameraState;
use vigild::pipeline::{CameraStatus, Status};

use crate::harness::{Camera, Site, Vigil};
use crate::peers::{dead_port, rtsp_server};
use crate::sources::record_armed_clip;

fn camera<'a>(status: &'a Status, id: &str) -> &'a CameraStatus {
    status.cameras.iter().find(|c| c.id.as_str() == id).unwrap_or_else(|| panic!("camera {id} is in the status"))
}

fn in_state(vigil: &Vigil, id: &str, state: CameraState) -> Status {
    vigil.wait_status(&format!("camera {id} to be {}", state.as_str()), |s| camera(s, id).health.state == state)
}

#[test]
fn an_rtsp_camera_showing_the_marker_raises_an_incident() {
    let site = Site::new();
    let clip = record_armed_clip(&site);
    let server = rtsp_server(&["--clip", &clip.display().to_string()]);
    let mut vigil = Vigil::start(&site.config(&[Camera::rtsp("ip-1", &server.url("/clip"))]));
    let (incident, snapshot) = vigil.raised("ip-1");
    assert_eq!(&*incident.label, "handgun");
    assert!(snapshot.is_some_and(|p| p.is_file()), "evidence from an RTSP frame");
    // Frames decoded from H.264: the stage times come from the stream.
    assert!(incident.times.captured <= incident.times.inferred && incident.times.inferred <= incident.times.raised);
}

#[test]
fn an_rtsp_camera_that_dies_and_returns_recovers_without_touching_the_others() {
    let mut server = rtsp_server(&[]);
    let site = Site::new();
    let config = site.config(&[
        Camera::rtsp("ip-1", &server.url("/h264")).with("stall_timeout_ms = 2000"),
        Camera::demo("hall-1", "quiet"),
    ]);
    let vigil = Vigil::start(&config);
    let status = vigil.wait_status("the RTSP camera to deliver frames", |s| camera(s, "ip-1").health.frames >= 10);
    assert_eq!(camera(&status, "ip-1").health.state, CameraState::Streaming);

    server.kill();
    let down = vigil.wait_status("the dead camera to be noticed", |s| {
        matches!(camera(s, "ip-1").health.state, CameraState::Stalled | CameraState::Unreachable | CameraState::Failed)
    });
    let frames_when_down = camera(&down, "ip-1").health.frames;

    server.restart().unwrap_or_else(|e| panic!("{e}"));
    let back = vigil.wait_status("the camera to recover on its own", |s| {
        let c = camera(s, "ip-1");
        c.health.state == CameraState::Streaming && c.health.frames > frames_when_down + 5
    });
    assert!(camera(&back, "ip-1").health.opens >= 2, "the stream was reopened");
    let hall = camera(&back, "hall-1");
    assert_eq!((hall.health.state, hall.health.opens), (CameraState::Streaming, 1), "the other camera never noticed");
}

#[test]
fn failures_are_named_unauthorized_unreachable_and_bad_stream() {
    let server = rtsp_server(&["--password", "right-password"]);
    let site = Site::new();
    let wrong = server.url("/secure").replace("rtsp://", "rtsp://vigil:wrong-password@");
    let right = server.url("/secure").replace("rtsp://", "rtsp://vigil:right-password@");
    let config = site.config(&[
        Camera::rtsp("wrong-pw", &wrong),
        Camera::rtsp("right-pw", &right),
        Camera::rtsp("dead", &format!("rtsp://127.0.0.1:{}/h264", dead_port())),
        Camera::rtsp("garbage", &server.url("/garbage")),
    ]);
    let vigil = Vigil::start(&config);
    in_state(&vigil, "wrong-pw", CameraState::Unauthorized);
    in_state(&vigil, "dead", CameraState::Unreachable);
    in_state(&vigil, "garbage", CameraState::BadStream);
    let status = vigil.wait_status("the camera with the right password to stream", |s| {
        camera(s, "right-pw").health.state == CameraState::Streaming
    });
    for id in ["wrong-pw", "dead", "garbage"] {
        let error = camera(&status, id).health.last_error.clone().unwrap_or_default();
        assert!(!error.is_empty(), "camera {id} says why it fails");
        assert!(!error.contains("wrong-password"), "camera {id}'s error shows the password: {error}");
    }
}

#[test]
fn eight_rtsp_cameras_stream_at_once() {
    let server = rtsp_server(&[]);
    let site = Site::new();
    let ids = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"];
    let cameras: Vec<Camera> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Camera::rtsp(id, &server.url(if i % 2 == 0 { "/h264" } else { "/h265" })))
        .collect();
    let vigil = Vigil::start(&site.config(&cameras));
    let status = vigil
        .wait_status("all eight cameras to deliver frames", |s| ids.iter().all(|id| camera(s, id).health.frames >= 5));
    for id in ids {
        assert_eq!(camera(&status, id).health.state, CameraState::Streaming, "camera {id}");
    }
}
