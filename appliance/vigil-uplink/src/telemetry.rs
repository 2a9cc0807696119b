//! Telemetry on `telemetry`: the device's health, published periodically.

use serde::{Deserialize, Serialize};

/// One telemetry document. Missing fields read as their defaults, so a
/// reader copes with a device one version ahead or behind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Telemetry {
    /// When it was taken (RFC 3339 UTC).
    pub at: String,
    /// Seconds since vigild started.
    pub uptime_s: u64,
    /// Drill mode.
    pub drill: bool,
    /// Each camera.
    pub cameras: Vec<CameraHealth>,
    /// The detector.
    pub detector: DetectorHealth,
    /// Incidents.
    pub incidents: IncidentCounts,
    /// The alert outbox.
    pub outbox: OutboxHealth,
    /// The MQTT link itself.
    pub link: LinkHealth,
    /// Plugins and their states (empty until a plugin host runs).
    pub plugins: Vec<PluginHealth>,
    /// The appliance OS: clock, watchdog, the last OS update.
    pub system: SystemHealth,
}

/// The appliance OS's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemHealth {
    /// Whether the wall clock is NTP-synchronized (evidence timestamps depend
    /// on it); `None` when nothing could tell.
    pub time_synchronized: Option<bool>,
    /// Who said so: `timedated`, `kernel` or `unknown`.
    pub time_source: String,
    /// `healthy`, `withheld: <what is stale>`, or `off` outside systemd.
    pub watchdog: String,
    /// The last `os.update` job's phase and version, if there was one (`succeeded 2.1.0`).
    pub os_update: Option<String>,
}

/// A camera's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CameraHealth {
    /// Its id.
    pub id: String,
    /// `starting`, `streaming`, `stalled`, `unauthorized`, `unreachable`, `bad-stream`, `failed` or `finished`.
    pub state: String,
    /// Frames per second delivered recently.
    pub fps: f64,
    /// Frames inferred.
    pub inferred: u64,
    /// Frames dropped because a newer one arrived first.
    pub dropped: u64,
    /// Times the stream was opened.
    pub opens: u64,
    /// The last error, if any (credentials never included).
    pub last_error: Option<String>,
}

/// The detector's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorHealth {
    /// The OpenVINO device it was compiled for.
    pub device: String,
    /// Inferences per second since the previous telemetry.
    pub fps: f64,
    /// Share of infer-request time busy, 0 to 1.
    pub utilization: f64,
    /// Inferences since start.
    pub inferences: u64,
    /// Failed inferences since start.
    pub errors: u64,
}

/// Incident counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IncidentCounts {
    /// Raised since start.
    pub raised: u64,
    /// Open now.
    pub open: u64,
}

/// The outbox's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxHealth {
    /// Messages waiting for an acknowledgement.
    pub depth: u64,
    /// Age of the oldest one, in seconds.
    pub oldest_age_s: Option<u64>,
    /// Alerts refused because the outbox was full or failed (should stay 0).
    pub refused: u64,
}

/// The link's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkHealth {
    /// The session number of the current connection.
    pub session: u64,
    /// Connections made since start.
    pub connects: u64,
    /// Messages published since start.
    pub published: u64,
}

/// A plugin's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginHealth {
    /// Its name.
    pub name: String,
    /// `starting`, `running`, `restarting: <why>` or `disabled: <why>`.
    pub state: String,
    /// Its version.
    pub version: String,
    /// Calls into it since start.
    pub calls: u64,
    /// Calls that returned an error or failed.
    pub errors: u64,
    /// Traps (crashes, deadlines, memory).
    pub traps: u64,
    /// Restarts after a trap.
    pub restarts: u64,
    /// Mean call latency, microseconds.
    pub avg_latency_us: u64,
    /// Linear memory in use, bytes.
    pub memory_bytes: u64,
    /// The last status document it published.
    pub status: Option<serde_json::Value>,
}

impl Telemetry {
    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("telemetry of strings and numbers always serializes")
    }

    /// Parses a payload from `telemetry`.
    pub fn parse(payload: &[u8]) -> Result<Telemetry, String> {
        serde_json::from_slice(payload).map_err(|e| format!("not Vigil telemetry: {e}"))
    }
}
