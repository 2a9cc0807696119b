//! The YUV4MPEG2 stream header: one text line of space-separated fields.

use std::fmt;
use std::path::Path;

use crate::error::SourceError;

/// The text every .y4m file starts with.
pub(crate) const MAGIC: &[u8] = b"YUV4MPEG2";

/// The longest stream header line accepted, so a file that is not y4m at all
/// fails fast instead of being scanned for a newline.
pub(crate) const MAX_HEADER_LEN: u64 = 1024;

/// The largest width or height accepted; bigger is either a corrupt header or
/// not a camera this appliance can analyse, and would allocate gigabytes.
pub(crate) const MAX_DIMENSION: u32 = 8192;

/// A frame rate as a fraction, the way y4m and most containers state it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRate {
    /// Frames per `den` seconds.
    pub num: u32,
    /// Seconds per `num` frames.
    pub den: u32,
}

impl FrameRate {
    /// A whole number of frames per second.
    pub fn per_second(fps: u32) -> FrameRate {
        FrameRate { num: fps, den: 1 }
    }

    /// Frames per second as a float.
    pub fn fps(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.num, self.den)
    }
}

/// How the file samples colour; every 4:2:0 siting variant is read the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chroma {
    /// Cb and Cr at half width and half height.
    Yuv420,
    /// Cb and Cr at half width, full height.
    Yuv422,
    /// Cb and Cr at full resolution.
    Yuv444,
    /// Luma only.
    Mono,
}

impl Chroma {
    /// log2 of the horizontal and vertical chroma subsampling.
    pub(crate) fn shifts(self) -> (u32, u32) {
        match self {
            Chroma::Yuv420 => (1, 1),
            Chroma::Yuv422 => (1, 0),
            Chroma::Yuv444 | Chroma::Mono => (0, 0),
        }
    }

    /// Width and height of each chroma plane, rounding up for odd sizes.
    pub(crate) fn plane_size(self, width: usize, height: usize) -> (usize, usize) {
        match self {
            Chroma::Mono => (0, 0),
            _ => {
                let (sx, sy) = self.shifts();
                (width.div_ceil(1 << sx), height.div_ceil(1 << sy))
            }
        }
    }

    /// Bytes of picture data after each FRAME line.
    pub(crate) fn frame_len(self, width: usize, height: usize) -> usize {
        let (cw, ch) = self.plane_size(width, height);
        width * height + 2 * cw * ch
    }
}

/// What the stream header says about every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) rate: FrameRate,
    pub(crate) chroma: Chroma,
}

/// Parses the stream header line, without its newline.
pub(crate) fn parse(line: &[u8], path: &Path) -> Result<Header, SourceError> {
    let path = path.display();
    let Some(fields) = line.strip_prefix(MAGIC) else {
        return Err(SourceError::bad_format(format!(
            "{path} is not a YUV4MPEG2 file: it does not start with \"YUV4MPEG2 \""
        )));
    };
    if !(fields.is_empty() || fields.starts_with(b" ")) {
        return Err(SourceError::bad_format(format!(
            "{path} is not a YUV4MPEG2 file: \"YUV4MPEG2\" is not followed by a space"
        )));
    }

    let mut width = None;
    let mut height = None;
    // ffmpeg assumes 25 fps when F is missing; doing the same reads what it reads.
    let mut rate = FrameRate::per_second(25);
    // The format's stated default when C is absent.
    let mut chroma = Chroma::Yuv420;
    for field in fields.split(|&b| b == b' ').filter(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]);
        match field[0] {
            b'W' => width = Some(dimension(&value, "W (width)", &path)?),
            b'H' => height = Some(dimension(&value, "H (height)", &path)?),
            b'F' => rate = frame_rate(&value, &path)?,
            b'C' => chroma = colour_space(&value, &path)?,
            // Interlacing, pixel aspect and extensions change nothing about how
            // the bytes decode into a picture for detection, so they are accepted and ignored.
            b'I' | b'A' | b'X' => {}
            _ => {
                return Err(SourceError::bad_format(format!(
                    "{path}: stream header has unknown field \"{}\"; expected W, H, F, C, I, A or X",
                    String::from_utf8_lossy(field)
                )));
            }
        }
    }
    let missing = |name: &str| SourceError::bad_format(format!("{path}: stream header lacks field {name}"));
    let width = width.ok_or_else(|| missing("W (width)"))?;
    let height = height.ok_or_else(|| missing("H (height)"))?;
    Ok(Header { width, height, rate, chroma })
}

fn dimension(value: &str, name: &str, path: &impl fmt::Display) -> Result<u32, SourceError> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 && n <= MAX_DIMENSION => Ok(n),
        Ok(n) if n > MAX_DIMENSION => Err(SourceError::unsupported(format!(
            "{path}: stream header field {name} is {n}, larger than the {MAX_DIMENSION} pixels supported"
        ))),
        _ => Err(SourceError::bad_format(format!(
            "{path}: stream header field {name} must be a positive whole number, got \"{value}\""
        ))),
    }
}

fn frame_rate(value: &str, path: &impl fmt::Display) -> Result<FrameRate, SourceError> {
    let parsed = value.split_once(':').and_then(|(n, d)| Some((n.parse::<u32>().ok()?, d.parse::<u32>().ok()?)));
    match parsed {
        Some((num, den)) if num > 0 && den > 0 => Ok(FrameRate { num, den }),
        _ => Err(SourceError::bad_format(format!(
            "{path}: stream header field F (frame rate) must be two positive whole numbers like \"30:1\", got \"{value}\""
        ))),
    }
}

fn colour_space(value: &str, path: &impl fmt::Display) -> Result<Chroma, SourceError> {
    match value {
        "420jpeg" | "420paldv" | "420mpeg2" | "420" => Ok(Chroma::Yuv420),
        "422" => Ok(Chroma::Yuv422),
        "444" => Ok(Chroma::Yuv444),
        "mono" => Ok(Chroma::Mono),
        _ => Err(SourceError::unsupported(format!(
            "{path}: stream header field C (colour space) is \"{value}\", which is not supported; \
             convert to 420jpeg, 420paldv, 420mpeg2, 420, 422, 444 or mono (8 bits)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceErrorKind;

    fn parse_str(line: &str) -> Result<Header, SourceError> {
        parse(line.as_bytes(), Path::new("cam.y4m"))
    }

    #[test]
    fn full_header_with_tolerated_fields() {
        let h = parse_str("YUV4MPEG2 W640 H360 F30000:1001 Ip A1:1 C420mpeg2 XYSCSS=420MPEG2").unwrap();
        assert_eq!(
            h,
            Header { width: 640, height: 360, rate: FrameRate { num: 30000, den: 1001 }, chroma: Chroma::Yuv420 }
        );
    }

    #[test]
    fn defaults_are_420_at_25_fps() {
        let h = parse_str("YUV4MPEG2 W2 H2").unwrap();
        assert_eq!((h.rate, h.chroma), (FrameRate::per_second(25), Chroma::Yuv420));
    }

    #[test]
    fn every_supported_colour_space() {
        for (c, want) in [
            ("420jpeg", Chroma::Yuv420),
            ("420paldv", Chroma::Yuv420),
            ("420", Chroma::Yuv420),
            ("422", Chroma::Yuv422),
            ("444", Chroma::Yuv444),
            ("mono", Chroma::Mono),
        ] {
            assert_eq!(parse_str(&format!("YUV4MPEG2 W4 H4 F10:1 C{c}")).unwrap().chroma, want);
        }
    }

    #[test]
    fn bad_fields_are_named() {
        for (line, needle, kind) in [
            ("YUV4MPEG2 H4", "field W (width)", SourceErrorKind::BadFormat),
            ("YUV4MPEG2 W4", "field H (height)", SourceErrorKind::BadFormat),
            ("YUV4MPEG2 Wabc H4", "field W (width)", SourceErrorKind::BadFormat),
            ("YUV4MPEG2 W4 H0", "field H (height)", SourceErrorKind::BadFormat),
            ("YUV4MPEG2 W99999 H4", "field W (width)", SourceErrorKind::Unsupported),
            ("YUV4MPEG2 W4 H4 F0:1", "field F (frame rate)", SourceErrorKind::BadFormat),
            ("YUV4MPEG2 W4 H4 F30", "field F (frame rate)", SourceErrorKind::BadFormat),
            ("YUV4MPEG2 W4 H4 C420p10", "field C (colour space)", SourceErrorKind::Unsupported),
            ("YUV4MPEG2 W4 H4 Q1", "unknown field \"Q1\"", SourceErrorKind::BadFormat),
            ("YUV4MPEG W4 H4", "not a YUV4MPEG2 file", SourceErrorKind::BadFormat),
            ("YUV4MPEG2W4 H4", "not followed by a space", SourceErrorKind::BadFormat),
        ] {
            let err = parse_str(line).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(needle) && msg.starts_with("cam.y4m"), "{line}: {msg}");
            assert_eq!(err.kind(), kind, "{line}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }

    #[test]
    fn odd_sizes_round_chroma_up() {
        assert_eq!(Chroma::Yuv420.frame_len(5, 3), 15 + 2 * 3 * 2);
        assert_eq!(Chroma::Yuv422.frame_len(5, 3), 15 + 2 * 3 * 3);
        assert_eq!(Chroma::Yuv444.frame_len(5, 3), 45);
        assert_eq!(Chroma::Mono.frame_len(5, 3), 15);
    }
}
