//! A Modbus TCP device: pymodbus's TCP server (`tests/peers/modbus_sim.py`,
//! run by the venv's Python) over coils and discrete inputs the test reads and
//! steers through a control channel (JSON lines on the script's stdin and
//! stdout).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// How long the script may take to say it listens.
const STARTUP: Duration = Duration::from_secs(20);
/// How long one control command may take to be answered.
const CONTROL: Duration = Duration::from_secs(10);

/// The device script.
pub fn modbus_sim_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers/modbus_sim.py")
}

/// The venv's Python, the one with pymodbus (`cargo xtask setup` creates it).
pub fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// A running simulated Modbus TCP device on a free loopback port (unit id: any); stopped on drop.
pub struct ModbusSim {
    child: Child,
    port: u16,
    control: Mutex<Control>,
}

struct Control {
    stdin: ChildStdin,
    replies: Receiver<String>,
}

impl ModbusSim {
    /// Starts a device with `coils` coils and `discrete_inputs` discrete inputs, all off, at address 0 up.
    pub fn start(coils: u16, discrete_inputs: u16) -> std::io::Result<ModbusSim> {
        let python = venv_python();
        let script = modbus_sim_script();
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--port", "0", "--coils", &coils.to_string(), "--discrete-inputs", &discrete_inputs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot run {} {}: {e}", python.display(), script.display()))
            })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = mpsc::channel();
        let (reply_tx, replies) = mpsc::channel();
        // Read on a thread so a script that hangs cannot hang the test.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match line.strip_prefix("READY ") {
                    Some(port) => drop(ready_tx.send(port.trim().parse::<u16>().ok())),
                    None => drop(reply_tx.send(line)),
                }
            }
        });
        match ready_rx.recv_timeout(STARTUP) {
            Ok(Some(port)) => Ok(ModbusSim { child, port, control: Mutex::new(Control { stdin, replies }) }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(std::io::Error::other(format!(
                    "the Modbus simulator {} did not start within {STARTUP:?} (see its stderr above); it needs {} with \
                     pymodbus 3.16 (cargo xtask setup)",
                    script.display(),
                    python.display()
                )))
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the device's coils hold now, from address 0.
    pub fn coils(&self) -> Vec<bool> {
        let reply = self.command(r#"{"op":"coils"}"#.to_string());
        let list = reply
            .split_once(r#""coils": ["#)
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(list, _)| list)
            .unwrap_or_else(|| panic!("the Modbus simulator's coils reply has no list: {reply}"));
        list.split(',').map(str::trim).filter(|v| !v.is_empty()).map(|v| v == "true").collect()
    }

    /// Sets consecutive coils from `start`, as the device's own panel or a technician would.
    pub fn set_coils(&self, start: u16, values: &[bool]) {
        self.command(format!(r#"{{"op":"set_coils","start":{start},"values":[{}]}}"#, json_bools(values)));
    }

    /// Sets one discrete input.
    pub fn set_discrete_input(&self, address: u16, on: bool) {
        self.set_discrete_inputs(address, &[on]);
    }

    /// Sets consecutive discrete inputs from `start`.
    pub fn set_discrete_inputs(&self, start: u16, values: &[bool]) {
        self.command(format!(r#"{{"op":"set_discrete_inputs","start":{start},"values":[{}]}}"#, json_bools(values)));
    }

    /// Makes the device ignore every request (`true`: offline) or answer again.
    pub fn stop_responding(&self, on: bool) {
        self.command(format!(r#"{{"op":"silent","on":{on}}}"#));
    }

    /// Sticks a coil at `value` (set now, writes echoed but ignored: a failed relay), or unsticks it (`None`).
    pub fn stick_coil(&self, address: u16, value: Option<bool>) {
        let value = value.map_or("null".to_string(), |v| v.to_string());
        self.command(format!(r#"{{"op":"stick","address":{address},"value":{value}}}"#));
    }

    /// Sends one control command and returns its reply; panics (failing the test) if the script does not answer `ok`.
    fn command(&self, line: String) -> String {
        let control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let mut stdin = &control.stdin;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot send {line} to the Modbus simulator: {e}"));
        let reply = control
            .replies
            .recv_timeout(CONTROL)
            .unwrap_or_else(|e| panic!("the Modbus simulator did not answer {line}: {e}"));
        assert!(reply.contains(r#""ok": true"#), "the Modbus simulator refused {line}: {reply}");
        reply
    }
}

fn json_bools(values: &[bool]) -> String {
    values.iter().map(bool::to_string).collect::<Vec<_>>().join(",")
}

impl Drop for ModbusSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
