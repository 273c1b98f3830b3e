//! The client when stdin is not a terminal: for scripts, pipes and tests.
//!
//! It sends `--name` (and, if the server asks, the password in
//! `CHAT_PASSWORD`), waits (briefly) for the welcome so that no stdin line
//! is taken for a second name attempt, then sends each stdin line and prints
//! every received line to stdout, sanitised. When stdin ends it leaves
//! cleanly: everything read has been written to the socket, then `/quit`,
//! `shutdown(Write)`, and it keeps printing until the server closes or
//! [`GOODBYE_TIMEOUT`] passes. Stdin is read on a plain thread, which the
//! process does not wait for when it exits.

use std::io::{self, BufRead, Write};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::Settings;
use crate::connection::{Connection, GOODBYE_TIMEOUT};
use crate::display::sanitized;
use crate::error::Error;
use crate::identity::{Identity, NameEvent};

/// How long we hold stdin back while waiting for the server's welcome. A
/// server that never says `welcome` only delays us by this much.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the answer to a password may take: the server slows guesses on
/// a name down to one per 30 s, and ours may be queued behind them.
const PASSWORD_TIMEOUT: Duration = Duration::from_secs(90);
/// Where a piped client finds the password of a registered name.
pub const PASSWORD_VAR: &str = "CHAT_PASSWORD";

/// Lines read from stdin and not yet sent.
const STDIN_QUEUE: usize = 64;

/// Runs a piped session; needs an address and a name from the command line.
pub async fn run(settings: Settings) -> Result<(), Error> {
    let addr = settings.addr.ok_or(Error::MissingAddress)?;
    let name = settings.name.ok_or(Error::MissingName)?;
    let printer = Printer { color: settings.style.color };
    let mut conn = Connection::connect(&addr, settings.tls.as_ref()).await?;
    conn.send(&name).await?;
    wait_for_welcome(&mut conn, &name, &printer).await?;
    let mut stdin = spawn_stdin_reader()?;
    loop {
        tokio::select! {
            line = conn.next_line() => match line? {
                Some(line) => printer.print(&line)?,
                None => return conn.closed_by_server(),
            },
            input = stdin.recv() => match input {
                Some(Ok(text)) if text.is_empty() => {}
                Some(Ok(text)) => conn.send(&text).await?,
                Some(Err(error)) => return Err(Error::Stdin(error)),
                None => break,
            },
        }
    }
    leave(&mut conn, &printer).await
}

/// Prints lines until the server accepts or refuses `name`, or
/// [`WELCOME_TIMEOUT`] passes.
async fn wait_for_welcome(
    conn: &mut Connection,
    name: &str,
    printer: &Printer,
) -> Result<(), Error> {
    let mut identity = Identity::default();
    identity.on_sent(name);
    let mut deadline = Instant::now() + WELCOME_TIMEOUT;
    loop {
        tokio::select! {
            line = conn.next_line() => {
                let Some(line) = line? else { return conn.closed_by_server() };
                printer.print(&line)?;
                match identity.on_received(&sanitized(&line, false)) {
                    NameEvent::Accepted(_) => return Ok(()),
                    NameEvent::Refused { name, reason } => {
                        return Err(Error::NameRefused { name, reason });
                    }
                    NameEvent::PasswordAsked(name) => {
                        let password = std::env::var(PASSWORD_VAR).unwrap_or_default();
                        if password.is_empty() {
                            return Err(Error::PasswordNeeded { name });
                        }
                        conn.send(&password).await?;
                        deadline = Instant::now() + PASSWORD_TIMEOUT;
                    }
                    NameEvent::Unchanged => {}
                }
            }
            () = sleep_until(deadline) => return Ok(()),
        }
    }
}

/// Says goodbye and prints what the server still sends until it closes.
async fn leave(conn: &mut Connection, printer: &Printer) -> Result<(), Error> {
    conn.say_goodbye().await;
    let deadline = Instant::now() + GOODBYE_TIMEOUT;
    loop {
        tokio::select! {
            line = conn.next_line() => match line {
                Ok(Some(line)) => printer.print(&line)?,
                Ok(None) | Err(_) => return Ok(()),
            },
            () = sleep_until(deadline) => return Ok(()),
        }
    }
}

/// Writes received lines to stdout, one flushed line each, so a reader on
/// the other end of a pipe sees them as they come.
struct Printer {
    color: bool,
}

impl Printer {
    fn print(&self, raw: &str) -> Result<(), Error> {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{}", sanitized(raw, self.color))
            .and_then(|()| stdout.flush())
            .map_err(Error::Stdout)
    }
}

/// Reads stdin lines (lossy UTF-8, line endings removed) on a thread of its
/// own; the channel closes at the end of stdin.
fn spawn_stdin_reader() -> Result<mpsc::Receiver<io::Result<String>>, Error> {
    let (sender, receiver) = mpsc::channel(STDIN_QUEUE);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || forward_stdin_lines(&sender))
        .map_err(Error::Stdin)?;
    Ok(receiver)
}

fn forward_stdin_lines(sender: &mpsc::Sender<io::Result<String>>) {
    let mut stdin = io::stdin().lock();
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let line = match stdin.read_until(b'\n', &mut buffer) {
            Ok(0) => return,
            Ok(_) => Ok(String::from_utf8_lossy(without_line_ending(&buffer)).into_owned()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => Err(error),
        };
        let failed = line.is_err();
        if sender.blocking_send(line).is_err() || failed {
            return;
        }
    }
}

fn without_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_removed() {
        assert_eq!(without_line_ending(b"hi\r\n"), b"hi");
        assert_eq!(without_line_ending(b"hi\n"), b"hi");
        assert_eq!(without_line_ending(b"hi"), b"hi");
        assert_eq!(without_line_ending(b"\r\n"), b"");
    }
}
