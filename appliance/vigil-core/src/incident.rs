//! Incidents: the life of a confirmed threat from detection to All Clear.
//!
//! ```text
//! Detected ──auto actions──▶ PendingVerification ──verify──▶ Confirmed ──action──▶ Responding(a)
//!                                   │                           │                      │  ▲
//!                                   └──dismiss──▶ Dismissed ◀───┘                      └──┘ action
//!                                   all-clear from any open stage ──▶ AllClear
//! ```
//!
//! Every change of stage is a [`Transition`] with time, actor and reason, so
//! the owner can keep an audit trail. Actions leave as [`ActionRequest`]s for
//! whoever carries them out. All Clear only ever comes from a command.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::confirm::Alarm;
use crate::frame::{CameraId, Location};
use crate::geom::BBox;
use crate::playbook::{Playbook, SrpAction};
use crate::time::Moment;

/// An incident's number on this device; monotonic, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncidentId(pub u64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where an incident is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Raised from a confirmed alarm; automatic actions are being dispatched.
    Detected,
    /// Waiting for a human to look at the evidence.
    PendingVerification,
    /// A human confirmed the threat.
    Confirmed,
    /// A Standard Response Protocol action is under way (the latest one).
    Responding(SrpAction),
    /// A human judged it a false alarm; closed.
    Dismissed,
    /// The response is over; closed.
    AllClear,
}

impl Stage {
    /// Whether the incident is over.
    pub fn is_closed(&self) -> bool {
        matches!(self, Stage::Dismissed | Stage::AllClear)
    }

    /// The stable name used in logs, the audit trail and on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::Detected => "detected",
            Stage::PendingVerification => "pending-verification",
            Stage::Confirmed => "confirmed",
            Stage::Responding(SrpAction::Hold) => "responding:hold",
            Stage::Responding(SrpAction::Secure) => "responding:secure",
            Stage::Responding(SrpAction::Lockdown) => "responding:lockdown",
            Stage::Responding(SrpAction::Evacuate) => "responding:evacuate",
            Stage::Responding(SrpAction::Shelter) => "responding:shelter",
            Stage::Dismissed => "dismissed",
            Stage::AllClear => "all-clear",
        }
    }

    /// Parses [`Stage::as_str`]'s output back.
    pub fn parse(s: &str) -> Option<Stage> {
        let fixed = [Stage::Detected, Stage::PendingVerification, Stage::Confirmed, Stage::Dismissed, Stage::AllClear];
        fixed.into_iter().chain(SrpAction::ALL.into_iter().map(Stage::Responding)).find(|stage| stage.as_str() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// Vigil itself (detection, playbook).
    System,
    /// A person, identified by whatever the command channel authenticated.
    Operator(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::Operator(who) => write!(f, "operator:{who}"),
        }
    }
}

/// When each stage happened; the glass-to-alert latency is `raised - captured`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageTimes {
    /// The confirming frame was captured.
    pub captured: Moment,
    /// Its inference finished.
    pub inferred: Moment,
    /// The confirmation rule was met.
    pub confirmed: Moment,
    /// The incident was raised.
    pub raised: Moment,
    /// A human verified it.
    pub verified: Option<Moment>,
    /// It was dismissed or cleared.
    pub closed: Option<Moment>,
}

/// One incident's current state.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// Its number.
    pub id: IncidentId,
    /// The camera that saw the threat.
    pub camera: CameraId,
    /// Where that camera is.
    pub location: Location,
    /// What was seen.
    pub label: Arc<str>,
    /// The confirming detection's score.
    pub score: f32,
    /// The confirming detection's box, in frame pixels.
    pub bbox: BBox,
    /// The confirming frame's sequence number.
    pub frame_seq: u64,
    /// Raised during a drill: every consumer must treat it as an exercise.
    pub drill: bool,
    /// Current stage.
    pub stage: Stage,
    /// Stage times.
    pub times: StageTimes,
    /// Actions in force, in the order they were started; released on dismiss or All Clear.
    pub active: Vec<SrpAction>,
    /// Further confirmed alarms on the same camera while this incident was open.
    pub redetections: u32,
    /// Transitions so far, the raise included: the latest one's ordinal is
    /// `transitions - 1`, which makes alert ids stable across restarts.
    pub transitions: u32,
}

/// A recorded change of stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The incident.
    pub incident: IncidentId,
    /// When.
    pub at: Moment,
    /// Who.
    pub actor: Actor,
    /// From which stage; `None` for the raise.
    pub from: Option<Stage>,
    /// To which stage.
    pub to: Stage,
    /// Why, in words for the audit trail.
    pub reason: String,
}

/// What an action request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Start an SRP action.
    Activate(SrpAction),
    /// Undo an SRP action because the incident was dismissed as false.
    Revert(SrpAction),
    /// The incident is over: release everything.
    AllClear,
}

/// A request to the response plugins.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionRequest {
    /// The incident it belongs to.
    pub incident: IncidentId,
    /// Exercise: plugins use drill messages and do not lock real doors unless configured to.
    pub drill: bool,
    /// The camera that saw the threat.
    pub camera: CameraId,
    /// Where.
    pub location: Location,
    /// What was seen.
    pub label: Arc<str>,
    /// What to do.
    pub directive: Directive,
    /// Who caused it: the system for playbook actions, else the operator.
    pub actor: Actor,
}

/// What the incident book asks its owner to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A new incident; persist it and its evidence before anything else.
    Raised(Incident),
    /// A stage changed; append to the audit trail and persist the incident's new state.
    Transition(Transition, Incident),
    /// Carry out an action.
    Dispatch(ActionRequest),
    /// An open incident's camera confirmed another alarm.
    Redetected(IncidentId, Alarm),
    /// Drill mode changed.
    Drill { active: bool, actor: Actor, at: Moment },
}

/// An operator's command on incidents.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// A human looked at the evidence and confirms the threat.
    Verify(IncidentId),
    /// A human judged it false.
    Dismiss(IncidentId),
    /// Start an SRP action for the incident.
    Action(IncidentId, SrpAction),
    /// The response is over.
    AllClear(IncidentId),
    /// Every incident raised from now on is a drill.
    DrillStart,
    /// Drill over.
    DrillStop,
}

/// Why a command was refused; `code` is stable for machines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for CommandError {}

/// All open incidents of one device and the rules that move them.
#[derive(Debug)]
pub struct Incidents {
    next_id: u64,
    open: BTreeMap<IncidentId, Incident>,
    playbook: Playbook,
    drill: bool,
}

impl Incidents {
    /// A book that will number new incidents from `next_id`, holding the
    /// `open` incidents restored from disk (a restart must not forget a lockdown).
    pub fn new(next_id: u64, open: Vec<Incident>, playbook: Playbook, drill: bool) -> Incidents {
        let next_id = open.iter().map(|i| i.id.0 + 1).max().unwrap_or(0).max(next_id);
        let open = open.into_iter().filter(|i| !i.stage.is_closed()).map(|i| (i.id, i)).collect();
        Incidents { next_id, open, playbook, drill }
    }

    /// Replaces the playbook; incidents already open keep the actions they started.
    pub fn set_playbook(&mut self, playbook: Playbook) {
        self.playbook = playbook;
    }

    /// Whether drill mode is on.
    pub fn drill(&self) -> bool {
        self.drill
    }

    /// The id the next incident will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Open incidents, oldest first.
    pub fn open(&self) -> impl Iterator<Item = &Incident> {
        self.open.values()
    }

    /// One open incident.
    pub fn get(&self, id: IncidentId) -> Option<&Incident> {
        self.open.get(&id)
    }

    /// Requests that re-assert every action still in force on the restored
    /// incidents: a door controller that lost power with the box must be told
    /// again. Call once after a restart; devices treat repeats as no-ops.
    pub fn resume(&self) -> Vec<Output> {
        self.open
            .values()
            .flat_map(|i| {
                i.active.iter().map(move |&a| Output::Dispatch(request(i, Directive::Activate(a), &Actor::System)))
            })
            .collect()
    }

    /// A confirmed alarm from `location`'s camera: raise an incident, or count
    /// a re-detection if that camera already has one open.
    pub fn on_alarm(&mut self, alarm: Alarm, location: Location, now: Moment) -> Vec<Output> {
        if let Some(open) = self.open.values_mut().find(|i| i.camera == alarm.camera) {
            open.redetections += 1;
            return vec![Output::Redetected(open.id, alarm)];
        }
        let id = IncidentId(self.next_id);
        self.next_id += 1;
        let mut incident = Incident {
            id,
            camera: alarm.camera.clone(),
            location,
            label: alarm.label.clone(),
            score: alarm.score,
            bbox: alarm.bbox,
            frame_seq: alarm.frame_seq,
            drill: self.drill,
            stage: Stage::Detected,
            times: StageTimes {
                captured: alarm.captured,
                inferred: alarm.inferred,
                confirmed: alarm.confirmed,
                raised: now,
                verified: None,
                closed: None,
            },
            active: Vec::new(),
            redetections: 0,
            transitions: 1,
        };
        let mut out = vec![Output::Raised(incident.clone())];
        let reason = format!(
            "{} {:.2} confirmed on camera {} ({} of {} frames){}",
            alarm.label,
            alarm.score,
            alarm.camera,
            alarm.hits,
            alarm.window,
            if incident.drill { ", drill" } else { "" }
        );
        out.push(Output::Transition(
            Transition { incident: id, at: now, actor: Actor::System, from: None, to: Stage::Detected, reason },
            incident.clone(),
        ));
        for &action in self.playbook.on_detection() {
            incident.active.push(action);
            out.push(Output::Dispatch(request(&incident, Directive::Activate(action), &Actor::System)));
        }
        let reason = if incident.active.is_empty() {
            "awaiting human verification".to_string()
        } else {
            format!("automatic {} started; awaiting human verification", list(&incident.active))
        };
        transition(&mut incident, Stage::PendingVerification, Actor::System, now, reason, &mut out);
        self.open.insert(id, incident);
        out
    }

    /// An operator's command at `now`.
    pub fn on_command(&mut self, command: Command, actor: Actor, now: Moment) -> Result<Vec<Output>, CommandError> {
        let mut out = Vec::new();
        let id = match command {
            Command::DrillStart | Command::DrillStop => {
                let active = command == Command::DrillStart;
                if self.drill != active {
                    self.drill = active;
                    out.push(Output::Drill { active, actor, at: now });
                }
                return Ok(out);
            }
            Command::Verify(id) | Command::Dismiss(id) | Command::Action(id, _) | Command::AllClear(id) => id,
        };
        let Some(incident) = self.open.get_mut(&id) else {
            return Err(CommandError {
                code: "unknown-incident",
                message: format!("incident {id} is not open: it never existed or is already closed"),
            });
        };
        match command {
            Command::Verify(_) => {
                if incident.stage != Stage::PendingVerification {
                    return Err(refused(incident, "verify", "only an incident pending verification can be verified"));
                }
                verify(incident, &self.playbook, actor, now, "verified from the evidence".into(), &mut out);
            }
            Command::Dismiss(_) => {
                if !matches!(incident.stage, Stage::PendingVerification | Stage::Confirmed) {
                    return Err(refused(incident, "dismiss", "a response is under way: end it with all-clear"));
                }
                for &action in incident.active.iter().rev() {
                    out.push(Output::Dispatch(request(incident, Directive::Revert(action), &actor)));
                }
                let reason = if incident.active.is_empty() {
                    "dismissed as a false alarm".to_string()
                } else {
                    format!("dismissed as a false alarm; reverting {}", list(&incident.active))
                };
                incident.active.clear();
                incident.times.closed = Some(now);
                transition(incident, Stage::Dismissed, actor, now, reason, &mut out);
            }
            Command::Action(_, action) => {
                if incident.stage == Stage::PendingVerification {
                    let reason = format!("verified by ordering {action}");
                    verify(incident, &self.playbook, actor.clone(), now, reason, &mut out);
                }
                if !incident.active.contains(&action) {
                    incident.active.push(action);
                }
                out.push(Output::Dispatch(request(incident, Directive::Activate(action), &actor)));
                transition(incident, Stage::Responding(action), actor, now, format!("{action} ordered"), &mut out);
            }
            Command::AllClear(_) => {
                out.push(Output::Dispatch(request(incident, Directive::AllClear, &actor)));
                let reason = if incident.active.is_empty() {
                    "all clear".to_string()
                } else {
                    format!("all clear; releasing {}", list(&incident.active))
                };
                incident.active.clear();
                incident.times.closed = Some(now);
                transition(incident, Stage::AllClear, actor, now, reason, &mut out);
            }
            Command::DrillStart | Command::DrillStop => unreachable!("handled above"),
        }
        if incident.stage.is_closed() {
            self.open.remove(&id);
        }
        Ok(out)
    }
}

fn verify(
    incident: &mut Incident,
    playbook: &Playbook,
    actor: Actor,
    now: Moment,
    reason: String,
    out: &mut Vec<Output>,
) {
    incident.times.verified = Some(now);
    // The actions join `active` before the transition is recorded, so the
    // persisted state never lags what is in force (a restart must revert them).
    for &action in playbook.on_verification() {
        if !incident.active.contains(&action) {
            incident.active.push(action);
        }
    }
    transition(incident, Stage::Confirmed, actor.clone(), now, reason, out);
    for &action in playbook.on_verification() {
        out.push(Output::Dispatch(request(incident, Directive::Activate(action), &actor)));
    }
}

fn transition(incident: &mut Incident, to: Stage, actor: Actor, at: Moment, reason: String, out: &mut Vec<Output>) {
    let from = Some(incident.stage);
    incident.stage = to;
    incident.transitions += 1;
    out.push(Output::Transition(Transition { incident: incident.id, at, actor, from, to, reason }, incident.clone()));
}

fn request(incident: &Incident, directive: Directive, actor: &Actor) -> ActionRequest {
    ActionRequest {
        incident: incident.id,
        drill: incident.drill,
        camera: incident.camera.clone(),
        location: incident.location.clone(),
        label: incident.label.clone(),
        directive,
        actor: actor.clone(),
    }
}

fn refused(incident: &Incident, what: &str, why: &str) -> CommandError {
    CommandError {
        code: "invalid-transition",
        message: format!("cannot {what} incident {} while it is {}: {why}", incident.id, incident.stage),
    }
}

fn list(actions: &[SrpAction]) -> String {
    actions.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> Moment {
        Moment { mono: Duration::from_millis(ms), wall: Duration::from_secs(1_800_000_000) + Duration::from_millis(ms) }
    }

    fn alarm(camera: &str) -> Alarm {
        Alarm {
            camera: CameraId::new(camera),
            track: 0,
            label: Arc::from("handgun"),
            score: 0.91,
            bbox: BBox { x1: 10.0, y1: 10.0, x2: 40.0, y2: 30.0 },
            frame_seq: 7,
            captured: at(0),
            inferred: at(35),
            confirmed: at(36),
            hits: 3,
            window: 5,
        }
    }

    fn book() -> Incidents {
        Incidents::new(1, vec![], Playbook::default(), false)
    }

    fn operator() -> Actor {
        Actor::Operator("sro@district".into())
    }

    fn dispatched(out: &[Output]) -> Vec<Directive> {
        out.iter()
            .filter_map(|o| match o {
                Output::Dispatch(r) => Some(r.directive),
                _ => None,
            })
            .collect()
    }

    fn stages(out: &[Output]) -> Vec<(Option<Stage>, Stage)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Transition(t, _) => Some((t.from, t.to)),
                _ => None,
            })
            .collect()
    }

    fn raise(b: &mut Incidents) -> IncidentId {
        match &b.on_alarm(alarm("hall-1"), Location::default(), at(37))[0] {
            Output::Raised(i) => i.id,
            other => panic!("expected a raise, got {other:?}"),
        }
    }

    #[test]
    fn raising_runs_automatic_actions_and_waits_for_a_human() {
        let mut b = book();
        let out = b.on_alarm(alarm("hall-1"), Location::default(), at(37));
        assert!(matches!(&out[0], Output::Raised(i) if i.id == IncidentId(1) && i.stage == Stage::Detected));
        assert_eq!(stages(&out), vec![(None, Stage::Detected), (Some(Stage::Detected), Stage::PendingVerification)]);
        assert_eq!(dispatched(&out), vec![Directive::Activate(SrpAction::Secure)]);
        let i = b.get(IncidentId(1)).unwrap();
        assert_eq!(i.active, vec![SrpAction::Secure]);
        assert_eq!(i.times.raised.since(i.times.captured), Duration::from_millis(37));
    }

    #[test]
    fn each_transition_carries_its_ordinal() {
        let mut b = book();
        let mut out = b.on_alarm(alarm("hall-1"), Location::default(), at(37));
        let id = b.open().next().map(|i| i.id).unwrap();
        out.extend(b.on_command(Command::Verify(id), operator(), at(40)).unwrap());
        out.extend(b.on_command(Command::AllClear(id), operator(), at(50)).unwrap());
        let ordinals: Vec<u32> = out
            .iter()
            .filter_map(|o| match o {
                Output::Transition(_, i) => Some(i.transitions - 1),
                _ => None,
            })
            .collect();
        assert_eq!(ordinals, (0..ordinals.len() as u32).collect::<Vec<_>>());
        assert!(ordinals.len() >= 4, "raise, pending, confirmed, all clear: {ordinals:?}");
    }

    #[test]
    fn ids_are_monotonic_and_survive_a_restart() {
        let mut b = book();
        let first = raise(&mut b);
        let out = b.on_alarm(alarm("gym"), Location::default(), at(50));
        assert!(matches!(&out[0], Output::Raised(i) if i.id == IncidentId(first.0 + 1)));
        let open: Vec<Incident> = b.open().cloned().collect();
        let mut restarted = Incidents::new(0, open, Playbook::default(), false);
        assert_eq!(restarted.next_id(), 3);
        assert_eq!(restarted.get(first).unwrap().active, vec![SrpAction::Secure]);
        assert!(
            matches!(&restarted.on_alarm(alarm("lab"), Location::default(), at(60))[0], Output::Raised(i) if i.id == IncidentId(3))
        );
        // A persisted counter ahead of the open incidents (closed ones since) wins.
        assert_eq!(Incidents::new(10, vec![], Playbook::default(), false).next_id(), 10);
    }

    #[test]
    fn verify_confirms_and_runs_the_verified_actions() {
        let mut b = book();
        let id = raise(&mut b);
        let out = b.on_command(Command::Verify(id), operator(), at(5000)).unwrap();
        assert_eq!(stages(&out), vec![(Some(Stage::PendingVerification), Stage::Confirmed)]);
        assert_eq!(dispatched(&out), vec![Directive::Activate(SrpAction::Lockdown)]);
        let i = b.get(id).unwrap();
        assert_eq!(i.active, vec![SrpAction::Secure, SrpAction::Lockdown]);
        assert_eq!(i.times.verified, Some(at(5000)));
        match &out[0] {
            Output::Transition(t, _) => assert_eq!(t.actor, operator()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_confirmed_record_already_holds_the_verified_actions() {
        // Regression: the Confirmed transition was recorded before Lockdown
        // joined `active`, so a restart forgot to revert the lockdown.
        let mut b = book();
        let id = raise(&mut b);
        let out = b.on_command(Command::Verify(id), operator(), at(1)).unwrap();
        match &out[0] {
            Output::Transition(t, i) => {
                assert_eq!(t.to, Stage::Confirmed);
                assert_eq!(i.active, vec![SrpAction::Secure, SrpAction::Lockdown]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn operator_actions_name_the_operator() {
        let mut b = book();
        let id = raise(&mut b);
        let out = b.on_command(Command::Action(id, SrpAction::Hold), operator(), at(1)).unwrap();
        let actors: Vec<Actor> = out
            .iter()
            .filter_map(|o| match o {
                Output::Dispatch(r) => Some(r.actor.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(actors, vec![operator(), operator()], "verify's lockdown and the ordered hold");
        let raised = b.on_alarm(alarm("gym"), Location::default(), at(2));
        assert!(raised.iter().all(|o| !matches!(o, Output::Dispatch(r) if r.actor != Actor::System)));
    }

    #[test]
    fn resume_reasserts_what_is_in_force() {
        let mut b = book();
        let id = raise(&mut b);
        b.on_command(Command::Verify(id), operator(), at(1)).unwrap();
        let open: Vec<Incident> = b.open().cloned().collect();
        let restarted = Incidents::new(0, open, Playbook::default(), false);
        assert_eq!(
            dispatched(&restarted.resume()),
            vec![Directive::Activate(SrpAction::Secure), Directive::Activate(SrpAction::Lockdown)]
        );
        assert!(book().resume().is_empty());
    }

    #[test]
    fn dismiss_reverts_automatic_actions_and_closes() {
        let mut b = book();
        let id = raise(&mut b);
        let out = b.on_command(Command::Dismiss(id), operator(), at(4000)).unwrap();
        assert_eq!(dispatched(&out), vec![Directive::Revert(SrpAction::Secure)]);
        assert_eq!(stages(&out), vec![(Some(Stage::PendingVerification), Stage::Dismissed)]);
        assert!(b.get(id).is_none());
        let err = b.on_command(Command::Verify(id), operator(), at(4001)).unwrap_err();
        assert_eq!(err.code, "unknown-incident");
    }

    #[test]
    fn dismiss_after_verification_reverts_everything_in_reverse_order() {
        let mut b = book();
        let id = raise(&mut b);
        b.on_command(Command::Verify(id), operator(), at(1)).unwrap();
        let out = b.on_command(Command::Dismiss(id), operator(), at(2)).unwrap();
        assert_eq!(
            dispatched(&out),
            vec![Directive::Revert(SrpAction::Lockdown), Directive::Revert(SrpAction::Secure)]
        );
    }

    #[test]
    fn dismiss_during_a_response_is_refused_and_changes_nothing() {
        let mut b = book();
        let id = raise(&mut b);
        b.on_command(Command::Action(id, SrpAction::Lockdown), operator(), at(1)).unwrap();
        let before = b.get(id).unwrap().clone();
        let err = b.on_command(Command::Dismiss(id), operator(), at(2)).unwrap_err();
        assert_eq!(err.code, "invalid-transition");
        assert!(err.message.contains("end it with all-clear"), "{err}");
        assert_eq!(b.get(id), Some(&before));
    }

    #[test]
    fn an_action_while_pending_counts_as_verification() {
        let mut b = book();
        let id = raise(&mut b);
        let out = b.on_command(Command::Action(id, SrpAction::Evacuate), operator(), at(9)).unwrap();
        assert_eq!(
            stages(&out),
            vec![
                (Some(Stage::PendingVerification), Stage::Confirmed),
                (Some(Stage::Confirmed), Stage::Responding(SrpAction::Evacuate))
            ]
        );
        assert_eq!(
            dispatched(&out),
            vec![Directive::Activate(SrpAction::Lockdown), Directive::Activate(SrpAction::Evacuate)]
        );
    }

    #[test]
    fn all_clear_releases_and_closes_from_every_open_stage() {
        for setup in 0..3 {
            let mut b = book();
            let id = raise(&mut b);
            if setup >= 1 {
                b.on_command(Command::Verify(id), operator(), at(1)).unwrap();
            }
            if setup >= 2 {
                b.on_command(Command::Action(id, SrpAction::Hold), operator(), at(2)).unwrap();
            }
            let out = b.on_command(Command::AllClear(id), operator(), at(3)).unwrap();
            assert_eq!(dispatched(&out), vec![Directive::AllClear]);
            assert_eq!(stages(&out).last().unwrap().1, Stage::AllClear);
            match out.last().unwrap() {
                Output::Transition(_, i) => {
                    assert!(i.active.is_empty());
                    assert_eq!(i.times.closed, Some(at(3)));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(b.open().count(), 0);
        }
    }

    #[test]
    fn verify_twice_is_refused() {
        let mut b = book();
        let id = raise(&mut b);
        b.on_command(Command::Verify(id), operator(), at(1)).unwrap();
        let err = b.on_command(Command::Verify(id), operator(), at(2)).unwrap_err();
        assert_eq!(err.code, "invalid-transition");
        assert!(err.message.contains("while it is confirmed"), "{err}");
    }

    #[test]
    fn nothing_clears_an_incident_but_a_command() {
        // Alarms keep coming and time passes: the incident stays open with its actions.
        let mut b = book();
        let id = raise(&mut b);
        for n in 0..100 {
            let out = b.on_alarm(alarm("hall-1"), Location::default(), at(1000 * n));
            assert!(matches!(&out[..], [Output::Redetected(i, _)] if *i == id));
        }
        let i = b.get(id).unwrap();
        assert_eq!(i.stage, Stage::PendingVerification);
        assert_eq!(i.redetections, 100);
        assert_eq!(i.active, vec![SrpAction::Secure]);
    }

    #[test]
    fn drills_are_carried_to_incidents_and_actions() {
        let mut b = book();
        let out = b.on_command(Command::DrillStart, operator(), at(0)).unwrap();
        assert!(matches!(&out[..], [Output::Drill { active: true, .. }]));
        assert!(b.on_command(Command::DrillStart, operator(), at(1)).unwrap().is_empty(), "idempotent");
        let out = b.on_alarm(alarm("hall-1"), Location::default(), at(2));
        assert!(out.iter().all(|o| match o {
            Output::Raised(i) | Output::Transition(_, i) => i.drill,
            Output::Dispatch(r) => r.drill,
            _ => true,
        }));
        b.on_command(Command::DrillStop, operator(), at(3)).unwrap();
        let out = b.on_alarm(alarm("gym"), Location::default(), at(4));
        assert!(matches!(&out[0], Output::Raised(i) if !i.drill));
        // The drill incident stays a drill after drill mode ends.
        assert!(b.get(IncidentId(1)).unwrap().drill);
    }

    #[test]
    fn an_empty_playbook_dispatches_nothing_until_a_human_acts() {
        let mut b = Incidents::new(1, vec![], Playbook::new(vec![], vec![]).unwrap(), false);
        let out = b.on_alarm(alarm("hall-1"), Location::default(), at(0));
        assert!(dispatched(&out).is_empty());
        let out = b.on_command(Command::Verify(IncidentId(1)), operator(), at(1)).unwrap();
        assert!(dispatched(&out).is_empty());
    }

    #[test]
    fn stage_names_round_trip() {
        let all = [Stage::Detected, Stage::PendingVerification, Stage::Confirmed, Stage::Dismissed, Stage::AllClear]
            .into_iter()
            .chain(SrpAction::ALL.into_iter().map(Stage::Responding));
        for s in all {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        assert_eq!(Stage::parse("bogus"), None);
    }

    #[test]
    fn restored_closed_incidents_are_not_reopened() {
        let mut b = book();
        let id = raise(&mut b);
        let mut closed = b.get(id).unwrap().clone();
        closed.stage = Stage::Dismissed;
        assert_eq!(Incidents::new(0, vec![closed], Playbook::default(), false).open().count(), 0);
    }
}
