//! The cabinets as the plugin knows them: polls each controller that is due
//! (one read per cabinet, a controller that does not answer retried with
//! backoff), feeds the reads to the [`inventory`](crate::inventory) state
//! machine, keeps a short log of what changed, and builds the status document.
//! It reads controllers only through [`Inputs`] and talks to the host not at
//! all (time comes in as [`Now`]), so it runs natively in tests with a fake
//! controller.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use vigil_plugin_sdk::backoff::Backoff;

use crate::backend::{Inputs, LinkError};
use crate::config::{Config, Place};
use crate::inventory::{Availability, CabinetState, Change, Memory, Reach, Snapshot};
use crate::nearest::{self, Search};
use crate::time::rfc3339;

/// How many recent changes the status and the key-value store keep.
pub const EVENTS_KEPT: usize = 20;

/// The time of a call, on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds, for backoff.
    pub mono_ms: u64,
    /// Wall-clock milliseconds since the Unix epoch, for the times people read.
    pub wall_ms: u64,
}

/// What survives a restart (the key-value store's `inventory`): each cabinet's
/// memory by name, and the recent changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Each cabinet's memory, by name (a cabinet renamed or removed is forgotten).
    pub cabinets: BTreeMap<String, Memory>,
    /// The recent changes, oldest first.
    pub events: Vec<Record>,
}

/// One change, as logged and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When it was seen (wall clock, ms).
    pub at_ms: u64,
    /// The cabinet's name.
    pub cabinet: String,
    /// The change's name (`taken`, `returned`, `opened`, ...).
    pub event: String,
    /// The slot, counted from 1, for `taken` and `returned`.
    pub slot: Option<usize>,
    /// More words (an offline reason).
    pub detail: Option<String>,
}

/// What a poll found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Changes, in words, for the log.
    pub changes: Vec<String>,
    /// Whether what must survive a restart changed (save [`Cabinets::saved`]).
    pub remember: bool,
}

/// Every cabinet's state and every controller's link.
pub struct Cabinets {
    config: Config,
    links: Vec<LinkState>,
    states: Vec<CabinetState>,
    events: VecDeque<Record>,
}

struct LinkState {
    inputs: Box<dyn Inputs>,
    backoff: Backoff,
}

/// The status document the district sees in telemetry.
#[derive(Debug, Serialize, PartialEq)]
pub struct Status {
    /// Shields the search may offer now: in cabinets read now, neither tampered nor offline.
    pub available: usize,
    /// Shields in place as last known in every cabinet, offline ones included.
    pub in_place: usize,
    /// Slots in every cabinet.
    pub slots: usize,
    /// Every cabinet, in config order.
    pub cabinets: Vec<CabinetStatus>,
    /// The recent changes, oldest first.
    pub events: Vec<EventStatus>,
}

/// One cabinet in the status.
#[derive(Debug, Serialize, PartialEq)]
pub struct CabinetStatus {
    /// Its name.
    pub name: String,
    /// `building/floor/zone`.
    pub location: String,
    /// Its controller, `modbus://host:port/unit`.
    pub controller: String,
    /// `stocked`, `empty`, `tampered`, `offline` or `unknown` (not read since start).
    pub state: &'static str,
    /// Shields in place as last known (`null`: never read).
    pub in_place: Option<usize>,
    /// Its slots.
    pub slots: usize,
    /// Each slot, slot 1 first, as last known.
    pub present: Option<Vec<bool>>,
    /// `closed`, `open`, or `null` (never read).
    pub door: Option<&'static str>,
    /// The tamper switch reads active.
    pub tampered: bool,
    /// Why it is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
    /// Since when it is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<String>,
    /// When it was last read since the plugin started.
    pub read_at: Option<String>,
    /// When a shield was last seen taken.
    pub taken_at: Option<String>,
    /// When a shield was last seen returned.
    pub returned_at: Option<String>,
    /// When the door was last seen opening.
    pub opened_at: Option<String>,
    /// When the door was last seen closing.
    pub closed_at: Option<String>,
    /// When the tamper switch last went active.
    pub tampered_at: Option<String>,
}

/// One change in the status.
#[derive(Debug, Serialize, PartialEq)]
pub struct EventStatus {
    /// When it was seen.
    pub at: String,
    /// The cabinet.
    pub cabinet: String,
    /// `taken`, `returned`, `opened`, `closed`, `tampered`, `tamper-cleared`, `offline` or `online`.
    pub event: String,
    /// The slot, counted from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<usize>,
    /// More words (an offline reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Cabinets {
    /// The cabinets of `config`, read through `links` (one per configured link,
    /// same order), starting from what was `saved` before a restart.
    pub fn new(config: Config, links: Vec<Box<dyn Inputs>>, saved: Saved) -> Cabinets {
        assert_eq!(config.links.len(), links.len(), "one backend per configured controller");
        let links = links.into_iter().map(|inputs| LinkState { inputs, backoff: Backoff::default() }).collect();
        let mut remembered = saved.cabinets;
        let states = config
            .cabinets
            .iter()
            .map(|c| CabinetState::restore(remembered.remove(&c.name).unwrap_or_default(), c.slots.len()))
            .collect();
        let skip = saved.events.len().saturating_sub(EVENTS_KEPT);
        Cabinets { config, links, states, events: saved.events.into_iter().skip(skip).collect() }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads every cabinet whose controller is due at `now`.
    pub fn poll(&mut self, now: Now) -> PollReport {
        let mut report = PollReport::default();
        for l in 0..self.links.len() {
            if !self.links[l].backoff.due(now.mono_ms) {
                continue;
            }
            let mut silent: Option<String> = None;
            let on_link: Vec<usize> =
                (0..self.config.cabinets.len()).filter(|&c| self.config.cabinets[c].link == l).collect();
            for c in on_link {
                let reading = match &silent {
                    // One silent controller costs one timeout per poll, not one per cabinet.
                    Some(why) => Err(why.clone()),
                    None => self.read(c, now).map_err(|e| {
                        if e.offline {
                            silent = Some(e.message.clone());
                        }
                        e.message
                    }),
                };
                let before = self.states[c].memory.clone();
                let changes = self.states[c].observe(reading, now.wall_ms);
                report.remember |= self.states[c].memory != before || !changes.is_empty();
                for change in changes {
                    report.changes.push(self.words(c, &change));
                    self.record(c, &change, now.wall_ms);
                }
            }
        }
        report
    }

    /// Reads cabinet `c`; a controller that does not answer starts its backoff.
    fn read(&mut self, c: usize, now: Now) -> Result<Snapshot, LinkError> {
        let cabinet = &self.config.cabinets[c];
        let (first, count) = cabinet.span();
        let link = &mut self.links[cabinet.link];
        match link.inputs.read(first, count) {
            Ok(bits) => {
                link.backoff.succeeded();
                Snapshot::from_inputs(cabinet, first, &bits).map_err(|message| LinkError { message, offline: false })
            }
            Err(e) => {
                if e.offline {
                    link.backoff.failed(now.mono_ms, self.config.retry);
                }
                Err(e)
            }
        }
    }

    fn words(&self, c: usize, change: &Change) -> String {
        let name = &self.config.cabinets[c].name;
        match change {
            Change::Taken(slot) => format!("cabinet '{name}': shield taken from slot {}", slot + 1),
            Change::Returned(slot) => format!("cabinet '{name}': shield returned to slot {}", slot + 1),
            Change::Opened => format!("cabinet '{name}': door opened"),
            Change::Closed => format!("cabinet '{name}': door closed"),
            Change::Tampered => format!("cabinet '{name}': tamper switch active"),
            Change::TamperCleared => format!("cabinet '{name}': tamper switch cleared"),
            Change::Offline(why) => format!("cabinet '{name}' offline: {why}"),
            Change::Online => format!("cabinet '{name}' online again"),
        }
    }

    fn record(&mut self, c: usize, change: &Change, at_ms: u64) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(Record {
            at_ms,
            cabinet: self.config.cabinets[c].name.clone(),
            event: change.name().to_string(),
            slot: change.slot(),
            detail: change.detail().map(str::to_string),
        });
    }

    /// What must survive a restart.
    pub fn saved(&self) -> Saved {
        Saved {
            cabinets: self
                .config
                .cabinets
                .iter()
                .zip(&self.states)
                .map(|(c, s)| (c.name.clone(), s.memory.clone()))
                .collect(),
            events: self.events.iter().cloned().collect(),
        }
    }

    /// Each cabinet's availability, in config order.
    pub fn availability(&self) -> Vec<Availability> {
        self.states.iter().map(CabinetState::availability).collect()
    }

    /// Ranks the cabinets from `from`.
    pub fn search(&self, from: &Place) -> Search {
        nearest::search(&self.config, from, &self.availability())
    }

    /// The status document.
    pub fn status(&self) -> Status {
        let time = |ms: Option<u64>| ms.map(rfc3339);
        let cabinets: Vec<CabinetStatus> = self
            .config
            .cabinets
            .iter()
            .zip(&self.states)
            .map(|(c, s)| {
                let m = &s.memory;
                let (offline, offline_since) = match &s.reach {
                    Reach::Offline { reason, since_ms } => (Some(reason.clone()), Some(rfc3339(*since_ms))),
                    _ => (None, None),
                };
                CabinetStatus {
                    name: c.name.clone(),
                    location: c.location.to_string(),
                    controller: self.config.links[c.link].to_string(),
                    state: s.state_name(),
                    in_place: s.in_place(),
                    slots: c.slots.len(),
                    present: m.present.clone(),
                    door: m.closed.map(|closed| if closed { "closed" } else { "open" }),
                    tampered: m.tampered,
                    offline,
                    offline_since,
                    read_at: time(s.read_at),
                    taken_at: time(m.taken_at),
                    returned_at: time(m.returned_at),
                    opened_at: time(m.opened_at),
                    closed_at: time(m.closed_at),
                    tampered_at: time(m.tampered_at),
                }
            })
            .collect();
        let available = self
            .availability()
            .iter()
            .map(|a| match a {
                Availability::Stocked { in_place, .. } => *in_place,
                Availability::Skipped(_) => 0,
            })
            .sum();
        Status {
            available,
            in_place: cabinets.iter().filter_map(|c| c.in_place).sum(),
            slots: cabinets.iter().map(|c| c.slots).sum(),
            cabinets,
            events: self
                .events
                .iter()
                .map(|r| EventStatus {
                    at: rfc3339(r.at_ms),
                    cabinet: r.cabinet.clone(),
                    event: r.event.clone(),
                    slot: r.slot,
                    detail: r.detail.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::backend::LinkError;
    use crate::nearest;

    /// A controller in memory (a fake: these tests are about the logic; the
    /// end-to-end test runs the real plugin against pymodbus).
    #[derive(Default)]
    struct Device {
        inputs: BTreeMap<u16, bool>,
        silent: bool,
        /// Inputs at or above this do not exist (an exception reply).
        size: Option<u16>,
        requests: usize,
    }

    struct Fake(Rc<RefCell<Device>>);

    impl Inputs for Fake {
        fn read(&mut self, first: u16, count: u16) -> Result<Vec<bool>, LinkError> {
            let mut d = self.0.borrow_mut();
            d.requests += 1;
            if d.silent {
                return Err(LinkError {
                    message: "the Modbus device at h:502 did not answer within 300 ms".into(),
                    offline: true,
                });
            }
            if d.size.is_some_and(|size| first + count > size) {
                return Err(LinkError { message: "refused with illegal data address".into(), offline: false });
            }
            Ok((first..first + count).map(|n| d.inputs.get(&n).copied().unwrap_or(false)).collect())
        }
    }

    /// Two controllers: `east` holds the gym (slots 0-2, door 3, tamper 4) and
    /// the office (slot 8, door 9); `west` the library (slots 0-1, door 2).
    fn setup(saved: Saved) -> (Cabinets, Rc<RefCell<Device>>, Rc<RefCell<Device>>) {
        let config = Config::parse(
            r#"{"retry": {"initial_ms": 1000, "max_ms": 4000},
                "graph": [
                    {"from": "A/1/main-hall", "to": "A/1/gym", "cost": 30},
                    {"from": "A/1/main-hall", "to": "A/1/stairs", "cost": 10},
                    {"from": "A/1/stairs", "to": "A/2/stairs", "cost": 15},
                    {"from": "A/2/stairs", "to": "A/2/library", "cost": 20},
                    {"from": "A/1/main-hall", "to": "A/1/office", "cost": 60}],
                "cabinets": [
                    {"name": "gym", "location": {"building": "A", "floor": "1", "zone": "gym"}, "address": "east:502", "slots": [0, 1, 2], "door": 3, "tamper": 4},
                    {"name": "library", "location": {"building": "A", "floor": "2", "zone": "library"}, "address": "west:502", "slots": [0, 1], "door": 2},
                    {"name": "office", "location": {"building": "A", "floor": "1", "zone": "office"}, "address": "east:502", "slots": [8], "door": 9}]}"#,
        )
        .unwrap();
        let (east, west) = (Rc::new(RefCell::new(Device::default())), Rc::new(RefCell::new(Device::default())));
        for (n, v) in [(3, true), (8, true), (9, true)] {
            east.borrow_mut().inputs.insert(n, v);
        }
        for (n, v) in [(0, true), (1, true), (2, true)] {
            west.borrow_mut().inputs.insert(n, v);
        }
        let cabinets = Cabinets::new(config, vec![Box::new(Fake(east.clone())), Box::new(Fake(west.clone()))], saved);
        (cabinets, east, west)
    }

    fn at(s: u64) -> Now {
        Now { mono_ms: s * 1000, wall_ms: 1_795_256_100_000 + s * 1000 }
    }

    fn hall() -> Place {
        Place::new("A", "1", "main-hall")
    }

    fn answer(cabinets: &Cabinets) -> Result<String, String> {
        nearest::answer(cabinets.config(), &cabinets.search(&hall()), false)
    }

    fn cabinet<'a>(status: &'a Status, name: &str) -> &'a CabinetStatus {
        status.cabinets.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn each_cabinet_is_read_in_one_request_and_the_answer_skips_the_empty_gym() {
        let (mut cabinets, east, west) = setup(Saved::default());
        assert!(answer(&cabinets).unwrap_err().contains("'gym' (A/1/gym, ~30 m): not read yet"));
        let report = cabinets.poll(at(0));
        assert!(report.remember && report.changes.is_empty(), "{report:?}");
        assert_eq!((east.borrow().requests, west.borrow().requests), (2, 1));
        assert_eq!(
            answer(&cabinets).unwrap(),
            "nearest shield: cabinet 'library' (A/2/library), 2 of 2 in place, ~45 m from A/1/main-hall; next: \
             cabinet 'office' (A/1/office), 1 of 1 in place, ~60 m; skipped nearer: 'gym' (A/1/gym, ~30 m): empty"
        );
        let status = cabinets.status();
        assert_eq!((status.available, status.in_place, status.slots), (3, 3, 6));
        let gym = cabinet(&status, "gym");
        assert_eq!((gym.state, gym.in_place, gym.door, gym.tampered), ("empty", Some(0), Some("closed"), false));
        assert_eq!(gym.controller, "modbus://east:502/1");
        assert_eq!(gym.read_at.as_deref(), Some("2026-11-21T10:15:00.000Z"));
    }

    #[test]
    fn a_shield_taken_shows_with_its_count_and_time() {
        let (mut cabinets, _east, west) = setup(Saved::default());
        cabinets.poll(at(0));
        west.borrow_mut().inputs.insert(2, false);
        assert_eq!(cabinets.poll(at(1)).changes, ["cabinet 'library': door opened"]);
        west.borrow_mut().inputs.insert(0, false);
        west.borrow_mut().inputs.insert(2, true);
        let report = cabinets.poll(at(2));
        assert_eq!(report.changes, ["cabinet 'library': shield taken from slot 1", "cabinet 'library': door closed"]);
        assert!(report.remember);
        assert!(!cabinets.poll(at(3)).remember, "nothing new to save");
        let status = cabinets.status();
        let library = cabinet(&status, "library");
        assert_eq!(
            (library.state, library.in_place, library.present.clone()),
            ("stocked", Some(1), Some(vec![false, true]))
        );
        assert_eq!(library.taken_at.as_deref(), Some("2026-11-21T10:15:02.000Z"));
        assert_eq!(library.opened_at.as_deref(), Some("2026-11-21T10:15:01.000Z"));
        let events: Vec<(&str, Option<usize>)> = status.events.iter().map(|e| (e.event.as_str(), e.slot)).collect();
        assert_eq!(events, [("opened", None), ("taken", Some(1)), ("closed", None)]);
        assert_eq!(status.available, 2);
    }

    #[test]
    fn a_silent_controller_costs_one_request_marks_its_cabinets_offline_and_backs_off() {
        let (mut cabinets, east, _west) = setup(Saved::default());
        cabinets.poll(at(0));
        east.borrow_mut().silent = true;
        let before = east.borrow().requests;
        let report = cabinets.poll(at(1));
        assert_eq!(east.borrow().requests - before, 1, "the office is not tried after the gym timed out");
        assert_eq!(report.changes.len(), 2);
        assert!(report.changes[1].starts_with("cabinet 'office' offline: the Modbus device at h:502 did not answer"));
        let status = cabinets.status();
        let office = cabinet(&status, "office");
        assert_eq!((office.state, office.in_place), ("offline", Some(1)), "the last count stays visible");
        assert_eq!(office.offline_since.as_deref(), Some("2026-11-21T10:15:01.000Z"));
        assert_eq!(status.available, 2);
        let words = answer(&cabinets).unwrap();
        assert!(words.starts_with("nearest shield: cabinet 'library'") && words.contains("next: none"), "{words}");
        // Within the backoff (1 s, then 2 s) the controller is left alone.
        cabinets.poll(at(1));
        assert_eq!(east.borrow().requests - before, 1);
        cabinets.poll(at(2));
        assert_eq!(east.borrow().requests - before, 2);
        cabinets.poll(at(3));
        assert_eq!(east.borrow().requests - before, 2);
        east.borrow_mut().silent = false;
        let report = cabinets.poll(at(4));
        assert_eq!(report.changes, ["cabinet 'gym' online again", "cabinet 'office' online again"]);
        assert_eq!(cabinet(&cabinets.status(), "office").state, "stocked");
    }

    #[test]
    fn a_refused_read_faults_only_its_cabinet() {
        let (mut cabinets, east, _west) = setup(Saved::default());
        east.borrow_mut().size = Some(8); // the office's inputs 8-9 do not exist
        cabinets.poll(at(0));
        let status = cabinets.status();
        assert_eq!(cabinet(&status, "gym").state, "empty");
        let office = cabinet(&status, "office");
        assert_eq!((office.state, office.offline.as_deref()), ("offline", Some("refused with illegal data address")));
        // An answering controller is not backed off: the next poll asks again.
        let before = east.borrow().requests;
        cabinets.poll(at(0));
        assert_eq!(east.borrow().requests - before, 2);
    }

    #[test]
    fn the_tamper_switch_takes_a_cabinet_out_of_the_answer() {
        let (mut cabinets, east, _west) = setup(Saved::default());
        for n in [0, 1, 2, 4] {
            east.borrow_mut().inputs.insert(n, true);
        }
        cabinets.poll(at(0));
        let status = cabinets.status();
        assert_eq!((cabinet(&status, "gym").state, cabinet(&status, "gym").tampered), ("tampered", true));
        assert!(answer(&cabinets).unwrap().contains("skipped nearer: 'gym' (A/1/gym, ~30 m): tampered"));
        east.borrow_mut().inputs.insert(4, false);
        assert_eq!(cabinets.poll(at(1)).changes, ["cabinet 'gym': tamper switch cleared"]);
        assert!(answer(&cabinets).unwrap().starts_with("nearest shield: cabinet 'gym' (A/1/gym), 3 of 3 in place"));
    }

    #[test]
    fn what_is_saved_survives_a_restart_and_the_first_read_reports_what_changed_meanwhile() {
        let (mut cabinets, _east, west) = setup(Saved::default());
        cabinets.poll(at(0));
        west.borrow_mut().inputs.insert(0, false);
        cabinets.poll(at(1));
        let saved: Saved = serde_json::from_str(&serde_json::to_string(&cabinets.saved()).unwrap()).unwrap();
        assert_eq!(saved.events.len(), 1);

        let (mut restarted, _east, west) = setup(saved);
        let status = restarted.status();
        let library = cabinet(&status, "library");
        assert_eq!((library.state, library.in_place), ("unknown", Some(1)), "last known, not trusted yet");
        assert_eq!(library.taken_at.as_deref(), Some("2026-11-21T10:15:01.000Z"));
        assert_eq!(status.events.len(), 1);
        // While down, the shield came back and another went.
        west.borrow_mut().inputs.insert(0, true);
        west.borrow_mut().inputs.insert(1, false);
        let report = restarted.poll(at(60));
        assert_eq!(
            report.changes,
            ["cabinet 'library': shield returned to slot 1", "cabinet 'library': shield taken from slot 2"]
        );
        assert_eq!(cabinet(&restarted.status(), "library").state, "stocked");
    }

    #[test]
    fn the_event_log_keeps_the_most_recent() {
        let (mut cabinets, _east, west) = setup(Saved::default());
        cabinets.poll(at(0));
        for s in 1..=30 {
            west.borrow_mut().inputs.insert(2, s % 2 == 0);
            cabinets.poll(at(s));
        }
        let status = cabinets.status();
        assert_eq!(status.events.len(), EVENTS_KEPT);
        assert_eq!(status.events.last().unwrap().at, "2026-11-21T10:15:30.000Z");
        assert_eq!(cabinets.saved().events.len(), EVENTS_KEPT);
    }
}
