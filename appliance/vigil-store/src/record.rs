//! The on-disk JSON records. Field names are a storage format: renaming one
//! breaks every box that has incidents on disk.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_core::incident::{Incident, IncidentId, Stage, StageTimes};
use vigil_core::playbook::SrpAction;
use vigil_core::{BBox, CameraId, Location, Moment};

/// One line of an incident's audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// `system` or `operator:<identity>`.
    pub actor: String,
    /// `transition`, `action`, `reasserted`, `redetected` or `drill`.
    pub event: String,
    /// Stage before, for transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Stage after, for transitions; the directive, for actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Why, in words.
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
struct MomentRecord {
    wall_us: u64,
    mono_us: u64,
}

impl From<Moment> for MomentRecord {
    fn from(m: Moment) -> Self {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        MomentRecord { wall_us: us(m.wall), mono_us: us(m.mono) }
    }
}

impl From<&MomentRecord> for Moment {
    fn from(m: &MomentRecord) -> Self {
        Moment { wall: Duration::from_micros(m.wall_us), mono: Duration::from_micros(m.mono_us) }
    }
}

#[derive(Serialize, Deserialize)]
struct TimesRecord {
    captured: MomentRecord,
    inferred: MomentRecord,
    confirmed: MomentRecord,
    raised: MomentRecord,
    verified: Option<MomentRecord>,
    closed: Option<MomentRecord>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct IncidentRecord {
    id: u64,
    camera: String,
    building: String,
    floor: String,
    zone: String,
    label: String,
    score: f32,
    bbox: [f32; 4],
    frame_seq: u64,
    drill: bool,
    stage: String,
    active: Vec<String>,
    redetections: u32,
    /// Absent in files written before it existed.
    #[serde(default)]
    transitions: u32,
    times: TimesRecord,
    /// Derived, for people reading the file: capture to raise, milliseconds.
    glass_to_incident_ms: f64,
}

impl From<&Incident> for IncidentRecord {
    fn from(i: &Incident) -> Self {
        let t = &i.times;
        IncidentRecord {
            id: i.id.0,
            camera: i.camera.to_string(),
            building: i.location.building.clone(),
            floor: i.location.floor.clone(),
            zone: i.location.zone.clone(),
            label: i.label.to_string(),
            score: i.score,
            bbox: [i.bbox.x1, i.bbox.y1, i.bbox.x2, i.bbox.y2],
            frame_seq: i.frame_seq,
            drill: i.drill,
            stage: i.stage.as_str().to_string(),
            active: i.active.iter().map(|a| a.as_str().to_string()).collect(),
            redetections: i.redetections,
            transitions: i.transitions,
            times: TimesRecord {
                captured: t.captured.into(),
                inferred: t.inferred.into(),
                confirmed: t.confirmed.into(),
                raised: t.raised.into(),
                verified: t.verified.map(Into::into),
                closed: t.closed.map(Into::into),
            },
            glass_to_incident_ms: t.raised.since(t.captured).as_secs_f64() * 1000.0,
        }
    }
}

impl IncidentRecord {
    pub(crate) fn into_incident(self) -> Result<Incident, String> {
        let stage = Stage::parse(&self.stage).ok_or_else(|| format!("unknown stage {:?}", self.stage))?;
        let active = self.active.iter().map(|a| a.parse::<SrpAction>()).collect::<Result<Vec<_>, _>>()?;
        let t = &self.times;
        Ok(Incident {
            id: IncidentId(self.id),
            camera: CameraId::new(&self.camera),
            location: Location { building: self.building, floor: self.floor, zone: self.zone },
            label: Arc::from(self.label),
            score: self.score,
            bbox: BBox { x1: self.bbox[0], y1: self.bbox[1], x2: self.bbox[2], y2: self.bbox[3] },
            frame_seq: self.frame_seq,
            drill: self.drill,
            stage,
            times: StageTimes {
                captured: (&t.captured).into(),
                inferred: (&t.inferred).into(),
                confirmed: (&t.confirmed).into(),
                raised: (&t.raised).into(),
                verified: t.verified.as_ref().map(Into::into),
                closed: t.closed.as_ref().map(Into::into),
            },
            active,
            redetections: self.redetections,
            transitions: self.transitions,
        })
    }
}
