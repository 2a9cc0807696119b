//! Clipped drawing on a packed RGB8 buffer. Every primitive takes signed
//! coordinates and draws only what falls inside the picture, so callers can
//! pass boxes that hang off the frame without checking them first.

use crate::font::{self, ADVANCE, GLYPH_ROWS, GLYPH_WIDTH};

/// A colour as red, green, blue.
pub(crate) type Rgb = [u8; 3];

/// A rectangle of pixels from `left, top` up to but excluding `right, bottom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) left: i64,
    pub(crate) top: i64,
    pub(crate) right: i64,
    pub(crate) bottom: i64,
}

impl Rect {
    /// A rectangle from its top-left corner and size.
    pub(crate) fn at(left: i64, top: i64, width: i64, height: i64) -> Rect {
        Rect { left, top, right: left.saturating_add(width), bottom: top.saturating_add(height) }
    }

    /// Whether it covers no pixels.
    pub(crate) fn is_empty(&self) -> bool {
        self.right <= self.left || self.bottom <= self.top
    }
}

/// A picture being drawn on; its buffer always holds `width * height` pixels.
pub(crate) struct Canvas<'a> {
    rgb: &'a mut [u8],
    width: i64,
    height: i64,
}

impl<'a> Canvas<'a> {
    /// A canvas over `rgb`, or `None` if the buffer does not hold exactly
    /// `width * height` RGB pixels.
    pub(crate) fn new(rgb: &'a mut [u8], width: u32, height: u32) -> Option<Canvas<'a>> {
        let expected = (width as usize).checked_mul(height as usize)?.checked_mul(3)?;
        (rgb.len() == expected).then_some(Canvas { rgb, width: i64::from(width), height: i64::from(height) })
    }

    /// Width in pixels.
    pub(crate) fn width(&self) -> i64 {
        self.width
    }

    /// Height in pixels.
    pub(crate) fn height(&self) -> i64 {
        self.height
    }

    /// The part of `r` inside the picture, empty if none is.
    pub(crate) fn clip(&self, r: Rect) -> Rect {
        Rect {
            left: r.left.clamp(0, self.width),
            top: r.top.clamp(0, self.height),
            right: r.right.clamp(0, self.width),
            bottom: r.bottom.clamp(0, self.height),
        }
    }

    /// Calls `paint` on every pixel of `r` that lies inside the picture.
    fn each_pixel(&mut self, r: Rect, mut paint: impl FnMut(&mut [u8])) {
        let r = self.clip(r);
        if r.is_empty() {
            return;
        }
        // Clipping bounds every coordinate by the size, which `new` checked
        // against the buffer, so these conversions and slices cannot fail.
        let (left, right) = (r.left as usize, r.right as usize);
        let width = self.width as usize;
        for y in r.top as usize..r.bottom as usize {
            let row = &mut self.rgb[(y * width + left) * 3..(y * width + right) * 3];
            row.chunks_exact_mut(3).for_each(&mut paint);
        }
    }

    /// Paints `r` in a solid colour.
    pub(crate) fn fill(&mut self, r: Rect, colour: Rgb) {
        self.each_pixel(r, |px| px.copy_from_slice(&colour));
    }

    /// Darkens `r` to 3/8 of its brightness: a translucent black that keeps
    /// the scene behind it legible.
    pub(crate) fn darken(&mut self, r: Rect) {
        self.each_pixel(r, |px| px.iter_mut().for_each(|v| *v = (u16::from(*v) * 3 / 8) as u8));
    }

    /// Draws a rectangle outline `thickness` pixels wide, inside `r`.
    pub(crate) fn outline(&mut self, r: Rect, thickness: i64, colour: Rgb) {
        let t = thickness.max(0);
        // A box thinner than two edges is filled solid, never painted outside.
        let inner = Rect {
            left: r.left.saturating_add(t).min(r.right),
            top: r.top.saturating_add(t).min(r.bottom),
            right: r.right.saturating_sub(t).max(r.left),
            bottom: r.bottom.saturating_sub(t).max(r.top),
        };
        self.fill(Rect { bottom: inner.top, ..r }, colour);
        self.fill(Rect { top: inner.bottom, ..r }, colour);
        self.fill(Rect { right: inner.left, ..r }, colour);
        self.fill(Rect { left: inner.right, ..r }, colour);
    }

    /// Writes `text` with its top-left corner at `x, y`, each font pixel a
    /// `scale`-by-`scale` square.
    pub(crate) fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, colour: Rgb) {
        let mut left = x;
        for c in text.chars() {
            if left >= self.width {
                break;
            }
            for (row, bits) in (0i64..).zip(font::glyph(c)) {
                for col in 0..GLYPH_WIDTH {
                    if bits & (1 << (GLYPH_WIDTH - 1 - col)) != 0 {
                        let (px, py) = (left.saturating_add(col * scale), y.saturating_add(row * scale));
                        self.fill(Rect::at(px, py, scale, scale), colour);
                    }
                }
            }
            left = left.saturating_add(ADVANCE * scale);
        }
    }
}

/// Height in pixels of one line of text at `scale`.
pub(crate) fn line_height(scale: i64) -> i64 {
    GLYPH_ROWS as i64 * scale
}

/// Width in pixels of `text` at `scale`.
pub(crate) fn text_width(text: &str, scale: i64) -> i64 {
    font::text_width(text).saturating_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: Rgb = [128; 3];
    const INK: Rgb = [255, 0, 0];

    fn blank(width: u32, height: u32) -> Vec<u8> {
        GREY.repeat(width as usize * height as usize)
    }

    fn pixel(rgb: &[u8], width: usize, x: usize, y: usize) -> Rgb {
        let i = (y * width + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    #[test]
    fn canvas_refuses_a_buffer_of_the_wrong_size() {
        assert!(Canvas::new(&mut [0; 11], 2, 2).is_none());
        assert!(Canvas::new(&mut [0; 12], 2, 2).is_some());
        assert!(Canvas::new(&mut [], u32::MAX, u32::MAX).is_none());
    }

    #[test]
    fn fill_clips_to_the_picture() {
        let mut rgb = blank(4, 3);
        let mut canvas = Canvas::new(&mut rgb, 4, 3).unwrap();
        canvas.fill(Rect { left: -10, top: 1, right: 2, bottom: 100 }, INK);
        canvas.fill(Rect { left: i64::MIN, top: i64::MIN, right: i64::MAX, bottom: -1 }, [0; 3]);
        canvas.fill(Rect { left: 7, top: 0, right: 3, bottom: 2 }, [0; 3]);
        for y in 0..3 {
            for x in 0..4 {
                let want = if x < 2 && y >= 1 { INK } else { GREY };
                assert_eq!(pixel(&rgb, 4, x, y), want, "({x}, {y})");
            }
        }
    }

    #[test]
    fn outline_stays_inside_its_rectangle_and_leaves_the_middle() {
        let mut rgb = blank(10, 10);
        let mut canvas = Canvas::new(&mut rgb, 10, 10).unwrap();
        canvas.outline(Rect { left: 1, top: 1, right: 9, bottom: 9 }, 2, INK);
        for y in 0..10 {
            for x in 0..10 {
                let inside = (1..9).contains(&x) && (1..9).contains(&y);
                let middle = (3..7).contains(&x) && (3..7).contains(&y);
                let want = if inside && !middle { INK } else { GREY };
                assert_eq!(pixel(&rgb, 10, x, y), want, "({x}, {y})");
            }
        }
    }

    #[test]
    fn darken_keeps_the_scene_legible() {
        let mut rgb = blank(2, 1);
        Canvas::new(&mut rgb, 2, 1).unwrap().darken(Rect::at(0, 0, 1, 1));
        assert_eq!(pixel(&rgb, 2, 0, 0), [48; 3]);
        assert_eq!(pixel(&rgb, 2, 1, 0), GREY);
    }

    #[test]
    fn text_draws_scaled_glyphs() {
        let mut rgb = blank(20, 20);
        Canvas::new(&mut rgb, 20, 20).unwrap().text(2, 3, "T", 2, INK);
        // The bar of the T spans the whole cell, its stem the middle column.
        assert_eq!(pixel(&rgb, 20, 2, 3), INK);
        assert_eq!(pixel(&rgb, 20, 11, 4), INK);
        assert_eq!(pixel(&rgb, 20, 6, 15), INK);
        assert_eq!(pixel(&rgb, 20, 2, 15), GREY);
        assert_eq!(pixel(&rgb, 20, 12, 3), GREY);
    }
}
