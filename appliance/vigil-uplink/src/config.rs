//! Remote configuration: the district's `config/desired` and the device's `config/reported`.
//!
//! The desired document carries the whole configuration file (TOML, the same
//! text an integrator would put in `/etc/vigil/vigil.toml`) with a version the
//! district increases on every change. The device validates it with the same
//! parser as at startup, applies it atomically, and reports the verdict.

use serde::{Deserialize, Serialize};

/// The largest desired document accepted, in bytes.
pub const MAX_DESIRED: usize = 1024 * 1024;

/// `config/desired`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desired {
    /// Increases with every change; a document with a version at or below the running one is not applied again.
    pub version: u64,
    /// The whole configuration file, TOML.
    pub toml: String,
}

impl Desired {
    /// Parses a payload from `config/desired`.
    pub fn parse(payload: &[u8]) -> Result<Desired, String> {
        if payload.len() > MAX_DESIRED {
            return Err(format!("the desired config is {} bytes; at most {MAX_DESIRED} are accepted", payload.len()));
        }
        let d: Desired = serde_json::from_slice(payload).map_err(|e| {
            format!("the desired config is not a JSON object {{\"version\": <integer>, \"toml\": <string>}}: {e}")
        })?;
        if d.version == 0 {
            return Err("the desired config's version is 0; versions start at 1 (0 means the local file)".into());
        }
        Ok(d)
    }

    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers always serialize")
    }
}

/// What happened to a desired config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Validated and running.
    Applied,
    /// Refused; the previous config keeps running.
    Rejected,
    /// Already running (a retained document seen again after a reconnect).
    Unchanged,
}

/// `config/reported`, retained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    /// The version the device runs now (0: the local configuration file).
    pub running_version: u64,
    /// The desired version this report answers, if any.
    pub desired_version: Option<u64>,
    /// The verdict on it.
    pub verdict: Option<Verdict>,
    /// Why it was rejected, naming the line and field.
    pub error: Option<String>,
    /// What applying it changed, in words (cameras added, removed, restarted, updated).
    pub changes: Vec<String>,
    /// When (RFC 3339 UTC).
    pub at: String,
}

impl Reported {
    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers always serialize")
    }

    /// Parses a payload from `config/reported`.
    pub fn parse(payload: &[u8]) -> Result<Reported, String> {
        serde_json::from_slice(payload).map_err(|e| format!("not a Vigil config report: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_documents_are_checked() {
        let d = Desired::parse(br#"{"version": 3, "toml": "[device]\n"}"#).unwrap();
        assert_eq!((d.version, d.toml.as_str()), (3, "[device]\n"));
        assert_eq!(Desired::parse(&d.to_json()).unwrap(), d);
        for (payload, expected) in [
            (&b"[device]"[..], "is not a JSON object"),
            (br#"{"version": -1, "toml": ""}"#, "is not a JSON object"),
            (br#"{"version": 1}"#, "missing field `toml`"),
            (br#"{"version": 1, "toml": "", "extra": 1}"#, "unknown field `extra`"),
            (br#"{"version": 0, "toml": ""}"#, "versions start at 1"),
        ] {
            let err = Desired::parse(payload).unwrap_err();
            assert!(err.contains(expected), "{}: {err}", String::from_utf8_lossy(payload));
        }
        let huge = vec![b' '; MAX_DESIRED + 1];
        assert!(Desired::parse(&huge).unwrap_err().contains("at most 1048576"));
    }

    #[test]
    fn reports_round_trip() {
        let r = Reported {
            running_version: 2,
            desired_version: Some(3),
            verdict: Some(Verdict::Rejected),
            error: Some("config/desired v3:12: camera \"x\": fps is 0".into()),
            changes: vec![],
            at: "2027-01-15T08:00:00.000Z".into(),
        };
        let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(json["verdict"], "rejected");
        assert_eq!(Reported::parse(&r.to_json()).unwrap(), r);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = Desired::parse(&payload);
            let _ = Reported::parse(&payload);
            let _ = crate::StatusDoc::parse(&payload);
            let _ = crate::Telemetry::parse(&payload);
        }
    }
}
