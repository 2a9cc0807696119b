//! Everything that can go wrong talking to a reader, in words.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::message::{MalformedReply, NakCode, command_name, reply_name};

/// Why the Secure Channel handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScFailure {
    /// The PD's cryptogram (osdp_CCRYPT) is not what our key gives.
    CryptogramMismatch,
    /// The PD says it uses the default key SCBK-D, and install mode is not allowed.
    ReaderInInstallMode,
    /// The PD did not accept our cryptogram (osdp_RMAC_I status).
    ReaderRejectedUs,
    /// The PD's initial MAC (osdp_RMAC_I) is not what our keys give.
    RmacMismatch,
    /// The PD NAKed the handshake.
    Nak(NakCode),
    /// The PD answered the handshake with something else.
    UnexpectedReply(u8),
    /// A handshake reply was malformed.
    Malformed(&'static str),
    /// The PD answered with an encrypted NAK: it still holds a session
    /// from an earlier try of this handshake whose reply got lost.
    StaleSession,
}

impl ScFailure {
    /// Whether a new handshake may succeed where this one failed: not when
    /// the keys do not match or the reader is in install mode.
    pub fn is_transient(&self) -> bool {
        !matches!(self, ScFailure::CryptogramMismatch | ScFailure::ReaderInInstallMode)
    }
}

impl fmt::Display for ScFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScFailure::CryptogramMismatch => f.write_str("the reader's cryptogram does not match — wrong SCBK?"),
            ScFailure::ReaderInInstallMode => f.write_str(
                "the reader is in install mode (it uses the well-known default key SCBK-D) and install mode is not allowed",
            ),
            ScFailure::ReaderRejectedUs => f.write_str("the reader did not accept our cryptogram — wrong SCBK?"),
            ScFailure::RmacMismatch => {
                f.write_str("the reader's initial MAC (osdp_RMAC_I) does not match — wrong SCBK or a tampered line?")
            }
            ScFailure::Nak(nak) => write!(f, "the reader NAKed the handshake: {nak}"),
            ScFailure::UnexpectedReply(code) => {
                write!(f, "the reader answered the handshake with {} (0x{code:02X})", reply_name(*code))
            }
            ScFailure::Malformed(what) => write!(f, "malformed handshake reply: {what}"),
            ScFailure::StaleSession => f.write_str(
                "the reader answered with an encrypted osdp_NAK for a session from an earlier try (a reply got lost)",
            ),
        }
    }
}

/// Why an established secure session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionLoss {
    /// A reply's MAC did not verify.
    BadMac,
    /// A reply's encrypted data did not decrypt.
    BadEncryption,
    /// The PD answered in the clear during the session.
    Cleartext(u8),
    /// The PD NAKed with a code that means it lost the session or our sequence.
    Nak(NakCode),
    /// A command got no reply, so the MAC chain may be out of step.
    NoReply,
    /// The PD was offline.
    Offline,
}

impl fmt::Display for SessionLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionLoss::BadMac => f.write_str("a reply's MAC did not verify"),
            SessionLoss::BadEncryption => f.write_str("a reply's encrypted data did not decrypt"),
            SessionLoss::Cleartext(code) => {
                write!(
                    f,
                    "the reader answered in the clear ({} 0x{code:02X}) during the secure session",
                    reply_name(*code)
                )
            }
            SessionLoss::Nak(nak) => write!(f, "the reader NAKed: {nak}"),
            SessionLoss::NoReply => f.write_str("a command got no reply, so the MAC chain may be out of step"),
            SessionLoss::Offline => f.write_str("the reader went offline"),
        }
    }
}

/// An error from the control panel, naming the reader's address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address is not 0-126.
    #[error("OSDP address {0} is out of range: a reader's address is 0-126")]
    InvalidAddress(u8),
    /// An option is out of range.
    #[error("invalid OSDP option for the reader at address {address}: {problem}")]
    InvalidOption {
        /// The reader's address.
        address: u8,
        /// What is wrong.
        problem: &'static str,
    },
    /// The key is SCBK-D and install mode was not allowed.
    #[error(
        "refusing install mode for the reader at address {address}: the key is the well-known default SCBK-D; \
         configure the reader's own SCBK, or allow install mode explicitly (allow_install_mode) while commissioning"
    )]
    InstallModeRefused {
        /// The reader's address.
        address: u8,
    },
    /// The Secure Channel handshake failed.
    #[error("secure channel with the reader at address {address} refused: {failure}")]
    SecureChannel {
        /// The reader's address.
        address: u8,
        /// Why.
        failure: ScFailure,
    },
    /// The PD NAKed a command.
    #[error("the reader at address {address} NAKed {}: {nak}", command_name(*command))]
    Nak {
        /// The reader's address.
        address: u8,
        /// The command code.
        command: u8,
        /// The NAK's error code.
        nak: NakCode,
    },
    /// No reply after every try.
    #[error(
        "no reply from address {address} within {} ms ({tries} tries) to {}",
        timeout.as_millis(),
        command_name(*command)
    )]
    NoReply {
        /// The reader's address.
        address: u8,
        /// The command code.
        command: u8,
        /// The reply timeout of each try.
        timeout: Duration,
        /// How many times the command was sent.
        tries: u32,
    },
    /// The secure session broke and setting it up again did not help.
    #[error("the secure session with the reader at address {address} broke during {}: {loss}", command_name(*command))]
    SessionLost {
        /// The reader's address.
        address: u8,
        /// The command code.
        command: u8,
        /// Why.
        loss: SessionLoss,
    },
    /// The reply does not fit its code.
    #[error("the reader at address {address} answered {} with a {problem}", command_name(*command))]
    BadReply {
        /// The reader's address.
        address: u8,
        /// The command code.
        command: u8,
        /// What is wrong.
        problem: MalformedReply,
    },
    /// The reply is not the one this command calls for.
    #[error(
        "the reader at address {address} answered {} with {} (0x{code:02X}) instead of {expected}",
        command_name(*command),
        reply_name(*code)
    )]
    UnexpectedReply {
        /// The reader's address.
        address: u8,
        /// The command code.
        command: u8,
        /// The reply code received.
        code: u8,
        /// The reply expected.
        expected: &'static str,
    },
    /// A command was submitted while another is in flight.
    #[error("the control panel for address {address} is still waiting for the reply to {}", command_name(*command))]
    Busy {
        /// The reader's address.
        address: u8,
        /// The command in flight.
        command: u8,
    },
    /// A command was submitted with no secure channel.
    #[error(
        "no secure channel with the reader at address {address}: Vigil never talks to a reader in the clear; connect first"
    )]
    NotSecure {
        /// The reader's address.
        address: u8,
    },
    /// The serial link failed.
    #[error("the serial link to the reader at address {address} failed: {source}")]
    Link {
        /// The reader's address.
        address: u8,
        /// The link's error.
        source: io::Error,
    },
    /// No randomness for RND.A.
    #[error("no randomness for the secure channel challenge: {0}")]
    Random(String),
}
