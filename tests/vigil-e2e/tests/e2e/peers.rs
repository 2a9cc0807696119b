//! Real peers the end-to-end tests start: GStreamer's RTSP server as a fake
//! IP camera (`tests/peers/rtsp_server.py`, run by the system Python, which
//! has the GObject bindings).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running RTSP server; killed on drop.
pub struct RtspServer {
    child: Child,
    port: u16,
    args: Vec<String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers/rtsp_server.py")
}

impl RtspServer {
    /// Starts the server on a free loopback port with extra `args`.
    pub fn start(args: &[&str]) -> RtspServer {
        RtspServer::on_port(0, args.iter().map(|a| a.to_string()).collect())
    }

    fn on_port(port: u16, args: Vec<String>) -> RtspServer {
        let mut child = Command::new("/usr/bin/python3")
            .arg(script())
            .arg("--port")
            .arg(port.to_string())
            .args(&args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the RTSP test server: {e}; install python3-gi and gir1.2-gst-rtsp-server-1.0")
            });
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line).expect("reading the server's READY line");
        let port = line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("the RTSP test server did not start (it said {line:?}); see its stderr above")
        });
        RtspServer { child, port, args }
    }

    /// `rtsp://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{path}", self.port)
    }

    /// Kills the server (like a camera losing power).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, as the camera coming back.
    pub fn restart(&mut self) {
        self.kill();
        let again = RtspServer::on_port(self.port, self.args.clone());
        *self = again;
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on loopback with nothing listening (bound, then released).
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
