//! A school with one first-party plugin installed, for the tests that run a
//! plugin through the real vigild against its real peers: the built component
//! signed with a fresh test key into the install folder, Mosquitto, the
//! district subscribed to everything of the device, and vigild trusting the
//! key and granting the plugin what the test says. The demo camera raises an
//! incident (`daemon::config_text`), so the playbook's automatic Secure
//! reaches the plugin without the test asking.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_peers::{Mosquitto, MosquittoOptions};
use vigil_plugins::package::{self, Manifest};
use vigil_uplink::command_json;

use crate::daemon::{Daemon, District, config_text};
use crate::harness::WAIT;

/// The built component of the first-party plugin `plugin` (`door-lock`);
/// `cargo xtask test` builds plugins/ for wasm32-wasip2.
pub fn component(plugin: &str) -> PathBuf {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm32-wasip2/release")
        .join(format!("vigil_plugin_{}.wasm", plugin.replace('-', "_")));
    assert!(
        wasm.is_file(),
        "the {plugin} component is not built: cargo build --release --target wasm32-wasip2 --manifest-path \
         plugins/Cargo.toml -p vigil-plugin-{plugin}"
    );
    wasm
}

/// `plugins/<plugin>/manifest.json` as shipped, asking for the `network`
/// endpoints instead of the shipped ones, as a site's package would.
pub fn shipped_manifest(plugin: &str, network: &[String]) -> Manifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins").join(plugin).join("manifest.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut manifest: Manifest =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    manifest.capabilities.network = network.to_vec();
    manifest
}

/// A JSON value as TOML (objects as inline tables); test configs hold only
/// strings, numbers, booleans, arrays and objects.
pub fn toml_inline(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map.iter().map(|(k, v)| format!("{k} = {}", toml_inline(v))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(toml_inline).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// vigild with one plugin installed and granted, the broker and the district.
/// Dropping it stops vigild first, then the broker, then removes the folder.
pub struct PluginSite {
    vigild: Daemon,
    district: District,
    _broker: Mosquitto,
    plugin: String,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl PluginSite {
    /// Signs the built component of `manifest.name` with `manifest` into the
    /// install folder and starts vigild with `[plugins.grant.<name>]` followed
    /// by `grant` (TOML: the grant's keys, then any sub-tables), in a drill
    /// if `drill`.
    pub fn start(manifest: &Manifest, grant: &str, drill: bool) -> PluginSite {
        let plugin = manifest.name.clone();
        let (key, public) = package::keygen();
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("packages");
        std::fs::create_dir_all(&install).unwrap();
        let wasm = std::fs::read(component(&plugin)).unwrap();
        std::fs::write(install.join(format!("{plugin}.vpk")), package::build(manifest, &wasm, &key)).unwrap();

        let broker = Mosquitto::start(MosquittoOptions::default()).unwrap();
        let district = District::connect(broker.port(), None, false);
        let uplink = format!("broker = \"{}\"\nack = \"broker\"\ntelemetry_s = 1", broker.url());
        let plugins = format!(
            "\n[plugins]\ntrusted_keys = [\"ed25519:{}\"]\ninstall_dir = '{}'\n\n[plugins.grant.{plugin}]\n{grant}",
            package::verifying_key_to_hex(&public),
            install.display(),
        );
        let mut text = config_text(&dir.path().join("data"), &uplink) + &plugins;
        if drill {
            text = text.replacen("[device]\n", "[device]\ndrill = true\n", 1);
        }
        let config = dir.path().join("vigil.toml");
        std::fs::write(&config, text).unwrap();
        let vigild = Daemon::start(&config, &dir.path().join("vigild.log"));
        PluginSite { vigild, district, _broker: broker, plugin, config, dir }
    }

    /// The district's client: every message it received, and commands.
    pub fn district(&self) -> &District {
        &self.district
    }

    /// Everything vigild logged so far.
    pub fn log(&self) -> String {
        self.vigild.log()
    }

    /// Stops vigild cleanly and starts it again on the same config and data folder.
    pub fn restart(&mut self) {
        self.vigild.terminate();
        self.vigild = Daemon::start(&self.config, &self.dir.path().join("vigild.log"));
    }

    /// The plugin's answer to `action` (`activate:secure`, `all-clear`) on alerts/actions.
    pub fn answer(&self, action: &str) -> Value {
        let plugin = self.plugin.as_str();
        let m = self.district.wait_for(&format!("{plugin}'s answer to {action}"), WAIT * 2, |m| {
            m.topic.ends_with("/alerts/actions")
                && serde_json::from_slice::<Value>(&m.payload)
                    .is_ok_and(|a| a["plugin"] == plugin && a["action"] == action)
        });
        serde_json::from_slice(&m.payload).unwrap()
    }

    /// Sends an incident command as the district's operator and checks it was accepted.
    pub fn command(&self, name: &str, args: Value, corr: &str) {
        self.district.command(name, &command_json(corr, "sro@district", args), corr, Some(60));
        let r = self.district.response(corr, WAIT);
        assert_eq!(r["ok"], true, "{name} refused: {r}");
    }

    /// Waits for telemetry in which the plugin's entry (name, state, status)
    /// satisfies `ok`, and returns the entry.
    pub fn plugin(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        self.plugin_since(0, what, ok)
    }

    /// Waits for telemetry in which the plugin's status satisfies `ok`, and
    /// returns the status. Telemetry sent before the plugin published a
    /// status (no status, or `null`) never satisfies it.
    pub fn status(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        self.status_since(0, what, ok)
    }

    /// [`PluginSite::status`] among the messages received after the first
    /// `since` (`district().received().len()` before a restart).
    pub fn status_since(&self, since: usize, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        self.plugin_since(since, what, |p| !p["status"].is_null() && ok(&p["status"]))["status"].clone()
    }

    /// Waits until the latest telemetry among the messages received after the
    /// first `since` has an entry for the plugin that satisfies `ok`.
    fn plugin_since(&self, since: usize, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let plugin = self
                .district
                .received()
                .iter()
                .skip(since)
                .rev()
                .find(|m| m.topic.ends_with("/telemetry"))
                .and_then(|m| serde_json::from_slice::<Value>(&m.payload).ok())
                .and_then(|t| t["plugins"].as_array()?.iter().find(|p| p["name"] == self.plugin.as_str()).cloned());
            if let Some(plugin) = plugin.filter(|p| ok(p)) {
                return plugin;
            }
            assert!(Instant::now() < deadline, "telemetry never showed {what}:\n{}", self.vigild.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The audit trail of the first incident (the demo camera's).
    pub fn audit(&self) -> Vec<vigil_store::AuditEntry> {
        vigil_store::Store::open(&self.dir.path().join("data"))
            .unwrap()
            .audit(vigil_core::incident::IncidentId(1))
            .unwrap()
    }
}
