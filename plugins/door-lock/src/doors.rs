//! The doors as the plugin knows them: drives them to what [`Desired`] wants,
//! confirms every write by reading it back, polls their state, retries
//! failing controllers and doors with backoff, and has each controller show
//! whether its doors are held locked (an OSDP reader's LED and buzzer). It
//! talks to controllers only through [`Controller`] and to the host not at
//! all (time comes in as `now_ms`), so it runs natively in tests with a fake
//! controller.

use serde::Serialize;
use vigil_plugin_sdk::backoff::Backoff;

use crate::backend::{Controller, LinkError};
use crate::config::{Config, Door};
use crate::policy::{self, Desired, DoorState, Want};

/// Every door's state and every controller's link.
pub struct Doors {
    config: Config,
    links: Vec<LinkState>,
    doors: Vec<DoorInfo>,
}

struct LinkState {
    controller: Box<dyn Controller>,
    backoff: Backoff,
    /// The last failure, while it lasts.
    error: Option<String>,
    /// Whether it has answered since the plugin started.
    answered: bool,
    /// The last failure to show the lock state on its indicators, while it lasts.
    indicator_error: Option<String>,
}

struct DoorInfo {
    state: DoorState,
    closed: Option<bool>,
    retry: Backoff,
}

/// What a tick found worth telling.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Doors whose release read back unlocked: the plugin leaves them alone now.
    pub released: Vec<usize>,
    /// Changes, in words, for the log.
    pub changes: Vec<String>,
}

/// The status document the district sees in telemetry.
#[derive(Debug, Serialize, PartialEq)]
pub struct Status {
    /// Doors locked now (read back).
    pub locked: usize,
    /// Doors in fault.
    pub faults: usize,
    /// Every door.
    pub doors: Vec<DoorStatus>,
    /// Every controller.
    pub controllers: Vec<ControllerStatus>,
    /// The incidents holding doors locked, as `<incident>:<action>`.
    pub claims: Vec<String>,
}

/// One door in the status.
#[derive(Debug, Serialize, PartialEq)]
pub struct DoorStatus {
    /// Its name.
    pub name: String,
    /// Exterior or interior.
    pub exterior: bool,
    /// `locked`, `unlocked`, `unknown` or `fault`.
    pub state: &'static str,
    /// Why it is in fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// What the plugin is holding it to: `locked`, `unlocked`, or none (left alone).
    pub want: Option<&'static str>,
    /// The door-position contact: closed, open, or not known (not wired or not read).
    pub closed: Option<bool>,
}

/// One controller in the status.
#[derive(Debug, Serialize, PartialEq)]
pub struct ControllerStatus {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub address: String,
    /// `online`, `offline` or `unknown` (not reached yet).
    pub state: &'static str,
    /// The last failure while offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Doors {
    /// The doors of `config`, reached through `controllers` (one per configured controller, same order).
    pub fn new(config: Config, controllers: Vec<Box<dyn Controller>>) -> Doors {
        assert_eq!(config.controllers.len(), controllers.len(), "one backend per configured controller");
        let links = controllers
            .into_iter()
            .map(|controller| LinkState {
                controller,
                backoff: Backoff::default(),
                error: None,
                answered: false,
                indicator_error: None,
            })
            .collect();
        let doors = config
            .doors
            .iter()
            .map(|_| DoorInfo { state: DoorState::Unknown, closed: None, retry: Backoff::default() })
            .collect();
        Doors { config, links, doors }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Drives each of `targets` to what `desired` wants now (an action: no
    /// backoff waits), confirms it by reading back, and returns each state
    /// after. Then the controllers involved show the new lock state.
    pub fn apply(&mut self, desired: &Desired, targets: &[usize], now_ms: u64) -> Vec<(usize, DoorState)> {
        let mut call = Call::new(now_ms, self.links.len());
        let mut outcomes = Vec::new();
        for &i in targets {
            let want = desired.want(&self.config.doors[i]);
            let c = self.config.doors[i].controller;
            let state = match &call.offline[c] {
                Some(why) => DoorState::Fault(why.clone()),
                None => self.drive(i, want, &mut call),
            };
            self.doors[i].state = state.clone();
            outcomes.push((i, state));
        }
        let mut involved: Vec<usize> = targets.iter().map(|&i| self.config.doors[i].controller).collect();
        involved.sort_unstable();
        involved.dedup();
        for c in involved {
            // Not a door fault: the next tick shows it again and logs a failure.
            let _ = self.indicate(c, desired, &mut call);
        }
        outcomes
    }

    /// Polls every controller that is due, re-applies what `desired` wants
    /// where a door differs (each door retried with its own backoff), and
    /// reads door contacts.
    pub fn tick(&mut self, desired: &Desired, now_ms: u64) -> TickReport {
        let mut report = TickReport::default();
        let mut call = Call::new(now_ms, self.links.len());
        for c in 0..self.links.len() {
            if !self.links[c].backoff.due(now_ms) {
                continue;
            }
            if let Err(why) = self.quiet_io(c, &mut call, |c| c.refresh()) {
                call.offline[c].get_or_insert(why);
            }
            let doors: Vec<usize> = self.config.doors_of(c).map(|(i, _)| i).collect();
            for i in doors {
                if call.offline[c].is_some() {
                    break;
                }
                let before = self.doors[i].state.clone();
                self.poll_door(i, desired, &mut call);
                let door = &self.config.doors[i];
                let after = &self.doors[i].state;
                if *after != before && !matches!(after, DoorState::Fault(_) if matches!(before, DoorState::Fault(_))) {
                    report.changes.push(match after {
                        DoorState::Fault(why) => format!("door '{}' fault: {why}", door.name),
                        other => format!("door '{}' {}", door.name, other.name()),
                    });
                }
                if desired.want(door) == Want::Unlocked && *after == DoorState::Unlocked {
                    report.released.push(i);
                }
            }
            if let Some(why) = &call.offline[c] {
                for (i, _) in self.config.doors_of(c) {
                    self.doors[i].state = DoorState::Fault(why.clone());
                }
                continue;
            }
            let shown = self.indicate(c, desired, &mut call).err();
            let before = std::mem::replace(&mut self.links[c].indicator_error, shown);
            let after = &self.links[c].indicator_error;
            if *after != before {
                let name = &self.config.controllers[c].name;
                report.changes.push(match after {
                    Some(why) => format!("cannot show the lock state on controller '{name}': {why}"),
                    None => format!("controller '{name}' shows the lock state again"),
                });
            }
        }
        report
    }

    /// The status document.
    pub fn status(&self, desired: &Desired) -> Status {
        let doors: Vec<DoorStatus> = self
            .config
            .doors
            .iter()
            .zip(&self.doors)
            .map(|(door, info)| DoorStatus {
                name: door.name.clone(),
                exterior: door.exterior,
                state: info.state.name(),
                fault: match &info.state {
                    DoorState::Fault(why) => Some(why.clone()),
                    _ => None,
                },
                want: match desired.want(door) {
                    Want::Locked => Some("locked"),
                    Want::Unlocked => Some("unlocked"),
                    Want::Nothing => None,
                },
                closed: info.closed,
            })
            .collect();
        let controllers = self
            .config
            .controllers
            .iter()
            .zip(&self.links)
            .map(|(controller, link)| ControllerStatus {
                name: controller.name.clone(),
                address: controller.link.describe(),
                state: match (&link.error, link.answered) {
                    (Some(_), _) => "offline",
                    (None, true) => "online",
                    (None, false) => "unknown",
                },
                error: link.error.clone(),
            })
            .collect();
        Status {
            locked: doors.iter().filter(|d| d.state == "locked").count(),
            faults: doors.iter().filter(|d| d.state == "fault").count(),
            doors,
            controllers,
            claims: desired.claims.iter().map(|c| format!("{}:{}", c.incident, c.action.as_str())).collect(),
        }
    }

    /// Reads door `i`, rewrites it if it differs from what is wanted and its retry is due, reads its contact.
    fn poll_door(&mut self, i: usize, desired: &Desired, call: &mut Call) {
        let door = self.config.doors[i].clone();
        let want = desired.want(&door);
        let read = self.io(door.controller, call, |c| c.read_output(door.output));
        let mut state = DoorState::from_read(&door, read);
        if call.offline[door.controller].is_some() {
            self.doors[i].state = state;
            return;
        }
        if policy::needs_write(&state, want) {
            if self.doors[i].retry.due(call.now_ms) {
                state = self.drive(i, want, call);
            } else if let DoorState::Fault(_) = &self.doors[i].state {
                // Still waiting to retry: the last fault's reason stands.
                state = self.doors[i].state.clone();
            }
        }
        self.doors[i].state = state;
        if let Some(contact) = door.contact
            && call.offline[door.controller].is_none()
        {
            self.doors[i].closed =
                self.io(door.controller, call, |c| c.read_input(contact)).ok().flatten().map(|v| v == door.closed_when);
        }
    }

    /// Writes door `i`'s output for `want`, reads it back and classifies the result.
    fn drive(&mut self, i: usize, want: Want, call: &mut Call) -> DoorState {
        let door: Door = self.config.doors[i].clone();
        let Some(value) = policy::output_for(&door, want) else {
            return self.doors[i].state.clone();
        };
        let noun = self.config.controllers[door.controller].link.output_noun();
        let output = format!("{noun} {}", door.output);
        let readback = self
            .io(door.controller, call, |c| c.write_output(door.output, value))
            .and_then(|()| self.io(door.controller, call, |c| c.read_output(door.output)));
        let state = policy::confirm(&door, want == Want::Locked, &output, readback);
        let retry = self.config.retry;
        match &state {
            DoorState::Fault(_) => self.doors[i].retry.failed(call.now_ms, retry),
            _ => self.doors[i].retry.succeeded(),
        }
        state
    }

    /// Has controller `c` show whether its doors are held locked.
    fn indicate(&mut self, c: usize, desired: &Desired, call: &mut Call) -> Result<(), String> {
        let locked = policy::shows_locked(&self.config, desired, c);
        self.quiet_io(c, call, |ctl| ctl.indicate(locked))
    }

    /// One request to controller `c` that reads or writes a door, recording
    /// whether the controller answered.
    fn io<T>(
        &mut self,
        c: usize,
        call: &mut Call,
        op: impl FnOnce(&mut dyn Controller) -> Result<T, LinkError>,
    ) -> Result<T, String> {
        let value = self.quiet_io(c, call, op)?;
        let link = &mut self.links[c];
        link.answered = true;
        link.error = None;
        link.backoff.succeeded();
        Ok(value)
    }

    /// One request to controller `c` whose success says nothing of the
    /// device (it may do no I/O at all); a failure that takes the controller
    /// offline is recorded as in [`Doors::io`].
    fn quiet_io<T>(
        &mut self,
        c: usize,
        call: &mut Call,
        op: impl FnOnce(&mut dyn Controller) -> Result<T, LinkError>,
    ) -> Result<T, String> {
        if let Some(why) = &call.offline[c] {
            return Err(why.clone());
        }
        let link = &mut self.links[c];
        op(link.controller.as_mut()).map_err(|e| {
            let why = format!("controller '{}': {}", self.config.controllers[c].name, e.message);
            if e.offline {
                link.error = Some(why.clone());
                link.backoff.failed(call.now_ms, self.config.retry);
                call.offline[c] = Some(why.clone());
            }
            why
        })
    }
}

/// One call's view of the controllers: its time, and those that did not answer during it.
struct Call {
    now_ms: u64,
    offline: Vec<Option<String>>,
}

impl Call {
    fn new(now_ms: u64, controllers: usize) -> Call {
        Call { now_ms, offline: vec![None; controllers] }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::policy::{Decision, Directive, Locking, decide};

    /// A controller in memory (a fake: these tests are about the logic; the
    /// end-to-end test runs the real plugin against pymodbus).
    #[derive(Default)]
    struct Device {
        outputs: BTreeMap<u16, bool>,
        inputs: BTreeMap<u16, bool>,
        stuck: BTreeMap<u16, bool>,
        silent: bool,
        requests: usize,
    }

    struct Fake(Rc<RefCell<Device>>);

    impl Fake {
        fn answer<T>(&self, f: impl FnOnce(&mut Device) -> T) -> Result<T, LinkError> {
            let mut d = self.0.borrow_mut();
            d.requests += 1;
            if d.silent {
                return Err(LinkError { message: "did not answer within 500 ms".into(), offline: true });
            }
            Ok(f(&mut d))
        }
    }

    impl Controller for Fake {
        fn read_output(&mut self, n: u16) -> Result<Option<bool>, LinkError> {
            self.answer(|d| Some(d.outputs.get(&n).copied().unwrap_or(false)))
        }
        fn write_output(&mut self, n: u16, on: bool) -> Result<(), LinkError> {
            self.answer(|d| {
                let value = d.stuck.get(&n).copied().unwrap_or(on);
                d.outputs.insert(n, value);
            })
        }
        fn read_input(&mut self, n: u16) -> Result<Option<bool>, LinkError> {
            self.answer(|d| Some(d.inputs.get(&n).copied().unwrap_or(false)))
        }
    }

    fn setup() -> (Doors, Rc<RefCell<Device>>, Rc<RefCell<Device>>) {
        let config = Config::parse(
            r#"{"controllers": [{"name": "main", "address": "h:502"}, {"name": "gym", "address": "g:502"}],
                "doors": [
                    {"name": "front", "controller": "main", "exterior": true, "coil": 0, "locked_when": true, "contact": 4},
                    {"name": "office", "controller": "main", "coil": 1, "locked_when": false},
                    {"name": "gym-east", "controller": "gym", "exterior": true, "coil": 3, "locked_when": true},
                    {"name": "gym-west", "controller": "gym", "exterior": true, "coil": 4, "locked_when": true}
                ],
                "retry": {"initial_ms": 1000, "max_ms": 4000}}"#,
        )
        .unwrap();
        let (main, gym) = (Rc::new(RefCell::new(Device::default())), Rc::new(RefCell::new(Device::default())));
        main.borrow_mut().outputs.insert(1, true); // office: de-energised locks, so energised is unlocked
        let doors = Doors::new(config, vec![Box::new(Fake(main.clone())), Box::new(Fake(gym.clone()))]);
        (doors, main, gym)
    }

    fn lock(doors: &mut Doors, desired: &mut Desired, action: Locking, now: u64) -> Result<String, String> {
        let Decision::Lock(targets) = decide(doors.config(), desired, 1, false, Directive::Lock(action)) else {
            panic!("not a lock")
        };
        let outcomes = doors.apply(desired, &targets, now);
        policy::answer(doors.config(), true, &outcomes, &[])
    }

    #[test]
    fn secure_writes_and_confirms_exterior_doors_only() {
        let (mut doors, main, gym) = setup();
        let mut desired = Desired::default();
        assert_eq!(
            lock(&mut doors, &mut desired, Locking::Secure, 0),
            Ok("locked 3/3 doors: front, gym-east, gym-west".into())
        );
        assert_eq!(main.borrow().outputs.get(&0), Some(&true));
        assert_eq!(main.borrow().outputs.get(&1), Some(&true), "office untouched");
        assert_eq!((gym.borrow().outputs.get(&3), gym.borrow().outputs.get(&4)), (Some(&true), Some(&true)));
        let status = doors.status(&desired);
        assert_eq!(status.locked, 3);
        assert_eq!(status.claims, ["1:secure"]);
    }

    #[test]
    fn a_stuck_output_fails_the_answer_names_the_door_and_is_retried_with_backoff() {
        let (mut doors, _main, gym) = setup();
        gym.borrow_mut().stuck.insert(3, false);
        let mut desired = Desired::default();
        assert_eq!(
            lock(&mut doors, &mut desired, Locking::Secure, 0),
            Err("door 'gym-east' did not confirm: coil 3 reads unlocked after write; 2/3 locked".into())
        );
        let door = |doors: &Doors| doors.status(&desired).doors.into_iter().find(|d| d.name == "gym-east").unwrap();
        assert_eq!(
            (door(&doors).state, door(&doors).fault.as_deref()),
            ("fault", Some("coil 3 reads unlocked after write"))
        );
        // Within the backoff the tick reads but does not rewrite; the fault stands.
        let before = gym.borrow().requests;
        doors.tick(&desired, 500);
        assert_eq!(gym.borrow().requests - before, 2, "one read per gym door, no write");
        assert_eq!(door(&doors).state, "fault");
        // The relay is repaired: the next due retry confirms.
        gym.borrow_mut().stuck.clear();
        let report = doors.tick(&desired, 1000);
        assert_eq!(door(&doors).state, "locked");
        assert_eq!(report.changes, ["door 'gym-east' locked"]);
    }

    #[test]
    fn an_offline_controller_costs_one_request_and_faults_its_doors() {
        let (mut doors, main, gym) = setup();
        gym.borrow_mut().silent = true;
        let mut desired = Desired::default();
        let answer = lock(&mut doors, &mut desired, Locking::Lockdown, 0).unwrap_err();
        assert!(answer.contains("door 'gym-east' did not confirm: controller 'gym': did not answer"), "{answer}");
        assert!(answer.contains("door 'gym-west' did not confirm") && answer.ends_with("2/4 locked"), "{answer}");
        assert_eq!(gym.borrow().requests, 1);
        assert_eq!(main.borrow().outputs.get(&1), Some(&false), "office locks de-energised");
        let status = doors.status(&desired);
        assert_eq!((status.controllers[1].state, status.faults), ("offline", 2));
        // Ticks leave it alone until its backoff is due, then it comes back and is re-applied.
        doors.tick(&desired, 500);
        assert_eq!(gym.borrow().requests, 1);
        gym.borrow_mut().silent = false;
        doors.tick(&desired, 1000);
        assert_eq!((gym.borrow().outputs.get(&3), gym.borrow().outputs.get(&4)), (Some(&true), Some(&true)));
        let status = doors.status(&desired);
        assert_eq!((status.controllers[1].state, status.locked, status.faults), ("online", 4, 0));
    }

    #[test]
    fn a_release_is_confirmed_then_the_door_is_left_alone() {
        let (mut doors, main, _gym) = setup();
        let mut desired = Desired::default();
        lock(&mut doors, &mut desired, Locking::Secure, 0).unwrap();
        let Decision::Release { doors: targets, kept } =
            decide(doors.config(), &mut desired, 1, false, Directive::AllClear)
        else {
            panic!()
        };
        main.borrow_mut().stuck.insert(0, true);
        let outcomes = doors.apply(&desired, &targets, 10);
        let answer = policy::answer(doors.config(), false, &outcomes, &kept).unwrap_err();
        assert_eq!(answer, "door 'front' did not confirm: coil 0 reads locked after write; 2/3 released");
        main.borrow_mut().stuck.clear();
        let report = doors.tick(&desired, 2000);
        assert_eq!(report.released, [0, 2, 3]);
        for i in report.released {
            let door = doors.config().doors[i].clone();
            desired.released(&door);
        }
        // Someone sets the coil by hand: the plugin no longer holds the door, it only reports it.
        main.borrow_mut().outputs.insert(0, true);
        doors.tick(&desired, 3000);
        assert_eq!(main.borrow().outputs.get(&0), Some(&true));
        assert_eq!(doors.status(&desired).doors[0].state, "locked");
    }

    #[test]
    fn a_restart_re_applies_the_desired_state_on_the_first_tick() {
        let (mut doors, main, gym) = setup();
        let mut desired = Desired::default();
        decide(doors.config(), &mut desired, 9, false, Directive::Lock(Locking::Lockdown));
        assert_eq!(doors.status(&desired).doors[0].state, "unknown");
        doors.tick(&desired, 0);
        assert_eq!(main.borrow().outputs.get(&0), Some(&true));
        assert_eq!(main.borrow().outputs.get(&1), Some(&false));
        assert_eq!(gym.borrow().outputs.get(&4), Some(&true));
        assert_eq!(doors.status(&desired).locked, 4);
    }

    #[test]
    fn contacts_report_door_position() {
        let (mut doors, main, _gym) = setup();
        let desired = Desired::default();
        main.borrow_mut().inputs.insert(4, true);
        doors.tick(&desired, 0);
        let status = doors.status(&desired);
        assert_eq!((status.doors[0].closed, status.doors[1].closed), (Some(true), None));
        main.borrow_mut().inputs.insert(4, false);
        doors.tick(&desired, 1);
        assert_eq!(doors.status(&desired).doors[0].closed, Some(false));
    }
}
