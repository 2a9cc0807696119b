//! The district link against a real broker (Debian's Mosquitto on a free
//! loopback port) and the real vigild binary: alerts survive broker outages
//! and SIGKILL, arrive in order and exactly once after deduplication, and
//! commands and remote config are answered.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_peers::{Mosquitto, MosquittoOptions};
use vigil_uplink::command_json;

use crate::daemon::{DEVICE, Daemon, District, config_text, deduplicated, expected_ids};
use crate::harness::WAIT;

/// A site: a temporary folder with the config file, the data folder and the log.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(uplink: &str) -> Site {
        let site = Site { dir: tempfile::tempdir().unwrap() };
        std::fs::write(site.config(), config_text(&site.dir.path().join("data"), uplink)).unwrap();
        site
    }
    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("vigil.toml")
    }
    fn start(&self) -> Daemon {
        Daemon::start(&self.config(), &self.dir.path().join("vigild.log"))
    }
    fn store(&self) -> vigil_store::Store {
        vigil_store::Store::open(&self.dir.path().join("data")).unwrap()
    }
}

fn remote(broker: &Mosquitto) -> String {
    format!("broker = \"{}\"\nack = \"district\"\nresend_after_s = 2\ntelemetry_s = 1\nkeep_alive_s = 5", broker.url())
}

/// The latest telemetry document received.
fn telemetry(district: &District) -> Option<Value> {
    district
        .received()
        .iter()
        .rev()
        .find(|m| m.topic.ends_with("/telemetry"))
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
}

/// Waits for telemetry that `pick` accepts.
fn wait_telemetry(district: &District, mut pick: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = telemetry(district).filter(|t| pick(t)) {
            return t;
        }
        assert!(Instant::now() < deadline, "waited {WAIT:?} for telemetry; the latest: {:?}", telemetry(district));
        std::thread::sleep(Duration::from_millis(100));
    }
}

const ACTIONS: [&str; 3] = ["hold", "secure", "lockdown"];

#[test]
fn a_long_broker_outage_queues_hundreds_of_alerts_and_loses_none() {
    let mut broker = Mosquitto::start(MosquittoOptions::default()).unwrap();
    let district = District::connect(broker.port(), None, true);
    let site = Site::new(&remote(&broker));
    let mut vigild = site.start();
    // The raise and the automatic Secure: two alerts.
    district.wait_alerts("the raise", WAIT * 2, |a| deduplicated(a).len() >= 2);
    let before = telemetry(&district).expect("telemetry while connected");

    broker.kill();
    let outage = Instant::now();
    for n in 0..300 {
        vigild.console(&format!("action 1 {}", ACTIONS[n % 3]));
    }
    std::thread::sleep(Duration::from_secs(6));
    let down_for = outage.elapsed();
    broker.restart().unwrap();

    // Every transition the store recorded (the raise, pending, the verification
    // the first action implies, 300 actions): every id, in order, once each after dedupe.
    let persisted = site.store().load().unwrap().open[0].transitions;
    assert_eq!(persisted, 303, "the console commands did not all run");
    let expected = expected_ids(1, persisted - 1);
    let alerts =
        district.wait_alerts("every alert after the outage", WAIT * 3, |a| deduplicated(a).len() >= expected.len());
    assert_eq!(deduplicated(&alerts), expected, "alerts missing, duplicated out of order, or extra");

    // The cameras kept running through the outage, and the outbox drained once acknowledged.
    let after = wait_telemetry(&district, |t| t["outbox"]["depth"] == 0);
    assert_eq!(after["outbox"]["refused"], 0);
    assert_eq!(after["cameras"][0]["state"], "streaming", "{after}");
    let inferred =
        after["detector"]["inferences"].as_u64().unwrap() - before["detector"]["inferences"].as_u64().unwrap();
    // 5 fps for the outage and more; half of that proves the pipeline never waited for the network.
    assert!(
        inferred as f64 >= 2.5 * down_for.as_secs_f64(),
        "only {inferred} inferences in {down_for:?}: the camera stalled"
    );
    drop(vigild);
}

#[test]
fn sigkill_mid_send_loses_nothing_and_the_will_is_told_from_the_next_birth() {
    let broker = Mosquitto::start(MosquittoOptions::default()).unwrap();
    let district = District::connect(broker.port(), None, true);
    let site = Site::new(&remote(&broker));
    let mut vigild = site.start();
    district.wait_alerts("the raise", WAIT * 2, |a| deduplicated(a).len() >= 2);
    for n in 0..150 {
        vigild.console(&format!("action 1 {}", ACTIONS[n % 3]));
    }
    std::thread::sleep(Duration::from_millis(150));
    vigild.kill9();

    // Every transition the store kept must reach the district after the restart.
    let persisted = site.store().load().unwrap().open[0].transitions;
    assert!(persisted > 2, "no command was processed before the kill");
    let mut vigild = site.start();
    let expected = expected_ids(1, persisted - 1);
    let alerts = district.wait_alerts("every persisted alert after the restart", WAIT * 3, |a| {
        expected.iter().all(|id| deduplicated(a).contains(id))
    });
    let got = deduplicated(&alerts);
    assert_eq!(&got[..expected.len()], &expected[..], "lost or reordered alerts across SIGKILL");

    // The broker published the dead run's will; the new run's birth has a higher session.
    let statuses = || -> Vec<Value> {
        district
            .received()
            .iter()
            .filter(|m| m.topic.ends_with("/status"))
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect()
    };
    let will = district.wait_for("the killed run's will", WAIT, |m| {
        m.topic.ends_with("/status")
            && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|s| s["reason"] == "connection-lost")
    });
    let will: Value = serde_json::from_slice(&will.payload).unwrap();
    let reborn = district.wait_for("the new run's birth", WAIT * 2, |m| {
        m.topic.ends_with("/status")
            && serde_json::from_slice::<Value>(&m.payload)
                .is_ok_and(|s| s["online"] == true && s["boot_id"] != will["boot_id"])
    });
    let birth: Value = serde_json::from_slice(&reborn.payload).unwrap();
    assert!(statuses().len() >= 3, "birth, will, birth: {:?}", statuses());
    assert!(birth["session"].as_u64() > will["session"].as_u64(), "stale will vs fresh birth: {will} {birth}");
    vigild.terminate();
    let goodbye = district.wait_for("the offline status of a clean shutdown", WAIT, |m| {
        m.topic.ends_with("/status")
            && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|s| s["reason"] == "shutdown")
    });
    let last: Value = serde_json::from_slice(&goodbye.payload).unwrap();
    assert_eq!(last["session"], birth["session"]);
}

fn cmd(district: &District, name: &str, payload: Value, correlation: &str) -> Value {
    district.command(name, &serde_json::to_vec(&payload).unwrap(), correlation, Some(30));
    district.response(correlation, WAIT)
}

#[test]
fn commands_are_answered_once_each_and_bad_ones_refused() {
    let broker = Mosquitto::start(MosquittoOptions::default()).unwrap();
    let district = District::connect(broker.port(), None, false);
    let site = Site::new(&remote(&broker));
    let vigild = site.start();
    district.wait_alerts("the raise", WAIT * 2, |a| deduplicated(a).len() >= 2);

    let verify = command_json("r-verify", "sro@district", json!({"incident": 1}));
    district.command("incident.verify", &verify, "c-1", Some(30));
    let r = district.response("c-1", WAIT);
    assert_eq!((r["request_id"].as_str(), r["ok"].as_bool()), (Some("r-verify"), Some(true)), "{r}");
    // The same request id again: the same answer, not a second execution (a second verify would be refused).
    district.command("incident.verify", &verify, "c-2", Some(30));
    assert_eq!(district.response("c-2", WAIT)["ok"], true);
    let audit = site.store().audit(vigil_core::incident::IncidentId(1)).unwrap();
    let verified: Vec<_> = audit.iter().filter(|e| e.to.as_deref() == Some("confirmed")).collect();
    assert_eq!(verified.len(), 1, "executed twice: {audit:?}");
    assert_eq!(verified[0].actor, "operator:sro@district");

    for (name, payload, code) in [
        ("incident.verify", b"{not json".to_vec(), "malformed"),
        ("incident.verify", vec![b' '; 70_000], "too-large"),
        ("incident.launch", command_json("r-x", "sro", json!({})), "unknown-command"),
        ("incident.verify", command_json("r-y", "sro", json!({})), "missing-field"),
        ("incident.action", command_json("r-z", "sro", json!({"incident": 1, "action": "panic"})), "bad-argument"),
        ("incident.dismiss", command_json("r-w", "sro", json!({"incident": 99})), "unknown-incident"),
        ("snapshot", command_json("r-v", "sro", json!({"camera": "roof"})), "bad-argument"),
    ] {
        let corr = format!("bad-{code}");
        district.command(name, &payload, &corr, Some(30));
        let r = district.response(&corr, WAIT);
        assert_eq!((r["ok"].as_bool(), r["error"]["code"].as_str()), (Some(false), Some(code)), "{name}: {r}");
    }
    // A snapshot of a real camera: the JPEG first, then the answer naming it.
    let r = cmd(
        &district,
        "snapshot",
        json!({"request_id": "r-snap", "operator": "sro", "args": {"camera": "hall-1"}}),
        "c-snap",
    );
    assert_eq!(r["ok"], true, "{r}");
    let jpeg = district.wait_for("the snapshot", WAIT, |m| m.topic.ends_with("/snapshots/hall-1"));
    assert_eq!(&jpeg.payload[..2], &[0xFF, 0xD8], "not a JPEG");
    assert_eq!(r["data"]["bytes"].as_u64(), Some(jpeg.payload.len() as u64));
    // Still alive and answering after all of that.
    assert_eq!(cmd(&district, "rebirth", json!({"request_id": "r-re", "operator": "sro"}), "c-re")["ok"], true);
    drop(vigild);
}

#[test]
fn expired_commands_are_never_run_and_others_wait_for_the_device() {
    let broker = Mosquitto::start(MosquittoOptions::default()).unwrap();
    let district = District::connect(broker.port(), None, false);
    let site = Site::new(&remote(&broker));
    let mut vigild = site.start();
    district.wait_alerts("the raise", WAIT * 2, |a| deduplicated(a).len() >= 2);
    vigild.terminate(); // clean: the broker keeps the device's session and queues its commands

    let stale = command_json("r-stale", "sro", json!({"incident": 1, "action": "lockdown"}));
    district.command("incident.action", &stale, "c-stale", Some(1));
    let fresh = command_json("r-fresh", "sro", json!({"incident": 1, "action": "hold"}));
    district.command("incident.action", &fresh, "c-fresh", Some(120));
    std::thread::sleep(Duration::from_secs(3));
    let _vigild = site.start();
    assert_eq!(district.response("c-fresh", WAIT * 2)["ok"], true);
    std::thread::sleep(Duration::from_secs(1));
    assert!(!district.has_response("c-stale"), "an expired command was executed");
    let audit = site.store().audit(vigil_core::incident::IncidentId(1)).unwrap();
    assert!(
        audit.iter().all(|e| e.to.as_deref() != Some("responding:lockdown")),
        "the expired lockdown ran: {audit:?}"
    );
}

#[test]
fn the_broker_acl_is_the_authorization_boundary() {
    let acl = format!(
        "user device\ntopic readwrite vigil/v1/{DEVICE}/#\n\n\
         user operator\ntopic write vigil/v1/+/cmd/#\ntopic read vigil/v1/#\n\n\
         user viewer\ntopic read vigil/v1/#\n"
    );
    let users = [("device", "d-pw"), ("operator", "o-pw"), ("viewer", "v-pw")];
    let opts = MosquittoOptions {
        users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
        acl: Some(acl),
        allow_anonymous: false,
        ..MosquittoOptions::default()
    };
    let broker = Mosquitto::start(opts).unwrap();
    let operator = District::connect(broker.port(), Some(("operator", "o-pw")), false);
    let viewer = District::connect(broker.port(), Some(("viewer", "v-pw")), false);
    let site = Site::new(&format!("{}\nusername = \"device\"\npassword = \"d-pw\"", remote(&broker)));
    let vigild = site.start();
    operator.wait_alerts("the raise", WAIT * 2, |a| deduplicated(a).len() >= 2);

    viewer.command(
        "incident.action",
        &command_json("r-v", "viewer", json!({"incident": 1, "action": "lockdown"})),
        "c-viewer",
        Some(30),
    );
    operator.command(
        "incident.action",
        &command_json("r-o", "operator", json!({"incident": 1, "action": "hold"})),
        "c-op",
        Some(30),
    );
    assert_eq!(operator.response("c-op", WAIT)["ok"], true);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !viewer.has_response("c-viewer") && !operator.has_response("c-viewer"),
        "the broker let a viewer's command through"
    );
    let audit = site.store().audit(vigil_core::incident::IncidentId(1)).unwrap();
    assert!(audit.iter().all(|e| !e.actor.contains("viewer")), "{audit:?}");
    drop(vigild);

    // Wrong credentials: the device says so in words and keeps its alerts.
    let site = Site::new(&format!("{}\nusername = \"device\"\npassword = \"wrong\"", remote(&broker)));
    let vigild = site.start();
    let deadline = Instant::now() + WAIT;
    while !vigild.log().contains("refused the connection") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Mosquitto answers a wrong password with "not authorized" under MQTT 5.
    let log = vigild.log();
    assert!(
        log.contains("refused the connection: not authorized") || log.contains("bad user name or password"),
        "{log}"
    );
    assert!(!vigild.log().contains("\"wrong\""), "the password leaked into the log");
}

#[test]
fn mutual_tls_connects_with_the_device_certificate_and_explains_a_refusal() {
    let broker = Mosquitto::start(MosquittoOptions { tls: true, ..MosquittoOptions::default() }).unwrap();
    let certs = broker.certs().unwrap().clone();
    let tls = |cert: &std::path::Path, key: &std::path::Path| {
        format!(
            "broker = \"mqtts://127.0.0.1:{}\"\nca = '{}'\ncert = '{}'\nkey = '{}'\ntelemetry_s = 1",
            broker.port(),
            certs.ca.display(),
            cert.display(),
            key.display()
        )
    };
    let site = Site::new(&tls(&certs.client_cert, &certs.client_key));
    let vigild = site.start();
    let deadline = Instant::now() + WAIT * 2;
    while !vigild.log().contains("connected to the district broker") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(vigild.log().contains("connected to the district broker"), "{}", vigild.log());
    drop(vigild);

    let site = Site::new(&tls(&certs.rogue_client_cert, &certs.rogue_client_key));
    let vigild = site.start();
    let deadline = Instant::now() + WAIT;
    while !vigild.log().contains("TLS with mqtts://") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = vigild.log();
    assert!(log.contains("TLS with mqtts://127.0.0.1") && !log.contains("connected to the district broker"), "{log}");
}

#[test]
fn a_desired_config_is_validated_applied_and_reported() {
    let broker = Mosquitto::start(MosquittoOptions::default()).unwrap();
    let district = District::connect(broker.port(), None, false);
    let site = Site::new(&remote(&broker));
    let mut vigild = site.start();
    district.wait_alerts("the raise", WAIT * 2, |a| deduplicated(a).len() >= 2);
    let text = std::fs::read_to_string(site.config()).unwrap();
    let desired = format!("vigil/v1/{DEVICE}/config/desired");
    let reported = |version: u64| {
        let m = district.wait_for(&format!("config/reported for v{version}"), WAIT, |m| {
            m.topic.ends_with("/config/reported")
                && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|r| r["desired_version"] == version)
        });
        serde_json::from_slice::<Value>(&m.payload).unwrap()
    };

    let bad = text.replace("fps = 5", "fps = 0");
    district.publish(&desired, serde_json::to_vec(&json!({"version": 2, "toml": bad})).unwrap(), true);
    let r = reported(2);
    assert_eq!(r["verdict"], "rejected", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("config/desired v2:")
            && r["error"].as_str().unwrap().contains("fps is 0"),
        "{r}"
    );
    assert_eq!(r["running_version"], 0);
    let rejected_at = r["at"].as_str().unwrap().to_string();
    let t = wait_telemetry(&district, |t| t["at"].as_str().unwrap() > rejected_at.as_str());
    assert_eq!(t["cameras"][0]["state"], "streaming", "the old config must keep running: {t}");

    let good = format!("{text}\n[[camera]]\nid = \"gym-1\"\nsource = {{ kind = \"demo\", scenario = \"quiet\" }}\n");
    district.publish(&desired, serde_json::to_vec(&json!({"version": 3, "toml": good})).unwrap(), true);
    let r = reported(3);
    assert_eq!((r["verdict"].as_str(), r["running_version"].as_u64()), (Some("applied"), Some(3)), "{r}");
    assert_eq!(r["changes"], json!(["camera gym-1 added"]));

    // After a restart the device runs v3 and the retained v3 is "unchanged".
    vigild.terminate();
    district.received(); // keep the history; reported(3) now finds the new report too
    let _vigild = site.start();
    wait_telemetry(&district, |t| t["cameras"].as_array().is_some_and(|c| c.len() == 2));
    let unchanged = district.wait_for("the unchanged report after restart", WAIT, |m| {
        m.topic.ends_with("/config/reported")
            && serde_json::from_slice::<Value>(&m.payload)
                .is_ok_and(|r| r["verdict"] == "unchanged" && r["running_version"] == 3)
    });
    assert!(!unchanged.payload.is_empty());
}

#[test]
fn vigilctl_watches_the_incidents_and_verifies_one_on_the_embedded_broker() {
    use std::io::BufRead;
    let port = crate::daemon::free_port();
    let site = Site::new(&format!("listen = \"127.0.0.1:{port}\"\ntelemetry_s = 1"));
    let vigild = site.start();
    let broker = format!("mqtt://127.0.0.1:{port}");
    let vigilctl = |args: &[&str]| {
        std::process::Command::new(crate::daemon::vigilctl_bin())
            .args(["--broker", &broker, "--operator", "sro@district", "--timeout", "20"])
            .args(args)
            .output()
            .unwrap()
    };
    // The embedded broker keeps no retained alerts for late subscribers, so watch from before the raise;
    // wait for the device's birth first (the broker starts with vigild).
    let deadline = Instant::now() + WAIT;
    while !vigilctl(&["status", DEVICE]).status.success() {
        assert!(Instant::now() < deadline, "vigilctl status never saw the device:\n{}", vigild.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut watch = std::process::Command::new(crate::daemon::vigilctl_bin())
        .args(["--broker", &broker, "--json", "watch", DEVICE])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = crossbeam_channel::unbounded::<Value>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(serde_json::from_str(&line).expect("watch --json prints JSON lines"));
        }
    });
    let stage_seen = |stage: &str| {
        let deadline = Instant::now() + WAIT * 2;
        loop {
            let alert = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("vigilctl watch showed no {stage} alert:\n{}", vigild.log()));
            if alert["stage"] == stage {
                return alert;
            }
        }
    };
    let pending = stage_seen("pending-verification");
    let incident = pending["incident"].as_u64().unwrap().to_string();

    let out = vigilctl(&["incident", "verify", DEVICE, &incident]);
    assert!(out.status.success(), "vigilctl incident verify failed: {}", String::from_utf8_lossy(&out.stderr));
    let confirmed = stage_seen("confirmed");
    assert_eq!(confirmed["actor"], "operator:sro@district");
    assert_eq!(confirmed["active"], json!(["secure", "lockdown"]), "the verification's actions are in force");
    // The playbook's lockdown was dispatched (logged whether or not a plugin subscribes).
    let deadline = Instant::now() + WAIT;
    while !vigild.log().contains("action=activate:lockdown") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(vigild.log().contains("action=activate:lockdown"), "{}", vigild.log());
    // Verifying again is refused with the incident book's code, exit 1.
    let out = vigilctl(&["incident", "verify", DEVICE, &incident]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid-transition"));
    let _ = watch.kill();
    let _ = watch.wait();
}
