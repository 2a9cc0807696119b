//! The crate through its public API: opening what is not a camera, and the
//! opt-in hardware test on a real one.
//!
//! Tiers: everything here but `hardware_*` runs anywhere. `hardware_*` needs a
//! camera and runs only when `VIGIL_V4L2_DEVICE` names one, e.g.
//! `VIGIL_V4L2_DEVICE=/dev/video0 cargo test -p vigil-v4l2 --test v4l2 -- --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_core::{CameraId, Clock, SystemClock};
use vigil_sources::{FrameSource, SourceErrorKind};
use vigil_v4l2::{PixelFormat, V4l2Options, V4l2Source};

fn open(options: V4l2Options) -> Result<V4l2Source, vigil_sources::SourceError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    V4l2Source::open(CameraId::new("lobby"), clock, options)
}

#[test]
fn a_missing_device_is_unreachable() {
    let err = open(V4l2Options::new("/dev/video-vigil-test-missing")).err().unwrap();
    assert_eq!(err.kind(), SourceErrorKind::Unreachable);
    assert!(err.to_string().starts_with("no such device /dev/video-vigil-test-missing"), "{err}");
}

#[test]
fn a_node_that_is_not_a_camera_is_unsupported() {
    let err = open(V4l2Options::new("/dev/null")).err().unwrap();
    assert_eq!(err.kind(), SourceErrorKind::Unsupported);
    assert_eq!(err.to_string(), "/dev/null is not a V4L2 device; give a /dev/videoN node");
}

#[test]
fn options_are_checked_before_the_device_is_touched() {
    let err = open(V4l2Options { fps: -1.0, ..V4l2Options::new("/dev/video-vigil-test-missing") }).err().unwrap();
    assert_eq!(err.kind(), SourceErrorKind::InvalidOptions);
}

/// Opt-in hardware test: streams from the camera named by `VIGIL_V4L2_DEVICE`
/// (optionally at `VIGIL_V4L2_SIZE=WxH`, `VIGIL_V4L2_FORMAT=mjpeg|yuyv`) and
/// checks frames arrive numbered, sized and stamped in order. Not run, and
/// says so, without the variable.
#[test]
fn hardware_opt_in_streams_from_a_real_camera() {
    let Some(device) = std::env::var_os("VIGIL_V4L2_DEVICE") else {
        eprintln!("hardware test NOT RUN: set VIGIL_V4L2_DEVICE=/dev/videoN to stream from a real camera");
        return;
    };
    let (width, height) = match std::env::var("VIGIL_V4L2_SIZE") {
        Ok(size) => {
            let (w, h) = size.split_once('x').expect("VIGIL_V4L2_SIZE is WxH");
            (w.parse().expect("width"), h.parse().expect("height"))
        }
        Err(_) => (1280, 720),
    };
    let format = match std::env::var("VIGIL_V4L2_FORMAT").as_deref() {
        Ok("mjpeg") => Some(PixelFormat::Mjpeg),
        Ok("yuyv") => Some(PixelFormat::Yuyv),
        _ => None,
    };
    let options = V4l2Options {
        width,
        height,
        fps: 30.0,
        format,
        fit: Some((640, 640)),
        stall_timeout: Duration::from_secs(5),
        ..V4l2Options::new(device)
    };
    let mut source = open(options).unwrap_or_else(|e| panic!("{e}"));
    let mode = source.mode().clone();
    eprintln!("hardware: mode {mode}; adjustments {:?}", source.adjustments());

    let frames = 60;
    let start = Instant::now();
    let mut previous = None;
    for seq in 0..frames {
        let frame = source.next_frame().unwrap_or_else(|e| panic!("frame {seq}: {e}")).expect("a camera never ends");
        assert_eq!(frame.seq, seq);
        assert!(frame.width <= 640 && frame.height <= 640, "{}x{} does not fit 640x640", frame.width, frame.height);
        assert_eq!(frame.rgb.len(), frame.width as usize * frame.height as usize * 3);
        if let Some(previous) = previous {
            assert!(frame.captured >= previous, "frame {seq} stamped before the one before it");
        }
        previous = Some(frame.captured);
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "hardware: {frames} frames in {secs:.2} s ({:.1} fps), {} corrupt frames skipped",
        f64::from(frames as u32) / secs,
        source.bad_frames()
    );
}
