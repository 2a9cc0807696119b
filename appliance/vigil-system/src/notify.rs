//! The systemd notify protocol (`sd_notify(3)`), written out: one datagram of
//! `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET`.
//!
//! When `$NOTIFY_SOCKET` is unset (vigild run by hand, in tests, or under a
//! service manager that is not systemd) every call is a no-op, so callers
//! never need to know whether they run under systemd.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Why a notify message could not be sent, or the environment could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` names something that is not a unix socket address.
    #[error("NOTIFY_SOCKET={value:?} is not a unix socket path or @abstract name")]
    BadSocket {
        /// The variable's value.
        value: String,
    },
    /// Sending the datagram failed.
    #[error("could not notify systemd at {socket}: {source}")]
    Send {
        /// The socket as given in `$NOTIFY_SOCKET`.
        socket: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `$WATCHDOG_USEC` or `$WATCHDOG_PID` is not a number.
    #[error("{name}={value:?} is not a positive integer")]
    BadWatchdogVar {
        /// The variable's name.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

/// A handle on the service manager's notify socket (or on nothing, when not
/// run under systemd). Cheap to clone; safe to use from any thread.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug, Clone)]
struct Target {
    /// As written in `$NOTIFY_SOCKET`, for error messages.
    display: String,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for; a disabled one when it is unset or empty.
    pub fn from_env() -> Result<Self, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Self::to_socket(&v),
            _ => Ok(Self::disabled()),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self { target: None }
    }

    /// A notifier for an explicit `$NOTIFY_SOCKET` value: a filesystem path,
    /// or `@name` for a socket in the abstract namespace.
    pub fn to_socket(value: &OsStr) -> Result<Self, NotifyError> {
        let bytes = value.as_bytes();
        let bad = || NotifyError::BadSocket { value: value.to_string_lossy().into_owned() };
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map_err(|_| bad())?,
            Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(value)).map_err(|_| bad())?,
            // systemd also knows `vsock:` addresses; vigild never runs in a VM guest that needs them.
            _ => return Err(bad()),
        };
        Ok(Self { target: Some(Target { display: value.to_string_lossy().into_owned(), addr }) })
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1`: startup finished (with `Type=notify`, systemd starts dependents now).
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1")
    }

    /// `STOPPING=1`: orderly shutdown has begun.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1")
    }

    /// `STATUS=...`: a one-line status shown by `systemctl status`.
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        self.send(&status_line(text))
    }

    /// `WATCHDOG=1`: the keep-alive that resets systemd's watchdog timer.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1")
    }

    /// Sends raw `KEY=VALUE` lines (newline-separated) as one datagram.
    pub fn send(&self, message: &str) -> Result<(), NotifyError> {
        let Some(target) = &self.target else { return Ok(()) };
        let send = || -> io::Result<()> {
            let socket = UnixDatagram::unbound()?;
            socket.send_to_addr(message.as_bytes(), &target.addr)?;
            Ok(())
        };
        send().map_err(|source| NotifyError::Send { socket: target.display.clone(), source })
    }
}

/// `STATUS=` with the text on one line (the protocol is line-based).
fn status_line(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
    format!("STATUS={one_line}")
}

/// The watchdog interval systemd expects keep-alives within, from
/// `$WATCHDOG_USEC` and `$WATCHDOG_PID`, or `None` when the watchdog is off
/// (unset, zero, or meant for another process).
pub fn watchdog_interval_from_env() -> Result<Option<Duration>, NotifyError> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval_from_env`] on given values: `pid` is `$WATCHDOG_PID`,
/// `our_pid` this process's id.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec.filter(|s| !s.is_empty()) else { return Ok(None) };
    let usec: u64 = usec
        .trim()
        .parse()
        .map_err(|_| NotifyError::BadWatchdogVar { name: "WATCHDOG_USEC", value: usec.to_owned() })?;
    if let Some(pid) = pid.filter(|s| !s.is_empty()) {
        let pid: u32 = pid
            .trim()
            .parse()
            .map_err(|_| NotifyError::BadWatchdogVar { name: "WATCHDOG_PID", value: pid.to_owned() })?;
        if pid != our_pid {
            return Ok(None);
        }
    }
    Ok((usec > 0).then(|| Duration::from_micros(usec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_follows_sd_watchdog_enabled_rules() {
        assert_eq!(watchdog_interval(None, None, 7).unwrap(), None);
        assert_eq!(watchdog_interval(Some("30000000"), None, 7).unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7).unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7).unwrap(), None, "meant for another process");
        assert_eq!(watchdog_interval(Some("0"), None, 7).unwrap(), None);
        assert!(matches!(
            watchdog_interval(Some("3s"), None, 7),
            Err(NotifyError::BadWatchdogVar { name: "WATCHDOG_USEC", .. })
        ));
        assert!(matches!(
            watchdog_interval(Some("1"), Some("x"), 7),
            Err(NotifyError::BadWatchdogVar { name: "WATCHDOG_PID", .. })
        ));
    }

    #[test]
    fn status_is_kept_on_one_line() {
        assert_eq!(status_line("camera 2\nstale"), "STATUS=camera 2 stale");
    }

    #[test]
    fn relative_socket_names_are_rejected() {
        assert!(matches!(Notifier::to_socket(OsStr::new("run/notify")), Err(NotifyError::BadSocket { .. })));
        assert!(!Notifier::disabled().is_enabled());
        Notifier::disabled().ready().expect("a disabled notifier is a no-op");
    }
}
