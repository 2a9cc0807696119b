//! The plugin's decisions as plain functions, with no I/O and no SDK: which
//! doors a directive locks or releases, what each door should be, whether a
//! read-back confirms a write, and the words of the answer. When to retry is
//! left to [`doors`](crate::doors), with the SDK's pure backoff.
//!
//! Safety rules kept here:
//! - Secure locks exterior doors, Lockdown every door; Hold, Evacuate and
//!   Shelter never lock anything (an evacuation must never meet a locked door).
//! - Locking is entry only: the plugin drives the output wired to the access
//!   panel's lockdown input or the strike's entry side, never free egress.
//! - A door counts as locked only when the device reads it back locked.
//! - A drill locks nothing unless the operator set `drill_locks`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Door};

/// The SRP actions that lock doors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locking {
    /// Secure: exterior doors.
    Secure,
    /// Lockdown: every door.
    Lockdown,
}

impl Locking {
    /// Its SRP name.
    pub fn as_str(self) -> &'static str {
        match self {
            Locking::Secure => "secure",
            Locking::Lockdown => "lockdown",
        }
    }

    /// Whether this action locks `door`.
    pub fn covers(self, door: &Door) -> bool {
        match self {
            Locking::Secure => door.exterior,
            Locking::Lockdown => true,
        }
    }
}

/// What an action request asks of this plugin, stripped of the SDK's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Start Secure or Lockdown.
    Lock(Locking),
    /// Start an action that must not lock: hold, evacuate or shelter (its SRP name).
    Other(&'static str),
    /// Undo Secure or Lockdown (a dismissed false alarm).
    Revert(Locking),
    /// Undo an action this plugin never acted on.
    RevertOther(&'static str),
    /// End the incident's response.
    AllClear,
}

/// An incident's hold on doors: Secure or Lockdown in force for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Claim {
    /// The incident id.
    pub incident: u64,
    /// The action.
    pub action: Locking,
}

/// What must survive a restart (kept in the plugin's key-value store): the
/// claims in force, and releases not yet confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The claims in force.
    pub claims: BTreeSet<Claim>,
    /// Doors to unlock that have not read back unlocked yet, by name.
    pub releasing: BTreeSet<String>,
}

/// What the plugin wants of a door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Locked (a claim covers it).
    Locked,
    /// Unlocked (released, not yet confirmed).
    Unlocked,
    /// Nothing: the plugin leaves the door as it is.
    Nothing,
}

impl Desired {
    /// What the plugin wants of `door`.
    pub fn want(&self, door: &Door) -> Want {
        if self.claims.iter().any(|c| c.action.covers(door)) {
            Want::Locked
        } else if self.releasing.contains(&door.name) {
            Want::Unlocked
        } else {
            Want::Nothing
        }
    }

    /// A release was confirmed: leave the door alone from now on.
    pub fn released(&mut self, door: &Door) {
        self.releasing.remove(&door.name);
    }
}

/// What to do about an action request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do; the text says why (for the log: `not-applicable` carries no words).
    NotApplicable(String),
    /// Answer `done` with these words without touching any door (a drill, or nothing to release).
    Say(String),
    /// Lock these doors (indexes into the config), then answer.
    Lock(Vec<usize>),
    /// Unlock these doors, then answer; `kept` doors stay locked for other incidents.
    Release {
        /// Doors to unlock.
        doors: Vec<usize>,
        /// Doors this incident held that another incident still holds locked.
        kept: Vec<usize>,
    },
}

/// Decides what `directive` for incident `incident` means, updating `desired`
/// (the caller persists it before touching any door, so a restart re-applies it).
pub fn decide(config: &Config, desired: &mut Desired, incident: u64, drill: bool, directive: Directive) -> Decision {
    let real = !drill || config.drill_locks;
    match directive {
        Directive::Other(action) => never_locks(action),
        Directive::RevertOther(action) => {
            Decision::NotApplicable(format!("door-lock did nothing for {action}, so there is nothing to revert"))
        }
        Directive::Lock(action) => {
            let doors: Vec<usize> =
                config.doors.iter().enumerate().filter(|(_, d)| action.covers(d)).map(|(i, _)| i).collect();
            if doors.is_empty() {
                return Decision::NotApplicable(format!("no door is configured for {}", action.as_str()));
            }
            if !real {
                return Decision::Say(format!(
                    "drill: {} would lock ({}); drill_locks is off",
                    count(doors.len(), "door"),
                    names(config, &doors)
                ));
            }
            desired.claims.insert(Claim { incident, action });
            for &i in &doors {
                desired.releasing.remove(&config.doors[i].name);
            }
            Decision::Lock(doors)
        }
        Directive::Revert(_) | Directive::AllClear => {
            let held: Vec<Claim> = desired
                .claims
                .iter()
                .filter(|c| {
                    c.incident == incident
                        && (directive == Directive::AllClear || directive == Directive::Revert(c.action))
                })
                .copied()
                .collect();
            if held.is_empty() {
                return Decision::Say(if drill && !config.drill_locks {
                    "drill: no doors were locked, none to release".to_string()
                } else {
                    format!("no doors held locked for incident {incident}, none to release")
                });
            }
            let was_locked: Vec<usize> =
                (0..config.doors.len()).filter(|&i| desired.want(&config.doors[i]) == Want::Locked).collect();
            for claim in &held {
                desired.claims.remove(claim);
            }
            let mut doors = Vec::new();
            let mut kept = Vec::new();
            for i in was_locked {
                let door = &config.doors[i];
                if !held.iter().any(|c| c.action.covers(door)) {
                    continue;
                }
                if desired.want(door) == Want::Locked {
                    kept.push(i);
                } else {
                    desired.releasing.insert(door.name.clone());
                    doors.push(i);
                }
            }
            Decision::Release { doors, kept }
        }
    }
}

/// Why an action that does not lock leaves the doors alone.
fn never_locks(action: &str) -> Decision {
    let why = match action {
        "evacuate" => "evacuate: doors are never locked for an evacuation, people must get out",
        "shelter" => "shelter: people stay where they are for a hazard; doors stay as they are",
        "hold" => "hold: rooms are held by their occupants; doors stay as they are",
        _ => "this action does not lock doors",
    };
    Decision::NotApplicable(why.to_string())
}

/// What reading a door's lock output says, against what the plugin wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorState {
    /// The output reads locked.
    Locked,
    /// The output reads unlocked.
    Unlocked,
    /// Not read yet, or the device has not told it.
    Unknown,
    /// It cannot be read, or does not read back what was written; the text says why.
    Fault(String),
}

impl DoorState {
    /// The state an output value means for `door`.
    pub fn from_output(door: &Door, value: bool) -> DoorState {
        if value == door.locked_when { DoorState::Locked } else { DoorState::Unlocked }
    }

    /// The state a read means for `door`: a value, not told yet, or a failure.
    pub fn from_read(door: &Door, read: Result<Option<bool>, String>) -> DoorState {
        match read {
            Ok(Some(value)) => DoorState::from_output(door, value),
            Ok(None) => DoorState::Unknown,
            Err(why) => DoorState::Fault(why),
        }
    }

    /// Its name in the status document.
    pub fn name(&self) -> &'static str {
        match self {
            DoorState::Locked => "locked",
            DoorState::Unlocked => "unlocked",
            DoorState::Unknown => "unknown",
            DoorState::Fault(_) => "fault",
        }
    }
}

/// The output value that puts `door` in the wanted state (`None`: leave it).
pub fn output_for(door: &Door, want: Want) -> Option<bool> {
    match want {
        Want::Locked => Some(door.locked_when),
        Want::Unlocked => Some(!door.locked_when),
        Want::Nothing => None,
    }
}

/// Whether a door in `state` needs a write to be what the plugin wants.
pub fn needs_write(state: &DoorState, want: Want) -> bool {
    !matches!(
        (want, state),
        (Want::Nothing, _) | (Want::Locked, DoorState::Locked) | (Want::Unlocked, DoorState::Unlocked)
    )
}

/// Classifies a write followed by a read-back: confirmed only when the
/// device reads back the wanted state (`Ok(None)`: it has not told).
/// `output` names the output ("coil 3").
pub fn confirm(door: &Door, want_locked: bool, output: &str, readback: Result<Option<bool>, String>) -> DoorState {
    match readback {
        Err(e) => DoorState::Fault(e),
        Ok(None) => DoorState::Fault(format!("{output} was not reported back after the write")),
        Ok(Some(value)) => {
            let state = DoorState::from_output(door, value);
            if (state == DoorState::Locked) == want_locked {
                state
            } else {
                DoorState::Fault(format!("{output} reads {} after write", state.name()))
            }
        }
    }
}

/// Whether controller `controller` should show a lockdown on its
/// indicators: some door on it is held locked.
pub fn shows_locked(config: &Config, desired: &Desired, controller: usize) -> bool {
    config.doors_of(controller).any(|(_, door)| desired.want(door) == Want::Locked)
}

/// The answer to a lock or release, from each target door's state after it:
/// `Ok(words)` when every door confirmed, `Err(reason)` otherwise.
pub fn answer(
    config: &Config,
    locking: bool,
    outcomes: &[(usize, DoorState)],
    kept: &[usize],
) -> Result<String, String> {
    let (verb, wanted) = if locking { ("locked", DoorState::Locked) } else { ("released", DoorState::Unlocked) };
    let good: Vec<usize> = outcomes.iter().filter(|(_, s)| *s == wanted).map(|(i, _)| *i).collect();
    let total = outcomes.len();
    let kept_note = if kept.is_empty() {
        String::new()
    } else {
        format!("; {} still held locked by another incident ({})", count(kept.len(), "door"), names(config, kept))
    };
    let bad: Vec<String> = outcomes
        .iter()
        .filter(|(_, s)| *s != wanted)
        .map(|(i, s)| {
            let why = match s {
                DoorState::Fault(why) => why.clone(),
                other => format!("reads {}", other.name()),
            };
            format!("door '{}' did not confirm: {why}", config.doors[*i].name)
        })
        .collect();
    if bad.is_empty() {
        Ok(format!("{verb} {}/{} doors: {}{kept_note}", good.len(), total, names(config, &good)))
    } else {
        Err(format!("{}; {}/{} {verb}{kept_note}", bad.join("; "), good.len(), total))
    }
}

fn names(config: &Config, doors: &[usize]) -> String {
    doors.iter().map(|&i| config.doors[i].name.as_str()).collect::<Vec<_>>().join(", ")
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(drill_locks: bool) -> Config {
        Config::parse(&format!(
            r#"{{"controllers": [{{"name": "main", "address": "h:502"}}],
                "doors": [
                    {{"name": "front", "exterior": true, "coil": 0, "locked_when": true}},
                    {{"name": "gym-east", "exterior": true, "coil": 3, "locked_when": false}},
                    {{"name": "office", "coil": 5, "locked_when": true}}
                ],
                "drill_locks": {drill_locks}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn secure_locks_exterior_doors_and_lockdown_all() {
        let c = config(false);
        let mut d = Desired::default();
        assert_eq!(decide(&c, &mut d, 1, false, Directive::Lock(Locking::Secure)), Decision::Lock(vec![0, 1]));
        assert_eq!(d.want(&c.doors[0]), Want::Locked);
        assert_eq!(d.want(&c.doors[2]), Want::Nothing);
        assert_eq!(decide(&c, &mut d, 1, false, Directive::Lock(Locking::Lockdown)), Decision::Lock(vec![0, 1, 2]));
        assert_eq!(d.want(&c.doors[2]), Want::Locked);
    }

    #[test]
    fn evacuate_shelter_and_hold_never_lock() {
        let c = config(true);
        for action in ["evacuate", "shelter", "hold"] {
            let mut d = Desired::default();
            let decision = decide(&c, &mut d, 1, false, Directive::Other(action));
            assert!(matches!(&decision, Decision::NotApplicable(why) if why.starts_with(action)), "{decision:?}");
            assert_eq!(d, Desired::default());
        }
    }

    #[test]
    fn drills_touch_nothing_unless_configured() {
        let c = config(false);
        let mut d = Desired::default();
        let decision = decide(&c, &mut d, 4, true, Directive::Lock(Locking::Lockdown));
        assert_eq!(
            decision,
            Decision::Say("drill: 3 doors would lock (front, gym-east, office); drill_locks is off".into())
        );
        assert_eq!(d, Desired::default());
        assert_eq!(
            decide(&c, &mut d, 4, true, Directive::AllClear),
            Decision::Say("drill: no doors were locked, none to release".into())
        );
        let c = config(true);
        assert_eq!(decide(&c, &mut d, 4, true, Directive::Lock(Locking::Secure)), Decision::Lock(vec![0, 1]));
    }

    #[test]
    fn all_clear_releases_only_what_no_other_incident_holds() {
        let c = config(false);
        let mut d = Desired::default();
        decide(&c, &mut d, 1, false, Directive::Lock(Locking::Lockdown));
        decide(&c, &mut d, 2, false, Directive::Lock(Locking::Secure));
        assert_eq!(
            decide(&c, &mut d, 1, false, Directive::AllClear),
            Decision::Release { doors: vec![2], kept: vec![0, 1] }
        );
        assert_eq!(d.want(&c.doors[2]), Want::Unlocked);
        assert_eq!(d.want(&c.doors[0]), Want::Locked);
        assert_eq!(
            decide(&c, &mut d, 2, false, Directive::AllClear),
            Decision::Release { doors: vec![0, 1], kept: vec![] }
        );
        d.released(&c.doors[2]);
        assert_eq!(d.want(&c.doors[2]), Want::Nothing);
        assert!(matches!(decide(&c, &mut d, 2, false, Directive::AllClear), Decision::Say(_)));
    }

    #[test]
    fn revert_undoes_only_the_dismissed_action() {
        let c = config(false);
        let mut d = Desired::default();
        decide(&c, &mut d, 1, false, Directive::Lock(Locking::Secure));
        decide(&c, &mut d, 1, false, Directive::Lock(Locking::Lockdown));
        assert_eq!(
            decide(&c, &mut d, 1, false, Directive::Revert(Locking::Lockdown)),
            Decision::Release { doors: vec![2], kept: vec![0, 1] }
        );
        assert_eq!(
            decide(&c, &mut d, 1, false, Directive::Revert(Locking::Secure)),
            Decision::Release { doors: vec![0, 1], kept: vec![] }
        );
        assert!(matches!(decide(&c, &mut d, 1, false, Directive::RevertOther("evacuate")), Decision::NotApplicable(_)));
    }

    #[test]
    fn locking_again_cancels_a_pending_release() {
        let c = config(false);
        let mut d = Desired::default();
        decide(&c, &mut d, 1, false, Directive::Lock(Locking::Secure));
        decide(&c, &mut d, 1, false, Directive::AllClear);
        assert!(d.releasing.contains("front"));
        decide(&c, &mut d, 2, false, Directive::Lock(Locking::Secure));
        assert!(d.releasing.is_empty());
    }

    #[test]
    fn only_a_read_back_confirms() {
        let c = config(false);
        let (front, gym) = (&c.doors[0], &c.doors[1]);
        assert_eq!(confirm(front, true, "coil 0", Ok(Some(true))), DoorState::Locked);
        assert_eq!(confirm(gym, true, "coil 3", Ok(Some(false))), DoorState::Locked, "gym-east locks de-energised");
        assert_eq!(
            confirm(gym, true, "coil 3", Ok(Some(true))),
            DoorState::Fault("coil 3 reads unlocked after write".into())
        );
        assert_eq!(
            confirm(front, false, "coil 0", Ok(Some(true))),
            DoorState::Fault("coil 0 reads locked after write".into())
        );
        assert_eq!(
            confirm(front, true, "output 0", Ok(None)),
            DoorState::Fault("output 0 was not reported back after the write".into()),
            "a device that has not told is not locked"
        );
        assert_eq!(confirm(front, true, "coil 0", Err("offline".into())), DoorState::Fault("offline".into()));
        assert_eq!(output_for(gym, Want::Locked), Some(false));
        assert_eq!(output_for(gym, Want::Unlocked), Some(true));
        assert_eq!(output_for(gym, Want::Nothing), None);
    }

    #[test]
    fn writes_are_needed_only_when_the_state_differs() {
        assert!(!needs_write(&DoorState::Locked, Want::Locked));
        assert!(needs_write(&DoorState::Unlocked, Want::Locked));
        assert!(needs_write(&DoorState::Unknown, Want::Unlocked));
        assert!(needs_write(&DoorState::Fault("x".into()), Want::Locked));
        assert!(!needs_write(&DoorState::Fault("x".into()), Want::Nothing));
    }

    #[test]
    fn answers_name_the_doors_and_the_count() {
        let c = config(false);
        assert_eq!(
            answer(&c, true, &[(0, DoorState::Locked), (1, DoorState::Locked)], &[]),
            Ok("locked 2/2 doors: front, gym-east".into())
        );
        assert_eq!(
            answer(
                &c,
                true,
                &[(0, DoorState::Locked), (1, DoorState::Fault("coil 3 reads unlocked after write".into()))],
                &[]
            ),
            Err("door 'gym-east' did not confirm: coil 3 reads unlocked after write; 1/2 locked".into())
        );
        assert_eq!(
            answer(&c, false, &[(2, DoorState::Unlocked)], &[0, 1]),
            Ok("released 1/1 doors: office; 2 doors still held locked by another incident (front, gym-east)".into())
        );
    }

    #[test]
    fn desired_state_survives_a_json_round_trip() {
        let c = config(false);
        let mut d = Desired::default();
        decide(&c, &mut d, 7, false, Directive::Lock(Locking::Lockdown));
        decide(&c, &mut d, 8, false, Directive::Lock(Locking::Secure));
        decide(&c, &mut d, 7, false, Directive::AllClear);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Desired>(&json).unwrap(), d);
    }
}
