//! Snapshot tests: exact pixels on the annotated buffer, then the JPEG.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_core::{BBox, CameraId, Frame, Moment};

use super::*;

const GREY: Rgb = [128; 3];
const CAPTION: &str = "INCIDENT 42  HALL-1  MAIN HALL B1 F1  2026-11-21 04:50:09Z  DRILL";

fn frame(width: u32, height: u32) -> Frame {
    let rgb: Arc<[u8]> = GREY.repeat(width as usize * height as usize).into();
    let at = Moment { mono: Duration::ZERO, wall: Duration::ZERO };
    Frame::new(CameraId::new("hall-1"), 7, at, width, height, rgb).unwrap()
}

fn annotation(x1: f32, y1: f32, x2: f32, y2: f32, label: &str, threat: bool) -> Annotation {
    Annotation { bbox: BBox { x1, y1, x2, y2 }, label: label.to_owned(), score: 0.91, threat }
}

fn pixel(rgb: &[u8], width: u32, x: u32, y: u32) -> Rgb {
    let i = (y as usize * width as usize + x as usize) * 3;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

/// Every pixel of the rectangle `x` by `y`.
fn pixels(rgb: &[u8], width: u32, x: std::ops::Range<u32>, y: std::ops::Range<u32>) -> Vec<Rgb> {
    y.flat_map(|y| x.clone().map(move |x| (x, y))).map(|(x, y)| pixel(rgb, width, x, y)).collect()
}

#[test]
fn threat_box_has_red_edges_three_pixels_wide_and_an_untouched_inside() {
    let f = frame(640, 360);
    let rgb = annotate(&f, &[annotation(100.0, 100.0, 300.0, 250.0, "handgun", true)], CAPTION);
    for (x, y) in [(100, 175), (299, 175), (200, 100), (200, 249), (102, 175), (297, 175)] {
        assert_eq!(pixel(&rgb, 640, x, y), RED, "edge pixel ({x}, {y})");
    }
    assert!(pixels(&rgb, 640, 103..297, 103..247).iter().all(|&p| p == GREY), "inside was drawn on");
    for (x, y) in [(99, 175), (300, 175), (200, 250)] {
        assert_eq!(pixel(&rgb, 640, x, y), GREY, "outside pixel ({x}, {y})");
    }
}

#[test]
fn non_threat_box_is_thin_and_yellow() {
    let f = frame(640, 360);
    let rgb = annotate(&f, &[annotation(100.0, 100.0, 300.0, 250.0, "person", false)], "");
    for (x, y) in [(100, 175), (299, 175), (200, 100), (200, 249)] {
        assert_eq!(pixel(&rgb, 640, x, y), YELLOW, "edge pixel ({x}, {y})");
    }
    assert!(pixels(&rgb, 640, 101..299, 101..249).iter().all(|&p| p == GREY), "inside was drawn on");
}

#[test]
fn lines_and_text_grow_with_the_frame() {
    let at = |w, h| {
        let m = Marks::for_frame(w, h);
        (m.text_scale, m.threat_line, m.other_line)
    };
    assert_eq!(at(640, 360), (2, 3, 1));
    assert_eq!(at(360, 640), (2, 3, 1));
    assert_eq!(at(1280, 720), (4, 6, 2));
    assert_eq!(at(1920, 1080), (6, 9, 2));
    assert_eq!(at(160, 120), (1, 2, 1));
    assert_eq!(at(1, 1), (1, 2, 1));
}

#[test]
fn boxes_off_the_frame_or_degenerate_draw_nothing_and_do_not_panic() {
    let f = frame(64, 48);
    let nowhere = [
        (-500.0, -500.0, -100.0, -100.0),
        (100.0, 10.0, 200.0, 20.0),
        (10.0, 60.0, 20.0, 1e30),
        (-f32::MAX, -f32::MAX, -1e30, -1e30),
        (20.0, 20.0, 20.0, 20.0),
        (20.0, 20.0, 20.2, 30.0),
        (f32::NAN, 10.0, 20.0, 20.0),
        (10.0, 10.0, f32::INFINITY, 20.0),
        (f32::NEG_INFINITY, f32::NAN, f32::INFINITY, f32::NAN),
    ];
    for (x1, y1, x2, y2) in nowhere {
        for threat in [true, false] {
            let a = annotation(x1, y1, x2, y2, "handgun", threat);
            assert_eq!(&annotate(&f, std::slice::from_ref(&a), "")[..], &f.rgb[..], "{:?} drew something", a.bbox);
            render_snapshot(&f, &[a], CAPTION, 80).unwrap();
        }
    }
}

#[test]
fn box_partly_off_the_frame_draws_only_its_visible_edges() {
    let f = frame(640, 360);
    let rgb = annotate(&f, &[annotation(-50.0, 100.0, 100.0, 500.0, "knife", true)], "");
    // The left and bottom edges are off the frame; the frame border must
    // not pass for them.
    assert_eq!(pixel(&rgb, 640, 0, 200), GREY);
    assert_eq!(pixel(&rgb, 640, 50, 359), GREY);
    assert_eq!(pixel(&rgb, 640, 0, 101), RED, "top edge runs to the frame border");
    assert_eq!(pixel(&rgb, 640, 98, 200), RED, "right edge");
    // Huge, swapped and fractional boxes are fine too.
    for (x1, y1, x2, y2) in [(-1e30, -1e30, 1e30, 1e30), (630.0, 350.0, 600.0, 300.0), (0.4, 0.4, 639.6, 359.6)] {
        for threat in [true, false] {
            annotate(&f, &[annotation(x1, y1, x2, y2, "knife", threat)], CAPTION);
        }
    }
}

#[test]
fn label_tag_above_the_box_is_filled_with_legible_text() {
    let f = frame(640, 360);
    let tag = |label: &str| {
        let rgb = annotate(&f, &[annotation(100.0, 100.0, 300.0, 250.0, label, true)], CAPTION);
        // Scale 2: a 20-pixel tag ending where the box begins.
        pixels(&rgb, 640, 100..300, 80..100)
    };
    let handgun = tag("handgun");
    assert!(handgun.contains(&RED), "tag is not filled");
    let ink = handgun.iter().filter(|&&p| p == WHITE).count();
    assert!(ink > 100, "tag text drew only {ink} white pixels");
    assert_ne!(handgun, tag("knife"), "the label does not change the tag");
    assert_ne!(handgun, tag(""), "the score alone is not what was drawn");
}

#[test]
fn label_tag_goes_inside_or_below_a_box_with_no_room_above() {
    let f = frame(640, 360);
    // The caption band is 20 pixels tall, so a box starting at 25 has no room above.
    let caption = "HALL-1";
    let tall = annotate(&f, &[annotation(100.0, 25.0, 300.0, 300.0, "rifle", true)], caption);
    assert!(pixels(&tall, 640, 100..300, 25..45).contains(&WHITE), "no tag inside the tall box");
    let no_box = annotate(&f, &[], caption);
    assert_eq!(pixels(&tall, 640, 100..300, 0..25), pixels(&no_box, 640, 100..300, 0..25), "tag above the box");

    let short = annotate(&f, &[annotation(100.0, 25.0, 300.0, 60.0, "rifle", true)], caption);
    assert!(pixels(&short, 640, 100..300, 60..80).contains(&WHITE), "no tag below the short box");
    assert!(!pixels(&short, 640, 103..297, 28..57).contains(&WHITE), "tag covers the short box");
}

#[test]
fn label_tag_stays_inside_the_frame_at_the_right_edge() {
    let f = frame(640, 360);
    let rgb = annotate(&f, &[annotation(600.0, 100.0, 640.0, 200.0, "handgun", true)], "");
    // "HANDGUN 0.91" is 12 glyphs, 146 pixels with padding at scale 2.
    assert_eq!(pixel(&rgb, 640, 639 - 145, 90), RED);
    assert!(pixels(&rgb, 640, 494..640, 80..100).contains(&WHITE));
}

#[test]
fn caption_band_darkens_the_top_and_writes_white_text() {
    let f = frame(640, 360);
    let rgb = annotate(&f, &[], "INCIDENT 42  HALL-1");
    // One line at scale 2: a margin, eight rows of glyph and a gap.
    let band = pixels(&rgb, 640, 0..640, 0..20);
    assert!(band.contains(&WHITE), "no caption text");
    assert!(band.iter().all(|&p| p == WHITE || p == [48; 3]), "band is not dark with white text");
    assert!(pixels(&rgb, 640, 0..640, 20..360).iter().all(|&p| p == GREY), "band is too tall");
    assert_eq!(&annotate(&f, &[], " ")[..], &f.rgb[..], "a blank caption drew a band");
}

#[test]
fn incident_caption_wraps_onto_two_lines_at_full_size() {
    let f = frame(640, 360);
    let rgb = annotate(&f, &[], CAPTION);
    // Two lines at scale 2, each 18 pixels apart, under a 2-pixel margin.
    assert!(pixels(&rgb, 640, 0..640, 20..38).contains(&WHITE), "no second line");
    assert!(pixels(&rgb, 640, 0..640, 0..38).iter().all(|&p| p == WHITE || p == [48; 3]));
    assert!(pixels(&rgb, 640, 0..640, 38..360).iter().all(|&p| p == GREY), "band is too tall");
}

#[test]
fn caption_too_long_for_two_lines_shrinks_then_is_cut_off() {
    let f = frame(640, 360);
    // 120 glyphs need three lines at scale 2 but two at scale 1: a 19-pixel band.
    let rgb = annotate(&f, &[], &"X".repeat(120));
    assert!(pixels(&rgb, 640, 0..640, 10..19).contains(&WHITE), "no second line");
    assert!(pixels(&rgb, 640, 0..640, 19..360).iter().all(|&p| p == GREY), "band is too tall");
    let cut = annotate(&f, &[], &"X".repeat(10_000));
    assert_eq!(pixels(&cut, 640, 0..640, 19..360), pixels(&rgb, 640, 0..640, 19..360));
}

#[test]
fn unknown_characters_draw_as_a_box() {
    let f = frame(64, 20);
    assert_eq!(annotate(&f, &[], "é"), annotate(&f, &[], "\u{7f}"));
    assert_ne!(annotate(&f, &[], "é"), annotate(&f, &[], "e"));
}

#[test]
fn jpeg_decodes_to_the_frame_size_and_keeps_the_box_red() {
    let f = frame(640, 360);
    let boxes = [
        annotation(100.0, 100.0, 300.0, 250.0, "handgun", true),
        annotation(400.0, 120.0, 520.0, 340.0, "person", false),
    ];
    let jpeg = render_snapshot(&f, &boxes, CAPTION, 85).unwrap();
    let decoded = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    assert_eq!(decoded.dimensions(), (640, 360));
    // The middle of each red edge, averaged across its width.
    for (xs, ys) in [(100..103, 170..180), (297..300, 170..180), (195..205, 100..103), (195..205, 247..250)] {
        let seen = pixels(decoded.as_raw(), 640, xs.clone(), ys.clone());
        let mean = |c: usize| seen.iter().map(|p| u32::from(p[c])).sum::<u32>() / seen.len() as u32;
        let (r, g, b) = (mean(0), mean(1), mean(2));
        assert!(r > 180 && r > g + 80 && r > b + 80, "edge at {xs:?}, {ys:?} is ({r}, {g}, {b})");
    }
}

#[test]
fn quality_is_clamped_and_matters() {
    let f = frame(64, 48);
    let boxes = [annotation(10.0, 10.0, 40.0, 40.0, "handgun", true)];
    let worst = render_snapshot(&f, &boxes, CAPTION, 0).unwrap();
    let best = render_snapshot(&f, &boxes, CAPTION, 255).unwrap();
    assert_eq!(worst, render_snapshot(&f, &boxes, CAPTION, 1).unwrap());
    assert_eq!(best, render_snapshot(&f, &boxes, CAPTION, 100).unwrap());
    assert!(worst.len() < best.len());
}

#[test]
fn bad_frames_are_refused_with_what_is_wrong() {
    let mut f = frame(64, 48);
    f.rgb = vec![0u8; 10].into();
    let err = render_snapshot(&f, &[], CAPTION, 80).unwrap_err();
    assert!(matches!(err, EvidenceError::BufferSize { expected: 9216, actual: 10, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "a 64x48 RGB frame needs 9216 bytes but its buffer holds 10: build frames with Frame::new, which checks this"
    );
    // Drawing on it would guess at where pixels are, so it comes back as is.
    assert_eq!(annotate(&f, &[annotation(0.0, 0.0, 5.0, 5.0, "x", true)], CAPTION), vec![0; 10]);

    f.width = 0;
    f.rgb = Vec::new().into();
    let err = render_snapshot(&f, &[], CAPTION, 80).unwrap_err();
    assert!(matches!(err, EvidenceError::EmptyFrame { width: 0, height: 48 }), "{err:?}");
    assert_eq!(err.to_string(), "cannot make a snapshot of a 0x48 frame: it has no pixels");
    assert!(annotate(&f, &[annotation(0.0, 0.0, 5.0, 5.0, "x", true)], CAPTION).is_empty());

    f.width = u32::MAX;
    f.height = u32::MAX;
    assert!(matches!(render_snapshot(&f, &[], "", 80), Err(EvidenceError::BufferSize { .. })));

    let wide = frame(JPEG_MAX_SIDE + 1, 1);
    let err = render_snapshot(&wide, &[], CAPTION, 80).unwrap_err();
    assert!(matches!(err, EvidenceError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("at most 65535 pixels a side"), "{err}");
    assert!(!err.to_string().ends_with('.'));
}

#[test]
fn tiny_frames_take_every_mark_without_panicking() {
    for (w, h) in [(1, 1), (2, 1), (1, 3), (5, 5)] {
        let f = frame(w, h);
        let boxes = [annotation(0.0, 0.0, 1.0, 1.0, "handgun", true), annotation(-1.0, -1.0, 9.0, 9.0, "p", false)];
        render_snapshot(&f, &boxes, CAPTION, 80).unwrap();
    }
}

/// Run with `cargo test --release -p vigil-evidence -- --ignored --nocapture`.
#[test]
#[ignore = "timing: meaningful only in a release build"]
fn render_time_for_a_640x360_frame_with_three_boxes() {
    // A gradient, so the encoder sees a scene rather than a flat wall.
    let rgb: Vec<u8> = (0..360u32)
        .flat_map(|y| (0..640u32).flat_map(move |x| [(x / 3) as u8, (y * 2 / 3) as u8, ((x + y) / 4) as u8]))
        .collect();
    let at = Moment { mono: Duration::ZERO, wall: Duration::ZERO };
    let f = Frame::new(CameraId::new("hall-1"), 0, at, 640, 360, rgb).unwrap();
    let boxes = [
        annotation(100.0, 100.0, 300.0, 250.0, "handgun", true),
        annotation(400.0, 120.0, 520.0, 340.0, "person", false),
        annotation(20.0, 30.0, 90.0, 200.0, "person", false),
    ];
    // The median of many runs, so that a build sharing the machine skews
    // the figure less than it would a mean.
    let median = |run: &mut dyn FnMut()| {
        run();
        let mut times: Vec<Duration> = (0..301)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed()
            })
            .collect();
        times.sort();
        times[times.len() / 2]
    };
    let draw = median(&mut || drop(std::hint::black_box(annotate(&f, &boxes, CAPTION))));
    let full = median(&mut || drop(std::hint::black_box(render_snapshot(&f, &boxes, CAPTION, 85).unwrap())));
    println!("640x360, 3 boxes, median: annotate {draw:?}, annotate + JPEG q85 {full:?}");
    if !cfg!(debug_assertions) {
        assert!(draw < Duration::from_millis(1), "annotate took {draw:?}");
        // Nearly all of the total is image's JPEG encoder, which this crate
        // does not control, so its bound only catches gross regressions.
        assert!(full < Duration::from_millis(10), "render_snapshot took {full:?}");
    }
}
