//! The seam between door logic and a controller's protocol: numbered outputs
//! (relays driving locks) and inputs (door-position contacts). Modbus TCP
//! relay modules are here; OSDP readers are in [`crate::osdp`].

use std::time::Duration;

use crate::config::Link;

/// Why a controller request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    /// What went wrong, naming the controller's address.
    pub message: String,
    /// The controller cannot be used at all (unreachable, silent, gone, no
    /// secure channel): its other doors are not tried again in the same
    /// call, so one offline controller costs one timeout, not one per door.
    pub offline: bool,
}

/// A door controller's outputs and inputs.
///
/// A read answers `None` when the device has not told its state (an OSDP
/// reader that reports changes but cannot be asked): such a door is
/// `unknown`, never assumed locked.
pub trait Controller {
    /// Brings what the controller knows up to date, once per tick before its
    /// doors are read (OSDP: polls for the reader's reports). Modbus reads
    /// the device on every read, so it has nothing to do.
    fn refresh(&mut self) -> Result<(), LinkError> {
        Ok(())
    }
    /// Reads output `n`; `true` is energised (Modbus: the coil is on; OSDP: the output is active).
    /// Right after [`Controller::write_output`] of the same output, this is the confirmation.
    fn read_output(&mut self, n: u16) -> Result<Option<bool>, LinkError>;
    /// Sets output `n`.
    fn write_output(&mut self, n: u16, on: bool) -> Result<(), LinkError>;
    /// Reads input `n`; `true` is active (Modbus: the discrete input is on).
    fn read_input(&mut self, n: u16) -> Result<Option<bool>, LinkError>;
    /// Shows on the controller's own indicators whether any of its doors is
    /// held locked (OSDP: the reader's LED, and its buzzer when a lockdown
    /// starts). Called on every tick with the current answer; controllers
    /// without indicators do nothing.
    fn indicate(&mut self, _locked: bool) -> Result<(), LinkError> {
        Ok(())
    }
}

/// The backend for a configured link; an error says why it cannot be made.
pub fn open(link: &Link, timeout: Duration) -> Result<Box<dyn Controller>, String> {
    Ok(match link {
        Link::Modbus { address, unit } => {
            Box::new(Modbus { address: address.clone(), unit: *unit, timeout, client: None })
        }
        Link::Osdp(osdp) => crate::osdp::open(osdp, timeout)?,
    })
}

/// A Modbus TCP relay or I/O module: outputs are coils, inputs discrete inputs.
/// Connects on first use and again after any failure.
struct Modbus {
    address: String,
    unit: u8,
    timeout: Duration,
    client: Option<vigil_modbus::Client>,
}

impl Modbus {
    fn with<T>(
        &mut self,
        op: impl FnOnce(&mut vigil_modbus::Client) -> Result<T, vigil_modbus::Error>,
    ) -> Result<T, LinkError> {
        let client = match &mut self.client {
            Some(client) => client,
            None => self
                .client
                .insert(vigil_modbus::Client::connect(&self.address, self.unit, self.timeout).map_err(link_error)?),
        };
        op(client).map_err(link_error)
    }
}

fn link_error(e: vigil_modbus::Error) -> LinkError {
    LinkError { offline: e.is_unreachable(), message: e.to_string() }
}

impl Controller for Modbus {
    fn read_output(&mut self, n: u16) -> Result<Option<bool>, LinkError> {
        self.with(|c| c.read_coils(n, 1)).map(|bits| Some(bits[0]))
    }

    fn write_output(&mut self, n: u16, on: bool) -> Result<(), LinkError> {
        self.with(|c| c.write_single_coil(n, on))
    }

    fn read_input(&mut self, n: u16) -> Result<Option<bool>, LinkError> {
        self.with(|c| c.read_discrete_inputs(n, 1)).map(|bits| Some(bits[0]))
    }
}
