//! The one error type every source returns.

use std::io;

/// What kind of thing went wrong, for callers that react differently to each.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// The operating system refused a read, write, open or seek.
    Io,
    /// The input is not what its format says it should be (bad header, truncated frame).
    BadFormat,
    /// The input is well formed but uses a feature this crate does not handle.
    Unsupported,
    /// The options the source was built with make no sense (a zero frame rate, an empty frame).
    InvalidOptions,
    /// The camera refused the credentials.
    Unauthorized,
    /// The camera could not be reached (refused, no route, DNS, timeout on connect).
    Unreachable,
    /// The camera answered, but what it sends cannot be decoded.
    BadStream,
    /// No frame arrived within the stall timeout.
    Stalled,
}

/// Why a source could not be opened or could not produce its next frame.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    kind: SourceErrorKind,
    message: String,
    #[source]
    source: Option<io::Error>,
}

impl SourceError {
    /// What kind of failure this is.
    pub fn kind(&self) -> SourceErrorKind {
        self.kind
    }

    /// An error of `kind`; `message` says what failed and where, never with credentials.
    pub fn new(kind: SourceErrorKind, message: String) -> SourceError {
        SourceError { kind, message, source: None }
    }

    /// An I/O failure; `message` says what was being done and where, `err` says what the OS said.
    pub(crate) fn io(message: String, err: io::Error) -> SourceError {
        SourceError { kind: SourceErrorKind::Io, message, source: Some(err) }
    }

    /// Malformed input; `message` names the field, frame or byte offset.
    pub(crate) fn bad_format(message: String) -> SourceError {
        SourceError { kind: SourceErrorKind::BadFormat, message, source: None }
    }

    /// Well-formed input this crate cannot handle.
    pub(crate) fn unsupported(message: String) -> SourceError {
        SourceError { kind: SourceErrorKind::Unsupported, message, source: None }
    }

    /// Options that cannot work, named by field.
    pub fn invalid_options(message: String) -> SourceError {
        SourceError { kind: SourceErrorKind::InvalidOptions, message, source: None }
    }
}
