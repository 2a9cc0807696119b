//! Readiness check: a minimal MQTT CONNECT / CONNACK exchange over a blocking
//! socket. A bare TCP connect would only show that *something* listens, and
//! rumqttd logs an error for a connection that sends no CONNECT. The probe
//! then just closes the socket: rumqttd logs a DISCONNECT as two errors, a
//! closed connection at `info`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The client id of the probe connection.
const CLIENT_ID: &[u8] = b"vigil-broker-probe";
/// Keep-alive of the probe in seconds (rumqttd refuses 0).
const KEEP_ALIVE_SECS: u16 = 5;
/// How long one probe may take to connect and to read each part of the CONNACK.
const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// An MQTT protocol version, as its CONNECT protocol level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5 (level 5).
    V5,
}

/// Connects to `addr`, completes an MQTT handshake in `protocol` and closes the connection.
pub(crate) fn handshake(addr: SocketAddr, protocol: Protocol) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("TCP connect failed: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(io_err)?;
    stream.write_all(&connect_packet(protocol)).map_err(io_err)?;

    let mut header = [0u8; 1];
    stream.read_exact(&mut header).map_err(io_err)?;
    if header[0] != 0x20 {
        return Err(format!("expected a CONNACK, got packet type byte {:#04x}", header[0]));
    }
    let mut body = vec![0u8; read_remaining_length(&mut stream)?];
    stream.read_exact(&mut body).map_err(io_err)?;
    // Byte 0 is the acknowledge flags, byte 1 the return (3.1.1) or reason (5) code.
    match body.get(1) {
        Some(0) => {}
        Some(code) => return Err(format!("the broker refused the connection with code {code:#04x}")),
        None => return Err("the CONNACK is truncated".into()),
    }
    Ok(())
}

/// A CONNECT packet with a clean session, no will and no credentials.
fn connect_packet(protocol: Protocol) -> Vec<u8> {
    let mut variable = Vec::with_capacity(32);
    variable.extend_from_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T']);
    variable.push(match protocol {
        Protocol::V311 => 4,
        Protocol::V5 => 5,
    });
    variable.push(0x02); // clean session / clean start
    variable.extend_from_slice(&KEEP_ALIVE_SECS.to_be_bytes());
    if protocol == Protocol::V5 {
        variable.push(0x00); // no properties
    }
    variable.extend_from_slice(&(CLIENT_ID.len() as u16).to_be_bytes());
    variable.extend_from_slice(CLIENT_ID);

    // Well under 128 bytes, so the remaining length is a single byte.
    let mut packet = vec![0x10, variable.len() as u8];
    packet.extend_from_slice(&variable);
    packet
}

/// Reads MQTT's variable-length "remaining length" (1 to 4 bytes).
fn read_remaining_length(stream: &mut impl Read) -> Result<usize, String> {
    let mut value = 0usize;
    for shift in [0, 7, 14, 21] {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).map_err(io_err)?;
        value |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("the CONNACK's remaining length is longer than 4 bytes".into())
}

/// An I/O error as the probe's failure reason.
fn io_err(e: io::Error) -> String {
    format!("I/O error during the MQTT handshake: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_packets_have_the_right_lengths_and_levels() {
        let v5 = connect_packet(Protocol::V5);
        assert_eq!(usize::from(v5[1]), v5.len() - 2);
        assert_eq!(v5[8], 5);
        let v311 = connect_packet(Protocol::V311);
        assert_eq!(usize::from(v311[1]), v311.len() - 2);
        assert_eq!(v311[8], 4);
        assert_eq!(v5.len(), v311.len() + 1, "only MQTT 5 has the properties length");
    }

    #[test]
    fn remaining_length_decodes_multi_byte_values() {
        assert_eq!(read_remaining_length(&mut &[0x03][..]), Ok(3));
        assert_eq!(read_remaining_length(&mut &[0xc1, 0x02][..]), Ok(321));
        assert!(read_remaining_length(&mut &[0xff, 0xff, 0xff, 0xff][..]).is_err());
    }
}
