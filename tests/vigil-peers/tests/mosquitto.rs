//! Integration tests against a real Mosquitto, driven with Debian's
//! `mosquitto_pub` / `mosquitto_sub` (package mosquitto-clients): proof that
//! the peer is configured the way Vigil's tests need it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vigil_peers::{Mosquitto, MosquittoOptions};

const PUB: &str = "/usr/bin/mosquitto_pub";
const SUB: &str = "/usr/bin/mosquitto_sub";
/// What Mosquitto logs before it writes its database.
const SAVING: &str = "Saving in-memory database";

/// `mosquitto_pub` / `mosquitto_sub` pointed at `broker`, with `args` after the connection options.
fn client(program: &str, broker: &Mosquitto, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-h", "127.0.0.1", "-p", &broker.port().to_string()]).args(args);
    cmd
}

/// Runs `mosquitto_pub ARGS` to completion.
fn publish(broker: &Mosquitto, args: &[&str]) -> Output {
    client(PUB, broker, args).output().expect("run mosquitto_pub")
}

/// Runs `mosquitto_sub ARGS` for one message, giving up after 2 s.
fn receive_one(broker: &Mosquitto, args: &[&str]) -> Output {
    let mut args = args.to_vec();
    args.extend(["-C", "1", "-W", "2"]);
    client(SUB, broker, &args).output().expect("run mosquitto_sub")
}

/// Panics with both the client's and the broker's story unless `out` succeeded with `stdout`.
fn assert_received(out: &Output, stdout: &str, broker: &Mosquitto) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == stdout,
        "expected {stdout:?}, client exited {} with stdout {:?} stderr {:?}; broker log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
}

/// Panics unless `out` failed, showing the broker log if it did not.
fn assert_refused(out: &Output, what: &str, broker: &Mosquitto) {
    assert!(
        !out.status.success(),
        "{what} was accepted: stdout {:?} stderr {:?}; broker log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
}

/// Waits up to 2 s until the broker's log contains `text` at least `count` times.
fn wait_for(broker: &Mosquitto, text: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while broker.log().matches(text).count() < count {
        assert!(Instant::now() < deadline, "the broker never logged {text:?}; log:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn publish_reaches_a_subscriber() {
    let broker = Mosquitto::start(MosquittoOptions::default()).expect("start mosquitto");
    assert!(broker.url().starts_with("mqtt://127.0.0.1:"), "{}", broker.url());

    let sub = client(SUB, &broker, &["-t", "vigil/test", "-C", "1", "-W", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub");
    // Publish only once the subscription is in place (the broker's log is line-buffered, the client's stdout is not).
    wait_for(&broker, "Sending SUBACK", 1);

    assert_received(&publish(&broker, &["-t", "vigil/test", "-m", "hello", "-q", "1"]), "", &broker);
    assert_received(&sub.wait_with_output().expect("wait for mosquitto_sub"), "hello", &broker);
}

#[test]
fn retained_message_survives_stop_and_restart_with_persistence() {
    let mut broker =
        Mosquitto::start(MosquittoOptions { persistence: true, ..Default::default() }).expect("start mosquitto");
    let port = broker.port();
    assert_received(&publish(&broker, &["-t", "vigil/state", "-m", "armed", "-r", "-q", "1"]), "", &broker);

    broker.stop();
    assert!(!broker.is_running());
    broker.restart().expect("restart mosquitto");
    assert!(broker.is_running());
    assert_eq!(broker.port(), port);

    assert_received(&receive_one(&broker, &["-t", "vigil/state"]), "armed", &broker);
}

#[test]
fn retained_message_survives_kill_once_saved() {
    let mut broker =
        Mosquitto::start(MosquittoOptions { persistence: true, ..Default::default() }).expect("start mosquitto");
    let saves = broker.log().matches(SAVING).count();
    assert_received(&publish(&broker, &["-t", "vigil/state", "-m", "armed", "-r", "-q", "1"]), "", &broker);
    // The PUBACK goes out before the save at the end of Mosquitto's event-loop
    // pass, and "Saving" is logged before the write; any later reply proves the
    // pass (and the write) is over.
    wait_for(&broker, SAVING, saves + 1);
    assert_received(&publish(&broker, &["-t", "vigil/other", "-m", "sync", "-q", "1"]), "", &broker);

    broker.kill();
    assert!(!broker.is_running());
    broker.restart().expect("restart mosquitto");

    assert_received(&receive_one(&broker, &["-t", "vigil/state"]), "armed", &broker);
}

#[test]
fn retained_message_is_lost_on_restart_without_persistence() {
    let mut broker = Mosquitto::start(MosquittoOptions::default()).expect("start mosquitto");
    assert_received(&publish(&broker, &["-t", "vigil/state", "-m", "armed", "-r", "-q", "1"]), "", &broker);
    broker.restart().expect("restart mosquitto");

    let out = client(SUB, &broker, &["-t", "vigil/state", "-C", "1", "-W", "1"]).output().expect("run mosquitto_sub");
    assert!(out.stdout.is_empty(), "a retained message survived without persistence: {out:?}");
}

#[test]
fn password_auth_refuses_a_wrong_password() {
    let broker = Mosquitto::start(MosquittoOptions {
        users: vec![("device".into(), "s3cret".into())],
        allow_anonymous: false,
        ..Default::default()
    })
    .expect("start mosquitto");

    let ok = publish(&broker, &["-u", "device", "-P", "s3cret", "-t", "vigil/x", "-m", "1", "-q", "1"]);
    assert_received(&ok, "", &broker);
    let wrong = publish(&broker, &["-u", "device", "-P", "guess", "-t", "vigil/x", "-m", "1", "-q", "1"]);
    assert_refused(&wrong, "a wrong password", &broker);
    let anonymous = publish(&broker, &["-t", "vigil/x", "-m", "1", "-q", "1"]);
    assert_refused(&anonymous, "an anonymous client", &broker);
}

#[test]
fn acl_denies_a_topic() {
    let broker = Mosquitto::start(MosquittoOptions {
        users: vec![("device".into(), "s3cret".into()), ("admin".into(), "0wner".into())],
        acl: Some("user device\ntopic readwrite vigil/allowed/#\n\nuser admin\ntopic readwrite #\n".into()),
        allow_anonymous: false,
        ..Default::default()
    })
    .expect("start mosquitto");
    let device = |args: &[&'static str]| [&["-u", "device", "-P", "s3cret"][..], args].concat();
    let admin = |args: &[&'static str]| [&["-u", "admin", "-P", "0wner"][..], args].concat();

    // Allowed: the device writes and reads its own topic.
    assert_received(&publish(&broker, &device(&["-t", "vigil/allowed/a", "-m", "yes", "-r", "-q", "1"])), "", &broker);
    assert_received(&receive_one(&broker, &device(&["-t", "vigil/allowed/a"])), "yes", &broker);

    // Denied write: Mosquitto acknowledges an unauthorised MQTT 3.1.1 publish
    // but drops it, so the proof is its log and that nothing was stored.
    assert_received(&publish(&broker, &device(&["-t", "vigil/denied", "-m", "no", "-r", "-q", "1"])), "", &broker);
    wait_for(&broker, "Denied PUBLISH", 1);
    let admin_view = client(SUB, &broker, &admin(&["-t", "vigil/denied", "-C", "1", "-W", "1"])).output().unwrap();
    assert!(admin_view.stdout.is_empty(), "a denied publish was stored: {admin_view:?}");

    // Denied read: a retained message the admin wrote never reaches the device
    // (Mosquitto 2.0 grants the subscription and filters at delivery).
    assert_received(&publish(&broker, &admin(&["-t", "vigil/denied", "-m", "secret", "-r", "-q", "1"])), "", &broker);
    assert_received(&receive_one(&broker, &admin(&["-t", "vigil/denied"])), "secret", &broker);
    let device_view = client(SUB, &broker, &device(&["-t", "vigil/denied", "-C", "1", "-W", "1"])).output().unwrap();
    assert!(device_view.stdout.is_empty(), "the device read a denied topic: {device_view:?}");
}

#[test]
fn tls_accepts_the_client_certificate() {
    let broker = Mosquitto::start(MosquittoOptions { tls: true, ..Default::default() }).expect("start mosquitto");
    assert!(broker.url().starts_with("mqtts://127.0.0.1:"), "{}", broker.url());
    let certs = broker.certs().expect("TLS brokers have certs");
    let tls = [
        "--cafile",
        certs.ca.to_str().unwrap(),
        "--cert",
        certs.client_cert.to_str().unwrap(),
        "--key",
        certs.client_key.to_str().unwrap(),
    ];

    assert_received(
        &publish(&broker, &[&tls[..], &["-t", "vigil/tls", "-m", "sealed", "-r", "-q", "1"]].concat()),
        "",
        &broker,
    );
    assert_received(&receive_one(&broker, &[&tls[..], &["-t", "vigil/tls"]].concat()), "sealed", &broker);
}

#[test]
fn tls_refuses_a_client_without_a_certificate() {
    let broker = Mosquitto::start(MosquittoOptions { tls: true, ..Default::default() }).expect("start mosquitto");
    let certs = broker.certs().expect("TLS brokers have certs");

    let out = publish(&broker, &["--cafile", certs.ca.to_str().unwrap(), "-t", "vigil/tls", "-m", "x", "-q", "1"]);
    assert_refused(&out, "a client without a certificate", &broker);
    wait_for(&broker, "peer did not return a certificate", 1);
}

#[test]
fn tls_refuses_a_client_certificate_from_a_rogue_ca() {
    let broker = Mosquitto::start(MosquittoOptions { tls: true, ..Default::default() }).expect("start mosquitto");
    let certs = broker.certs().expect("TLS brokers have certs");

    let out = publish(
        &broker,
        &[
            "--cafile",
            certs.ca.to_str().unwrap(),
            "--cert",
            certs.rogue_client_cert.to_str().unwrap(),
            "--key",
            certs.rogue_client_key.to_str().unwrap(),
            "-t",
            "vigil/tls",
            "-m",
            "x",
            "-q",
            "1",
        ],
    );
    assert_refused(&out, "a client certificate from a rogue CA", &broker);
    wait_for(&broker, "certificate verify failed", 1);
}
