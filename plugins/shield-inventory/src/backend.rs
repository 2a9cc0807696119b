//! The seam between the inventory and a cabinet controller's protocol:
//! numbered digital inputs. Modbus TCP (discrete inputs) is the backend.

use std::time::Duration;

use crate::config::Link;

/// Why a controller request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    /// What went wrong, naming the controller's address.
    pub message: String,
    /// The controller did not answer at all (unreachable, silent, gone): its
    /// other cabinets are not tried again in the same call, and it is retried
    /// with backoff.
    pub offline: bool,
}

/// A cabinet controller's digital inputs.
pub trait Inputs {
    /// Reads `count` inputs from `first`; `true` is active (Modbus: the discrete input is on).
    fn read(&mut self, first: u16, count: u16) -> Result<Vec<bool>, LinkError>;
}

/// The Modbus TCP backend for `link`: connects on first use and again after any failure.
pub fn open(link: &Link, timeout: Duration) -> Box<dyn Inputs> {
    Box::new(Modbus { address: link.address.clone(), unit: link.unit, timeout, client: None })
}

struct Modbus {
    address: String,
    unit: u8,
    timeout: Duration,
    client: Option<vigil_modbus::Client>,
}

impl Inputs for Modbus {
    fn read(&mut self, first: u16, count: u16) -> Result<Vec<bool>, LinkError> {
        let client = match &mut self.client {
            Some(client) => client,
            None => self
                .client
                .insert(vigil_modbus::Client::connect(&self.address, self.unit, self.timeout).map_err(link_error)?),
        };
        client.read_discrete_inputs(first, count).map_err(link_error)
    }
}

fn link_error(e: vigil_modbus::Error) -> LinkError {
    LinkError { offline: e.is_unreachable(), message: e.to_string() }
}
