//! The inventory as a plain state machine: each read of a cabinet's inputs
//! (or a failed read) goes in with the wall-clock time, changes come out
//! (shields taken and returned, the door opened and closed, the tamper switch,
//! the controller lost and found). No I/O, no SDK.
//!
//! Rules kept here:
//! - A cabinet is **offline** when its last read failed (the reason is kept);
//!   its last known contents stay visible but are not trusted.
//! - A cabinet is **tampered** while its tamper switch reads active. Nothing
//!   else counts as tampering: an open door is reported as open, not tampered.
//! - A change is stamped with the time the plugin saw it. A shield taken while
//!   the controller was offline or vigild was down carries the time of the
//!   first read after.

use serde::{Deserialize, Serialize};

use crate::config::Cabinet;

/// One read of a cabinet's inputs, with the configured polarities applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether each slot holds a shield, slot 1 first.
    pub present: Vec<bool>,
    /// Whether the door reads closed.
    pub closed: bool,
    /// Whether the tamper switch reads active (`false` when none is wired).
    pub tampered: bool,
}

impl Snapshot {
    /// Interprets `bits`, the discrete inputs read from `first` on, for `cabinet`.
    pub fn from_inputs(cabinet: &Cabinet, first: u16, bits: &[bool]) -> Result<Snapshot, String> {
        let bit = |n: u16| {
            n.checked_sub(first)
                .and_then(|i| bits.get(usize::from(i)).copied())
                .ok_or_else(|| format!("the read from input {first} returned {} bits, not input {n}", bits.len()))
        };
        let present =
            cabinet.slots.iter().map(|&n| bit(n).map(|v| v == cabinet.present_when)).collect::<Result<_, _>>()?;
        let closed = bit(cabinet.door)? == cabinet.closed_when;
        let tampered = match cabinet.tamper {
            Some(n) => bit(n)? == cabinet.tampered_when,
            None => false,
        };
        Ok(Snapshot { present, closed, tampered })
    }
}

/// What the plugin remembers of a cabinet across restarts (the key-value store's
/// `inventory`): its last known contents and when things last happened.
/// Times are wall-clock milliseconds since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Each slot's shield, as last read; `None` before the first read.
    pub present: Option<Vec<bool>>,
    /// The door, as last read.
    pub closed: Option<bool>,
    /// The tamper switch, as last read.
    #[serde(default)]
    pub tampered: bool,
    /// When a shield was last seen taken.
    pub taken_at: Option<u64>,
    /// When a shield was last seen returned.
    pub returned_at: Option<u64>,
    /// When the door was last seen opening.
    pub opened_at: Option<u64>,
    /// When the door was last seen closing.
    pub closed_at: Option<u64>,
    /// When the tamper switch last went active.
    pub tampered_at: Option<u64>,
}

/// Whether the cabinet's controller answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Not read since the plugin started.
    NotRead,
    /// The last read succeeded.
    Online,
    /// The last read failed.
    Offline {
        /// Why, naming the controller.
        reason: String,
        /// When it was first seen failing (wall clock, ms).
        since_ms: u64,
    },
}

/// A change the plugin saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The shield in this slot (0-based) is gone.
    Taken(usize),
    /// A shield is back in this slot (0-based).
    Returned(usize),
    /// The door opened.
    Opened,
    /// The door closed.
    Closed,
    /// The tamper switch went active.
    Tampered,
    /// The tamper switch is back to normal.
    TamperCleared,
    /// The cabinet cannot be read; the text says why.
    Offline(String),
    /// The cabinet is read again after being offline.
    Online,
}

impl Change {
    /// Its name in the status document's events.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Taken(_) => "taken",
            Change::Returned(_) => "returned",
            Change::Opened => "opened",
            Change::Closed => "closed",
            Change::Tampered => "tampered",
            Change::TamperCleared => "tamper-cleared",
            Change::Offline(_) => "offline",
            Change::Online => "online",
        }
    }

    /// The slot it concerns, 1-based as people count them.
    pub fn slot(&self) -> Option<usize> {
        match self {
            Change::Taken(i) | Change::Returned(i) => Some(i + 1),
            _ => None,
        }
    }

    /// Its detail (an offline reason).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Change::Offline(why) => Some(why),
            _ => None,
        }
    }
}

/// Why a cabinet cannot be offered as a source of shields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Its controller does not answer; the text says why.
    Offline(String),
    /// Not read yet since the plugin started.
    NotRead,
    /// Its tamper switch is active.
    Tampered,
    /// No shield in place.
    Empty,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Offline(why) => write!(f, "offline ({why})"),
            Skip::NotRead => f.write_str("not read yet"),
            Skip::Tampered => f.write_str("tampered"),
            Skip::Empty => f.write_str("empty"),
        }
    }
}

/// Whether a cabinet can be offered, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// It holds shields and can be trusted.
    Stocked {
        /// Shields in place.
        in_place: usize,
        /// Its slots.
        slots: usize,
        /// Its door reads open.
        door_open: bool,
    },
    /// It cannot be offered.
    Skipped(Skip),
}

/// One cabinet's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CabinetState {
    /// What survives a restart.
    pub memory: Memory,
    /// Whether its controller answers.
    pub reach: Reach,
    /// When it was last read (wall clock, ms); not kept across restarts.
    pub read_at: Option<u64>,
}

impl CabinetState {
    /// The state after a restart: the remembered contents, not read yet. A
    /// memory of a different number of slots (the config changed) is dropped.
    pub fn restore(mut memory: Memory, slots: usize) -> CabinetState {
        if memory.present.as_ref().is_some_and(|p| p.len() != slots) {
            memory.present = None;
        }
        CabinetState { memory, reach: Reach::NotRead, read_at: None }
    }

    /// Takes in one read (or its failure) at `now_ms` (wall clock) and returns what changed.
    pub fn observe(&mut self, reading: Result<Snapshot, String>, now_ms: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        let snapshot = match reading {
            Ok(snapshot) => snapshot,
            Err(reason) => {
                if !matches!(self.reach, Reach::Offline { .. }) {
                    changes.push(Change::Offline(reason.clone()));
                    self.reach = Reach::Offline { reason, since_ms: now_ms };
                } else if let Reach::Offline { reason: kept, .. } = &mut self.reach {
                    *kept = reason;
                }
                return changes;
            }
        };
        if matches!(self.reach, Reach::Offline { .. }) {
            changes.push(Change::Online);
        }
        self.reach = Reach::Online;
        self.read_at = Some(now_ms);
        let m = &mut self.memory;
        if let Some(before) = &m.present {
            for (slot, (&was, &is)) in before.iter().zip(&snapshot.present).enumerate() {
                match (was, is) {
                    (true, false) => {
                        changes.push(Change::Taken(slot));
                        m.taken_at = Some(now_ms);
                    }
                    (false, true) => {
                        changes.push(Change::Returned(slot));
                        m.returned_at = Some(now_ms);
                    }
                    _ => {}
                }
            }
        }
        match (m.closed, snapshot.closed) {
            (Some(true), false) => {
                changes.push(Change::Opened);
                m.opened_at = Some(now_ms);
            }
            (Some(false), true) => {
                changes.push(Change::Closed);
                m.closed_at = Some(now_ms);
            }
            _ => {}
        }
        if snapshot.tampered != m.tampered {
            changes.push(if snapshot.tampered { Change::Tampered } else { Change::TamperCleared });
            if snapshot.tampered {
                m.tampered_at = Some(now_ms);
            }
        }
        m.present = Some(snapshot.present);
        m.closed = Some(snapshot.closed);
        m.tampered = snapshot.tampered;
        changes
    }

    /// Shields in place as last known (possibly before a restart or an outage).
    pub fn in_place(&self) -> Option<usize> {
        self.memory.present.as_ref().map(|p| p.iter().filter(|&&s| s).count())
    }

    /// Whether the cabinet can be offered now. Offline comes first (nothing
    /// read can be trusted), then not read, then tampered, then empty.
    pub fn availability(&self) -> Availability {
        let skip = match (&self.reach, self.in_place()) {
            (Reach::Offline { reason, .. }, _) => Skip::Offline(reason.clone()),
            (Reach::NotRead, _) | (Reach::Online, None) => Skip::NotRead,
            _ if self.memory.tampered => Skip::Tampered,
            (Reach::Online, Some(0)) => Skip::Empty,
            (Reach::Online, Some(in_place)) => {
                let slots = self.memory.present.as_ref().map_or(0, Vec::len);
                return Availability::Stocked { in_place, slots, door_open: self.memory.closed == Some(false) };
            }
        };
        Availability::Skipped(skip)
    }

    /// The state's name in the status document.
    pub fn state_name(&self) -> &'static str {
        match self.availability() {
            Availability::Stocked { .. } => "stocked",
            Availability::Skipped(Skip::Offline(_)) => "offline",
            Availability::Skipped(Skip::NotRead) => "unknown",
            Availability::Skipped(Skip::Tampered) => "tampered",
            Availability::Skipped(Skip::Empty) => "empty",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Place;

    fn cabinet(tamper: Option<u16>, present_when: bool, closed_when: bool) -> Cabinet {
        Cabinet {
            name: "gym".into(),
            location: Place::new("m", "1", "gym"),
            link: 0,
            slots: vec![4, 5, 6],
            door: 7,
            tamper,
            present_when,
            closed_when,
            tampered_when: true,
        }
    }

    fn snap(present: [bool; 3], closed: bool, tampered: bool) -> Result<Snapshot, String> {
        Ok(Snapshot { present: present.to_vec(), closed, tampered })
    }

    #[test]
    fn inputs_are_read_with_their_polarity() {
        let c = cabinet(Some(9), true, true);
        let bits = [true, false, true, true, false, false]; // inputs 4..=9
        assert_eq!(Snapshot::from_inputs(&c, 4, &bits), snap([true, false, true], true, false));
        let inverted = cabinet(None, false, false);
        assert_eq!(Snapshot::from_inputs(&inverted, 4, &bits[..4]), snap([false, true, false], false, false));
        assert!(Snapshot::from_inputs(&c, 4, &bits[..3]).unwrap_err().contains("not input 7"));
        assert!(Snapshot::from_inputs(&c, 5, &bits).unwrap_err().contains("not input 4"));
        // The span the config computes covers every input.
        let (first, count) = c.span();
        assert_eq!((first, count), (4, 6));
    }

    #[test]
    fn the_first_read_sets_the_baseline_without_events() {
        let mut s = CabinetState::restore(Memory::default(), 3);
        assert_eq!(s.availability(), Availability::Skipped(Skip::NotRead));
        assert_eq!(s.state_name(), "unknown");
        assert_eq!(s.observe(snap([true, true, false], true, false), 1000), []);
        assert_eq!(s.in_place(), Some(2));
        assert_eq!(s.read_at, Some(1000));
        assert_eq!(s.availability(), Availability::Stocked { in_place: 2, slots: 3, door_open: false });
        assert_eq!(s.memory.taken_at, None);
    }

    #[test]
    fn shields_taken_and_returned_with_the_door_are_stamped() {
        let mut s = CabinetState::restore(Memory::default(), 3);
        s.observe(snap([true, true, true], true, false), 0);
        assert_eq!(s.observe(snap([true, true, true], false, false), 1000), [Change::Opened]);
        assert_eq!(s.availability(), Availability::Stocked { in_place: 3, slots: 3, door_open: true });
        assert_eq!(s.observe(snap([true, false, false], false, false), 2000), [Change::Taken(1), Change::Taken(2)]);
        assert_eq!(s.observe(snap([true, false, true], true, false), 3000), [Change::Returned(2), Change::Closed]);
        assert_eq!(s.observe(snap([true, false, true], true, false), 4000), []);
        let m = &s.memory;
        assert_eq!(
            (m.opened_at, m.taken_at, m.returned_at, m.closed_at),
            (Some(1000), Some(2000), Some(3000), Some(3000))
        );
        assert_eq!(Change::Taken(1).slot(), Some(2), "slots are counted from 1 for people");
    }

    #[test]
    fn an_emptied_cabinet_is_skipped_as_empty() {
        let mut s = CabinetState::restore(Memory::default(), 3);
        s.observe(snap([false, false, true], true, false), 0);
        s.observe(snap([false, false, false], true, false), 1);
        assert_eq!(s.availability(), Availability::Skipped(Skip::Empty));
        assert_eq!(s.state_name(), "empty");
    }

    #[test]
    fn a_silent_controller_goes_offline_once_and_back_online() {
        let mut s = CabinetState::restore(Memory::default(), 3);
        s.observe(snap([true, true, true], true, false), 0);
        assert_eq!(s.observe(Err("no answer".into()), 1000), [Change::Offline("no answer".into())]);
        assert_eq!(s.observe(Err("refused".into()), 2000), [], "one event per outage");
        assert_eq!(s.reach, Reach::Offline { reason: "refused".into(), since_ms: 1000 }, "the latest reason");
        assert_eq!(s.availability(), Availability::Skipped(Skip::Offline("refused".into())));
        assert_eq!(s.in_place(), Some(3), "the last known count stays visible");
        assert_eq!(s.state_name(), "offline");
        // A shield was taken during the outage: stamped when seen.
        assert_eq!(s.observe(snap([true, true, false], true, false), 5000), [Change::Online, Change::Taken(2)]);
        assert_eq!(s.memory.taken_at, Some(5000));
    }

    #[test]
    fn a_controller_offline_from_the_start_is_reported() {
        let mut s = CabinetState::restore(Memory::default(), 3);
        assert_eq!(s.observe(Err("refused".into()), 7), [Change::Offline("refused".into())]);
        assert_eq!(s.in_place(), None);
    }

    #[test]
    fn the_tamper_switch_marks_a_stocked_cabinet_tampered_while_active() {
        let mut s = CabinetState::restore(Memory::default(), 3);
        s.observe(snap([true, true, true], true, false), 0);
        assert_eq!(s.observe(snap([true, true, true], true, true), 10), [Change::Tampered]);
        assert_eq!(s.availability(), Availability::Skipped(Skip::Tampered));
        assert_eq!(s.state_name(), "tampered");
        assert_eq!(s.memory.tampered_at, Some(10));
        assert_eq!(s.observe(snap([true, true, true], true, false), 20), [Change::TamperCleared]);
        assert_eq!(s.state_name(), "stocked");
    }

    #[test]
    fn a_restart_compares_the_first_read_with_the_remembered_contents() {
        let mut before = CabinetState::restore(Memory::default(), 3);
        before.observe(snap([true, true, true], true, false), 0);
        before.observe(snap([true, true, true], false, false), 100);
        let saved = serde_json::to_string(&before.memory).unwrap();
        let mut after = CabinetState::restore(serde_json::from_str(&saved).unwrap(), 3);
        assert_eq!(after.in_place(), Some(3), "the last known count is shown");
        assert_eq!(after.availability(), Availability::Skipped(Skip::NotRead), "but not trusted before a read");
        assert_eq!(after.memory.opened_at, Some(100));
        assert_eq!(after.observe(snap([false, true, true], true, false), 9000), [Change::Taken(0), Change::Closed]);
        // A config with another number of slots forgets the contents, not the times.
        let resized = CabinetState::restore(before.memory.clone(), 2);
        assert_eq!((resized.in_place(), resized.memory.opened_at), (None, Some(100)));
    }

    #[test]
    fn change_names_and_skip_words() {
        assert_eq!(Change::TamperCleared.name(), "tamper-cleared");
        assert_eq!(Change::Offline("x".into()).detail(), Some("x"));
        assert_eq!(Skip::Offline("no answer".into()).to_string(), "offline (no answer)");
        assert_eq!(Skip::NotRead.to_string(), "not read yet");
    }
}
