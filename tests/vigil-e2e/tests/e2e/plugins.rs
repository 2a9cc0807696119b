//! Plugins through the real vigild: a signed package installed from the
//! install folder answers the incident's action requests (the answer lands in
//! the audit trail and reaches the district), and packages are installed,
//! listed and removed over MQTT, an unsigned one refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_peers::{Mosquitto, MosquittoOptions};
use vigil_plugins::package::{self, Capabilities, Manifest};
use vigil_uplink::command_json;

use crate::daemon::{Daemon, District, config_text, deduplicated};
use crate::harness::WAIT;

/// The folder of the built test components (`cargo xtask test` builds them).
fn components() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/wasm32-wasip2/release");
    assert!(
        dir.join("vigil_plugin_template.wasm").is_file(),
        "the plugin components are not built: run `cargo xtask test` (it builds plugins/ for wasm32-wasip2)"
    );
    dir
}

fn manifest(name: &str) -> Manifest {
    Manifest {
        name: name.into(),
        version: "1.0.0".into(),
        wit: "0.1.0".into(),
        description: format!("{name}, for the end-to-end tests"),
        actions: vec!["*".into()],
        capabilities: Capabilities::default(),
        config_schema: json!({}),
    }
}

fn signed(name: &str, component: &str, key: &package::SigningKey) -> Vec<u8> {
    let wasm = std::fs::read(components().join(component)).unwrap();
    package::build(&manifest(name), &wasm, key)
}

#[test]
fn a_signed_plugin_answers_actions_and_is_managed_over_mqtt() {
    let (key, public) = package::keygen();
    let dir = tempfile::tempdir().unwrap();
    let install = dir.path().join("packages");
    std::fs::create_dir_all(&install).unwrap();
    std::fs::write(install.join("template.vpk"), signed("template", "vigil_plugin_template.wasm", &key)).unwrap();

    let broker = Mosquitto::start(MosquittoOptions::default()).unwrap();
    let district = District::connect(broker.port(), None, false);
    let uplink = format!("broker = \"{}\"\nack = \"broker\"\ntelemetry_s = 1", broker.url());
    let plugins = format!(
        "\n[plugins]\ntrusted_keys = [\"ed25519:{}\"]\ninstall_dir = '{}'\n",
        package::verifying_key_to_hex(&public),
        install.display()
    );
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, config_text(&dir.path().join("data"), &uplink) + &plugins).unwrap();
    let vigild = Daemon::start(&config, &dir.path().join("vigild.log"));

    // The raise dispatches the automatic Secure; the template answers it.
    district.wait_alerts("the raise", WAIT * 2, |a| deduplicated(a).len() >= 2);
    let result =
        district.wait_for("the plugin's answer on alerts/actions", WAIT, |m| m.topic.ends_with("/alerts/actions"));
    let result: Value = serde_json::from_slice(&result.payload).unwrap();
    assert_eq!(
        (result["plugin"].as_str(), result["action"].as_str(), result["result"].as_str(), result["detail"].as_str()),
        (Some("template"), Some("activate:secure"), Some("done"), Some("logged by template")),
        "{result}"
    );
    let audit =
        vigil_store::Store::open(&dir.path().join("data")).unwrap().audit(vigil_core::incident::IncidentId(1)).unwrap();
    assert!(
        audit.iter().any(|e| e.actor == "plugin:template"
            && e.event == "action-result"
            && e.reason == "done: logged by template"),
        "the answer is not in the audit trail: {audit:?}"
    );
    // Its status reaches the district in telemetry.
    let deadline = Instant::now() + WAIT;
    loop {
        let t = district
            .received()
            .iter()
            .rev()
            .find(|m| m.topic.ends_with("/telemetry"))
            .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap());
        if let Some(t) = t.filter(|t| t["plugins"][0]["status"]["incidents_seen"] == 1) {
            assert_eq!(t["plugins"][0]["name"], "template");
            assert_eq!(t["plugins"][0]["state"], "running");
            break;
        }
        assert!(Instant::now() < deadline, "telemetry never showed the template's status:\n{}", vigild.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Install over MQTT: a signed package is installed, an unsigned one refused.
    let good = signed("good", "vigil_test_good.wasm", &key);
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let send = |name: &str, args: Value, corr: &str| {
        district.command(name, &command_json(corr, "integrator@district", args), corr, Some(60));
        district.response(corr, WAIT * 2)
    };
    let r = send("plugin.install", json!({"package": b64(&good)}), "install-good");
    assert_eq!((r["ok"].as_bool(), r["data"]["name"].as_str()), (Some(true), Some("good")), "{r}");
    // The same package through vigilctl in 16 KiB parts, as for a broker with a small message
    // limit: the device assembles the parts, checks the SHA-256 and installs it.
    let file = dir.path().join("good.vpk");
    std::fs::write(&file, &good).unwrap();
    let out = std::process::Command::new(crate::daemon::vigilctl_bin())
        .args(["--broker", &broker.url(), "--operator", "integrator@district", "--timeout", "20"])
        .args(["plugin", "install", crate::daemon::DEVICE])
        .arg(&file)
        .args(["--chunk-kib", "16"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("installed good 1.0.0 (replaced 1.0.0)"),
        "{} parts: {stdout}{}",
        good.len().div_ceil(16 * 1024),
        String::from_utf8_lossy(&out.stderr)
    );
    let (rogue, _) = package::keygen();
    let r = send(
        "plugin.install",
        json!({"package": b64(&signed("rogue", "vigil_test_good.wasm", &rogue))}),
        "install-rogue",
    );
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["code"], "plugin-refused");
    assert!(r["error"]["message"].as_str().unwrap().contains("untrusted"), "{r}");
    let r = send("plugin.list", json!({}), "list");
    let names: Vec<&str> =
        r["data"]["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["good", "template"]);
    // Disabled over MQTT: stopped (and refusing actions) until enabled again.
    let r = send("plugin.disable", json!({"name": "good"}), "disable");
    assert_eq!(r["ok"], true, "{r}");
    let r = send("plugin.list", json!({}), "list-disabled");
    let good = r["data"]["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "good").cloned().unwrap();
    assert_eq!(good["state"], "disabled: disabled by an operator", "{good}");
    let r = send("plugin.enable", json!({"name": "good"}), "enable");
    assert_eq!(r["ok"], true, "{r}");
    let r = send("plugin.enable", json!({"name": "nobody"}), "enable-nobody");
    assert_eq!((r["ok"].as_bool(), r["error"]["code"].as_str()), (Some(false), Some("plugin-refused")), "{r}");
    let r = send("plugin.remove", json!({"name": "good"}), "remove");
    assert_eq!(r["ok"], true, "{r}");
    let r = send("plugin.list", json!({}), "list-2");
    assert_eq!(r["data"]["plugins"].as_array().unwrap().len(), 1);
    drop(vigild);
}
