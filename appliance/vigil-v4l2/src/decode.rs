//! One buffer from the device to one picture, riding out the odd corrupt frame.
//!
//! A USB camera on a marginal cable or a busy hub sends the occasional broken
//! JPEG; failing the stream for each would make the supervisor reopen the
//! device, losing more frames than the one that was bad. So a bad frame is
//! skipped and counted, and only a run of them fails the stream.

use std::sync::Arc;

use vigil_core::CameraId;
use vigil_sources::{SourceError, SourceErrorKind};

use crate::PixelFormat;
use crate::convert::{downscale, fit_size, mjpeg_to_rgb, yuyv_to_rgb};
use crate::negotiate::Mode;

/// This many corrupt frames in a row fail the stream.
pub(crate) const MAX_BAD_IN_A_ROW: u32 = 10;

/// A decoded picture, already fitted to the requested box.
#[derive(Debug)]
pub(crate) struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgb: Arc<[u8]>,
}

/// What came of one buffer.
#[derive(Debug)]
pub(crate) enum Decoded {
    Picture(Picture),
    /// The frame was corrupt and is skipped; the error says why, for the log.
    Skipped(SourceError),
}

/// Turns the device's buffers into pictures for one camera, reusing its working buffers.
pub(crate) struct FrameDecoder {
    camera: CameraId,
    mode: Mode,
    fit: Option<(u32, u32)>,
    bad_in_a_row: u32,
    bad_total: u64,
    rgb: Vec<u8>,
    scaled: Vec<u8>,
    jpeg: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder for frames in `mode`, shrinking them to fit `fit` if given.
    pub fn new(camera: CameraId, mode: Mode, fit: Option<(u32, u32)>) -> FrameDecoder {
        FrameDecoder {
            camera,
            mode,
            fit,
            bad_in_a_row: 0,
            bad_total: 0,
            rgb: Vec::new(),
            scaled: Vec::new(),
            jpeg: Vec::new(),
        }
    }

    /// Decodes `bytes`, the device's frame number `frame`; a `BadStream` error after
    /// [`MAX_BAD_IN_A_ROW`] corrupt frames in a row.
    pub fn decode(&mut self, frame: u64, bytes: &[u8]) -> Result<Decoded, SourceError> {
        let Mode { format, width, height, bytes_per_line, .. } = self.mode;
        let decoded = match format {
            PixelFormat::Yuyv => {
                yuyv_to_rgb(bytes, width, height, bytes_per_line as usize, &mut self.rgb).map(|()| (width, height))
            }
            PixelFormat::Mjpeg => mjpeg_to_rgb(bytes, &mut self.jpeg, &mut self.rgb),
        };
        match decoded {
            Ok((w, h)) => {
                self.bad_in_a_row = 0;
                Ok(Decoded::Picture(self.fitted(w, h)))
            }
            Err(why) => self.reject(frame, &why),
        }
    }

    /// Counts frame `frame` as corrupt for `why` without looking at it (the driver flagged it).
    pub fn reject(&mut self, frame: u64, why: &str) -> Result<Decoded, SourceError> {
        self.bad_in_a_row += 1;
        self.bad_total += 1;
        let message = format!("camera {}: frame {frame} is corrupt: {why}", self.camera);
        if self.bad_in_a_row >= MAX_BAD_IN_A_ROW {
            return Err(SourceError::new(
                SourceErrorKind::BadStream,
                format!(
                    "{message}; {} corrupt {} frames in a row, so the stream is given up; check the cable and \
                     the USB port (a hub shared with other cameras can starve it)",
                    self.bad_in_a_row, self.mode.format
                ),
            ));
        }
        Ok(Decoded::Skipped(SourceError::new(SourceErrorKind::BadStream, message)))
    }

    /// Corrupt frames skipped since the decoder was made.
    pub fn bad_frames(&self) -> u64 {
        self.bad_total
    }

    fn fitted(&mut self, width: u32, height: u32) -> Picture {
        if let Some(bounds) = self.fit {
            let (w, h) = fit_size(width, height, bounds);
            if (w, h) != (width, height) {
                downscale(&self.rgb, width, height, w, h, &mut self.scaled);
                return Picture { width: w, height: h, rgb: Arc::from(&self.scaled[..]) };
            }
        }
        Picture { width, height, rgb: Arc::from(&self.rgb[..]) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::tests::{flat_yuyv, jpeg_of};

    fn decoder(mode: Mode, fit: Option<(u32, u32)>) -> FrameDecoder {
        FrameDecoder::new(CameraId::new("gym"), mode, fit)
    }

    fn mjpeg_mode() -> Mode {
        Mode { format: PixelFormat::Mjpeg, width: 64, height: 48, bytes_per_line: 0, fps: Some(30.0) }
    }

    fn picture(d: Decoded) -> Picture {
        match d {
            Decoded::Picture(p) => p,
            Decoded::Skipped(e) => panic!("skipped: {e}"),
        }
    }

    #[test]
    fn a_corrupt_frame_is_skipped_naming_camera_and_frame() {
        let mut d = decoder(mjpeg_mode(), None);
        let Decoded::Skipped(err) = d.decode(41, b"not a jpeg at all").unwrap() else { panic!("decoded garbage") };
        assert_eq!(err.kind(), SourceErrorKind::BadStream);
        let message = err.to_string();
        assert!(message.contains("camera gym") && message.contains("frame 41"), "{message}");
        let good = picture(d.decode(42, &jpeg_of(&[200, 30, 30].repeat(64 * 48), 64, 48)).unwrap());
        assert_eq!((good.width, good.height, good.rgb.len()), (64, 48, 64 * 48 * 3));
        assert_eq!(d.bad_frames(), 1);
    }

    #[test]
    fn ten_corrupt_frames_in_a_row_fail_the_stream_but_nine_do_not() {
        let good = jpeg_of(&[10, 200, 10].repeat(64 * 48), 64, 48);
        let mut d = decoder(mjpeg_mode(), None);
        for round in 0..3u64 {
            for i in 0..MAX_BAD_IN_A_ROW - 1 {
                assert!(matches!(
                    d.decode(round * 100 + u64::from(i), &[0xFF, 0xD8, 0, 1]).unwrap(),
                    Decoded::Skipped(_)
                ));
            }
            picture(d.decode(round * 100 + 50, &good).unwrap());
        }
        for i in 0..MAX_BAD_IN_A_ROW - 1 {
            d.decode(1000 + u64::from(i), &[]).unwrap();
        }
        let err = d.decode(1009, &[]).unwrap_err();
        assert_eq!(err.kind(), SourceErrorKind::BadStream);
        assert!(
            err.to_string().contains("frame 1009") && err.to_string().contains("10 corrupt MJPG frames in a row"),
            "{err}"
        );
        assert_eq!(d.bad_frames(), 3 * 9 + 10);
    }

    #[test]
    fn frames_flagged_by_the_driver_count_as_corrupt() {
        let mut d = decoder(mjpeg_mode(), None);
        let Decoded::Skipped(err) = d.reject(7, "the driver flagged the buffer as corrupt").unwrap() else { panic!() };
        assert!(err.to_string().contains("frame 7 is corrupt: the driver flagged"), "{err}");
    }

    #[test]
    fn yuyv_frames_are_fitted_to_the_box_keeping_aspect() {
        let mode = Mode { format: PixelFormat::Yuyv, width: 160, height: 90, bytes_per_line: 336, fps: None };
        let mut d = decoder(mode, Some((64, 64)));
        let p = picture(d.decode(0, &flat_yuyv([40, 120, 220], 160, 90, 336)).unwrap());
        assert_eq!((p.width, p.height, p.rgb.len()), (64, 36, 64 * 36 * 3));
        for px in p.rgb.chunks_exact(3) {
            for (got, want) in px.iter().zip([40u8, 120, 220]) {
                assert!(got.abs_diff(want) <= 4, "{px:?}");
            }
        }
    }

    #[test]
    fn a_truncated_yuyv_buffer_is_skipped_not_a_panic() {
        let mode = Mode { format: PixelFormat::Yuyv, width: 16, height: 8, bytes_per_line: 32, fps: None };
        let mut d = decoder(mode, None);
        let full = flat_yuyv([1, 2, 3], 16, 8, 32);
        let Decoded::Skipped(err) = d.decode(3, &full[..full.len() - 1]).unwrap() else { panic!() };
        assert!(err.to_string().contains("needs 256"), "{err}");
    }
}
