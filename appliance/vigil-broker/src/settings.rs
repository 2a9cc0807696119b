//! The rumqttd settings of the embedded broker, sized for one appliance:
//! a handful of local clients and topics, bounded memory.

use std::net::SocketAddr;

use rumqttd::{ConnectionSettings, RouterConfig, ServerSettings};

/// The largest MQTT packet a client may send.
pub(crate) const MAX_PACKET_BYTES: usize = 1024 * 1024;
/// Size of one in-memory log segment per topic filter.
pub(crate) const SEGMENT_BYTES: usize = 1024 * 1024;
/// Segments kept per topic filter; older ones are dropped, so at most
/// `SEGMENT_BYTES * SEGMENT_COUNT` of messages wait for slow or offline readers.
pub(crate) const SEGMENT_COUNT: usize = 8;
/// Concurrent client connections.
const MAX_CONNECTIONS: usize = 256;
/// Unacknowledged QoS 1/2 messages per connection.
const MAX_INFLIGHT: usize = 100;
/// How long a new connection may take to send its CONNECT.
const CONNECT_TIMEOUT_MS: u16 = 5_000;

/// The router: message logs and session state, shared by all listeners.
pub(crate) fn router() -> RouterConfig {
    RouterConfig {
        max_connections: MAX_CONNECTIONS,
        max_outgoing_packet_count: 200,
        max_segment_size: SEGMENT_BYTES,
        max_segment_count: SEGMENT_COUNT,
        ..RouterConfig::default()
    }
}

/// One plain-TCP listener called `name` on `listen`, without authentication.
pub(crate) fn listener(name: &str, listen: SocketAddr) -> ServerSettings {
    ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: CONNECT_TIMEOUT_MS,
            max_payload_size: MAX_PACKET_BYTES,
            max_inflight_count: MAX_INFLIGHT,
            auth: None,
            external_auth: None,
            // Without this, rumqttd disconnects a client that publishes to a
            // topic no subscription matches yet. With it, each such topic gets
            // a log of its own (bounded like any other).
            dynamic_filters: true,
        },
    }
}
