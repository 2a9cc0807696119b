//! The few drawing operations the demo scene needs, on a packed RGB buffer.

/// An axis-aligned rectangle in pixels; covers pixels `x1..x2` by `y1..y2` once rounded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rect {
    pub(crate) x1: f32,
    pub(crate) y1: f32,
    pub(crate) x2: f32,
    pub(crate) y2: f32,
}

impl Rect {
    /// The rectangle spanning `x1..x2` and `y1..y2`, whichever way round they are given.
    pub(crate) fn spanning(xa: f32, ya: f32, xb: f32, yb: f32) -> Rect {
        Rect { x1: xa.min(xb), y1: ya.min(yb), x2: xa.max(xb), y2: ya.max(yb) }
    }
}

/// A frame being drawn on.
pub(crate) struct Canvas<'a> {
    rgb: &'a mut [u8],
    width: usize,
    height: usize,
}

impl<'a> Canvas<'a> {
    /// Wraps a `width * height * 3` byte buffer.
    pub(crate) fn new(rgb: &'a mut [u8], width: usize, height: usize) -> Canvas<'a> {
        debug_assert_eq!(rgb.len(), width * height * 3);
        Canvas { rgb, width, height }
    }

    /// Pixel columns or rows `a..b` after rounding, clipped to `0..limit`.
    fn span(a: f32, b: f32, limit: usize) -> (usize, usize) {
        let clip = |v: f32| v.round().clamp(0.0, limit as f32) as usize;
        (clip(a), clip(b))
    }

    /// Fills `r` with a flat colour, clipped to the frame.
    pub(crate) fn fill_rect(&mut self, r: Rect, colour: [u8; 3]) {
        let (x1, x2) = Canvas::span(r.x1, r.x2, self.width);
        let (y1, y2) = Canvas::span(r.y1, r.y2, self.height);
        if x1 >= x2 {
            return;
        }
        for y in y1..y2 {
            let row = &mut self.rgb[(y * self.width + x1) * 3..(y * self.width + x2) * 3];
            for px in row.chunks_exact_mut(3) {
                px.copy_from_slice(&colour);
            }
        }
    }

    /// Fills the ellipse centred on (`cx`, `cy`) with radii `rx`, `ry`, clipped to the frame.
    pub(crate) fn fill_ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, colour: [u8; 3]) {
        if rx <= 0.0 || ry <= 0.0 {
            return;
        }
        let (y1, y2) = Canvas::span(cy - ry, cy + ry, self.height);
        for y in y1..y2 {
            // Half the chord at this row's centre line.
            let dy = (y as f32 + 0.5 - cy) / ry;
            let half = rx * (1.0 - dy * dy).max(0.0).sqrt();
            self.fill_rect(Rect { x1: cx - half, y1: y as f32, x2: cx + half, y2: y as f32 + 1.0 }, colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn painted(w: usize, h: usize, draw: impl FnOnce(&mut Canvas<'_>)) -> Vec<u8> {
        let mut buf = vec![0; w * h * 3];
        draw(&mut Canvas::new(&mut buf, w, h));
        buf
    }

    fn count(buf: &[u8], colour: [u8; 3]) -> usize {
        buf.chunks_exact(3).filter(|p| *p == colour).count()
    }

    #[test]
    fn rect_covers_exactly_its_integer_span() {
        let buf = painted(8, 8, |c| c.fill_rect(Rect { x1: 2.0, y1: 1.0, x2: 5.0, y2: 3.0 }, [9, 9, 9]));
        assert_eq!(count(&buf, [9, 9, 9]), 6);
        assert_eq!(&buf[(8 + 2) * 3..(8 + 3) * 3], &[9, 9, 9]);
    }

    #[test]
    fn shapes_off_the_edge_are_clipped_not_wrapped() {
        let buf = painted(4, 4, |c| {
            c.fill_rect(Rect { x1: -10.0, y1: -10.0, x2: 1.0, y2: 1.0 }, [1, 1, 1]);
            c.fill_rect(Rect { x1: 3.0, y1: 3.0, x2: 99.0, y2: 99.0 }, [2, 2, 2]);
            c.fill_ellipse(100.0, 2.0, 5.0, 5.0, [3, 3, 3]);
        });
        assert_eq!((count(&buf, [1, 1, 1]), count(&buf, [2, 2, 2]), count(&buf, [3, 3, 3])), (1, 1, 0));
    }

    #[test]
    fn ellipse_area_is_about_pi_r_squared() {
        let buf = painted(40, 40, |c| c.fill_ellipse(20.0, 20.0, 10.0, 10.0, [5, 5, 5]));
        let n = count(&buf, [5, 5, 5]) as f32;
        assert!((n - std::f32::consts::PI * 100.0).abs() < 20.0, "{n}");
    }
}
