use super::*;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::incident::{Stage, StageTimes};
use vigil_core::playbook::SrpAction;
use vigil_core::{BBox, CameraId, Location, Moment};

fn moment(ms: u64) -> Moment {
    Moment { mono: Duration::from_millis(ms), wall: Duration::from_secs(1_800_000_000) + Duration::from_millis(ms) }
}

fn incident(id: u64, stage: Stage) -> Incident {
    Incident {
        id: IncidentId(id),
        camera: CameraId::new("hall-1"),
        location: Location { building: "A".into(), floor: "1".into(), zone: "main-hall".into() },
        label: Arc::from("handgun"),
        score: 0.91,
        bbox: BBox { x1: 1.0, y1: 2.0, x2: 30.0, y2: 40.0 },
        frame_seq: 77,
        drill: true,
        stage,
        times: StageTimes {
            captured: moment(0),
            inferred: moment(40),
            confirmed: moment(41),
            raised: moment(42),
            verified: Some(moment(5000)),
            closed: None,
        },
        active: vec![SrpAction::Secure, SrpAction::Lockdown],
        redetections: 3,
        transitions: 4,
    }
}

fn entry(reason: &str) -> AuditEntry {
    AuditEntry {
        at_unix_ms: 1,
        actor: "system".into(),
        event: "transition".into(),
        from: None,
        to: Some("detected".into()),
        reason: reason.into(),
    }
}

#[test]
fn incidents_round_trip_and_only_open_ones_are_restored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let open = incident(3, Stage::Confirmed);
    store.save_incident(&open).unwrap();
    store.save_incident(&incident(9, Stage::Dismissed)).unwrap();
    let loaded = Store::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(loaded.open, vec![open]);
    assert_eq!(loaded.next_id, 10, "ids continue above closed incidents too");
    assert!(loaded.unreadable.is_empty());
}

#[test]
fn an_empty_store_starts_at_one() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = Store::open(dir.path()).unwrap().load().unwrap();
    assert_eq!((loaded.next_id, loaded.open.len(), loaded.drill), (1, 0, None));
}

#[test]
fn audit_trail_appends_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for r in ["one", "two", "three"] {
        store.append_audit(IncidentId(1), &entry(r)).unwrap();
    }
    let reasons: Vec<_> = store.audit(IncidentId(1)).unwrap().into_iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["one", "two", "three"]);
}

#[test]
fn a_torn_last_audit_line_is_skipped_but_a_bad_middle_line_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append_audit(IncidentId(1), &entry("kept")).unwrap();
    let path = store.incident_dir(IncidentId(1)).join("audit.jsonl");
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"{\"at_unix_ms\":2,\"act").unwrap();
    assert_eq!(store.audit(IncidentId(1)).unwrap().len(), 1);
    f.write_all(b"\n").unwrap();
    store.append_audit(IncidentId(1), &entry("after")).unwrap();
    let err = store.audit(IncidentId(1)).unwrap_err().to_string();
    assert!(err.contains("audit.jsonl: line 2"), "{err}");
}

#[test]
fn a_corrupt_incident_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.save_incident(&incident(1, Stage::PendingVerification)).unwrap();
    fs::create_dir_all(store.incident_dir(IncidentId(2))).unwrap();
    fs::write(store.incident_dir(IncidentId(2)).join("incident.json"), b"{ not json").unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.open.len(), 1);
    assert_eq!(loaded.next_id, 3, "a corrupt incident's id is never reused");
    assert_eq!(loaded.unreadable.len(), 1);
    assert!(loaded.unreadable[0].to_string().contains("00000002/incident.json: not a valid incident record"));
}

#[test]
fn snapshots_and_drill_state_persist() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let path = store.save_snapshot(IncidentId(4), b"\xff\xd8jpeg").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"\xff\xd8jpeg");
    assert!(path.ends_with("incidents/00000004/snapshot.jpg"));
    store.set_drill(true).unwrap();
    assert_eq!(store.load().unwrap().drill, Some(true));
    store.set_drill(false).unwrap();
    assert_eq!(store.load().unwrap().drill, Some(false), "an operator's stop is remembered, not forgotten");
}

#[test]
fn unwritable_data_dir_is_a_clear_error() {
    let err = Store::open(Path::new("/proc/vigil-test")).unwrap_err().to_string();
    assert!(err.starts_with("/proc/vigil-test/incidents: cannot create the folder"), "{err}");
}

#[test]
fn device_audit_is_kept_apart_from_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append_device_audit(&entry("drill started")).unwrap();
    assert_eq!(store.device_audit().unwrap()[0].reason, "drill started");
    assert_eq!(store.load().unwrap().next_id, 1);
}
