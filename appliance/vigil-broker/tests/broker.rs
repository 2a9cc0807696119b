//! The embedded broker against rumqttc's MQTT 5 client: one test per MQTT 5
//! feature Vigil relies on, tests that pin down where rumqttd departs from the
//! spec (so a rumqttd upgrade that changes it is noticed), and the broker's
//! own lifecycle (ports, stop, errors).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnAck, ConnectReturnCode, LastWill, Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use vigil_broker::{BrokerError, EmbeddedBroker};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(3);
/// How long we watch for something that should not happen.
const QUIET: Duration = Duration::from_millis(500);

fn start_broker() -> EmbeddedBroker {
    EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("start the embedded broker")
}

/// Options for client `id` of `broker`'s MQTT 5 listener.
fn options(broker: &EmbeddedBroker, id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", broker.addr().port());
    options.set_keep_alive(Duration::from_secs(5));
    options
}

/// A connected MQTT 5 client whose event loop runs in a task, forwarding what it receives.
struct TestClient {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Packet>,
    event_loop: JoinHandle<()>,
}

impl TestClient {
    /// Connects with `options` and returns the client with the broker's CONNACK.
    async fn connect(options: MqttOptions) -> (TestClient, ConnAck) {
        let id = options.client_id();
        let (client, mut event_loop) = AsyncClient::new(options, 16);
        let (tx, incoming) = mpsc::unbounded_channel();
        let event_loop = tokio::spawn(async move {
            // Stop at the first error: rumqttc would otherwise reconnect.
            while let Ok(event) = event_loop.poll().await {
                if let Event::Incoming(packet) = event {
                    let _ = tx.send(packet);
                }
            }
        });
        let mut client = TestClient { client, incoming, event_loop };
        let connack = match client.next(|p| matches!(p, Packet::ConnAck(_))).await {
            Some(Packet::ConnAck(connack)) => connack,
            other => panic!("{id}: no CONNACK, got {other:?}"),
        };
        assert_eq!(connack.code, ConnectReturnCode::Success, "{id}: connection refused");
        (client, connack)
    }

    /// The next received packet that `wanted` accepts, skipping others; `None` after [`WAIT`].
    async fn next(&mut self, wanted: impl Fn(&Packet) -> bool) -> Option<Packet> {
        self.next_within(WAIT, wanted).await
    }

    /// Like [`TestClient::next`] with a deadline of `limit`.
    async fn next_within(&mut self, limit: Duration, wanted: impl Fn(&Packet) -> bool) -> Option<Packet> {
        timeout(limit, async {
            while let Some(packet) = self.incoming.recv().await {
                if wanted(&packet) {
                    return Some(packet);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// The next PUBLISH received within `limit`.
    async fn publish_within(&mut self, limit: Duration) -> Option<Publish> {
        match self.next_within(limit, |p| matches!(p, Packet::Publish(_))).await {
            Some(Packet::Publish(publish)) => Some(publish),
            _ => None,
        }
    }

    /// The next PUBLISH, which must arrive within [`WAIT`].
    async fn expect_publish(&mut self, what: &str) -> Publish {
        self.publish_within(WAIT).await.unwrap_or_else(|| panic!("{what} did not arrive within {WAIT:?}"))
    }

    /// Subscribes to `filter` at QoS 1 and waits for the SUBACK.
    async fn subscribe(&mut self, filter: &str) {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.expect("queue SUBSCRIBE");
        assert!(self.next(|p| matches!(p, Packet::SubAck(_))).await.is_some(), "no SUBACK for {filter}");
    }

    /// Publishes at QoS 1 with `properties` and waits for the PUBACK.
    async fn publish(&mut self, topic: &str, payload: &[u8], retain: bool, properties: PublishProperties) {
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, retain, payload.to_vec(), properties)
            .await
            .expect("queue PUBLISH");
        assert!(self.next(|p| matches!(p, Packet::PubAck(_))).await.is_some(), "no PUBACK for {topic}");
    }

    /// Sends DISCONNECT and waits until the connection is closed.
    async fn disconnect(self) {
        self.client.disconnect().await.expect("queue DISCONNECT");
        timeout(WAIT, self.event_loop).await.expect("the connection did not close").expect("event loop task");
    }

    /// Drops the TCP connection without DISCONNECT, like a device losing power.
    async fn drop_connection(self) {
        self.event_loop.abort();
        let _ = self.event_loop.await;
    }
}

// --- MQTT 5 features Vigil relies on ---

#[tokio::test]
async fn qos1_publish_reaches_a_subscriber() {
    let broker = start_broker();
    let (mut subscriber, _) = TestClient::connect(options(&broker, "sub")).await;
    subscriber.subscribe("vigil/alerts").await;
    let (mut publisher, _) = TestClient::connect(options(&broker, "pub")).await;

    publisher.publish("vigil/alerts", b"intruder", false, PublishProperties::default()).await;

    let publish = subscriber.expect_publish("the QoS 1 message").await;
    assert_eq!(publish.topic, "vigil/alerts");
    assert_eq!(publish.payload, "intruder");
    assert_eq!(publish.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn retained_message_reaches_a_later_subscriber() {
    let broker = start_broker();
    let (mut publisher, _) = TestClient::connect(options(&broker, "pub")).await;
    publisher.publish("vigil/state", b"armed", true, PublishProperties::default()).await;

    let (mut late, _) = TestClient::connect(options(&broker, "late")).await;
    late.subscribe("vigil/state").await;

    let publish = late.expect_publish("the retained message").await;
    assert_eq!(publish.payload, "armed");
    assert!(publish.retain, "a retained message must arrive with the retain flag");
}

#[tokio::test]
async fn last_will_is_published_and_retained_when_the_connection_drops() {
    let broker = start_broker();
    let (mut watcher, _) = TestClient::connect(options(&broker, "watcher")).await;
    watcher.subscribe("vigil/status/device").await;
    let mut device_options = options(&broker, "device");
    device_options.set_last_will(LastWill::new("vigil/status/device", "offline", QoS::AtLeastOnce, true, None));
    let (device, _) = TestClient::connect(device_options).await;

    device.drop_connection().await;

    let will = watcher.expect_publish("the last will").await;
    assert_eq!((will.topic.as_ref(), will.payload.as_ref()), (&b"vigil/status/device"[..], &b"offline"[..]));
    assert_eq!(will.qos, QoS::AtLeastOnce);
    let (mut late, _) = TestClient::connect(options(&broker, "late")).await;
    late.subscribe("vigil/status/device").await;
    let retained = late.expect_publish("the retained last will").await;
    assert_eq!(retained.payload, "offline");
    assert!(retained.retain);
}

#[tokio::test]
async fn request_response_properties_arrive_unchanged() {
    let broker = start_broker();
    let (mut subscriber, _) = TestClient::connect(options(&broker, "sub")).await;
    subscriber.subscribe("vigil/commands").await;
    let (mut publisher, _) = TestClient::connect(options(&broker, "pub")).await;
    let sent = PublishProperties {
        response_topic: Some("vigil/replies/console-7".into()),
        correlation_data: Some(vec![0x00, 0xff, 0x10, 0x42].into()),
        content_type: Some("application/json".into()),
        user_properties: vec![("schema".into(), "1".into())],
        ..PublishProperties::default()
    };

    publisher.publish("vigil/commands", b"{}", false, sent.clone()).await;

    let received = subscriber.expect_publish("the request").await.properties.expect("properties");
    assert_eq!(received.response_topic, sent.response_topic);
    assert_eq!(received.correlation_data, sent.correlation_data);
    assert_eq!(received.content_type, sent.content_type);
    assert_eq!(received.user_properties, sent.user_properties);
}

#[tokio::test]
async fn expired_message_is_not_delivered_to_a_returning_persistent_session() {
    let broker = start_broker();
    let mut session = options(&broker, "persistent");
    session.set_clean_start(false);
    session.set_session_expiry_interval(Some(3600));
    let (mut offline, connack) = TestClient::connect(session.clone()).await;
    assert!(!connack.session_present);
    offline.subscribe("vigil/commands").await;
    offline.disconnect().await;

    let (mut publisher, _) = TestClient::connect(options(&broker, "pub")).await;
    let expiring = PublishProperties { message_expiry_interval: Some(1), ..PublishProperties::default() };
    publisher.publish("vigil/commands", b"stale", false, expiring).await;
    let lasting = PublishProperties { message_expiry_interval: Some(3600), ..PublishProperties::default() };
    publisher.publish("vigil/commands", b"fresh", false, lasting).await;
    // rumqttd counts whole seconds waited.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let (mut back, connack) = TestClient::connect(session).await;
    assert!(connack.session_present, "rumqttd kept no session for a clean_start=false client");
    // Both were queued in order, so if "stale" were delivered it would come first.
    let first = back.expect_publish("the unexpired queued message").await;
    assert_eq!(first.payload, "fresh", "the expired message was delivered");
    let remaining = first.properties.and_then(|p| p.message_expiry_interval);
    assert!(matches!(remaining, Some(3595..=3599)), "expiry not reduced by the time queued: {remaining:?}");
    assert_eq!(back.publish_within(QUIET).await, None);
}

#[tokio::test]
async fn empty_retained_payload_clears_the_retained_message() {
    let broker = start_broker();
    let (mut owner, _) = TestClient::connect(options(&broker, "owner")).await;
    owner.publish("vigil/state", b"armed", true, PublishProperties::default()).await;
    let (mut other, _) = TestClient::connect(options(&broker, "other")).await;
    other.subscribe("vigil/state").await;
    assert_eq!(other.expect_publish("the retained message").await.payload, "armed");

    owner.publish("vigil/state", b"", true, PublishProperties::default()).await;

    let (mut late, _) = TestClient::connect(options(&broker, "late")).await;
    late.subscribe("vigil/state").await;
    assert_eq!(late.publish_within(QUIET).await, None, "the retained message was not cleared");
}

// --- Where rumqttd 0.20 departs from MQTT 5 (assert what it does) ---

/// MQTT 5 §3.1.2.11.2: with no Session Expiry Interval (0) the session ends
/// when the connection closes. rumqttd keeps it anyway.
#[tokio::test]
async fn session_expiry_interval_is_ignored() {
    let broker = start_broker();
    let mut session = options(&broker, "expiry-zero");
    session.set_clean_start(false);
    session.set_session_expiry_interval(None);
    let (mut first, _) = TestClient::connect(session.clone()).await;
    first.subscribe("vigil/commands").await;
    first.disconnect().await;

    let (_second, connack) = TestClient::connect(session).await;
    assert!(connack.session_present, "rumqttd now ends sessions with expiry 0: update the crate docs");
}

/// MQTT says only a *retained* empty publish deletes the retained message;
/// rumqttd deletes it on any empty publish.
#[tokio::test]
async fn any_empty_payload_clears_the_retained_message() {
    let broker = start_broker();
    let (mut owner, _) = TestClient::connect(options(&broker, "owner")).await;
    owner.publish("vigil/state", b"armed", true, PublishProperties::default()).await;

    owner.publish("vigil/state", b"", false, PublishProperties::default()).await;

    let (mut late, _) = TestClient::connect(options(&broker, "late")).await;
    late.subscribe("vigil/state").await;
    assert_eq!(late.publish_within(QUIET).await, None, "rumqttd now keeps it: update the crate docs");
}

// --- The broker itself ---

#[tokio::test]
async fn mqtt311_listener_serves_the_same_messages() {
    let broker = start_broker();
    assert_ne!(broker.mqtt311_addr(), broker.addr());
    let (mut publisher, _) = TestClient::connect(options(&broker, "pub")).await;
    publisher.publish("vigil/state", b"armed", true, PublishProperties::default()).await;

    let mut v311 = rumqttc::MqttOptions::new("legacy", "127.0.0.1", broker.mqtt311_addr().port());
    v311.set_keep_alive(Duration::from_secs(5));
    let (client, mut event_loop) = rumqttc::AsyncClient::new(v311, 16);
    client.subscribe("vigil/state", rumqttc::QoS::AtLeastOnce).await.expect("queue SUBSCRIBE");
    let payload = timeout(WAIT, async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = event_loop.poll().await.expect("poll") {
                return p.payload;
            }
        }
    })
    .await
    .expect("the retained message did not reach the MQTT 3.1.1 client");
    assert_eq!(payload, "armed");
}

#[test]
fn stop_frees_the_port_for_a_new_broker() {
    let mut broker = start_broker();
    let addr = broker.addr();
    broker.stop();
    assert!(TcpListener::bind(addr).is_ok(), "{addr} still in use after stop");

    let again = EmbeddedBroker::start(addr).expect("start again on the same port");
    assert_eq!(again.addr(), addr);
}

#[test]
fn two_brokers_run_side_by_side() {
    let a = start_broker();
    let b = start_broker();
    assert_ne!(a.addr(), b.addr());
}

#[test]
fn a_port_in_use_is_reported_with_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("local addr");

    let error = EmbeddedBroker::start(addr).err().expect("starting on a taken port must fail");

    assert!(matches!(error, BrokerError::Listen { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with(&format!("cannot listen on {addr}: ")), "{message}");
    assert!(message.to_lowercase().contains("in use"), "{message}");
}

#[test]
fn a_non_loopback_address_is_refused() {
    let addr = SocketAddr::from(([0, 0, 0, 0], 0));
    let error = EmbeddedBroker::start(addr).err().expect("0.0.0.0 must be refused");
    assert!(matches!(error, BrokerError::NotLoopback { .. }), "{error:?}");
    assert!(error.to_string().contains("0.0.0.0:0"), "{error}");
}
