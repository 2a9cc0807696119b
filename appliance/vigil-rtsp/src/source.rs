//! [`RtspSource`]: pulls decoded pictures from the pipeline's appsink and
//! watches its bus and progress counters for the reason when none come.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vigil_core::{CameraId, Clock, Frame};
use vigil_sources::{FrameSource, SourceError, SourceErrorKind};

use crate::classify::{self, BusError, Camera, Reached};
use crate::picture::{Picture, Unpacker};
use crate::pipeline::{self, Shared};
use crate::url::{CameraUrl, scrub};
use crate::{RtspOptions, Transport};

/// How often a wait for a picture stops to look at the bus and the counters.
/// A picture ends the wait at once; only errors are noticed this late.
const POLL: Duration = Duration::from_millis(100);

/// One RTSP camera's decoded pictures, as packed RGB frames.
///
/// Each frame's `captured` time is the camera's own clock where the camera
/// sends RTCP sender reports and its clock is within 10 s of ours (the
/// report's NTP time becomes `captured.wall`, and `captured.mono` is our
/// monotonic time moved back by the frame's age); otherwise, and for the
/// first frames before any report arrives, it is `clock.now()` when the
/// picture is pulled from GStreamer's appsink. The pipeline is stopped and
/// its threads joined on drop.
pub struct RtspSource {
    camera: CameraId,
    url: CameraUrl,
    secrets: Vec<String>,
    has_credentials: bool,
    udp: bool,
    stall_timeout: Duration,
    pipeline: gst::Pipeline,
    bus: gst::Bus,
    rtspsrc: gst::Element,
    sink: gst_app::AppSink,
    shared: Arc<Shared>,
    unpacker: Unpacker,
    seq: u64,
    /// The first frame, taken by `open` to prove the stream works.
    first: Option<Frame>,
    ended: bool,
}

impl RtspSource {
    /// Connects to the camera and waits for its first picture, at most `options.connect_timeout`.
    pub fn open(camera: CameraId, clock: Arc<dyn Clock>, options: RtspOptions) -> Result<RtspSource, SourceError> {
        let url = CameraUrl::parse(&options.url).map_err(SourceError::invalid_options)?;
        validate(&options, &url.redacted)?;
        gst::init().map_err(|e| {
            SourceError::new(SourceErrorKind::Unsupported, format!("{}: GStreamer cannot start: {e}", url.redacted))
        })?;
        // Credentials from the config win over those in the URL.
        let username = options.username.clone().or_else(|| url.username.clone());
        let password = options.password.clone().or_else(|| url.password.clone());
        let secrets: Vec<String> = [&username, &password, &url.username, &url.password]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        let built = pipeline::build(&url.location, username.as_deref(), password.as_deref(), &options)
            .map_err(|e| SourceError::new(SourceErrorKind::Unsupported, format!("{}: {}", url.redacted, e)))?;
        let mut source = RtspSource {
            camera: camera.clone(),
            has_credentials: username.is_some() || password.is_some(),
            udp: options.transport != Transport::Tcp,
            url,
            secrets,
            stall_timeout: options.stall_timeout,
            bus: built.pipeline.bus().expect("a pipeline has a bus"),
            pipeline: built.pipeline,
            rtspsrc: built.rtspsrc,
            sink: built.sink,
            shared: built.shared,
            unpacker: Unpacker::new(camera, clock),
            seq: 0,
            first: None,
            ended: false,
        };
        tracing::debug!(camera = %source.camera, url = %source.url.redacted, transport = ?options.transport, "opening rtsp camera");
        if source.pipeline.set_state(gst::State::Playing).is_err() {
            // The reason, if any, is on the bus.
            source.check_bus()?;
            return Err(source.camera().error(SourceErrorKind::Unreachable, "the pipeline would not start"));
        }
        let Some(picture) = source.pull(Wait::Connect(options.connect_timeout))? else {
            return Err(source.camera().error(SourceErrorKind::Unreachable, "the camera ended the stream at once"));
        };
        let frame = source.frame(picture)?;
        {
            let stream = source.shared.stream();
            tracing::info!(
                camera = %source.camera,
                url = %source.url.redacted,
                codec = %stream.codec.map(|c| c.to_string()).unwrap_or_default(),
                decoder = stream.decoder.as_deref().unwrap_or(""),
                width = frame.width,
                height = frame.height,
                "rtsp camera streaming"
            );
        }
        source.first = Some(frame);
        Ok(source)
    }

    /// This camera, for building errors.
    fn camera(&self) -> Camera<'_> {
        Camera { url: &self.url.redacted, secrets: &self.secrets, has_credentials: self.has_credentials, udp: self.udp }
    }

    /// Waits for the next picture; `Ok(None)` at end of stream.
    fn pull(&mut self, wait: Wait) -> Result<Option<Picture>, SourceError> {
        let started = Instant::now();
        let mut progress_at = started;
        let mut decoded = self.shared.decoded.load(Ordering::Relaxed);
        let mut packets = self.shared.packets.load(Ordering::Relaxed);
        loop {
            // A failure to build the decoding branch first: it is the cause of
            // whatever "not-linked" error rtspsrc then posts on the bus.
            if let Some((kind, why)) = self.shared.stream().failure.take() {
                return Err(self.camera().error(kind, &why));
            }
            if self.check_bus()? {
                return Ok(None);
            }
            if let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::from_nseconds(POLL.as_nanos() as u64)) {
                return match self.unpacker.picture(&sample) {
                    Ok(picture) => Ok(Some(picture)),
                    Err(why) => Err(self.camera().error(SourceErrorKind::BadStream, &why)),
                };
            }
            if self.sink.is_eos() {
                return Ok(None);
            }
            let now = Instant::now();
            match wait {
                Wait::Connect(timeout) if now - started >= timeout => {
                    return Err(self.connect_timed_out(timeout));
                }
                Wait::Connect(_) => {}
                Wait::Stream => {
                    let d = self.shared.decoded.load(Ordering::Relaxed);
                    if d != decoded {
                        (decoded, progress_at) = (d, now);
                        packets = self.shared.packets.load(Ordering::Relaxed);
                    } else if now - progress_at >= self.stall_timeout {
                        let still_coming = self.shared.packets.load(Ordering::Relaxed) != packets;
                        let c = self.camera();
                        return Err(classify::stall(&c, still_coming, self.stall_timeout));
                    }
                }
            }
        }
    }

    /// The error for a camera that offered only video this crate cannot decode, if that is what happened.
    fn nothing_decodable(&self) -> Option<SourceError> {
        let stream = self.shared.stream();
        (stream.codec.is_none() && !stream.rejected.is_empty())
            .then(|| classify::unsupported_encodings(&self.camera(), &stream.rejected))
    }

    fn connect_timed_out(&self, waited: Duration) -> SourceError {
        if let Some(e) = self.nothing_decodable() {
            return e;
        }
        let c = self.camera();
        let reached = if self.shared.packets.load(Ordering::Relaxed) > 0 {
            Reached::Packets
        } else if self.shared.described.load(Ordering::Relaxed) {
            Reached::Described
        } else {
            Reached::Nothing
        };
        classify::connect_timeout(&c, reached, waited)
    }

    /// Drains the bus: `Err` for an error, `Ok(true)` at end of stream.
    fn check_bus(&self) -> Result<bool, SourceError> {
        use gst::MessageType as T;
        while let Some(msg) = self.bus.pop_filtered(&[T::Error, T::Eos, T::Warning, T::Latency]) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    // rtspsrc reports "no supported stream" in its own words; ours say which codec.
                    if let Some(e) = self.nothing_decodable() {
                        return Err(e);
                    }
                    let c = self.camera();
                    let from_network =
                        msg.src().is_some_and(|s| s == &self.rtspsrc || s.has_as_ancestor(&self.rtspsrc));
                    let rtsp_status = e.details().and_then(|d| d.get::<u32>("rtsp-status-code").ok());
                    let err = e.error();
                    let debug = e.debug();
                    return Err(classify::bus_error(
                        &c,
                        &BusError { error: &err, debug: debug.as_deref(), rtsp_status, from_network },
                    ));
                }
                gst::MessageView::Eos(_) => return Ok(true),
                gst::MessageView::Warning(w) => {
                    let said = scrub(&w.error().to_string(), &self.secrets);
                    tracing::warn!(camera = %self.camera, url = %self.url.redacted, warning = %said, "rtsp pipeline warning");
                }
                gst::MessageView::Latency(_) => {
                    let _ = self.pipeline.recalculate_latency();
                }
                _ => {}
            }
        }
        Ok(false)
    }

    /// `picture` as the next frame.
    fn frame(&mut self, picture: Picture) -> Result<Frame, SourceError> {
        let Picture { width, height, rgb, captured } = picture;
        let frame = Frame::new(self.camera.clone(), self.seq, captured, width, height, rgb)
            .map_err(|why| self.camera().error(SourceErrorKind::BadStream, &why))?;
        self.seq += 1;
        Ok(frame)
    }
}

impl FrameSource for RtspSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        if self.ended {
            return Ok(None);
        }
        match self.pull(Wait::Stream)? {
            Some(picture) => self.frame(picture).map(Some),
            None => {
                tracing::info!(camera = %self.camera, url = %self.url.redacted, "the camera ended the stream");
                self.ended = true;
                Ok(None)
            }
        }
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        // Joins every streaming thread; rtspsrc sends TEARDOWN on the way.
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// What a pull waits for.
#[derive(Clone, Copy)]
enum Wait {
    /// The first picture, within this long of opening.
    Connect(Duration),
    /// The next picture, failing after the stall timeout without progress.
    Stream,
}

/// Options that cannot work, named by field.
fn validate(o: &RtspOptions, url: &str) -> Result<(), SourceError> {
    let bad = |field: &str, why: &str| Err(SourceError::invalid_options(format!("{url}: {field} {why}")));
    if o.fit.is_some_and(|(w, h)| w == 0 || h == 0) {
        return bad("fit", "must be at least 1x1");
    }
    if o.fps_cap.is_some_and(|f| !(f.is_finite() && f > 0.0)) {
        return bad("fps_cap", "must be a positive number");
    }
    if o.connect_timeout.is_zero() {
        return bad("connect_timeout", "must be more than zero");
    }
    if o.stall_timeout.is_zero() {
        return bad("stall_timeout", "must be more than zero");
    }
    Ok(())
}
