//! Birth and death on `status` (retained), in the manner of Sparkplug's `bdSeq`.
//!
//! Before each connection attempt the device takes the next session number
//! and registers the death message with it as its MQTT Last Will. Once
//! connected it publishes the birth with the same number. A subscriber keeps
//! the highest session it has seen: a death with a lower number is a stale
//! will from an earlier connection, never a sign the device went offline
//! after a fresher birth.

use serde::{Deserialize, Serialize};

/// The retained status document: a birth (`online: true`) or a death.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    /// Whether the device is connected.
    pub online: bool,
    /// The connection's session number; grows with every connection attempt, across restarts.
    pub session: u64,
    /// Identifies this run of vigild (changes on every start).
    pub boot_id: String,
    /// vigild's version.
    pub version: String,
    /// When this run started (RFC 3339 UTC).
    pub started: String,
    /// Seconds since start, at the time of publishing (births only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    /// Why the device is offline (deaths only): `connection-lost` (the will) or `shutdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a device is offline.
pub mod reason {
    /// Published by the broker as the will: the connection dropped without a goodbye.
    pub const CONNECTION_LOST: &str = "connection-lost";
    /// Published by the device itself on a clean shutdown.
    pub const SHUTDOWN: &str = "shutdown";
}

impl StatusDoc {
    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a status of strings and numbers always serializes")
    }

    /// Parses a payload from `status`.
    pub fn parse(payload: &[u8]) -> Result<StatusDoc, String> {
        serde_json::from_slice(payload).map_err(|e| format!("not a Vigil status document: {e}"))
    }

    /// Whether this document supersedes `older`, the latest one seen: a higher
    /// session always does; within one session the death does (it comes after the birth).
    pub fn supersedes(&self, older: &StatusDoc) -> bool {
        self.session > older.session || (self.session == older.session && older.online && !self.online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(online: bool, session: u64) -> StatusDoc {
        StatusDoc {
            online,
            session,
            boot_id: "b".into(),
            version: "0.1.0".into(),
            started: "2027-01-15T08:00:00.000Z".into(),
            uptime_s: online.then_some(5),
            reason: (!online).then(|| reason::CONNECTION_LOST.into()),
        }
    }

    #[test]
    fn a_stale_will_never_supersedes_a_fresh_birth() {
        let birth = doc(true, 8);
        let stale_will = doc(false, 7);
        let will = doc(false, 8);
        assert!(!stale_will.supersedes(&birth));
        assert!(will.supersedes(&birth));
        assert!(doc(true, 9).supersedes(&will));
        assert!(!birth.supersedes(&will), "a birth replayed after its own death is old news");
    }

    #[test]
    fn round_trip_and_shape() {
        let d = doc(false, 3);
        let json: serde_json::Value = serde_json::from_slice(&d.to_json()).unwrap();
        assert_eq!(json["online"], false);
        assert_eq!(json["session"], 3);
        assert_eq!(json["reason"], "connection-lost");
        assert!(json.get("uptime_s").is_none());
        assert_eq!(StatusDoc::parse(&d.to_json()).unwrap(), d);
        assert!(StatusDoc::parse(b"offline").unwrap_err().starts_with("not a Vigil status document"));
    }
}
