//! The file as written: serde structs that mirror the TOML, and their
//! validation into the rich types of the crate root.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;
use vigil_core::confirm::ConfirmPolicy;
use vigil_core::playbook::Playbook;
use vigil_core::url::{redact_url, split_userinfo};
use vigil_core::{CameraId, Location};

use std::path::PathBuf;

use crate::{
    CameraConfig, DetectorConfig, DeviceConfig, EvidenceConfig, OutputLayout, PerformanceHint, RtspTransport, Secret,
    SourceConfig, V4l2Format, check_device, check_id, millis, resolve, srp_list, unique_ids, zone,
};

/// A validation failure: the span it is about, and the message.
pub(crate) type Invalid = (Option<Range<usize>>, String);

fn at<T>(s: &Spanned<T>, message: String) -> Invalid {
    (Some(s.span()), message)
}

/// An optional section: its contents (or the defaults) and its span if it was written.
fn section<T: Default + Clone>(s: &Option<Spanned<T>>) -> (T, Option<Range<usize>>) {
    s.as_ref().map_or_else(|| (T::default(), None), |s| (s.get_ref().clone(), Some(s.span())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    device: Spanned<Device>,
    detector: Spanned<Detector>,
    confirmation: Option<Spanned<Confirmation>>,
    playbook: Option<Spanned<PlaybookRaw>>,
    evidence: Option<Spanned<Evidence>>,
    uplink: Option<Spanned<crate::uplink::RawUplink>>,
    plugins: Option<Spanned<crate::plugins::RawPlugins>>,
    os: Option<Spanned<crate::os::RawOs>>,
    #[serde(default)]
    camera: Vec<Spanned<Camera>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Device {
    id: Option<String>,
    data_dir: String,
    #[serde(default)]
    drill: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Detector {
    model: String,
    labels: Option<Vec<String>>,
    labels_file: Option<String>,
    #[serde(default = "default_layout")]
    layout: String,
    #[serde(default = "default_device")]
    device: String,
    cache_dir: Option<String>,
    openvino_lib: Option<String>,
    #[serde(default)]
    infer_requests: u32,
    #[serde(default = "default_hint")]
    performance_hint: String,
    #[serde(default = "default_confidence")]
    confidence: f32,
    #[serde(default = "default_iou")]
    iou: f32,
}

fn default_layout() -> String {
    "auto".into()
}
fn default_device() -> String {
    "AUTO:NPU,GPU,CPU".into()
}
fn default_hint() -> String {
    "throughput".into()
}
fn default_confidence() -> f32 {
    0.25
}
fn default_iou() -> f32 {
    0.45
}

/// Confirmation settings; every field optional so a camera can override a few.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Confirmation {
    threat_labels: Option<Vec<String>>,
    min_score: Option<f32>,
    hits: Option<u32>,
    window: Option<u32>,
    min_box_px: Option<f32>,
    track_iou: Option<f32>,
    track_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Clone)]
struct PlaybookRaw {
    #[serde(default = "default_on_detection")]
    on_detection: Vec<String>,
    #[serde(default = "default_on_verification")]
    on_verification: Vec<String>,
}

impl Default for PlaybookRaw {
    fn default() -> Self {
        PlaybookRaw { on_detection: default_on_detection(), on_verification: default_on_verification() }
    }
}

fn default_on_detection() -> Vec<String> {
    vec!["secure".into()]
}
fn default_on_verification() -> Vec<String> {
    vec!["lockdown".into()]
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Evidence {
    #[serde(default = "default_quality")]
    jpeg_quality: u32,
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence { jpeg_quality: default_quality() }
    }
}

fn default_quality() -> u32 {
    85
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Camera {
    id: String,
    name: Option<String>,
    #[serde(default)]
    location: LocationRaw,
    #[serde(default = "default_fps")]
    fps: f32,
    #[serde(default = "default_stall_ms")]
    stall_timeout_ms: u64,
    source: Source,
    #[serde(default)]
    zones: Vec<Zone>,
    #[serde(default)]
    confirmation: Confirmation,
}

fn default_fps() -> f32 {
    10.0
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LocationRaw {
    #[serde(default)]
    building: String,
    #[serde(default)]
    floor: String,
    #[serde(default)]
    zone: String,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum Source {
    Demo {
        #[serde(default = "default_scenario")]
        scenario: String,
        #[serde(default = "default_width")]
        width: u32,
        #[serde(default = "default_height")]
        height: u32,
    },
    File {
        path: String,
        #[serde(default = "default_true", rename = "loop")]
        looped: bool,
    },
    Rtsp {
        detect_url: String,
        record_url: Option<String>,
        username: Option<String>,
        password: Option<String>,
        #[serde(default = "default_transport")]
        transport: String,
        #[serde(default = "default_true")]
        hw_decode: bool,
    },
    V4l2 {
        device: String,
        #[serde(default = "default_v4l2_width")]
        width: u32,
        #[serde(default = "default_v4l2_height")]
        height: u32,
        #[serde(default = "default_v4l2_format")]
        format: String,
    },
}

fn default_transport() -> String {
    "tcp".into()
}
fn default_v4l2_width() -> u32 {
    1280
}
fn default_v4l2_height() -> u32 {
    720
}
fn default_v4l2_format() -> String {
    "auto".into()
}
fn default_stall_ms() -> u64 {
    5000
}

fn default_scenario() -> String {
    "hallway".into()
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    360
}
fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Zone {
    #[serde(default)]
    name: String,
    points: Vec<[f32; 2]>,
}

/// The demo scene's scripts, repeated here so a typo fails at config time, not at camera start.
pub(crate) const SCENARIOS: [&str; 3] = ["hallway", "quiet", "armed"];

impl RawConfig {
    pub(crate) fn validate(self, base: &Path) -> Result<crate::Config, Invalid> {
        let device = self.device.get_ref();
        let id = match &device.id {
            Some(id) => id.clone(),
            None => crate::identity::from_machine_id(Path::new(crate::identity::MACHINE_ID))
                .map_err(|m| at(&self.device, m))?,
        };
        check_id("device.id", &id).map_err(|m| at(&self.device, m))?;
        if device.data_dir.is_empty() {
            return Err(at(&self.device, "device.data_dir is empty: give the folder for incidents and state".into()));
        }
        let data_dir = resolve(base, &device.data_dir);

        let detector = validate_detector(&self.detector, base, &data_dir)?;
        let (confirmation, confirmation_span) = section(&self.confirmation);
        let defaults = merge(&ConfirmPolicy::default(), &confirmation)
            .map_err(|m| (confirmation_span.clone(), format!("confirmation.{m}")))?;
        let known = |l: &Arc<str>| detector.labels.contains(l);
        if !defaults.threat_labels.iter().any(known) {
            return Err((
                confirmation_span,
                format!(
                    "confirmation.threat_labels: none of {} is a label of the model ({}), so nothing could ever raise an incident",
                    join(&defaults.threat_labels),
                    join(&detector.labels)
                ),
            ));
        }

        let (playbook, playbook_span) = section(&self.playbook);
        let playbook = srp_list("playbook.on_detection", &playbook.on_detection)
            .and_then(|d| Ok((d, srp_list("playbook.on_verification", &playbook.on_verification)?)))
            .and_then(|(d, v)| Playbook::new(d, v).map_err(|e| format!("playbook: {e}")))
            .map_err(|m| (playbook_span, m))?;

        let (evidence, evidence_span) = section(&self.evidence);
        let quality = evidence.jpeg_quality;
        if !(1..=100).contains(&quality) {
            return Err((evidence_span, format!("evidence.jpeg_quality is {quality}: use 1 to 100")));
        }

        let (uplink, uplink_span) = section(&self.uplink);
        let uplink = uplink.validate(&id, base).map_err(|m| (uplink_span, m))?;
        let (plugins, plugins_span) = section(&self.plugins);
        let plugins = plugins.validate(base).map_err(|m| (plugins_span, m))?;
        let (os, os_span) = section(&self.os);
        let os = os.validate(base).map_err(|m| (os_span, m))?;

        unique_ids(self.camera.iter().map(|c| c.get_ref().id.as_str())).map_err(|m| {
            let dup = self.camera.iter().rev().find(|c| m.contains(&format!("{:?}", c.get_ref().id)));
            (dup.map(|c| c.span()), m)
        })?;
        let cameras = self
            .camera
            .iter()
            .map(|c| {
                validate_camera(c.get_ref(), &defaults, base, &detector.labels)
                    .map_err(|m| at(c, format!("camera {:?}: {m}", c.get_ref().id)))
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(crate::Config {
            device: DeviceConfig { id, data_dir, drill: device.drill },
            detector,
            cameras,
            playbook,
            evidence: EvidenceConfig { jpeg_quality: quality as u8 },
            uplink,
            plugins,
            os,
        })
    }
}

fn validate_detector(d: &Spanned<Detector>, base: &Path, data_dir: &Path) -> Result<DetectorConfig, Invalid> {
    let fail = |m: String| at(d, m);
    let raw = d.get_ref();
    let model = resolve(base, &raw.model);
    let ext = model.extension().and_then(|e| e.to_str()).unwrap_or_default();
    if !matches!(ext, "xml" | "onnx") {
        return Err(fail(format!("detector.model {:?}: expected an OpenVINO IR .xml or an .onnx file", raw.model)));
    }
    let labels: Vec<Arc<str>> = match (&raw.labels, &raw.labels_file) {
        (Some(_), Some(_)) => return Err(fail("detector: give labels or labels_file, not both".into())),
        (None, None) => {
            return Err(fail(
                "detector: give the model's class names as labels = [...] or labels_file = \"...\"".into(),
            ));
        }
        (Some(list), None) => list.iter().map(|l| Arc::from(l.as_str())).collect(),
        (None, Some(file)) => {
            let path = resolve(base, file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| fail(format!("detector.labels_file {}: cannot read it: {e}", path.display())))?;
            crate::parse_labels(&text, &path)
                .map_err(|e| fail(format!("detector.labels_file {}: {e}", path.display())))?
                .into_iter()
                .map(Arc::from)
                .collect()
        }
    };
    if labels.is_empty() {
        return Err(fail("detector.labels is empty: the label map needs one name per class".into()));
    }
    if let Some(empty) = labels.iter().position(|l| l.trim().is_empty()) {
        return Err(fail(format!("detector.labels: label {empty} is empty")));
    }
    let layout = match raw.layout.as_str() {
        "auto" => OutputLayout::Auto,
        "yolo" => OutputLayout::Yolo,
        "ssd" => OutputLayout::Ssd,
        other => return Err(fail(format!("detector.layout {other:?}: expected auto, yolo or ssd"))),
    };
    check_device(&raw.device).map_err(fail)?;
    let performance_hint = match raw.performance_hint.as_str() {
        "throughput" => PerformanceHint::Throughput,
        "latency" => PerformanceHint::Latency,
        other => return Err(fail(format!("detector.performance_hint {other:?}: expected throughput or latency"))),
    };
    if !(0.0..1.0).contains(&raw.confidence) {
        return Err(fail(format!(
            "detector.confidence is {}: use a value from 0 up to (not including) 1",
            raw.confidence
        )));
    }
    if !(raw.iou > 0.0 && raw.iou <= 1.0) {
        return Err(fail(format!("detector.iou is {}: use a value above 0, at most 1", raw.iou)));
    }
    if raw.infer_requests > 64 {
        return Err(fail(format!("detector.infer_requests is {}: use 0 (device optimum) to 64", raw.infer_requests)));
    }
    Ok(DetectorConfig {
        model,
        labels,
        layout,
        device: raw.device.clone(),
        cache_dir: raw.cache_dir.as_deref().map_or_else(|| data_dir.join("model-cache"), |c| resolve(base, c)),
        openvino_lib: raw.openvino_lib.as_deref().map(|p| resolve(base, p)),
        infer_requests: (raw.infer_requests > 0).then_some(raw.infer_requests),
        performance_hint,
        confidence: raw.confidence,
        iou: raw.iou,
    })
}

fn validate_camera(
    c: &Camera,
    defaults: &ConfirmPolicy,
    base: &Path,
    labels: &[Arc<str>],
) -> Result<CameraConfig, String> {
    check_id("id", &c.id)?;
    if !(c.fps > 0.0 && c.fps <= 60.0) {
        return Err(format!("fps is {}: use a rate above 0, at most 60", c.fps));
    }
    let source = match &c.source {
        Source::Demo { scenario, width, height } => {
            if !SCENARIOS.contains(&scenario.as_str()) {
                return Err(format!("source.scenario {scenario:?}: expected one of {}", SCENARIOS.join(", ")));
            }
            if !(64..=3840).contains(width) || !(64..=2160).contains(height) {
                return Err(format!("source size {width}x{height}: use 64x64 up to 3840x2160"));
            }
            SourceConfig::Demo { scenario: scenario.clone(), width: *width, height: *height }
        }
        Source::File { path, looped } => {
            if !path.ends_with(".y4m") {
                return Err(format!(
                    "source.path {path:?}: file sources read YUV4MPEG2 (.y4m); convert with `ffmpeg -i in.mp4 -pix_fmt yuv420p out.y4m`"
                ));
            }
            SourceConfig::File { path: resolve(base, path), looped: *looped }
        }
        Source::Rtsp { detect_url, record_url, username, password, transport, hw_decode } => {
            check_rtsp_url("source.detect_url", detect_url)?;
            if let Some(url) = record_url {
                check_rtsp_url("source.record_url", url)?;
            }
            let transport = match transport.as_str() {
                "tcp" => RtspTransport::Tcp,
                "udp" => RtspTransport::Udp,
                "auto" => RtspTransport::Auto,
                other => return Err(format!("source.transport {other:?}: expected tcp, udp or auto")),
            };
            if password.is_some() && username.is_none() {
                return Err("source.password is set but source.username is not".into());
            }
            SourceConfig::Rtsp {
                detect_url: detect_url.clone(),
                record_url: record_url.clone(),
                username: username.clone(),
                password: password.clone().map(Secret::new),
                transport,
                hw_decode: *hw_decode,
            }
        }
        Source::V4l2 { device, width, height, format } => {
            if !device.starts_with("/dev/") {
                return Err(format!("source.device {device:?}: expected a device path such as /dev/video0"));
            }
            if !(64..=3840).contains(width) || !(64..=2160).contains(height) {
                return Err(format!("source size {width}x{height}: use 64x64 up to 3840x2160"));
            }
            let format = match format.as_str() {
                "auto" => None,
                "mjpeg" => Some(V4l2Format::Mjpeg),
                "yuyv" => Some(V4l2Format::Yuyv),
                other => return Err(format!("source.format {other:?}: expected auto, mjpeg or yuyv")),
            };
            SourceConfig::V4l2 { device: PathBuf::from(device), width: *width, height: *height, format }
        }
    };
    if !(100..=600_000).contains(&c.stall_timeout_ms) {
        return Err(format!("stall_timeout_ms is {}: use 100 to 600000 milliseconds", c.stall_timeout_ms));
    }
    // Camera overrides apply on top of the file-wide [confirmation] section.
    let mut confirm = merge(defaults, &c.confirmation).map_err(|m| format!("confirmation.{m}"))?;
    confirm.zones = c
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| zone(&z.points).map_err(|e| format!("zones[{i}] {:?}: {e}", z.name)))
        .collect::<Result<_, _>>()?;
    if !confirm.threat_labels.iter().any(|l| labels.contains(l)) {
        return Err(format!(
            "confirmation.threat_labels: none of {} is a label of the model ({})",
            join(&confirm.threat_labels),
            join(labels)
        ));
    }
    Ok(CameraConfig {
        id: CameraId::new(&c.id),
        name: c.name.clone().unwrap_or_else(|| c.id.clone()),
        location: Location {
            building: c.location.building.clone(),
            floor: c.location.floor.clone(),
            zone: c.location.zone.clone(),
        },
        fps: c.fps,
        stall_timeout: millis(c.stall_timeout_ms),
        source,
        confirm,
    })
}

/// `over`'s fields on top of `base`, each checked.
fn merge(base: &ConfirmPolicy, over: &Confirmation) -> Result<ConfirmPolicy, String> {
    let mut p = base.clone();
    if let Some(labels) = &over.threat_labels {
        if labels.is_empty() {
            return Err("threat_labels is empty: list the classes that count as threats".into());
        }
        p.threat_labels = labels.iter().map(|l| Arc::from(l.as_str())).collect();
    }
    if let Some(s) = over.min_score {
        if !(s > 0.0 && s <= 1.0) {
            return Err(format!("min_score is {s}: use a value above 0, at most 1"));
        }
        p.min_score = s;
    }
    if let Some(w) = over.window {
        if !(1..=64).contains(&w) {
            return Err(format!("window is {w}: use 1 to 64 frames"));
        }
        p.window = w;
    }
    if let Some(h) = over.hits {
        p.hits = h;
    }
    if p.hits == 0 || p.hits > p.window {
        return Err(format!("hits is {}: use 1 up to window ({})", p.hits, p.window));
    }
    if let Some(m) = over.min_box_px {
        if !(0.0..=4096.0).contains(&m) {
            return Err(format!("min_box_px is {m}: use 0 to 4096 pixels"));
        }
        p.min_box_px = m;
    }
    if let Some(i) = over.track_iou {
        if !(i > 0.0 && i <= 1.0) {
            return Err(format!("track_iou is {i}: use a value above 0, at most 1"));
        }
        p.track_iou = i;
    }
    if let Some(t) = over.track_timeout_ms {
        if t == 0 {
            return Err("track_timeout_ms is 0: use a positive number of milliseconds".into());
        }
        p.track_timeout = millis(t);
    }
    Ok(p)
}

/// `rtsp://` or `rtsps://`, a host, and no spaces; credentials may be inline.
fn check_rtsp_url(field: &str, url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    let Some(rest) = url.strip_prefix("rtsp://").or_else(|| url.strip_prefix("rtsps://")) else {
        return Err(format!("{field} {shown:?}: expected an rtsp:// or rtsps:// URL"));
    };
    let host = split_userinfo(rest).1.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{field} {shown:?}: the URL has no host"));
    }
    if url.chars().any(char::is_whitespace) {
        return Err(format!("{field} {shown:?}: the URL contains spaces; percent-encode them"));
    }
    Ok(())
}

fn join(labels: &[Arc<str>]) -> String {
    labels.iter().map(|l| &**l).collect::<Vec<_>>().join(", ")
}
