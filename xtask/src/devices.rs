//! `cargo xtask demo --devices`: the demo with the first-party plugins
//! driving the same protocol peers the tests use, on loopback: a pymodbus
//! relay board behind the doors and a libosdp OSDP reader on a PTY pair,
//! reached over the Secure Channel, for the main entrance (door-lock), SIPp as the PA's paging
//! extension with an RTP sink for its audio (pa-paging), and a second
//! pymodbus board with two shield cabinets' sensors (shield-inventory; the
//! office cabinet near the main hall is empty, so the answer is the gym's).
//! The raise's automatic Secure locks the exterior doors, pages "Secure" and
//! names the nearest shield; at the end the demo prints what the devices saw.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_peers::modbus::ModbusSim;
use vigil_peers::osdp::{OsdpPd, OsdpPdOptions};
use vigil_peers::sipp::{self, RtpSink, Scenario, Sipp};

use crate::env::Env;

/// The plugins the devices demo installs, by crate folder.
const PLUGINS: &[(&str, &str)] = &[
    ("door-lock", "vigil_plugin_door_lock"),
    ("pa-paging", "vigil_plugin_pa_paging"),
    ("shield-inventory", "vigil_plugin_shield_inventory"),
];

/// The doors on the demo's relay board: name, exterior, coil (and contact input).
const DOORS: &[(&str, bool, u16)] = &[("front", true, 0), ("gym-east", true, 1), ("library", false, 2)];

/// The running peers.
pub struct Devices {
    doors: ModbusSim,
    reader: OsdpPd,
    cabinets: ModbusSim,
    sink: RtpSink,
    sipp: Sipp,
}

impl Devices {
    /// Starts the relay board, the RTP sink and SIPp (one call, with digest auth).
    pub fn start() -> Result<Devices, String> {
        let doors = ModbusSim::start(8, 8).map_err(|e| format!("cannot start the pymodbus relay board: {e}"))?;
        // Every door closed (contact inputs on).
        doors.set_discrete_inputs(0, &[true; 3]);
        // The main entrance's reader: its default site key, Secure Channel
        // required, the door's contact (input 0) closed.
        let mut reader = OsdpPd::start(&OsdpPdOptions::default())?;
        reader.set_input(0, true)?;
        let cabinets = ModbusSim::start(1, 16).map_err(|e| format!("cannot start the pymodbus cabinet board: {e}"))?;
        // The office cabinet (slots 0-1) is empty, its door (2) closed; the gym's
        // (slots 8-10) holds three shields, door (11) closed.
        cabinets.set_discrete_inputs(0, &[false, false, true]);
        cabinets.set_discrete_inputs(8, &[true, true, true, true]);
        let sink = RtpSink::start()?;
        let sipp = Sipp::start(Scenario::Auth, sink.addr())?;
        Ok(Devices { doors, reader, cabinets, sink, sipp })
    }

    /// `[plugins]` for the demo: the demo key, the packages folder, and each plugin's grant.
    pub fn plugins_config(&self, install_dir: &str, trusted_key: &str) -> String {
        let mut doors = String::new();
        for (name, exterior, coil) in DOORS {
            let _ = write!(
                doors,
                "\n[[plugins.grant.door-lock.config.doors]]\nname = \"{name}\"\ncontroller = \"board\"\nexterior = {exterior}\ncoil = {coil}\nlocked_when = true\ncontact = {coil}\n"
            );
        }
        format!(
            "[plugins]\ntrusted_keys = [\"{trusted_key}\"]\ninstall_dir = \"{install_dir}\"\n\n\
             [plugins.grant.door-lock]\nnetwork = [\"{board}\"]\nserial = {{ osdp = \"{reader_path}\" }}\n\n\
             [plugins.grant.door-lock.config]\ntimeout_ms = 600\n\n\
             [[plugins.grant.door-lock.config.controllers]]\nname = \"board\"\naddress = \"{board}\"\n\n\
             [[plugins.grant.door-lock.config.controllers]]\nname = \"reader\"\nkind = \"osdp\"\nport = \"osdp\"\naddress = 1\nscbk = \"{scbk}\"\n{doors}\n\
             [[plugins.grant.door-lock.config.doors]]\nname = \"main-entrance\"\ncontroller = \"reader\"\nexterior = true\noutput = 0\nlocked_when = true\ncontact = 0\n\n\
             [plugins.grant.pa-paging]\nnetwork = [\"{sip}\", \"{media}\"]\ncall_timeout_ms = 60000\n\
             config = {{ server = \"{sip}\", extension = \"page\", user = \"{user}\", password = \"{password}\", repeat = 1, retries = 0 }}\n\n\
             [plugins.grant.shield-inventory]\nnetwork = [\"{cabinets}\"]\n\n\
             [plugins.grant.shield-inventory.config]\ncost_unit = \"m\"\ngraph = [\n\
               {{ from = \"A/1/main-hall\", to = \"A/1/office\", cost = 20 }},\n\
               {{ from = \"A/1/main-hall\", to = \"B/1/gym\", cost = 60 }},\n]\n\n\
             [[plugins.grant.shield-inventory.config.cabinets]]\nname = \"office\"\nlocation = {{ building = \"A\", floor = \"1\", zone = \"office\" }}\n\
             address = \"{cabinets}\"\nslots = [0, 1]\ndoor = 2\n\n\
             [[plugins.grant.shield-inventory.config.cabinets]]\nname = \"gym\"\nlocation = {{ building = \"B\", floor = \"1\", zone = \"gym\" }}\n\
             address = \"{cabinets}\"\nslots = [8, 9, 10]\ndoor = 11\n",
            board = self.doors.addr(),
            reader_path = self.reader.cp_path().display(),
            scbk = OsdpPdOptions::default()
                .scbk
                .map(|k| k.iter().map(|b| format!("{b:02x}")).collect::<String>())
                .unwrap_or_default(),
            cabinets = self.cabinets.addr(),
            sip = self.sipp.addr(),
            media = self.sink.addr(),
            user = sipp::USER,
            password = sipp::PASSWORD,
        )
    }

    /// What the devices saw, for the end of the demo.
    pub fn report(&self) -> String {
        let coils = self.doors.coils();
        let mut out = String::from("devices:\n");
        for (name, exterior, coil) in DOORS {
            let locked = coils.get(usize::from(*coil)).copied().unwrap_or(false);
            let kind = if *exterior { "exterior" } else { "interior" };
            let _ = writeln!(out, "  door {name:<9} ({kind}): {}", if locked { "LOCKED" } else { "unlocked" });
        }
        // The reader's last osdp_OUT for output 0 (control code 2: on, 1: off).
        let last_out = self
            .reader
            .events()
            .into_iter()
            .rev()
            .find(|e| e["event"] == "command" && e["command"] == "output" && e["output_no"] == 0);
        let entrance = match last_out.as_ref().and_then(|e| e["control_code"].as_u64()) {
            Some(2) => "LOCKED (osdp_OUT over the Secure Channel)",
            Some(_) => "unlocked (osdp_OUT)",
            None => "unlocked (no osdp_OUT received)",
        };
        let _ = writeln!(out, "  door main-entrance (exterior, OSDP reader): {entrance}");
        let packets = self.sink.packets();
        let seconds = packets.len() as f64 * 0.020;
        let methods = self.sipp.received_methods();
        let _ =
            writeln!(out, "  PA: SIP requests {methods:?}; {} RTP packets ({seconds:.1} s of audio)", packets.len());
        out
    }
}

/// Signs the devices demo's plugins with the demo key into `out`.
pub fn package(env: &Env, wasm: &Path, out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    for (folder, component) in PLUGINS {
        env.run(
            Command::new(env.root.join("target/release/vigilctl"))
                .args(["plugin", "sign", "--manifest"])
                .arg(env.root.join("plugins").join(folder).join("manifest.json"))
                .arg("--component")
                .arg(wasm.join(format!("{component}.wasm")))
                .arg("--signing-key")
                .arg(env.root.join("config/demo-plugins.key"))
                .arg("-o")
                .arg(out.join(format!("{folder}.vpk"))),
        )?;
    }
    Ok(())
}

/// The devices demo's config: `config/demo.toml` with its own data folder
/// and `plugins` in place of the sample plugin's section. Written under
/// `target/`, one level down like `config/`, so the demo's relative paths hold.
pub fn write_config(env: &Env, plugins: &str) -> Result<PathBuf, String> {
    let base = env.root.join("config/demo.toml");
    let text = std::fs::read_to_string(&base).map_err(|e| format!("cannot read {}: {e}", base.display()))?;
    let cut = text.find("\n# The sample plugin").ok_or("config/demo.toml has no sample plugin section to replace")?;
    let text = text[..cut].replace("data_dir = \"../target/demo\"", "data_dir = \"../target/devices-demo\"");
    let path = env.root.join("target/devices-demo.toml");
    let body = format!(
        "# Written by `cargo xtask demo --devices`: config/demo.toml with the first-party\n\
         # plugins granted the loopback peers this run started.\n{text}\n{plugins}"
    );
    std::fs::write(&path, body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
