//! The terminal client of the chat daemon.
//!
//! [`run`] turns the command line into [`Settings`] and picks a mode: on a
//! terminal, [`terminal_ui`] runs the [`keyboard`]'s line editor, whose
//! half-typed line survives incoming messages; otherwise [`piped`] sends
//! stdin lines and prints what arrives. Both talk through [`connection::Connection`] and
//! show lines through [`display`], which sanitises everything received.
//! On a terminal a lost connection is followed by connecting again, paced
//! by [`backoff`]; piped, it ends the client.
//! `main.rs` only parses flags and maps [`Error`] to an exit code.

pub mod args;
pub mod backoff;
pub mod comeback;
pub mod connection;
pub mod display;
pub mod error;
pub mod identity;
pub mod keyboard;
pub mod piped;
pub mod terminal_ui;
pub mod text;
pub mod tls;

use std::io::IsTerminal;

pub use args::Args;
pub use error::Error;

use args::{ServerAddr, check_name, color_wanted};
use display::Style;

/// The command line, checked: what both modes start from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server; `None` means ask for it (on a terminal).
    pub addr: Option<ServerAddr>,
    /// Our name; `None` means the user types it at the server's prompt.
    pub name: Option<String>,
    pub style: Style,
    /// TLS settings when connecting with `--tls` or `--ca`.
    pub tls: Option<tls::Tls>,
}

impl Settings {
    /// Checks `args`, reading `NO_COLOR` from the environment.
    pub fn from_args(args: Args) -> Result<Self, Error> {
        let addr = args.addr.as_deref().map(parse_addr).transpose()?;
        if let Some(name) = &args.name {
            check_name(name).map_err(|reason| Error::InvalidName { name: name.clone(), reason })?;
        }
        let color = color_wanted(args.no_color, std::env::var_os("NO_COLOR").as_deref());
        let tls = (args.tls || args.ca.is_some())
            .then(|| tls::Tls::new(args.ca.as_deref()))
            .transpose()?;
        Ok(Settings { addr, name: args.name, style: Style { color, bell: args.bell }, tls })
    }
}

/// Parses a server address as typed, naming the input in the error.
pub fn parse_addr(input: &str) -> Result<ServerAddr, Error> {
    input.parse().map_err(|reason| Error::InvalidAddress { input: input.to_owned(), reason })
}

/// Runs the client until the session ends: `Ok` for a clean leave (stdin
/// ended, Ctrl-C, Ctrl-D, `/quit`), an [`Error`] otherwise.
pub async fn run(args: Args) -> Result<(), Error> {
    let settings = Settings::from_args(args)?;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        terminal_ui::run(settings).await
    } else {
        piped::run(settings).await
    }
}
