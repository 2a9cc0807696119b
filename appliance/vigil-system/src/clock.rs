//! Wall-clock sanity: is the clock synchronized, so evidence timestamps can
//! be trusted. (The device's identity is vigil-config's: `device.id`, else
//! derived from `/etc/machine-id`.)

use zbus::blocking::Connection;

use crate::Bus;

#[zbus::proxy(
    interface = "org.freedesktop.timedate1",
    default_service = "org.freedesktop.timedate1",
    default_path = "/org/freedesktop/timedate1",
    gen_async = false,
    blocking_name = "TimedateProxy"
)]
trait Timedate {
    #[zbus(property, name = "NTPSynchronized")]
    fn ntp_synchronized(&self) -> zbus::Result<bool>;
}

/// Whether the wall clock is synchronized, and who said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeStatus {
    /// `Some(true)` synchronized, `Some(false)` not, `None` nobody could tell.
    pub synchronized: Option<bool>,
    /// Where the answer came from.
    pub source: TimeSource,
    /// The kernel's maximum error estimate in microseconds (kernel source only).
    pub max_error_us: Option<i64>,
}

/// Who answered a [`TimeStatus`] query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// systemd-timedated's `NTPSynchronized` on the system bus.
    Timedated,
    /// The kernel's `adjtimex(2)` maximum error, used when timedated is absent.
    Kernel,
    /// Neither could be asked; the text says why.
    Unknown(String),
}

impl TimeSource {
    /// A short stable name for status documents: `timedated`, `kernel`, `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TimeSource::Timedated => "timedated",
            TimeSource::Kernel => "kernel",
            TimeSource::Unknown(_) => "unknown",
        }
    }
}

/// Asks timedated on the system bus, falling back to the kernel.
pub fn time_status() -> TimeStatus {
    time_status_on(&Bus::System)
}

/// Asks timedated on `bus`, falling back to the kernel when the bus or
/// timedated is absent (as on a system without systemd).
pub fn time_status_on(bus: &Bus) -> TimeStatus {
    let timedated = bus.connect().and_then(|c| timedated_synchronized(&c));
    match timedated {
        Ok(synced) => TimeStatus { synchronized: Some(synced), source: TimeSource::Timedated, max_error_us: None },
        Err(e) => {
            tracing::debug!(error = %e, %bus, "timedated not available; asking the kernel");
            kernel_time_status()
        }
    }
}

/// timedated's `NTPSynchronized` on `conn`.
fn timedated_synchronized(conn: &Connection) -> zbus::Result<bool> {
    TimedateProxy::builder(conn).cache_properties(zbus::proxy::CacheProperties::No).build()?.ntp_synchronized()
}

/// The kernel's view via `adjtimex(2)` in read-only mode.
pub fn kernel_time_status() -> TimeStatus {
    // SAFETY: an all-zero `timex` is valid; with `modes == 0` adjtimex only reads.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed `timex` for the call's duration.
    if unsafe { libc::adjtimex(&mut tx) } < 0 {
        let e = std::io::Error::last_os_error();
        return TimeStatus {
            synchronized: None,
            source: TimeSource::Unknown(format!("adjtimex failed: {e}")),
            max_error_us: None,
        };
    }
    TimeStatus {
        synchronized: Some(kernel_synchronized(tx.maxerror)),
        source: TimeSource::Kernel,
        max_error_us: Some(tx.maxerror),
    }
}

/// The kernel's maximum error estimate (µs) at which it gives up on NTP
/// (`NTP_PHASE_LIMIT`, 16 s): it then also sets `STA_UNSYNC`.
const NTP_PHASE_LIMIT_US: i64 = 16_000_000;

/// Synchronized when the kernel's maximum error is below 16 s: the rule
/// timedated's `NTPSynchronized` uses, so both sources agree. `STA_UNSYNC`
/// alone is not trusted because NTP daemons also set it just to keep the
/// kernel from writing the RTC.
pub fn kernel_synchronized(max_error_us: i64) -> bool {
    max_error_us < NTP_PHASE_LIMIT_US
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_sync_follows_the_max_error() {
        assert!(kernel_synchronized(0));
        assert!(kernel_synchronized(15_999_999));
        assert!(!kernel_synchronized(16_000_000));
    }

    #[test]
    fn the_kernel_answers_without_timedated() {
        let status = kernel_time_status();
        assert_eq!(status.source, TimeSource::Kernel);
        assert!(status.synchronized.is_some());
    }
}
