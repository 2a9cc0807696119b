//! What is known of each device from its status, telemetry and config
//! report, folded from messages as they arrive: pure, no I/O.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use vigil_uplink::{Reported, StatusDoc, Telemetry};

use crate::topics::Kind;

/// One device's latest documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceState {
    /// The latest status (birth or death), stale wills ignored.
    pub status: Option<StatusDoc>,
    /// The latest telemetry.
    pub telemetry: Option<Telemetry>,
    /// The latest config report.
    pub reported: Option<Reported>,
}

impl DeviceState {
    /// Whether all three documents are known.
    pub fn complete(&self) -> bool {
        self.status.is_some() && self.telemetry.is_some() && self.reported.is_some()
    }

    /// The telemetry, if it was taken during the current run (retained
    /// telemetry from before a restart says nothing about this run).
    pub fn current_telemetry(&self) -> Option<&Telemetry> {
        let t = self.telemetry.as_ref()?;
        match &self.status {
            // RFC 3339 UTC times in the device's one format compare as strings.
            Some(s) if t.at < s.started => None,
            _ => Some(t),
        }
    }

    /// Seconds since vigild started, as recently as known (online devices only).
    pub fn uptime_s(&self) -> Option<u64> {
        let status = self.status.as_ref().filter(|s| s.online)?;
        let telemetry = self.current_telemetry().map(|t| t.uptime_s);
        telemetry.into_iter().chain(status.uptime_s).max()
    }

    /// The JSON of `status --json`.
    pub fn to_json(&self, device: &str) -> Value {
        json!({
            "device": device,
            "status": self.status,
            "telemetry": self.telemetry,
            "reported": self.reported,
        })
    }
}

/// What a message changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The device's status is new: first seen, or online, offline or the session changed.
    StatusChanged(StatusDoc),
    /// Something else was recorded (a repeated birth, telemetry, a report).
    Recorded,
    /// A status older than the one known (a stale will), or an empty (cleared) retained message.
    Ignored,
}

/// Every device seen, by id.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    devices: BTreeMap<String, DeviceState>,
}

impl Fleet {
    /// Records a message of `kind` from `device`; a payload that is not what
    /// the topic should carry is an error naming the topic, and changes nothing.
    pub fn apply(&mut self, device: &str, kind: Kind, payload: &[u8]) -> Result<Update, String> {
        if payload.is_empty() {
            return Ok(Update::Ignored);
        }
        let topic = || format!("{device}'s {}", kind.describe());
        let update = match kind {
            Kind::Status => {
                let doc = StatusDoc::parse(payload).map_err(|e| format!("ignoring {}: {e}", topic()))?;
                let state = self.devices.entry(device.to_string()).or_default();
                match &state.status {
                    Some(known) if known.online == doc.online && known.session == doc.session => {
                        state.status = Some(doc);
                        Update::Recorded
                    }
                    Some(known) if !doc.supersedes(known) => return Ok(Update::Ignored),
                    _ => {
                        state.status = Some(doc.clone());
                        Update::StatusChanged(doc)
                    }
                }
            }
            Kind::Telemetry => {
                let t = Telemetry::parse(payload).map_err(|e| format!("ignoring {}: {e}", topic()))?;
                self.devices.entry(device.to_string()).or_default().telemetry = Some(t);
                Update::Recorded
            }
            Kind::Reported => {
                let r = Reported::parse(payload).map_err(|e| format!("ignoring {}: {e}", topic()))?;
                self.devices.entry(device.to_string()).or_default().reported = Some(r);
                Update::Recorded
            }
            Kind::Desired | Kind::Alerts => Update::Ignored,
        };
        Ok(update)
    }

    /// One device's state.
    pub fn get(&self, device: &str) -> Option<&DeviceState> {
        self.devices.get(device)
    }

    /// Every device, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DeviceState)> {
        self.devices.iter().map(|(id, state)| (id.as_str(), state))
    }

    /// No device seen.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vigil_uplink::Verdict;
    use vigil_uplink::telemetry::{CameraHealth, DetectorHealth, OutboxHealth};

    pub(crate) fn status(online: bool, session: u64) -> StatusDoc {
        StatusDoc {
            online,
            session,
            boot_id: "b1".into(),
            version: "0.1.0".into(),
            started: "2027-01-15T08:00:00.000Z".into(),
            uptime_s: online.then_some(60),
            reason: (!online).then(|| "connection-lost".into()),
        }
    }

    pub(crate) fn telemetry() -> Telemetry {
        let camera = |id: &str, state: &str| CameraHealth { id: id.into(), state: state.into(), ..Default::default() };
        Telemetry {
            at: "2027-01-15T11:12:00.000Z".into(),
            uptime_s: 3 * 3600 + 12 * 60,
            cameras: vec![camera("hall-1", "streaming"), camera("hall-2", "stalled"), camera("gym", "streaming")],
            detector: DetectorHealth { fps: 14.25, ..Default::default() },
            outbox: OutboxHealth { depth: 2, oldest_age_s: Some(75), refused: 0 },
            ..Default::default()
        }
    }

    pub(crate) fn reported(running: u64, desired: Option<(u64, Verdict)>) -> Reported {
        Reported {
            running_version: running,
            desired_version: desired.map(|d| d.0),
            verdict: desired.map(|d| d.1),
            error: desired.filter(|d| d.1 == Verdict::Rejected).map(|_| "line 3: cameras[0].fps is 0".into()),
            changes: vec![],
            at: "2027-01-15T09:00:00.000Z".into(),
        }
    }

    #[test]
    fn a_stale_will_does_not_take_a_device_offline() {
        let mut fleet = Fleet::default();
        let born = fleet.apply("d", Kind::Status, &status(true, 8).to_json()).unwrap();
        assert_eq!(born, Update::StatusChanged(status(true, 8)));
        assert_eq!(fleet.apply("d", Kind::Status, &status(false, 7).to_json()).unwrap(), Update::Ignored);
        assert!(fleet.get("d").unwrap().status.as_ref().unwrap().online);
        assert_eq!(
            fleet.apply("d", Kind::Status, &status(true, 8).to_json()).unwrap(),
            Update::Recorded,
            "a rebirth is no change"
        );
        let died = fleet.apply("d", Kind::Status, &status(false, 8).to_json()).unwrap();
        assert_eq!(died, Update::StatusChanged(status(false, 8)));
        assert_eq!(
            fleet.apply("d", Kind::Status, &status(true, 8).to_json()).unwrap(),
            Update::Ignored,
            "a birth replayed after its own death is old news"
        );
        let reborn = fleet.apply("d", Kind::Status, &status(true, 9).to_json()).unwrap();
        assert_eq!(reborn, Update::StatusChanged(status(true, 9)));
    }

    #[test]
    fn documents_are_collected_per_device() {
        let mut fleet = Fleet::default();
        fleet.apply("a", Kind::Status, &status(true, 1).to_json()).unwrap();
        fleet.apply("a", Kind::Telemetry, &telemetry().to_json()).unwrap();
        assert!(!fleet.get("a").unwrap().complete());
        fleet.apply("a", Kind::Reported, &reported(2, None).to_json()).unwrap();
        assert!(fleet.get("a").unwrap().complete());
        assert_eq!(fleet.apply("b", Kind::Telemetry, b"").unwrap(), Update::Ignored, "a cleared retained message");
        assert!(fleet.get("b").is_none());
        // Missing fields read as defaults (a device a version apart); a non-object is refused.
        let err = fleet.apply("b", Kind::Telemetry, b"[1]").unwrap_err();
        assert!(err.starts_with("ignoring b's telemetry: not Vigil telemetry"), "{err}");
        assert_eq!(fleet.iter().map(|(id, _)| id).collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn telemetry_from_before_a_restart_is_not_current() {
        let mut state = DeviceState { status: Some(status(true, 2)), telemetry: Some(telemetry()), reported: None };
        assert_eq!(state.uptime_s(), Some(3 * 3600 + 12 * 60));
        state.status.as_mut().unwrap().started = "2027-01-15T12:00:00.000Z".into();
        assert!(state.current_telemetry().is_none());
        assert_eq!(state.uptime_s(), Some(60), "the birth's uptime");
        state.status = Some(status(false, 2));
        assert_eq!(state.uptime_s(), None);
    }
}
