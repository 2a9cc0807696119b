//! The hallway behind the people: drawn once per scene, copied into every frame.
//!
//! Everything is laid out in fractions of the frame (`u` across, `v` down), so
//! any frame size gets the same picture.

/// Where the wall meets the floor.
const FLOOR_TOP: f32 = 0.60;

/// The floor's vanishing point height; floor boards run towards it.
const VANISHING_V: f32 = 0.05;

const CEILING: [u8; 3] = [204, 204, 199];
const CEILING_LIGHT: [u8; 3] = [240, 240, 230];
const WALL: [u8; 3] = [158, 158, 153];
const BASEBOARD: [u8; 3] = [86, 82, 78];
const DOOR_TRIM: [u8; 3] = [104, 98, 90];
const DOOR: [u8; 3] = [128, 92, 60];
const DOOR_WINDOW: [u8; 3] = [176, 183, 186];
const DOOR_HANDLE: [u8; 3] = [196, 186, 150];
const LOCKER_GAP: [u8; 3] = [62, 63, 64];
const LOCKER_VENT: [u8; 3] = [74, 76, 78];
const CORK: [u8; 3] = [168, 128, 82];
const NOTICE: [u8; 3] = [232, 229, 218];
const FLOOR_SEAM: [u8; 3] = [138, 108, 76];
/// Board tones, picked per board so the floor looks laid rather than painted.
const BOARDS: [[u8; 3]; 4] = [[198, 166, 122], [186, 152, 108], [206, 176, 132], [178, 146, 104]];

/// A bank of lockers: `u` span and body colour.
const LOCKER_BANKS: [(f32, f32, [u8; 3]); 2] = [(0.27, 0.62, [96, 110, 130]), (0.85, 1.0, [124, 130, 92])];
/// Doors: `u` span.
const DOORS: [(f32, f32); 2] = [(0.12, 0.22), (0.70, 0.80)];
const LOCKER_WIDTH: f32 = 0.035;

/// Renders the empty hallway as packed RGB.
pub(crate) fn render(width: usize, height: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        let v = (y as f32 + 0.5) / height as f32;
        for x in 0..width {
            let u = (x as f32 + 0.5) / width as f32;
            rgb.extend_from_slice(&pixel(u, v));
        }
    }
    rgb
}

fn within(x: f32, lo: f32, hi: f32) -> bool {
    (lo..hi).contains(&x)
}

fn pixel(u: f32, v: f32) -> [u8; 3] {
    if v < 0.10 {
        ceiling(u, v)
    } else if v < FLOOR_TOP {
        wall(u, v)
    } else {
        floor(u, v)
    }
}

fn ceiling(u: f32, v: f32) -> [u8; 3] {
    let in_light = [0.15, 0.5, 0.85].iter().any(|&c| within(u, c - 0.07, c + 0.07));
    if in_light && within(v, 0.03, 0.07) { CEILING_LIGHT } else { CEILING }
}

fn wall(u: f32, v: f32) -> [u8; 3] {
    if v >= FLOOR_TOP - 0.025 {
        return BASEBOARD;
    }
    if let Some(&(l, r)) = DOORS.iter().find(|&&(l, r)| within(u, l - 0.008, r + 0.008)) {
        return door(u, v, l, r);
    }
    if let Some(&(l, r, body)) = LOCKER_BANKS.iter().find(|&&(l, r, _)| within(u, l, r)) {
        return locker(u, v, l, r, body);
    }
    if within(u, 0.635, 0.685) && within(v, 0.25, 0.38) {
        let paper =
            (within(u, 0.642, 0.660) && within(v, 0.265, 0.31)) || (within(u, 0.665, 0.678) && within(v, 0.30, 0.36));
        return if paper { NOTICE } else { CORK };
    }
    // A little darker towards the ceiling, as under ceiling lights.
    shade(WALL, 0.92 + 0.08 * (v - 0.10) / (FLOOR_TOP - 0.10))
}

fn door(u: f32, v: f32, l: f32, r: f32) -> [u8; 3] {
    if v < 0.18 {
        return WALL;
    }
    if !within(u, l, r) || v < 0.188 {
        return DOOR_TRIM;
    }
    if within(u, l + 0.025, r - 0.025) && within(v, 0.23, 0.36) {
        return DOOR_WINDOW;
    }
    if within(u, r - 0.02, r - 0.01) && within(v, 0.40, 0.415) {
        return DOOR_HANDLE;
    }
    DOOR
}

fn locker(u: f32, v: f32, l: f32, r: f32, body: [u8; 3]) -> [u8; 3] {
    if v < 0.20 {
        return WALL;
    }
    let along = (u - l) / LOCKER_WIDTH;
    let frac = along.fract();
    if frac < 0.08 || u > r - 0.003 || v < 0.205 {
        return LOCKER_GAP;
    }
    let vent = within(v, 0.24, 0.30) && within(frac, 0.25, 0.75) && ((v - 0.24) * 150.0) as i32 % 2 == 0;
    if vent {
        return LOCKER_VENT;
    }
    if within(frac, 0.78, 0.88) && within(v, 0.38, 0.42) {
        return LOCKER_GAP;
    }
    body
}

fn floor(u: f32, v: f32) -> [u8; 3] {
    // Boards run towards the vanishing point, so each has a constant slope
    // (u - 0.5) / (v - VANISHING_V); depth along the floor goes as 1 / (v - VANISHING_V).
    let rise = v - VANISHING_V;
    let across = (u - 0.5) / rise / 0.075;
    let board = across.floor() as i32;
    let depth = 1.0 / rise;
    // Board ends are staggered by a per-board offset.
    let stagger = (board.rem_euclid(5) as f32) * 0.21;
    let seam = across - across.floor() < 0.05 || (depth * 5.0 + stagger).fract() < 0.035;
    let base = if seam { FLOOR_SEAM } else { BOARDS[board.rem_euclid(BOARDS.len() as i32) as usize] };
    // Brighter nearer the camera, where the light falls on the floor.
    shade(base, 0.86 + 0.14 * (v - FLOOR_TOP) / (1.0 - FLOOR_TOP))
}

/// Scales a colour's brightness, which keeps its hue and so its place under the colour rule.
fn shade(c: [u8; 3], k: f32) -> [u8; 3] {
    c.map(|x| (f32::from(x) * k).round().clamp(0.0, 255.0) as u8)
}
