//! The GStreamer pipeline behind one camera:
//!
//! ```text
//! rtspsrc ─(pad-added)→ rtpXdepay → Xparse → decoder → videoconvertscale → appsink (RGB, fitted)
//! ```
//!
//! rtspsrc's pad appears only once the camera has described its streams, so
//! the codec branch is built then; the converter and appsink exist from the
//! start. Probes count packets and pictures for the timeout diagnosis and
//! apply the frame-rate cap before any pixel is converted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vigil_sources::SourceErrorKind;

use crate::capture::RateGate;
use crate::{HwDecode, RtspOptions, Transport};

/// What the streaming threads tell the thread that pulls frames.
#[derive(Default)]
pub(crate) struct Shared {
    /// The camera answered with a session description.
    pub(crate) described: AtomicBool,
    /// RTP packets that reached the depayloader. Counted there, not after
    /// it: the depayloader itself may hold back what cannot be decoded.
    pub(crate) packets: AtomicU64,
    /// Pictures that came out of the decoder, capped or not.
    pub(crate) decoded: AtomicU64,
    /// What was chosen and what went wrong while building the codec branch.
    pub(crate) stream: Mutex<StreamInfo>,
}

/// The codec branch as built, for logs and errors.
#[derive(Default)]
pub(crate) struct StreamInfo {
    /// The video codec chosen.
    pub(crate) codec: Option<Codec>,
    /// The decoder element used.
    pub(crate) decoder: Option<String>,
    /// Video encodings the camera offered that cannot be decoded.
    pub(crate) rejected: Vec<String>,
    /// A failure from a streaming thread, reported by the next pull.
    pub(crate) failure: Option<(SourceErrorKind, String)>,
}

impl Shared {
    pub(crate) fn stream(&self) -> std::sync::MutexGuard<'_, StreamInfo> {
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A video codec this crate decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    H264,
    H265,
}

impl Codec {
    /// The codec of an RTP `encoding-name`.
    fn from_encoding(name: &str) -> Option<Codec> {
        match name.to_ascii_uppercase().as_str() {
            "H264" => Some(Codec::H264),
            "H265" => Some(Codec::H265),
            _ => None,
        }
    }

    fn depayloader(self) -> &'static str {
        match self {
            Codec::H264 => "rtph264depay",
            Codec::H265 => "rtph265depay",
        }
    }

    fn parser(self) -> &'static str {
        match self {
            Codec::H264 => "h264parse",
            Codec::H265 => "h265parse",
        }
    }

    /// The parsed stream's media type, to find decoders for it.
    fn media_type(self) -> &'static str {
        match self {
            Codec::H264 => "video/x-h264",
            Codec::H265 => "video/x-h265",
        }
    }

    /// VA-API decoders, newest plugin first.
    fn hardware_decoders(self) -> &'static [&'static str] {
        match self {
            Codec::H264 => &["vah264dec", "vaapih264dec"],
            Codec::H265 => &["vah265dec", "vaapih265dec"],
        }
    }

    fn software_decoder(self) -> &'static str {
        match self {
            Codec::H264 => "avdec_h264",
            Codec::H265 => "avdec_h265",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::H264 => "H.264",
            Codec::H265 => "H.265",
        })
    }
}

/// RTP jitter buffer size: enough to reorder UDP packets, small enough that
/// an alert is not held back.
const LATENCY_MS: u32 = 200;

/// A built, not yet started pipeline.
pub(crate) struct Pipeline {
    pub(crate) pipeline: gst::Pipeline,
    pub(crate) rtspsrc: gst::Element,
    pub(crate) sink: gst_app::AppSink,
    pub(crate) shared: Arc<Shared>,
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("the GStreamer element {factory} is not installed; {}", install_hint(factory)))
}

/// The Debian package that ships `factory`.
fn install_hint(factory: &str) -> &'static str {
    match factory {
        "rtspsrc" | "rtph264depay" | "rtph265depay" => "install gstreamer1.0-plugins-good",
        "h264parse" | "h265parse" => "install gstreamer1.0-plugins-bad",
        f if f.starts_with("avdec") => "install gstreamer1.0-libav",
        _ => "install gstreamer1.0-plugins-base",
    }
}

/// Builds the pipeline for `location` (no credentials in it) with `username`/`password` as rtspsrc properties.
pub(crate) fn build(
    location: &str,
    username: Option<&str>,
    password: Option<&str>,
    options: &RtspOptions,
) -> Result<Pipeline, String> {
    let pipeline = gst::Pipeline::new();
    let rtspsrc = make("rtspsrc")?;
    rtspsrc.set_property("location", location);
    rtspsrc.set_property("latency", LATENCY_MS);
    let protocols = match options.transport {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
        Transport::Auto => "udp+tcp",
    };
    rtspsrc.set_property_from_str("protocols", protocols);
    // rtspsrc's own TCP timeout (20 s by default) would outlast ours.
    rtspsrc.set_property("tcp-timeout", micros(options.connect_timeout));
    if options.transport == Transport::Auto {
        // Fall back from UDP to TCP early enough to still connect in time.
        rtspsrc.set_property("timeout", micros((options.connect_timeout / 2).min(Duration::from_secs(2))));
    }
    if let Some(user) = username {
        rtspsrc.set_property("user-id", user);
    }
    if let Some(pass) = password {
        rtspsrc.set_property("user-pw", pass);
    }
    // The camera's RTCP sender-report clock on every buffer (GStreamer 1.22 and later).
    if rtspsrc.find_property("add-reference-timestamp-meta").is_some() {
        rtspsrc.set_property("add-reference-timestamp-meta", true);
    }

    let convert = match make("videoconvertscale") {
        Ok(c) => c,
        // Before GStreamer 1.22 conversion and scaling were two elements.
        Err(_) => {
            let bin = gst::Bin::new();
            let (c, s) = (make("videoconvert")?, make("videoscale")?);
            bin.add_many([&c, &s]).map_err(|e| e.to_string())?;
            c.link(&s).map_err(|e| e.to_string())?;
            let ghost = |pad: gst::Pad| gst::GhostPad::with_target(&pad).map_err(|e| e.to_string());
            bin.add_pad(&ghost(c.static_pad("sink").expect("videoconvert has a sink pad"))?)
                .map_err(|e| e.to_string())?;
            bin.add_pad(&ghost(s.static_pad("src").expect("videoscale has a src pad"))?).map_err(|e| e.to_string())?;
            bin.upcast()
        }
    };
    let sink = gst_app::AppSink::builder()
        .caps(&output_caps(options.fit))
        .max_buffers(1)
        .drop(true)
        .sync(false)
        .enable_last_sample(false)
        .build();
    pipeline.add_many([&rtspsrc, &convert, sink.upcast_ref()]).map_err(|e| e.to_string())?;
    convert.link(&sink).map_err(|e| format!("cannot link the converter to the sink: {e}"))?;

    let shared = Arc::new(Shared::default());
    let convert_sink = convert.static_pad("sink").expect("the converter has a sink pad");
    count_and_cap(&convert_sink, &shared, options.fps_cap);

    rtspsrc.connect("on-sdp", false, {
        let shared = shared.clone();
        move |_| {
            shared.described.store(true, Ordering::Relaxed);
            None
        }
    });
    rtspsrc.connect("select-stream", false, {
        let shared = shared.clone();
        move |args| Some(select_stream(&shared, args.get(2).and_then(|v| v.get::<gst::Caps>().ok())).to_value())
    });
    let weak_pipeline = pipeline.downgrade();
    let hw = options.hw_decode;
    rtspsrc.connect_pad_added({
        let shared = shared.clone();
        move |_, pad| {
            let Some(pipeline) = weak_pipeline.upgrade() else { return };
            if let Err(why) = add_codec_branch(&pipeline, pad, &convert_sink, &shared, hw) {
                shared.stream().failure.get_or_insert(why);
            }
        }
    });
    Ok(Pipeline { pipeline, rtspsrc, sink, shared })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// RGB, and if `fit` is given no bigger than it with square pixels. The
/// converter's caps fixation then keeps the picture's aspect ratio at the
/// largest size inside the box, and never scales up: a 1920x1080 stream in a
/// 640x640 box becomes 640x360, a 320x240 one stays as it is.
fn output_caps(fit: Option<(u32, u32)>) -> gst::Caps {
    let caps = gst::Caps::builder("video/x-raw").field("format", "RGB");
    match fit {
        Some((w, h)) => caps
            .field("width", up_to(w))
            .field("height", up_to(h))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
        None => caps.build(),
    }
}

/// Any size from 1 to `max` pixels, as a caps field; `max` must be at least 1.
fn up_to(max: u32) -> glib::SendValue {
    match i32::try_from(max).unwrap_or(i32::MAX) {
        // A range must span more than one value.
        1 => 1i32.to_send_value(),
        max => gst::IntRange::new(1, max).to_send_value(),
    }
}

/// Counts decoded pictures and drops those above `fps_cap` before they are converted.
fn count_and_cap(pad: &gst::Pad, shared: &Arc<Shared>, fps_cap: Option<f32>) {
    let shared = shared.clone();
    // Probes are shared closures; only the one streaming thread ever takes this lock.
    let gate = fps_cap.map(|fps| Mutex::new(RateGate::new(fps)));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        shared.decoded.fetch_add(1, Ordering::Relaxed);
        let pts = info.buffer().and_then(|b| b.pts());
        match (&gate, pts) {
            // Handled, not Drop: the probe consumes the buffer itself. With
            // Drop, GStreamer 1.22 logged a CRITICAL unref of a NULL buffer
            // for every picture dropped.
            (Some(gate), Some(pts)) if !gate.lock().unwrap_or_else(|e| e.into_inner()).admit(pts.into()) => {
                gst::PadProbeReturn::Handled
            }
            _ => gst::PadProbeReturn::Ok,
        }
    });
}

/// rtspsrc asks, stream by stream, which to set up: the first video stream
/// this crate can decode, and nothing else (no audio, no metadata).
fn select_stream(shared: &Shared, caps: Option<gst::Caps>) -> bool {
    let Some(s) = caps.as_ref().and_then(|c| c.structure(0)) else { return false };
    if s.get::<&str>("media").ok() != Some("video") {
        return false;
    }
    let encoding = s.get::<&str>("encoding-name").unwrap_or("unknown");
    let mut stream = shared.stream();
    match Codec::from_encoding(encoding) {
        Some(codec) if stream.codec.is_none() => {
            stream.codec = Some(codec);
            true
        }
        Some(_) => false,
        None => {
            stream.rejected.push(encoding.to_string());
            false
        }
    }
}

/// Links rtspsrc's new `pad` through a depayloader, parser and decoder to `convert_sink`.
fn add_codec_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    convert_sink: &gst::Pad,
    shared: &Arc<Shared>,
    hw: HwDecode,
) -> Result<(), (SourceErrorKind, String)> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let encoding = caps.structure(0).and_then(|s| s.get::<&str>("encoding-name").ok()).unwrap_or("unknown");
    let Some(codec) = Codec::from_encoding(encoding) else {
        return Err((
            SourceErrorKind::Unsupported,
            format!("the camera sends {encoding} video; set it to H.264 or H.265"),
        ));
    };
    if convert_sink.is_linked() {
        // A second video stream that rtspsrc set up anyway; nothing reads it.
        return Ok(());
    }
    let unsupported = |e: String| (SourceErrorKind::Unsupported, e);
    let depay = make(codec.depayloader()).map_err(unsupported)?;
    let parse = make(codec.parser()).map_err(unsupported)?;
    let (decoder, name) = decoder(codec, hw).map_err(unsupported)?;
    let internal = |e: String| (SourceErrorKind::BadStream, format!("cannot build the {codec} decoding branch: {e}"));
    let branch = [&depay, &parse, &decoder];
    pipeline.add_many(branch).map_err(|e| internal(e.to_string()))?;
    gst::Element::link_many(branch).map_err(|e| internal(e.to_string()))?;
    decoder
        .static_pad("src")
        .ok_or_else(|| internal("the decoder has no src pad".to_string()))?
        .link(convert_sink)
        .map_err(|e| internal(format!("{e:?}")))?;
    let depay_sink = depay.static_pad("sink").ok_or_else(|| internal("the depayloader has no sink pad".to_string()))?;
    let counter = shared.clone();
    depay_sink.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        let n = match &info.data {
            Some(gst::PadProbeData::BufferList(list)) => list.len() as u64,
            _ => 1,
        };
        counter.packets.fetch_add(n, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    for element in [&decoder, &parse, &depay] {
        element.sync_state_with_parent().map_err(|e| internal(e.to_string()))?;
    }
    pad.link(&depay_sink).map_err(|e| internal(format!("{e:?}")))?;
    shared.stream().decoder = Some(name);
    Ok(())
}

/// A decoder for `codec`: VA-API if allowed and working, else software.
fn decoder(codec: Codec, hw: HwDecode) -> Result<(gst::Element, String), String> {
    if hw == HwDecode::Auto {
        for &name in codec.hardware_decoders() {
            if hardware_works(name)
                && let Ok(e) = gst::ElementFactory::make(name).build()
            {
                return Ok((e, name.to_string()));
            }
        }
    }
    if let Ok(e) = gst::ElementFactory::make(codec.software_decoder()).build() {
        return Ok((e, codec.software_decoder().to_string()));
    }
    // Whatever software decoder the registry ranks highest, as decodebin would pick.
    let caps = gst::Caps::builder(codec.media_type()).build();
    let mut factories: Vec<gst::ElementFactory> = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
        gst::Rank::MARGINAL,
    )
    .into_iter()
    .filter(|f| f.can_sink_any_caps(&caps) && !f.klass().contains("Hardware"))
    .collect();
    factories.sort_by_key(|f| std::cmp::Reverse(f.rank()));
    for factory in factories {
        if let Ok(e) = factory.create().build() {
            return Ok((e, factory.name().to_string()));
        }
    }
    Err(format!("no {codec} decoder is installed; install gstreamer1.0-libav"))
}

/// Whether the hardware decoder `name` exists and can open its device; asked once per process.
///
/// The va plugin registers its elements only for devices it found, but the
/// older vaapi plugin registers them regardless, and either can fail to
/// open a device that is busy or lacks the codec: going to READY opens it.
fn hardware_works(name: &'static str) -> bool {
    static PROBED: OnceLock<Mutex<HashMap<&'static str, bool>>> = OnceLock::new();
    let probed = PROBED.get_or_init(Mutex::default);
    let mut probed = probed.lock().unwrap_or_else(|e| e.into_inner());
    *probed.entry(name).or_insert_with(|| {
        let Ok(element) = gst::ElementFactory::make(name).build() else { return false };
        let works = element.set_state(gst::State::Ready).is_ok();
        let _ = element.set_state(gst::State::Null);
        tracing::info!(decoder = name, works, "probed hardware decoder");
        works
    })
}
