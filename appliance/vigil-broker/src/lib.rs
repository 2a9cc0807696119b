//! An MQTT broker embedded in `vigild`, for a school without a district
//! broker (a standalone school, the demo): rumqttd 0.20 listening on
//! loopback only, without authentication or TLS.
//!
//! Architecture Invariant: this crate knows rumqttd and nothing of Vigil's
//! topics or payloads; the uplink talks to it like to any other broker.
//!
//! # What rumqttd 0.20 does and does not do for Vigil
//!
//! Checked by `tests/broker.rs` against this broker with rumqttc's MQTT 5 client:
//!
//! - Supported: QoS 1 publish/subscribe; retained messages (delivered to
//!   later subscribers with the retain flag set; cleared by an empty retained
//!   payload); Last Will (QoS 1, retained) published when a client's TCP
//!   connection drops without DISCONNECT; publish properties
//!   (`response_topic`, `correlation_data`, `content_type`, user properties)
//!   forwarded unchanged; `message_expiry_interval` honoured for messages
//!   queued for an offline persistent session (expired ones are dropped, the
//!   others arrive with the interval reduced by the time waited).
//! - Persistent sessions (`clean_start = false`) are kept in memory, but
//!   `session_expiry_interval` is ignored: a session survives its
//!   disconnect even when the client asked for expiry 0 (MQTT 5 says it
//!   ends). Tested.
//! - Any publish with an empty payload, retained or not, clears the topic's
//!   retained message (MQTT says only a retained one does). Tested.
//!
//! Read from rumqttd's source, not tested:
//!
//! - Sessions are never expired (the interval only caps the will delay), so
//!   each distinct persistent client id holds memory until the process exits.
//! - Nothing survives a restart of the broker or of `vigild`: retained
//!   messages and sessions live in memory only.
//! - Messages wait for slow or offline readers in bounded per-filter logs
//!   (8 segments of 1 MiB, see `settings.rs`); beyond that the oldest are dropped.
//! - Packets over 1 MiB are refused, and so is a CONNECT with keep-alive 0.
//! - rumqttd cannot be stopped; see [`EmbeddedBroker::stop`] for what this
//!   crate does instead.
//!
//! rumqttd logs through `tracing` under the `rumqttd` target, and logs a
//! client's ordinary DISCONNECT as an `error` (`router-drop
//! error=Recv(Disconnected)`, sometimes also `no-connection id N is already
//! gone`), so its levels cannot be trusted:
//! the daemon's filter should say `rumqttd=off`. This crate logs what matters
//! itself, under `vigil_broker`: listening, stopped, a listener that failed.

mod broker;
mod error;
mod probe;
mod settings;

pub use broker::EmbeddedBroker;
pub use error::BrokerError;
