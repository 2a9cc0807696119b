//! `vigilctl` end to end, through the built binary, against a real MQTT 5
//! broker (the embedded one from `vigil-broker`, on a free loopback port).
//!
//! [`FakeDevice`] is a thread that plays the device's part over MQTT: it
//! publishes retained status, telemetry and config report, answers commands
//! on their response topic with their correlation data, publishes snapshot
//! JPEGs, reports OS update jobs on the retained `os/update` topic as
//! vigild does, judges pushed configs and records the district's acks. It stands
//! in for `vigild`, whose own end-to-end tests (with the real uplink) run
//! elsewhere (`tests/vigil-e2e`); here it checks that `vigilctl` speaks the
//! wire formats of `vigil-uplink` and maps each outcome to its exit code.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::{Client, Event, MqttOptions};
use serde_json::{Value, json};
use vigil_broker::EmbeddedBroker;
use vigil_uplink::telemetry::CameraHealth;
use vigil_uplink::{Desired, Reported, StatusDoc, Telemetry, Topics, UplinkCommand, Verdict};

/// The fake device's id.
const DEVICE: &str = "test-hs";
/// The only open incident on the fake device.
const OPEN_INCIDENT: u64 = 7;
/// A config the fake device rejects contains this.
const BAD_CONFIG: &str = "fps = 0";
/// The OS update job the fake device ran before the tests (retained on `os/update`).
const OLD_JOB: &str = "os-100";
/// An `os.update` of this bundle is refused as busy.
const BUSY_BUNDLE: &str = "/data/busy.raucb";
/// A bundle whose name contains this fails verification, as one signed by a stranger.
const STRANGER: &str = "stranger";
/// A bundle whose name contains this stays in `verifying` (the device went quiet).
const STALLS: &str = "stalls";
/// How long any one `vigilctl` run may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A JPEG-shaped payload: start and end markers around filler.
fn jpeg() -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..20_000u32).map(|i| (i % 251) as u8));
    bytes.extend([0xFF, 0xD9]);
    bytes
}

/// What the fake device saw.
#[derive(Default)]
struct Seen {
    /// (command name, operator, correlation data present, message expiry interval).
    commands: Vec<(String, String, bool, Option<u32>)>,
    /// Alert ids acknowledged on `ack`.
    acks: Vec<String>,
}

/// Plays the device's part over MQTT; see the module docs.
struct FakeDevice {
    client: Client,
    topics: Topics,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDevice {
    /// Connects, subscribes like vigild does, publishes its retained documents and waits until the broker has them.
    fn start(broker: &EmbeddedBroker) -> FakeDevice {
        let topics = Topics::new(DEVICE).unwrap();
        let addr = broker.addr();
        let mut options = MqttOptions::new("fake-vigild", addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        // As vigild's uplink: plugin.install messages are far above rumqttc's default limit.
        options.set_max_packet_size(Some(vigil_link::MAX_PACKET));
        let (client, mut connection) = Client::new(options, 64);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let (client, topics, seen) = (client.clone(), topics.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut running = 2u64;
                let mut pubacks = 0;
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let filters = [topics.command_filter(), topics.config_desired(), topics.ack()]
                                .map(|f| Filter::new(f, QoS::AtLeastOnce));
                            client.try_subscribe_many(filters).unwrap();
                            let retained = [
                                (topics.status(), status().to_json()),
                                (topics.telemetry(), telemetry().to_json()),
                                (topics.config_reported(), report(running, None, None, vec![]).to_json()),
                                (
                                    topics.os_update(),
                                    job(
                                        OLD_JOB,
                                        "/data/vigil-1.9.raucb",
                                        "succeeded",
                                        None,
                                        "slot A is healthy and marked good",
                                        None,
                                    ),
                                ),
                            ];
                            for (topic, payload) in retained {
                                client.try_publish(topic, QoS::AtLeastOnce, true, payload).unwrap();
                            }
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            pubacks += 1;
                            if pubacks == 4 {
                                let _ = ready_tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let topic = String::from_utf8_lossy(&p.topic).into_owned();
                            let props = p.properties.clone().unwrap_or_default();
                            if topic == topics.ack() {
                                seen.lock().unwrap().acks.push(String::from_utf8_lossy(&p.payload).into_owned());
                            } else if topic == topics.config_desired() {
                                on_desired(&client, &topics, &mut running, &p.payload, p.retain);
                            } else if let Some(name) = topics.parse_command_topic(&topic) {
                                seen.lock().unwrap().commands.push((
                                    name.to_string(),
                                    vigil_uplink::parse_command(name, &p.payload)
                                        .map(|r| r.operator)
                                        .unwrap_or_default(),
                                    props.correlation_data.is_some(),
                                    props.message_expiry_interval,
                                ));
                                on_command(&client, &topics, name, &p.payload, props);
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the fake device connects and publishes its retained state");
        FakeDevice { client, topics, seen, thread: Some(thread) }
    }

    /// Publishes an alert as vigild does (QoS 1, not retained).
    fn alert(&self, id: &str, incident: u64, stage: &str) {
        let alert = json!({
            "alert_id": id, "device": DEVICE, "incident": incident, "seq": 0, "stage": stage,
            "previous_stage": null, "at": "2027-01-15T08:00:05.000Z", "actor": "system", "reason": "handgun seen",
            "drill": true, "camera": {"id": "hall-1", "name": "East hall"},
            "location": {"building": "A", "floor": "1", "zone": "east-hall"}, "label": "handgun", "score": 0.91,
            "bbox": {"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0}, "active": ["secure"],
            "times": {}, "glass_to_incident_ms": 37,
            "snapshot_topic": self.topics.snapshot(incident),
        });
        self.client
            .publish(self.topics.alerts(), QoS::AtLeastOnce, false, serde_json::to_vec(&alert).unwrap())
            .unwrap();
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn status() -> StatusDoc {
    StatusDoc {
        online: true,
        session: 3,
        boot_id: "boot-1".into(),
        version: "0.1.0".into(),
        started: "2027-01-15T08:00:00.000Z".into(),
        uptime_s: Some(42),
        reason: None,
    }
}

fn telemetry() -> Telemetry {
    let camera =
        |id: &str, state: &str| CameraHealth { id: id.into(), state: state.into(), fps: 15.0, ..Default::default() };
    let mut t = Telemetry {
        at: "2027-01-15T08:05:00.000Z".into(),
        uptime_s: 300,
        cameras: vec![camera("hall-1", "streaming"), camera("gym", "stalled")],
        ..Default::default()
    };
    t.detector.fps = 29.5;
    t
}

fn report(running: u64, desired: Option<u64>, verdict: Option<Verdict>, changes: Vec<String>) -> Reported {
    let error = (verdict == Some(Verdict::Rejected))
        .then(|| "config/desired line 2: cameras[0].fps is 0; give 1 to 30".to_string());
    Reported {
        running_version: running,
        desired_version: desired,
        verdict,
        error,
        changes,
        at: "2027-01-15T09:00:00.000Z".into(),
    }
}

/// An OS update job report as vigild publishes it (`vigil_system::update::Job`).
fn job(
    id: &str,
    bundle: &str,
    phase: &str,
    progress: Option<u8>,
    detail: &str,
    error: Option<(&str, &str)>,
) -> Vec<u8> {
    let installed = matches!(phase, "rebooting" | "succeeded");
    let doc = json!({
        "id": id, "source": {"kind": "path", "location": bundle}, "expected_version": "2.0", "phase": phase,
        "progress": progress, "detail": detail, "bundle_path": bundle,
        "bundle_version": (phase != "queued").then_some("2.0"), "from_boot": "A",
        "to_slot": installed.then_some("rootfs.1"), "to_boot": installed.then_some("B"), "reboot_boot_id": null,
        "error": error.map(|(code, message)| json!({"code": code, "message": message})),
    });
    serde_json::to_vec(&doc).unwrap()
}

/// Runs an `os.update` as vigild does: reports `queued` before answering,
/// then each phase (and install progress) on the retained `os/update`
/// topic; a [`STRANGER`]'s bundle fails verification as RAUC refuses it.
fn os_update(client: &Client, topics: &Topics, id: &str, bundle: &str, answer: impl FnOnce(Value)) {
    let report = |phase: &str, progress: Option<u8>, detail: &str, error: Option<(&str, &str)>| {
        client
            .try_publish(topics.os_update(), QoS::AtLeastOnce, true, job(id, bundle, phase, progress, detail, error))
            .unwrap();
    };
    report("queued", None, "", None);
    answer(json!({"job": id}));
    report("verifying", None, "RAUC is checking the bundle's signature", None);
    if bundle.contains(STALLS) {
        return;
    }
    if bundle.contains(STRANGER) {
        let why = "RAUC refused the bundle: signature verification failed: unable to get local issuer certificate";
        return report("failed", None, why, Some(("rauc-refused", why)));
    }
    report("installing", None, "installing version 2.0", None);
    for percent in [0, 50, 100] {
        report("installing", Some(percent), "Copying image to rootfs.1", None);
    }
    report("rebooting", None, "installed version 2.0 into rootfs.1 (boot B); rebooting", None);
}

/// Answers a command the way vigild's district module does.
fn on_command(client: &Client, topics: &Topics, name: &str, payload: &[u8], props: PublishProperties) {
    let Some(response_topic) = props.response_topic else { return };
    let answer = |request_id: &str, result: Result<(), (&str, &str)>, data: Option<Value>| {
        let response = vigil_uplink::response_with_data(request_id, result, data);
        let properties = PublishProperties { correlation_data: props.correlation_data.clone(), ..Default::default() };
        client
            .try_publish_with_properties(response_topic.clone(), QoS::AtLeastOnce, false, response, properties)
            .unwrap();
    };
    let request = match vigil_uplink::parse_command(name, payload) {
        Ok(r) => r,
        Err(e) => return answer(e.request_id.as_deref().unwrap_or(""), Err((e.code(), &e.message)), None),
    };
    let id = request.request_id.as_str();
    match &request.command {
        UplinkCommand::Incident(_) => {
            let args: Value = serde_json::from_slice(payload).unwrap();
            match args["args"]["incident"].as_u64() {
                Some(n) if n != OPEN_INCIDENT => {
                    answer(id, Err(("unknown-incident", "that incident is not open")), None)
                }
                _ => answer(id, Ok(()), None),
            }
        }
        UplinkCommand::Snapshot { camera } if camera.as_str() == "hall-1" => {
            let frames = topics.camera_snapshot(camera.as_str());
            let bytes = jpeg();
            let len = bytes.len();
            client.try_publish(frames.clone(), QoS::AtLeastOnce, false, bytes).unwrap();
            answer(id, Ok(()), Some(json!({"topic": frames, "bytes": len})));
        }
        UplinkCommand::Snapshot { camera } => {
            answer(id, Err(("unknown-camera", &format!("no camera {:?} in the config", camera.as_str()))), None)
        }
        UplinkCommand::Rebirth | UplinkCommand::LogLevel(_) => answer(id, Ok(()), None),
        UplinkCommand::PluginInstall { package } if package.starts_with(b"VIGILPKG") => {
            let data = json!({"name": "door-lock", "version": "1.2.0", "replaced": "1.1.0", "denied": ["serial relay"], "bytes": package.len()});
            answer(id, Ok(()), Some(data))
        }
        UplinkCommand::PluginUpload(part) if part.part + 1 < part.parts => {
            answer(id, Ok(()), Some(json!({"upload": part.upload, "received": part.part + 1, "parts": part.parts})))
        }
        UplinkCommand::PluginUpload(part) => {
            let data = json!({"name": "door-lock", "version": "1.2.0", "replaced": "1.1.0", "denied": ["serial relay"], "parts": part.parts});
            answer(id, Ok(()), Some(data))
        }
        UplinkCommand::PluginInstall { .. } => {
            answer(id, Err(("bad-package", "not a Vigil plugin package (no VIGILPKG header)")), None)
        }
        UplinkCommand::PluginRemove { name } | UplinkCommand::PluginEnabled { name, .. } if name == "door-lock" => {
            answer(id, Ok(()), None)
        }
        UplinkCommand::PluginRemove { name } | UplinkCommand::PluginEnabled { name, .. } => {
            answer(id, Err(("unknown-plugin", &format!("no plugin named {name} is installed"))), None)
        }
        UplinkCommand::PluginList => {
            let plugins = json!([{
                "name": "door-lock", "version": "1.2.0", "state": "running", "calls": 40, "errors": 2, "traps": 1,
                "restarts": 1, "avg_latency_us": 1200, "memory_bytes": 2_097_152, "status": {"doors": "locked"},
            }]);
            answer(id, Ok(()), Some(json!({"plugins": plugins})))
        }
        UplinkCommand::OsUpdate { bundle, .. } if bundle == BUSY_BUNDLE => {
            answer(id, Err(("busy", "update job os-1 is still installing; wait for it to finish")), None)
        }
        UplinkCommand::OsUpdate { bundle, .. } => {
            os_update(client, topics, &format!("os-{id}"), bundle, |data| answer(id, Ok(()), Some(data)))
        }
    }
}

/// Judges a desired config: rejected if it contains [`BAD_CONFIG`], else applied.
fn on_desired(client: &Client, topics: &Topics, running: &mut u64, payload: &[u8], retain: bool) {
    let Ok(desired) = Desired::parse(payload) else { return };
    if retain && desired.version <= *running {
        return; // already judged
    }
    let report = if desired.toml.contains(BAD_CONFIG) {
        report(*running, Some(desired.version), Some(Verdict::Rejected), vec![])
    } else {
        *running = desired.version;
        report(*running, Some(desired.version), Some(Verdict::Applied), vec!["camera gym added".into()])
    };
    client.try_publish(topics.config_reported(), QoS::AtLeastOnce, true, report.to_json()).unwrap();
}

fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).expect("the embedded broker starts")
}

fn url(broker: &EmbeddedBroker) -> String {
    format!("mqtt://{}", broker.addr())
}

/// `vigilctl` with a clean environment, talking to `broker_url`.
fn command(broker_url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigilctl"));
    c.args(["--broker", broker_url])
        .args(args)
        .env_remove("VIGIL_BROKER")
        .env_remove("VIGIL_PASSWORD")
        .env("VIGIL_OPERATOR", "sro@district")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// The result of one run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `vigilctl` to completion (killed after [`RUN_LIMIT`]).
fn vigilctl(broker_url: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = command(broker_url, args).spawn().expect("vigilctl runs");
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        took: started.elapsed(),
    };
    println!(
        "vigilctl {args:?} -> {} in {:?}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.took, run.stdout, run.stderr
    );
    run
}

#[test]
fn commands_the_device_carries_out_exit_0() {
    let broker = broker();
    let device = FakeDevice::start(&broker);
    let url = url(&broker);
    for (args, expected) in [
        (&["incident", "verify", DEVICE, "7"][..], "test-hs: incident.verify incident=7: done"),
        (&["incident", "action", DEVICE, "7", "lockdown"], "test-hs: incident.action action=lockdown incident=7: done"),
        (&["incident", "all-clear", DEVICE, "7"], "test-hs: incident.all-clear incident=7: done"),
        (&["drill", "start", DEVICE], "test-hs: drill.start: done"),
        (&["rebirth", DEVICE], "test-hs: rebirth: done"),
        (&["log-level", DEVICE, "debug"], "test-hs: log-level level=debug: done"),
    ] {
        let run = vigilctl(&url, args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout.trim(), expected);
    }
    let json = vigilctl(&url, &["--json", "incident", "dismiss", DEVICE, "7", "--timeout", "5"]);
    assert_eq!(json.code, 0);
    let response: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(response["ok"], true);
    assert!(response["request_id"].as_str().unwrap().starts_with("vigilctl-"));

    let seen = device.seen();
    assert_eq!(seen.commands.len(), 7);
    let (name, operator, correlated, expiry) = seen.commands.last().unwrap();
    assert_eq!((name.as_str(), operator.as_str(), *correlated), ("incident.dismiss", "sro@district", true));
    assert!(expiry.is_some_and(|e| e <= 5), "the command expires when vigilctl stops waiting: {expiry:?}");
}

#[test]
fn plugin_install_list_and_remove_talk_to_the_device() {
    let broker = broker();
    let _device = FakeDevice::start(&broker);
    let url = url(&broker);
    let dir = tempfile::tempdir().unwrap();
    // Bigger than any other command; sent whole, still within the embedded broker's 1 MiB packet limit.
    let mut package = b"VIGILPKG".to_vec();
    package.resize(700_000, 0x5A);
    let file = dir.path().join("door-lock.vpk");
    std::fs::write(&file, &package).unwrap();
    let install = vigilctl(&url, &["plugin", "install", DEVICE, path(&file)]);
    assert_eq!(install.code, 0, "{}", install.stderr);
    assert_eq!(
        install.stdout,
        "test-hs: installed door-lock 1.2.0 (replaced 1.1.0)\ndenied (not in its grant on test-hs): serial relay\n"
    );
    // By default it travels in 64 KiB parts (the fake device answers the last with the part count);
    // with a larger chunk size, whole.
    let json = vigilctl(&url, &["--json", "plugin", "install", DEVICE, path(&file)]);
    let response: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(response["data"]["parts"], 700_000usize.div_ceil(64 * 1024), "{response}");
    let json = vigilctl(&url, &["--json", "plugin", "install", DEVICE, path(&file), "--chunk-kib", "1000"]);
    let response: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(response["data"]["bytes"], package.len(), "the device got every byte");

    std::fs::write(&file, b"not a package").unwrap();
    let refused = vigilctl(&url, &["plugin", "install", DEVICE, path(&file)]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("refused: bad-package: not a Vigil plugin package"), "{}", refused.stderr);

    let list = vigilctl(&url, &["plugin", "list", DEVICE]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.starts_with("NAME       VERSION  STATE    CALLS  ERRORS  TRAPS  RESTARTS  AVG LATENCY  MEMORY\n")
    );
    assert!(list.stdout.contains("door-lock  1.2.0    running  40     2       1      1         1200 µs      2.0 MiB"));
    let json = vigilctl(&url, &["--json", "plugin", "list", DEVICE]);
    let plugins: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(plugins[0]["status"]["doors"], "locked");

    let disabled = vigilctl(&url, &["plugin", "disable", DEVICE, "door-lock"]);
    assert_eq!((disabled.code, disabled.stdout.trim()), (0, "test-hs: plugin.disable name=door-lock: done"));
    let enabled = vigilctl(&url, &["plugin", "enable", DEVICE, "fog-horn"]);
    assert_eq!(enabled.code, 1);
    assert!(enabled.stderr.contains("refused: unknown-plugin"), "{}", enabled.stderr);
    let removed = vigilctl(&url, &["plugin", "remove", DEVICE, "door-lock"]);
    assert_eq!((removed.code, removed.stdout.trim()), (0, "test-hs: plugin.remove name=door-lock: done"));
    let unknown = vigilctl(&url, &["plugin", "remove", DEVICE, "fog-horn"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("refused: unknown-plugin"), "{}", unknown.stderr);
}

#[test]
fn a_refusal_exits_1_with_the_devices_code() {
    let broker = broker();
    let _device = FakeDevice::start(&broker);
    let run = vigilctl(&url(&broker), &["incident", "verify", DEVICE, "99"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("refused: unknown-incident: that incident is not open"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn a_device_that_never_answers_exits_3_within_the_timeout() {
    let broker = broker();
    let run = vigilctl(&url(&broker), &["incident", "verify", "ghost-ms", "7", "--timeout", "2"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
    assert!(run.stderr.contains("timed out: "), "{}", run.stderr);
    assert!(run.stderr.contains("vigilctl status ghost-ms"), "suggests what to check: {}", run.stderr);
}

#[test]
fn a_broker_that_is_down_exits_4_with_the_reason() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = vigilctl(&format!("mqtt://127.0.0.1:{port}"), &["status", "--timeout", "3"]);
    assert_eq!(run.code, 4);
    assert!(run.stderr.contains(&format!("nothing accepts connections at mqtt://127.0.0.1:{port}")), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let run = vigilctl("mqtt://127.0.0.1:1", &["incident", "verify", "bad/id", "7"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("invalid device id"), "{}", run.stderr);
    let missing = vigilctl("mqtt://127.0.0.1:1", &["config", "push", DEVICE, "/nonexistent/vigil.toml"]);
    assert_eq!(missing.code, 2, "the file is read before connecting");
    assert!(missing.stderr.contains("cannot read the config file /nonexistent/vigil.toml"), "{}", missing.stderr);
    let help = vigilctl("mqtt://127.0.0.1:1", &["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes:") && help.stdout.contains("3  timed out"), "{}", help.stdout);
}

#[test]
fn status_lists_the_device() {
    let broker = broker();
    let _device = FakeDevice::start(&broker);
    let url = url(&broker);
    let all = vigilctl(&url, &["status"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    let row = all.stdout.lines().find(|l| l.starts_with(DEVICE)).expect("a row for the device");
    for cell in ["online, up 5m00s", "3", "0.1.0", "1 streaming, 1 stalled", "29.5 fps", "v2"] {
        assert!(row.contains(cell), "{cell:?} in {row:?}");
    }
    assert!(all.took < Duration::from_secs(4), "collects retained messages for about a second: {:?}", all.took);

    let one = vigilctl(&url, &["status", DEVICE, "--json"]);
    assert_eq!(one.code, 0);
    let doc: Value = serde_json::from_str(one.stdout.trim()).unwrap();
    assert_eq!(doc["device"], DEVICE);
    assert_eq!(doc["status"]["session"], 3);
    assert_eq!(doc["telemetry"]["detector"]["fps"], 29.5);
    assert_eq!(doc["reported"]["running_version"], 2);

    let ghost = vigilctl(&url, &["status", "ghost-ms"]);
    assert_eq!(ghost.code, 3);
    assert!(ghost.stderr.contains("no status from ghost-ms: is the device id right"), "{}", ghost.stderr);
}

#[test]
fn config_push_is_applied_or_rejected() {
    let broker = broker();
    let _device = FakeDevice::start(&broker);
    let url = url(&broker);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&good, "[device]\nid = \"test-hs\"\n").unwrap();
    std::fs::write(&bad, "[[cameras]]\nfps = 0\n").unwrap();

    let applied = vigilctl(&url, &["config", "push", DEVICE, path(&good)]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert_eq!(applied.stdout, "test-hs applied config v3\n  - camera gym added\n", "v3 is one above the running v2");

    let rejected = vigilctl(&url, &["config", "push", DEVICE, path(&bad)]);
    assert_eq!(rejected.code, 1);
    assert!(
        rejected.stderr.contains("rejected: test-hs rejected config v4: config/desired line 2: cameras[0].fps is 0"),
        "{}",
        rejected.stderr
    );
    assert!(rejected.stderr.contains("it keeps running v3"), "{}", rejected.stderr);

    let get = vigilctl(&url, &["config", "get", DEVICE]);
    assert_eq!(get.code, 0, "{}", get.stderr);
    assert!(get.stdout.starts_with("test-hs runs config v3\ndesired config v4: rejected"), "{}", get.stdout);
    assert!(get.stdout.contains("retained desired config on the broker: v4"), "{}", get.stdout);

    let again = vigilctl(&url, &["config", "push", DEVICE, path(&good), "--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let verdict: Value = serde_json::from_str(again.stdout.trim()).unwrap();
    assert_eq!(verdict["version"], 5, "above the rejected v4");
    assert_eq!(verdict["reported"]["verdict"], "applied");

    let stale = vigilctl(&url, &["config", "push", DEVICE, path(&good), "--version", "5"]);
    assert_eq!(stale.code, 2, "v5 already runs");
}

#[test]
fn snapshot_writes_the_jpeg() {
    let broker = broker();
    let _device = FakeDevice::start(&broker);
    let url = url(&broker);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hall.jpg");
    let run = vigilctl(&url, &["snapshot", DEVICE, "hall-1", "-o", path(&file)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(&file).unwrap(), jpeg());
    assert!(
        run.stdout.starts_with(&format!("wrote {} bytes from test-hs camera hall-1", jpeg().len())),
        "{}",
        run.stdout
    );

    let unknown = vigilctl(&url, &["snapshot", DEVICE, "roof", "-o", path(&dir.path().join("roof.jpg"))]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("refused: unknown-camera"), "{}", unknown.stderr);
    assert!(!dir.path().join("roof.jpg").exists());
}

#[test]
fn watch_prints_each_alert_once_and_acks_every_copy() {
    let broker = broker();
    let device = FakeDevice::start(&broker);
    let mut watch = Watching::start(&url(&broker), &["watch", "--json", "--ack"]);
    watch.stderr_line_containing("watching alerts and status of every device");

    device.alert("test-hs:7:0", 7, "detected");
    device.alert("test-hs:7:0", 7, "detected"); // republished after a reconnect
    device.alert("test-hs:7:1", 7, "pending-verification");
    let first: Value = serde_json::from_str(&watch.stdout_line()).unwrap();
    let second: Value = serde_json::from_str(&watch.stdout_line()).unwrap();
    assert_eq!(first["alert_id"], "test-hs:7:0");
    assert_eq!(second["alert_id"], "test-hs:7:1", "the repeated alert is shown once");
    assert_eq!(first["drill"], true);

    let deadline = Instant::now() + Duration::from_secs(5);
    while device.seen().acks.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(device.seen().acks, ["test-hs:7:0", "test-hs:7:0", "test-hs:7:1"], "every copy is acknowledged");
}

#[test]
fn watch_shows_alerts_and_status_as_lines() {
    let broker = broker();
    let device = FakeDevice::start(&broker);
    let mut watch = Watching::start(&url(&broker), &["watch", DEVICE]);
    watch.stderr_line_containing("watching alerts and status of test-hs");
    let online = watch.stdout_line();
    assert!(online.ends_with("test-hs  online (session 3, vigild 0.1.0, started 2027-01-15 08:00:00Z)"), "{online}");
    device.alert("test-hs:8:0", 8, "detected");
    let alert = watch.stdout_line();
    assert_eq!(
        alert,
        "08:00:05Z  DRILL  test-hs  incident 8  detected  handgun 0.91  East hall  building A, floor 1, east-hall  \
         active: secure  by system: handgun seen"
    );
    assert!(device.seen().acks.is_empty(), "no --ack, no acks");
}

#[test]
fn os_update_follows_the_job_until_the_device_reboots() {
    let broker = broker();
    let _device = FakeDevice::start(&broker);
    let url = url(&broker);
    let before = vigilctl(&url, &["os", "status", DEVICE]);
    assert_eq!(before.code, 0, "{}", before.stderr);
    assert_eq!(
        before.stdout,
        "test-hs: OS update os-100: succeeded\nbundle: /data/vigil-1.9.raucb\nversion: 2.0\nslot: rootfs.1 (boot B), from boot A\n\
         detail: slot A is healthy and marked good\n"
    );

    let run = vigilctl(&url, &["os", "update", DEVICE, "/data/vigil-2.0.raucb", "--version", "2.0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let id = lines[0].strip_prefix("test-hs: os.update accepted: job ").expect("the job id first");
    assert!(id.starts_with("os-vigilctl-"), "{id}");
    assert_eq!(
        lines[1..],
        [
            "queued",
            "verifying: RAUC is checking the bundle's signature",
            "installing: installing version 2.0",
            "rebooting: installed version 2.0 into rootfs.1 (boot B); rebooting",
            "test-hs is rebooting into version 2.0 (slot B); it keeps it only if its health check passes: \
             see `vigilctl os status test-hs`",
        ],
        "each phase once, the retained job from before not at all"
    );

    let after = vigilctl(&url, &["os", "status", DEVICE, "--json"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    let job: Value = serde_json::from_str(after.stdout.trim()).unwrap();
    assert_eq!((job["id"].as_str(), job["phase"].as_str()), (Some(id), Some("rebooting")), "{job}");
    assert_eq!(job["to_boot"], "B");
}

#[test]
fn os_update_with_json_prints_each_report_and_no_wait_only_the_answer() {
    let broker = broker();
    let device = FakeDevice::start(&broker);
    let url = url(&broker);
    let run = vigilctl(&url, &["--json", "os", "update", DEVICE, "https://updates.district/v2.raucb"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reports: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let phases: Vec<&str> = reports.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    let progress: Vec<u64> = reports.iter().filter_map(|r| r["progress"].as_u64()).collect();
    assert_eq!(phases, ["queued", "verifying", "installing", "installing", "installing", "installing", "rebooting"]);
    assert_eq!(progress, [0, 50, 100], "progress reports too");
    assert!(reports.iter().all(|r| r["id"] == reports[0]["id"] && r["id"] != OLD_JOB));

    let run = vigilctl(&url, &["os", "update", DEVICE, "/data/vigil-2.0.raucb", "--no-wait"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("test-hs: os.update accepted: job os-") && run.stdout.lines().count() == 1,
        "{}",
        run.stdout
    );
    let run = vigilctl(&url, &["--json", "os", "update", DEVICE, "/data/vigil-2.0.raucb", "--no-wait"]);
    let response: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(response["data"]["job"].as_str().unwrap().starts_with("os-vigilctl-"), "{response}");
    assert_eq!(device.seen().commands.iter().filter(|c| c.0 == "os.update").count(), 3);
}

#[test]
fn os_update_refused_or_failed_exits_1_and_a_relative_bundle_is_a_usage_error() {
    let broker = broker();
    let device = FakeDevice::start(&broker);
    let url = url(&broker);
    let failed = vigilctl(&url, &["os", "update", DEVICE, "/data/stranger-2.0.raucb"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("failed: rauc-refused: RAUC refused the bundle: signature verification failed"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stdout.ends_with("queued\nverifying: RAUC is checking the bundle's signature\n"),
        "{}",
        failed.stdout
    );
    let status = vigilctl(&url, &["os", "status", DEVICE]);
    assert!(
        status.stdout.contains(": failed\n") && status.stdout.contains("error: rauc-refused: "),
        "{}",
        status.stdout
    );

    let busy = vigilctl(&url, &["os", "update", DEVICE, BUSY_BUNDLE]);
    assert_eq!(busy.code, 1);
    assert!(busy.stderr.contains("refused: busy: update job os-1 is still installing"), "{}", busy.stderr);
    assert_eq!(busy.stdout, "", "no job was accepted");

    let relative = vigilctl(&url, &["os", "update", DEVICE, "vigil-2.0.raucb"]);
    assert_eq!(relative.code, 2);
    assert!(
        relative.stderr.contains("neither an absolute path on the device nor an http(s):// URL"),
        "{}",
        relative.stderr
    );
    assert_eq!(device.seen().commands.len(), 2, "a usage error sends nothing");

    let quiet = vigilctl(&url, &["os", "update", DEVICE, "/data/stalls.raucb", "--stall-timeout", "1"]);
    assert_eq!(quiet.code, 3, "{}", quiet.stderr);
    assert!(
        quiet.stderr.contains(
            "reported nothing new for 1 s (last: verifying: RAUC is checking the bundle's signature); \
             it may still be running: check `vigilctl os status test-hs`"
        ),
        "{}",
        quiet.stderr
    );

    let ghost = vigilctl(&url, &["os", "status", "ghost-ms"]);
    assert_eq!(ghost.code, 3);
    assert!(ghost.stderr.contains("no OS update job of ghost-ms is retained"), "{}", ghost.stderr);
}

/// A long-running `vigilctl`, its output read line by line; killed on drop.
struct Watching {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Watching {
    fn start(broker_url: &str, args: &[&str]) -> Watching {
        let mut child = command(broker_url, args).spawn().expect("vigilctl runs");
        let lines = |pipe: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Watching { child, stdout, stderr }
    }

    fn stdout_line(&mut self) -> String {
        self.stdout.recv_timeout(Duration::from_secs(10)).expect("a line on stdout")
    }

    fn stderr_line_containing(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(line) = self.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if line.contains(needle) {
                return;
            }
        }
        panic!("no line containing {needle:?} on stderr");
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
