//! The appliance OS over D-Bus and sockets: systemd notify and watchdog, RAUC
//! updates, time sync state.
//!
//! - [`notify`]: the `sd_notify` datagram protocol, written out (no libsystemd).
//! - [`watchdog`]: keep-alives gated on component heartbeats (pure [`watchdog::Gate`] + thread).
//! - [`rauc`]: a typed client for RAUC 1.8's D-Bus API.
//! - [`update`]: the persistent `os.update` job (pure state machine, job file, runner, downloads).
//! - [`clock`]: NTP sync state (timedated, else the kernel).
//! - [`appliance`]: what vigild starts from all of this.
//!
//! Architecture Invariant: this is the only crate that knows zbus, RAUC or
//! systemd's protocols; it knows nothing of cameras, MQTT or vigild's config.

pub mod appliance;
mod bus;
pub mod clock;
pub mod notify;
pub mod rauc;
pub mod update;
pub mod watchdog;

pub use bus::Bus;
