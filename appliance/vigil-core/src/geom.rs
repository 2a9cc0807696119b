//! Boxes and zones.

/// An axis-aligned box in frame pixels, `x1 <= x2` and `y1 <= y2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl BBox {
    /// A box from its centre and size, the way YOLO heads report them.
    pub fn from_center(cx: f32, cy: f32, w: f32, h: f32) -> BBox {
        BBox { x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0 }
    }

    /// Width, never negative.
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height, never negative.
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// The centre point.
    pub fn center(&self) -> Point {
        Point { x: (self.x1 + self.x2) / 2.0, y: (self.y1 + self.y2) / 2.0 }
    }

    /// Intersection over union, 0 for disjoint or empty boxes.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let iy = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// This box clipped to a `width` x `height` frame.
    pub fn clamp_to(&self, width: f32, height: f32) -> BBox {
        BBox {
            x1: self.x1.clamp(0.0, width),
            y1: self.y1.clamp(0.0, height),
            x2: self.x2.clamp(0.0, width),
            y2: self.y2.clamp(0.0, height),
        }
    }
}

/// A point; in a [`Polygon`] its coordinates are fractions of the frame size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal coordinate.
    pub x: f32,
    /// Vertical coordinate.
    pub y: f32,
}

/// A zone of a camera's view, in coordinates normalised to 0..=1 so it
/// survives a change of stream resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Polygon {
    points: Vec<Point>,
}

impl Polygon {
    /// A polygon from at least three points, all inside the unit square.
    pub fn new(points: Vec<Point>) -> Result<Polygon, String> {
        if points.len() < 3 {
            return Err(format!("a zone needs at least 3 points, this one has {}", points.len()));
        }
        if let Some(p) = points.iter().find(|p| !(0.0..=1.0).contains(&p.x) || !(0.0..=1.0).contains(&p.y)) {
            return Err(format!(
                "point ({}, {}) is outside the frame: zone coordinates are fractions of the frame size, from 0 to 1",
                p.x, p.y
            ));
        }
        Ok(Polygon { points })
    }

    /// The polygon's corners.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Whether the normalised point `p` lies inside (even-odd rule).
    pub fn contains(&self, p: Point) -> bool {
        let mut inside = false;
        let n = self.points.len();
        let mut j = n - 1;
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[j]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Polygon {
        Polygon::new(vec![
            Point { x: 0.2, y: 0.2 },
            Point { x: 0.6, y: 0.2 },
            Point { x: 0.6, y: 0.6 },
            Point { x: 0.2, y: 0.6 },
        ])
        .unwrap()
    }

    #[test]
    fn iou_of_identical_boxes_is_one_and_disjoint_zero() {
        let a = BBox { x1: 0.0, y1: 0.0, x2: 10.0, y2: 10.0 };
        let b = BBox { x1: 20.0, y1: 20.0, x2: 30.0, y2: 30.0 };
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&b), 0.0);
        let half = BBox { x1: 5.0, y1: 0.0, x2: 15.0, y2: 10.0 };
        assert!((a.iou(&half) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn empty_box_has_zero_iou() {
        let e = BBox { x1: 5.0, y1: 5.0, x2: 5.0, y2: 5.0 };
        assert_eq!(e.iou(&e), 0.0);
    }

    #[test]
    fn polygon_contains_inside_and_not_outside() {
        let z = square();
        assert!(z.contains(Point { x: 0.4, y: 0.4 }));
        assert!(!z.contains(Point { x: 0.1, y: 0.4 }));
        assert!(!z.contains(Point { x: 0.7, y: 0.7 }));
    }

    #[test]
    fn concave_polygon_excludes_its_notch() {
        // A "U": the notch between the arms is outside.
        let u = Polygon::new(vec![
            Point { x: 0.0, y: 0.0 },
            Point { x: 0.3, y: 0.0 },
            Point { x: 0.3, y: 0.6 },
            Point { x: 0.6, y: 0.6 },
            Point { x: 0.6, y: 0.0 },
            Point { x: 0.9, y: 0.0 },
            Point { x: 0.9, y: 0.9 },
            Point { x: 0.0, y: 0.9 },
        ])
        .unwrap();
        assert!(!u.contains(Point { x: 0.45, y: 0.3 }));
        assert!(u.contains(Point { x: 0.45, y: 0.8 }));
        assert!(u.contains(Point { x: 0.1, y: 0.3 }));
    }

    #[test]
    fn polygon_rejects_too_few_or_outside_points() {
        assert!(Polygon::new(vec![Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 1.0 }]).is_err());
        let err = Polygon::new(vec![Point { x: 0.0, y: 0.0 }, Point { x: 1.5, y: 0.0 }, Point { x: 0.0, y: 1.0 }])
            .unwrap_err();
        assert!(err.contains("(1.5, 0)"), "{err}");
    }
}
