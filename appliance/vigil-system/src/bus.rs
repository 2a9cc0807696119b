//! Which D-Bus the crate's clients talk to.

use zbus::blocking::Connection;

/// The bus a service is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (`$DBUS_SYSTEM_BUS_ADDRESS`, else the standard socket).
    System,
    /// An explicit D-Bus address (tests' private buses).
    Address(String),
}

impl Bus {
    pub(crate) fn connect(&self) -> zbus::Result<Connection> {
        match self {
            Bus::System => Connection::system(),
            Bus::Address(a) => zbus::blocking::connection::Builder::address(a.as_str())?.build(),
        }
    }
}

impl std::fmt::Display for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bus::System => f.write_str("the system bus"),
            Bus::Address(a) => write!(f, "the bus at {a}"),
        }
    }
}
