//! Modbus TCP client (coils and discrete inputs) for plugins, blocking std I/O, builds for wasm32-wasip2.
//!
//! [`Client`] speaks function codes 1 (read coils), 2 (read discrete inputs),
//! 5 (write single coil) and 15 (write multiple coils) to one unit behind a
//! `host:port`, one request at a time. Every reply is bounded by the timeout
//! given at connect, its transaction id and unit are checked, and exception
//! replies come back as [`Error::Exception`] with the spec's names. After a
//! timeout, a closed connection or a malformed reply the connection is
//! dropped (its byte stream can no longer be trusted) and the next call
//! connects again.
//!
//! The framing is pure and lives in [`frame`]; only this module touches sockets.
//!
//! ```no_run
//! use std::time::Duration;
//! let mut relay = vigil_modbus::Client::connect("10.0.0.5:502", 1, Duration::from_millis(500))?;
//! relay.write_single_coil(3, true)?;
//! assert_eq!(relay.read_coils(3, 1)?, [true]);
//! # Ok::<(), vigil_modbus::Error>(())
//! ```

pub mod frame;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub use frame::{ExceptionCode, Function};
use frame::{MBAP_LEN, Reply, ReplyError, Request};

/// A Modbus TCP connection to one unit.
#[derive(Debug)]
pub struct Client {
    addr: String,
    unit: u8,
    timeout: Duration,
    stream: Option<TcpStream>,
    transaction: u16,
}

/// What went wrong talking to a device; every message names its address.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be made (refused, unreachable, no such host).
    Connect {
        /// The device's `host:port`.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// Connecting or waiting for a reply took longer than the timeout.
    Timeout {
        /// The device's `host:port`.
        addr: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The device closed the connection before replying.
    Closed {
        /// The device's `host:port`.
        addr: String,
    },
    /// Sending or receiving failed for another reason.
    Io {
        /// The device's `host:port`.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The device refused the request with an exception reply.
    Exception {
        /// The device's `host:port`.
        addr: String,
        /// The request's function.
        function: Function,
        /// The exception code.
        code: ExceptionCode,
    },
    /// The reply does not fit the request or the protocol.
    Malformed {
        /// The device's `host:port`.
        addr: String,
        /// How.
        reason: String,
    },
    /// The request breaks the spec's limits; nothing was sent.
    InvalidRequest {
        /// The device's `host:port`.
        addr: String,
        /// Which limit.
        reason: String,
    },
}

impl Error {
    /// Whether the device did not answer at all (unreachable, silent, gone),
    /// as opposed to answering wrongly.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::Timeout { .. } | Error::Closed { .. } | Error::Io { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { addr, source } => write!(f, "cannot connect to the Modbus device at {addr}: {source}"),
            Error::Timeout { addr, after } => {
                write!(f, "the Modbus device at {addr} did not answer within {} ms", after.as_millis())
            }
            Error::Closed { addr } => write!(f, "the Modbus device at {addr} closed the connection"),
            Error::Io { addr, source } => write!(f, "talking to the Modbus device at {addr} failed: {source}"),
            Error::Exception { addr, function, code } => {
                write!(f, "the Modbus device at {addr} refused {function} with {code}")
            }
            Error::Malformed { addr, reason } => write!(f, "the Modbus device at {addr} sent a bad reply: {reason}"),
            Error::InvalidRequest { addr, reason } => {
                write!(f, "refused to send to the Modbus device at {addr}: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Client {
    /// Connects to `addr` ("host:port"), talking to `unit`; `timeout` bounds connect and every reply.
    pub fn connect(addr: &str, unit: u8, timeout: Duration) -> Result<Client, Error> {
        let mut client = Client { addr: addr.to_string(), unit, timeout, stream: None, transaction: 0 };
        client.stream()?;
        Ok(client)
    }

    /// The device's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The unit id requests go to.
    pub fn unit(&self) -> u8 {
        self.unit
    }

    /// Whether a connection is open now (it is reopened on the next call if not).
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// Reads `count` coils (1 to 2000) from `start`.
    pub fn read_coils(&mut self, start: u16, count: u16) -> Result<Vec<bool>, Error> {
        self.read(Request::ReadCoils { start, count })
    }

    /// Reads `count` discrete inputs (1 to 2000) from `start`.
    pub fn read_discrete_inputs(&mut self, start: u16, count: u16) -> Result<Vec<bool>, Error> {
        self.read(Request::ReadDiscreteInputs { start, count })
    }

    /// Sets the coil at `address` on or off.
    pub fn write_single_coil(&mut self, address: u16, on: bool) -> Result<(), Error> {
        self.exchange(&Request::WriteSingleCoil { address, on }).map(drop)
    }

    /// Sets consecutive coils (1 to 1968) from `start`.
    pub fn write_multiple_coils(&mut self, start: u16, values: &[bool]) -> Result<(), Error> {
        self.exchange(&Request::WriteMultipleCoils { start, values: values.to_vec() }).map(drop)
    }

    fn read(&mut self, request: Request) -> Result<Vec<bool>, Error> {
        match self.exchange(&request)? {
            Reply::Bits(bits) => Ok(bits),
            Reply::Written => Err(self.malformed("a read was answered like a write".into())),
        }
    }

    /// Sends one request and waits for its reply; any failure but an exception
    /// reply or a refused request drops the connection.
    fn exchange(&mut self, request: &Request) -> Result<Reply, Error> {
        request.validate().map_err(|reason| Error::InvalidRequest { addr: self.addr.clone(), reason })?;
        let result = self.try_exchange(request);
        if let Err(e) = &result
            && !matches!(e, Error::Exception { .. })
        {
            self.stream = None;
        }
        result
    }

    fn try_exchange(&mut self, request: &Request) -> Result<Reply, Error> {
        self.transaction = self.transaction.wrapping_add(1);
        let transaction = self.transaction;
        let frame = request.encode(transaction, self.unit);
        let deadline = Instant::now() + self.timeout;
        let stream = self.stream()?;
        stream.write_all(&frame).map_err(|e| io_error(&self.addr, self.timeout, e))?;

        let mut header = [0u8; MBAP_LEN];
        self.read_until(deadline, &mut header)?;
        let header = frame::parse_header(header).map_err(|reason| self.malformed(reason))?;
        let mut pdu = vec![0u8; header.pdu_len];
        self.read_until(deadline, &mut pdu)?;
        if header.transaction != transaction {
            return Err(self.malformed(format!(
                "the reply carries transaction id {}, the request {transaction}",
                header.transaction
            )));
        }
        if header.unit != self.unit {
            return Err(
                self.malformed(format!("the reply comes from unit {}, the request went to {}", header.unit, self.unit))
            );
        }
        request.decode_reply(&pdu).map_err(|e| match e {
            ReplyError::Exception(code) => {
                Error::Exception { addr: self.addr.clone(), function: request.function(), code }
            }
            ReplyError::Malformed(reason) => self.malformed(reason),
        })
    }

    /// Fills `buf` from the connection, however the bytes arrive, by `deadline`.
    fn read_until(&mut self, deadline: Instant, buf: &mut [u8]) -> Result<(), Error> {
        let (addr, timeout) = (self.addr.clone(), self.timeout);
        let stream = self.stream.as_mut().ok_or_else(|| Error::Closed { addr: addr.clone() })?;
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout { addr, after: timeout });
            }
            stream.set_read_timeout(Some(left)).map_err(|e| io_error(&addr, timeout, e))?;
            match stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(Error::Closed { addr }),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&addr, timeout, e)),
            }
        }
        Ok(())
    }

    /// The open connection, connecting first if there is none.
    fn stream(&mut self) -> Result<&mut TcpStream, Error> {
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => open(&self.addr, self.timeout)?,
        };
        Ok(self.stream.insert(stream))
    }

    fn malformed(&self, reason: String) -> Error {
        Error::Malformed { addr: self.addr.clone(), reason }
    }
}

/// Connects to the first of `addr`'s addresses that accepts within `timeout`.
fn open(addr: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let candidates: Vec<SocketAddr> =
        addr.to_socket_addrs().map_err(|source| Error::Connect { addr: addr.to_string(), source })?.collect();
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing");
    for candidate in candidates {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(stream) => {
                // Requests are small and answered one at a time: don't let Nagle hold them.
                let _ = stream.set_nodelay(true);
                stream.set_write_timeout(Some(timeout)).map_err(|e| io_error(addr, timeout, e))?;
                return Ok(stream);
            }
            Err(e) if is_timeout(&e) => return Err(Error::Timeout { addr: addr.to_string(), after: timeout }),
            Err(e) => last = e,
        }
    }
    Err(Error::Connect { addr: addr.to_string(), source: last })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

fn io_error(addr: &str, timeout: Duration, e: io::Error) -> Error {
    match e.kind() {
        _ if is_timeout(&e) => Error::Timeout { addr: addr.to_string(), after: timeout },
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof => {
            Error::Closed { addr: addr.to_string() }
        }
        _ => Error::Io { addr: addr.to_string(), source: e },
    }
}
