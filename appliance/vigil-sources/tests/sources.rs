//! The crate through its public API only: sources behind the seam, and the
//! demo scene recorded to a .y4m file and played back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use vigil_core::{CameraId, Clock, ManualClock, Moment};
use vigil_sources::{
    DemoOptions, DemoScene, FrameRate, FrameSource, MarkerKind, Opener, Scenario, SourceError, Y4mOptions, Y4mSource,
    Y4mWriter,
};

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(Moment { mono: Duration::ZERO, wall: Duration::from_secs(1_700_000_000) }))
}

/// Records `frames` frames of an armed demo scene to `dir/demo.y4m`.
fn record_demo(dir: &TempDir, frames: u64) -> (std::path::PathBuf, DemoScene) {
    let path = dir.path().join("demo.y4m");
    let options = DemoOptions { scenario: Scenario::Armed, ..DemoOptions::default() };
    let mut scene = DemoScene::new(CameraId::new("demo"), clock(), options).unwrap();
    let mut writer = Y4mWriter::create(&path, 640, 360, FrameRate::per_second(10)).unwrap();
    for _ in 0..frames {
        writer.write_frame(&scene.next_frame().unwrap().unwrap()).unwrap();
    }
    writer.finish().unwrap();
    (path, scene)
}

#[test]
fn an_opener_hands_out_boxed_sources_by_camera() {
    let dir = TempDir::new().unwrap();
    let (path, _) = record_demo(&dir, 2);
    let opener = move |camera: &CameraId| -> Result<Box<dyn FrameSource>, SourceError> {
        match camera.as_str() {
            "recorded" => Ok(Box::new(Y4mSource::open(&path, camera.clone(), clock(), Y4mOptions::default())?)),
            _ => Ok(Box::new(DemoScene::new(camera.clone(), clock(), DemoOptions::default())?)),
        }
    };
    let opener: &dyn Opener = &opener;
    for id in ["recorded", "live"] {
        let mut source = opener.open(&CameraId::new(id)).unwrap();
        let frame = source.next_frame().unwrap().unwrap();
        assert_eq!((frame.camera.as_str(), frame.seq, frame.width, frame.height), (id, 0, 640, 360));
    }
}

#[test]
fn a_recorded_demo_plays_back_with_its_markers() {
    let dir = TempDir::new().unwrap();
    let (path, scene) = record_demo(&dir, 3);
    let mut source = Y4mSource::open(&path, CameraId::new("demo"), clock(), Y4mOptions::default()).unwrap();
    for i in 0..3 {
        let frame = source.next_frame().unwrap().unwrap();
        let [(MarkerKind::Handgun, [x1, y1, x2, y2])] = scene.marker_boxes(i)[..] else {
            panic!("no handgun in frame {i}")
        };
        // Away from its edges, where 4:2:0 chroma blends with the background, the marker keeps its colour.
        for y in (y1 as usize + 2)..(y2 as usize - 2) {
            for x in (x1 as usize + 2)..(x2 as usize - 2) {
                let p = &frame.rgb[(y * 640 + x) * 3..][..3];
                assert!(p.iter().zip([255u8, 0, 255]).all(|(&g, w)| g.abs_diff(w) <= 3), "{p:?} at {x},{y}");
            }
        }
    }
    assert!(source.next_frame().unwrap().is_none());
}

/// Run with `cargo test --release -p vigil-sources --test sources -- --ignored --nocapture`.
#[test]
#[ignore = "a timing report, meaningful only in release builds"]
fn timing_report() {
    const FRAMES: u64 = 300;
    let scene = DemoScene::new(CameraId::new("demo"), clock(), DemoOptions::default()).unwrap();
    let start = Instant::now();
    for i in 0..FRAMES {
        std::hint::black_box(scene.render(i));
    }
    let render = start.elapsed() / FRAMES as u32;

    let dir = TempDir::new().unwrap();
    let (path, _) = record_demo(&dir, 100);
    let options = Y4mOptions { loop_at_end: true, ..Y4mOptions::default() };
    let mut source = Y4mSource::open(&path, CameraId::new("demo"), clock(), options).unwrap();
    let start = Instant::now();
    for _ in 0..FRAMES {
        std::hint::black_box(source.next_frame().unwrap());
    }
    let read = start.elapsed() / FRAMES as u32;

    let mut writer = Y4mWriter::new(std::io::sink(), 640, 360, FrameRate::per_second(10)).unwrap();
    let frame = Y4mSource::open(&path, CameraId::new("demo"), clock(), Y4mOptions::default())
        .unwrap()
        .next_frame()
        .unwrap()
        .unwrap();
    let start = Instant::now();
    for _ in 0..FRAMES {
        writer.write_frame(&frame).unwrap();
    }
    let write = start.elapsed() / FRAMES as u32;

    println!(
        "640x360: demo render {render:?}/frame, y4m read+convert {read:?}/frame, y4m convert+write {write:?}/frame"
    );
    if !cfg!(debug_assertions) {
        assert!(render < Duration::from_micros(500), "render {render:?}");
        assert!(read < Duration::from_millis(5), "read {read:?}");
    }
}
