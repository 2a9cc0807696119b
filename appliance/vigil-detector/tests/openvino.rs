//! Integration tests against the real OpenVINO runtime and the models that
//! `models/generate.py` builds. `cargo xtask test` generates the models and
//! sets `OPENVINO_LIB`; run alone, these tests fail saying so.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_config::{DetectorConfig, OutputLayout, PerformanceHint};
use vigil_core::{BBox, CameraId, Frame, Moment, SystemClock};
use vigil_detector::decode::Layout;
use vigil_detector::{Detector, ErrorKind, FrameQueue, Pool};

fn models() -> PathBuf {
    let dir = std::env::var_os("VIGIL_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models"));
    assert!(
        dir.join("demo-yolo.xml").is_file(),
        "no generated models in {}: run `cargo xtask test`, which builds them with models/generate.py",
        dir.display()
    );
    dir
}

fn config(model: &str) -> DetectorConfig {
    DetectorConfig {
        model: models().join(model),
        labels: vec![Arc::from("handgun"), Arc::from("phone")],
        layout: OutputLayout::Auto,
        device: "CPU".into(),
        cache_dir: std::env::temp_dir().join(format!("vigil-test-cache-{}", std::process::id())),
        openvino_lib: None,
        infer_requests: None,
        performance_hint: PerformanceHint::Throughput,
        confidence: 0.25,
        iou: 0.45,
    }
}

/// A beige frame with a magenta marker ("handgun") and a cyan one ("phone").
fn scene(w: u32, h: u32, gun: BBox, phone: BBox) -> Frame {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let inside = |b: &BBox| fx >= b.x1 && fx < b.x2 && fy >= b.y1 && fy < b.y2;
            let px = if inside(&gun) {
                [255, 0, 255]
            } else if inside(&phone) {
                [0, 255, 255]
            } else if (x / 40 + y / 40) % 2 == 0 {
                [200, 190, 170]
            } else {
                [90, 80, 120]
            };
            rgb.extend_from_slice(&px);
        }
    }
    Frame::new(CameraId::new("test"), 0, Moment::default(), w, h, Arc::from(rgb)).unwrap()
}

const GUN: BBox = BBox { x1: 300.0, y1: 150.0, x2: 326.0, y2: 166.0 };
const PHONE: BBox = BBox { x1: 100.0, y1: 200.0, x2: 114.0, y2: 222.0 };

fn assert_finds_both(detector: &mut Detector, frame: &Frame, gun: BBox, phone: BBox) {
    let found = detector.detect(frame).unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let g = found.iter().find(|d| &*d.label == "handgun").expect("a handgun");
    let p = found.iter().find(|d| &*d.label == "phone").expect("a phone");
    assert!(g.score > 0.8, "{g:?}");
    assert!(g.bbox.iou(&gun) > 0.85, "handgun box {:?} vs {gun:?}", g.bbox);
    assert!(p.bbox.iou(&phone) > 0.8, "phone box {:?} vs {phone:?}", p.bbox);
}

#[test]
fn yolo_ir_finds_the_markers_where_they_are() {
    let mut d = Detector::load(&config("demo-yolo.xml")).unwrap();
    assert_eq!(d.info().layout, Layout::Yolo { classes: 2, anchors: 2738, transposed: false });
    assert_eq!(d.info().input, (640, 640));
    assert!(d.info().requests >= 1);
    assert_finds_both(&mut d, &scene(640, 360, GUN, PHONE), GUN, PHONE);
}

#[test]
fn a_larger_frame_is_letterboxed_and_boxes_map_back() {
    let mut d = Detector::load(&config("demo-yolo.xml")).unwrap();
    let scale = |b: BBox| BBox { x1: b.x1 * 2.0, y1: b.y1 * 2.0, x2: b.x2 * 2.0, y2: b.y2 * 2.0 };
    assert_finds_both(&mut d, &scene(1280, 720, scale(GUN), scale(PHONE)), scale(GUN), scale(PHONE));
}

#[test]
fn ssd_layout_decodes_the_same() {
    let mut d = Detector::load(&config("demo-ssd.xml")).unwrap();
    assert!(matches!(d.info().layout, Layout::Ssd { .. }), "{:?}", d.info().layout);
    assert_finds_both(&mut d, &scene(640, 360, GUN, PHONE), GUN, PHONE);
}

#[test]
fn onnx_loads_directly() {
    let mut d = Detector::load(&config("demo-yolo.onnx")).unwrap();
    assert_finds_both(&mut d, &scene(640, 360, GUN, PHONE), GUN, PHONE);
}

#[test]
fn an_empty_scene_finds_nothing() {
    let far = BBox { x1: -100.0, y1: -100.0, x2: -90.0, y2: -90.0 };
    let mut d = Detector::load(&config("demo-yolo.xml")).unwrap();
    assert!(d.detect(&scene(640, 360, far, far)).unwrap().is_empty());
}

#[test]
fn wrong_label_count_is_refused_naming_the_file() {
    let mut cfg = config("demo-yolo.xml");
    cfg.labels.push(Arc::from("rifle"));
    let err = Detector::load(&cfg).err().expect("refused");
    assert_eq!(err.kind, ErrorKind::Output);
    let msg = err.to_string();
    assert!(msg.contains("demo-yolo.xml: output [1, 6, 2738] has 2 classes but the label map has 3"), "{msg}");
}

#[test]
fn unknown_layout_is_refused() {
    let err = Detector::load(&config("bad-layout.onnx")).err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("bad-layout.onnx: unknown output layout [1, 3]"), "{msg}");
}

#[test]
fn forcing_the_wrong_layout_is_refused() {
    let mut cfg = config("demo-yolo.xml");
    cfg.layout = OutputLayout::Ssd;
    let msg = Detector::load(&cfg).err().expect("refused").to_string();
    assert!(msg.contains("is not an SSD DetectionOutput"), "{msg}");
}

#[test]
fn missing_weights_and_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("lonely.xml");
    std::fs::copy(models().join("demo-yolo.xml"), &xml).unwrap();
    let mut cfg = config("x");
    cfg.model = xml;
    let err = Detector::load(&cfg).err().expect("refused");
    assert_eq!(err.kind, ErrorKind::Missing);
    assert!(err.to_string().contains("lonely.bin are missing"), "{err}");

    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a model").unwrap();
    cfg.model = junk;
    let err = Detector::load(&cfg).err().expect("refused");
    assert_eq!(err.kind, ErrorKind::Read, "{err}");
    assert!(err.to_string().contains("junk.onnx: OpenVINO cannot read it"), "{err}");

    cfg.model = dir.path().join("absent.xml");
    assert_eq!(Detector::load(&cfg).err().expect("refused").kind, ErrorKind::Missing);
}

#[test]
fn an_absent_device_is_refused_with_what_is_available() {
    let mut cfg = config("demo-yolo.xml");
    cfg.device = "NPU".into();
    let err = Detector::load(&cfg).err().expect("this machine has no NPU");
    assert_eq!(err.kind, ErrorKind::Device);
    assert!(err.to_string().contains("device NPU is not present on this machine (available: CPU"), "{err}");
}

#[test]
fn auto_falls_back_to_the_cpu_and_fills_the_model_cache() {
    let mut cfg = config("demo-yolo.xml");
    cfg.device = "AUTO:NPU,GPU,CPU".into();
    let cache = tempfile::tempdir().unwrap();
    cfg.cache_dir = cache.path().to_path_buf();
    let mut d = Detector::load(&cfg).unwrap();
    assert!(d.info().execution_devices.contains("CPU"), "{}", d.info().execution_devices);
    assert_finds_both(&mut d, &scene(640, 360, GUN, PHONE), GUN, PHONE);
    let cached = std::fs::read_dir(cache.path()).unwrap().count();
    assert!(cached > 0, "OpenVINO wrote nothing to the model cache");
}

struct Frames(Mutex<Vec<Frame>>);

impl FrameQueue for Frames {
    fn take(&self) -> Option<Frame> {
        self.0.lock().unwrap().pop()
    }
}

#[test]
fn the_pool_runs_every_frame_on_several_requests() {
    let mut cfg = config("demo-yolo.xml");
    cfg.infer_requests = Some(3);
    let d = Detector::load(&cfg).unwrap();
    assert_eq!(d.info().requests, 3);
    let frames: Vec<Frame> = (0..12).map(|seq| Frame { seq, ..scene(640, 360, GUN, PHONE) }).collect();
    let (tx, rx) = crossbeam_channel::bounded(4);
    let pool = Pool::start(d, Arc::new(Frames(Mutex::new(frames))), tx, Arc::new(SystemClock::new()));
    let stats = pool.stats();
    let mut seqs: Vec<u64> = (0..12)
        .map(|_| {
            let inf = rx.recv_timeout(Duration::from_secs(60)).expect("a result");
            assert_eq!(inf.result.detections.len(), 2);
            assert!(inf.result.inferred >= inf.result.captured);
            inf.result.seq
        })
        .collect();
    pool.join();
    seqs.sort();
    assert_eq!(seqs, (0..12).collect::<Vec<_>>());
    assert_eq!(stats.inferences.load(std::sync::atomic::Ordering::Relaxed), 12);
    assert!(stats.busy_time() > Duration::ZERO);
}
