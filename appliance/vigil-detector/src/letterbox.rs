//! Letterboxing: fitting a frame into the model's square input without
//! distorting it, the way Ultralytics trains (grey 114 padding, centred),
//! and mapping boxes back to the frame.

use vigil_core::{BBox, Frame};

/// The grey Ultralytics pads with, as a 0..1 input value.
const PAD: f32 = 114.0 / 255.0;

/// How one frame size maps into one model input size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// Input pixels per frame pixel.
    pub scale: f32,
    /// Left padding in input pixels.
    pub pad_x: u32,
    /// Top padding in input pixels.
    pub pad_y: u32,
    /// Scaled frame width inside the input.
    pub inner_w: u32,
    /// Scaled frame height inside the input.
    pub inner_h: u32,
    /// Model input width.
    pub input_w: u32,
    /// Model input height.
    pub input_h: u32,
}

impl Letterbox {
    /// The mapping of a `frame_w` x `frame_h` frame into an `input_w` x `input_h` input.
    pub fn new(frame_w: u32, frame_h: u32, input_w: u32, input_h: u32) -> Letterbox {
        let scale = (input_w as f32 / frame_w as f32).min(input_h as f32 / frame_h as f32);
        let inner_w = ((frame_w as f32 * scale).round() as u32).clamp(1, input_w);
        let inner_h = ((frame_h as f32 * scale).round() as u32).clamp(1, input_h);
        Letterbox {
            scale,
            pad_x: (input_w - inner_w) / 2,
            pad_y: (input_h - inner_h) / 2,
            inner_w,
            inner_h,
            input_w,
            input_h,
        }
    }

    /// A box in input pixels mapped back to frame pixels, clipped to the frame.
    pub fn to_frame(&self, b: BBox, frame_w: u32, frame_h: u32) -> BBox {
        let (px, py) = (self.pad_x as f32, self.pad_y as f32);
        BBox {
            x1: (b.x1 - px) / self.scale,
            y1: (b.y1 - py) / self.scale,
            x2: (b.x2 - px) / self.scale,
            y2: (b.y2 - py) / self.scale,
        }
        .clamp_to(frame_w as f32, frame_h as f32)
    }

    /// Writes `frame` into `out` as planar RGB f32 in 0..1 (NCHW with N = 1),
    /// resized bilinearly and padded. `out` must hold `3 * input_w * input_h` values.
    pub fn fill_nchw(&self, frame: &Frame, out: &mut [f32]) {
        let (iw, ih) = (self.input_w as usize, self.input_h as usize);
        let plane = iw * ih;
        assert_eq!(out.len(), 3 * plane, "input tensor size does not match the letterbox");
        out.fill(PAD);
        let (fw, fh) = (frame.width as usize, frame.height as usize);
        let src = &frame.rgb[..];
        let norm = 1.0 / 255.0;
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let (px, py) = (self.pad_x as usize, self.pad_y as usize);
        let (w, h) = (self.inner_w as usize, self.inner_h as usize);

        if w == fw && h == fh {
            // Same size (a detect stream at the model's width): a straight conversion.
            for y in 0..h {
                let row = &src[y * fw * 3..(y + 1) * fw * 3];
                let o = (y + py) * iw + px;
                for (x, px) in row.chunks_exact(3).enumerate() {
                    r[o + x] = px[0] as f32 * norm;
                    g[o + x] = px[1] as f32 * norm;
                    b[o + x] = px[2] as f32 * norm;
                }
            }
            return;
        }

        // Bilinear sampling with pixel centres aligned, as cv2.resize does.
        let sample = |inner: usize, outer: usize| -> Vec<(usize, usize, f32)> {
            let ratio = outer as f32 / inner as f32;
            (0..inner)
                .map(|i| {
                    let s = ((i as f32 + 0.5) * ratio - 0.5).max(0.0);
                    let i0 = (s as usize).min(outer - 1);
                    let i1 = (i0 + 1).min(outer - 1);
                    (i0, i1, s - i0 as f32)
                })
                .collect()
        };
        let xs = sample(w, fw);
        let ys = sample(h, fh);
        for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
            let row0 = &src[y0 * fw * 3..(y0 + 1) * fw * 3];
            let row1 = &src[y1 * fw * 3..(y1 + 1) * fw * 3];
            let o = (y + py) * iw + px;
            for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
                let mut v = [0f32; 3];
                for (c, v) in v.iter_mut().enumerate() {
                    let top = row0[x0 * 3 + c] as f32 * (1.0 - fx) + row0[x1 * 3 + c] as f32 * fx;
                    let bottom = row1[x0 * 3 + c] as f32 * (1.0 - fx) + row1[x1 * 3 + c] as f32 * fx;
                    *v = (top * (1.0 - fy) + bottom * fy) * norm;
                }
                r[o + x] = v[0];
                g[o + x] = v[1];
                b[o + x] = v[2];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vigil_core::{CameraId, Moment};

    fn frame(w: u32, h: u32, rgb: impl Fn(u32, u32) -> [u8; 3]) -> Frame {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&rgb(x, y));
            }
        }
        Frame::new(CameraId::new("t"), 0, Moment::default(), w, h, Arc::from(data)).unwrap()
    }

    #[test]
    fn wide_frame_is_padded_top_and_bottom() {
        let lb = Letterbox::new(640, 360, 640, 640);
        assert_eq!((lb.scale, lb.pad_x, lb.pad_y, lb.inner_w, lb.inner_h), (1.0, 0, 140, 640, 360));
        let lb = Letterbox::new(1280, 720, 640, 640);
        assert_eq!((lb.scale, lb.pad_y, lb.inner_h), (0.5, 140, 360));
    }

    #[test]
    fn tall_frame_is_padded_left_and_right() {
        let lb = Letterbox::new(300, 600, 640, 640);
        assert_eq!((lb.pad_x, lb.pad_y, lb.inner_w, lb.inner_h), (160, 0, 320, 640));
    }

    #[test]
    fn boxes_map_back_to_the_frame() {
        let lb = Letterbox::new(1280, 720, 640, 640);
        let b = lb.to_frame(BBox { x1: 100.0, y1: 240.0, x2: 130.0, y2: 260.0 }, 1280, 720);
        assert_eq!(b, BBox { x1: 200.0, y1: 200.0, x2: 260.0, y2: 240.0 });
        let clipped = lb.to_frame(BBox { x1: -10.0, y1: 0.0, x2: 700.0, y2: 640.0 }, 1280, 720);
        assert_eq!(clipped, BBox { x1: 0.0, y1: 0.0, x2: 1280.0, y2: 720.0 });
    }

    #[test]
    fn same_width_copy_is_exact_and_padding_is_grey() {
        let f = frame(640, 360, |x, y| [(x % 256) as u8, (y % 256) as u8, 200]);
        let lb = Letterbox::new(640, 360, 640, 640);
        let mut out = vec![0.0; 3 * 640 * 640];
        lb.fill_nchw(&f, &mut out);
        let plane = 640 * 640;
        assert_eq!(out[0], PAD, "top band");
        assert_eq!(out[639 * 640 + 5], PAD, "bottom band");
        let (x, y) = (77, 50);
        let o = (y + 140) * 640 + x;
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(close(out[o], 77.0 / 255.0));
        assert!(close(out[plane + o], 50.0 / 255.0));
        assert!(close(out[2 * plane + o], 200.0 / 255.0));
    }

    #[test]
    fn downscale_keeps_flat_colours_and_averages_edges() {
        // Left half red, right half blue, 1280 wide into 640.
        let f = frame(1280, 720, |x, _| if x < 640 { [255, 0, 0] } else { [0, 0, 255] });
        let lb = Letterbox::new(1280, 720, 640, 640);
        let mut out = vec![0.0; 3 * 640 * 640];
        lb.fill_nchw(&f, &mut out);
        let plane = 640 * 640;
        let row = (140 + 100) * 640;
        assert_eq!(out[row + 10], 1.0);
        assert_eq!(out[2 * plane + row + 10], 0.0);
        assert_eq!(out[row + 600], 0.0);
        assert_eq!(out[2 * plane + row + 600], 1.0);
        // At exactly 2:1 each output pixel samples between two source pixels
        // of the same half, so the edge stays sharp, as with cv2.resize.
        assert_eq!((out[row + 319], out[row + 320]), (1.0, 0.0));
    }

    #[test]
    fn upscale_of_a_tiny_frame_does_not_index_out_of_bounds() {
        let f = frame(3, 2, |x, y| [x as u8 * 80, y as u8 * 100, 0]);
        let lb = Letterbox::new(3, 2, 64, 64);
        let mut out = vec![0.0; 3 * 64 * 64];
        lb.fill_nchw(&f, &mut out);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
