//! Evidence snapshots: the frame that confirmed an incident, with every
//! detection boxed and labelled and a caption across the top, encoded as a
//! JPEG so an officer sees at once what was seen and where.
//!
//! Architecture Invariant: this crate turns pixels into pixels and bytes. It
//! knows nothing of incidents, storage or the uplink; the caller decides what
//! is a threat and writes the caption.

mod canvas;
mod caption;
mod font;

use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use vigil_core::{BBox, Frame};

use crate::canvas::{Canvas, Rect, Rgb, line_height, text_width};

/// The largest width or height a JPEG can record.
const JPEG_MAX_SIDE: u32 = u16::MAX as u32;

// Threats in red and the rest in yellow stand out against most interiors;
// tag text is whichever of white and black contrasts with its tag.
const RED: Rgb = [255, 0, 0];
const YELLOW: Rgb = [255, 220, 0];
const WHITE: Rgb = [255; 3];
const BLACK: Rgb = [0, 0, 0];

/// One detection to draw on a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    /// Where it is, in the frame's pixel coordinates.
    pub bbox: BBox,
    /// What it is, as the label map names it; drawn in capitals.
    pub label: String,
    /// The detector's confidence, 0..=1.
    pub score: f32,
    /// Whether it is a threat, drawn in thick red rather than thin yellow.
    pub threat: bool,
}

/// Why a snapshot could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The frame has no pixels.
    #[error("cannot make a snapshot of a {width}x{height} frame: it has no pixels")]
    EmptyFrame {
        /// The frame's width.
        width: u32,
        /// The frame's height.
        height: u32,
    },
    /// The frame's buffer does not hold `width * height` RGB pixels.
    #[error(
        "a {width}x{height} RGB frame needs {expected} bytes but its buffer holds {actual}: build frames with Frame::new, which checks this"
    )]
    BufferSize {
        /// The frame's width.
        width: u32,
        /// The frame's height.
        height: u32,
        /// The bytes its size calls for.
        expected: u64,
        /// The bytes its buffer holds.
        actual: usize,
    },
    /// The frame is wider or taller than a JPEG can record.
    #[error(
        "a {width}x{height} frame is too large for JPEG, which allows at most {JPEG_MAX_SIDE} pixels a side: scale the frame down first"
    )]
    TooLarge {
        /// The frame's width.
        width: u32,
        /// The frame's height.
        height: u32,
    },
    /// The JPEG encoder failed.
    #[error("encoding the snapshot as JPEG failed")]
    Encode(#[source] image::ImageError),
}

/// The frame with `annotations` and `caption` drawn on it, as a JPEG at
/// `quality` (clamped to 1..=100).
pub fn render_snapshot(
    frame: &Frame,
    annotations: &[Annotation],
    caption: &str,
    quality: u8,
) -> Result<Vec<u8>, EvidenceError> {
    let (width, height) = (frame.width, frame.height);
    if width == 0 || height == 0 {
        return Err(EvidenceError::EmptyFrame { width, height });
    }
    let expected = u64::from(width).saturating_mul(u64::from(height)).saturating_mul(3);
    if u64::try_from(frame.rgb.len()) != Ok(expected) {
        return Err(EvidenceError::BufferSize { width, height, expected, actual: frame.rgb.len() });
    }
    if width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE {
        return Err(EvidenceError::TooLarge { width, height });
    }
    let rgb = annotate(frame, annotations, caption);
    // Camera frames compress to well under a bit per pixel at usual qualities.
    let mut jpeg = Vec::with_capacity(rgb.len() / 8);
    JpegEncoder::new_with_quality(&mut jpeg, quality.clamp(1, 100))
        .encode(&rgb, width, height, ExtendedColorType::Rgb8)
        .map_err(EvidenceError::Encode)?;
    Ok(jpeg)
}

/// The frame's RGB pixels with `annotations` and `caption` drawn on them; a
/// frame whose buffer does not match its size comes back unchanged, since
/// there is no telling where its pixels are.
pub fn annotate(frame: &Frame, annotations: &[Annotation], caption: &str) -> Vec<u8> {
    let mut rgb = frame.rgb.to_vec();
    let Some(mut canvas) = Canvas::new(&mut rgb, frame.width, frame.height) else {
        return rgb;
    };
    let marks = Marks::for_frame(frame.width, frame.height);
    let band = caption::draw(&mut canvas, caption, marks.text_scale);
    // Threats go last so that where marks overlap, the threat's is on top.
    let (threats, others): (Vec<_>, Vec<_>) = annotations.iter().partition(|a| a.threat);
    for a in others.into_iter().chain(threats) {
        draw_annotation(&mut canvas, a, &marks, band);
    }
    rgb
}

/// Line and text sizes for one frame size.
struct Marks {
    /// Font pixels per glyph pixel.
    text_scale: i64,
    /// Outline width of a threat's box.
    threat_line: i64,
    /// Outline width of any other box.
    other_line: i64,
}

impl Marks {
    /// Marks that look the same at any resolution: at 640 pixels, text at
    /// scale 2, threats 3 pixels wide and other boxes 1. They follow the
    /// longer side so a camera mounted in portrait gets the same marks.
    fn for_frame(width: u32, height: u32) -> Marks {
        let long = i64::from(width.max(height));
        Marks {
            text_scale: ((long + 160) / 320).max(1),
            threat_line: ((3 * long + 320) / 640).max(2),
            other_line: (long / 640).clamp(1, 2),
        }
    }
}

/// Draws one detection's box and its label tag, keeping the tag clear of
/// the caption band that ends at `band`.
fn draw_annotation(canvas: &mut Canvas<'_>, a: &Annotation, marks: &Marks, band: i64) {
    let Some(bbox) = pixel_rect(&a.bbox) else {
        return;
    };
    let visible = canvas.clip(bbox);
    if visible.is_empty() {
        return;
    }
    let (colour, ink, line) =
        if a.threat { (RED, WHITE, marks.threat_line) } else { (YELLOW, BLACK, marks.other_line) };
    canvas.outline(bbox, line, colour);

    let label = a.label.trim().to_uppercase();
    let text = if label.is_empty() { format!("{:.2}", a.score) } else { format!("{label} {:.2}", a.score) };
    let scale = marks.text_scale;
    let tag_width = text_width(&text, scale).saturating_add(2 * scale);
    let tag_height = line_height(scale) + 2 * scale;
    let left = visible.left.min(canvas.width().saturating_sub(tag_width)).max(0);
    let top = tag_top(visible, tag_height, band, canvas.height());
    canvas.fill(Rect::at(left, top, tag_width, tag_height), colour);
    canvas.text(left + scale, top + scale, &text, scale, ink);
}

/// Where a tag `height` tall goes for a box showing `visible`: above it if
/// that clears the caption band, else inside its top when the box is tall
/// enough that the tag hides little of it, else below it, else wherever it
/// fits.
fn tag_top(visible: Rect, height: i64, band: i64, frame_height: i64) -> i64 {
    let above = visible.top - height;
    if above >= band {
        return above;
    }
    let inside = visible.top.max(band);
    if inside + 3 * height <= visible.bottom {
        return inside;
    }
    if visible.bottom + height <= frame_height {
        return visible.bottom;
    }
    inside.min(frame_height - height).max(0)
}

/// The pixels a box covers, or `None` if an edge is NaN or infinite and
/// there is no telling where it is. Swapped edges are put in order.
fn pixel_rect(b: &BBox) -> Option<Rect> {
    if ![b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite()) {
        return None;
    }
    // `as` saturates, and the canvas clips, so boxes far off the frame are safe.
    let px = |v: f32| v.round() as i64;
    Some(Rect {
        left: px(b.x1.min(b.x2)),
        top: px(b.y1.min(b.y2)),
        right: px(b.x1.max(b.x2)),
        bottom: px(b.y1.max(b.y2)),
    })
}

#[cfg(test)]
mod tests;
