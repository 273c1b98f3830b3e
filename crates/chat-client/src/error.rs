//! Every way the client can fail, and the exit code each one maps to.
//!
//! Messages are one line, lowercase, without trailing punctuation, and name
//! the thing (the address, the flag) and the reason; `main` prefixes them
//! with `chat-client: `. The exit codes are part of the contract: 2 for what
//! the user gave (arguments, address, name), 3 for a server that cannot be
//! reached, 4 for a connection lost, 1 for anything else.

use std::io;

use crate::args::{AddrError, NameHasControl};

/// Exit code for invalid arguments, addresses and names (as clap uses).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a server that cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code for a connection lost while in use.
pub const EXIT_LOST: u8 = 4;
/// Exit code for local failures (terminal, standard input or output).
pub const EXIT_LOCAL: u8 = 1;

/// A failure of the client, shown to the user as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid address {input:?}: {reason}")]
    InvalidAddress { input: String, reason: AddrError },

    #[error("no server address given, and no terminal to ask for one on")]
    MissingAddress,

    #[error("no name given: pass --name NAME when not on a terminal")]
    MissingName,

    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: NameHasControl },

    #[error("the server refused the name {name:?}: {reason}")]
    NameRefused { name: String, reason: String },

    #[error("{name:?} is registered: put its password in CHAT_PASSWORD (never an argument)")]
    PasswordNeeded { name: String },

    #[error("{0}")]
    Tls(String),

    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: io::Error },

    #[error("connection to {addr} lost: {reason}")]
    Lost { addr: String, reason: String },

    #[error("terminal error: {0}")]
    Terminal(String),

    #[error("cannot read stdin: {0}")]
    Stdin(io::Error),

    #[error("cannot write to stdout: {0}")]
    Stdout(io::Error),
}

impl Error {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidAddress { .. }
            | Error::MissingAddress
            | Error::MissingName
            | Error::InvalidName { .. }
            | Error::NameRefused { .. }
            | Error::PasswordNeeded { .. }
            | Error::Tls(_) => EXIT_USAGE,
            Error::Connect { .. } => EXIT_UNREACHABLE,
            Error::Lost { .. } => EXIT_LOST,
            Error::Terminal(_) | Error::Stdin(_) | Error::Stdout(_) => EXIT_LOCAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_lowercase_line_without_trailing_punctuation() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let errors = [
            Error::InvalidAddress { input: "h:0".into(), reason: AddrError::BadPort("0".into()) },
            Error::MissingAddress,
            Error::MissingName,
            Error::Connect { addr: "127.0.0.1:1".into(), reason: refused },
            Error::Lost { addr: "127.0.0.1:7878".into(), reason: "closed by the server".into() },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
            assert!(!text.ends_with(['.', '!']), "{text}");
        }
    }

    #[test]
    fn exit_codes_tell_failures_apart() {
        let lost = Error::Lost { addr: "a:1".into(), reason: "x".into() };
        assert!(lost.to_string().contains("lost"));
        assert_eq!(lost.exit_code(), EXIT_LOST);
        assert_eq!(Error::MissingName.exit_code(), EXIT_USAGE);
        let reason = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(Error::Connect { addr: "a:1".into(), reason }.exit_code(), EXIT_UNREACHABLE);
    }
}
