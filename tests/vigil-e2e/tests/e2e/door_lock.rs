//! The door-lock plugin through the real vigild against a real Modbus TCP
//! device (pymodbus, `vigil_peers::modbus::ModbusSim`): the demo scene's
//! automatic Secure locks the exterior doors and the device confirms it; a
//! controller that goes silent is reported, and read again when it answers;
//! an operator's lockdown locks the rest (a stuck relay fails the answer,
//! names the door and is retried until it confirms); All Clear releases them;
//! a dismissed false alarm releases what its automatic Secure locked; a drill
//! leaves the coils alone.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_peers::modbus::ModbusSim;

use crate::harness::WAIT;
use crate::plugin_site::{PluginSite, shipped_manifest, toml_inline};

/// Coils on the test device: front (0, energised locks), side (1, fail-secure:
/// de-energised locks), office (2, interior, energised locks).
const FRONT: usize = 0;
const SIDE: usize = 1;
const OFFICE: usize = 2;

/// The door-lock plugin granted the test device, asking for its address as a site's package would.
fn school(sim: &ModbusSim, drill: bool) -> PluginSite {
    let plugin_config = json!({
        "controllers": [{"name": "main", "address": sim.addr(), "unit": 1}],
        "doors": [
            {"name": "front", "exterior": true, "coil": FRONT, "locked_when": true, "contact": 0},
            {"name": "side", "exterior": true, "coil": SIDE, "locked_when": false},
            {"name": "office", "coil": OFFICE, "locked_when": true}
        ],
        "timeout_ms": 500,
        "retry": {"initial_ms": 200, "max_ms": 1000}
    });
    let grant = format!("network = [\"{}\"]\nconfig = {}\n", sim.addr(), toml_inline(&plugin_config));
    PluginSite::start(&shipped_manifest("door-lock", &[sim.addr()]), &grant, drill)
}

fn door<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["doors"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap()
}

/// Waits until the device's coils satisfy `ok`.
fn coils_become(sim: &ModbusSim, what: &str, ok: impl Fn(&[bool]) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok(&sim.coils()) {
        assert!(Instant::now() < deadline, "the coils never became {what}: {:?}", sim.coils());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn door_lock_secures_locks_down_and_releases_through_modbus() {
    let sim = ModbusSim::start(16, 16).unwrap();
    // The side door's relay is wired fail-secure: energised is unlocked, as it starts.
    sim.set_coils(SIDE as u16, &[true]);
    sim.set_discrete_input(0, true); // front door closed
    // The office relay has failed: it stays off whatever is written.
    sim.stick_coil(OFFICE as u16, Some(false));
    let school = school(&sim, false);

    // The demo scene raises an incident; the playbook's automatic Secure locks the exterior doors.
    let secure = school.answer("activate:secure");
    assert_eq!(
        (secure["result"].as_str(), secure["detail"].as_str()),
        (Some("done"), Some("locked 2/2 doors: front, side")),
        "{secure}"
    );
    let coils = sim.coils();
    assert_eq!((coils[FRONT], coils[SIDE], coils[OFFICE]), (true, false, false), "{coils:?}");
    assert!(
        school.audit().iter().any(|e| e.actor == "plugin:door-lock"
            && e.event == "action-result"
            && e.reason == "done: locked 2/2 doors: front, side"),
        "the answer is not in the audit trail: {:?}",
        school.audit()
    );
    // The front door's contact is read on the next poll.
    let status = school.status("the exterior doors locked, the front one closed", |s| {
        s["locked"] == 2 && door(s, "front")["closed"] == true
    });
    assert_eq!(door(&status, "office")["state"], "unlocked");
    assert_eq!(status["claims"], json!(["1:secure"]));

    // The controller goes silent: the doors are reported in fault, and known again when it answers.
    sim.stop_responding(true);
    let status = school.status("the controller offline", |s| s["controllers"][0]["state"] == "offline");
    assert!(door(&status, "front")["fault"].as_str().unwrap().contains("did not answer"), "{status}");
    sim.stop_responding(false);
    school.status("the controller back", |s| s["controllers"][0]["state"] == "online" && s["locked"] == 2);

    // An operator orders a lockdown: the office relay does not follow, and the answer says so.
    school.command("incident.action", json!({"incident": 1, "action": "lockdown"}), "lockdown");
    let lockdown = school.answer("activate:lockdown");
    assert_eq!(lockdown["result"], "failed", "{lockdown}");
    assert_eq!(
        lockdown["detail"], "door 'office' did not confirm: coil 2 reads unlocked after write; 2/3 locked",
        "{lockdown}"
    );
    let status = school.status("the office fault", |s| door(s, "office")["state"] == "fault");
    assert_eq!(door(&status, "office")["fault"], "coil 2 reads unlocked after write");
    assert_eq!(door(&status, "office")["want"], "locked");
    // The relay is repaired: the plugin's retries lock the office without anyone asking again.
    sim.stick_coil(OFFICE as u16, None);
    coils_become(&sim, "office locked", |c| c[OFFICE]);
    school.status("every door locked", |s| s["locked"] == 3 && s["faults"] == 0);

    // All Clear releases everything the incident locked.
    school.command("incident.all-clear", json!({"incident": 1}), "all-clear");
    let release = school.answer("all-clear");
    assert_eq!(
        (release["result"].as_str(), release["detail"].as_str()),
        (Some("done"), Some("released 3/3 doors: front, side, office")),
        "{release}"
    );
    let coils = sim.coils();
    assert_eq!((coils[FRONT], coils[SIDE], coils[OFFICE]), (false, true, false), "{coils:?}");
    let status = school.status("every door unlocked", |s| s["locked"] == 0 && s["claims"] == json!([]));
    assert!(
        status["doors"].as_array().unwrap().iter().all(|d| d["state"] == "unlocked" && d["want"].is_null()),
        "{status}"
    );
}

#[test]
fn door_lock_drills_leave_the_doors_alone() {
    let sim = ModbusSim::start(16, 16).unwrap();
    let school = school(&sim, true);
    let secure = school.answer("activate:secure");
    assert_eq!(secure["drill"], true, "{secure}");
    assert_eq!(
        (secure["result"].as_str(), secure["detail"].as_str()),
        (Some("done"), Some("drill: 2 doors would lock (front, side); drill_locks is off")),
        "{secure}"
    );
    // The plugin polls the device every second: it is reachable and reads the doors, yet writes nothing.
    let status = school.status("the doors read", |s| s["controllers"][0]["state"] == "online");
    assert_eq!(door(&status, "front")["state"], "unlocked", "{status}");
    assert!(status["doors"].as_array().unwrap().iter().all(|d| d["want"].is_null()), "{status}");
    assert_eq!(sim.coils(), vec![false; 16]);
}

#[test]
fn door_lock_a_dismissed_false_alarm_unlocks_what_secure_locked() {
    let sim = ModbusSim::start(16, 16).unwrap();
    sim.set_coils(SIDE as u16, &[true]);
    let school = school(&sim, false);
    let secure = school.answer("activate:secure");
    assert_eq!(secure["result"], "done", "{secure}");
    coils_become(&sim, "front and side locked", |c| c[FRONT] && !c[SIDE]);

    school.command("incident.dismiss", json!({"incident": 1}), "dismiss");
    let revert = school.answer("revert:secure");
    assert_eq!(
        (revert["result"].as_str(), revert["detail"].as_str()),
        (Some("done"), Some("released 2/2 doors: front, side")),
        "{revert}"
    );
    let coils = sim.coils();
    assert_eq!((coils[FRONT], coils[SIDE], coils[OFFICE]), (false, true, false), "{coils:?}");
    school.status("no claims left", |s| s["claims"] == json!([]) && s["locked"] == 0);
}
