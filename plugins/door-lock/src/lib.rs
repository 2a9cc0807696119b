//! Vigil's door-lock plugin: Secure locks the exterior doors, Lockdown every
//! door, All Clear (or the dismissal of an automatic action) releases what it
//! locked, through door controllers: Modbus TCP relay modules, and OSDP
//! readers on a serial line over the Secure Channel.
//!
//! Locking is entry only: each door's output drives the access panel's
//! lockdown input or the strike's entry side, never free egress. A door counts
//! as locked only when its controller reads it back locked; the answer says
//! which doors did not confirm and why (an OSDP reader confirms with the
//! report it sends in answer to a poll). Door states are polled every tick and
//! published as the plugin's status; what the plugin holds doors to is kept in
//! its key-value store and re-applied after a restart, retried with backoff
//! until the controller confirms. `docs/plugins/door-lock.md` is the
//! operator's reference.
//!
//! The module layout keeps decisions apart from I/O: [`config`] and
//! [`policy`] are pure, [`doors`] drives controllers through the
//! [`backend::Controller`] seam ([`backend`] for Modbus, [`osdp`] for OSDP,
//! which opens the granted serial port), and only this file otherwise talks
//! to the host.

pub mod backend;
pub mod config;
pub mod doors;
pub mod osdp;
pub mod policy;

use std::cell::RefCell;
use std::time::Duration;

use vigil_plugin_sdk::{ActionRequest, ActionResult, Plugin, SrpAction, export_plugin, host, kv};

use doors::Doors;
use policy::{Decision, Desired, Directive, Locking};

/// The key-value store key holding [`Desired`].
const DESIRED: &str = "desired";

/// One instance's state: the host calls a plugin from one thread.
struct State {
    doors: Doors,
    desired: Desired,
    /// The last status published, to publish only changes.
    published: String,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

struct DoorLock;

impl Plugin for DoorLock {
    fn init() -> Result<(), String> {
        let config = vigil_plugin_sdk::config::<config::RawConfig>()?.validate()?;
        let desired: Desired = kv::get_json(DESIRED)?.unwrap_or_default();
        let timeout = Duration::from_millis(config.timeout_ms);
        let controllers = config
            .controllers
            .iter()
            .map(|c| backend::open(&c.link, timeout).map_err(|e| format!("controller '{}': {e}", c.name)))
            .collect::<Result<_, _>>()?;
        host::info!(
            "door-lock ready: {} doors on {} controllers; holding {} claims, {} releases pending",
            config.doors.len(),
            config.controllers.len(),
            desired.claims.len(),
            desired.releasing.len()
        );
        // No device I/O here: init is the install's health check, and a
        // controller that is offline must not refuse the plugin. The first
        // tick reads the doors and re-applies what `desired` holds.
        let mut state = State { doors: Doors::new(config, controllers), desired, published: String::new() };
        publish(&mut state);
        STATE.with(|s| *s.borrow_mut() = Some(state));
        Ok(())
    }

    fn on_action(request: ActionRequest) -> ActionResult {
        with_state(|state| act(state, &request))
            .unwrap_or_else(|| ActionResult::Failed("door-lock is not initialised".into()))
    }

    fn on_tick(now_ms: u64) {
        with_state(|state| {
            let report = state.doors.tick(&state.desired, now_ms);
            for change in &report.changes {
                host::info!("{change}");
            }
            if !report.released.is_empty() {
                for &i in &report.released {
                    let door = &state.doors.config().doors[i];
                    state.desired.released(door);
                }
                save(&state.desired);
            }
            publish(state);
        });
    }
}

/// Carries out one action request.
fn act(state: &mut State, request: &ActionRequest) -> ActionResult {
    let incident = &request.incident;
    let directive = directive(&request.directive);
    let before = state.desired.clone();
    let decision = policy::decide(state.doors.config(), &mut state.desired, incident.id, incident.drill, directive);
    if state.desired != before {
        // Persist before touching a door, so a restart re-applies the intent.
        save(&state.desired);
    }
    let now = host::monotonic_ms();
    let result = match decision {
        Decision::NotApplicable(why) => {
            host::info!("incident {}: {} is not for door-lock: {why}", incident.id, request.directive);
            ActionResult::NotApplicable
        }
        Decision::Say(words) => ActionResult::Done(words),
        Decision::Lock(doors) => {
            let outcomes = state.doors.apply(&state.desired, &doors, now);
            answer(policy::answer(state.doors.config(), true, &outcomes, &[]))
        }
        Decision::Release { doors, kept } => {
            let outcomes = state.doors.apply(&state.desired, &doors, now);
            for (i, door_state) in &outcomes {
                if *door_state == policy::DoorState::Unlocked {
                    let door = &state.doors.config().doors[*i];
                    state.desired.released(door);
                }
            }
            save(&state.desired);
            answer(policy::answer(state.doors.config(), false, &outcomes, &kept))
        }
    };
    match &result {
        ActionResult::Done(words) => host::info!("incident {}: {}: {words}", incident.id, request.directive),
        ActionResult::Failed(why) => host::warn!("incident {}: {} failed: {why}", incident.id, request.directive),
        ActionResult::NotApplicable => {}
    }
    publish(state);
    result
}

fn answer(result: Result<String, String>) -> ActionResult {
    match result {
        Ok(words) => ActionResult::Done(words),
        Err(why) => ActionResult::Failed(why),
    }
}

/// The SDK's directive in the policy's terms.
fn directive(d: &vigil_plugin_sdk::Directive) -> Directive {
    use vigil_plugin_sdk::Directive as D;
    let locking = |a: &SrpAction| match a {
        SrpAction::Secure => Some(Locking::Secure),
        SrpAction::Lockdown => Some(Locking::Lockdown),
        SrpAction::Hold | SrpAction::Evacuate | SrpAction::Shelter => None,
    };
    match d {
        D::Activate(a) => locking(a).map_or(Directive::Other(a.as_str()), Directive::Lock),
        D::Revert(a) => locking(a).map_or(Directive::RevertOther(a.as_str()), Directive::Revert),
        D::AllClear => Directive::AllClear,
    }
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
    STATE.with(|s| s.borrow_mut().as_mut().map(f))
}

fn save(desired: &Desired) {
    // The doors are driven regardless: failing to remember must not stop a lockdown.
    if let Err(e) = kv::set_json(DESIRED, desired) {
        host::error!("cannot save the desired door states (a restart would forget them): {e}");
    }
}

/// Publishes the status document if it changed.
fn publish(state: &mut State) {
    let status = state.doors.status(&state.desired);
    let Ok(json) = serde_json::to_string(&status) else { return };
    if json != state.published {
        match vigil_plugin_sdk::status(&status) {
            Ok(()) => state.published = json,
            Err(e) => host::warn!("cannot publish the door status: {e}"),
        }
    }
}

export_plugin!(DoorLock);
