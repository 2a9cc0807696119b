use std::sync::OnceLock;
use std::time::Duration;

use vigil_core::{ManualClock, Moment};

use super::*;
use crate::SourceErrorKind;

fn scene(options: DemoOptions) -> DemoScene {
    let clock = Arc::new(ManualClock::new(Moment { mono: Duration::ZERO, wall: Duration::from_secs(1_700_000_000) }));
    DemoScene::new(CameraId::new("demo"), clock, options).unwrap()
}

fn fresh(scenario: Scenario) -> DemoScene {
    scene(DemoOptions { scenario, ..DemoOptions::default() })
}

/// A default-size scene shared by the tests that only render, since drawing
/// the background takes a good fraction of a debug build's time budget.
fn scenario(scenario: Scenario) -> &'static DemoScene {
    static SCENES: OnceLock<[DemoScene; 3]> = OnceLock::new();
    let scenes = SCENES.get_or_init(|| [Scenario::Hallway, Scenario::Quiet, Scenario::Armed].map(fresh));
    match scenario {
        Scenario::Hallway => &scenes[0],
        Scenario::Quiet => &scenes[1],
        Scenario::Armed => &scenes[2],
    }
}

/// Frame index of scene time `seconds` at the default 10 fps.
fn at(seconds: f64) -> u64 {
    (seconds * 10.0).round() as u64
}

/// The colour rule the demo model relies on: nothing but a marker is magenta-ish or cyan-ish.
fn breaks_colour_rule(p: &[u8]) -> bool {
    let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
    r.min(b) - g > 60 || g.min(b) - r > 60
}

fn inside(x: usize, y: usize, b: &[f32; 4]) -> bool {
    let (x, y) = (x as f32, y as f32);
    x >= b[0] && x < b[2] && y >= b[1] && y < b[3]
}

/// Pixels outside the marker boxes that break the colour rule, as (x, y).
fn rule_breakers(s: &DemoScene, index: u64) -> Vec<(usize, usize)> {
    let w = s.options().width as usize;
    let boxes = s.marker_boxes(index);
    let rgb = s.render(index);
    let mut bad = Vec::new();
    // Plain loops: these scans run in debug builds over millions of pixels.
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        if breaks_colour_rule(p) {
            let (x, y) = (i % w, i / w);
            if !boxes.iter().any(|(_, b)| inside(x, y, b)) {
                bad.push((x, y));
            }
        }
    }
    bad
}

/// For each marker kind, the bounding box `[x1, y1, x2, y2)` of the pixels
/// exactly its colour and how many there are; one pass for both.
fn marker_pixels(rgb: &[u8], width: usize) -> [Option<([f32; 4], usize)>; 2] {
    let colours = [MarkerKind::Handgun.rgb(), MarkerKind::Phone.rgb()];
    let mut found = [(usize::MAX, usize::MAX, 0, 0, 0); 2];
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        // Both marker colours are saturated in blue; most pixels are not.
        if p[2] != 255 {
            continue;
        }
        if let Some(k) = colours.iter().position(|c| c == p) {
            let (x, y) = (i % width, i / width);
            let (x1, y1, x2, y2, n) = found[k];
            found[k] = (x1.min(x), y1.min(y), x2.max(x + 1), y2.max(y + 1), n + 1);
        }
    }
    found.map(|(x1, y1, x2, y2, n)| (n > 0).then_some(([x1 as f32, y1 as f32, x2 as f32, y2 as f32], n)))
}

#[test]
fn same_index_same_bytes() {
    let (a, b) = (scenario(Scenario::Hallway), fresh(Scenario::Hallway));
    for i in [0, 1, 85, 599, 12_345] {
        assert_eq!(a.render(i), b.render(i), "frame {i}");
    }
    assert_ne!(a.render(0), a.render(1), "people move between frames");
}

#[test]
fn frames_are_numbered_from_0_and_show_their_index() {
    let mut s = fresh(Scenario::Armed);
    let reference = scenario(Scenario::Armed);
    for i in 0..3 {
        let f = s.next_frame().unwrap().unwrap();
        assert_eq!((f.seq, f.width, f.height, f.camera.as_str()), (i, 640, 360, "demo"));
        assert_eq!(f.captured.unix_ms(), 1_700_000_000_000);
        assert_eq!(&f.rgb[..], &reference.render(i)[..]);
    }
}

#[test]
fn nothing_but_markers_breaks_the_colour_rule() {
    let mut checked = 0;
    for (sc, indices) in [
        // Every 1.3 s across the whole 60 s hallway script, so every walker is
        // seen at many places and with and without what they carry.
        (Scenario::Hallway, (0..47).map(|k| k * 13).collect::<Vec<u64>>()),
        (Scenario::Armed, (0..6).map(|k| k * 37).collect()),
        (Scenario::Quiet, (0..6).map(|k| k * 53).collect()),
    ] {
        let s = scenario(sc);
        for i in indices {
            let bad = rule_breakers(s, i);
            assert!(bad.is_empty(), "{sc:?} frame {i}: {} pixels, first at {:?}", bad.len(), bad.first());
            checked += 1;
        }
    }
    assert_eq!(checked, 59);
}

#[test]
fn other_frame_sizes_keep_the_colour_rule() {
    for (width, height) in [(320, 180), (1280, 720), (400, 400)] {
        let s = scene(DemoOptions { width, height, ..DemoOptions::default() });
        for i in [at(10.0), at(25.0)] {
            assert!(rule_breakers(&s, i).is_empty(), "{width}x{height} frame {i}");
        }
    }
}

#[test]
fn ground_truth_boxes_are_exactly_the_marker_pixels() {
    let hallway = scenario(Scenario::Hallway);
    let armed = scenario(Scenario::Armed);
    // Every 1.1 s across the hallway script, then the armed gunman at both ends of his beat.
    let frames = (0..55).map(|k| (&hallway, k * 11)).chain((0..8).map(|k| (&armed, k * 25)));
    let mut seen = 0;
    for (s, i) in frames {
        let truth = s.marker_boxes(i);
        let found = marker_pixels(&s.render(i), 640);
        for (kind, found) in [MarkerKind::Handgun, MarkerKind::Phone].into_iter().zip(found) {
            let want: Vec<[f32; 4]> = truth.iter().filter(|(k, _)| *k == kind).map(|(_, b)| *b).collect();
            match (found, want.as_slice()) {
                (None, []) => {}
                (Some((found, n)), [b]) => {
                    assert_eq!(found, *b, "{kind:?} in frame {i}");
                    // Solid: the box is all marker, so its area is its pixel count.
                    assert_eq!(n as f32, (b[2] - b[0]) * (b[3] - b[1]), "{kind:?} in frame {i}");
                    seen += 1;
                }
                (found, want) => panic!("{kind:?} in frame {i}: pixels {found:?}, ground truth {want:?}"),
            }
        }
    }
    assert!(seen > 25, "only {seen} markers checked");
}

#[test]
fn hallway_timeline() {
    let s = scenario(Scenario::Hallway);
    let kinds = |t: f64| s.marker_boxes(at(t)).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    for (t, want) in [
        (0.0, vec![]),
        (7.9, vec![]),
        (8.0, vec![MarkerKind::Handgun]),
        (15.9, vec![MarkerKind::Handgun]),
        (16.0, vec![]),
        (21.9, vec![]),
        (22.0, vec![MarkerKind::Phone]),
        (29.9, vec![MarkerKind::Phone]),
        (30.0, vec![]),
        (37.9, vec![]),
        (38.0, vec![MarkerKind::Handgun]),
        (43.9, vec![MarkerKind::Handgun]),
        (44.0, vec![]),
        (59.9, vec![]),
        // The script repeats every minute.
        (68.0, vec![MarkerKind::Handgun]),
        (82.0, vec![MarkerKind::Phone]),
        (3608.0, vec![MarkerKind::Handgun]),
    ] {
        assert_eq!(kinds(t), want, "at {t} s");
    }
}

#[test]
fn quiet_never_shows_a_marker_and_armed_always_does() {
    let quiet = scenario(Scenario::Quiet);
    let armed = scenario(Scenario::Armed);
    for i in (0..1200).step_by(7) {
        assert!(quiet.marker_boxes(i).is_empty(), "quiet frame {i}");
        let boxes = armed.marker_boxes(i);
        assert_eq!(boxes.len(), 1, "armed frame {i}");
        assert_eq!(boxes[0].0, MarkerKind::Handgun);
    }
}

#[test]
fn scripted_markers_are_whole_and_in_frame() {
    // A marker cut off by the frame edge would be a smaller box than the model was shown.
    let s = scenario(Scenario::Hallway);
    let armed = scenario(Scenario::Armed);
    let boxes = (0..600).flat_map(|i| s.marker_boxes(i)).chain((0..600).step_by(3).flat_map(|i| armed.marker_boxes(i)));
    for (kind, b) in boxes {
        let size = (b[2] - b[0], b[3] - b[1]);
        let want = match kind {
            MarkerKind::Handgun => (26.0, 16.0),
            MarkerKind::Phone => (14.0, 22.0),
        };
        assert_eq!(size, want, "{kind:?} at {b:?}");
    }
}

#[test]
fn markers_scale_with_the_frame() {
    let s = scene(DemoOptions { width: 1280, height: 720, scenario: Scenario::Armed, ..DemoOptions::default() });
    let (_, b) = s.marker_boxes(0)[0];
    assert_eq!((b[2] - b[0], b[3] - b[1]), (52.0, 32.0));
}

#[test]
fn scene_time_follows_fps() {
    // At 30 fps the handgun first shows at frame 240, as at frame 80 at 10 fps.
    let s = scene(DemoOptions { fps: 30.0, ..DemoOptions::default() });
    assert!(s.marker_boxes(239).is_empty());
    assert_eq!(s.marker_boxes(240), scenario(Scenario::Hallway).marker_boxes(80));
}

#[test]
fn bad_options_are_named() {
    let clock = Arc::new(ManualClock::new(Moment { mono: Duration::ZERO, wall: Duration::ZERO }));
    for (options, needle) in [
        (DemoOptions { width: 0, ..DemoOptions::default() }, "width"),
        (DemoOptions { height: 100_000, ..DemoOptions::default() }, "height"),
        (DemoOptions { fps: 0.0, ..DemoOptions::default() }, "fps"),
        (DemoOptions { fps: f32::NAN, ..DemoOptions::default() }, "fps"),
    ] {
        let err = DemoScene::new(CameraId::new("demo"), clock.clone(), options).unwrap_err();
        assert_eq!(err.kind(), SourceErrorKind::InvalidOptions);
        assert!(err.to_string().contains(needle), "{err}");
    }
}
