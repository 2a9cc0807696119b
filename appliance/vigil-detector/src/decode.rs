//! Output decoders and non-maximum suppression: pure functions from the
//! model's output tensor to boxes in input pixels.

use std::fmt;

use vigil_core::BBox;

/// The output layouts Vigil understands, with the sizes read from the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// YOLOv8/YOLO11 head `[1, 4 + classes, anchors]`: rows cx, cy, w, h, then one score per class.
    Yolo {
        /// Number of classes.
        classes: usize,
        /// Number of anchors (8400 at 640).
        anchors: usize,
        /// `[1, anchors, 4 + classes]`, as some exports transpose it.
        transposed: bool,
    },
    /// SSD DetectionOutput `[1, 1, N, 7]`: image id, label, confidence, normalised x1, y1, x2, y2.
    Ssd {
        /// Rows.
        rows: usize,
    },
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Yolo { classes, anchors, transposed: false } => {
                write!(f, "YOLO [1, {}, {anchors}] ({classes} classes)", 4 + classes)
            }
            Layout::Yolo { classes, anchors, transposed: true } => {
                write!(f, "YOLO transposed [1, {anchors}, {}] ({classes} classes)", 4 + classes)
            }
            Layout::Ssd { rows } => write!(f, "SSD [1, 1, {rows}, 7]"),
        }
    }
}

/// Works out the layout of an output of shape `dims` for a label map of
/// `labels` classes; `forced` restricts the choice to one family.
pub fn detect_layout(dims: &[i64], labels: usize, forced: Option<Family>) -> Result<Layout, String> {
    let shape = format!("{dims:?}");
    let yolo = || -> Result<Layout, String> {
        let [1, a, b] = *dims else {
            return Err(format!("output {shape} is not a YOLO head: expected [1, 4 + classes, anchors]"));
        };
        let (rows, anchors, transposed) = match (a as usize, b as usize) {
            (a, b) if a == 4 + labels => (a, b, false),
            (a, b) if b == 4 + labels => (b, a, true),
            (a, b) => {
                // The smaller dimension is the class rows in every real export.
                let rows = a.min(b);
                return Err(format!(
                    "output {shape} has {} classes but the label map has {labels}: give the model's own labels",
                    rows.saturating_sub(4)
                ));
            }
        };
        if anchors == 0 {
            return Err(format!("output {shape} has no anchors"));
        }
        Ok(Layout::Yolo { classes: rows - 4, anchors, transposed })
    };
    let ssd = || -> Result<Layout, String> {
        match *dims {
            [1, 1, rows, 7] if rows > 0 => Ok(Layout::Ssd { rows: rows as usize }),
            _ => Err(format!("output {shape} is not an SSD DetectionOutput: expected [1, 1, N, 7]")),
        }
    };
    match forced {
        Some(Family::Yolo) => yolo(),
        Some(Family::Ssd) => ssd(),
        None => match dims.len() {
            3 => yolo(),
            4 => ssd(),
            _ => Err(format!(
                "unknown output layout {shape}: expected a YOLOv8/YOLO11 head [1, 4 + classes, anchors] or an SSD DetectionOutput [1, 1, N, 7]"
            )),
        },
    }
}

/// A layout family, for when the config names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// YOLOv8/YOLO11.
    Yolo,
    /// SSD.
    Ssd,
}

/// One decoded box in input pixels, before and after NMS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Class index.
    pub class: u32,
    /// Score.
    pub score: f32,
    /// Box in input pixels.
    pub bbox: BBox,
}

/// Most candidates kept before NMS; bounds the quadratic NMS on a noisy frame.
const MAX_CANDIDATES: usize = 3000;

/// Decodes a tensor of `layout` holding `data`, keeping scores of at least
/// `confidence`. `input_w`/`input_h` scale SSD's normalised coordinates.
pub fn decode(layout: Layout, data: &[f32], confidence: f32, input_w: u32, input_h: u32) -> Vec<Candidate> {
    let mut out = match layout {
        Layout::Yolo { classes, anchors, transposed } => decode_yolo(data, classes, anchors, transposed, confidence),
        Layout::Ssd { rows } => decode_ssd(data, rows, confidence, input_w as f32, input_h as f32),
    };
    if out.len() > MAX_CANDIDATES {
        out.select_nth_unstable_by(MAX_CANDIDATES, |a, b| b.score.total_cmp(&a.score));
        out.truncate(MAX_CANDIDATES);
    }
    out
}

fn decode_yolo(data: &[f32], classes: usize, anchors: usize, transposed: bool, confidence: f32) -> Vec<Candidate> {
    let at = |row: usize, anchor: usize| {
        if transposed { data[anchor * (4 + classes) + row] } else { data[row * anchors + anchor] }
    };
    // Best class per anchor, walking class rows so reads stay sequential.
    let mut best = vec![f32::NEG_INFINITY; anchors];
    let mut best_class = vec![0u32; anchors];
    for c in 0..classes {
        for (a, (b, bc)) in best.iter_mut().zip(best_class.iter_mut()).enumerate() {
            let s = at(4 + c, a);
            if s > *b {
                *b = s;
                *bc = c as u32;
            }
        }
    }
    best.iter()
        .zip(&best_class)
        .enumerate()
        .filter(|(_, (s, _))| **s >= confidence)
        .filter_map(|(a, (&score, &class))| {
            let (cx, cy, w, h) = (at(0, a), at(1, a), at(2, a), at(3, a));
            let bbox = BBox::from_center(cx, cy, w, h);
            (bbox.area() > 0.0 && bbox.x1.is_finite() && bbox.y2.is_finite()).then_some(Candidate {
                class,
                score,
                bbox,
            })
        })
        .collect()
}

fn decode_ssd(data: &[f32], rows: usize, confidence: f32, w: f32, h: f32) -> Vec<Candidate> {
    data.chunks_exact(7)
        .take(rows)
        // A negative image id ends the valid rows.
        .take_while(|r| r[0] >= 0.0)
        .filter(|r| r[2] >= confidence && r[1] >= 0.0)
        .map(|r| Candidate {
            class: r[1] as u32,
            score: r[2],
            bbox: BBox { x1: r[3] * w, y1: r[4] * h, x2: r[5] * w, y2: r[6] * h },
        })
        .filter(|c| c.bbox.area() > 0.0)
        .collect()
}

/// Class-aware greedy NMS: within each class, keeps the strongest box and
/// drops any other overlapping it by more than `iou`. Strongest first.
pub fn nms(mut candidates: Vec<Candidate>, iou: f32) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if !kept.iter().any(|k| k.class == c.class && k.bbox.iou(&c.bbox) > iou) {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `[1, 4 + classes, anchors]` tensor from (cx, cy, w, h, scores) per anchor.
    fn yolo_tensor(anchors: &[(f32, f32, f32, f32, Vec<f32>)]) -> Vec<f32> {
        let n = anchors.len();
        let classes = anchors[0].4.len();
        let mut t = vec![0.0; (4 + classes) * n];
        for (a, (cx, cy, w, h, scores)) in anchors.iter().enumerate() {
            for (row, v) in [*cx, *cy, *w, *h].into_iter().chain(scores.iter().copied()).enumerate() {
                t[row * n + a] = v;
            }
        }
        t
    }

    #[test]
    fn detects_yolo_and_ssd_layouts() {
        assert_eq!(
            detect_layout(&[1, 84, 8400], 80, None),
            Ok(Layout::Yolo { classes: 80, anchors: 8400, transposed: false })
        );
        assert_eq!(
            detect_layout(&[1, 8400, 84], 80, None),
            Ok(Layout::Yolo { classes: 80, anchors: 8400, transposed: true })
        );
        assert_eq!(detect_layout(&[1, 1, 200, 7], 2, None), Ok(Layout::Ssd { rows: 200 }));
    }

    #[test]
    fn class_count_mismatch_is_explained() {
        let err = detect_layout(&[1, 84, 8400], 2, None).unwrap_err();
        assert_eq!(err, "output [1, 84, 8400] has 80 classes but the label map has 2: give the model's own labels");
    }

    #[test]
    fn unknown_layouts_are_refused() {
        let err = detect_layout(&[1, 1000], 2, None).unwrap_err();
        assert!(err.starts_with("unknown output layout [1, 1000]"), "{err}");
        assert!(detect_layout(&[1, 1, 100, 6], 2, None).unwrap_err().contains("not an SSD"));
        assert!(detect_layout(&[1, 1, 100, 7], 2, Some(Family::Yolo)).unwrap_err().contains("not a YOLO head"));
        assert!(detect_layout(&[2, 6, 100], 2, None).is_err(), "batch of two");
    }

    #[test]
    fn yolo_decode_picks_the_best_class_and_applies_the_threshold() {
        let t = yolo_tensor(&[
            (100.0, 100.0, 20.0, 10.0, vec![0.1, 0.9]),
            (300.0, 200.0, 40.0, 40.0, vec![0.7, 0.2]),
            (500.0, 500.0, 10.0, 10.0, vec![0.2, 0.1]),
        ]);
        let c = decode(Layout::Yolo { classes: 2, anchors: 3, transposed: false }, &t, 0.25, 640, 640);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].class, c[0].score), (1, 0.9));
        assert_eq!(c[0].bbox, BBox { x1: 90.0, y1: 95.0, x2: 110.0, y2: 105.0 });
        assert_eq!((c[1].class, c[1].score), (0, 0.7));
    }

    #[test]
    fn transposed_yolo_decodes_the_same() {
        let rows = vec![(100.0, 100.0, 20.0, 10.0, vec![0.1, 0.9]), (300.0, 200.0, 40.0, 40.0, vec![0.7, 0.2])];
        let t = yolo_tensor(&rows);
        let mut tt = vec![0.0; t.len()];
        for row in 0..6 {
            for a in 0..2 {
                tt[a * 6 + row] = t[row * 2 + a];
            }
        }
        let normal = decode(Layout::Yolo { classes: 2, anchors: 2, transposed: false }, &t, 0.25, 640, 640);
        let trans = decode(Layout::Yolo { classes: 2, anchors: 2, transposed: true }, &tt, 0.25, 640, 640);
        assert_eq!(normal, trans);
    }

    #[test]
    fn yolo_decode_drops_degenerate_and_non_finite_boxes() {
        let t = yolo_tensor(&[(100.0, 100.0, 0.0, 10.0, vec![0.9]), (f32::NAN, 100.0, 5.0, 5.0, vec![0.9])]);
        assert!(decode(Layout::Yolo { classes: 1, anchors: 2, transposed: false }, &t, 0.25, 640, 640).is_empty());
    }

    #[test]
    fn ssd_decode_scales_and_stops_at_the_terminator() {
        #[rustfmt::skip]
        let t = [
            0.0, 1.0, 0.8, 0.1, 0.2, 0.3, 0.4,
            0.0, 0.0, 0.1, 0.1, 0.1, 0.2, 0.2,
            -1.0, 0.0, 0.9, 0.1, 0.1, 0.2, 0.2,
            0.0, 0.0, 0.9, 0.5, 0.5, 0.6, 0.6,
        ];
        let c = decode(Layout::Ssd { rows: 4 }, &t, 0.25, 640, 320);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class, 1);
        let b = c[0].bbox;
        assert!(
            (b.x1 - 64.0).abs() < 1e-3
                && (b.y1 - 64.0).abs() < 1e-3
                && (b.x2 - 192.0).abs() < 1e-3
                && (b.y2 - 128.0).abs() < 1e-3
        );
    }

    #[test]
    fn nms_is_class_aware() {
        let b = BBox { x1: 0.0, y1: 0.0, x2: 10.0, y2: 10.0 };
        let shifted = BBox { x1: 1.0, y1: 0.0, x2: 11.0, y2: 10.0 };
        let kept = nms(
            vec![
                Candidate { class: 0, score: 0.8, bbox: shifted },
                Candidate { class: 0, score: 0.9, bbox: b },
                Candidate { class: 1, score: 0.7, bbox: b },
            ],
            0.45,
        );
        assert_eq!(kept.len(), 2);
        assert_eq!((kept[0].class, kept[0].score), (0, 0.9));
        assert_eq!(kept[1].class, 1);
    }

    #[test]
    fn candidate_flood_is_bounded_to_the_strongest() {
        let anchors: Vec<_> = (0..5000).map(|i| (i as f32, 0.0, 2.0, 2.0, vec![0.3 + i as f32 * 1e-5])).collect();
        let t = yolo_tensor(&anchors);
        let c = decode(Layout::Yolo { classes: 1, anchors: 5000, transposed: false }, &t, 0.25, 640, 640);
        assert_eq!(c.len(), MAX_CANDIDATES);
        let weakest = c.iter().map(|c| c.score).fold(f32::INFINITY, f32::min);
        assert!(weakest >= 0.3 + 1999.0 * 1e-5, "kept only the strongest, weakest {weakest}");
    }

    proptest! {
        #[test]
        fn nms_output_never_overlaps_within_a_class(boxes in proptest::collection::vec((0u32..3, 0.0f32..1.0, 0.0f32..100.0, 0.0f32..100.0, 1.0f32..50.0, 1.0f32..50.0), 0..60)) {
            let cands: Vec<_> = boxes.iter().map(|&(class, score, x, y, w, h)| Candidate { class, score, bbox: BBox { x1: x, y1: y, x2: x + w, y2: y + h } }).collect();
            let kept = nms(cands.clone(), 0.45);
            for (i, a) in kept.iter().enumerate() {
                for b in &kept[i + 1..] {
                    prop_assert!(a.class != b.class || a.bbox.iou(&b.bbox) <= 0.45);
                }
            }
            // The strongest candidate of every class survives.
            for class in 0..3 {
                if let Some(best) = cands.iter().filter(|c| c.class == class).max_by(|a, b| a.score.total_cmp(&b.score)) {
                    prop_assert!(kept.iter().any(|k| k.class == class && k.score == best.score));
                }
            }
        }
    }
}
