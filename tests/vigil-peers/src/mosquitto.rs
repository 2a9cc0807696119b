//! Eclipse Mosquitto (Debian's 2.0.11, `/usr/sbin/mosquitto`) as the district's
//! MQTT broker, with a generated config in a temporary directory: users,
//! ACL, TLS with client certificates, and persistence across restarts.
//!
//! What survives what, when [`MosquittoOptions::persistence`] is on:
//! - [`Mosquitto::stop`] (SIGTERM): Mosquitto writes its whole database on the
//!   way out, so retained messages, persistent sessions (their subscriptions)
//!   and the QoS 1/2 messages queued for them all survive [`Mosquitto::restart`].
//! - [`Mosquitto::kill`] (SIGKILL, a power cut): the config sets
//!   `autosave_on_changes true` with `autosave_interval 1`, so Mosquitto
//!   saves after every subscription change, retained message and queued
//!   message, at the end of the event-loop pass that made the change. That
//!   pass has already sent the PUBACK, and "Saving in-memory database" is
//!   logged before the write: a kill right after a PUBACK can lose the
//!   message. Once Mosquitto has answered anything later (another
//!   round trip), the change is on disk and survives the kill.
//!
//! Without persistence, a restart is an empty broker.
//!
//! Readiness is a TCP connect, which the log shows as a client that closed
//! its connection (or, with TLS, a failed handshake) right after startup.

use std::fs::{self, File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::certs::TestCerts;

/// The broker binary (Debian's `mosquitto` package).
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// The password-file tool from the same package.
const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";
/// How long the broker may take to accept a TCP connection.
const STARTUP: Duration = Duration::from_secs(10);
/// How long a SIGTERM'd broker may take to save and exit before it is killed.
const SHUTDOWN: Duration = Duration::from_secs(5);
/// How many lines of log a failure message quotes.
const LOG_TAIL_LINES: usize = 30;

/// What the broker is started with.
#[derive(Debug, Clone)]
pub struct MosquittoOptions {
    /// Users and their passwords (a `password_file`); empty means none.
    pub users: Vec<(String, String)>,
    /// The text of a Mosquitto `acl_file`, if any.
    pub acl: Option<String>,
    /// Listen with TLS ([`TestCerts`]) and require a client certificate signed by the test CA.
    pub tls: bool,
    /// Let clients connect without a username; `true` in [`Default`], set it
    /// to `false` together with `users` to test refused credentials.
    pub allow_anonymous: bool,
    /// Keep retained messages and persistent sessions on disk across [`Mosquitto::restart`].
    pub persistence: bool,
}

impl Default for MosquittoOptions {
    fn default() -> MosquittoOptions {
        MosquittoOptions { users: Vec::new(), acl: None, tls: false, allow_anonymous: true, persistence: false }
    }
}

/// A running Mosquitto on a loopback port; killed on drop, its directory removed.
pub struct Mosquitto {
    /// `None` while stopped. In a mutex so [`Mosquitto::is_running`] can reap through `&self`.
    child: Mutex<Option<Child>>,
    port: u16,
    tls: bool,
    certs: Option<TestCerts>,
    files: Files,
    /// Owns the files; dropped (removed) after the broker is killed.
    _dir: tempfile::TempDir,
}

/// The files of one broker, all in its temporary directory.
struct Files {
    conf: PathBuf,
    log: PathBuf,
    /// Mosquitto's stdout and stderr: what it says before it opens `log`.
    output: PathBuf,
}

impl Mosquitto {
    /// Starts a broker on a free loopback port and waits until it accepts TCP connections.
    pub fn start(opts: MosquittoOptions) -> Result<Mosquitto, String> {
        let dir = tempfile::Builder::new()
            .prefix("vigil-mosquitto-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory for mosquitto: {e}"))?;
        let root = dir.path();
        let port = free_port()?;
        let files = Files {
            conf: root.join("mosquitto.conf"),
            log: root.join("mosquitto.log"),
            output: root.join("output.log"),
        };

        let certs = if opts.tls { Some(TestCerts::generate(&root.join("certs"))?) } else { None };
        let password_file = if opts.users.is_empty() { None } else { Some(write_password_file(root, &opts.users)?) };
        let acl_file = match &opts.acl {
            Some(text) => {
                let path = root.join("acl");
                fs::write(&path, text).map_err(|e| format!("cannot write the ACL file {}: {e}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let persistence_dir = if opts.persistence {
            let path = root.join("persistence");
            fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            Some(path)
        } else {
            None
        };

        let conf = config_text(&Config {
            port,
            log: &files.log,
            allow_anonymous: opts.allow_anonymous,
            password_file: password_file.as_deref(),
            acl_file: acl_file.as_deref(),
            persistence_dir: persistence_dir.as_deref(),
            certs: certs.as_ref(),
        });
        fs::write(&files.conf, conf).map_err(|e| format!("cannot write {}: {e}", files.conf.display()))?;

        let mut broker = Mosquitto { child: Mutex::new(None), port, tls: opts.tls, certs, files, _dir: dir };
        broker.spawn()?;
        Ok(broker)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`, or `mqtts://…` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stops the broker gracefully (SIGTERM, which saves its database), waiting
    /// until it has exited; killed if it takes longer than 5 s. The port is kept for [`Mosquitto::restart`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child().take() else { return };
        let terminated = Pid::from_raw(child.id() as i32)
            .is_some_and(|pid| rustix::process::kill_process(pid, Signal::TERM).is_ok());
        let deadline = Instant::now() + SHUTDOWN;
        while terminated && Instant::now() < deadline {
            match child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                _ => return,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the broker (SIGKILL), like a power cut: it saves nothing on the way out.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again (stopping it first if it runs) on the same port
    /// with the same config and persistence directory.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    /// Whether the broker process is alive.
    pub fn is_running(&self) -> bool {
        let mut child = self.child();
        match child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                // It exited on its own: reap it, so `stop` and `kill` have nothing to do.
                *child = None;
                false
            }
            None => false,
        }
    }

    /// The test PKI, when started with TLS.
    pub fn certs(&self) -> Option<&TestCerts> {
        self.certs.as_ref()
    }

    /// The broker's log file, then what it printed itself, for failure messages.
    pub fn log(&self) -> String {
        let log = fs::read(&self.files.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let output = fs::read(&self.files.output).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        if output.is_empty() { log } else { format!("{log}--- mosquitto stdout/stderr ---\n{output}") }
    }

    /// Runs mosquitto on `self.port` and waits until it accepts a TCP connection.
    fn spawn(&mut self) -> Result<(), String> {
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.files.output)
            .map_err(|e| format!("cannot open {}: {e}", self.files.output.display()))?;
        let output_err = output.try_clone().map_err(|e| format!("cannot open {}: {e}", self.files.output.display()))?;
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.files.conf)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err)
            .spawn()
            .map_err(|e| format!("cannot run {MOSQUITTO} (Debian package mosquitto): {e}"))?;

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "mosquitto exited ({status}) before listening on {addr}; its log ends:\n{}",
                    self.log_tail()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                *self.child() = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "mosquitto did not accept connections on {addr} within {STARTUP:?}; its log ends:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of [`Mosquitto::log`].
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// The child slot; a panic elsewhere while it was held leaves it usable.
    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What goes into `mosquitto.conf`.
struct Config<'a> {
    port: u16,
    log: &'a Path,
    allow_anonymous: bool,
    password_file: Option<&'a Path>,
    acl_file: Option<&'a Path>,
    persistence_dir: Option<&'a Path>,
    certs: Option<&'a TestCerts>,
}

/// The text of `mosquitto.conf` for `config`.
fn config_text(config: &Config) -> String {
    // Run as root, Mosquitto 2 switches to the user `mosquitto`, which cannot
    // read our 0700 temporary directory; `user root` keeps it as root. Run as
    // anyone else, it cannot switch user and ignores the option.
    let mut conf = String::from("user root\n");
    conf += &format!("log_dest file {}\nlog_type all\n", config.log.display());
    conf += &format!("allow_anonymous {}\n", config.allow_anonymous);
    if let Some(path) = config.password_file {
        conf += &format!("password_file {}\n", path.display());
    }
    if let Some(path) = config.acl_file {
        conf += &format!("acl_file {}\n", path.display());
    }
    if let Some(dir) = config.persistence_dir {
        // Save after every change, not every 30 minutes, so a kill loses next to nothing.
        conf += &format!(
            "persistence true\npersistence_location {}/\nautosave_on_changes true\nautosave_interval 1\n",
            dir.display()
        );
    }
    conf += &format!("listener {} 127.0.0.1\n", config.port);
    if let Some(certs) = config.certs {
        conf += &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            certs.ca.display(),
            certs.server_cert.display(),
            certs.server_key.display()
        );
    }
    conf
}

/// Writes `users` into a Mosquitto password file (hashed by `mosquitto_passwd`).
fn write_password_file(dir: &Path, users: &[(String, String)]) -> Result<PathBuf, String> {
    let path = dir.join("passwords");
    // mosquitto_passwd -b only updates an existing file.
    File::create(&path).map_err(|e| format!("cannot create the password file {}: {e}", path.display()))?;
    for (user, password) in users {
        let out = Command::new(MOSQUITTO_PASSWD)
            .arg("-b")
            .arg(&path)
            .arg(user)
            .arg(password)
            .output()
            .map_err(|e| format!("cannot run {MOSQUITTO_PASSWD} (Debian package mosquitto): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{MOSQUITTO_PASSWD} could not add user {user:?} to {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(path)
}

/// A loopback port nothing listens on (bound, read, released).
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}
