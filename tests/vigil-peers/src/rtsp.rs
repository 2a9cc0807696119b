//! GStreamer's RTSP server as a fake IP camera (`tests/peers/rtsp_server.py`, run by
//! the system Python, the one with the GObject bindings).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The Python that has Debian's `python3-gi`.
const PYTHON: &str = "/usr/bin/python3";
/// How long the server may take to say it listens.
const STARTUP: Duration = Duration::from_secs(20);

/// The RTSP test server script.
pub fn rtsp_server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers/rtsp_server.py")
}

/// A running RTSP test server; killed on drop.
pub struct RtspServer {
    child: Child,
    port: u16,
    args: Vec<String>,
}

impl RtspServer {
    /// Starts the server on a free loopback port with extra `args` (`--password`, `--clip`).
    pub fn start(args: &[&str]) -> Result<RtspServer, String> {
        RtspServer::on_port(0, args.iter().map(|a| a.to_string()).collect())
    }

    /// Starts the server on `port` (0: a free one).
    pub fn on_port(port: u16, args: Vec<String>) -> Result<RtspServer, String> {
        let script = rtsp_server_script();
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {PYTHON} {}: {e}", script.display()))?;
        let stdout = child.stdout.take().ok_or("the server's stdout is not piped")?;
        let (tx, rx) = mpsc::channel();
        // Read on a thread so a server that hangs before READY cannot hang the test.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("READY ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        match rx.recv_timeout(STARTUP) {
            Ok(Some(port)) => Ok(RtspServer { child, port, args }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the RTSP test server did not start within {STARTUP:?} (see its stderr above); it needs {PYTHON} with \
                     python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins base, good, bad, ugly and libav"
                ))
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id, for signals (`kill -STOP` freezes the camera).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `rtsp://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{path}", self.port)
    }

    /// Kills the server, like a camera losing power.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, as the camera coming back.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        *self = RtspServer::on_port(self.port, self.args.clone())?;
        Ok(())
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}
