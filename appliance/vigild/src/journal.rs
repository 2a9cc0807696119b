//! The alert journal: every incident transition becomes alert messages in
//! the durable outbox before anyone hears of it, so the district gets it
//! even if the link is down for hours or the power fails right after.
//!
//! One transition is one outbox batch (one fsync): the alert JSON, its CAP
//! twin and, for the raise, the evidence JPEG. The link publishes them in
//! that order.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vigil_core::incident::{Actor, Incident, Stage, Transition};
use vigil_core::time::Moment;
use vigil_link::LinkHandle;
use vigil_outbox::Outbox;
use vigil_store::{Loaded, Store};
use vigil_uplink::{AlertContext, Topics, alert_cap, alert_id, alert_json};

/// Writes alerts to the outbox and wakes the link.
pub struct Journal {
    outbox: Arc<Outbox>,
    topics: Topics,
    link: Option<LinkHandle>,
    refused: Arc<AtomicU64>,
}

impl Journal {
    /// A journal into `outbox` for the device of `topics`; `link` is woken after each write.
    pub fn new(outbox: Arc<Outbox>, topics: Topics, link: Option<LinkHandle>) -> Journal {
        Journal { outbox, topics, link, refused: Arc::default() }
    }

    /// Alerts that could not be queued (outbox full or failing); should stay 0.
    pub fn refused(&self) -> Arc<AtomicU64> {
        self.refused.clone()
    }

    /// After a push: wakes the link if it worked, counts the refusal if not.
    fn queued(&self, pushed: Result<Vec<u64>, vigil_outbox::OutboxError>) -> Result<(), vigil_outbox::OutboxError> {
        match pushed {
            Ok(_) => {
                if let Some(link) = &self.link {
                    link.wake();
                }
                Ok(())
            }
            Err(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Counts refusals in `counter` (shared with telemetry) instead of a counter of its own.
    pub fn with_refused(mut self, counter: Arc<AtomicU64>) -> Journal {
        self.refused = counter;
        self
    }

    /// Queues the alerts of `transition` durably; `snapshot` is the evidence
    /// file, sent with the raise. Returns only once they are on disk.
    pub fn record(&self, transition: &Transition, incident: &Incident, camera_name: &str, snapshot: Option<&Path>) {
        let seq = incident.transitions.saturating_sub(1);
        let ctx = AlertContext { seq, camera_name };
        let id = alert_id(&self.topics, incident.id.0, seq);
        let json = alert_json(&self.topics, incident, transition, ctx);
        let cap = alert_cap(&self.topics, incident, transition, ctx);
        let cap_id = format!("{id}:cap");
        let mut batch: Vec<(&str, &str, &[u8])> = vec![(&id, "alerts", &json), (&cap_id, "alerts/cap", &cap)];
        let jpeg = match snapshot.filter(|_| transition.from.is_none()).map(std::fs::read) {
            Some(Ok(jpeg)) => Some(jpeg),
            Some(Err(e)) => {
                tracing::error!(incident = %incident.id, error = %e, "cannot read the evidence snapshot; the alert goes without it");
                None
            }
            None => None,
        };
        let snapshot_id = format!("{}:{}:snapshot", self.topics.device(), incident.id.0);
        let snapshot_kind = format!("alerts/{}/snapshot", incident.id.0);
        if let Some(jpeg) = &jpeg {
            batch.push((&snapshot_id, &snapshot_kind, jpeg));
        }
        let mark = mark_key(incident.id.0);
        if let Err(e) = self.queued(self.outbox.push_marked(&batch, transition.at.unix_ms(), &mark, u64::from(seq))) {
            tracing::error!(alert = %id, error = %e, "ALERT NOT QUEUED for the district; it is in the local incident store only");
        }
    }
}

impl Journal {
    /// Queues a plugin's answer for the district on `alerts/actions` (JSON),
    /// deleted from the outbox once the broker has it.
    pub fn record_outcome(&self, outcome: &crate::plugins::ActionOutcome, at: Moment) {
        let (result, detail) = match &outcome.result {
            vigil_plugins::ActionResult::Done(d) => ("done", d.as_str()),
            vigil_plugins::ActionResult::Failed(f) => ("failed", f.as_str()),
            vigil_plugins::ActionResult::NotApplicable => ("not-applicable", ""),
        };
        let id = format!(
            "{}:{}:result:{}:{}:{}",
            self.topics.device(),
            outcome.incident.0,
            outcome.plugin,
            outcome.directive,
            at.unix_ms()
        );
        let payload = serde_json::json!({
            "device": self.topics.device(),
            "incident": outcome.incident.0,
            "plugin": outcome.plugin,
            "action": outcome.directive,
            "result": result,
            "detail": detail,
            "drill": outcome.drill,
            "at": at.rfc3339(),
        });
        let payload = serde_json::to_vec(&payload).expect("a JSON value always serializes");
        if let Err(e) = self.queued(self.outbox.push_batch(&[(&id, "alerts/actions", &payload)], at.unix_ms())) {
            tracing::error!(id, error = %e, "a plugin's action result could not be queued for the district");
        }
    }
}

/// The outbox mark holding the last alert seq journaled for an incident.
fn mark_key(incident: u64) -> String {
    format!("incident:{incident}")
}

/// The outbox mark holding the highest incident id that existed before the journal did.
const BASELINE: &str = "baseline";

impl Journal {
    /// Queues the alerts of transitions that reached the incident store but
    /// not the outbox (vigild was killed between the two writes). Runs once
    /// at startup, before the supervisor. Incidents from before the journal
    /// existed (the first start with an uplink) are left alone.
    pub fn reconcile(&self, store: &Store, loaded: &Loaded, camera_name: impl Fn(&Incident) -> String) {
        let baseline = match self.outbox.mark(BASELINE) {
            Ok(Some(b)) => b,
            Ok(None) => {
                let b = loaded.next_id.saturating_sub(1);
                if let Err(e) = self.outbox.set_mark(BASELINE, b) {
                    tracing::error!(error = %e, "cannot initialize the alert journal");
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the alert journal's marks; not reconciling");
                return;
            }
        };
        let mut queued = 0;
        for incident in loaded.open.iter().chain(&loaded.closed).filter(|i| i.id.0 > baseline && i.transitions > 0) {
            let journaled = match self.outbox.mark(&mark_key(incident.id.0)) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(incident = %incident.id, error = %e, "cannot read the alert journal");
                    continue;
                }
            };
            // incident.json is written first, so its count is never behind the trail's.
            let next = journaled.map_or(0, |m| m + 1);
            if next >= u64::from(incident.transitions) {
                continue;
            }
            let trail = match store.audit(incident.id) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(incident = %incident.id, error = %e, "cannot read the audit trail to recover lost alerts");
                    continue;
                }
            };
            let mut trail: Vec<Transition> = trail
                .iter()
                .filter(|e| e.event == "transition")
                .filter_map(|e| {
                    Some(Transition {
                        incident: incident.id,
                        at: at_unix_ms(e.at_unix_ms),
                        actor: parse_actor(&e.actor),
                        from: e.from.as_deref().and_then(Stage::parse),
                        to: Stage::parse(e.to.as_deref()?)?,
                        reason: e.reason.clone(),
                    })
                })
                .collect();
            // Killed between incident.json and its audit line: the last transition is known only by its result.
            if trail.len() < incident.transitions as usize {
                let t = &incident.times;
                trail.push(Transition {
                    incident: incident.id,
                    at: t.closed.or(t.verified).unwrap_or(t.raised),
                    actor: Actor::System,
                    from: trail.last().map(|l| l.to),
                    to: incident.stage,
                    reason: "recovered after an interrupted write; see the audit trail".into(),
                });
            }
            trail.truncate(incident.transitions as usize);
            for (seq, transition) in trail.iter().enumerate().skip(next as usize) {
                // The alert carries the incident as it stands now; its seq is the transition's own.
                let mut at_seq = incident.clone();
                at_seq.transitions = seq as u32 + 1;
                let snapshot = store.snapshot_path(incident.id);
                let snapshot = (seq == 0 && snapshot.is_file()).then_some(snapshot.as_path());
                self.record(transition, &at_seq, &camera_name(incident), snapshot);
                queued += 1;
            }
        }
        if queued > 0 {
            tracing::warn!(alerts = queued, "queued alerts that an interrupted run had persisted but not journaled");
        }
    }
}

fn at_unix_ms(ms: u64) -> Moment {
    // Only the wall clock of a recovered transition is known; alerts use nothing else of it.
    Moment { mono: std::time::Duration::ZERO, wall: std::time::Duration::from_millis(ms) }
}

fn parse_actor(s: &str) -> Actor {
    match s.strip_prefix("operator:") {
        Some(who) => Actor::Operator(who.to_string()),
        None if s == "system" => Actor::System,
        None => Actor::Operator(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vigil_core::incident::{IncidentId, StageTimes};
    use vigil_core::{BBox, CameraId, Location};
    use vigil_store::AuditEntry;

    fn moment(ms: u64) -> Moment {
        Moment { mono: Duration::from_millis(ms), wall: Duration::from_secs(1_800_000_000) + Duration::from_millis(ms) }
    }

    fn incident(stage: Stage, transitions: u32) -> Incident {
        Incident {
            id: IncidentId(1),
            camera: CameraId::new("hall-1"),
            location: Location { building: "A".into(), floor: "1".into(), zone: "main-hall".into() },
            label: Arc::from("handgun"),
            score: 0.91,
            bbox: BBox { x1: 1.0, y1: 2.0, x2: 30.0, y2: 40.0 },
            frame_seq: 7,
            drill: false,
            stage,
            times: StageTimes {
                captured: moment(0),
                inferred: moment(40),
                confirmed: moment(41),
                raised: moment(42),
                verified: None,
                closed: None,
            },
            active: vec![],
            redetections: 0,
            transitions,
        }
    }

    fn transition_line(from: Option<&str>, to: &str) -> AuditEntry {
        AuditEntry {
            at_unix_ms: 1_800_000_000_042,
            actor: "system".into(),
            event: "transition".into(),
            from: from.map(str::to_string),
            to: Some(to.into()),
            reason: format!("to {to}"),
        }
    }

    fn ids(outbox: &Outbox) -> Vec<String> {
        outbox.pending(None, 100).unwrap().into_iter().filter(|m| m.kind == "alerts").map(|m| m.id).collect()
    }

    #[test]
    fn a_crash_between_store_and_outbox_loses_no_alert() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let outbox = Arc::new(Outbox::open(&dir.path().join("outbox.redb")).unwrap());
        let journal = Journal::new(outbox.clone(), Topics::new("school").unwrap(), None);
        // The first start with a journal sets the baseline: nothing older is replayed.
        journal.reconcile(&store, &store.load().unwrap(), |_| "Main hall".into());
        assert_eq!(outbox.mark(BASELINE).unwrap(), Some(0));

        // Incident 1: the raise was journaled; then vigild died after writing
        // incident.json for two more transitions, with only one audit line.
        let raised = incident(Stage::Detected, 1);
        let t0 = Transition {
            incident: raised.id,
            at: moment(42),
            actor: Actor::System,
            from: None,
            to: Stage::Detected,
            reason: "raised".into(),
        };
        store.save_incident(&raised).unwrap();
        store.append_audit(raised.id, &transition_line(None, "detected")).unwrap();
        journal.record(&t0, &raised, "Main hall", None);
        store.append_audit(raised.id, &transition_line(Some("detected"), "pending-verification")).unwrap();
        store.save_incident(&incident(Stage::Confirmed, 3)).unwrap();
        assert_eq!(ids(&outbox), ["school:1:0"]);

        let loaded = store.load().unwrap();
        journal.reconcile(&store, &loaded, |_| "Main hall".into());
        assert_eq!(ids(&outbox), ["school:1:0", "school:1:1", "school:1:2"]);
        let last = outbox.pending(None, 100).unwrap().into_iter().find(|m| m.id == "school:1:2").unwrap();
        let json: serde_json::Value = serde_json::from_slice(&last.payload).unwrap();
        assert_eq!(
            (json["previous_stage"].as_str(), json["stage"].as_str()),
            (Some("pending-verification"), Some("confirmed"))
        );

        // A second start finds nothing more to do.
        journal.reconcile(&store, &store.load().unwrap(), |_| "Main hall".into());
        assert_eq!(outbox.depth().unwrap(), 6, "three alerts and their CAP twins, no duplicates");
    }
}
