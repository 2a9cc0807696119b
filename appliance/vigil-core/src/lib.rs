//! Vigil's pure core.
//!
//! Events and a time go in, decisions come out. This crate knows nothing of
//! threads, async runtimes, MQTT, WebAssembly or OpenVINO, and does no I/O:
//! everything here is tested with simulated time.

pub mod backoff;
pub mod confirm;
pub mod frame;
pub mod geom;
pub mod incident;
pub mod playbook;
pub mod time;
pub mod url;

pub use frame::{CameraId, Detection, Frame, FrameResult, Location, Pixels};
pub use geom::{BBox, Point, Polygon};
pub use time::{Clock, ManualClock, Moment, SystemClock};
