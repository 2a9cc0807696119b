//! vigild as a process (so it can be killed with SIGKILL) and a stand-in for
//! the district: an MQTT 5 client that records alerts, acknowledges them and
//! sends commands. The broker is the real Mosquitto (`vigil_peers`).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::{Client, Event, MqttOptions};
use serde_json::Value;

use crate::harness::{WAIT, models};

/// The device id every daemon test uses.
pub const DEVICE: &str = "e2e-link";

/// The folder holding the vigild and vigilctl binaries, built once per test
/// run by a nested `cargo build`, so they are never stale.
fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let profile_dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", "vigild", "-p", "vigilctl", "--bins"]);
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("running cargo build for vigild and vigilctl");
        assert!(status.success(), "cargo build -p vigild -p vigilctl failed");
        profile_dir
    })
}

/// The vigild binary.
pub fn vigild_bin() -> PathBuf {
    binaries().join("vigild")
}

/// The vigilctl binary.
pub fn vigilctl_bin() -> PathBuf {
    binaries().join("vigilctl")
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A config for one armed demo camera (a gunman always in view) reporting to `broker`.
pub fn config_text(data_dir: &Path, uplink: &str) -> String {
    let m = models();
    format!(
        "[device]\nid = \"{DEVICE}\"\ndata_dir = '{data}'\n\n\
         [detector]\nmodel = '{model}'\nlabels_file = '{labels}'\ndevice = \"CPU\"\n\n\
         [uplink]\n{uplink}\n\n\
         [[camera]]\nid = \"hall-1\"\nname = \"Main hall\"\nlocation = {{ building = \"A\", floor = \"1\", zone = \"main-hall\" }}\n\
         fps = 5\nsource = {{ kind = \"demo\", scenario = \"armed\" }}\n",
        data = data_dir.display(),
        model = m.join("demo-yolo.xml").display(),
        labels = m.join("demo.labels").display(),
    )
}

/// A running vigild process; killed on drop.
pub struct Daemon {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `vigild --console --config FILE`, logging to `log`.
    pub fn start(config: &Path, log: &Path) -> Daemon {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let out = err.try_clone().unwrap();
        let mut child = Command::new(vigild_bin())
            .args(["--console", "--config"])
            .arg(config)
            .env("VIGIL_LOG", "info,vigil_link=debug,rumqttd=off")
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting vigild");
        let stdin = child.stdin.take();
        Daemon { child, stdin, log: log.to_path_buf() }
    }

    /// Types a console command (as an operator at the box would).
    pub fn console(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("writing to vigild's console");
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vigild did not stop within {WAIT:?} of SIGTERM; log:\n{}", self.log());
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message the district received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Correlation data, if any.
    pub correlation: Option<Bytes>,
}

/// The district's side: subscribes to everything of the device, acknowledges
/// alerts if asked to, reconnects and resubscribes by itself.
pub struct District {
    client: Client,
    received: Arc<Mutex<Vec<Received>>>,
    alerts: Receiver<Value>,
    /// Every alert received so far, duplicates included, in arrival order.
    history: Mutex<Vec<Value>>,
}

impl District {
    /// Connects to `port` as `user` (if given), acknowledging alerts when `ack`.
    pub fn connect(port: u16, user: Option<(&str, &str)>, ack: bool) -> District {
        // Unique per client: a second client with the same id would take the first one's session over.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut o = MqttOptions::new(format!("district-{}-{n}", std::process::id()), "127.0.0.1", port);
        // A persistent session, so a reconnect under load (the tests share two cores) misses nothing.
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(600));
        o.set_max_packet_size(Some(4 << 20));
        if let Some((u, p)) = user {
            o.set_credentials(u, p);
        }
        let (client, mut connection) = Client::new(o, 256);
        let received = Arc::new(Mutex::new(Vec::new()));
        let (alerts_tx, alerts): (Sender<Value>, _) = crossbeam_channel::unbounded();
        let (c, r) = (client.clone(), received.clone());
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = c.try_subscribe_many([Filter::new(format!("vigil/v1/{DEVICE}/#"), QoS::AtLeastOnce)]);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic).into_owned();
                        if topic == format!("vigil/v1/{DEVICE}/alerts") {
                            let alert: Value = serde_json::from_slice(&p.payload).expect("alert JSON");
                            if ack {
                                let _ = c.try_publish(
                                    format!("vigil/v1/{DEVICE}/ack"),
                                    QoS::AtLeastOnce,
                                    false,
                                    alert["alert_id"].as_str().unwrap().to_string(),
                                );
                            }
                            let _ = alerts_tx.send(alert);
                        }
                        let correlation = p.properties.and_then(|p| p.correlation_data);
                        r.lock().unwrap().push(Received { topic, payload: p.payload, correlation });
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        District { client, received, alerts, history: Mutex::new(Vec::new()) }
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `done` holds for every alert received so far (in arrival
    /// order, duplicates included, since the district connected).
    pub fn wait_alerts(&self, what: &str, within: Duration, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut seen = self.history.lock().unwrap();
        loop {
            seen.extend(self.alerts.try_iter());
            if done(&seen) {
                return seen.clone();
            }
            match self.alerts.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(a) => seen.push(a),
                Err(_) => panic!("waited {within:?} for {what}; alerts received: {:?}", ids(&seen)),
            }
        }
    }

    /// Waits for a message on `topic` that `pick` accepts.
    pub fn wait_for(&self, what: &str, within: Duration, mut pick: impl FnMut(&Received) -> bool) -> Received {
        let deadline = Instant::now() + within;
        loop {
            if let Some(m) = self.received.lock().unwrap().iter().find(|m| pick(m)) {
                return m.clone();
            }
            assert!(Instant::now() < deadline, "waited {within:?} for {what}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Publishes a command with a response topic, correlation data and an optional expiry.
    pub fn command(&self, name: &str, payload: &[u8], correlation: &str, expiry_s: Option<u32>) {
        let props = PublishProperties {
            response_topic: Some(format!("vigil/v1/{DEVICE}/responses/district")),
            correlation_data: Some(Bytes::from(correlation.to_string())),
            message_expiry_interval: expiry_s,
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                format!("vigil/v1/{DEVICE}/cmd/{name}"),
                QoS::AtLeastOnce,
                false,
                payload.to_vec(),
                props,
            )
            .expect("queueing a command");
    }

    /// Publishes `payload` on `topic` (retained if asked).
    pub fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload).expect("queueing a publish");
    }

    /// The response with `correlation`, once it arrives.
    pub fn response(&self, correlation: &str, within: Duration) -> Value {
        let m = self.wait_for(&format!("the response to {correlation}"), within, |m| {
            m.topic.contains("/responses/") && m.correlation.as_deref() == Some(correlation.as_bytes())
        });
        serde_json::from_slice(&m.payload).expect("response JSON")
    }

    /// Whether a response with `correlation` has arrived.
    pub fn has_response(&self, correlation: &str) -> bool {
        self.received()
            .iter()
            .any(|m| m.topic.contains("/responses/") && m.correlation.as_deref() == Some(correlation.as_bytes()))
    }
}

/// The alert ids of `alerts`, in order.
pub fn ids(alerts: &[Value]) -> Vec<String> {
    alerts.iter().map(|a| a["alert_id"].as_str().unwrap_or("?").to_string()).collect()
}

/// The alert ids in order of first arrival (what a district that drops duplicates keeps).
pub fn deduplicated(alerts: &[Value]) -> Vec<String> {
    let mut seen = HashSet::new();
    ids(alerts).into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// `<device>:<incident>:0 ..= <device>:<incident>:<last>`.
pub fn expected_ids(incident: u64, last: u32) -> Vec<String> {
    (0..=last).map(|s| format!("{DEVICE}:{incident}:{s}")).collect()
}
