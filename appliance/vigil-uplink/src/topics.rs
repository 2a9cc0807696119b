//! The versioned topic layout under `vigil/v1/<device-id>/`.

/// The root of every topic; the version changes only with an incompatible wire format.
pub const ROOT: &str = "vigil/v1";

/// The longest device id accepted, in bytes.
pub const MAX_DEVICE_ID: usize = 64;

/// Why a device id was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid device id {id:?}: {why}")]
pub struct DeviceIdError {
    /// The id as given.
    pub id: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// One device's topics, built from a validated device id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    device: String,
    prefix: String,
}

impl Topics {
    /// The topics of `device`. The id is limited to ASCII letters, digits,
    /// `-`, `_` and `.`: besides the MQTT wildcards and separator (`/ + #`)
    /// it becomes part of CAP identifiers, which forbid spaces, commas, `<`
    /// and `&`, and of alert ids, which use `:` as their separator.
    pub fn new(device: &str) -> Result<Topics, DeviceIdError> {
        let refuse = |why| Err(DeviceIdError { id: device.to_string(), why });
        if device.is_empty() {
            return refuse("it is empty");
        }
        if device.len() > MAX_DEVICE_ID {
            return refuse("it is longer than 64 bytes");
        }
        if device.contains(['/', '+', '#']) {
            return refuse("it contains an MQTT separator or wildcard (/ + #)");
        }
        if !device.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return refuse("use only ASCII letters, digits, '-', '_' and '.'");
        }
        Ok(Topics { device: device.to_string(), prefix: format!("{ROOT}/{device}") })
    }

    /// The device id.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// `vigil/v1/<device>`, the prefix of every topic below.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Retained birth and death (the will) messages.
    pub fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// Periodic health and counters.
    pub fn telemetry(&self) -> String {
        format!("{}/telemetry", self.prefix)
    }

    /// The configuration the district wants, retained; published by the district.
    pub fn config_desired(&self) -> String {
        format!("{}/config/desired", self.prefix)
    }

    /// The configuration the device runs, retained.
    pub fn config_reported(&self) -> String {
        format!("{}/config/reported", self.prefix)
    }

    /// The topic of command `name`.
    pub fn command(&self, name: &str) -> String {
        format!("{}/cmd/{name}", self.prefix)
    }

    /// The filter the device subscribes to for its commands.
    pub fn command_filter(&self) -> String {
        format!("{}/cmd/+", self.prefix)
    }

    /// Alerts as JSON.
    pub fn alerts(&self) -> String {
        format!("{}/alerts", self.prefix)
    }

    /// Alerts as CAP 1.2 XML.
    pub fn alerts_cap(&self) -> String {
        format!("{}/alerts/cap", self.prefix)
    }

    /// The evidence snapshot of `incident`, a retained JPEG.
    pub fn snapshot(&self, incident: u64) -> String {
        format!("{}/alerts/{incident}/snapshot", self.prefix)
    }

    /// Where the `snapshot` command publishes a camera's current frame (JPEG, not retained).
    pub fn camera_snapshot(&self, camera: &str) -> String {
        format!("{}/snapshots/{camera}", self.prefix)
    }

    /// The response topic a requester names in its commands (`requester` is
    /// its MQTT client id): under the device's prefix, so the ACL stays simple.
    pub fn response(&self, requester: &str) -> String {
        format!("{}/responses/{requester}", self.prefix)
    }

    /// The device's `os.update` job: its JSON after every phase or progress
    /// change, retained (the last job stays readable after it ends).
    pub fn os_update(&self) -> String {
        format!("{}/os/update", self.prefix)
    }

    /// Where the district acknowledges alert ids.
    pub fn ack(&self) -> String {
        format!("{}/ack", self.prefix)
    }

    /// The command name of a topic under this device's `cmd/`, or `None` for
    /// any other topic, an empty name or one with more levels or wildcards.
    pub fn parse_command_topic<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let name = topic.strip_prefix(self.prefix.as_str())?.strip_prefix("/cmd/")?;
        (!name.is_empty() && !name.contains(['/', '+', '#'])).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let t = Topics::new("lincoln-hs.01").unwrap();
        assert_eq!(t.device(), "lincoln-hs.01");
        assert_eq!(t.prefix(), "vigil/v1/lincoln-hs.01");
        assert_eq!(t.status(), "vigil/v1/lincoln-hs.01/status");
        assert_eq!(t.telemetry(), "vigil/v1/lincoln-hs.01/telemetry");
        assert_eq!(t.config_desired(), "vigil/v1/lincoln-hs.01/config/desired");
        assert_eq!(t.config_reported(), "vigil/v1/lincoln-hs.01/config/reported");
        assert_eq!(t.command("incident.verify"), "vigil/v1/lincoln-hs.01/cmd/incident.verify");
        assert_eq!(t.command_filter(), "vigil/v1/lincoln-hs.01/cmd/+");
        assert_eq!(t.alerts(), "vigil/v1/lincoln-hs.01/alerts");
        assert_eq!(t.alerts_cap(), "vigil/v1/lincoln-hs.01/alerts/cap");
        assert_eq!(t.snapshot(42), "vigil/v1/lincoln-hs.01/alerts/42/snapshot");
        assert_eq!(t.ack(), "vigil/v1/lincoln-hs.01/ack");
    }

    #[test]
    fn command_topics_parse_back() {
        let t = Topics::new("dev1").unwrap();
        assert_eq!(t.parse_command_topic(&t.command("incident.all-clear")), Some("incident.all-clear"));
        assert_eq!(t.parse_command_topic("vigil/v1/dev1/cmd/snapshot"), Some("snapshot"));
        for other in [
            "vigil/v1/dev1/cmd/",
            "vigil/v1/dev1/cmd",
            "vigil/v1/dev1/cmd/a/b",
            "vigil/v1/dev1/cmd/+",
            "vigil/v1/dev1/cmd/#",
            "vigil/v1/dev2/cmd/rebirth",
            "vigil/v1/dev10/cmd/rebirth",
            "vigil/v1/dev1/alerts",
            "vigil/v2/dev1/cmd/rebirth",
            "",
        ] {
            assert_eq!(t.parse_command_topic(other), None, "{other}");
        }
    }

    #[test]
    fn bad_device_ids_are_refused() {
        for bad in ["", "a/b", "a+b", "a#", "a b", "a:b", "a,b", "a<b", "a&b", "é", "a\0", &"x".repeat(65)] {
            let err = Topics::new(bad).unwrap_err();
            assert_eq!(err.id, bad);
        }
        assert!(Topics::new(&"x".repeat(64)).is_ok());
        assert!(Topics::new("A-z_0.9").is_ok());
    }
}
