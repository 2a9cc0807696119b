//! The district uplink's wire formats.
//!
//! ```text
//! vigil/v1/<device>/status                  retained birth/death
//!                  /telemetry
//!                  /config/desired          retained, from the district
//!                  /config/reported         retained
//!                  /cmd/<name>              commands in; responses to the MQTT 5 response topic
//!                  /alerts                  alert JSON
//!                  /alerts/cap              the same alert as CAP 1.2 XML
//!                  /alerts/<incident>/snapshot   retained JPEG
//!                  /snapshots/<camera>      a camera's current frame, on request
//!                  /responses/<requester>   command responses (the MQTT 5 response topic)
//!                  /ack                     the district acknowledges alert ids
//! ```
//!
//! Everything here is a pure function from domain values to bytes or back:
//! no sockets, no clocks, no client. `docs/mqtt.md` is the reference.
//!
//! Architecture Invariant: this is the only crate that knows MQTT topics and
//! the JSON and XML on the wire; domain types stay free of serde.

pub mod alert;
pub mod cap;
pub mod command;
pub mod config;
pub mod status;
pub mod telemetry;
pub mod topics;

pub use alert::{AlertContext, alert_id, alert_json, parse_ack};
pub use cap::alert_cap;
pub use command::{
    CommandParseError, CommandResponse, ErrorKind, ResponseError, UplinkCommand, UplinkRequest, UploadPart,
    command_json, parse_command, response_json, response_with_data,
};
pub use config::{Desired, Reported, Verdict};
pub use status::StatusDoc;
pub use telemetry::Telemetry;
pub use topics::{DeviceIdError, Topics};
