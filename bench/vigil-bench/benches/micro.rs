//! Micro-benchmarks of the per-frame work around inference: letterboxing,
//! decoding a YOLOv8n head, NMS and confirmation. `cargo xtask bench --micro`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vigil_core::confirm::{ConfirmPolicy, Confirmer};
use vigil_core::{BBox, CameraId, Detection, Frame, FrameResult, Moment};
use vigil_detector::decode::{self, Layout};
use vigil_detector::letterbox::Letterbox;

fn frame(w: u32, h: u32) -> Frame {
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
    Frame::new(CameraId::new("bench"), 0, Moment::default(), w, h, Arc::from(rgb)).unwrap()
}

fn letterbox(c: &mut Criterion) {
    let mut out = vec![0f32; 3 * 640 * 640];
    for (w, h) in [(640, 360), (1280, 720)] {
        let f = frame(w, h);
        let lb = Letterbox::new(w, h, 640, 640);
        c.bench_function(&format!("letterbox {w}x{h} -> 640x640"), |b| {
            b.iter(|| lb.fill_nchw(black_box(&f), &mut out))
        });
    }
}

fn decoding(c: &mut Criterion) {
    // A YOLOv8n head on an empty scene: every class score tiny, a few real boxes.
    let anchors = 8400;
    let mut t = vec![0.0001f32; 84 * anchors];
    for a in 0..anchors {
        t[a] = (a % 640) as f32;
        t[anchors + a] = (a / 14) as f32;
        t[2 * anchors + a] = 20.0;
        t[3 * anchors + a] = 40.0;
    }
    for a in (0..anchors).step_by(700) {
        t[(4 + a % 80) * anchors + a] = 0.9;
    }
    let layout = Layout::Yolo { classes: 80, anchors, transposed: false };
    c.bench_function("decode yolov8n head [1,84,8400] + nms", |b| {
        b.iter(|| decode::nms(decode::decode(layout, black_box(&t), 0.25, 640, 640), 0.45))
    });
}

fn confirmation(c: &mut Criterion) {
    let mut confirmer = Confirmer::new(CameraId::new("bench"), ConfirmPolicy::default());
    let detections: Vec<Detection> = (0..5)
        .map(|i| Detection {
            class: 0,
            label: Arc::from("handgun"),
            score: 0.8,
            bbox: BBox { x1: i as f32 * 100.0, y1: 50.0, x2: i as f32 * 100.0 + 30.0, y2: 70.0 },
        })
        .collect();
    let mut seq = 0u64;
    c.bench_function("confirm 5 detections", |b| {
        b.iter(|| {
            seq += 1;
            let at = Moment { mono: Duration::from_millis(seq * 100), wall: Duration::ZERO };
            let r = FrameResult {
                camera: CameraId::new("bench"),
                seq,
                width: 640,
                height: 360,
                captured: at,
                inferred: at,
                detections: detections.clone(),
            };
            black_box(confirmer.observe(&r, at))
        })
    });
}

criterion_group!(benches, letterbox, decoding, confirmation);
criterion_main!(benches);
