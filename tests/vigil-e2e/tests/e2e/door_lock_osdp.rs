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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_peers::osdp::{OsdpPd, OsdpPdOptions};
use vigil_peers::{Mosquitto, MosquittoOptions};
use vigil_plugins::package::{self, Capabilities, Manifest};
use vigil_uplink::command_json;

use crate::daemon::{Daemon, District, config_text};
use crate::harness::WAIT;

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

/// The built door-lock component.
fn component() -> PathBuf {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm32-wasip2/release/vigil_plugin_door_lock.wasm");
    assert!(
        wasm.is_file(),
        "the door-lock component is not built: cargo build --release --target wasm32-wasip2 --manifest-path \
         plugins/Cargo.toml -p vigil-plugin-door-lock"
    );
    wasm
}

/// The shipped manifest as it is: it asks for the serial port named `osdp`.
fn manifest() -> Manifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/door-lock/manifest.json");
    let shipped: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let strings = |v: &Value| v.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let manifest = Manifest {
        name: shipped["name"].as_str().unwrap().into(),
        version: shipped["version"].as_str().unwrap().into(),
        wit: shipped["wit"].as_str().unwrap().into(),
        description: shipped["description"].as_str().unwrap().into(),
        actions: strings(&shipped["actions"]),
        capabilities: Capabilities {
            network: strings(&shipped["capabilities"]["network"]),
            serial: strings(&shipped["capabilities"]["serial"]),
            data: false,
        },
        config_schema: shipped["config_schema"].clone(),
    };
    assert_eq!(manifest.capabilities.serial, [PORT], "the shipped manifest must ask for the serial port {PORT:?}");
    manifest
}

/// A school with the door-lock plugin installed and granted the reader's line.
struct School {
    _broker: Mosquitto,
    district: District,
    vigild: Daemon,
    _dir: tempfile::TempDir,
}

impl School {
    /// Starts vigild with the plugin talking to `pd` with key `scbk`.
    fn start(pd: &OsdpPd, scbk: &[u8; 16], drill: bool) -> School {
        let (key, public) = package::keygen();
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("packages");
        std::fs::create_dir_all(&install).unwrap();
        let wasm = std::fs::read(component()).unwrap();
        std::fs::write(install.join("door-lock.vpk"), package::build(&manifest(), &wasm, &key)).unwrap();

        let broker = Mosquitto::start(MosquittoOptions::default()).unwrap();
        let district = District::connect(broker.port(), None, false);
        let uplink = format!("broker = \"{}\"\nack = \"broker\"\ntelemetry_s = 1", broker.url());
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
        let plugins = format!(
            "\n[plugins]\ntrusted_keys = [\"ed25519:{}\"]\ninstall_dir = '{}'\n\n\
             [plugins.grant.door-lock]\nserial = {{ {PORT} = '{}' }}\nconfig = {}\n",
            package::verifying_key_to_hex(&public),
            install.display(),
            pd.cp_path().display(),
            toml_inline(&plugin_config),
        );
        let mut text = config_text(&dir.path().join("data"), &uplink) + &plugins;
        if drill {
            text = text.replacen("[device]\n", "[device]\ndrill = true\n", 1);
        }
        let config = dir.path().join("vigil.toml");
        std::fs::write(&config, text).unwrap();
        let vigild = Daemon::start(&config, &dir.path().join("vigild.log"));
        School { _broker: broker, district, vigild, _dir: dir }
    }

    /// The door-lock's answer to `action` (`activate:secure`, `all-clear`) on alerts/actions.
    fn answer(&self, action: &str) -> Value {
        let m = self.district.wait_for(&format!("door-lock's answer to {action}"), WAIT * 2, |m| {
            m.topic.ends_with("/alerts/actions")
                && serde_json::from_slice::<Value>(&m.payload)
                    .is_ok_and(|a| a["plugin"] == "door-lock" && a["action"] == action)
        });
        serde_json::from_slice(&m.payload).unwrap()
    }

    /// Sends an incident command as the district's operator and checks it was accepted.
    fn command(&self, name: &str, args: Value, corr: &str) {
        self.district.command(name, &command_json(corr, "sro@district", args), corr, Some(60));
        let r = self.district.response(corr, WAIT);
        assert_eq!(r["ok"], true, "{name} refused: {r}");
    }

    /// Waits for telemetry in which the door-lock plugin (its whole entry) satisfies `ok`.
    fn plugin(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let plugin = self
                .district
                .received()
                .iter()
                .rev()
                .find(|m| m.topic.ends_with("/telemetry"))
                .and_then(|m| serde_json::from_slice::<Value>(&m.payload).ok())
                .and_then(|t| t["plugins"].as_array()?.iter().find(|p| p["name"] == "door-lock").cloned());
            if let Some(plugin) = plugin.filter(|p| ok(p)) {
                return plugin;
            }
            assert!(Instant::now() < deadline, "telemetry never showed {what}:\n{}", self.vigild.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a door-lock status satisfying `ok`.
    fn status(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        self.plugin(what, |p| ok(&p["status"]))["status"].clone()
    }
}

/// A JSON object as a TOML inline table (strings, numbers, booleans, arrays, objects).
fn toml_inline(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map.iter().map(|(k, v)| format!("{k} = {}", toml_inline(v))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(toml_inline).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
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
    let school = School::start(&pd, &SITE_KEY, false);

    // The demo scene raises an incident; the playbook's automatic Secure locks the exterior door.
    let secure = school.answer("activate:secure");
    assert_eq!(
        (secure["result"].as_str(), secure["detail"].as_str()),
        (Some("done"), Some("locked 1/1 doors: front")),
        "{secure}\n{}",
        school.vigild.log()
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
    let status =
        school.status("the front door locked and closed", |s| s["locked"] == 1 && door(s, "front")["closed"] == true);
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
    let again = pd
        .wait_for_after(before, WAIT, |e| is_command(e, "output"))
        .expect("the held door is written again in the new session");
    assert_eq!((again["output_no"].as_u64(), again["control_code"].as_u64()), (Some(FRONT_OUTPUT), Some(2)), "{again}");
    pd.wait_for_after(before, WAIT, |e| is_command(e, "led") && e["on_color"] == RED).expect("the LED red again");
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
    let school = School::start(&pd, b"not-the-site-key", false);

    let secure = school.answer("activate:secure");
    assert_eq!(secure["result"], "failed", "{secure}");
    let reason = "controller 'reader': secure channel with the reader at address 1 refused: \
                  the reader's cryptogram does not match — wrong SCBK?";
    assert_eq!(secure["detail"], format!("door 'front' did not confirm: {reason}; 0/1 locked"), "{secure}");

    let plugin = school.plugin("the reader in fault", |p| {
        p["status"]["controllers"][0]["state"] == "offline" && p["status"]["faults"] == 2
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
    let school = School::start(&pd, &SITE_KEY, true);
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
