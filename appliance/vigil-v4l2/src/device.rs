//! The one module that touches the device, through the `v4l` crate: open,
//! enumerate, set the mode, stream through memory-mapped buffers.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use v4l::buffer::{Flags as BufferFlags, Type};
use v4l::capability::Flags as DeviceCaps;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::parameters::Capabilities as ParamCaps;
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Format, FourCC, Fraction};
use vigil_core::{CameraId, Clock, Frame, Moment};
use vigil_sources::{FrameSource, SourceError, SourceErrorKind};

use crate::decode::{Decoded, FrameDecoder};
use crate::negotiate::{self, Applied, FormatOffer, FourCc, Interval, Mode, Rates, SizeOffer, Sizes, StepRange};
use crate::{PixelFormat, V4l2Options};

/// Buffers shared with the driver: one being decoded, the rest filling, so a
/// slow decode drops frames in the driver rather than stalling it.
const BUFFERS: u32 = 4;

/// A driver timestamp older than this is not trusted (a driver bug, or the machine was suspended).
const MAX_STAMP_AGE: Duration = Duration::from_secs(1);

/// Frames from a V4L2 capture device, as RGB.
///
/// Error messages name the device node; corrupt-frame errors also name the
/// camera and the driver's frame number. Corrupt frames are skipped and
/// counted ([`V4l2Source::bad_frames`]); ten in a row fail the stream.
pub struct V4l2Source {
    stream: Stream<'static>,
    camera: CameraId,
    clock: Arc<dyn Clock>,
    path: PathBuf,
    stall_timeout: Duration,
    decoder: FrameDecoder,
    mode: Mode,
    notes: Vec<String>,
    /// Whether a first frame has been asked of the stream, which starts it.
    started: bool,
    seq: u64,
    last_captured: Option<Moment>,
}

impl V4l2Source {
    /// Opens `options.device`, negotiates a mode and sets up streaming; frames flow from the first `next_frame`.
    pub fn open(camera: CameraId, clock: Arc<dyn Clock>, options: V4l2Options) -> Result<V4l2Source, SourceError> {
        options.validate()?;
        let path = options.device.clone();
        let device = Device::with_path(&path).map_err(|e| open_error(&path, &e))?;
        let caps = device.query_caps().map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTTY | libc::EINVAL) => SourceError::new(
                SourceErrorKind::Unsupported,
                format!("{} is not a V4L2 device; give a /dev/videoN node", path.display()),
            ),
            _ => device_error(&path, "asking the capabilities of", &e),
        })?;
        if !caps.capabilities.contains(DeviceCaps::VIDEO_CAPTURE) {
            return Err(SourceError::new(
                SourceErrorKind::Unsupported,
                format!(
                    "{} ({}) does not capture video; a USB camera also makes a metadata node, try the other /dev/videoN \
                     (v4l2-ctl --list-devices shows which)",
                    path.display(),
                    caps.card
                ),
            ));
        }
        if !caps.capabilities.contains(DeviceCaps::STREAMING) {
            return Err(SourceError::new(
                SourceErrorKind::Unsupported,
                format!("{} ({}) cannot stream through shared buffers, which Vigil needs", path.display(), caps.card),
            ));
        }

        let request = negotiate::choose(&offers(&device, &options)?, &options)?;
        let fourcc = FourCC::new(&request.format.fourcc());
        let set = device
            .set_format(&Format::new(request.width, request.height, fourcc))
            .map_err(|e| device_error(&path, "setting the format of", &e))?;
        let interval = set_interval(&device, request.interval)
            .map_err(|e| device_error(&path, "setting the frame rate of", &e))?;
        let negotiated = negotiate::applied(
            &options,
            &request,
            Applied {
                fourcc: FourCc(set.fourcc.repr),
                width: set.width,
                height: set.height,
                bytes_per_line: set.stride,
                interval,
            },
        )?;
        for note in &negotiated.notes {
            warn!(camera = %camera, device = %path.display(), "{note}");
        }
        info!(camera = %camera, device = %path.display(), card = %caps.card, mode = %negotiated.mode, "V4L2 camera opened");

        let mut stream = Stream::with_buffers(&device, Type::VideoCapture, BUFFERS)
            .map_err(|e| device_error(&path, "setting up capture buffers on", &e))?;
        // Only bounds the very first wait, which happens inside the stream as it starts; see `wait_for_frame`.
        stream.set_timeout(Duration::from_millis(poll_ms(options.stall_timeout).unsigned_abs().into()));
        let mode = negotiated.mode;
        Ok(V4l2Source {
            stream,
            decoder: FrameDecoder::new(camera.clone(), mode.clone(), options.fit),
            camera,
            clock,
            path,
            stall_timeout: options.stall_timeout,
            mode,
            notes: negotiated.notes,
            started: false,
            seq: 0,
            last_captured: None,
        })
    }

    /// The mode the driver set.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// How the mode differs from the options (another size, format or rate), in words; empty when it does not.
    pub fn adjustments(&self) -> &[String] {
        &self.notes
    }

    /// Corrupt frames skipped since the source was opened.
    pub fn bad_frames(&self) -> u64 {
        self.decoder.bad_frames()
    }

    /// Waits until the driver has a filled buffer, or the stall timeout passes.
    fn wait_for_frame(&self) -> Result<(), SourceError> {
        let deadline = Instant::now() + self.stall_timeout;
        let handle = self.stream.handle();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match handle.poll(libc::POLLIN, poll_ms(left)) {
                Ok(0) if left.is_zero() => return Err(self.stalled()),
                Ok(0) => {}
                Ok(_) => return Ok(()),
                // A signal for some other thread of the process; keep waiting.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(device_error(&self.path, "waiting for a frame from", &e)),
            }
        }
    }

    fn stalled(&self) -> SourceError {
        SourceError::new(
            SourceErrorKind::Stalled,
            format!(
                "camera {}: no frame from {} for {:?}; check the camera's cable and power",
                self.camera,
                self.path.display(),
                self.stall_timeout
            ),
        )
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            // The stream's `next` hands the previous buffer back to the driver,
            // then takes the next filled one; the first call queues them all and
            // starts streaming. Once started, wait here rather than in the stream
            // so a signal does not end the wait.
            if self.started {
                self.wait_for_frame()?;
            }
            self.started = true;
            let (buffer, meta) = match CaptureStream::next(&mut self.stream) {
                Ok(next) => next,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(self.stalled()),
                Err(e) => return Err(device_error(&self.path, "taking a frame from", &e)),
            };
            let now = self.clock.now();
            let mono_now = monotonic_now();
            let frame_no = u64::from(meta.sequence);
            let bytes = &buffer[..(meta.bytesused as usize).min(buffer.len())];
            let decoded = if meta.flags.contains(BufferFlags::ERROR) {
                self.decoder.reject(frame_no, "the driver marked the buffer as corrupt")?
            } else if bytes.is_empty() {
                self.decoder.reject(frame_no, "the driver handed over an empty buffer")?
            } else {
                self.decoder.decode(frame_no, bytes)?
            };
            let picture = match decoded {
                Decoded::Picture(picture) => picture,
                Decoded::Skipped(err) => {
                    // The first and then every hundredth: a camera that garbles every
                    // other frame would otherwise log at half its frame rate.
                    let bad_frames = self.decoder.bad_frames();
                    if bad_frames % 100 == 1 {
                        warn!(camera = %self.camera, bad_frames, "skipping a frame: {err}");
                    }
                    continue;
                }
            };
            let monotonic = meta.flags & BufferFlags::TIMESTAMP_MASK == BufferFlags::TIMESTAMP_MONOTONIC;
            let stamp = (monotonic && meta.timestamp.sec >= 0 && (0..1_000_000).contains(&meta.timestamp.usec))
                .then(|| Duration::new(meta.timestamp.sec as u64, meta.timestamp.usec as u32 * 1000));
            let captured = capture_time(now, mono_now, stamp, self.last_captured);
            self.last_captured = Some(captured);
            let frame = Frame::new(self.camera.clone(), self.seq, captured, picture.width, picture.height, picture.rgb)
                .map_err(|e| SourceError::new(SourceErrorKind::BadStream, format!("camera {}: {e}", self.camera)))?;
            self.seq += 1;
            return Ok(Some(frame));
        }
    }
}

/// What the device offers: every format, with sizes and rates for the ones this crate decodes.
fn offers(device: &Device, options: &V4l2Options) -> Result<Vec<FormatOffer>, SourceError> {
    let formats = device.enum_formats().map_err(|e| device_error(&options.device, "listing the formats of", &e))?;
    Ok(formats
        .iter()
        .map(|d| {
            let fourcc = FourCc(d.fourcc.repr);
            let sizes = if PixelFormat::from_fourcc(fourcc.0).is_some() {
                sizes(device, d.fourcc, options)
            } else {
                Vec::new()
            };
            FormatOffer { fourcc, sizes }
        })
        .collect())
}

/// The sizes offered for `fourcc`, each with its rates; none if the driver does not enumerate them.
fn sizes(device: &Device, fourcc: FourCC, options: &V4l2Options) -> Vec<SizeOffer> {
    let Ok(sizes) = device.enum_framesizes(fourcc) else {
        return Vec::new();
    };
    sizes
        .into_iter()
        .map(|s| {
            let (sizes, (width, height)) = match s.size {
                FrameSizeEnum::Discrete(d) => {
                    (Sizes::Discrete { width: d.width, height: d.height }, (d.width, d.height))
                }
                FrameSizeEnum::Stepwise(s) => {
                    let range = StepRange {
                        min_width: s.min_width,
                        max_width: s.max_width,
                        step_width: s.step_width,
                        min_height: s.min_height,
                        max_height: s.max_height,
                        step_height: s.step_height,
                    };
                    (Sizes::Stepwise(range), range.nearest(options.width, options.height))
                }
            };
            SizeOffer { sizes, rates: rates(device, fourcc, width, height) }
        })
        .collect()
}

/// The rates offered for `fourcc` at one size.
fn rates(device: &Device, fourcc: FourCC, width: u32, height: u32) -> Rates {
    let Ok(intervals) = device.enum_frameintervals(fourcc, width, height) else {
        return Rates::Unknown;
    };
    let interval = |f: Fraction| Interval { num: f.numerator, den: f.denominator };
    let mut discrete = Vec::new();
    for i in intervals {
        match i.interval {
            FrameIntervalEnum::Discrete(f) => discrete.push(interval(f)),
            FrameIntervalEnum::Stepwise(s) => {
                let continuous = i.typ == v4l::v4l_sys::v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_CONTINUOUS;
                return Rates::Stepwise {
                    min: interval(s.min),
                    max: interval(s.max),
                    step: (!continuous).then(|| interval(s.step)),
                };
            }
        }
    }
    if discrete.is_empty() { Rates::Unknown } else { Rates::Discrete(discrete) }
}

/// Asks for `want` as the time per frame; the interval the driver set, `None` if it cannot set one.
fn set_interval(device: &Device, want: Interval) -> io::Result<Option<Interval>> {
    let unsupported = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL));
    let current = match device.params() {
        Ok(params) => params,
        Err(e) if unsupported(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    if !current.capabilities.contains(ParamCaps::TIME_PER_FRAME) {
        return Ok(None);
    }
    match device.set_params(&Parameters::new(Fraction::new(want.num, want.den))) {
        Ok(set) => Ok(Some(Interval { num: set.interval.numerator, den: set.interval.denominator })),
        Err(e) if unsupported(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `d` in whole milliseconds for poll(2), rounded up so a wait never ends early.
fn poll_ms(d: Duration) -> i32 {
    i32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
}

/// CLOCK_MONOTONIC, the clock V4L2 stamps buffers with.
fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 || ts.tv_sec < 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// When the frame was taken, on the source clock's terms.
///
/// Drivers stamp buffers with CLOCK_MONOTONIC (`stamp`, when the buffer says
/// so) as the frame arrived. `mono_now` is CLOCK_MONOTONIC read just after
/// `now`, so `mono_now - stamp` is the frame's age and the frame was taken at
/// `now` less that age, on both the clock's monotonic and wall readings. That
/// holds for any clock that advances with CLOCK_MONOTONIC, as `SystemClock`
/// does (std's `Instant` is CLOCK_MONOTONIC on Linux). A stamp from the future
/// or older than [`MAX_STAMP_AGE`] is not trusted and the frame is stamped
/// `now`. Frames never go back in time: at the earliest, the previous frame's time.
fn capture_time(now: Moment, mono_now: Duration, stamp: Option<Duration>, previous: Option<Moment>) -> Moment {
    let age = stamp.and_then(|s| mono_now.checked_sub(s)).filter(|&age| age <= MAX_STAMP_AGE);
    let taken = match age {
        Some(age) => Moment { mono: now.mono.saturating_sub(age), wall: now.wall.saturating_sub(age) },
        None => now,
    };
    match previous {
        Some(previous) if previous.mono > taken.mono => previous,
        _ => taken,
    }
}

/// The error for a failed open of `path`, with what to do about it.
fn open_error(path: &Path, err: &io::Error) -> SourceError {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENXIO | libc::ENODEV) => SourceError::new(
            SourceErrorKind::Unreachable,
            format!(
                "no such device {}; check the camera is plugged in and the path is right \
                 (ls /dev/video* /dev/v4l/by-id)",
                path.display()
            ),
        ),
        _ => device_error(path, "opening", err),
    }
}

/// The error for a failed operation on `path`; `doing` says what, e.g. "setting the format of".
fn device_error(path: &Path, doing: &str, err: &io::Error) -> SourceError {
    let path = path.display();
    match err.raw_os_error() {
        Some(libc::ENODEV) => SourceError::new(
            SourceErrorKind::Unreachable,
            format!("{path} went away while {doing} it; the camera was unplugged or its USB link reset"),
        ),
        Some(libc::EBUSY) => SourceError::new(
            SourceErrorKind::Unreachable,
            format!("{path} is in use by another program; stop that program (fuser -v {path} names it)"),
        ),
        Some(libc::EACCES | libc::EPERM) => SourceError::new(
            SourceErrorKind::Io,
            format!(
                "no permission for {doing} {path} ({err}); add the user vigild runs as to the `video` group \
                 (usermod -aG video USER)"
            ),
        ),
        _ => SourceError::new(SourceErrorKind::Io, format!("{doing} {path} failed: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn open_failures_say_what_to_do() {
        let path = Path::new("/dev/video3");
        let err = open_error(path, &errno(libc::ENOENT));
        assert_eq!(err.kind(), SourceErrorKind::Unreachable);
        assert!(err.to_string().starts_with("no such device /dev/video3; check the camera is plugged in"), "{err}");
        let err = open_error(path, &errno(libc::EACCES));
        assert_eq!(err.kind(), SourceErrorKind::Io);
        assert!(err.to_string().contains("`video` group"), "{err}");
        let err = open_error(path, &errno(libc::EBUSY));
        assert_eq!(err.kind(), SourceErrorKind::Unreachable);
        assert!(err.to_string().contains("/dev/video3 is in use by another program"), "{err}");
        let err = open_error(path, &errno(libc::EIO));
        assert_eq!(err.kind(), SourceErrorKind::Io);
        assert!(err.to_string().starts_with("opening /dev/video3 failed:"), "{err}");
    }

    #[test]
    fn an_unplugged_camera_is_unreachable() {
        let err = device_error(Path::new("/dev/video0"), "taking a frame from", &errno(libc::ENODEV));
        assert_eq!(err.kind(), SourceErrorKind::Unreachable);
        assert_eq!(
            err.to_string(),
            "/dev/video0 went away while taking a frame from it; the camera was unplugged or its USB link reset"
        );
        let err = device_error(Path::new("/dev/video0"), "setting up capture buffers on", &errno(libc::EBUSY));
        assert_eq!(err.kind(), SourceErrorKind::Unreachable);
    }

    fn at(mono_ms: u64) -> Moment {
        Moment { mono: Duration::from_millis(mono_ms), wall: Duration::from_millis(1_700_000_000_000 + mono_ms) }
    }

    #[test]
    fn driver_timestamps_backdate_the_frame_by_its_age() {
        let now = at(10_000);
        let mono_now = Duration::from_millis(500_000);
        // Taken 40 ms before it was dequeued.
        let taken = capture_time(now, mono_now, Some(Duration::from_millis(499_960)), None);
        assert_eq!(taken, at(9_960));
        // No monotonic stamp, one from the future, one too old: stamped at dequeue.
        assert_eq!(capture_time(now, mono_now, None, None), now);
        assert_eq!(capture_time(now, mono_now, Some(Duration::from_millis(500_001)), None), now);
        assert_eq!(capture_time(now, mono_now, Some(Duration::from_millis(400_000)), None), now);
    }

    #[test]
    fn capture_times_never_go_backwards() {
        let now = at(10_000);
        let mono_now = Duration::from_millis(500_000);
        let previous = at(9_990);
        assert_eq!(capture_time(now, mono_now, Some(Duration::from_millis(499_960)), Some(previous)), previous);
        assert_eq!(capture_time(now, mono_now, None, Some(previous)), now);
    }

    #[test]
    fn poll_waits_round_up_and_saturate() {
        assert_eq!(poll_ms(Duration::from_micros(1)), 1);
        assert_eq!(poll_ms(Duration::ZERO), 0);
        assert_eq!(poll_ms(Duration::from_secs(5)), 5000);
        assert_eq!(poll_ms(Duration::from_secs(u64::MAX / 4)), i32::MAX);
    }
}
