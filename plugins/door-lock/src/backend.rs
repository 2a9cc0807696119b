//! The seam between door logic and a controller's protocol: numbered outputs
//! (relays driving locks) and inputs (door-position contacts). Modbus TCP is
//! the backend today; an OSDP backend implements the same trait.

use std::time::Duration;

use crate::config::Link;

/// Why a controller request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    /// What went wrong, naming the controller's address.
    pub message: String,
    /// The controller did not answer at all (unreachable, silent, gone): its
    /// other doors are not tried again in the same call, so one offline
    /// controller costs one timeout, not one per door.
    pub offline: bool,
}

/// A door controller's outputs and inputs.
pub trait Controller {
    /// Reads output `n`; `true` is energised (Modbus: the coil is on).
    fn read_output(&mut self, n: u16) -> Result<bool, LinkError>;
    /// Sets output `n`.
    fn write_output(&mut self, n: u16, on: bool) -> Result<(), LinkError>;
    /// Reads input `n`; `true` is active (Modbus: the discrete input is on).
    fn read_input(&mut self, n: u16) -> Result<bool, LinkError>;
}

/// The backend for a configured link.
pub fn open(link: &Link, timeout: Duration) -> Box<dyn Controller> {
    match link {
        Link::Modbus { address, unit } => {
            Box::new(Modbus { address: address.clone(), unit: *unit, timeout, client: None })
        }
    }
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
    fn read_output(&mut self, n: u16) -> Result<bool, LinkError> {
        self.with(|c| c.read_coils(n, 1)).map(|bits| bits[0])
    }

    fn write_output(&mut self, n: u16, on: bool) -> Result<(), LinkError> {
        self.with(|c| c.write_single_coil(n, on))
    }

    fn read_input(&mut self, n: u16) -> Result<bool, LinkError> {
        self.with(|c| c.read_discrete_inputs(n, 1)).map(|bits| bits[0])
    }
}
