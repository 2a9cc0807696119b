//! BT.601 limited-range conversion between Y'CbCr planes and packed RGB, in
//! 16.16 fixed point: y4m files carry no colour metadata and BT.601 limited
//! range is what every y4m writer assumes.

use super::header::Chroma;

const KR: f64 = 0.299;
const KB: f64 = 0.114;
const KG: f64 = 1.0 - KR - KB;
/// Luma spans 16..=235 and chroma 16..=240 in limited range.
const Y_RANGE: f64 = 219.0 / 255.0;
const C_RANGE: f64 = 224.0 / 255.0;

const fn fixed(x: f64) -> i32 {
    (if x >= 0.0 { x * 65536.0 + 0.5 } else { x * 65536.0 - 0.5 }) as i32
}

const HALF: i32 = 1 << 15;

// Decoding: R'G'B' from Y'CbCr.
const Y_TO_RGB: i32 = fixed(1.0 / Y_RANGE);
const CR_TO_R: i32 = fixed(2.0 * (1.0 - KR) / C_RANGE);
const CB_TO_G: i32 = fixed(2.0 * KB * (1.0 - KB) / KG / C_RANGE);
const CR_TO_G: i32 = fixed(2.0 * KR * (1.0 - KR) / KG / C_RANGE);
const CB_TO_B: i32 = fixed(2.0 * (1.0 - KB) / C_RANGE);

// Encoding: Y'CbCr from R'G'B'.
const R_TO_Y: i32 = fixed(Y_RANGE * KR);
const G_TO_Y: i32 = fixed(Y_RANGE * KG);
const B_TO_Y: i32 = fixed(Y_RANGE * KB);
const R_TO_CB: i32 = fixed(-C_RANGE * 0.5 * KR / (1.0 - KB));
const G_TO_CB: i32 = fixed(-C_RANGE * 0.5 * KG / (1.0 - KB));
const B_TO_CB: i32 = fixed(C_RANGE * 0.5);
const R_TO_CR: i32 = fixed(C_RANGE * 0.5);
const G_TO_CR: i32 = fixed(-C_RANGE * 0.5 * KG / (1.0 - KR));
const B_TO_CR: i32 = fixed(-C_RANGE * 0.5 * KB / (1.0 - KR));

fn clamp_u8(x: i32) -> u8 {
    x.clamp(0, 255) as u8
}

/// One pixel from its luma and its (already centred) chroma terms.
#[inline(always)]
fn rgb(y: u8, r_term: i32, g_term: i32, b_term: i32) -> [u8; 3] {
    let l = (i32::from(y) - 16) * Y_TO_RGB + HALF;
    [clamp_u8((l + r_term) >> 16), clamp_u8((l + g_term) >> 16), clamp_u8((l + b_term) >> 16)]
}

/// Decodes one frame's planes (`chroma.frame_len(width, height)` bytes) into
/// `out` (`width * height * 3` bytes), upsampling chroma by repetition.
pub(crate) fn yuv_to_rgb(chroma: Chroma, width: usize, height: usize, planes: &[u8], out: &mut [u8]) {
    let (luma, rest) = planes.split_at(width * height);
    if chroma == Chroma::Mono {
        for (px, &y) in out.chunks_exact_mut(3).zip(luma) {
            px.copy_from_slice(&rgb(y, 0, 0, 0));
        }
        return;
    }
    let (cw, ch) = chroma.plane_size(width, height);
    let (cb_plane, cr_plane) = rest.split_at(cw * ch);
    let (sx, sy) = chroma.shifts();
    let mut terms = vec![(0i32, 0i32, 0i32); cw];
    for (row, (out_row, y_row)) in out.chunks_exact_mut(width * 3).zip(luma.chunks_exact(width)).enumerate() {
        // Chroma terms are shared by the 2 (or 4) pixels of a sample, so work
        // them out once per chroma row rather than once per pixel.
        if row & ((1 << sy) - 1) == 0 {
            let crow = row >> sy;
            let cbs = &cb_plane[crow * cw..][..cw];
            let crs = &cr_plane[crow * cw..][..cw];
            for ((t, &cb), &cr) in terms.iter_mut().zip(cbs).zip(crs) {
                let cb = i32::from(cb) - 128;
                let cr = i32::from(cr) - 128;
                *t = (CR_TO_R * cr, -CB_TO_G * cb - CR_TO_G * cr, CB_TO_B * cb);
            }
        }
        for (x, (px, &y)) in out_row.chunks_exact_mut(3).zip(y_row).enumerate() {
            let (r, g, b) = terms[x >> sx];
            px.copy_from_slice(&rgb(y, r, g, b));
        }
    }
}

fn luma(r: i32, g: i32, b: i32) -> u8 {
    clamp_u8((R_TO_Y * r + G_TO_Y * g + B_TO_Y * b + (16 << 16) + HALF) >> 16)
}

/// Encodes packed RGB as 4:2:0 planes into `out`, each chroma sample from the
/// mean of the (up to four) pixels it covers.
pub(crate) fn rgb_to_yuv420(width: usize, height: usize, rgb: &[u8], out: &mut Vec<u8>) {
    let (cw, ch) = Chroma::Yuv420.plane_size(width, height);
    out.clear();
    out.extend(rgb.chunks_exact(3).map(|p| luma(i32::from(p[0]), i32::from(p[1]), i32::from(p[2]))));
    let mut cr_plane = Vec::with_capacity(cw * ch);
    let row_len = width * 3;
    for cy in 0..ch {
        // At an odd edge the last row or column is counted twice, which
        // leaves the mean of the pixels that are there unchanged.
        let top = &rgb[cy * 2 * row_len..][..row_len];
        let bottom = rgb.get((cy * 2 + 1) * row_len..(cy * 2 + 2) * row_len).unwrap_or(top);
        for cx in 0..cw {
            let (left, right) = (cx * 6, (cx * 6 + 3).min(row_len - 3));
            let sum = |c: usize| {
                i32::from(top[left + c])
                    + i32::from(top[right + c])
                    + i32::from(bottom[left + c])
                    + i32::from(bottom[right + c])
            };
            let (r, g, b) = (sum(0), sum(1), sum(2));
            // The sums are four pixels' worth, hence the extra shift by 2.
            let chroma =
                |kr: i32, kg: i32, kb: i32| clamp_u8((((kr * r + kg * g + kb * b) >> 2) + (128 << 16) + HALF) >> 16);
            out.push(chroma(R_TO_CB, G_TO_CB, B_TO_CB));
            cr_plane.push(chroma(R_TO_CR, G_TO_CR, B_TO_CR));
        }
    }
    out.extend_from_slice(&cr_plane);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_444(y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let mut out = [0; 3];
        yuv_to_rgb(Chroma::Yuv444, 1, 1, &[y, cb, cr], &mut out);
        out
    }

    fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
        a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= tolerance)
    }

    #[test]
    fn reference_colours_decode() {
        // Limited-range BT.601 codes of the primaries, as published.
        for (yuv, want) in [
            ((16, 128, 128), [0, 0, 0]),
            ((235, 128, 128), [255, 255, 255]),
            ((81, 90, 240), [255, 0, 0]),
            ((145, 54, 34), [0, 255, 0]),
            ((41, 240, 110), [0, 0, 255]),
        ] {
            let got = decode_444(yuv.0, yuv.1, yuv.2);
            assert!(close(got, want, 2), "{yuv:?} -> {got:?}, want {want:?}");
        }
    }

    #[test]
    fn every_flat_colour_survives_encode_then_decode() {
        for r in (0..=255).step_by(15) {
            for g in (0..=255).step_by(15) {
                for b in (0..=255).step_by(15) {
                    let rgb_in = [r as u8, g as u8, b as u8].repeat(4);
                    let mut planes = Vec::new();
                    rgb_to_yuv420(2, 2, &rgb_in, &mut planes);
                    let mut rgb_out = [0; 12];
                    yuv_to_rgb(Chroma::Yuv420, 2, 2, &planes, &mut rgb_out);
                    assert!(close(rgb_out[..3].try_into().unwrap(), [r as u8, g as u8, b as u8], 3), "{r},{g},{b}");
                }
            }
        }
    }
}
