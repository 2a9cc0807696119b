//! Who walks through the hallway, where they are at each moment, and what
//! they carry: the scene's script, and the one place marker positions come
//! from, so the pictures and the ground truth cannot disagree.

use std::f32::consts::PI;

use super::paint::{Canvas, Rect};
use super::{MarkerKind, Scenario};

/// Scene time after which the hallway script repeats, in seconds.
pub(crate) const SCRIPT_PERIOD: f64 = 60.0;

/// The frame height the sizes below are designed for.
const DESIGN_HEIGHT: f32 = 360.0;
/// Marker sizes in pixels at the design height: (width, height).
const HANDGUN_SIZE: (f32, f32) = (26.0, 16.0);
const PHONE_SIZE: (f32, f32) = (14.0, 22.0);

/// How far off each side of the frame a walker's path extends, as a fraction
/// of the width, so they leave the frame entirely before coming back.
const OFFSTAGE: f32 = 0.15;

/// Clothes and skin; all ordinary colours that keep clear of the markers' hues.
#[derive(Clone, Copy, Debug)]
struct Outfit {
    skin: [u8; 3],
    hair: [u8; 3],
    top: [u8; 3],
    bottom: [u8; 3],
    shoes: [u8; 3],
}

/// How a person moves across the frame.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// Walks from one side to the other and round again, every `period` seconds,
    /// entering at scene time `enter`.
    Across { period: f64, enter: f64, rightward: bool },
    /// Walks from `lo` to `hi` (fractions of the width) and back every `period` seconds.
    ToAndFro { period: f64, lo: f32, hi: f32 },
}

impl Path {
    /// Where the person is across the frame (fraction of width) and which way they face (+1 right).
    fn at(self, t: f64) -> (f32, f32) {
        match self {
            Path::Across { period, enter, rightward } => {
                let phase = ((t - enter).rem_euclid(period) / period) as f32;
                let travelled = (1.0 + 2.0 * OFFSTAGE) * phase;
                if rightward { (-OFFSTAGE + travelled, 1.0) } else { (1.0 + OFFSTAGE - travelled, -1.0) }
            }
            Path::ToAndFro { period, lo, hi } => {
                let phase = (t.rem_euclid(period) / period) as f32;
                if phase < 0.5 {
                    (lo + (hi - lo) * 2.0 * phase, 1.0)
                } else {
                    (hi - (hi - lo) * (2.0 * phase - 1.0), -1.0)
                }
            }
        }
    }
}

/// One scripted person.
#[derive(Clone, Copy, Debug)]
struct Walker {
    /// Where their feet are, as a fraction of the height; lower is nearer, and bigger.
    feet_v: f32,
    path: Path,
    outfit: Outfit,
    /// Shoulder width relative to an average build.
    build: f32,
}

/// Walks in every scenario; in the hallway script, carries the handgun.
const GUNMAN: Walker = Walker {
    feet_v: 0.86,
    // Enters so as to be a little way in from the left at 8 s and mid-frame by 16 s.
    path: Path::Across { period: 30.0, enter: 1.77, rightward: true },
    outfit: Outfit {
        skin: [224, 188, 158],
        hair: [52, 38, 28],
        top: [44, 52, 82],
        bottom: [52, 62, 88],
        shoes: [28, 28, 28],
    },
    build: 1.0,
};

/// In the armed scenario the gunman paces up and down, never leaving the frame.
const PACING_GUNMAN: Walker = Walker { path: Path::ToAndFro { period: 20.0, lo: 0.15, hi: 0.6 }, ..GUNMAN };

/// Carries the phone from 22 s to 30 s, walking right to left across the middle distance.
const TEXTER: Walker = Walker {
    feet_v: 0.74,
    path: Path::Across { period: 20.0, enter: 17.4, rightward: false },
    outfit: Outfit {
        skin: [150, 104, 76],
        hair: [24, 20, 18],
        top: [168, 44, 42],
        bottom: [172, 152, 112],
        shoes: [90, 60, 40],
    },
    build: 0.9,
};

/// A quick walker close to the camera.
const HURRIER: Walker = Walker {
    feet_v: 0.95,
    path: Path::Across { period: 15.0, enter: 1.75, rightward: true },
    outfit: Outfit {
        skin: [196, 150, 118],
        hair: [92, 64, 40],
        top: [62, 108, 64],
        bottom: [96, 96, 96],
        shoes: [220, 220, 216],
    },
    build: 1.1,
};

/// A slow walker far down the hall.
const STROLLER: Walker = Walker {
    feet_v: 0.66,
    path: Path::Across { period: 60.0, enter: 40.0, rightward: false },
    outfit: Outfit {
        skin: [110, 76, 56],
        hair: [20, 18, 16],
        top: [188, 156, 70],
        bottom: [34, 34, 36],
        shoes: [40, 40, 40],
    },
    build: 1.0,
};

/// What the scenario has the gunman and the texter holding at scene time `t`.
fn props(scenario: Scenario, t: f64) -> (Option<MarkerKind>, Option<MarkerKind>) {
    let s = t.rem_euclid(SCRIPT_PERIOD);
    match scenario {
        Scenario::Hallway => {
            let gun = (8.0..16.0).contains(&s) || (38.0..44.0).contains(&s);
            let phone = (22.0..30.0).contains(&s);
            (gun.then_some(MarkerKind::Handgun), phone.then_some(MarkerKind::Phone))
        }
        Scenario::Quiet => (None, None),
        Scenario::Armed => (Some(MarkerKind::Handgun), None),
    }
}

/// A person as drawn in one frame, in pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Figure {
    x: f32,
    feet_y: f32,
    height: f32,
    /// +1 facing right, -1 facing left.
    facing: f32,
    /// Leg swing, -1..=1.
    stride: f32,
    outfit: Outfit,
    build: f32,
    carrying: Option<MarkerKind>,
    /// Pixels per design pixel, for the markers' size.
    scale: f32,
}

/// Everyone in the scene at time `t` in a `width` x `height` frame, farthest first.
pub(crate) fn cast(scenario: Scenario, t: f64, width: usize, height: usize) -> Vec<Figure> {
    let (gun, phone) = props(scenario, t);
    let gunman = if scenario == Scenario::Armed { PACING_GUNMAN } else { GUNMAN };
    let (w, h) = (width as f32, height as f32);
    // Listed farthest first so nearer people are drawn over farther ones.
    [(STROLLER, None), (TEXTER, phone), (gunman, gun), (HURRIER, None)]
        .into_iter()
        .map(|(walker, carrying)| {
            let (u, facing) = walker.path.at(t);
            // Standing height shrinks towards the wall, roughly as perspective would.
            let size = (walker.feet_v - 0.2) * 0.62 * h;
            // Legs swing with distance walked, one full stride per 0.6 body heights.
            let stride = (u * w / (0.3 * size) * PI).sin();
            Figure {
                x: u * w,
                feet_y: walker.feet_v * h,
                height: size,
                facing,
                stride,
                outfit: walker.outfit,
                build: walker.build,
                carrying,
                scale: h / DESIGN_HEIGHT,
            }
        })
        .collect()
}

impl Figure {
    /// A height down the body, from 0 at the top of the head to 1 at the feet, in pixels.
    fn at(&self, f: f32) -> f32 {
        self.feet_y - self.height + f * self.height
    }

    /// Half the torso's width.
    fn half_torso(&self) -> f32 {
        0.12 * self.height * self.build
    }

    /// Draws the person, but not what they carry (see [`Figure::marker`]).
    pub(crate) fn draw(&self, c: &mut Canvas<'_>) {
        let p = self.height;
        let o = &self.outfit;
        let (x, d, tw) = (self.x, self.facing, self.half_torso());

        // Legs first, so the torso covers the hips.
        let swing = 0.06 * p * self.stride;
        for centre in [x - 0.05 * p + swing, x + 0.05 * p - swing] {
            c.fill_rect(
                Rect { x1: centre - 0.042 * p, y1: self.at(0.5), x2: centre + 0.042 * p, y2: self.at(0.97) },
                o.bottom,
            );
            let toe = centre + d * 0.015 * p;
            c.fill_rect(Rect { x1: toe - 0.055 * p, y1: self.at(0.97), x2: toe + 0.055 * p, y2: self.feet_y }, o.shoes);
        }

        // Arms hang at the sides, except the one holding something out.
        for side in [-1.0, 1.0] {
            if self.carrying.is_some() && side == d {
                continue;
            }
            let inner = x + side * tw;
            let outer = x + side * (tw + 0.05 * p);
            c.fill_rect(Rect::spanning(inner, self.at(0.19), outer, self.at(0.48)), o.top);
            c.fill_rect(Rect::spanning(inner, self.at(0.48), outer, self.at(0.53)), o.skin);
        }
        c.fill_rect(Rect { x1: x - tw, y1: self.at(0.17), x2: x + tw, y2: self.at(0.55) }, o.top);
        c.fill_rect(Rect { x1: x - 0.03 * p, y1: self.at(0.135), x2: x + 0.03 * p, y2: self.at(0.18) }, o.skin);
        c.fill_ellipse(x, self.at(0.075), 0.068 * p, 0.072 * p, o.hair);
        c.fill_ellipse(x + d * 0.012 * p, self.at(0.095), 0.06 * p, 0.062 * p, o.skin);

        match self.carrying {
            Some(MarkerKind::Handgun) => {
                // Arm held straight out in front, at chest height.
                let shoulder = x + d * tw;
                let wrist = x + d * (tw + 0.17 * p);
                c.fill_rect(Rect::spanning(shoulder, self.at(0.28), wrist, self.at(0.33)), o.top);
                c.fill_rect(Rect::spanning(wrist, self.at(0.275), self.hand_end(), self.at(0.335)), o.skin);
            }
            Some(MarkerKind::Phone) => {
                // Forearm raised across the chest, phone held up in front.
                let elbow = x + d * (tw + 0.03 * p);
                c.fill_rect(Rect::spanning(x + d * 0.3 * tw, self.at(0.33), elbow, self.at(0.375)), o.top);
                c.fill_rect(Rect::spanning(x + d * 0.3 * tw, self.at(0.375), x + d * tw, self.at(0.40)), o.top);
            }
            None => {}
        }
    }

    /// Where the outstretched hand ends.
    fn hand_end(&self) -> f32 {
        self.x + self.facing * (self.half_torso() + 0.205 * self.height)
    }

    /// What the person carries and where, on whole pixels, if anything.
    pub(crate) fn marker(&self) -> Option<(MarkerKind, Rect)> {
        let kind = self.carrying?;
        let (design_w, design_h) = match kind {
            MarkerKind::Handgun => HANDGUN_SIZE,
            MarkerKind::Phone => PHONE_SIZE,
        };
        let (mw, mh) = ((design_w * self.scale).round().max(2.0), (design_h * self.scale).round().max(2.0));
        let (grip_x, centre_y) = match kind {
            // Held out at the end of the arm, pointing the way they walk.
            MarkerKind::Handgun => (self.hand_end(), self.at(0.305)),
            // Held in front of the chest, a little towards the walking side.
            MarkerKind::Phone => (self.x + self.facing * 0.6 * self.half_torso(), self.at(0.33)),
        };
        let (x0, y0) = (grip_x.round(), (centre_y - mh / 2.0).round());
        let r = match kind {
            MarkerKind::Handgun => Rect::spanning(x0, y0, x0 + self.facing * mw, y0 + mh),
            MarkerKind::Phone => {
                Rect { x1: x0 - (mw / 2.0).round(), y1: y0, x2: x0 - (mw / 2.0).round() + mw, y2: y0 + mh }
            }
        };
        Some((kind, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_to_four_people_are_in_view_throughout_the_script() {
        for scenario in [Scenario::Hallway, Scenario::Armed] {
            for tenth in 0..600 {
                let cast = cast(scenario, f64::from(tenth) / 10.0, 640, 360);
                // In view if any of the torso is inside the frame.
                let in_view =
                    cast.iter().filter(|f| f.x + f.half_torso() > 0.0 && f.x - f.half_torso() < 640.0).count();
                assert!((2..=4).contains(&in_view), "{scenario:?} at {tenth} tenths: {in_view} people");
            }
        }
    }

    #[test]
    fn the_script_repeats_every_minute() {
        for tenth in (0..600).step_by(7) {
            let t = f64::from(tenth) / 10.0;
            let (now, later) =
                (cast(Scenario::Hallway, t, 640, 360), cast(Scenario::Hallway, t + SCRIPT_PERIOD, 640, 360));
            for (a, b) in now.iter().zip(&later) {
                assert!((a.x - b.x).abs() < 1e-3 && a.carrying == b.carrying, "at {t} s");
            }
        }
    }
}
