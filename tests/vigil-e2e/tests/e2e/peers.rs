//! Real peers the end-to-end tests start (see the `vigil-peers` crate).

pub use vigil_peers::{RtspServer, dead_port};

/// The RTSP test server with extra `args`, or the test fails saying what is missing.
pub fn rtsp_server(args: &[&str]) -> RtspServer {
    RtspServer::start(args).unwrap_or_else(|e| panic!("{e}"))
}
