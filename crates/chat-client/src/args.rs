//! The command line and what it means.
//!
//! This module owns the flags (`clap` derive), the colour decision
//! (`--no-color` and the `NO_COLOR` convention), the check on `--name`, and
//! [`ServerAddr`]: the parser that turns what a person types (`host:port`,
//! `[v6]:port`, a bare host or a bare IPv6 address) into a host and a port,
//! with [`DEFAULT_PORT`] when none is given. Nothing here touches the network.

use std::ffi::OsStr;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use clap::Parser;

/// The port the server listens on by default.
pub const DEFAULT_PORT: u16 = 7878;

/// What an empty answer at the address prompt means.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7878";

/// The longest host name DNS allows.
const MAX_HOST_LEN: usize = 253;

/// Terminal client for the chat server.
///
/// On a terminal it is a line editor: messages arrive above the line you are
/// typing, Up and Down walk your history, Ctrl-C or Ctrl-D leave. With stdin
/// not a terminal it sends each stdin line, prints what arrives, and leaves
/// when stdin ends.
#[derive(Debug, Clone, Parser)]
#[command(name = "chat-client", version)]
pub struct Args {
    // Not a doc comment: rustdoc would read `[v6]` as a link.
    #[arg(
        value_name = "ADDR",
        help = "Server address: host:port, [v6]:port, or a bare host or IPv6 address \
                (port 7878). Asked for at a prompt when missing on a terminal"
    )]
    pub addr: Option<String>,

    /// Your name in the room. Asked for when missing on a terminal; required
    /// when stdin is not a terminal
    #[arg(long, short = 'n', value_name = "NAME")]
    pub name: Option<String>,

    /// Print no colour (also when the NO_COLOR environment variable is set
    /// and not empty)
    #[arg(long)]
    pub no_color: bool,

    /// Ring the terminal bell when someone mentions your name
    #[arg(long)]
    pub bell: bool,

    /// Connect with TLS (to a server's --listen-tls address)
    #[arg(long)]
    pub tls: bool,

    /// PEM file of the certificates to trust for TLS instead of the usual
    /// public roots (a private CA or a self-signed server); implies --tls
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
}

/// True unless `--no-color` was given or `NO_COLOR` holds a non-empty value
/// (<https://no-color.org>).
pub fn color_wanted(no_color_flag: bool, no_color_env: Option<&OsStr>) -> bool {
    !no_color_flag && no_color_env.is_none_or(OsStr::is_empty)
}

/// Why a `--name` cannot even be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a name cannot contain control characters")]
pub struct NameHasControl;

/// Checks a name given on the command line: a control character (a newline
/// above all) would smuggle a second line onto the wire.
pub fn check_name(name: &str) -> Result<(), NameHasControl> {
    if name.chars().any(char::is_control) { Err(NameHasControl) } else { Ok(()) }
}

/// A server to connect to: a host (name or IP) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    host: String,
    port: u16,
}

/// Why a server address was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("the address is empty")]
    Empty,
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    #[error("{0:?} is not an IPv6 address")]
    BadIpv6(String),
    #[error("'[' is never closed by ']'")]
    UnclosedBracket,
    #[error("expected ':port' after ']', found {0:?}")]
    AfterBracket(String),
    #[error("{0:?} is not a valid host name")]
    BadHost(String),
}

impl ServerAddr {
    /// The host name or IP address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ServerAddr {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, AddrError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(AddrError::Empty);
        }
        if let Some(rest) = input.strip_prefix('[') {
            return parse_bracketed(rest);
        }
        if input.parse::<Ipv6Addr>().is_ok() {
            return Ok(ServerAddr { host: input.to_owned(), port: DEFAULT_PORT });
        }
        match input.rsplit_once(':') {
            Some((host, port)) => {
                Ok(ServerAddr { host: valid_host(host)?, port: parse_port(port)? })
            }
            None => Ok(ServerAddr { host: valid_host(input)?, port: DEFAULT_PORT }),
        }
    }
}

/// Parses what follows `[`: an IPv6 address, `]`, then nothing or `:port`.
fn parse_bracketed(rest: &str) -> Result<ServerAddr, AddrError> {
    let (inside, after) = rest.split_once(']').ok_or(AddrError::UnclosedBracket)?;
    let ip: Ipv6Addr = inside.parse().map_err(|_| AddrError::BadIpv6(inside.to_owned()))?;
    let port = match after {
        "" => DEFAULT_PORT,
        _ => match after.strip_prefix(':') {
            Some(port) => parse_port(port)?,
            None => return Err(AddrError::AfterBracket(after.to_owned())),
        },
    };
    Ok(ServerAddr { host: ip.to_string(), port })
}

/// A port is decimal digits only (no sign, no spaces) and never 0.
fn parse_port(text: &str) -> Result<u16, AddrError> {
    let bad = || AddrError::BadPort(text.to_owned());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

/// A host name or IPv4 address: letters, digits, `-`, `.` and `_`.
fn valid_host(host: &str) -> Result<String, AddrError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if host.is_empty() || host.len() > MAX_HOST_LEN || !host.chars().all(allowed) {
        return Err(AddrError::BadHost(host.to_owned()));
    }
    Ok(host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &str) -> (String, u16) {
        let addr: ServerAddr = input.parse().expect(input);
        (addr.host().to_owned(), addr.port())
    }

    #[test]
    fn host_and_port() {
        assert_eq!(parsed("example.org:6667"), ("example.org".into(), 6667));
        assert_eq!(parsed("127.0.0.1:1"), ("127.0.0.1".into(), 1));
        assert_eq!(parsed("  localhost:65535 "), ("localhost".into(), 65535));
    }

    #[test]
    fn bare_host_gets_the_default_port() {
        assert_eq!(parsed("localhost"), ("localhost".into(), DEFAULT_PORT));
        assert_eq!(parsed("10.0.0.7"), ("10.0.0.7".into(), DEFAULT_PORT));
    }

    #[test]
    fn ipv6_with_and_without_brackets() {
        assert_eq!(parsed("[::1]:9000"), ("::1".into(), 9000));
        assert_eq!(parsed("[::1]"), ("::1".into(), DEFAULT_PORT));
        assert_eq!(parsed("::1"), ("::1".into(), DEFAULT_PORT));
        assert_eq!(parsed("[fe80::1:2]:7"), ("fe80::1:2".into(), 7));
    }

    #[test]
    fn display_brackets_ipv6_only() {
        assert_eq!(parsed_display("::1"), "[::1]:7878");
        assert_eq!(parsed_display("localhost"), "localhost:7878");
        assert_eq!(parsed_display("[::1]:80"), "[::1]:80");
    }

    fn parsed_display(input: &str) -> String {
        input.parse::<ServerAddr>().expect(input).to_string()
    }

    #[test]
    fn bad_ports_are_refused() {
        for input in ["h:", "h:0", "h:65536", "h:99999", "h:+80", "h:8o", "h: 80", "[::1]:x"] {
            assert!(matches!(input.parse::<ServerAddr>(), Err(AddrError::BadPort(_))), "{input}");
        }
    }

    #[test]
    fn bad_hosts_are_refused() {
        assert_eq!("".parse::<ServerAddr>(), Err(AddrError::Empty));
        assert_eq!("[::1".parse::<ServerAddr>(), Err(AddrError::UnclosedBracket));
        assert!(matches!("[nope]:1".parse::<ServerAddr>(), Err(AddrError::BadIpv6(_))));
        assert!(matches!("[::1]x".parse::<ServerAddr>(), Err(AddrError::AfterBracket(_))));
        for input in [":7878", "a:b:c", "http://h:1", "two words", "h/x", "ünï.de"] {
            assert!(matches!(input.parse::<ServerAddr>(), Err(AddrError::BadHost(_))), "{input}");
        }
    }

    #[test]
    fn no_color_flag_or_non_empty_env_turn_colour_off() {
        assert!(color_wanted(false, None));
        assert!(color_wanted(false, Some(OsStr::new(""))));
        assert!(!color_wanted(false, Some(OsStr::new("1"))));
        assert!(!color_wanted(true, None));
    }

    #[test]
    fn names_with_control_characters_are_refused() {
        assert_eq!(check_name("alice"), Ok(()));
        assert_eq!(check_name(""), Ok(()));
        assert_eq!(check_name("al\nice"), Err(NameHasControl));
        assert_eq!(check_name("\x1b[2J"), Err(NameHasControl));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
