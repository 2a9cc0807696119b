//! Why the embedded broker could not start.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Why [`crate::EmbeddedBroker::start`] failed; every variant names the address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The address is not a loopback address.
    #[error(
        "refusing to listen on {addr}: the embedded broker has no authentication and no TLS, so it only \
         listens on loopback (127.0.0.1 or ::1); point the school at a district broker instead"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address cannot be bound (in use, or not a local address).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address that failed.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// rumqttd's listener stopped (it failed to bind, typically because
    /// another process took the port after it was found free).
    #[error("the MQTT listener on {addr} stopped: {reason}")]
    Serve {
        /// The listener's address.
        addr: SocketAddr,
        /// rumqttd's error.
        reason: String,
    },
    /// The broker listens but did not complete an MQTT handshake in time.
    #[error("the broker on {addr} did not accept an MQTT connection within {timeout:?}: {reason}")]
    NotReady {
        /// The listener's address.
        addr: SocketAddr,
        /// How long it had.
        timeout: Duration,
        /// The last handshake failure.
        reason: String,
    },
    /// The broker's thread or runtime could not be created.
    #[error("cannot start the broker for {addr}: {source}")]
    Spawn {
        /// The address the broker was for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
}
