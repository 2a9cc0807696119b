//! libosdp's peripheral device (PD) as the real reader on the other end of
//! an OSDP line (`tests/peers/osdp_pd.py`, run by the venv's Python, which
//! has PyPI `libosdp`), joined to the test by a PTY pair from socat.
//!
//! The test opens [`OsdpPd::cp_path`] as its serial port. The PD reports
//! every command it receives as a JSON line ([`OsdpPd::events`],
//! [`OsdpPd::wait_for`]) and takes control lines: inputs, going silent,
//! noise on the line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long socat and the PD may take to come up.
const STARTUP: Duration = Duration::from_secs(20);
/// How long the PD may take to apply a control line.
const CONTROL: Duration = Duration::from_secs(5);

/// The PD script.
pub fn osdp_pd_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers/osdp_pd.py")
}

/// The venv's Python, the one with `libosdp` (`cargo xtask setup` creates it).
fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// How the PD is set up.
#[derive(Clone, Debug)]
pub struct OsdpPdOptions {
    /// Its address, 0-126.
    pub address: u8,
    /// Its Secure Channel Base Key; `None` puts it in install mode (it then
    /// only accepts the default key SCBK-D).
    pub scbk: Option<[u8; 16]>,
    /// How many inputs (door contacts) it has.
    pub inputs: u8,
    /// How many outputs (relays) it has.
    pub outputs: u8,
}

impl Default for OsdpPdOptions {
    fn default() -> Self {
        OsdpPdOptions { address: 1, scbk: Some(*b"vigil-test-scbk!"), inputs: 4, outputs: 2 }
    }
}

#[derive(Default)]
struct Events {
    lines: Mutex<Vec<Value>>,
    changed: Condvar,
}

/// A running libosdp PD on a PTY; socat and the PD are stopped on drop.
pub struct OsdpPd {
    socat: Child,
    pd: Child,
    stdin: Option<ChildStdin>,
    events: Arc<Events>,
    cp_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl OsdpPd {
    /// Makes the PTY pair and starts the PD on one end.
    pub fn start(options: &OsdpPdOptions) -> Result<OsdpPd, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a folder for the PTY links: {e}"))?;
        let pd_path = dir.path().join("pd");
        let cp_path = dir.path().join("cp");
        let mut socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", pd_path.display()))
            .arg(format!("pty,raw,echo=0,link={}", cp_path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run socat (Debian package socat): {e}"))?;
        let deadline = Instant::now() + STARTUP;
        while !(pd_path.exists() && cp_path.exists()) {
            if Instant::now() > deadline || matches!(socat.try_wait(), Ok(Some(_))) {
                let _ = socat.kill();
                let _ = socat.wait();
                return Err(format!("socat did not make the PTY pair in {}", dir.path().display()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }

        let python = venv_python();
        let script = osdp_pd_script();
        let scbk =
            options.scbk.map_or_else(|| "install".to_string(), |k| k.iter().map(|b| format!("{b:02x}")).collect());
        let pd = Command::new(&python)
            .arg(&script)
            .arg("--serial")
            .arg(&pd_path)
            .args(["--address", &options.address.to_string()])
            .args(["--scbk", &scbk])
            .args(["--inputs", &options.inputs.to_string()])
            .args(["--outputs", &options.outputs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut pd = match pd {
            Ok(pd) => pd,
            Err(e) => {
                let _ = socat.kill();
                let _ = socat.wait();
                return Err(format!(
                    "cannot run {} {}: {e} (the venv with libosdp comes from `cargo xtask setup`)",
                    python.display(),
                    script.display()
                ));
            }
        };
        let stdin = pd.stdin.take();
        let stdout = pd.stdout.take().ok_or("the PD's stdout is not piped")?;
        let events = Arc::new(Events::default());
        let sink = Arc::clone(&events);
        // Read on a thread so a PD that hangs cannot hang the test.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lines.lock().unwrap_or_else(|e| e.into_inner()).push(value);
                sink.changed.notify_all();
            }
        });
        let peer = OsdpPd { socat, pd, stdin, events, cp_path, _dir: dir };
        peer.wait_for(STARTUP, |e| e["event"] == "ready").map_err(|e| {
            format!("the libosdp PD did not start (see its stderr above; it needs the venv's libosdp): {e}")
        })?;
        Ok(peer)
    }

    /// The control panel's end of the line, to open as a serial port.
    pub fn cp_path(&self) -> &Path {
        &self.cp_path
    }

    /// Everything the PD reported so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.events.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until the PD has reported an event matching `matches`, and returns it.
    pub fn wait_for(&self, within: Duration, matches: impl Fn(&Value) -> bool) -> Result<Value, String> {
        self.wait_for_after(0, within, matches)
    }

    /// Like [`OsdpPd::wait_for`], for events after the first `skip`
    /// (`events().len()` taken before an action).
    pub fn wait_for_after(
        &self,
        skip: usize,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        let mut lines = self.events.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(found) = lines.iter().skip(skip).find(|e| matches(e)) {
                return Ok(found.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no such PD event within {within:?}; it reported: {:?}",
                    &lines[skip.min(lines.len())..]
                ));
            }
            lines = self.events.changed.wait_timeout(lines, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Sets input `n` (0-based) as osdp_ISTAT will report it.
    pub fn set_input(&mut self, n: u8, active: bool) -> Result<(), String> {
        self.control(&format!("input {n} {}", u8::from(active)))
    }

    /// Makes the PD stop answering (it drops what arrives), or answer again.
    pub fn set_silent(&mut self, silent: bool) -> Result<(), String> {
        self.control(&format!("silent {}", if silent { "on" } else { "off" }))
    }

    /// Writes raw bytes on the line towards the control panel.
    pub fn send_noise(&mut self, bytes: &[u8]) -> Result<(), String> {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.control(&format!("noise {hex}"))
    }

    fn control(&mut self, line: &str) -> Result<(), String> {
        let skip = self.events().len();
        let stdin = self.stdin.as_mut().ok_or("the PD was stopped")?;
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).map_err(|e| format!("cannot write to the PD: {e}"))?;
        let answer = self.wait_for_after(skip, CONTROL, |e| e["event"] == "ok" || e["event"] == "error")?;
        match answer["event"].as_str() {
            Some("ok") => Ok(()),
            _ => Err(format!("the PD refused {line:?}: {}", answer["message"])),
        }
    }

    /// Stops the PD (asking it to quit, then killing it) and socat.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.pd.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.pd.kill();
        let _ = self.pd.wait();
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

impl Drop for OsdpPd {
    fn drop(&mut self) {
        self.stop();
    }
}
