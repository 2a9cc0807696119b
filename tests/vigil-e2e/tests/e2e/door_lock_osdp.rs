//! The door-lock plugin through the real vigild driving a real OSDP reader:
//! libosdp's peripheral device (`vigil_peers::osdp::OsdpPd`) on a PTY pair,
//! granted to the plugin as its serial port. The PD enforces the Secure
//! Channel (it NAKs every command but the handshake in the clear), so every
//! command it reports having carried out came over it.
//!
//! The demo scene's automatic Secure locks the front door: the PD gets
//! osdp_OUT, reports the output in its answer to the next poll, and only then
//! does the plugin answer done; the reader's LED turns red and its buzzer
//! sounds. A reader that goes silent is in fault, and when it answers again
//! the held door is written again in the new session. All Clear releases the
//! door and the LED turns back. A wrong key
//! fails the answer with the secure channel's reason and shows a fault. A
//! drill leaves the outputs alone.

use serde_json::{Value, json};
use vigil_peers::osdp::{OsdpPd, OsdpPdOptions};
use vigil_plugins::package::ANY_GRANTED;

use crate::harness::WAIT;
use crate::plugin_site::{PluginSite, shipped_manifest, toml_inline};

/// The reader's key, as the site commissioned it.
const SITE_KEY: [u8; 16] = *b"vigil-osdp-site!";
/// The serial port's name in the grant and the manifest.
const PORT: &str = "osdp";
/// The front door's lock relay and door contact on the reader.
const FRONT_OUTPUT: u64 = 0;
const FRONT_CONTACT: u8 = 0;
/// LED colours as osdp_LED carries them.
const RED: u64 = 1;
const GREEN: u64 = 2;

fn hex(key: &[u8; 16]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The door-lock plugin talking to `pd` with key `scbk`, granted the reader's
/// line. Its manifest is the shipped one as it is: any granted endpoint (it is
/// granted none) and the serial port named `osdp`.
fn school(pd: &OsdpPd, scbk: &[u8; 16], drill: bool) -> PluginSite {
    let manifest = shipped_manifest("door-lock", &[ANY_GRANTED.to_string()]);
    assert_eq!(manifest.capabilities.serial, [PORT], "the shipped manifest must ask for the serial port {PORT:?}");
    let plugin_config = json!({
        "controllers": [{
            "name": "reader", "kind": "osdp", "port": PORT, "address": 1, "scbk": hex(scbk),
            "allow_install_mode": false,
            "led": {"locked": "red", "normal": "green"},
            "buzzer": {"beeps": 2, "on_ms": 200, "off_ms": 100}
        }],
        "doors": [
            {"name": "front", "exterior": true, "output": FRONT_OUTPUT, "locked_when": true, "contact": FRONT_CONTACT},
            {"name": "office", "output": 1, "locked_when": true}
        ],
        "timeout_ms": 600,
        "retry": {"initial_ms": 200, "max_ms": 1000}
    });
    let grant =
        format!("serial = {{ {PORT} = '{}' }}\nconfig = {}\n", pd.cp_path().display(), toml_inline(&plugin_config));
    PluginSite::start(&manifest, &grant, drill)
}

fn door<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["doors"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap()
}

fn is_command(event: &Value, command: &str) -> bool {
    event["event"] == "command" && event["command"] == command
}

/// The reader with the site key, enforcing the Secure Channel, its front door closed.
fn reader() -> OsdpPd {
    let mut pd = OsdpPd::start(&OsdpPdOptions { scbk: Some(SITE_KEY), ..OsdpPdOptions::default() })
        .expect("start the libosdp PD");
    pd.set_input(FRONT_CONTACT, true).expect("close the front door's contact");
    pd
}

#[test]
fn door_lock_osdp_locks_over_the_secure_channel_once_the_reader_reports_it() {
    let mut pd = reader();
    let school = school(&pd, &SITE_KEY, false);

    // The demo scene raises an incident; the playbook's automatic Secure locks the exterior door.
    let secure = school.answer("activate:secure");
    assert_eq!(
        (secure["result"].as_str(), secure["detail"].as_str()),
        (Some("done"), Some("locked 1/1 doors: front")),
        "{secure}\n{}",
        school.log()
    );
    // The PD carried out osdp_OUT "permanent on" for the front door's relay,
    // and nothing for the office: it only takes commands over the Secure
    // Channel, and it reports the channel up.
    let out = pd.wait_for(WAIT, |e| is_command(e, "output")).expect("the PD got osdp_OUT");
    assert_eq!((out["output_no"].as_u64(), out["control_code"].as_u64()), (Some(FRONT_OUTPUT), Some(2)), "{out}");
    pd.wait_for(WAIT, |e| e["event"] == "sc" && e["active"] == true).expect("the PD reports the secure channel");
    let outputs: Vec<Value> = pd.events().into_iter().filter(|e| is_command(e, "output")).collect();
    assert!(outputs.iter().all(|e| e["output_no"] == FRONT_OUTPUT), "only the front door is written: {outputs:?}");
    // The reader shows the lockdown: LED steady red, and the buzzer.
    let red = pd.wait_for(WAIT, |e| is_command(e, "led") && e["on_color"] == RED).expect("the LED turned red");
    assert_eq!(red["temporary"], false, "{red}");
    let buzz = pd.wait_for(WAIT, |e| is_command(e, "buzzer")).expect("the buzzer sounded");
    assert_eq!((buzz["on_count"].as_u64(), buzz["rep_count"].as_u64()), (Some(2), Some(2)), "{buzz}");

    // The status is what the reader reported: the front door locked, its contact closed.
    // (Waiting for the office's state too: under load a status can show the
    // front door's report before the office's.)
    let status = school.status("the front door locked and closed, the office known", |s| {
        s["locked"] == 1 && door(s, "front")["closed"] == true && door(s, "office")["state"] == "unlocked"
    });
    assert_eq!(door(&status, "front")["want"], "locked", "{status}");
    assert_eq!(
        (status["controllers"][0]["address"].as_str(), status["controllers"][0]["state"].as_str()),
        (Some("osdp://osdp/1"), Some("online")),
        "{status}"
    );
    assert_eq!(status["claims"], json!(["1:secure"]));
    // libosdp's PD cannot be asked for its outputs (it NAKs osdp_OSTAT): the
    // office relay is known from the same report, which lists every output.
    assert_eq!(door(&status, "office")["state"], "unlocked", "{status}");
    assert!(door(&status, "office")["want"].is_null(), "{status}");

    // The reader goes silent: its doors are in fault. When it answers again a
    // new secure session starts, so what it said before no longer holds (it
    // may have restarted): the held door is written again and confirmed, and
    // the LED shows the lockdown again.
    pd.set_silent(true).expect("silence the PD");
    let status = school.status("the reader offline", |s| s["controllers"][0]["state"] == "offline");
    let fault = door(&status, "front")["fault"].as_str().unwrap_or_default().to_string();
    assert!(fault.starts_with("controller 'reader': no reply from address 1"), "{status}");
    let before = pd.events().len();
    pd.set_silent(false).expect("wake the PD");
    // The controller's retry backoff and a new secure session come first: on a loaded machine, a while.
    let again = pd
        .wait_for_after(before, WAIT * 3, |e| is_command(e, "output"))
        .expect("the held door is written again in the new session");
    assert_eq!((again["output_no"].as_u64(), again["control_code"].as_u64()), (Some(FRONT_OUTPUT), Some(2)), "{again}");
    pd.wait_for_after(before, WAIT * 3, |e| is_command(e, "led") && e["on_color"] == RED).expect("the LED red again");
    school.status("the reader back, the front door locked", |s| {
        s["controllers"][0]["state"] == "online" && s["locked"] == 1 && s["faults"] == 0
    });

    // All Clear releases the front door, confirmed by the reader's next report; the LED turns back.
    let before = pd.events().len();
    school.command("incident.all-clear", json!({"incident": 1}), "all-clear");
    let release = school.answer("all-clear");
    assert_eq!(
        (release["result"].as_str(), release["detail"].as_str()),
        (Some("done"), Some("released 1/1 doors: front")),
        "{release}"
    );
    let off =
        pd.wait_for_after(before, WAIT, |e| is_command(e, "output")).expect("the PD got osdp_OUT for the release");
    assert_eq!((off["output_no"].as_u64(), off["control_code"].as_u64()), (Some(FRONT_OUTPUT), Some(1)), "{off}");
    pd.wait_for_after(before, WAIT, |e| is_command(e, "led") && e["on_color"] == GREEN)
        .expect("the LED turned back to green");
    let status = school.status("the front door unlocked", |s| {
        s["locked"] == 0 && s["claims"] == json!([]) && door(s, "front")["state"] == "unlocked"
    });
    assert!(door(&status, "front")["want"].is_null(), "{status}");
}

#[test]
fn door_lock_osdp_a_wrong_key_fails_in_words_and_shows_a_fault() {
    let pd = reader();
    let school = school(&pd, b"not-the-site-key", false);

    let secure = school.answer("activate:secure");
    assert_eq!(secure["result"], "failed", "{secure}");
    let reason = "controller 'reader': secure channel with the reader at address 1 refused: \
                  the reader's cryptogram does not match — wrong SCBK?";
    assert_eq!(secure["detail"], format!("door 'front' did not confirm: {reason}; 0/1 locked"), "{secure}");

    // The reader is in fault from the first poll on: wait for a status published
    // after the Secure (it holds the claim), not one from before it.
    let plugin = school.plugin("the reader in fault, the Secure claimed", |p| {
        p["status"]["controllers"][0]["state"] == "offline"
            && p["status"]["faults"] == 2
            && p["status"]["claims"] == json!(["1:secure"])
    });
    assert_eq!(plugin["state"], "running", "a refused key is a fault, not a crash: {plugin}");
    let status = &plugin["status"];
    assert_eq!(status["controllers"][0]["error"], reason, "{status}");
    assert_eq!(door(status, "front")["fault"], reason, "{status}");
    assert_eq!(door(status, "front")["want"], "locked", "the plugin keeps trying: {status}");
    assert!(!pd.events().iter().any(|e| is_command(e, "output")), "nothing may reach the PD: {:?}", pd.events());
}

#[test]
fn door_lock_osdp_drills_leave_the_outputs_alone() {
    let pd = reader();
    let school = school(&pd, &SITE_KEY, true);
    let secure = school.answer("activate:secure");
    assert_eq!(secure["drill"], true, "{secure}");
    assert_eq!(
        (secure["result"].as_str(), secure["detail"].as_str()),
        (Some("done"), Some("drill: 1 door would lock (front); drill_locks is off")),
        "{secure}"
    );
    // The plugin polls the reader every tick: it answers over the secure
    // channel and reports the front door's contact, yet nothing is written.
    let status = school.status("the reader polled", |s| {
        s["controllers"][0]["state"] == "online" && door(s, "front")["closed"] == true
    });
    assert!(status["doors"].as_array().unwrap().iter().all(|d| d["want"].is_null()), "{status}");
    assert_eq!(status["claims"], json!([]), "{status}");
    // Nothing changed on the reader and it cannot be asked (it NAKs
    // osdp_OSTAT): its doors are unknown, never assumed either way.
    assert_eq!(door(&status, "front")["state"], "unknown", "{status}");
    let events = pd.events();
    assert!(events.iter().any(|e| e["event"] == "sc" && e["active"] == true), "{events:?}");
    assert!(
        !events.iter().any(|e| is_command(e, "output") || is_command(e, "buzzer")),
        "a drill must not drive outputs or the buzzer: {events:?}"
    );
    assert!(
        !events.iter().any(|e| is_command(e, "led") && e["on_color"] == RED),
        "a drill must not show a lockdown: {events:?}"
    );
}
