//! The client on a terminal: the keyboard and the socket in one `select!`.
//!
//! [`Keyboard`] owns the line editor; received lines are written to its
//! [`SharedWriter`], which prints them above the prompt and redraws the
//! half-typed line below. That writer only prints while the editor is
//! being awaited (or flushed), so every loop here is a `biased` `select!`
//! that polls the keyboard first on each turn: whatever the socket branch
//! wrote on the previous turn is on the screen before anything else
//! happens, and the writer's queue never holds more than one line. Every
//! way out goes through [`run`], which flushes the writer and drops the
//! keyboard, and that turns raw mode off.

use std::io::Write;

use rustyline_async::{ReadlineEvent, SharedWriter};
use tokio::time::{Instant, sleep_until};

use crate::Settings;
use crate::args::{DEFAULT_ADDR, ServerAddr};
use chat_proto::command::is_quit;

use crate::connection::{Connection, GOODBYE_TIMEOUT};
use crate::display::{Style, for_terminal, sanitized};
use crate::error::Error;
use crate::identity::{Identity, NameEvent};
use crate::keyboard::Keyboard;
use crate::parse_addr;
use crate::tls::Tls;

const ADDRESS_PROMPT: &str = "server address [127.0.0.1:7878]: ";
const NAME_PROMPT: &str = "name: ";

/// Runs an interactive session on the terminal.
pub async fn run(settings: Settings) -> Result<(), Error> {
    let (mut keyboard, writer) = Keyboard::open()?;
    let result = session(&mut keyboard, writer, settings).await;
    keyboard.flush();
    result
}

async fn session(
    keyboard: &mut Keyboard,
    writer: SharedWriter,
    settings: Settings,
) -> Result<(), Error> {
    let addr = match settings.addr {
        Some(addr) => addr,
        None => match ask_address(keyboard).await? {
            Some(addr) => addr,
            None => return Ok(()),
        },
    };
    let Some(conn) = connect(keyboard, &addr, settings.tls.as_ref()).await? else {
        return Ok(());
    };
    let identity = Identity::default();
    keyboard.set_prompt(&prompt_for(&identity))?;
    let mut chat = Chat { keyboard, writer, conn, identity, style: settings.style };
    if let Some(name) = &settings.name {
        chat.send(name).await?;
    }
    if chat.converse().await? == Ending::Leaving {
        chat.leave().await;
    }
    Ok(())
}

/// Asks for the server address; an empty answer means [`DEFAULT_ADDR`],
/// Ctrl-C or Ctrl-D mean the user changed their mind (`None`).
async fn ask_address(keyboard: &mut Keyboard) -> Result<Option<ServerAddr>, Error> {
    keyboard.set_prompt(ADDRESS_PROMPT)?;
    match keyboard.next().await? {
        ReadlineEvent::Line(line) if line.trim().is_empty() => parse_addr(DEFAULT_ADDR).map(Some),
        ReadlineEvent::Line(line) => parse_addr(&line).map(Some),
        ReadlineEvent::Eof | ReadlineEvent::Interrupted => Ok(None),
    }
}

/// The prompt for who and where we are: the name prompt until the server
/// has welcomed us, then our name and current room (`alice #rust> `).
fn prompt_for(identity: &Identity) -> String {
    match identity.me() {
        Some(me) => format!("{me} {}> ", identity.room()),
        None => NAME_PROMPT.to_owned(),
    }
}

/// Connects while still listening to the keyboard, so Ctrl-C works during a
/// slow connect (`None`: the user left).
async fn connect(
    keyboard: &mut Keyboard,
    addr: &ServerAddr,
    tls: Option<&Tls>,
) -> Result<Option<Connection>, Error> {
    keyboard.set_prompt("")?;
    let connecting = Connection::connect(addr, tls);
    tokio::pin!(connecting);
    loop {
        tokio::select! {
            biased;
            input = keyboard.next() => match input? {
                ReadlineEvent::Eof | ReadlineEvent::Interrupted => return Ok(None),
                ReadlineEvent::Line(_) => {} // nobody to send it to yet
            },
            conn = &mut connecting => return conn.map(Some),
        }
    }
}

/// What woke the conversation loop up.
enum Event {
    Input(ReadlineEvent),
    Received(Option<String>),
}

/// How a conversation ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// We are leaving (Ctrl-C, Ctrl-D, `/quit`, a stop signal): say goodbye.
    Leaving,
    /// The server closed after our `/quit`.
    Closed,
}

/// A connected session: the keyboard, the socket, and who we are.
struct Chat<'a> {
    keyboard: &'a mut Keyboard,
    writer: SharedWriter,
    conn: Connection,
    identity: Identity,
    style: Style,
}

impl Chat<'_> {
    /// The `select!` loop: typed lines go to the server, received lines to
    /// the screen above the prompt, until someone leaves.
    async fn converse(&mut self) -> Result<Ending, Error> {
        loop {
            let event = tokio::select! {
                biased;
                input = self.keyboard.next() => Event::Input(input?),
                line = self.conn.next_line() => Event::Received(line?),
            };
            match event {
                Event::Input(ReadlineEvent::Line(line)) => {
                    if self.on_typed(line).await? {
                        return Ok(Ending::Leaving);
                    }
                }
                Event::Input(ReadlineEvent::Eof | ReadlineEvent::Interrupted) => {
                    return Ok(Ending::Leaving);
                }
                Event::Received(Some(line)) => self.on_received(&line).await?,
                Event::Received(None) => {
                    return self.conn.closed_by_server().map(|()| Ending::Closed);
                }
            }
        }
    }

    /// Handles a line the user entered; true when it was `/quit`.
    async fn on_typed(&mut self, line: String) -> Result<bool, Error> {
        let naming = self.identity.me().is_none();
        if line.is_empty() && !naming {
            return Ok(false); // an empty message is nothing; an empty name asks for one
        }
        self.keyboard.remember(&line);
        self.send(&line).await?;
        Ok(is_quit(&line))
    }

    async fn send(&mut self, line: &str) -> Result<(), Error> {
        self.identity.on_sent(line);
        self.conn.send(line).await
    }

    /// Shows a received line and follows what it says about our name and
    /// our current room, both shown in the prompt; asks for the password
    /// when the name is registered.
    async fn on_received(&mut self, line: &str) -> Result<(), Error> {
        let event = self.identity.on_received(&sanitized(line, false));
        self.keyboard.set_prompt(&prompt_for(&self.identity))?;
        let shown = for_terminal(line, self.style, self.identity.me());
        writeln!(self.writer, "{shown}").map_err(|error| Error::Terminal(error.to_string()))?;
        if let NameEvent::PasswordAsked(name) = event {
            self.ask_password(&name).await?;
        }
        Ok(())
    }

    /// Reads the password without echo and sends it; it is kept nowhere.
    /// Ctrl-D sends an empty one, which the server refuses.
    async fn ask_password(&mut self, name: &str) -> Result<(), Error> {
        let (password, writer) =
            self.keyboard.read_secret(&format!("password for {name}: ")).await?;
        self.writer = writer;
        self.conn.send(password.as_deref().unwrap_or_default()).await
    }

    /// `/quit`, `shutdown(Write)`, then show what still arrives until the
    /// server closes, [`GOODBYE_TIMEOUT`] passes, or the user presses Ctrl-C
    /// or Ctrl-D again.
    async fn leave(&mut self) {
        self.conn.say_goodbye().await;
        let deadline = Instant::now() + GOODBYE_TIMEOUT;
        loop {
            tokio::select! {
                biased;
                input = self.keyboard.next() => match input {
                    Ok(ReadlineEvent::Line(_)) => {} // too late to send
                    Ok(ReadlineEvent::Eof | ReadlineEvent::Interrupted) | Err(_) => return,
                },
                line = self.conn.next_line() => match line {
                    Ok(Some(line)) => {
                        if self.on_received(&line).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) | Err(_) => return,
                },
                () = sleep_until(deadline) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::vocabulary::{self, NAME_PROMPT as ASKS_NAME};
    use chat_proto::{Line, Name, RoomName, THEMES};

    fn heard(identity: &mut Identity, line: &Line) {
        let bytes = line.bytes(false);
        let plain = std::str::from_utf8(bytes).expect("utf-8").trim_end();
        identity.on_received(plain);
    }

    #[test]
    fn the_prompt_names_us_and_our_current_room() {
        let mut identity = Identity::default();
        assert_eq!(prompt_for(&identity), NAME_PROMPT);
        heard(&mut identity, &Line::notice(ASKS_NAME));
        identity.on_sent("alice");
        let alice = Name::parse("alice").expect("valid");
        heard(&mut identity, &Line::notice(&vocabulary::welcome(&alice, &THEMES[0])));
        assert_eq!(prompt_for(&identity), "alice #lobby> ");
        let rust = RoomName::parse("#rust").expect("valid");
        heard(&mut identity, &Line::notice(&vocabulary::now_in(&rust)));
        assert_eq!(prompt_for(&identity), "alice #rust> ");
        let alicia = Name::parse("alicia").expect("valid");
        heard(&mut identity, &Line::notice(&vocabulary::renamed(&alicia)));
        assert_eq!(prompt_for(&identity), "alicia #rust> ");
    }
}
