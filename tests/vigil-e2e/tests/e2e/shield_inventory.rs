//! The shield-inventory plugin through the real vigild against two real
//! Modbus TCP cabinet controllers (pymodbus, `vigil_peers::modbus::ModbusSim`):
//! the demo scene's incident and its automatic Secure are answered with the
//! nearest cabinet that still holds a shield (the nearest one is empty, so the
//! answer names the next); a shield taken shows in the status with its count
//! and time; a controller that goes silent marks its cabinet offline and the
//! next answer skips it; after a restart of vigild the times and events come
//! back from the plugin's key-value store; a drill answers the same way,
//! marked DRILL.
//!
//! The site: the demo camera is in `A/1/main-hall` (`daemon::config_text`).
//! The gym cabinet is 30 m away, the library upstairs 45 m (10 to the stairs,
//! 15 up, 20 along), the office 60 m.

use serde_json::{Value, json};
use vigil_peers::modbus::ModbusSim;

use crate::plugin_site::{PluginSite, shipped_manifest};

/// Inputs on the east controller: the gym cabinet's slots 0-2, door 3,
/// tamper 4; the office cabinet's slot 8, door 9.
const GYM_SLOTS: u16 = 0;
const GYM_DOOR: u16 = 3;
const GYM_TAMPER: u16 = 4;
const OFFICE_SLOT: u16 = 8;
const OFFICE_DOOR: u16 = 9;
/// Inputs on the west controller: the library cabinet's slots 0-1, door 2.
const LIBRARY_SLOTS: u16 = 0;
const LIBRARY_DOOR: u16 = 2;

/// The plugin's config as vigild's TOML (the grant's `config` table).
fn plugin_config(east: &str, west: &str) -> String {
    format!(
        r#"
[plugins.grant.shield-inventory.config]
timeout_ms = 300
retry = {{ initial_ms = 200, max_ms = 1000 }}
graph = [
  {{ from = "A/1/main-hall", to = "A/1/gym", cost = 30 }},
  {{ from = "A/1/main-hall", to = "A/1/stairs", cost = 10 }},
  {{ from = "A/1/stairs", to = "A/2/stairs", cost = 15 }},
  {{ from = "A/2/stairs", to = "A/2/library", cost = 20 }},
  {{ from = "A/1/main-hall", to = "A/1/office", cost = 60 }},
]

[[plugins.grant.shield-inventory.config.cabinets]]
name = "gym"
location = {{ building = "A", floor = "1", zone = "gym" }}
address = "{east}"
slots = [{GYM_SLOTS}, {}, {}]
door = {GYM_DOOR}
tamper = {GYM_TAMPER}

[[plugins.grant.shield-inventory.config.cabinets]]
name = "library"
location = {{ building = "A", floor = "2", zone = "library" }}
address = "{west}"
unit = 2
slots = [{LIBRARY_SLOTS}, {}]
door = {LIBRARY_DOOR}

[[plugins.grant.shield-inventory.config.cabinets]]
name = "office"
location = {{ building = "A", floor = "1", zone = "office" }}
address = "{east}"
slots = [{OFFICE_SLOT}]
door = {OFFICE_DOOR}
"#,
        GYM_SLOTS + 1,
        GYM_SLOTS + 2,
        LIBRARY_SLOTS + 1,
    )
}

/// Two controllers: the gym cabinet empty, the library full (2 of 2), the office full (1 of 1); doors closed.
fn controllers() -> (ModbusSim, ModbusSim) {
    let east = ModbusSim::start(0, 16).unwrap();
    east.set_discrete_inputs(GYM_DOOR, &[true]);
    east.set_discrete_inputs(OFFICE_SLOT, &[true, true]);
    let west = ModbusSim::start(0, 16).unwrap();
    west.set_discrete_inputs(LIBRARY_SLOTS, &[true, true, true]);
    (east, west)
}

/// The shield-inventory plugin granted both controllers, asking for their addresses as a site's package would.
fn school(east: &ModbusSim, west: &ModbusSim, drill: bool) -> PluginSite {
    let network = [east.addr(), west.addr()];
    let grant =
        format!("network = [\"{}\", \"{}\"]\n{}", network[0], network[1], plugin_config(&network[0], &network[1]));
    PluginSite::start(&shipped_manifest("shield-inventory", &network), &grant, drill)
}

/// The cabinet `name` in a status document; `null` if absent.
fn cabinet<'a>(status: &'a Value, name: &str) -> &'a Value {
    static ABSENT: Value = Value::Null;
    status["cabinets"].as_array().and_then(|all| all.iter().find(|c| c["name"] == name)).unwrap_or(&ABSENT)
}

/// The answer when the gym is empty and every controller answers.
const LIBRARY_FIRST: &str = "nearest shield: cabinet 'library' (A/2/library), 2 of 2 in place, ~45 m from \
                             A/1/main-hall; next: cabinet 'office' (A/1/office), 1 of 1 in place, ~60 m; skipped \
                             nearer: 'gym' (A/1/gym, ~30 m): empty";

#[test]
fn shield_inventory_answers_the_nearest_stocked_cabinet_and_tracks_the_shields() {
    let (east, west) = controllers();
    let mut school = school(&east, &west, false);

    // The demo scene raises an incident; the automatic Secure is answered with
    // the library: the gym is nearer but empty.
    let secure = school.answer("activate:secure");
    assert_eq!((secure["result"].as_str(), secure["detail"].as_str()), (Some("done"), Some(LIBRARY_FIRST)), "{secure}");
    assert_eq!(secure["drill"], false, "{secure}");
    assert!(
        school.audit().iter().any(|e| e.actor == "plugin:shield-inventory"
            && e.event == "action-result"
            && e.reason == format!("done: {LIBRARY_FIRST}")),
        "the answer is not in the audit trail: {:?}",
        school.audit()
    );
    let status = school.status("the inventory read", |s| cabinet(s, "library")["state"] == "stocked");
    assert_eq!((status["available"].as_u64(), status["slots"].as_u64()), (Some(3), Some(6)), "{status}");
    assert_eq!(cabinet(&status, "gym")["state"], "empty", "{status}");
    assert_eq!(cabinet(&status, "gym")["door"], "closed", "{status}");

    // An officer opens the library cabinet and takes a shield.
    west.set_discrete_input(LIBRARY_DOOR, false);
    school.status("the library door open", |s| cabinet(s, "library")["door"] == "open");
    west.set_discrete_input(LIBRARY_SLOTS, false);
    let status = school.status("a library shield taken", |s| cabinet(s, "library")["in_place"] == 1);
    let library = cabinet(&status, "library");
    assert_eq!(library["present"], json!([false, true]), "{status}");
    let taken_at = library["taken_at"].as_str().unwrap_or_else(|| panic!("no taken_at: {status}"));
    assert!(taken_at.starts_with("20") && taken_at.ends_with('Z'), "{taken_at}");
    let events = status["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["cabinet"] == "library" && e["event"] == "taken" && e["slot"] == 1 && e["at"] == taken_at),
        "{status}"
    );
    assert!(events.iter().any(|e| e["cabinet"] == "library" && e["event"] == "opened"), "{status}");
    west.set_discrete_input(LIBRARY_DOOR, true);
    school.status("the library door closed", |s| cabinet(s, "library")["door"] == "closed");

    // The library's controller goes silent: offline in the status, with the reason.
    west.stop_responding(true);
    let status = school.status("the library offline", |s| cabinet(s, "library")["state"] == "offline");
    let library = cabinet(&status, "library");
    assert!(library["offline"].as_str().unwrap().contains("did not answer"), "{status}");
    assert_eq!(library["in_place"], 1, "the last known count stays visible: {status}");
    assert_eq!(status["available"], 1, "{status}");

    // An operator orders a lockdown: the answer skips the silent library for the office.
    school.command("incident.action", json!({"incident": 1, "action": "lockdown"}), "lockdown");
    let lockdown = school.answer("activate:lockdown");
    assert_eq!(lockdown["result"], "done", "{lockdown}");
    let detail = lockdown["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "nearest shield: cabinet 'office' (A/1/office), 1 of 1 in place, ~60 m from A/1/main-hall; next: none; \
             skipped nearer: 'gym' (A/1/gym, ~30 m): empty; 'library' (A/2/library, ~45 m): offline ("
        ) && detail.contains("did not answer"),
        "{detail}"
    );

    // The gym's tamper switch trips: reported as tampered; the library answers again.
    east.set_discrete_input(GYM_TAMPER, true);
    west.stop_responding(false);
    let status = school.status("the gym tampered, the library back", |s| {
        cabinet(s, "gym")["state"] == "tampered" && cabinet(s, "library")["state"] == "stocked"
    });
    assert!(status["events"].as_array().unwrap().iter().any(|e| e["cabinet"] == "library" && e["event"] == "online"));

    // After a restart the times and events come back from the plugin's key-value store.
    let before_restart = school.district().received().len();
    school.restart();
    let status = school.status_since(before_restart, "the inventory after the restart", |s| {
        cabinet(s, "library")["state"] == "stocked"
    });
    assert_eq!(cabinet(&status, "library")["taken_at"], taken_at, "{status}");
    assert!(
        status["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["cabinet"] == "library" && e["event"] == "taken" && e["at"] == taken_at),
        "the events before the restart are gone: {status}"
    );
}

#[test]
fn shield_inventory_answers_a_drill_the_same_way_marked_drill() {
    let (east, west) = controllers();
    let school = school(&east, &west, true);
    let secure = school.answer("activate:secure");
    assert_eq!(secure["drill"], true, "{secure}");
    assert_eq!(
        (secure["result"].as_str(), secure["detail"].as_str()),
        (Some("done"), Some(format!("DRILL: {LIBRARY_FIRST}").as_str())),
        "{secure}"
    );
}
