//! What the control panel says and what the peripheral answers: command
//! and reply codes, the commands Vigil sends, the replies it understands.

use std::fmt;

use crate::crypto::Scbk;

/// Command codes (CP → PD).
pub mod command {
    /// osdp_POLL: anything to report?
    pub const POLL: u8 = 0x60;
    /// osdp_ID: identification report request.
    pub const ID: u8 = 0x61;
    /// osdp_CAP: capabilities request.
    pub const CAP: u8 = 0x62;
    /// osdp_LSTAT: local status (tamper, power).
    pub const LSTAT: u8 = 0x64;
    /// osdp_ISTAT: input status.
    pub const ISTAT: u8 = 0x65;
    /// osdp_OSTAT: output status.
    pub const OSTAT: u8 = 0x66;
    /// osdp_OUT: output control.
    pub const OUT: u8 = 0x68;
    /// osdp_LED: reader LED control.
    pub const LED: u8 = 0x69;
    /// osdp_BUZ: reader buzzer control.
    pub const BUZ: u8 = 0x6A;
    /// osdp_KEYSET: a new Secure Channel Base Key.
    pub const KEYSET: u8 = 0x75;
    /// osdp_CHLNG: secure channel challenge (RND.A).
    pub const CHLNG: u8 = 0x76;
    /// osdp_SCRYPT: the CP's cryptogram.
    pub const SCRYPT: u8 = 0x77;
}

/// Reply codes (PD → CP).
pub mod reply {
    /// osdp_ACK.
    pub const ACK: u8 = 0x40;
    /// osdp_NAK, with an error code.
    pub const NAK: u8 = 0x41;
    /// osdp_PDID: identification report.
    pub const PDID: u8 = 0x45;
    /// osdp_PDCAP: capabilities report.
    pub const PDCAP: u8 = 0x46;
    /// osdp_LSTATR: local status report.
    pub const LSTATR: u8 = 0x48;
    /// osdp_ISTATR: input status report.
    pub const ISTATR: u8 = 0x49;
    /// osdp_OSTATR: output status report.
    pub const OSTATR: u8 = 0x4A;
    /// osdp_RAW: card data.
    pub const RAW: u8 = 0x50;
    /// osdp_KEYPAD: keypad data.
    pub const KEYPAD: u8 = 0x53;
    /// osdp_COM: communication configuration report.
    pub const COM: u8 = 0x54;
    /// osdp_CCRYPT: the PD's identity, RND.B and cryptogram.
    pub const CCRYPT: u8 = 0x76;
    /// osdp_RMAC_I: the initial reply MAC.
    pub const RMAC_I: u8 = 0x78;
    /// osdp_BUSY: the PD is busy; ask again.
    pub const BUSY: u8 = 0x79;
}

/// The spec's name of a command code, for messages.
pub fn command_name(code: u8) -> &'static str {
    match code {
        command::POLL => "osdp_POLL",
        command::ID => "osdp_ID",
        command::CAP => "osdp_CAP",
        command::LSTAT => "osdp_LSTAT",
        command::ISTAT => "osdp_ISTAT",
        command::OSTAT => "osdp_OSTAT",
        command::OUT => "osdp_OUT",
        command::LED => "osdp_LED",
        command::BUZ => "osdp_BUZ",
        command::KEYSET => "osdp_KEYSET",
        command::CHLNG => "osdp_CHLNG",
        command::SCRYPT => "osdp_SCRYPT",
        _ => "an unknown command",
    }
}

/// The spec's name of a reply code, for messages.
pub fn reply_name(code: u8) -> &'static str {
    match code {
        reply::ACK => "osdp_ACK",
        reply::NAK => "osdp_NAK",
        reply::PDID => "osdp_PDID",
        reply::PDCAP => "osdp_PDCAP",
        reply::LSTATR => "osdp_LSTATR",
        reply::ISTATR => "osdp_ISTATR",
        reply::OSTATR => "osdp_OSTATR",
        reply::RAW => "osdp_RAW",
        reply::KEYPAD => "osdp_KEYPAD",
        reply::COM => "osdp_COM",
        reply::CCRYPT => "osdp_CCRYPT",
        reply::RMAC_I => "osdp_RMAC_I",
        reply::BUSY => "osdp_BUSY",
        0x51 => "osdp_FMT",
        0x57 => "osdp_BIOREADR",
        0x58 => "osdp_BIOMATCHR",
        0x7A => "osdp_FTSTAT",
        0x90 => "osdp_MFGREP",
        0xB1 => "osdp_XRD",
        _ => "an unknown reply",
    }
}

/// What to do with an output (a relay: door strike, maglock, siren).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputAction {
    /// Permanently off, cancelling any timed operation (control code 1).
    Off,
    /// Permanently on, cancelling any timed operation (control code 2).
    On,
    /// On for this many tenths of a second, then back to the permanent state (control code 5).
    PulseOn {
        /// Duration in units of 100 ms.
        tenths: u16,
    },
    /// Off for this many tenths of a second, then back to the permanent state (control code 6).
    PulseOff {
        /// Duration in units of 100 ms.
        tenths: u16,
    },
}

impl OutputAction {
    fn control_code_and_timer(self) -> (u8, u16) {
        match self {
            OutputAction::Off => (1, 0),
            OutputAction::On => (2, 0),
            OutputAction::PulseOn { tenths } => (5, tenths),
            OutputAction::PulseOff { tenths } => (6, tenths),
        }
    }
}

/// A reader LED colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LedColor {
    /// Off.
    Black = 0,
    /// Red.
    Red = 1,
    /// Green.
    Green = 2,
    /// Amber.
    Amber = 3,
    /// Blue.
    Blue = 4,
    /// Magenta.
    Magenta = 5,
    /// Cyan.
    Cyan = 6,
    /// White.
    White = 7,
}

/// A blink pattern: `on_color` for `on_tenths`, `off_color` for `off_tenths`
/// (both in 100 ms units); `off_tenths = 0` means steady.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedPattern {
    /// Colour during the on time.
    pub on_color: LedColor,
    /// Colour during the off time.
    pub off_color: LedColor,
    /// On time, 100 ms units.
    pub on_tenths: u8,
    /// Off time, 100 ms units.
    pub off_tenths: u8,
}

impl LedPattern {
    /// A steady colour.
    pub fn steady(color: LedColor) -> LedPattern {
        LedPattern { on_color: color, off_color: color, on_tenths: 1, off_tenths: 0 }
    }
}

/// What an LED should show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedAction {
    /// Set the permanent state (what the LED returns to after temporary ones).
    Permanent(LedPattern),
    /// Show a pattern for `tenths` × 100 ms, then return to the permanent state.
    Temporary {
        /// The pattern.
        pattern: LedPattern,
        /// How long, 100 ms units.
        tenths: u16,
    },
    /// Cancel a temporary pattern now.
    CancelTemporary,
}

/// One osdp_LED record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Led {
    /// Reader number (0 for the PD itself).
    pub reader: u8,
    /// LED number on that reader.
    pub led: u8,
    /// What to show.
    pub action: LedAction,
}

/// One osdp_BUZ record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buzzer {
    /// Silence the buzzer.
    Off {
        /// Reader number.
        reader: u8,
    },
    /// Beep with the default tone: `on_tenths` on, `off_tenths` off, `count`
    /// times (0 = until told otherwise).
    Beep {
        /// Reader number.
        reader: u8,
        /// On time, 100 ms units.
        on_tenths: u8,
        /// Off time, 100 ms units.
        off_tenths: u8,
        /// Repetitions; 0 repeats until the next osdp_BUZ.
        count: u8,
    },
}

/// A command the control panel sends (the handshake's own are internal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// osdp_POLL.
    Poll,
    /// osdp_ID.
    Id,
    /// osdp_CAP.
    Capabilities,
    /// osdp_LSTAT.
    LocalStatus,
    /// osdp_ISTAT.
    InputStatus,
    /// osdp_OSTAT.
    OutputStatus,
    /// osdp_OUT for one output (0-based).
    Output {
        /// Output number, 0-based.
        output: u8,
        /// What to do.
        action: OutputAction,
    },
    /// osdp_LED.
    Led(Led),
    /// osdp_BUZ.
    Buzzer(Buzzer),
    /// osdp_KEYSET: gives the reader a new base key (commissioning a reader
    /// out of install mode). Only ever sent encrypted.
    SetKey(Scbk),
}

impl Command {
    /// The command code.
    pub fn code(&self) -> u8 {
        match self {
            Command::Poll => command::POLL,
            Command::Id => command::ID,
            Command::Capabilities => command::CAP,
            Command::LocalStatus => command::LSTAT,
            Command::InputStatus => command::ISTAT,
            Command::OutputStatus => command::OSTAT,
            Command::Output { .. } => command::OUT,
            Command::Led(_) => command::LED,
            Command::Buzzer(_) => command::BUZ,
            Command::SetKey(_) => command::KEYSET,
        }
    }

    /// The data after the code, in the clear.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Command::Poll | Command::LocalStatus | Command::InputStatus | Command::OutputStatus => Vec::new(),
            // Reply type 0: the standard report.
            Command::Id | Command::Capabilities => vec![0],
            Command::Output { output, action } => {
                let (code, timer) = action.control_code_and_timer();
                let [lo, hi] = timer.to_le_bytes();
                vec![*output, code, lo, hi]
            }
            Command::Led(led) => {
                let mut d = vec![led.reader, led.led];
                match led.action {
                    LedAction::Temporary { pattern: p, tenths } => {
                        let [lo, hi] = tenths.to_le_bytes();
                        d.extend([2, p.on_tenths, p.off_tenths, p.on_color as u8, p.off_color as u8, lo, hi]);
                        d.extend([0; 5]);
                    }
                    LedAction::CancelTemporary => {
                        d.extend([1, 0, 0, 0, 0, 0, 0]);
                        d.extend([0; 5]);
                    }
                    LedAction::Permanent(p) => {
                        d.extend([0; 7]);
                        d.extend([1, p.on_tenths, p.off_tenths, p.on_color as u8, p.off_color as u8]);
                    }
                }
                d
            }
            Command::Buzzer(Buzzer::Off { reader }) => vec![*reader, 1, 0, 0, 0],
            Command::Buzzer(Buzzer::Beep { reader, on_tenths, off_tenths, count }) => {
                vec![*reader, 2, *on_tenths, *off_tenths, *count]
            }
            // Key type 1 (SCBK), 16 bytes.
            Command::SetKey(key) => [&[1, 16][..], &key.0].concat(),
        }
    }
}

/// The error code of an osdp_NAK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NakCode(pub u8);

impl NakCode {
    /// The spec's meaning of the code, in words.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0 => "no error given",
            1 => "bad checksum or CRC",
            2 => "wrong command length",
            3 => "unknown command code",
            4 => "unexpected sequence number",
            5 => "security block not supported",
            6 => "secure channel conditions not met (encryption required or session lost)",
            7 => "biometric type not supported",
            8 => "biometric format not supported",
            9 => "unable to process the command record",
            _ => "an error code the spec does not define",
        }
    }

    /// Whether this NAK means the secure session is gone and must be set up
    /// again (the PD lost our sequence or our secure channel).
    pub fn breaks_session(self) -> bool {
        matches!(self.0, 4..=6)
    }
}

impl fmt::Display for NakCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (NAK {})", self.meaning(), self.0)
    }
}

/// The PD's identification (osdp_PDID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceId {
    /// IEEE OUI of the vendor, 3 bytes.
    pub vendor: [u8; 3],
    /// Model number.
    pub model: u8,
    /// Model version.
    pub version: u8,
    /// Serial number.
    pub serial: u32,
    /// Firmware major, minor, build.
    pub firmware: [u8; 3],
}

/// One capability the PD reports (osdp_PDCAP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Function code (1 contact status monitoring, 2 output control, 4 LED, 5 audible, 9 security…).
    pub function: u8,
    /// Compliance level.
    pub compliance: u8,
    /// Number of items (inputs, outputs, LEDs…).
    pub items: u8,
}

/// The PD's local status (osdp_LSTATR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalStatus {
    /// The enclosure's tamper switch is open.
    pub tamper: bool,
    /// The PD reports a power failure.
    pub power_failure: bool,
}

/// A reply the control panel understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// osdp_ACK.
    Ack,
    /// osdp_NAK.
    Nak(NakCode),
    /// osdp_PDID.
    Id(DeviceId),
    /// osdp_PDCAP.
    Capabilities(Vec<Capability>),
    /// osdp_LSTATR.
    LocalStatus(LocalStatus),
    /// osdp_ISTATR: one entry per input, `true` = active.
    InputStatus(Vec<bool>),
    /// osdp_OSTATR: one entry per output, `true` = active.
    OutputStatus(Vec<bool>),
    /// osdp_COM: the PD's address and baud rate.
    Com {
        /// The PD address.
        address: u8,
        /// The baud rate.
        baud: u32,
    },
    /// osdp_BUSY.
    Busy,
    /// A reply Vigil does not decode (card reads, keypad, biometrics…), kept raw.
    Other {
        /// The reply code.
        code: u8,
        /// Its data.
        data: Vec<u8>,
    },
}

/// A reply whose data does not fit its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedReply {
    /// The reply code.
    pub code: u8,
    /// What is wrong.
    pub problem: &'static str,
}

impl fmt::Display for MalformedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {} (0x{:02X}): {}", reply_name(self.code), self.code, self.problem)
    }
}

impl Reply {
    /// The reply code.
    pub fn code(&self) -> u8 {
        match self {
            Reply::Ack => reply::ACK,
            Reply::Nak(_) => reply::NAK,
            Reply::Id(_) => reply::PDID,
            Reply::Capabilities(_) => reply::PDCAP,
            Reply::LocalStatus(_) => reply::LSTATR,
            Reply::InputStatus(_) => reply::ISTATR,
            Reply::OutputStatus(_) => reply::OSTATR,
            Reply::Com { .. } => reply::COM,
            Reply::Busy => reply::BUSY,
            Reply::Other { code, .. } => *code,
        }
    }

    /// Decodes a reply from its code and (decrypted) data.
    pub fn decode(code: u8, data: &[u8]) -> Result<Reply, MalformedReply> {
        let bad = |problem| MalformedReply { code, problem };
        let status = |d: &[u8]| d.iter().map(|&b| b != 0).collect();
        Ok(match code {
            reply::ACK => Reply::Ack,
            reply::NAK => Reply::Nak(NakCode(*data.first().ok_or(bad("no error code"))?)),
            reply::PDID => {
                let d: &[u8; 12] =
                    data.get(..12).and_then(|d| d.try_into().ok()).ok_or(bad("shorter than 12 bytes"))?;
                Reply::Id(DeviceId {
                    vendor: [d[0], d[1], d[2]],
                    model: d[3],
                    version: d[4],
                    serial: u32::from_le_bytes([d[5], d[6], d[7], d[8]]),
                    firmware: [d[9], d[10], d[11]],
                })
            }
            reply::PDCAP => {
                if !data.len().is_multiple_of(3) {
                    return Err(bad("not a whole number of 3-byte entries"));
                }
                Reply::Capabilities(
                    data.chunks(3).map(|c| Capability { function: c[0], compliance: c[1], items: c[2] }).collect(),
                )
            }
            reply::LSTATR => {
                let [tamper, power, ..] = data else { return Err(bad("shorter than 2 bytes")) };
                Reply::LocalStatus(LocalStatus { tamper: *tamper != 0, power_failure: *power != 0 })
            }
            reply::ISTATR => Reply::InputStatus(status(data)),
            reply::OSTATR => Reply::OutputStatus(status(data)),
            reply::COM => {
                let [address, b0, b1, b2, b3, ..] = data else { return Err(bad("shorter than 5 bytes")) };
                Reply::Com { address: *address, baud: u32::from_le_bytes([*b0, *b1, *b2, *b3]) }
            }
            reply::BUSY => Reply::Busy,
            _ => Reply::Other { code, data: data.to_vec() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_commands_carry_number_control_code_and_timer() {
        let pulse = Command::Output { output: 1, action: OutputAction::PulseOn { tenths: 300 } };
        assert_eq!(pulse.data(), vec![1, 5, 0x2C, 0x01]);
        assert_eq!(Command::Output { output: 0, action: OutputAction::On }.data(), vec![0, 2, 0, 0]);
        assert_eq!(Command::Output { output: 0, action: OutputAction::Off }.data(), vec![0, 1, 0, 0]);
    }

    #[test]
    fn led_records_are_14_bytes() {
        let permanent = Led { reader: 0, led: 0, action: LedAction::Permanent(LedPattern::steady(LedColor::Red)) };
        let d = Command::Led(permanent).data();
        assert_eq!(d.len(), 14);
        assert_eq!(&d[9..], &[1, 1, 0, 1, 1]);
        let temporary = Led {
            reader: 0,
            led: 0,
            action: LedAction::Temporary {
                pattern: LedPattern {
                    on_color: LedColor::Red,
                    off_color: LedColor::Black,
                    on_tenths: 2,
                    off_tenths: 2,
                },
                tenths: 50,
            },
        };
        assert_eq!(&Command::Led(temporary).data()[..9], &[0, 0, 2, 2, 2, 1, 0, 50, 0]);
    }

    #[test]
    fn replies_decode() {
        assert_eq!(Reply::decode(0x49, &[0, 1, 0]), Ok(Reply::InputStatus(vec![false, true, false])));
        assert_eq!(Reply::decode(0x41, &[3]), Ok(Reply::Nak(NakCode(3))));
        assert!(Reply::decode(0x41, &[]).is_err());
        assert!(Reply::decode(0x46, &[1, 1]).is_err());
        let id = Reply::decode(0x45, &[0xBE, 0xBA, 0xFE, 1, 2, 0xAF, 0xBE, 0xAD, 0xDE, 3, 4, 5]).unwrap();
        assert_eq!(
            id,
            Reply::Id(DeviceId {
                vendor: [0xBE, 0xBA, 0xFE],
                model: 1,
                version: 2,
                serial: 0xDEADBEAF,
                firmware: [3, 4, 5]
            })
        );
    }

    #[test]
    fn nak_codes_are_explained() {
        assert_eq!(NakCode(3).to_string(), "unknown command code (NAK 3)");
        assert!(NakCode(6).breaks_session());
        assert!(!NakCode(9).breaks_session());
    }
}
