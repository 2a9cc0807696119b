//! The real peers Vigil's tests and benchmarks run against, started on a free
//! loopback port and stopped on drop: GStreamer's RTSP server as a fake IP
//! camera ([`RtspServer`]) and Eclipse Mosquitto as the district's MQTT broker
//! ([`Mosquitto`], with throwaway TLS certificates from [`TestCerts`]).

mod certs;
pub mod modbus;
mod mosquitto;
pub mod osdp;
pub mod rauc;
mod rtsp;
pub mod sipp;

pub use certs::TestCerts;
pub use mosquitto::{Mosquitto, MosquittoOptions};
pub use rtsp::{RtspServer, rtsp_server_script};

/// A loopback port with nothing listening on it (bound, then released).
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9)
}
