//! How `vigilctl` ends: the exit codes, and the failures that lead to them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (for `config push`: applied, or already running) |
//! | 1 | the device refused the command (`refused: <code>: <message>`) or rejected the config; `plugin verify` or `plugin run` refused the package (`refused: <why>`); an OS update failed or rolled back (`failed: <code>: <message>`) |
//! | 2 | usage error (clap's), or a file named on the command line cannot be read or written |
//! | 3 | timed out waiting for the device |
//! | 4 | cannot reach, authenticate with or stay connected to the broker |
//!
//! Scripts can tell "the device said no" (1) from "the device did not
//! answer" (3) from "the broker is the problem" (4).

use std::fmt;

/// The exit codes, for the long `--help` text.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done (config push: applied, or already running)
  1  the device refused the command (\"refused: <code>: <message>\") or rejected the config;
     plugin verify or plugin run refused the package (\"refused: <why>\");
     an OS update failed or rolled back (\"failed: <code>: <message>\")
  2  usage error, or a file named on the command line cannot be read or written
  3  timed out waiting for the device (is it online? try `vigilctl status DEVICE`)
  4  cannot reach, authenticate with or stay connected to the broker";

/// Why a command did not succeed; each kind has its own exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The device refused the command with a stable code (exit 1).
    Refused {
        /// The machine-readable code from the response.
        code: String,
        /// The device's words.
        message: String,
    },
    /// The device rejected a pushed config (exit 1).
    Rejected(String),
    /// A plugin package failed verification or its local install (exit 1).
    PackageRefused(String),
    /// An OS update job ended `failed` or `rolled-back` (exit 1).
    UpdateFailed {
        /// The job's stable error code (`rauc-refused`, `unhealthy`, `rolled-back`, …).
        code: String,
        /// The device's words.
        message: String,
    },
    /// A mistake on the command line clap cannot see, or an unusable file (exit 2).
    Usage(String),
    /// The device did not answer in time; says what was awaited (exit 3).
    TimedOut(String),
    /// The broker cannot be reached or refused us (exit 4).
    Broker(String),
}

impl Failure {
    /// A usage failure from an error with context, printed with all its causes.
    pub fn usage(e: anyhow::Error) -> Failure {
        Failure::Usage(format!("{e:#}"))
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused { .. }
            | Failure::Rejected(_)
            | Failure::PackageRefused(_)
            | Failure::UpdateFailed { .. } => 1,
            Failure::Usage(_) => 2,
            Failure::TimedOut(_) => 3,
            Failure::Broker(_) => 4,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused { code, message } => write!(f, "refused: {code}: {message}"),
            Failure::Rejected(why) => write!(f, "rejected: {why}"),
            Failure::UpdateFailed { code, message } => write!(f, "failed: {code}: {message}"),
            Failure::PackageRefused(why) => write!(f, "refused: {why}"),
            Failure::Usage(why) | Failure::Broker(why) => write!(f, "error: {why}"),
            Failure::TimedOut(why) => write!(f, "timed out: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_documented_code_and_prefix() {
        let refused = Failure::Refused { code: "unknown-incident".into(), message: "incident 9 is not open".into() };
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(refused.to_string(), "refused: unknown-incident: incident 9 is not open");
        assert_eq!(Failure::Rejected("x".into()).exit_code(), 1);
        assert_eq!(Failure::PackageRefused("x".into()).exit_code(), 1);
        assert_eq!(Failure::PackageRefused("x".into()).to_string(), "refused: x");
        let failed = Failure::UpdateFailed { code: "unhealthy".into(), message: "no frames".into() };
        assert_eq!((failed.exit_code(), failed.to_string()), (1, "failed: unhealthy: no frames".into()));
        assert_eq!(Failure::Usage("x".into()).exit_code(), 2);
        assert_eq!(Failure::TimedOut("x".into()).to_string(), "timed out: x");
        assert_eq!(Failure::TimedOut("x".into()).exit_code(), 3);
        assert_eq!(Failure::Broker("x".into()).exit_code(), 4);
        for code in 0..=4 {
            assert!(EXIT_CODES.contains(&format!("  {code}  ")), "exit code {code} is documented");
        }
    }

    #[test]
    fn usage_failures_keep_the_cause() {
        let e = anyhow::anyhow!("No such file or directory").context("cannot read the config file vigil.toml");
        assert_eq!(
            Failure::usage(e).to_string(),
            "error: cannot read the config file vigil.toml: No such file or directory"
        );
    }
}
