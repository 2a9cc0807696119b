//! The one owner of the MQTT connection to the district broker.
//!
//! ```text
//!            ┌──────────── link thread (tokio, current-thread) ─────────────┐
//! outbox ───▶│ actor: drains the outbox in seq order, a window at a time;   │──▶ rumqttc ──▶ broker
//! (redb)     │ maps PUBACKs back to outbox entries; birth, acks, commands   │◀── events ◀──
//!  ▲         │ poller: owns the EventLoop, sets the will before each attempt│
//!  │         └──────────────────────────────────────────────────────────────┘
//! supervisor pushes (fsync) ──wake()──▶          LinkEvent ──▶ vigild's district module
//! ```
//!
//! Delivery rules (the "lose nothing" contract):
//! - A message leaves the outbox only when it is safe: an `alerts` message
//!   when the district acknowledges its id (or, with `ack = "broker"`, at the
//!   PUBACK); CAP and snapshot messages at the broker's PUBACK.
//! - After every (re)connect the whole outbox is published again from the
//!   oldest entry, in order; ids are stable, so duplicates are harmless.
//!   rumqttc's own retransmission queue is emptied on every disconnect, so
//!   the outbox is the only source of what gets sent.
//! - Publishing never blocks: the actor keeps at most [`WINDOW`] QoS 1
//!   messages in flight and uses `try_publish`. Nothing upstream (the
//!   supervisor, the cameras) ever waits for the network.
//!
//! Session numbers follow Sparkplug's `bdSeq`: each connection attempt takes
//! the next number and registers the death message with it as the will; the
//! birth after the CONNACK carries the same number.

mod actor;
mod endpoint;
mod session;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vigil_config::AckPolicy;
use vigil_outbox::Outbox;
use vigil_uplink::Topics;

pub use endpoint::{Endpoint, MAX_PACKET, TlsSetupError, explain};
pub use session::SessionCounter;

/// The most QoS 1 messages in flight at once (fewer if the broker's receive maximum is lower).
pub const WINDOW: usize = 16;

/// Who this run of vigild is, for the birth message.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Changes on every start.
    pub boot_id: String,
    /// vigild's version.
    pub version: String,
    /// When this run started (RFC 3339 UTC).
    pub started: String,
    /// The same instant, for uptime.
    pub started_at: Instant,
}

/// Everything the link needs to know.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    /// The broker.
    pub endpoint: Endpoint,
    /// MQTT client id.
    pub client_id: String,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// How long the broker keeps the session (and queued commands) while the device is away.
    pub session_expiry: Duration,
    /// When an `alerts` message leaves the outbox.
    pub ack: AckPolicy,
    /// Republish an alert the district has not acknowledged after this long.
    pub resend_after: Duration,
    /// The device's topics.
    pub topics: Topics,
    /// Where the session counter lives.
    pub session_file: PathBuf,
    /// For the birth message.
    pub identity: Identity,
}

/// A message for the district that need not survive a restart (telemetry,
/// responses, reports): sent if connected, dropped and counted otherwise.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Full topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Retained.
    pub retain: bool,
    /// QoS 1 (else 0).
    pub qos1: bool,
    /// MQTT 5 correlation data, echoed from a request.
    pub correlation: Option<Bytes>,
}

/// A message from the district (a command or the desired config).
#[derive(Clone, Debug)]
pub struct Incoming {
    /// Full topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Where to answer (MQTT 5 response topic).
    pub response_topic: Option<String>,
    /// What to echo in the answer.
    pub correlation: Option<Bytes>,
    /// Retained (a stored `config/desired` delivered on subscribe).
    pub retain: bool,
}

/// What the link tells its owner.
#[derive(Clone, Debug)]
pub enum LinkEvent {
    /// Connected, subscribed and born: publish retained state again.
    Connected {
        /// The session number.
        session: u64,
    },
    /// The connection failed or dropped; the link retries by itself.
    Disconnected {
        /// What went wrong, in words (see [`explain`]).
        reason: String,
    },
    /// A command or config document arrived.
    Message(Incoming),
}

/// The link's state, for status and telemetry.
#[derive(Clone, Debug, Default)]
pub struct LinkStatus {
    /// Connected now.
    pub connected: bool,
    /// The current (or last) session number.
    pub session: u64,
    /// Successful connections since start.
    pub connects: u64,
    /// Messages handed to the broker since start.
    pub published: u64,
    /// Best-effort messages dropped because the link was down or busy.
    pub dropped: u64,
    /// Publishes the broker refused (PUBACK with an error reason).
    pub refused: u64,
    /// The last connection error.
    pub last_error: Option<String>,
}

enum Control {
    Wake,
    Publish(Outgoing),
    Rebirth,
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// A handle for telling the link things; cheap to clone.
#[derive(Clone)]
pub struct LinkHandle {
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    status: Arc<Mutex<LinkStatus>>,
}

impl LinkHandle {
    /// New messages are in the outbox.
    pub fn wake(&self) {
        let _ = self.control.send(Control::Wake);
    }

    /// Sends a best-effort message.
    pub fn publish(&self, message: Outgoing) {
        let _ = self.control.send(Control::Publish(message));
    }

    /// Publishes the birth again (the `rebirth` command).
    pub fn rebirth(&self) {
        let _ = self.control.send(Control::Rebirth);
    }

    /// The link's state now.
    pub fn status(&self) -> LinkStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Why the link could not start.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A TLS file is missing or unusable.
    #[error("uplink TLS: {0}")]
    Tls(#[from] TlsSetupError),
    /// The session counter is unreadable.
    #[error("uplink: {0}")]
    Session(String),
    /// The thread could not start.
    #[error("uplink: cannot start the link thread: {0}")]
    Thread(std::io::Error),
}

/// The running link. [`Link::shutdown`] says goodbye; dropping it just stops.
pub struct Link {
    handle: LinkHandle,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// Starts connecting in the background. Errors here are configuration
    /// errors (unreadable certificates); network trouble is retried forever
    /// and reported through [`LinkEvent::Disconnected`] and the status.
    pub fn start(
        settings: LinkSettings,
        outbox: Arc<Outbox>,
        events: crossbeam_channel::Sender<LinkEvent>,
    ) -> Result<Link, LinkError> {
        let options = settings.endpoint.options(&settings.client_id, settings.keep_alive)?;
        let counter = SessionCounter::open(&settings.session_file).map_err(LinkError::Session)?;
        let (control_tx, control_rx) = tokio::sync::mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(LinkStatus { session: counter.current(), ..LinkStatus::default() }));
        let handle = LinkHandle { control: control_tx, status: status.clone() };
        let thread = std::thread::Builder::new()
            .name("uplink".into())
            .spawn(move || actor::run(settings, options, counter, outbox, events, control_rx, status))
            .map_err(LinkError::Thread)?;
        Ok(Link { handle, thread: Some(thread) })
    }

    /// A handle for waking, publishing and status.
    pub fn handle(&self) -> LinkHandle {
        self.handle.clone()
    }

    /// Publishes the offline status (if connected), waits up to `timeout`
    /// for the broker to take it, disconnects and stops.
    pub fn shutdown(mut self, timeout: Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.handle.control.send(Control::Shutdown(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout + Duration::from_secs(1));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let (tx, _rx) = std::sync::mpsc::channel();
            let _ = self.handle.control.send(Control::Shutdown(tx));
            let _ = t.join();
        }
    }
}
