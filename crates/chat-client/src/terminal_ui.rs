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
//!
//! A lost connection is not the end of a session that had a name: [`Chat`]
//! says so, waits as [`Backoff`] says (the keyboard still read, so the
//! half-typed line stays and Ctrl-C or Ctrl-D leave), connects again, takes
//! the same name with the password kept in memory, rejoins the rooms it was
//! in and sends the lines entered meanwhile; what it restores and holds is
//! a [`Comeback`]'s business. Only the server's own goodbyes that make
//! coming back pointless (removed, replaced, quit) end it.

use std::io::Write;

use rustyline_async::{ReadlineEvent, SharedWriter};
use tokio::time::{Instant, sleep, sleep_until};

use crate::Settings;
use crate::args::{DEFAULT_ADDR, ServerAddr};
use chat_proto::command::{self, Command, is_quit};

use crate::backoff::Backoff;
use crate::comeback::{Comeback, Held, UNSENT_MAX};
use crate::connection::{Connection, GOODBYE_TIMEOUT};
use crate::display::{Style, for_terminal, sanitized};
use crate::error::Error;
use crate::identity::{Identity, NameEvent};
use crate::keyboard::Keyboard;
use crate::parse_addr;
use crate::tls::Tls;

const ADDRESS_PROMPT: &str = "server address [127.0.0.1:7878]: ";
const NAME_PROMPT: &str = "name: ";
/// What starts the client's own notes on the screen, as the server's notices start.
const NOTE_MARK: &str = "*** ";

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
    let mut chat = Chat {
        keyboard,
        writer,
        conn,
        identity: Identity::default(),
        style: settings.style,
        server: Server { addr, tls: settings.tls },
        password: None,
        password_typed: None,
        comeback: None,
        backoff: Backoff::default(),
    };
    chat.show_prompt()?;
    if let Some(name) = &settings.name {
        chat.send(name).await?;
    }
    loop {
        match chat.converse().await {
            Ok(Ending::Leaving) => {
                chat.leave().await;
                return Ok(());
            }
            Ok(Ending::Closed) => return Ok(()),
            Err(lost @ Error::Lost { .. }) if chat.may_come_back() => chat.come_back(lost).await?,
            Err(error) => return Err(error),
        }
    }
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

/// Where to connect again.
struct Server {
    addr: ServerAddr,
    tls: Option<Tls>,
}

/// A session: the keyboard, the socket, who we are, and what it takes to
/// come back after a lost connection.
struct Chat<'a> {
    keyboard: &'a mut Keyboard,
    writer: SharedWriter,
    conn: Connection,
    identity: Identity,
    style: Style,
    server: Server,
    /// Our name's password, kept in memory only, to log in again after a
    /// lost connection: the last one the server accepted, registered or set.
    password: Option<String>,
    /// The password typed at the prompt, kept once the server welcomes us.
    password_typed: Option<String>,
    /// Set from a lost connection until the server welcomes us back.
    comeback: Option<Comeback>,
    backoff: Backoff,
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

    /// Whether a lost connection is worth connecting again for: we had a
    /// name (or were coming back already) and the server did not send us
    /// away for good.
    fn may_come_back(&self) -> bool {
        (self.identity.me().is_some() || self.comeback.is_some()) && self.conn.worth_coming_back()
    }

    /// Handles a line the user entered; true when it was `/quit`.
    async fn on_typed(&mut self, line: String) -> Result<bool, Error> {
        let naming = self.identity.me().is_none() && !self.holding();
        if line.is_empty() && !naming {
            return Ok(false); // an empty message is nothing; an empty name asks for one
        }
        if password_change(&line).is_none() {
            self.keyboard.remember(&line);
        }
        let quit = is_quit(&line);
        if self.holding() {
            if !quit {
                self.hold(line)?;
            }
            return Ok(quit);
        }
        self.submit(&line).await?;
        Ok(quit)
    }

    /// Whether typed lines wait for the session to be back in.
    fn holding(&self) -> bool {
        self.comeback.as_ref().is_some_and(Comeback::holds_lines)
    }

    /// Keeps a line entered while not connected, to send once back in.
    fn hold(&mut self, line: String) -> Result<(), Error> {
        let Some(comeback) = self.comeback.as_mut() else { return Ok(()) };
        match comeback.hold(line) {
            Held::First => self.note("Not connected: what you enter is sent once back in."),
            Held::Queued => Ok(()),
            Held::Dropped => self.note(&format!(
                "Not connected: {UNSENT_MAX} lines wait already, that one is dropped."
            )),
        }
    }

    /// Sends a line the user entered, keeping in memory the password that
    /// `/register` or `/password` gives our name (or forgetting it on
    /// `/unregister`), so that coming back can log in.
    async fn submit(&mut self, line: &str) -> Result<(), Error> {
        if self.identity.me().is_some()
            && let Some(password) = password_change(line)
        {
            self.password = password;
        }
        self.send(line).await
    }

    async fn send(&mut self, line: &str) -> Result<(), Error> {
        self.identity.on_sent(line);
        self.conn.send(line).await
    }

    /// Shows a received line and follows what it says about our name and
    /// our current room, both shown in the prompt; answers or asks for the
    /// password when the name is registered; back in after a lost
    /// connection, restores the rooms.
    async fn on_received(&mut self, line: &str) -> Result<(), Error> {
        let event = self.identity.on_received(&sanitized(line, false));
        let shown = for_terminal(line, self.style, self.identity.me());
        writeln!(self.writer, "{shown}").map_err(|error| Error::Terminal(error.to_string()))?;
        match event {
            NameEvent::PasswordAsked(name) => self.answer_password(&name).await?,
            NameEvent::Accepted(_) => self.welcomed().await?,
            NameEvent::Refused { .. } => {
                self.password_typed = None;
                if let Some(comeback) = self.comeback.as_mut() {
                    comeback.name_refused();
                }
            }
            NameEvent::Unchanged => {}
        }
        self.show_prompt()
    }

    /// Sends the password for `name`: the kept one, once, when coming back
    /// under the same name; otherwise what the user types. It is kept (in
    /// memory) only once the server accepts it; a Ctrl-D at the prompt
    /// sends an empty one, which the server refuses.
    async fn answer_password(&mut self, name: &str) -> Result<(), Error> {
        let password = match self.kept_password_for(name) {
            Some(password) => Some(password),
            None => self.ask_password(name).await?,
        };
        let sent = self.conn.send(password.as_deref().unwrap_or_default()).await;
        self.password_typed = password;
        sent
    }

    /// The kept password, if we are coming back as `name` and have not
    /// tried it on this connection yet.
    fn kept_password_for(&mut self, name: &str) -> Option<String> {
        let tried = self.comeback.as_mut()?.try_kept_password(name);
        if tried { self.password.clone() } else { None }
    }

    /// Reads a password without echo (`None`: the user gave up, Ctrl-D).
    async fn ask_password(&mut self, name: &str) -> Result<Option<String>, Error> {
        let (password, writer) =
            self.keyboard.read_secret(&format!("password for {name}: ")).await?;
        self.writer = writer;
        Ok(password)
    }

    /// The server welcomed us (or confirmed a rename): keep the password
    /// that got us in, and if we are coming back, rejoin our rooms and send
    /// what was entered meanwhile.
    async fn welcomed(&mut self) -> Result<(), Error> {
        if let Some(password) = self.password_typed.take() {
            self.password = Some(password);
        }
        let Some(comeback) = self.comeback.take() else { return Ok(()) };
        self.backoff.reset();
        let (rejoin, unsent) = comeback.into_lines();
        for command in rejoin {
            self.send(&command).await?;
        }
        for line in unsent {
            self.submit(&line).await?;
        }
        Ok(())
    }

    /// Connects again after `lost`, waiting longer after each failure and
    /// saying so; `Err(lost)` when the user leaves meanwhile. Once
    /// connected, sends our name: the rest follows from what the server says.
    async fn come_back(&mut self, lost: Error) -> Result<(), Error> {
        let mut comeback = self.comeback.take().unwrap_or_else(|| Comeback::from(&self.identity));
        comeback.on_new_connection();
        self.comeback = Some(comeback);
        self.show_prompt()?;
        let (addr, tls) = (self.server.addr.clone(), self.server.tls.clone());
        let mut why = lost.to_string();
        let conn = loop {
            let wait = self.backoff.next_wait();
            let seconds = wait.as_secs_f64();
            self.note(&format!(
                "{why}; trying again in {seconds:.1} s (Ctrl-C or Ctrl-D to leave)."
            ))?;
            if self.while_offline(sleep(wait)).await?.is_none() {
                return Err(lost);
            }
            match self.while_offline(Connection::connect(&addr, tls.as_ref())).await? {
                None => return Err(lost),
                Some(Ok(conn)) => break conn,
                Some(Err(error)) => why = error.to_string(),
            }
        };
        self.conn = conn;
        self.identity = Identity::default();
        self.note(&format!("Connected to {addr} again."))?;
        let name = self.comeback.as_ref().map(|comeback| comeback.name.clone());
        self.send(&name.unwrap_or_default()).await
    }

    /// Runs `task` while still reading the keyboard: entered lines are
    /// held for later; `None` when the user leaves (Ctrl-C, Ctrl-D, `/quit`).
    async fn while_offline<T>(
        &mut self,
        task: impl Future<Output = T>,
    ) -> Result<Option<T>, Error> {
        tokio::pin!(task);
        loop {
            let input = tokio::select! {
                biased;
                input = self.keyboard.next() => input?,
                done = &mut task => return Ok(Some(done)),
            };
            match input {
                ReadlineEvent::Line(line) => {
                    if self.on_typed(line).await? {
                        return Ok(None);
                    }
                }
                ReadlineEvent::Eof | ReadlineEvent::Interrupted => return Ok(None),
            }
        }
    }

    /// Shows the prompt for where the session is: `alice #rust (offline)> `
    /// while coming back, the name prompt or `alice #rust> ` otherwise.
    fn show_prompt(&mut self) -> Result<(), Error> {
        let prompt = match &self.comeback {
            Some(comeback) if comeback.holds_lines() => {
                format!("{} {} (offline)> ", comeback.name, comeback.current)
            }
            _ => prompt_for(&self.identity),
        };
        self.keyboard.set_prompt(&prompt)
    }

    /// Prints a note of the client's own above the prompt.
    fn note(&mut self, text: &str) -> Result<(), Error> {
        writeln!(self.writer, "{NOTE_MARK}{text}")
            .map_err(|error| Error::Terminal(error.to_string()))
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

/// What a typed line does to our name's password: `Some(Some(new))` for
/// `/register` and `/password`, `Some(None)` for `/unregister`, `None` for
/// any other line. A line that holds a password is kept out of the history.
fn password_change(line: &str) -> Option<Option<String>> {
    match command::parse(line) {
        Command::Register(password) | Command::Password { new: password, .. } => {
            Some(Some(password.to_owned()))
        }
        Command::Unregister(_) => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::vocabulary::{self, NAME_PROMPT as ASKS_NAME};
    use chat_proto::{Line, Name, RoomName, THEMES};

    #[test]
    fn password_commands_stay_out_of_the_history() {
        assert_eq!(password_change("/register hunter22"), Some(Some("hunter22".into())));
        assert_eq!(password_change("/password old new-one"), Some(Some("new-one".into())));
        assert_eq!(password_change("/unregister hunter22"), Some(None));
        assert_eq!(password_change("my password is weak"), None);
    }

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
