//! The link thread: a poller that owns rumqttc's event loop (and the will),
//! and an actor that owns everything else. They talk over channels, so the
//! event loop is never polled from a `select!` that could cancel it mid-write.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::Outgoing as Sent;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    Filter, LastWill, Packet, PubAck, PubAckReason, PublishProperties, SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use tokio::sync::{mpsc, oneshot};
use vigil_config::AckPolicy;
use vigil_core::backoff::Backoff;
use vigil_outbox::Outbox;
use vigil_uplink::StatusDoc;
use vigil_uplink::status::reason;

use crate::{Control, Incoming, LinkEvent, LinkSettings, LinkStatus, Outgoing, SessionCounter, WINDOW, explain};

/// rumqttc's request queue; above the window plus room for best-effort messages.
const REQUEST_QUEUE: usize = 256;

/// What the poller tells the actor.
enum FromPoller {
    /// A connection attempt with this session number starts.
    Attempt(u64),
    /// An event of the live connection.
    Event(Box<Event>),
    /// The connection failed; the poller waits for the actor's go before retrying,
    /// so no request of the old connection leaks into the new one.
    Lost(ConnectionError, oneshot::Sender<()>),
}

/// A QoS 1 message handed to rumqttc, waiting for its packet id and then its PUBACK.
#[derive(Clone, Debug)]
enum InFlight {
    /// An outbox entry.
    Outbox { seq: u64, id: String, kind: String },
    /// Birth, death, responses, reports: nothing to delete on PUBACK.
    Other { what: &'static str },
}

pub(crate) fn run(
    settings: LinkSettings,
    options: MqttOptions,
    counter: SessionCounter,
    outbox: Arc<Outbox>,
    events: crossbeam_channel::Sender<LinkEvent>,
    control: mpsc::UnboundedReceiver<Control>,
    status: Arc<Mutex<LinkStatus>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "the uplink cannot start its runtime; nothing will reach the district");
            return;
        }
    };
    runtime.block_on(async move {
        let mut options = options;
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(settings.session_expiry.as_secs() as u32));
        let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        let (poll_tx, poll_rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(poll(eventloop, counter, settings.clone(), poll_tx));
        let mut actor = Actor::new(settings, client, outbox, events, status);
        actor.run(poll_rx, control).await;
        poller.abort();
    });
}

/// Owns the event loop: sets the will before each attempt, forwards events,
/// backs off after failures.
async fn poll(
    mut eventloop: EventLoop,
    mut counter: SessionCounter,
    settings: LinkSettings,
    tx: mpsc::UnboundedSender<FromPoller>,
) {
    // Capped at 5 s: after an outage, queued alerts must not wait long for the next attempt.
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5), std::process::id() as u64);
    loop {
        let session = counter.advance();
        eventloop.options.set_last_will(will(&settings, session));
        if tx.send(FromPoller::Attempt(session)).is_err() {
            return;
        }
        let connected_at = loop {
            match eventloop.poll().await {
                Ok(event) => {
                    if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                        backoff.reset();
                    }
                    if tx.send(FromPoller::Event(Box::new(event))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let (go, wait) = oneshot::channel();
                    if tx.send(FromPoller::Lost(e, go)).is_err() {
                        return;
                    }
                    let _ = wait.await;
                    break Instant::now();
                }
            }
        };
        // Drop what rumqttc kept for retransmission (and anything queued
        // before the actor saw the loss): the outbox is replayed instead.
        eventloop.clean();
        eventloop.pending.clear();
        let delay = backoff.next_delay();
        tokio::time::sleep_until((connected_at + delay).into()).await;
    }
}

fn will(settings: &LinkSettings, session: u64) -> LastWill {
    let doc = status_doc(settings, session, false, Some(reason::CONNECTION_LOST));
    LastWill::new(settings.topics.status(), doc.to_json(), QoS::AtLeastOnce, true, None)
}

fn status_doc(settings: &LinkSettings, session: u64, online: bool, why: Option<&str>) -> StatusDoc {
    let id = &settings.identity;
    StatusDoc {
        online,
        session,
        boot_id: id.boot_id.clone(),
        version: id.version.clone(),
        started: id.started.clone(),
        uptime_s: online.then(|| id.started_at.elapsed().as_secs()),
        reason: why.map(str::to_string),
    }
}

struct Actor {
    settings: LinkSettings,
    client: AsyncClient,
    outbox: Arc<Outbox>,
    events: crossbeam_channel::Sender<LinkEvent>,
    status: Arc<Mutex<LinkStatus>>,
    connected: bool,
    session: u64,
    window: usize,
    /// Handed to rumqttc, waiting for `Outgoing::Publish(pkid)` (same order as requested).
    unnumbered: VecDeque<Option<InFlight>>,
    /// Numbered, waiting for the PUBACK.
    numbered: HashMap<u16, InFlight>,
    /// The last outbox seq handed over on this connection.
    cursor: Option<u64>,
    /// Alerts the broker took, waiting for the district's ack: seq -> (id, when published).
    awaiting: BTreeMap<u64, (String, Instant)>,
    /// A shutdown waiting for the death's PUBACK.
    closing: Option<(std::sync::mpsc::Sender<()>, Instant)>,
    /// The DISCONNECT is queued; stop once it is written (or after a second).
    stopping: Option<Instant>,
    last_error: Option<String>,
}

impl Actor {
    fn new(
        settings: LinkSettings,
        client: AsyncClient,
        outbox: Arc<Outbox>,
        events: crossbeam_channel::Sender<LinkEvent>,
        status: Arc<Mutex<LinkStatus>>,
    ) -> Actor {
        Actor {
            settings,
            client,
            outbox,
            events,
            status,
            connected: false,
            session: 0,
            window: WINDOW,
            unnumbered: VecDeque::new(),
            numbered: HashMap::new(),
            cursor: None,
            awaiting: BTreeMap::new(),
            closing: None,
            stopping: None,
            last_error: None,
        }
    }

    async fn run(
        &mut self,
        mut poller: mpsc::UnboundedReceiver<FromPoller>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                from = poller.recv() => match from {
                    Some(FromPoller::Attempt(session)) => {
                        self.session = session;
                        self.update(|s| s.session = session);
                    }
                    Some(FromPoller::Event(e)) if self.stopping.is_some() && matches!(*e, Event::Outgoing(Sent::Disconnect)) => return,
                    Some(FromPoller::Event(event)) => self.on_event(*event),
                    Some(FromPoller::Lost(e, go)) => {
                        self.on_lost(&e);
                        let _ = go.send(());
                        if self.closing.is_some() || self.stopping.is_some() {
                            return;
                        }
                    }
                    None => return,
                },
                c = control.recv() => match c {
                    Some(Control::Wake) => self.drain(),
                    Some(Control::Publish(m)) => self.publish_other(m),
                    Some(Control::Rebirth) => self.birth(),
                    Some(Control::Shutdown(done)) => self.start_closing(done),
                    None => return,
                },
                _ = tick.tick() => {
                    if let Some((_, since)) = &self.closing
                        && since.elapsed() > Duration::from_secs(3)
                    {
                        tracing::warn!("the broker did not confirm the offline status in time; disconnecting anyway");
                        self.finish_closing();
                    }
                    if self.stopping.is_some_and(|at| at.elapsed() > Duration::from_secs(1)) {
                        return;
                    }
                    self.resend_overdue();
                }
            }
            if self.closing.is_some() && !self.death_in_flight() {
                self.finish_closing();
            }
            if self.stopping.is_some() && !self.connected {
                return;
            }
        }
    }

    /// Connected and not shutting down.
    fn accepting(&self) -> bool {
        self.connected && self.closing.is_none() && self.stopping.is_none()
    }

    fn update(&self, f: impl FnOnce(&mut LinkStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.window = ack
                    .properties
                    .as_ref()
                    .and_then(|p| p.receive_max)
                    .map_or(WINDOW, |m| (m as usize).clamp(1, WINDOW));
                self.on_connected(ack.session_present);
            }
            Event::Outgoing(Sent::Publish(pkid)) => match self.unnumbered.pop_front() {
                Some(Some(entry)) => {
                    self.numbered.insert(pkid, entry);
                }
                Some(None) => {}
                None => tracing::warn!(pkid, "rumqttc numbered a publish the uplink did not request"),
            },
            Event::Incoming(Packet::PubAck(ack)) => self.on_puback(ack),
            Event::Incoming(Packet::SubAck(ack)) => {
                for (code, filter) in ack.return_codes.iter().zip(self.filters()) {
                    if !matches!(code, SubscribeReasonCode::Success(_)) {
                        tracing::error!(filter = %filter.path, reason = ?code, "the broker refused a subscription; check the broker ACL (docs/mqtt.md)");
                    }
                }
            }
            Event::Incoming(Packet::Publish(p)) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                if topic == self.settings.topics.ack() {
                    self.on_district_ack(&p.payload);
                    return;
                }
                let props = p.properties.unwrap_or_default();
                let _ = self.events.send(LinkEvent::Message(Incoming {
                    topic,
                    payload: p.payload,
                    response_topic: props.response_topic,
                    correlation: props.correlation_data,
                    retain: p.retain,
                }));
            }
            Event::Incoming(Packet::Disconnect(d)) => {
                tracing::warn!(reason = ?d.reason_code, "the broker closed the session");
            }
            _ => {}
        }
    }

    fn filters(&self) -> [Filter; 3] {
        let t = &self.settings.topics;
        [
            Filter::new(t.command_filter(), QoS::AtLeastOnce),
            Filter::new(t.config_desired(), QoS::AtLeastOnce),
            Filter::new(t.ack(), QoS::AtLeastOnce),
        ]
    }

    fn on_connected(&mut self, session_present: bool) {
        self.connected = true;
        self.forget_connection();
        self.last_error = None;
        let session = self.session;
        self.update(|s| {
            s.connected = true;
            s.connects += 1;
            s.last_error = None;
        });
        tracing::info!(broker = %self.settings.endpoint.url(), session, session_present, "connected to the district broker");
        if let Err(e) = self.client.try_subscribe_many(self.filters()) {
            tracing::error!(error = %e, "cannot subscribe to commands, config and acks");
        }
        self.birth();
        let _ = self.events.send(LinkEvent::Connected { session });
        self.drain();
    }

    /// Drops what belonged to one connection: packet ids, alerts waiting for
    /// an ack, the replay cursor. The outbox still holds every message.
    fn forget_connection(&mut self) {
        self.unnumbered.clear();
        self.numbered.clear();
        self.awaiting.clear();
        self.cursor = None;
    }

    fn on_lost(&mut self, e: &ConnectionError) {
        let was = std::mem::replace(&mut self.connected, false);
        self.forget_connection();
        let words = explain(&self.settings.endpoint, e);
        // Log a repeated failure once, not every backoff step.
        if was || self.last_error.as_deref() != Some(words.as_str()) {
            if was {
                tracing::warn!(error = %words, "lost the district broker; alerts wait in the outbox");
            } else {
                tracing::error!(error = %words, "cannot connect to the district broker; retrying");
            }
        }
        self.last_error = Some(words.clone());
        self.update(|s| {
            s.connected = false;
            s.last_error = Some(words.clone());
        });
        let _ = self.events.send(LinkEvent::Disconnected { reason: words });
    }

    fn birth(&mut self) {
        if !self.connected {
            return;
        }
        let doc = status_doc(&self.settings, self.session, true, None);
        self.request(
            self.settings.topics.status(),
            doc.to_json().into(),
            true,
            true,
            None,
            Some(InFlight::Other { what: "birth" }),
        );
    }

    /// Hands a publish to rumqttc; false if its queue is full.
    fn request(
        &mut self,
        topic: String,
        payload: Bytes,
        retain: bool,
        qos1: bool,
        correlation: Option<Bytes>,
        entry: Option<InFlight>,
    ) -> bool {
        let props = PublishProperties { correlation_data: correlation, ..PublishProperties::default() };
        let qos = if qos1 { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        match self.client.try_publish_with_properties(topic, qos, retain, payload, props) {
            Ok(()) => {
                self.unnumbered.push_back(if qos1 { entry } else { None });
                self.update(|s| s.published += 1);
                true
            }
            Err(_) => false,
        }
    }

    fn in_flight(&self) -> usize {
        self.unnumbered.iter().filter(|e| e.is_some()).count() + self.numbered.len()
    }

    /// Publishes outbox entries after the cursor while the window has room.
    fn drain(&mut self) {
        if !self.accepting() {
            return;
        }
        loop {
            let room = self.window.saturating_sub(self.in_flight());
            if room == 0 {
                return;
            }
            let batch = match self.outbox.pending(self.cursor, room) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox; alerts are kept but not sent");
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            for m in batch {
                let topic = format!("{}/{}", self.settings.topics.prefix(), m.kind);
                let retain = m.kind.ends_with("/snapshot");
                let entry = InFlight::Outbox { seq: m.seq, id: m.id, kind: m.kind };
                if !self.request(topic, m.payload.into(), retain, true, None, Some(entry)) {
                    return; // rumqttc's queue is full; the next PUBACK drains again
                }
                self.cursor = Some(m.seq);
            }
        }
    }

    fn publish_other(&mut self, m: Outgoing) {
        let sent = self.accepting()
            && self.request(
                m.topic,
                m.payload,
                m.retain,
                m.qos1,
                m.correlation,
                Some(InFlight::Other { what: "message" }),
            );
        if !sent {
            self.update(|s| s.dropped += 1);
        }
    }

    fn on_puback(&mut self, ack: PubAck) {
        let Some(entry) = self.numbered.remove(&ack.pkid) else {
            tracing::warn!(pkid = ack.pkid, "PUBACK for a packet the uplink does not know; replaying the outbox");
            self.cursor = None;
            self.drain();
            return;
        };
        let ok = matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers);
        match entry {
            InFlight::Outbox { seq, id, kind } if ok => {
                if kind == "alerts" && self.settings.ack == AckPolicy::District {
                    self.awaiting.insert(seq, (id, Instant::now()));
                } else if let Err(e) = self.outbox.ack_relaxed(&id) {
                    tracing::error!(error = %e, id, "cannot remove a delivered message from the outbox; it will be sent again");
                }
            }
            InFlight::Outbox { seq, id, kind } => {
                tracing::error!(id, kind, reason = ?ack.reason, "the broker refused a message; check the broker ACL (docs/mqtt.md); it stays in the outbox and is retried");
                self.update(|s| s.refused += 1);
                self.awaiting.insert(seq, (id, Instant::now()));
            }
            InFlight::Other { what } if !ok => {
                tracing::warn!(what, reason = ?ack.reason, "the broker refused a message");
                self.update(|s| s.refused += 1);
            }
            InFlight::Other { .. } => {}
        }
        self.drain();
    }

    fn on_district_ack(&mut self, payload: &[u8]) {
        let Some(id) = vigil_uplink::parse_ack(&self.settings.topics, payload) else {
            tracing::warn!(payload = %String::from_utf8_lossy(&payload[..payload.len().min(80)]), "ignoring an ack that is not one of this device's alert ids");
            return;
        };
        match self.outbox.ack_relaxed(id) {
            Ok(_) => self.awaiting.retain(|_, (a, _)| a != id),
            Err(e) => tracing::error!(error = %e, id, "cannot remove an acknowledged alert from the outbox"),
        }
    }

    /// Alerts the district has not acknowledged in time are published again
    /// (from the oldest overdue one on; duplicates are harmless).
    fn resend_overdue(&mut self) {
        if !self.accepting() {
            return;
        }
        let after = self.settings.resend_after;
        let Some(oldest) = self.awaiting.iter().find(|(_, (_, at))| at.elapsed() >= after).map(|(seq, _)| *seq) else {
            return;
        };
        tracing::info!(seq = oldest, "alerts not acknowledged by the district in time; publishing them again");
        self.awaiting.retain(|seq, _| *seq < oldest);
        self.cursor = oldest.checked_sub(1);
        self.drain();
    }

    /// Starts a clean shutdown: the offline status first, then DISCONNECT.
    fn start_closing(&mut self, done: std::sync::mpsc::Sender<()>) {
        self.closing = Some((done, Instant::now()));
        if !self.connected {
            self.finish_closing();
            return;
        }
        let doc = status_doc(&self.settings, self.session, false, Some(reason::SHUTDOWN));
        let topic = self.settings.topics.status();
        if !self.request(topic, doc.to_json().into(), true, true, None, Some(InFlight::Other { what: "death" })) {
            self.finish_closing();
        }
    }

    fn death_in_flight(&self) -> bool {
        let death = |e: &InFlight| matches!(e, InFlight::Other { what: "death" });
        self.unnumbered.iter().flatten().any(death) || self.numbered.values().any(death)
    }

    fn finish_closing(&mut self) {
        if self.connected {
            let _ = self.client.try_disconnect();
            self.stopping = Some(Instant::now());
        } else {
            self.stopping = Some(Instant::now() - Duration::from_secs(2));
        }
        self.update(|s| s.connected = false);
        if let Some((done, _)) = self.closing.take() {
            let _ = done.send(());
        }
    }
}
