//! Modbus TCP framing as pure functions: requests to bytes, bytes to replies.
//! No sockets here; [`crate::Client`] drives the I/O.
//!
//! References: MODBUS Application Protocol Specification V1.1b3 (function
//! codes, limits, exception codes) and MODBUS Messaging on TCP/IP
//! Implementation Guide V1.0b (the MBAP header).

use std::fmt;

/// Length of the MBAP header: transaction id, protocol id, length, unit id.
pub const MBAP_LEN: usize = 7;
/// The largest PDU the spec allows (an ADU is at most 260 bytes on TCP).
pub const MAX_PDU_LEN: usize = 253;
/// Most coils or discrete inputs one read may ask for (spec 6.1, 6.2).
pub const MAX_READ_BITS: u16 = 2000;
/// Most coils one Write Multiple Coils may carry (spec 6.11).
pub const MAX_WRITE_BITS: u16 = 1968;

/// The function codes this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// 0x01 Read Coils.
    ReadCoils,
    /// 0x02 Read Discrete Inputs.
    ReadDiscreteInputs,
    /// 0x05 Write Single Coil.
    WriteSingleCoil,
    /// 0x0F Write Multiple Coils.
    WriteMultipleCoils,
}

impl Function {
    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Function::ReadCoils => 0x01,
            Function::ReadDiscreteInputs => 0x02,
            Function::WriteSingleCoil => 0x05,
            Function::WriteMultipleCoils => 0x0F,
        }
    }

    /// The spec's name, in words.
    pub fn name(self) -> &'static str {
        match self {
            Function::ReadCoils => "read coils",
            Function::ReadDiscreteInputs => "read discrete inputs",
            Function::WriteSingleCoil => "write single coil",
            Function::WriteMultipleCoils => "write multiple coils",
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (function {})", self.name(), self.code())
    }
}

/// An exception code a device answers with (spec section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionCode {
    /// 01: the device does not support the function.
    IllegalFunction,
    /// 02: an address in the request is outside what the device has.
    IllegalDataAddress,
    /// 03: a value in the request (such as the quantity) is not allowed.
    IllegalDataValue,
    /// 04: the device failed while carrying out the request.
    ServerDeviceFailure,
    /// 05: accepted, the device needs a long time to finish.
    Acknowledge,
    /// 06: the device is busy with a long-running command.
    ServerDeviceBusy,
    /// 08: the device found a parity error in its memory.
    MemoryParityError,
    /// 0A: a gateway has no path to the target.
    GatewayPathUnavailable,
    /// 0B: a gateway's target did not respond.
    GatewayTargetFailedToRespond,
    /// A code the spec does not define.
    Other(u8),
}

impl ExceptionCode {
    /// Decodes the code on the wire.
    pub fn from_code(code: u8) -> ExceptionCode {
        match code {
            0x01 => ExceptionCode::IllegalFunction,
            0x02 => ExceptionCode::IllegalDataAddress,
            0x03 => ExceptionCode::IllegalDataValue,
            0x04 => ExceptionCode::ServerDeviceFailure,
            0x05 => ExceptionCode::Acknowledge,
            0x06 => ExceptionCode::ServerDeviceBusy,
            0x08 => ExceptionCode::MemoryParityError,
            0x0A => ExceptionCode::GatewayPathUnavailable,
            0x0B => ExceptionCode::GatewayTargetFailedToRespond,
            other => ExceptionCode::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            ExceptionCode::IllegalFunction => 0x01,
            ExceptionCode::IllegalDataAddress => 0x02,
            ExceptionCode::IllegalDataValue => 0x03,
            ExceptionCode::ServerDeviceFailure => 0x04,
            ExceptionCode::Acknowledge => 0x05,
            ExceptionCode::ServerDeviceBusy => 0x06,
            ExceptionCode::MemoryParityError => 0x08,
            ExceptionCode::GatewayPathUnavailable => 0x0A,
            ExceptionCode::GatewayTargetFailedToRespond => 0x0B,
            ExceptionCode::Other(code) => code,
        }
    }

    /// The spec's name, in words.
    pub fn name(self) -> &'static str {
        match self {
            ExceptionCode::IllegalFunction => "illegal function",
            ExceptionCode::IllegalDataAddress => "illegal data address",
            ExceptionCode::IllegalDataValue => "illegal data value",
            ExceptionCode::ServerDeviceFailure => "server device failure",
            ExceptionCode::Acknowledge => "acknowledge",
            ExceptionCode::ServerDeviceBusy => "server device busy",
            ExceptionCode::MemoryParityError => "memory parity error",
            ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
            ExceptionCode::GatewayTargetFailedToRespond => "gateway target device failed to respond",
            ExceptionCode::Other(_) => "not defined by the spec",
        }
    }
}

impl fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exception {} ({})", self.code(), self.name())
    }
}

/// One request; [`Request::validate`] checks it against the spec's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read `count` coils from `start`.
    ReadCoils {
        /// First coil address.
        start: u16,
        /// How many, 1 to [`MAX_READ_BITS`].
        count: u16,
    },
    /// Read `count` discrete inputs from `start`.
    ReadDiscreteInputs {
        /// First input address.
        start: u16,
        /// How many, 1 to [`MAX_READ_BITS`].
        count: u16,
    },
    /// Set one coil.
    WriteSingleCoil {
        /// The coil's address.
        address: u16,
        /// On (0xFF00) or off (0x0000).
        on: bool,
    },
    /// Set consecutive coils from `start`.
    WriteMultipleCoils {
        /// First coil address.
        start: u16,
        /// The values, 1 to [`MAX_WRITE_BITS`] of them.
        values: Vec<bool>,
    },
}

/// What a successful reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The bits a read asked for, exactly as many.
    Bits(Vec<bool>),
    /// A write's echo, checked against the request.
    Written,
}

/// Why a reply is not a successful one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The device answered with an exception.
    Exception(ExceptionCode),
    /// The reply does not fit the request; the text says how.
    Malformed(String),
}

/// The MBAP header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Pairs a reply with its request.
    pub transaction: u16,
    /// The unit (slave) id.
    pub unit: u8,
    /// Bytes of PDU that follow the header.
    pub pdu_len: usize,
}

impl Request {
    /// Checks the request against the spec's quantity and address limits.
    pub fn validate(&self) -> Result<(), String> {
        let (start, count, max) = match self {
            Request::ReadCoils { start, count } | Request::ReadDiscreteInputs { start, count } => {
                (*start, usize::from(*count), MAX_READ_BITS)
            }
            Request::WriteSingleCoil { .. } => return Ok(()),
            Request::WriteMultipleCoils { start, values } => (*start, values.len(), MAX_WRITE_BITS),
        };
        if count == 0 || count > usize::from(max) {
            return Err(format!("{} must ask for 1 to {max} bits, not {count}", self.function().name()));
        }
        if usize::from(start) + count - 1 > usize::from(u16::MAX) {
            return Err(format!(
                "{} of {count} bits from address {start} runs past address 65535",
                self.function().name()
            ));
        }
        Ok(())
    }

    /// Its function code.
    pub fn function(&self) -> Function {
        match self {
            Request::ReadCoils { .. } => Function::ReadCoils,
            Request::ReadDiscreteInputs { .. } => Function::ReadDiscreteInputs,
            Request::WriteSingleCoil { .. } => Function::WriteSingleCoil,
            Request::WriteMultipleCoils { .. } => Function::WriteMultipleCoils,
        }
    }

    /// The PDU: function code and data.
    pub fn pdu(&self) -> Vec<u8> {
        let mut pdu = vec![self.function().code()];
        match self {
            Request::ReadCoils { start, count } | Request::ReadDiscreteInputs { start, count } => {
                pdu.extend_from_slice(&start.to_be_bytes());
                pdu.extend_from_slice(&count.to_be_bytes());
            }
            Request::WriteSingleCoil { address, on } => {
                pdu.extend_from_slice(&address.to_be_bytes());
                pdu.extend_from_slice(&coil_value(*on).to_be_bytes());
            }
            Request::WriteMultipleCoils { start, values } => {
                let packed = pack_bits(values);
                pdu.extend_from_slice(&start.to_be_bytes());
                pdu.extend_from_slice(&(values.len() as u16).to_be_bytes());
                pdu.push(packed.len() as u8);
                pdu.extend_from_slice(&packed);
            }
        }
        pdu
    }

    /// The whole frame: MBAP header and PDU.
    pub fn encode(&self, transaction: u16, unit: u8) -> Vec<u8> {
        let pdu = self.pdu();
        let mut frame = Vec::with_capacity(MBAP_LEN + pdu.len());
        frame.extend_from_slice(&transaction.to_be_bytes());
        frame.extend_from_slice(&0u16.to_be_bytes());
        frame.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
        frame.push(unit);
        frame.extend_from_slice(&pdu);
        frame
    }

    /// Decodes the reply PDU to this request.
    pub fn decode_reply(&self, pdu: &[u8]) -> Result<Reply, ReplyError> {
        let code = self.function().code();
        let Some(&function) = pdu.first() else {
            return Err(malformed("the reply is empty"));
        };
        if function == code | 0x80 {
            return match pdu {
                [_, exception] => Err(ReplyError::Exception(ExceptionCode::from_code(*exception))),
                _ => Err(malformed(format!("an exception reply has {} bytes, not 2", pdu.len()))),
            };
        }
        if function != code {
            return Err(malformed(format!("the reply is for function {function}, not {code}")));
        }
        match self {
            Request::ReadCoils { count, .. } | Request::ReadDiscreteInputs { count, .. } => {
                let expected = usize::from(*count).div_ceil(8);
                let Some(&byte_count) = pdu.get(1) else {
                    return Err(malformed("the reply has no byte count"));
                };
                if usize::from(byte_count) != expected {
                    return Err(malformed(format!(
                        "the reply carries {byte_count} bytes of bits, {count} bits need {expected}"
                    )));
                }
                if pdu.len() != 2 + expected {
                    return Err(malformed(format!(
                        "the reply is {} bytes long, its byte count says {}",
                        pdu.len(),
                        2 + expected
                    )));
                }
                Ok(Reply::Bits(unpack_bits(&pdu[2..], usize::from(*count))))
            }
            Request::WriteSingleCoil { address, on } => {
                let mut expected = vec![code];
                expected.extend_from_slice(&address.to_be_bytes());
                expected.extend_from_slice(&coil_value(*on).to_be_bytes());
                check_echo(pdu, &expected)
            }
            Request::WriteMultipleCoils { start, values } => {
                let mut expected = vec![code];
                expected.extend_from_slice(&start.to_be_bytes());
                expected.extend_from_slice(&(values.len() as u16).to_be_bytes());
                check_echo(pdu, &expected)
            }
        }
    }
}

/// Parses an MBAP header, checking the protocol id and length.
pub fn parse_header(bytes: [u8; MBAP_LEN]) -> Result<Header, String> {
    let transaction = u16::from_be_bytes([bytes[0], bytes[1]]);
    let protocol = u16::from_be_bytes([bytes[2], bytes[3]]);
    let length = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    if protocol != 0 {
        return Err(format!("the reply's protocol id is {protocol}, not 0 (Modbus)"));
    }
    if !(2..=MAX_PDU_LEN + 1).contains(&length) {
        return Err(format!("the reply's length field is {length}, outside 2 to {}", MAX_PDU_LEN + 1));
    }
    Ok(Header { transaction, unit: bytes[6], pdu_len: length - 1 })
}

fn coil_value(on: bool) -> u16 {
    if on { 0xFF00 } else { 0x0000 }
}

fn malformed(reason: impl Into<String>) -> ReplyError {
    ReplyError::Malformed(reason.into())
}

fn check_echo(pdu: &[u8], expected: &[u8]) -> Result<Reply, ReplyError> {
    if pdu == expected {
        Ok(Reply::Written)
    } else {
        Err(malformed(format!("the write's echo {pdu:02x?} differs from the request {expected:02x?}")))
    }
}

/// Packs bits eight to a byte, the first bit in the lowest bit of the first byte.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, _) in bits.iter().enumerate().filter(|(_, on)| **on) {
        bytes[i / 8] |= 1 << (i % 8);
    }
    bytes
}

/// Unpacks `count` bits packed as [`pack_bits`] does (padding bits ignored).
pub fn unpack_bits(bytes: &[u8], count: usize) -> Vec<bool> {
    (0..count).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_coils_frame_matches_the_spec_example() {
        // Spec 6.1: read coils 20-38 is 01 00 13 00 13.
        let frame = Request::ReadCoils { start: 19, count: 19 }.encode(0x0102, 0x11);
        assert_eq!(frame, [0x01, 0x02, 0x00, 0x00, 0x00, 0x06, 0x11, 0x01, 0x00, 0x13, 0x00, 0x13]);
    }

    #[test]
    fn read_coils_reply_matches_the_spec_example() {
        // Spec 6.1: coils 27-20 CD, 35-28 6B, 38-36 05.
        let reply = Request::ReadCoils { start: 19, count: 19 }.decode_reply(&[0x01, 0x03, 0xCD, 0x6B, 0x05]);
        let Ok(Reply::Bits(bits)) = reply else { panic!("{reply:?}") };
        assert_eq!(bits.len(), 19);
        assert_eq!(pack_bits(&bits), [0xCD, 0x6B, 0x05]);
        assert!(bits[0] && !bits[1] && bits[2] && bits[3]);
    }

    #[test]
    fn write_multiple_coils_frame_matches_the_spec_example() {
        // Spec 6.11: ten coils from 20, CD 01.
        let values = unpack_bits(&[0xCD, 0x01], 10);
        let pdu = Request::WriteMultipleCoils { start: 19, values }.pdu();
        assert_eq!(pdu, [0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01]);
    }

    #[test]
    fn write_single_coil_uses_ff00_and_0000() {
        assert_eq!(Request::WriteSingleCoil { address: 172, on: true }.pdu(), [0x05, 0x00, 0xAC, 0xFF, 0x00]);
        assert_eq!(Request::WriteSingleCoil { address: 172, on: false }.pdu(), [0x05, 0x00, 0xAC, 0x00, 0x00]);
    }

    #[test]
    fn exception_replies_are_decoded_with_their_names() {
        let request = Request::ReadDiscreteInputs { start: 0, count: 1 };
        assert_eq!(request.decode_reply(&[0x82, 0x02]), Err(ReplyError::Exception(ExceptionCode::IllegalDataAddress)));
        assert_eq!(
            ExceptionCode::from_code(0x0B).to_string(),
            "exception 11 (gateway target device failed to respond)"
        );
        assert_eq!(ExceptionCode::from_code(0x42), ExceptionCode::Other(0x42));
    }

    #[test]
    fn a_reply_for_another_function_is_malformed() {
        let reply = Request::ReadCoils { start: 0, count: 1 }.decode_reply(&[0x02, 0x01, 0x01]);
        assert!(matches!(reply, Err(ReplyError::Malformed(m)) if m.contains("function 2")));
    }

    #[test]
    fn a_short_or_long_read_reply_is_malformed() {
        let request = Request::ReadCoils { start: 0, count: 9 };
        assert!(matches!(request.decode_reply(&[0x01, 0x01, 0xFF]), Err(ReplyError::Malformed(_))));
        assert!(matches!(request.decode_reply(&[0x01, 0x02, 0xFF]), Err(ReplyError::Malformed(_))));
        assert!(matches!(request.decode_reply(&[0x01, 0x02, 0xFF, 0x01, 0x00]), Err(ReplyError::Malformed(_))));
        assert!(matches!(request.decode_reply(&[]), Err(ReplyError::Malformed(_))));
    }

    #[test]
    fn a_write_echo_that_differs_is_malformed() {
        let request = Request::WriteSingleCoil { address: 3, on: true };
        assert_eq!(request.decode_reply(&[0x05, 0x00, 0x03, 0xFF, 0x00]), Ok(Reply::Written));
        assert!(matches!(request.decode_reply(&[0x05, 0x00, 0x03, 0x00, 0x00]), Err(ReplyError::Malformed(_))));
    }

    #[test]
    fn limits_follow_the_spec() {
        assert!(Request::ReadCoils { start: 0, count: 2000 }.validate().is_ok());
        assert!(Request::ReadCoils { start: 0, count: 2001 }.validate().is_err());
        assert!(Request::ReadDiscreteInputs { start: 0, count: 0 }.validate().is_err());
        assert!(Request::WriteMultipleCoils { start: 0, values: vec![true; 1968] }.validate().is_ok());
        assert!(Request::WriteMultipleCoils { start: 0, values: vec![true; 1969] }.validate().is_err());
        assert!(Request::WriteMultipleCoils { start: 0, values: vec![] }.validate().is_err());
        assert!(Request::ReadCoils { start: 65535, count: 1 }.validate().is_ok());
        assert!(Request::ReadCoils { start: 65535, count: 2 }.validate().is_err());
    }

    #[test]
    fn headers_are_checked() {
        assert_eq!(parse_header([0, 7, 0, 0, 0, 3, 9]), Ok(Header { transaction: 7, unit: 9, pdu_len: 2 }));
        assert!(parse_header([0, 7, 0, 1, 0, 3, 9]).unwrap_err().contains("protocol id"));
        assert!(parse_header([0, 7, 0, 0, 0, 1, 9]).unwrap_err().contains("length"));
        assert!(parse_header([0, 7, 0, 0, 1, 0, 9]).unwrap_err().contains("length"));
    }
}
