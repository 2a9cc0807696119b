//! Alert JSON: one message per incident transition, published on `alerts`.

use serde::Serialize;
use vigil_core::incident::{Incident, Transition};
use vigil_core::time::Moment;

use crate::topics::Topics;

/// What an alert needs beyond the incident and the transition.
#[derive(Clone, Copy, Debug)]
pub struct AlertContext<'a> {
    /// The transition's ordinal within its incident, counting from 0 for the raise.
    pub seq: u32,
    /// The camera's human name.
    pub camera_name: &'a str,
}

/// The stable alert id `<device>:<incident>:<seq>` the district acknowledges on `ack`.
pub fn alert_id(topics: &Topics, incident: u64, seq: u32) -> String {
    format!("{}:{incident}:{seq}", topics.device())
}

/// The alert id in an `ack` payload (UTF-8, surrounding whitespace ignored),
/// or `None` if it is not one of this device's alert ids.
pub fn parse_ack<'p>(topics: &Topics, payload: &'p [u8]) -> Option<&'p str> {
    let id = std::str::from_utf8(payload).ok()?.trim();
    let rest = id.strip_prefix(topics.device())?.strip_prefix(':')?;
    let (incident, seq) = rest.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(incident) && digits(seq) && incident.parse::<u64>().is_ok() && seq.parse::<u32>().is_ok()).then_some(id)
}

/// The alert JSON for `transition`, given `incident` as it stands after it.
pub fn alert_json(topics: &Topics, incident: &Incident, transition: &Transition, ctx: AlertContext<'_>) -> Vec<u8> {
    let times = &incident.times;
    let alert = AlertJson {
        alert_id: alert_id(topics, incident.id.0, ctx.seq),
        device: topics.device(),
        incident: incident.id.0,
        seq: ctx.seq,
        stage: transition.to.as_str(),
        previous_stage: transition.from.map(|s| s.as_str()),
        at: transition.at.rfc3339(),
        actor: transition.actor.to_string(),
        reason: &transition.reason,
        drill: incident.drill,
        camera: CameraJson { id: incident.camera.as_str(), name: ctx.camera_name },
        location: LocationJson {
            building: &incident.location.building,
            floor: &incident.location.floor,
            zone: &incident.location.zone,
        },
        label: &incident.label,
        score: incident.score,
        bbox: BBoxJson { x1: incident.bbox.x1, y1: incident.bbox.y1, x2: incident.bbox.x2, y2: incident.bbox.y2 },
        active: incident.active.iter().map(|a| a.as_str()).collect(),
        times: TimesJson {
            captured: times.captured.rfc3339(),
            inferred: times.inferred.rfc3339(),
            confirmed: times.confirmed.rfc3339(),
            raised: times.raised.rfc3339(),
            verified: times.verified.as_ref().map(Moment::rfc3339),
            closed: times.closed.as_ref().map(Moment::rfc3339),
        },
        glass_to_incident_ms: u64::try_from(times.raised.since(times.captured).as_millis()).unwrap_or(u64::MAX),
        snapshot_topic: topics.snapshot(incident.id.0),
    };
    serde_json::to_vec(&alert).expect("an alert of strings and numbers always serializes")
}

#[derive(Serialize)]
struct AlertJson<'a> {
    alert_id: String,
    device: &'a str,
    incident: u64,
    seq: u32,
    stage: &'static str,
    previous_stage: Option<&'static str>,
    at: String,
    actor: String,
    reason: &'a str,
    drill: bool,
    camera: CameraJson<'a>,
    location: LocationJson<'a>,
    label: &'a str,
    score: f32,
    bbox: BBoxJson,
    active: Vec<&'static str>,
    times: TimesJson,
    glass_to_incident_ms: u64,
    snapshot_topic: String,
}

#[derive(Serialize)]
struct CameraJson<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct LocationJson<'a> {
    building: &'a str,
    floor: &'a str,
    zone: &'a str,
}

#[derive(Serialize)]
struct BBoxJson {
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
}

#[derive(Serialize)]
struct TimesJson {
    captured: String,
    inferred: String,
    confirmed: String,
    raised: String,
    verified: Option<String>,
    closed: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::time::Duration;
    use vigil_core::incident::{Actor, IncidentId, Stage, StageTimes};
    use vigil_core::playbook::SrpAction;
    use vigil_core::{BBox, CameraId, Location};

    pub(crate) fn at(ms: u64) -> Moment {
        // 2027-01-15T08:00:00Z
        Moment { mono: Duration::from_millis(ms), wall: Duration::from_secs(1_800_000_000) + Duration::from_millis(ms) }
    }

    pub(crate) fn incident() -> Incident {
        Incident {
            id: IncidentId(7),
            camera: CameraId::new("hall-1"),
            location: Location { building: "A".into(), floor: "1".into(), zone: "east-hall".into() },
            label: Arc::from("handgun"),
            score: 0.91,
            bbox: BBox { x1: 10.0, y1: 20.5, x2: 40.0, y2: 80.0 },
            frame_seq: 1234,
            drill: false,
            stage: Stage::Confirmed,
            times: StageTimes {
                captured: at(0),
                inferred: at(35),
                confirmed: at(36),
                raised: at(37),
                verified: Some(at(5000)),
                closed: None,
            },
            active: vec![SrpAction::Secure, SrpAction::Lockdown],
            redetections: 0,
            transitions: 3,
        }
    }

    pub(crate) fn verified() -> Transition {
        Transition {
            incident: IncidentId(7),
            at: at(5000),
            actor: Actor::Operator("sro@district".into()),
            from: Some(Stage::PendingVerification),
            to: Stage::Confirmed,
            reason: "verified from the evidence".into(),
        }
    }

    pub(crate) fn topics() -> Topics {
        Topics::new("lincoln-hs").unwrap()
    }

    #[test]
    fn alert_json_carries_the_transition_and_the_incident() {
        let bytes = alert_json(&topics(), &incident(), &verified(), AlertContext { seq: 2, camera_name: "East hall" });
        println!("{}", String::from_utf8_lossy(&bytes));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["alert_id"], "lincoln-hs:7:2");
        assert_eq!(v["device"], "lincoln-hs");
        assert_eq!(v["incident"], 7);
        assert_eq!(v["seq"], 2);
        assert_eq!(v["stage"], "confirmed");
        assert_eq!(v["previous_stage"], "pending-verification");
        assert_eq!(v["at"], "2027-01-15T08:00:05.000Z");
        assert_eq!(v["actor"], "operator:sro@district");
        assert_eq!(v["reason"], "verified from the evidence");
        assert_eq!(v["drill"], false);
        assert_eq!(v["camera"], json!({"id": "hall-1", "name": "East hall"}));
        assert_eq!(v["location"], json!({"building": "A", "floor": "1", "zone": "east-hall"}));
        assert_eq!(v["label"], "handgun");
        assert!((v["score"].as_f64().unwrap() - 0.91).abs() < 1e-6);
        assert_eq!(v["bbox"], json!({"x1": 10.0, "y1": 20.5, "x2": 40.0, "y2": 80.0}));
        assert_eq!(v["active"], json!(["secure", "lockdown"]));
        assert_eq!(
            v["times"],
            json!({
                "captured": "2027-01-15T08:00:00.000Z",
                "inferred": "2027-01-15T08:00:00.035Z",
                "confirmed": "2027-01-15T08:00:00.036Z",
                "raised": "2027-01-15T08:00:00.037Z",
                "verified": "2027-01-15T08:00:05.000Z",
                "closed": null
            })
        );
        assert_eq!(v["glass_to_incident_ms"], 37);
        assert_eq!(v["snapshot_topic"], "vigil/v1/lincoln-hs/alerts/7/snapshot");
        assert_eq!(v.as_object().unwrap().len(), 19, "a new field must be added to docs/mqtt.md and this test");
    }

    #[test]
    fn the_raise_has_no_previous_stage() {
        let mut raise = verified();
        raise.from = None;
        raise.to = Stage::Detected;
        raise.actor = Actor::System;
        let v: Value = serde_json::from_slice(&alert_json(
            &topics(),
            &incident(),
            &raise,
            AlertContext { seq: 0, camera_name: "" },
        ))
        .unwrap();
        assert_eq!(v["previous_stage"], Value::Null);
        assert_eq!(v["actor"], "system");
        assert_eq!(v["alert_id"], "lincoln-hs:7:0");
    }

    #[test]
    fn acks_name_this_devices_alerts_only() {
        let t = topics();
        assert_eq!(parse_ack(&t, b"lincoln-hs:7:2"), Some("lincoln-hs:7:2"));
        assert_eq!(parse_ack(&t, b" lincoln-hs:7:2\n"), Some("lincoln-hs:7:2"));
        for bad in
            [&b"other:7:2"[..], b"lincoln-hs:7", b"lincoln-hs:x:2", b"lincoln-hs:7:2:1", b"lincoln-hs::2", b"\xff"]
        {
            assert_eq!(parse_ack(&t, bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
