//! Vigil's configuration: one TOML file, parsed into raw structs that mirror
//! the file (`deny_unknown_fields`), then validated into the rich types the
//! rest of the supervisor uses. Every error names the file, line and field.
//!
//! Startup, `vigild --check-config` and (later) remote reloads all go through
//! [`Config::parse`], so a config that passes one passes all three.
//! Every field is documented in `docs/config.md`.

mod identity;
mod labels;
mod os;
mod plugins;
mod raw;
mod uplink;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vigil_core::confirm::ConfirmPolicy;
use vigil_core::playbook::{Playbook, SrpAction};
use vigil_core::{CameraId, Location, Point, Polygon};

pub use labels::parse_labels;
pub use os::OsConfig;
pub use plugins::{Grant, PluginsConfig, parse_key};
pub use uplink::{AckPolicy, Broker, DEFAULT_EMBEDDED_LISTEN, RemoteBroker, TlsFiles, UplinkConfig, parse_broker_url};

/// A configuration problem, located in the file.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// What is wrong, starting with the field's path.
    pub message: String,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// This box.
    pub device: DeviceConfig,
    /// The detection model and where it runs.
    pub detector: DetectorConfig,
    /// The cameras.
    pub cameras: Vec<CameraConfig>,
    /// What to do on detection and on verification.
    pub playbook: Playbook,
    /// Evidence snapshots.
    pub evidence: EvidenceConfig,
    /// The district link.
    pub uplink: UplinkConfig,
    /// Plugins: trusted keys, limits and grants.
    pub plugins: PluginsConfig,
    /// OS updates.
    pub os: OsConfig,
}

/// `[device]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceConfig {
    /// Identity of this box, used in incident records and MQTT topics.
    pub id: String,
    /// Where incidents, evidence and state are kept.
    pub data_dir: PathBuf,
    /// Start in drill mode: every incident is an exercise until drill mode is stopped.
    pub drill: bool,
}

/// How the model's output tensor is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLayout {
    /// Work it out from the output shape.
    Auto,
    /// YOLOv8/YOLO11 head: `[1, 4 + classes, anchors]`.
    Yolo,
    /// SSD DetectionOutput: `[1, 1, N, 7]`.
    Ssd,
}

/// OpenVINO's performance hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerformanceHint {
    /// Most frames per second across cameras (several requests in flight).
    Throughput,
    /// Lowest latency for one request at a time.
    Latency,
}

/// `[detector]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// OpenVINO IR `.xml` (with its `.bin` beside it) or `.onnx`.
    pub model: PathBuf,
    /// Class names by class index.
    pub labels: Vec<Arc<str>>,
    /// Output layout.
    pub layout: OutputLayout,
    /// OpenVINO device: `CPU`, `GPU`, `NPU` or `AUTO:NPU,GPU,CPU`.
    pub device: String,
    /// OpenVINO model cache, so an NPU does not recompile at every boot.
    pub cache_dir: PathBuf,
    /// Explicit path to `libopenvino_c.so`; otherwise `OPENVINO_LIB` or a search.
    pub openvino_lib: Option<PathBuf>,
    /// Infer requests in flight; `None` asks the device for its optimum.
    pub infer_requests: Option<u32>,
    /// Performance hint.
    pub performance_hint: PerformanceHint,
    /// Candidates scoring below this are dropped before NMS.
    pub confidence: f32,
    /// IoU above which NMS suppresses the weaker of two boxes of one class.
    pub iou: f32,
}

/// Where a camera's frames come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceConfig {
    /// The synthetic demo hallway.
    Demo {
        /// Which script the scene plays.
        scenario: String,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// A YUV4MPEG2 (.y4m) video file.
    File {
        /// The file.
        path: PathBuf,
        /// Start again at the end.
        looped: bool,
    },
    /// An IP camera over RTSP.
    Rtsp {
        /// The low-resolution stream detection runs on.
        detect_url: String,
        /// The full-resolution stream, for recording and snapshots on request.
        record_url: Option<String>,
        /// User name, if not in the URL.
        username: Option<String>,
        /// Password, if not in the URL.
        password: Option<Secret>,
        /// RTP over the RTSP TCP connection, UDP, or whichever works.
        transport: RtspTransport,
        /// Decode on Intel hardware (VA-API) when present.
        hw_decode: bool,
    },
    /// A V4L2 capture device (USB camera, analog capture card).
    V4l2 {
        /// `/dev/videoN`.
        device: PathBuf,
        /// Capture width.
        width: u32,
        /// Capture height.
        height: u32,
        /// `None`: MJPEG above 640x480, YUYV below.
        format: Option<V4l2Format>,
    },
}

/// How RTP travels from an RTSP camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection: survives NAT and lossy Wi-Fi.
    Tcp,
    /// Plain UDP: lowest overhead on a clean LAN.
    Udp,
    /// Let the client try UDP, then TCP.
    Auto,
}

/// A V4L2 pixel format Vigil decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V4l2Format {
    /// Motion JPEG.
    Mjpeg,
    /// Packed YUV 4:2:2.
    Yuyv,
}

/// A credential: kept out of `Debug` output and therefore out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself, for handing to the device that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One `[[camera]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    /// Stable id.
    pub id: CameraId,
    /// Human name, for alerts.
    pub name: String,
    /// Where the camera is.
    pub location: Location,
    /// Frames per second taken for detection at most.
    pub fps: f32,
    /// No frame for this long while streaming: the camera is stalled and its stream restarted.
    pub stall_timeout: Duration,
    /// Where frames come from.
    pub source: SourceConfig,
    /// The confirmation rule, defaults merged with this camera's overrides and zones.
    pub confirm: ConfirmPolicy,
}

/// `[evidence]`.
#[derive(Clone, Debug)]
pub struct EvidenceConfig {
    /// JPEG quality 1..=100.
    pub jpeg_quality: u8,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, path, &base)
    }

    /// Validates `text`, naming `file` in errors; relative paths are resolved against `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
            file: file.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| err(e.span(), e.message().to_string()))?;
        raw.validate(base).map_err(|(span, message)| err(span, message))
    }

    /// The camera with `id`.
    pub fn camera(&self, id: &CameraId) -> Option<&CameraConfig> {
        self.cameras.iter().find(|c| &c.id == id)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Ids travel in file names and (later) MQTT topics, so they are kept plain.
fn check_id(what: &str, id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {id:?} is not a valid id: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        ))
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

/// Checks an OpenVINO device string such as `CPU`, `GPU.1` or `AUTO:NPU,GPU,CPU`.
fn check_device(device: &str) -> Result<(), String> {
    let single = |d: &str| {
        let name = d.split('.').next().unwrap_or_default();
        let index_ok = d.split_once('.').is_none_or(|(_, i)| i.parse::<u32>().is_ok());
        matches!(name, "CPU" | "GPU" | "NPU") && index_ok
    };
    let ok = match device.strip_prefix("AUTO") {
        Some("") => true,
        Some(list) => list.strip_prefix(':').is_some_and(|l| !l.is_empty() && l.split(',').all(single)),
        None => single(device),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "detector.device {device:?} is not a device: use CPU, GPU, NPU (optionally with an index, GPU.1) or a priority list AUTO:NPU,GPU,CPU"
        ))
    }
}

fn zone(points: &[[f32; 2]]) -> Result<Polygon, String> {
    Polygon::new(points.iter().map(|&[x, y]| Point { x, y }).collect())
}

fn unique_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(format!("camera id {id:?} is used twice; ids must be unique"));
        }
    }
    Ok(())
}

fn srp_list(name: &str, list: &[String]) -> Result<Vec<SrpAction>, String> {
    list.iter().map(|s| s.parse::<SrpAction>().map_err(|e| format!("{name}: {e}"))).collect()
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests;
