//! Starting and stopping the embedded broker.
//!
//! rumqttd's `Broker::start` blocks forever and cannot be stopped, so this
//! module assembles the same parts itself: rumqttd's router (spawned on its
//! own thread by rumqttd) and one rumqttd `Server` per protocol, run on a
//! tokio runtime on a thread of ours that ends when told to.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::{LinkType, Router, Server};
use tokio::sync::oneshot;

use crate::error::BrokerError;
use crate::probe::{self, Protocol};
use crate::settings;

/// How long the listeners may take to complete an MQTT handshake.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// How many free ports to try when asked for port 0 and another process takes the first.
const FREE_PORT_ATTEMPTS: usize = 3;

/// An MQTT broker on loopback: MQTT 5 on [`EmbeddedBroker::addr`] and MQTT
/// 3.1.1 on [`EmbeddedBroker::mqtt311_addr`]. Stopped on drop.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    mqtt311_addr: SocketAddr,
    /// Ends the listeners' runtime; `None` once stopped.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts an MQTT broker listening on `addr` (a loopback address; port 0
    /// picks a free port) for MQTT 5, plus MQTT 3.1.1 on a free port of the
    /// same IP, and returns once both complete an MQTT handshake (within 5 s).
    pub fn start(addr: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
        if !addr.ip().is_loopback() {
            return Err(BrokerError::NotLoopback { addr });
        }
        let attempts = if addr.port() == 0 { FREE_PORT_ATTEMPTS } else { 1 };
        let mut attempt = 1;
        loop {
            // rumqttd binds its own listeners and cannot be handed one, so the
            // ports are found (and `addr` checked) with a listener of ours first.
            let v5 = reserve(addr)?;
            let v311 = reserve(SocketAddr::new(addr.ip(), 0))?;
            match EmbeddedBroker::spawn(v5, v311) {
                // Another process took a port between our check and rumqttd's bind.
                Err(BrokerError::Serve { .. }) if attempt < attempts => attempt += 1,
                result => return result,
            }
        }
    }

    /// The MQTT 5 listener's address (with the actual port when started with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MQTT 3.1.1 listener's address (for tools such as `mosquitto_sub` that default to 3.1.1).
    pub fn mqtt311_addr(&self) -> SocketAddr {
        self.mqtt311_addr
    }

    /// Stops listening and closes every client connection (without publishing
    /// their wills); the ports are free again when this returns. rumqttd's
    /// router thread, which holds retained messages and sessions, cannot be
    /// ended: it stays, idle, until the process exits, and a broker started
    /// later starts empty with a router of its own.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        tracing::info!(addr = %self.addr, "embedded MQTT broker stopped");
    }

    /// Runs rumqttd on `v5` and `v311` and waits until both answer.
    fn spawn(v5: SocketAddr, v311: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
        let router_tx = Router::new(0, settings::router()).spawn();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (failed_tx, failed_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vigil-broker".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(source) => {
                        let _ = failed_tx.send(BrokerError::Spawn { addr: v5, source });
                        return;
                    }
                };
                let mut mqtt5 = Server::new(settings::listener("vigil-mqtt5", v5), router_tx.clone(), V5);
                let mut mqtt311 = Server::new(settings::listener("vigil-mqtt311", v311), router_tx, V4);
                runtime.block_on(async {
                    // A server only returns when its listener fails.
                    let failed = tokio::select! {
                        result = mqtt5.start(LinkType::Remote) => (v5, result),
                        result = mqtt311.start(LinkType::Remote) => (v311, result),
                        _ = stop_rx => return,
                    };
                    let reason = match failed.1 {
                        Ok(()) => "it returned without an error".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    tracing::error!(addr = %failed.0, reason, "embedded MQTT broker listener stopped");
                    let _ = failed_tx.send(BrokerError::Serve { addr: failed.0, reason });
                });
            })
            .map_err(|source| BrokerError::Spawn { addr: v5, source })?;

        let mut broker = EmbeddedBroker { addr: v5, mqtt311_addr: v311, stop: Some(stop_tx), thread: Some(thread) };
        let deadline = Instant::now() + READY_TIMEOUT;
        for (addr, protocol) in [(v5, Protocol::V5), (v311, Protocol::V311)] {
            loop {
                if let Ok(error) = failed_rx.try_recv() {
                    broker.stop();
                    return Err(error);
                }
                match probe::handshake(addr, protocol) {
                    Ok(()) => break,
                    Err(reason) if Instant::now() >= deadline => {
                        broker.stop();
                        return Err(BrokerError::NotReady { addr, timeout: READY_TIMEOUT, reason });
                    }
                    Err(_) => std::thread::sleep(PROBE_INTERVAL),
                }
            }
        }
        tracing::info!(addr = %v5, mqtt311_addr = %v311, "embedded MQTT broker listening");
        Ok(broker)
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

/// Checks that `addr` can be listened on and resolves port 0, releasing it again.
fn reserve(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    TcpListener::bind(addr)
        .and_then(|listener| listener.local_addr())
        .map_err(|source| BrokerError::Listen { addr, source })
}
