//! Choosing a capture mode: what the device offers in, what to ask for out;
//! then what the driver actually set, checked and explained.
//!
//! Pure: `device` enumerates the offers and applies the request, so every
//! rule here is tested on made-up devices.

use std::fmt;

use vigil_sources::{SourceError, SourceErrorKind};

use crate::convert::yuyv_row_bytes;
use crate::{PixelFormat, V4l2Options};

/// Above this many pixels MJPEG is preferred: uncompressed YUYV at 1280x720
/// and 30 frames per second is more than a USB 2 link carries.
const MJPEG_ABOVE_PIXELS: u64 = 640 * 480;

/// How far apart two frame rates may be and still count as the same (drivers round).
const RATE_TOLERANCE: f64 = 0.01;

/// A FourCC code as the device reports it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FourCc(pub [u8; 4]);

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Codes are padded with spaces ("Y16 "); anything unprintable is shown as hex so a
        // broken driver still produces a readable message.
        let trimmed = self.0.iter().rposition(|&b| b != b' ').map_or(&self.0[..0], |end| &self.0[..=end]);
        for &b in trimmed {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// Time per frame in seconds, as a fraction (V4L2's `timeperframe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interval {
    pub num: u32,
    pub den: u32,
}

impl Interval {
    /// The interval for `fps` frames per second, exact for whole and hundredth rates.
    pub fn for_fps(fps: f32) -> Interval {
        let fps = f64::from(fps);
        if (fps - fps.round()).abs() < 1e-3 {
            Interval { num: 1, den: fps.round().max(1.0) as u32 }
        } else {
            Interval { num: 1000, den: (fps * 1000.0).round().max(1.0) as u32 }
        }
    }

    /// Frames per second, `None` for a zero fraction (which drivers use for "unknown").
    pub fn fps(self) -> Option<f64> {
        (self.num != 0 && self.den != 0).then(|| f64::from(self.den) / f64::from(self.num))
    }

    fn seconds(self) -> Option<f64> {
        (self.num != 0 && self.den != 0).then(|| f64::from(self.num) / f64::from(self.den))
    }
}

/// The frame rates a device offers at one size.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Rates {
    /// A list of intervals.
    Discrete(Vec<Interval>),
    /// Any interval from `min` to `max` in steps of `step`; `None` for a continuous range.
    Stepwise { min: Interval, max: Interval, step: Option<Interval> },
    /// The driver does not enumerate rates; ask and see what it sets.
    Unknown,
}

/// A range of sizes, as `VIDIOC_ENUM_FRAMESIZES` reports stepwise and continuous sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StepRange {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

impl StepRange {
    /// The size in the range closest to `width` x `height`, rounding up between steps.
    pub fn nearest(&self, width: u32, height: u32) -> (u32, u32) {
        (
            nearest_step(width, self.min_width, self.max_width, self.step_width),
            nearest_step(height, self.min_height, self.max_height, self.step_height),
        )
    }
}

/// `want` clamped to `min..=max` and rounded up to a step from `min` (down if rounding up passes `max`).
fn nearest_step(want: u32, min: u32, max: u32, step: u32) -> u32 {
    let (min, max) = (min.min(max), max.max(min));
    if want <= min {
        return min;
    }
    if want >= max {
        return max;
    }
    let step = step.max(1);
    let up = min + (want - min).div_ceil(step) * step;
    if up <= max { up } else { min + (max - min) / step * step }
}

/// Sizes a device offers for one format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sizes {
    Discrete { width: u32, height: u32 },
    Stepwise(StepRange),
}

/// One entry of `VIDIOC_ENUM_FRAMESIZES` with the rates offered there. For a
/// stepwise range the rates are those at [`StepRange::nearest`] to the wanted size.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SizeOffer {
    pub sizes: Sizes,
    pub rates: Rates,
}

/// One format the device offers; `sizes` is empty for formats not enumerated
/// further (the ones this crate cannot decode) and for drivers that do not enumerate sizes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FormatOffer {
    pub fourcc: FourCc,
    pub sizes: Vec<SizeOffer>,
}

/// What to ask the driver for, with what was given up on the way.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Request {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub interval: Interval,
    /// Where the request differs from the options, in words, for the log.
    pub notes: Vec<String>,
}

/// What the driver set, as `VIDIOC_S_FMT` and `VIDIOC_S_PARM` returned it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Applied {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    pub bytes_per_line: u32,
    /// `None` when the driver does not support setting the rate.
    pub interval: Option<Interval>,
}

/// The mode a camera streams in, as its driver set it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mode {
    /// Pixel format on the wire.
    pub format: PixelFormat,
    /// Width of the frames the device sends.
    pub width: u32,
    /// Height of the frames the device sends.
    pub height: u32,
    /// Bytes from one row to the next in a YUYV buffer (may exceed `width * 2`); 0 for MJPEG.
    pub bytes_per_line: u32,
    /// The frame rate the driver says it set, if it says.
    pub fps: Option<f32>,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} {}", self.width, self.height, self.format)?;
        match self.fps {
            Some(fps) => write!(f, " at {fps:.2} fps"),
            None => write!(f, " at the driver's default rate"),
        }
    }
}

/// The mode set, and every way it differs from what the options asked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Negotiated {
    pub mode: Mode,
    pub notes: Vec<String>,
}

/// The mode to ask for among `offers`, following the rules on [`V4l2Options`].
pub(crate) fn choose(offers: &[FormatOffer], options: &V4l2Options) -> Result<Request, SourceError> {
    let device = options.device.display();
    let mut notes = Vec::new();
    let order: &[PixelFormat] = match options.format {
        Some(PixelFormat::Mjpeg) => &[PixelFormat::Mjpeg],
        Some(PixelFormat::Yuyv) => &[PixelFormat::Yuyv],
        None if u64::from(options.width) * u64::from(options.height) > MJPEG_ABOVE_PIXELS => {
            &[PixelFormat::Mjpeg, PixelFormat::Yuyv]
        }
        None => &[PixelFormat::Yuyv, PixelFormat::Mjpeg],
    };
    let found = order
        .iter()
        .find_map(|&format| offers.iter().find(|o| o.fourcc == FourCc(format.fourcc())).map(|o| (format, o)));
    let Some((format, offer)) = found else {
        let offered = if offers.is_empty() {
            "no capture formats at all".to_string()
        } else {
            offers.iter().map(|o| o.fourcc.to_string()).collect::<Vec<_>>().join(", ")
        };
        let message = match options.format {
            Some(format) => {
                format!("{device} does not offer {format}, which the format option asks for; it offers {offered}")
            }
            None => format!("{device} offers neither MJPG nor YUYV, the formats Vigil decodes; it offers {offered}"),
        };
        return Err(SourceError::new(SourceErrorKind::Unsupported, message));
    };
    if format != order[0] {
        notes.push(format!("{device} does not offer {}; using {format}", order[0]));
    }

    let candidates: Vec<(u32, u32, &Rates)> = offer
        .sizes
        .iter()
        .map(|s| match s.sizes {
            Sizes::Discrete { width, height } => (width, height, &s.rates),
            Sizes::Stepwise(range) => {
                let (w, h) = range.nearest(options.width, options.height);
                (w, h, &s.rates)
            }
        })
        .filter(|&(w, h, _)| w > 0 && h > 0)
        .collect();
    let (width, height, rates) = pick_size(&candidates, options.width, options.height).unwrap_or((
        options.width,
        options.height,
        &Rates::Unknown,
    ));
    if (width, height) != (options.width, options.height) {
        notes.push(format!(
            "{device} offers no {}x{} {format}; asking for {width}x{height}",
            options.width, options.height
        ));
    }

    let interval = pick_rate(rates, options.fps);
    if let Some(fps) = interval.fps()
        && !same_rate(fps, f64::from(options.fps))
    {
        notes.push(format!(
            "{device} offers no {} fps at {width}x{height} {format}; asking for {fps:.2} fps",
            options.fps
        ));
    }
    Ok(Request { format, width, height, interval, notes })
}

/// The exact size, else the smallest at least as large both ways, else the largest.
fn pick_size<'a>(candidates: &[(u32, u32, &'a Rates)], width: u32, height: u32) -> Option<(u32, u32, &'a Rates)> {
    let area = |&(w, h, _): &(u32, u32, &Rates)| u64::from(w) * u64::from(h);
    candidates
        .iter()
        .find(|&&(w, h, _)| (w, h) == (width, height))
        .or_else(|| candidates.iter().filter(|&&(w, h, _)| w >= width && h >= height).min_by_key(|c| area(c)))
        .or_else(|| candidates.iter().max_by_key(|c| area(c)))
        .copied()
}

/// The fastest offered rate not above `fps`, else the slowest offered.
fn pick_rate(rates: &Rates, fps: f32) -> Interval {
    let wanted = f64::from(fps);
    match rates {
        Rates::Discrete(list) => {
            let rated: Vec<(Interval, f64)> = list.iter().filter_map(|&i| i.fps().map(|f| (i, f))).collect();
            let not_above = rated.iter().filter(|&&(_, f)| f <= wanted * (1.0 + 1e-6));
            not_above
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .or_else(|| rated.iter().min_by(|a, b| a.1.total_cmp(&b.1)))
                .map_or_else(|| Interval::for_fps(fps), |&(i, _)| i)
        }
        Rates::Stepwise { min, max, step } => stepwise_rate(*min, *max, *step, fps),
        Rates::Unknown => Interval::for_fps(fps),
    }
}

/// The interval in `min..=max` (steps of `step`) nearest to `1 / fps`, rounded towards the longer interval.
fn stepwise_rate(min: Interval, max: Interval, step: Option<Interval>, fps: f32) -> Interval {
    let (Some(lo), Some(hi)) = (min.seconds(), max.seconds()) else {
        return Interval::for_fps(fps);
    };
    let (lo, hi, lo_i, hi_i) = if lo <= hi { (lo, hi, min, max) } else { (hi, lo, max, min) };
    let want = 1.0 / f64::from(fps);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.max(1e-9);
    let mut t = want.clamp(lo, hi);
    if let Some(st) = step.and_then(Interval::seconds).filter(|&s| s > 0.0) {
        let k = ((t - lo) / st - 1e-9).ceil();
        t = lo + k * st;
        if t > hi && !close(t, hi) {
            t = lo + ((hi - lo) / st + 1e-9).floor() * st;
        }
    }
    if close(t, lo) {
        lo_i
    } else if close(t, hi) {
        hi_i
    } else if close(t, want) {
        Interval::for_fps(fps)
    } else {
        // In UVC's own unit, 100 ns, rounded up so the rate stays at or below the wanted one.
        let units = (t * 1e7).ceil() as u32;
        let g = gcd(units, 10_000_000);
        Interval { num: units / g, den: 10_000_000 / g }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

fn same_rate(a: f64, b: f64) -> bool {
    (a - b).abs() <= RATE_TOLERANCE * b.abs()
}

/// Checks what the driver set against `request`; differences become notes, unusable settings errors.
pub(crate) fn applied(options: &V4l2Options, request: &Request, got: Applied) -> Result<Negotiated, SourceError> {
    let device = options.device.display();
    let Some(format) = PixelFormat::from_fourcc(got.fourcc.0) else {
        return Err(SourceError::new(
            SourceErrorKind::Unsupported,
            format!(
                "the driver of {device} set {} when asked for {}; Vigil decodes only MJPG and YUYV",
                got.fourcc, request.format
            ),
        ));
    };
    if got.width == 0 || got.height == 0 {
        return Err(SourceError::new(
            SourceErrorKind::BadFormat,
            format!("the driver of {device} set an empty {}x{} frame", got.width, got.height),
        ));
    }
    let mut notes = request.notes.clone();
    if format != request.format {
        notes.push(format!("the driver of {device} chose {format} instead of {}", request.format));
    }
    if (got.width, got.height) != (request.width, request.height) {
        notes.push(format!(
            "the driver of {device} chose {}x{} instead of {}x{}",
            got.width, got.height, request.width, request.height
        ));
    }
    let bytes_per_line = match format {
        PixelFormat::Mjpeg => 0,
        PixelFormat::Yuyv => {
            let row = yuyv_row_bytes(got.width);
            let bpl = if got.bytes_per_line == 0 { row } else { got.bytes_per_line as usize };
            match u32::try_from(bpl) {
                Ok(bpl) if bpl as usize >= row => bpl,
                _ => {
                    return Err(SourceError::new(
                        SourceErrorKind::BadFormat,
                        format!(
                            "the driver of {device} set {bpl} bytes per line for {} pixels of YUYV, which need {row}",
                            got.width
                        ),
                    ));
                }
            }
        }
    };
    let fps = got.interval.and_then(Interval::fps);
    if let (Some(got_fps), Some(asked)) = (fps, request.interval.fps())
        && !same_rate(got_fps, asked)
    {
        notes.push(format!("the driver of {device} chose {got_fps:.2} fps instead of {asked:.2}"));
    }
    let mode = Mode { format, width: got.width, height: got.height, bytes_per_line, fps: fps.map(|f| f as f32) };
    Ok(Negotiated { mode, notes })
}

#[cfg(test)]
mod tests;
