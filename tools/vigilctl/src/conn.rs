//! The connection to the broker: connect (waiting for the CONNACK),
//! subscribe (waiting for the SUBACK), publish with MQTT 5 properties, and
//! receive with a deadline.
//!
//! A task owns rumqttc's event loop and forwards everything it yields over
//! a channel, so the event loop is never polled from a `select!` or a
//! timeout that could drop it halfway through a packet; waiting with a
//! deadline only ever cancels a channel receive, which loses nothing. After a
//! failure the task keeps polling (rumqttc then reconnects) with a growing
//! pause, which only `watch` lives long enough to see.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PubAckReason, PublishProperties, SubAck, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, ConnectionError, Event as Polled, EventLoop};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vigil_link::Endpoint;

use crate::cli::in_cli_terms;
use crate::failure::Failure;

/// MQTT keep-alive.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// rumqttc's request queue.
const REQUEST_QUEUE: usize = 64;
/// How long a clean disconnect may take before the connection is just dropped.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);
/// The pause before the first reconnection attempt; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest pause between reconnection attempts.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// A message received on a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Full topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// Delivered from the broker's retained store.
    pub retain: bool,
    /// MQTT 5 correlation data.
    pub correlation: Option<Vec<u8>>,
}

/// What the connection reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message arrived.
    Message(Message),
    /// The broker took one of our publishes but did not pass it on.
    NotDelivered {
        /// The topic published to.
        topic: String,
        /// Nobody subscribes to the topic (as opposed to a refusal, such as an ACL's).
        no_subscribers: bool,
        /// The broker's reason, for people.
        reason: String,
    },
    /// The connection dropped or a reconnection failed; the text says why.
    Lost(String),
    /// Connected again after [`Event::Lost`]; subscriptions must be renewed (clean start).
    Reconnected,
}

/// What the event loop's task forwards.
enum Forwarded {
    Event(Box<Polled>),
    Error(ConnectionError),
}

/// A connection to the broker with a fresh client id.
pub struct Conn {
    client: AsyncClient,
    forwarded: mpsc::UnboundedReceiver<Forwarded>,
    backlog: VecDeque<Event>,
    suback: Option<SubAck>,
    endpoint: Endpoint,
    client_id: String,
    poller: JoinHandle<()>,
    /// Topics of QoS 1 publishes handed to rumqttc, waiting to be numbered (in request order).
    unnumbered: VecDeque<String>,
    /// Numbered publishes waiting for their PUBACK.
    numbered: HashMap<u16, String>,
    requests: u32,
}

impl Conn {
    /// Connects with a clean start and waits up to `timeout` for the CONNACK.
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Conn, Failure> {
        let client_id = fresh_client_id();
        let mut options = endpoint
            .options(&client_id, KEEP_ALIVE)
            .map_err(|e| Failure::Broker(format!("TLS setup: {}", in_cli_terms(&e.to_string()))))?;
        options.set_clean_start(true);
        let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        let (tx, forwarded) = mpsc::unbounded_channel();
        let poller = tokio::spawn(poll(eventloop, tx));
        let mut conn = Conn {
            client,
            forwarded,
            backlog: VecDeque::new(),
            suback: None,
            endpoint: endpoint.clone(),
            client_id,
            poller,
            unnumbered: VecDeque::new(),
            numbered: HashMap::new(),
            requests: 0,
        };
        let url = endpoint.url();
        let connected = tokio::time::timeout(timeout, async {
            loop {
                match conn.forwarded.recv().await {
                    Some(Forwarded::Event(e)) if matches!(*e, Polled::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Some(Forwarded::Event(_)) => {}
                    Some(Forwarded::Error(e)) => return Err(Failure::Broker(conn.explain(&e))),
                    None => return Err(Failure::Broker(format!("{url}: the MQTT client stopped"))),
                }
            }
        })
        .await;
        let result = connected.unwrap_or_else(|_| {
            Err(Failure::Broker(format!(
                "{url} did not accept the connection within {} s (check --broker, and that a firewall lets MQTT through)",
                timeout.as_secs()
            )))
        });
        match result {
            Ok(()) => Ok(conn),
            Err(e) => {
                conn.poller.abort();
                Err(e)
            }
        }
    }

    /// This connection's MQTT client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The broker's URL, for messages.
    pub fn url(&self) -> String {
        self.endpoint.url()
    }

    /// A request id unique to this connection.
    pub fn next_request_id(&mut self) -> String {
        self.requests += 1;
        format!("{}-{}", self.client_id, self.requests)
    }

    /// Subscribes to `filters` (QoS 1) and waits until the broker confirms all of them.
    pub async fn subscribe(&mut self, filters: &[String], deadline: Instant) -> Result<(), Failure> {
        let requested = filters.iter().map(|f| Filter::new(f.clone(), QoS::AtLeastOnce));
        self.client.subscribe_many(requested).await.map_err(|e| self.stopped(e))?;
        self.suback = None;
        let ack = loop {
            if let Some(ack) = self.suback.take() {
                break ack;
            }
            match tokio::time::timeout_at(deadline, self.forwarded.recv()).await {
                Err(_) => {
                    return Err(Failure::Broker(format!(
                        "{} did not confirm the subscription to {} in time",
                        self.url(),
                        filters.join(", ")
                    )));
                }
                Ok(None) => return Err(Failure::Broker(format!("{}: the MQTT client stopped", self.url()))),
                Ok(Some(Forwarded::Error(e))) => return Err(Failure::Broker(self.explain(&e))),
                Ok(Some(forwarded)) => {
                    if let Some(event) = self.translate(forwarded) {
                        self.backlog.push_back(event);
                    }
                }
            }
        };
        for (code, filter) in ack.return_codes.iter().zip(filters) {
            if !matches!(code, SubscribeReasonCode::Success(_)) {
                return Err(Failure::Broker(format!(
                    "{} refused the subscription to {filter}: {code:?} (the broker's ACL must let this user read it; see docs/mqtt.md)",
                    self.url()
                )));
            }
        }
        Ok(())
    }

    /// Publishes at QoS 1. A refusal by the broker comes later, as [`Event::NotDelivered`].
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        properties: PublishProperties,
    ) -> Result<(), Failure> {
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, retain, payload, properties)
            .await
            .map_err(|e| self.stopped(e))?;
        self.unnumbered.push_back(topic.to_string());
        Ok(())
    }

    /// The next event, or `None` once `deadline` passes.
    pub async fn next(&mut self, deadline: Instant) -> Option<Event> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Some(event);
            }
            let forwarded = match tokio::time::timeout_at(deadline, self.forwarded.recv()).await {
                Err(_) => return None,
                Ok(None) => return Some(Event::Lost(format!("{}: the MQTT client stopped", self.url()))),
                Ok(Some(f)) => f,
            };
            if let Some(event) = self.translate(forwarded) {
                return Some(event);
            }
        }
    }

    /// Disconnects cleanly (waiting briefly for the DISCONNECT to be written) and stops the event loop.
    pub async fn close(mut self) {
        if self.client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
                while let Some(f) = self.forwarded.recv().await {
                    match f {
                        Forwarded::Event(e) if matches!(*e, Polled::Outgoing(Outgoing::Disconnect)) => return,
                        Forwarded::Error(_) => return,
                        Forwarded::Event(_) => {}
                    }
                }
            })
            .await;
        }
        self.poller.abort();
    }

    /// Turns what the event loop yielded into an event for the caller, if it is one.
    fn translate(&mut self, forwarded: Forwarded) -> Option<Event> {
        let event = match forwarded {
            Forwarded::Error(e) => return Some(Event::Lost(self.explain(&e))),
            Forwarded::Event(event) => event,
        };
        match *event {
            Polled::Incoming(Packet::Publish(p)) => Some(Event::Message(Message {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload.to_vec(),
                retain: p.retain,
                correlation: p.properties.and_then(|props| props.correlation_data).map(|c| c.to_vec()),
            })),
            Polled::Incoming(Packet::ConnAck(_)) => {
                self.unnumbered.clear();
                self.numbered.clear();
                Some(Event::Reconnected)
            }
            Polled::Incoming(Packet::SubAck(ack)) => {
                self.suback = Some(ack);
                None
            }
            Polled::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => {
                if let Some(topic) = self.unnumbered.pop_front() {
                    self.numbered.insert(pkid, topic);
                }
                None
            }
            Polled::Incoming(Packet::PubAck(ack)) => {
                let topic = self.numbered.remove(&ack.pkid)?;
                match ack.reason {
                    PubAckReason::Success => None,
                    reason => Some(Event::NotDelivered {
                        topic,
                        no_subscribers: reason == PubAckReason::NoMatchingSubscribers,
                        reason: ack
                            .properties
                            .and_then(|p| p.reason_string)
                            .map_or_else(|| format!("{reason:?}"), |words| format!("{reason:?}: {words}")),
                    }),
                }
            }
            _ => None,
        }
    }

    fn explain(&self, e: &ConnectionError) -> String {
        in_cli_terms(&vigil_link::explain(&self.endpoint, e))
    }

    fn stopped(&self, e: rumqttc::v5::ClientError) -> Failure {
        Failure::Broker(format!("{}: the MQTT client stopped ({e})", self.url()))
    }
}

/// Polls the event loop for ever, forwarding events and errors, until the receiver is gone.
async fn poll(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Forwarded>) {
    let mut retry = FIRST_RETRY;
    loop {
        let forwarded = match eventloop.poll().await {
            Ok(event) => {
                if matches!(event, Polled::Incoming(Packet::ConnAck(_))) {
                    retry = FIRST_RETRY;
                }
                Forwarded::Event(Box::new(event))
            }
            Err(e) => Forwarded::Error(e),
        };
        let failed = matches!(forwarded, Forwarded::Error(_));
        if tx.send(forwarded).is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(MAX_RETRY);
        }
    }
}

/// `vigilctl-<pid>-<random hex>`: unique, so two runs never take over each other's session.
fn fresh_client_id() -> String {
    let random = RandomState::new().hash_one(std::time::SystemTime::now());
    format!("vigilctl-{}-{:08x}", std::process::id(), random as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_fresh_and_fit_a_topic_level() {
        let a = fresh_client_id();
        let b = fresh_client_id();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("vigilctl-{}-", std::process::id())), "{a}");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'), "{a}");
        assert!(a.len() <= 23 + 8, "short enough for any broker: {a}");
    }
}
