//! OSDP v2.2 control panel (CP) with Secure Channel, over any byte stream.
//!
//! Vigil's door-lock plugin uses it to drive access-control hardware during
//! a lockdown: lock relays (osdp_OUT, confirmed with osdp_OSTAT), door
//! contacts (osdp_ISTAT), reader LEDs and buzzers. It builds for the host and
//! for `wasm32-wasip2`.
//!
//! Layers, bottom up:
//! - [`frame`]: frames on the wire (SOM, address, length, control byte,
//!   security block, CRC-16 or checksum) and their reassembly from a byte
//!   stream with noise, splits and merges.
//! - [`crypto`]: the Secure Channel's AES-128 session keys, cryptograms,
//!   MAC chain and data encryption.
//! - [`message`]: command and reply codes, the commands Vigil sends, the
//!   replies it decodes, NAK codes in words.
//! - [`cp`]: the pure protocol state machine: bytes and time in, bytes and
//!   events out (sequence numbers, retries, handshake, MAC chaining,
//!   online/offline).
//! - [`ControlPanel`]: the blocking driver over a [`Link`], and the calls a
//!   plugin makes.
//!
//! A plugin adapts the host's serial port to [`Link`] and talks to a reader:
//!
//! ```no_run
//! use std::time::Duration;
//! use vigil_osdp::{ControlPanel, Event, Link, Options, OutputAction, Reply, Scbk};
//!
//! /// The host's serial port (`serial::open(name)` in a plugin).
//! struct Port;
//!
//! impl Link for Port {
//!     fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
//!         // port.write(bytes)
//!         Ok(())
//!     }
//!     fn recv(&mut self, max: usize, timeout: Duration) -> std::io::Result<Vec<u8>> {
//!         // port.read(max, timeout.as_millis())
//!         Ok(Vec::new())
//!     }
//! }
//!
//! # fn main() -> Result<(), vigil_osdp::Error> {
//! let scbk = Scbk::from_hex("00112233445566778899aabbccddeeff").expect("32 hex digits");
//! let mut reader = ControlPanel::new(Port, 1, scbk, Options::default())?;
//! reader.connect()?; // the Secure Channel, or an error saying why not
//! reader.set_output(0, OutputAction::On)?; // lock the door
//! for event in reader.poll()? {
//!     if let Event::Reply { reply: Reply::InputStatus(contacts), .. } = event {
//!         println!("door contacts: {contacts:?}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Architecture Invariant: nothing leaves in the clear. Commands are only
//! sent over an established Secure Channel, and the install-mode default key
//! SCBK-D is refused unless the caller explicitly allows it.

pub mod cp;
pub mod crc;
pub mod crypto;
mod error;
pub mod frame;
pub mod message;
mod panel;

pub use cp::{Config, Cp, Event};
pub use crypto::Scbk;
pub use error::{Error, ScFailure, SessionLoss};
pub use message::{
    Buzzer, Capability, Command, DeviceId, Led, LedAction, LedColor, LedPattern, LocalStatus, NakCode, OutputAction,
    Reply,
};
pub use panel::{ControlPanel, Link, Options};
