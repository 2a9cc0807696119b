//! Vigil's shield-inventory plugin: where are the ballistic shields for the
//! school resource officers?
//!
//! Every second it reads each shield cabinet's slot sensors, door contact and
//! tamper switch (Modbus TCP discrete inputs), tracks the count per cabinet,
//! shields taken and returned, doors opened and closed, offline and tampered
//! cabinets, and publishes the inventory as its status. When an SRP action
//! starts, it answers with the nearest cabinet that still holds a shield,
//! by the cheapest path over the site's adjacency graph from the camera that
//! saw the threat; vigild sends the answer to the district (`alerts/actions`)
//! and records it in the incident's audit trail. It never moves anything, so a
//! drill is answered the same way, marked `DRILL`. `docs/plugins/shield-inventory.md`
//! is the operator's reference.
//!
//! The module layout keeps decisions apart from I/O: [`config`], [`graph`],
//! [`inventory`], [`nearest`] and [`time`] are pure, [`cabinets`] polls
//! controllers through the [`backend::Inputs`] seam, and only this file talks
//! to the host.

pub mod backend;
pub mod cabinets;
pub mod config;
pub mod graph;
pub mod inventory;
pub mod nearest;
#[cfg(test)]
mod test_rng;
pub mod time;

use std::cell::RefCell;
use std::time::Duration;

use vigil_plugin_sdk::{ActionRequest, ActionResult, Directive, Event, Incident, Plugin, export_plugin, host, kv};

use cabinets::{Cabinets, Now, Saved};
use config::Place;

/// The key-value store key holding [`Saved`].
const SAVED: &str = "inventory";

/// One instance's state: the host calls a plugin from one thread.
struct State {
    cabinets: Cabinets,
    /// The last status published, to publish only changes.
    published: String,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

struct ShieldInventory;

impl Plugin for ShieldInventory {
    fn init() -> Result<(), String> {
        let config = vigil_plugin_sdk::config::<config::RawConfig>()?.validate()?;
        // What was remembered is history, not configuration: an unreadable
        // record is dropped with a warning rather than refusing the plugin.
        let saved = kv::get_json::<Saved>(SAVED).unwrap_or_else(|e| {
            host::warn!("starting with an empty inventory: {e}");
            None
        });
        let timeout = Duration::from_millis(config.timeout_ms);
        let links = config.links.iter().map(|l| backend::open(l, timeout)).collect();
        host::info!(
            "shield-inventory ready: {} cabinets on {} controllers, {} places in the site graph{}",
            config.cabinets.len(),
            config.links.len(),
            config.graph.len(),
            if saved.is_some() { "; last known contents restored" } else { "" }
        );
        // No device I/O here: init is the install's health check, and an
        // offline controller must not refuse the plugin. The first tick reads.
        let mut state =
            State { cabinets: Cabinets::new(config, links, saved.unwrap_or_default()), published: String::new() };
        publish(&mut state);
        STATE.with(|s| *s.borrow_mut() = Some(state));
        Ok(())
    }

    fn on_event(event: Event) {
        // Where the officers should head, in the log as soon as the incident is raised.
        if let Event::Raised(incident) = &event {
            with_state(|state| match nearest_words(state, incident) {
                Ok(words) => host::info!("incident {}: {words}", incident.id),
                Err(why) => host::warn!("incident {}: {why}", incident.id),
            });
        }
    }

    fn on_action(request: ActionRequest) -> ActionResult {
        let Directive::Activate(action) = request.directive else {
            // Reverts and All Clear move nothing here; shields go back by hand.
            return ActionResult::NotApplicable;
        };
        with_state(|state| {
            // Read again first: the answer must reflect the cabinets now, not a second ago.
            poll(state, host::monotonic_ms());
            let incident = &request.incident;
            let result = match nearest_words(state, incident) {
                Ok(words) => {
                    host::info!("incident {}: {}: {words}", incident.id, action.as_str());
                    ActionResult::Done(words)
                }
                Err(why) => {
                    host::warn!("incident {}: {}: {why}", incident.id, action.as_str());
                    ActionResult::Failed(why)
                }
            };
            publish(state);
            result
        })
        .unwrap_or_else(|| ActionResult::Failed("shield-inventory is not initialised".into()))
    }

    fn on_tick(now_ms: u64) {
        with_state(|state| {
            poll(state, now_ms);
            publish(state);
        });
    }
}

/// The answer for `incident`: the nearest stocked cabinet from its camera's location.
fn nearest_words(state: &State, incident: &Incident) -> Result<String, String> {
    let l = &incident.location;
    let from = Place::new(&l.building, &l.floor, &l.zone);
    let search = state.cabinets.search(&from);
    nearest::answer(state.cabinets.config(), &search, incident.drill)
}

/// Reads the cabinets that are due, logs what changed and saves what must survive a restart.
fn poll(state: &mut State, mono_ms: u64) {
    let report = state.cabinets.poll(Now { mono_ms, wall_ms: host::wall_clock_ms() });
    for change in &report.changes {
        host::info!("{change}");
    }
    if report.remember
        && let Err(e) = kv::set_json(SAVED, &state.cabinets.saved())
    {
        host::error!("cannot save the inventory (a restart would forget the last counts and times): {e}");
    }
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
    STATE.with(|s| s.borrow_mut().as_mut().map(f))
}

/// Publishes the status document if it changed.
fn publish(state: &mut State) {
    let status = state.cabinets.status();
    let Ok(json) = serde_json::to_string(&status) else { return };
    if json != state.published {
        match vigil_plugin_sdk::status(&status) {
            Ok(()) => state.published = json,
            Err(e) => host::warn!("cannot publish the inventory status: {e}"),
        }
    }
}

export_plugin!(ShieldInventory);
