//! The IRC door (`--listen-irc`, `--listen-irc-tls`): IRC clients in the
//! same rooms, under the same names, as everyone else.
//!
//! It is the one session of `connection.rs` with two parts of its own: the
//! registration ([`Connection::register`]: `CAP`, `NICK`, `USER`, `PASS`,
//! SASL `PLAIN`), the IRC counterpart of the name prompt, which logs a
//! registered name in through `login.rs` as the prompt does, with the same
//! throttle; and the reading of IRC commands ([`Connection::irc_line`]),
//! which carries each one out through the [`Hub`](crate::hub::Hub) as the
//! chat's commands do, and answers with numerics. Events and replies are
//! rendered by [`render`]; messages are split by [`message`]. Rooms are
//! channels, names are nicks, `/me` is CTCP ACTION, and `/msg` is a
//! PRIVMSG to a nick. The chat's own commands that IRC lacks (`HISTORY`,
//! `SEARCH`, `REGISTER`, `ROOMS`, `HELP`, `MUTE`, ...) are taken as
//! commands of that name (`/quote register PASSWORD`).

mod message;
mod render;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chat_proto::{Name, RoomKey, RoomName, sanitize_text};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tracing::info;

use crate::command;
use crate::connection::{Connection, Welcome};
use crate::hub::{Action, Actor, Joined, NameRight};
use crate::login::{self, Denied};
use crate::moderation::Rank;
use crate::protocol::Sink;
use crate::reply::Reply;
use crate::room::{Listing, Place, RoomError};
use crate::session::{End, Session};
use crate::store::{Account, Stored, now_ms};
use crate::subscription::Subscription;

pub use message::MAX_LINE;
use message::{Malformed, Message};
pub use render::IRC;
use render::{SERVER, source, user_of};

/// `TOPICLEN`: the topics the hub keeps.
pub const TOPIC_LEN: usize = crate::hub::TOPIC_MAX;
/// `CHATHISTORY`: the most messages one request returns.
pub const CHATHISTORY_MAX: usize = 100;
/// How far back `CHATHISTORY` looks: a room's most recent lines.
const CHATHISTORY_REACH: usize = 1000;
/// SASL PLAIN arrives in chunks of this many base64 bytes; a shorter one is the last.
const SASL_CHUNK: usize = 400;

/// The capabilities offered, in `CAP LS` order.
const CAPABILITIES: [(&str, u16); 7] = [
    ("server-time", SERVER_TIME),
    ("message-tags", MESSAGE_TAGS),
    ("echo-message", ECHO_MESSAGE),
    ("sasl", SASL),
    ("multi-prefix", MULTI_PREFIX),
    ("batch", BATCH),
    ("draft/chathistory", CHATHISTORY),
];
const SERVER_TIME: u16 = 1;
const MESSAGE_TAGS: u16 = 2;
const ECHO_MESSAGE: u16 = 4;
const SASL: u16 = 8;
const MULTI_PREFIX: u16 = 16;
const BATCH: u16 = 32;
const CHATHISTORY: u16 = 64;

/// One IRC client's state beside the session: what it asked for, and
/// whether it is still there.
pub struct Client {
    caps: u16,
    /// `CAP LS` or `REQ` came before registration: it waits for `CAP END`.
    negotiating: bool,
    /// The nick given so far, for numerics before registration ends.
    nick: String,
    away: bool,
    /// Silence after which the client is pinged.
    ping: Duration,
    heard: Instant,
    pinged: bool,
    batches: u64,
    /// Fires at [`Client::due`]; kept here, boxed, so a connection's task
    /// does not carry a timer on every other door.
    timer: Pin<Box<Sleep>>,
}

impl Client {
    pub fn new(ping: Duration) -> Self {
        Client {
            caps: 0,
            negotiating: false,
            nick: "*".to_owned(),
            away: false,
            ping,
            heard: Instant::now(),
            pinged: false,
            batches: 0,
            timer: Box::pin(tokio::time::sleep(ping)),
        }
    }

    fn has(&self, cap: u16) -> bool {
        self.caps & cap != 0
    }

    /// When the client is to be pinged, or, pinged already, given up on.
    fn due(&self) -> Instant {
        self.heard + if self.pinged { self.ping * 2 } else { self.ping }
    }
}

/// Resolves when an IRC client has been silent long enough to be pinged
/// or dropped; never for other doors.
pub fn keepalive_due(mut client: Option<&mut Client>) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| {
        let Some(client) = client.as_deref_mut() else { return Poll::Pending };
        let due = client.due();
        if client.timer.deadline() != due {
            client.timer.as_mut().reset(due);
        }
        client.timer.as_mut().poll(cx)
    })
}

/// What registration has gathered so far.
#[derive(Default)]
struct Registration {
    nick: Option<Name>,
    user: bool,
    pass: Option<String>,
    /// SASL PLAIN under way: the base64 received so far.
    sasl: Option<String>,
    /// Logged in through SASL: the name and its account.
    account: Option<(Name, Account)>,
}

/// A nick as a name of this chat, or why it is not one here.
fn nick_name(nick: &str) -> Result<Name, String> {
    if nick.starts_with(['#', ':', '&', '$']) || nick.contains([',', '*', '?', '!', '@']) {
        return Err("a nick may not start with # : & $ or contain , * ? ! @".to_owned());
    }
    Name::parse(nick).map_err(|e| e.to_string())
}

/// Text a client sent that others will read (a quit reason, a topic),
/// sanitised as every line of every door is.
fn clean(text: &str) -> String {
    sanitize_text(text).trim().to_owned()
}

/// A ban mask as the target the chat bans: the host of `*!*@host`, or the nick.
fn mask_target(mask: &str) -> &str {
    match mask.split_once('@') {
        Some((user, host)) if user.starts_with('*') => host,
        _ => mask.split('!').next().unwrap_or(mask),
    }
}

type Registered = (Session, Welcome, Option<Account>);

impl<R, W> Connection<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    fn client(&mut self) -> &mut Client {
        self.irc.get_or_insert_with(|| Box::new(Client::new(Duration::from_secs(60))))
    }

    /// Writes one message (without its line end) into the output.
    fn send(&mut self, line: &str) {
        self.output.put(&Bytes::from(format!("{line}\r\n")));
    }

    /// Writes a numeric addressed to the client.
    fn numeric(&mut self, code: &str, rest: &str) {
        let me = self.me();
        self.send(&format!(":{SERVER} {code} {me} {rest}"));
    }

    /// The client's nick as it stands.
    fn me(&mut self) -> String {
        match &self.output.me {
            Some(name) => name.to_string(),
            None => self.client().nick.clone(),
        }
    }

    /// Registration: reads `CAP`, `NICK`, `USER`, `PASS` and `AUTHENTICATE`
    /// until the client has a nick the chat accepts (a registered one with
    /// its password, through `PASS` or SASL) and has ended `CAP`
    /// negotiation, within `--name-timeout`.
    pub(crate) async fn register(&mut self) -> Result<Registered, End> {
        let deadline = Instant::now() + self.ctx.limits.name_timeout;
        let mut registration = Registration::default();
        let mut first_line = true;
        loop {
            let Some(raw) = self.read_before(deadline).await? else { continue };
            if std::mem::take(&mut first_line) && crate::connection::looks_like_http(&raw) {
                return Err(End::Http);
            }
            let message = match message::parse(&raw) {
                Ok(message) => message,
                Err(Malformed::Empty) => continue,
                Err(Malformed::TooLong) => {
                    self.numeric("417", ":Input line was too long");
                    continue;
                }
            };
            match message.command.as_str() {
                "CAP" => self.cap(&message, true),
                "PASS" => match message.param(0) {
                    Some(pass) => registration.pass = Some(pass.to_owned()),
                    None => self.numeric("461", "PASS :Not enough parameters"),
                },
                "NICK" => match message.param(0).filter(|nick| !nick.is_empty()) {
                    None => self.numeric("431", ":No nickname given"),
                    Some(nick) => match nick_name(nick) {
                        Ok(name) => {
                            self.client().nick = name.to_string();
                            registration.nick = Some(name);
                        }
                        Err(reason) => self.numeric("432", &format!("{nick} :{reason}")),
                    },
                },
                "USER" if message.params.len() < 4 => {
                    self.numeric("461", "USER :Not enough parameters");
                }
                "USER" => registration.user = true,
                "AUTHENTICATE" => self.authenticate(&mut registration, &message).await?,
                "PING" => self.pong(&message),
                "PONG" => {}
                "QUIT" => return Err(End::Quit(message.param(0).map(clean))),
                command => self.numeric("451", &format!("{command} :You have not registered")),
            }
            let ready = registration.user
                && (registration.nick.is_some() || registration.account.is_some())
                && !self.client().negotiating;
            if ready && let Some(registered) = self.arrive_on_irc(&mut registration).await? {
                return Ok(registered);
            }
        }
    }

    /// Arrives under the nick given (or the SASL account): a free name at
    /// once, a registered one with `PASS`; `None` when refused, with the
    /// numeric that says why, so the client may try another nick.
    async fn arrive_on_irc(
        &mut self,
        registration: &mut Registration,
    ) -> Result<Option<Registered>, End> {
        let ctx = Arc::clone(&self.ctx);
        let (id, peer) = (self.id, self.peer);
        let who = login::Who { id, peer };
        if let Some((name, account)) = registration.account.take() {
            if !ctx.hub.replace(&name).await {
                self.numeric("433", &format!("{name} :{}", RoomError::NameTaken));
                return Ok(None);
            }
            return Ok(match ctx.hub.arrive(id, name.clone(), peer, NameRight::Owner).await {
                Ok((name, arrival)) => Some(self.registered(name, arrival, Some(account))),
                Err(error) => {
                    self.numeric("433", &format!("{name} :{error}"));
                    None
                }
            });
        }
        let Some(name) = registration.nick.take() else { return Ok(None) };
        let arrived = match login::account_of(&ctx, &name).await {
            None => {
                ctx.hub.arrive(id, name.clone(), peer, NameRight::Free).await.map(|a| (a, None))
            }
            Some(account) => match registration.pass.take() {
                None => {
                    let reason =
                        "is registered: give its password with PASS or SASL, or another nick";
                    self.numeric("433", &format!("{name} :{name} {reason}"));
                    return Ok(None);
                }
                Some(password) => {
                    match login::log_in(&ctx, who, name.clone(), &account, password).await {
                        Ok(arrived) => Ok((arrived, Some(account))),
                        Err(Denied::Stopping) => return Err(End::Shutdown),
                        Err(Denied::Refused(reason)) => {
                            self.numeric("464", &format!(":{reason}"));
                            return Ok(None);
                        }
                    }
                }
            },
        };
        match arrived {
            Ok(((name, arrival), account)) => Ok(Some(self.registered(name, arrival, account))),
            Err(error) => {
                let code = match error {
                    RoomError::NameTaken | RoomError::Registered => "433",
                    _ => "432",
                };
                self.numeric(code, &format!("{name} :{error}"));
                Ok(None)
            }
        }
    }

    fn registered(
        &mut self,
        name: Name,
        arrival: crate::hub::Arrival,
        account: Option<Account>,
    ) -> Registered {
        info!(peer = %self.peer, id = self.id, %name, "named on irc");
        let (session, welcome) = self.start_session(name, arrival, account.is_some());
        self.client().heard = Instant::now();
        (session, welcome, account)
    }

    /// `CAP LS`, `LIST`, `REQ`, `END`.
    fn cap(&mut self, message: &Message<'_>, registering: bool) {
        let me = self.me();
        let sub = message.param(0).unwrap_or("").to_ascii_uppercase();
        match sub.as_str() {
            "LS" => {
                self.client().negotiating |= registering;
                let v302 = message.param(1).and_then(|v| v.parse::<u32>().ok()) >= Some(302);
                let caps: Vec<String> = CAPABILITIES
                    .iter()
                    .map(|(name, _)| match *name {
                        "sasl" if v302 => "sasl=PLAIN".to_owned(),
                        name => name.to_owned(),
                    })
                    .collect();
                self.send(&format!(":{SERVER} CAP {me} LS :{}", caps.join(" ")));
            }
            "LIST" => {
                let caps = self.client().caps;
                let on: Vec<&str> = CAPABILITIES
                    .iter()
                    .filter(|(_, bit)| caps & bit != 0)
                    .map(|(name, _)| *name)
                    .collect();
                self.send(&format!(":{SERVER} CAP {me} LIST :{}", on.join(" ")));
            }
            "REQ" => {
                self.client().negotiating |= registering;
                let asked = message.param(1).unwrap_or("");
                let mut caps = self.client().caps;
                let mut known = true;
                for cap in asked.split_whitespace() {
                    let (off, name) = match cap.strip_prefix('-') {
                        Some(name) => (true, name),
                        None => (false, cap),
                    };
                    match CAPABILITIES.iter().find(|(known, _)| *known == name) {
                        Some((_, bit)) if off => caps &= !bit,
                        Some((_, bit)) => caps |= bit,
                        None => known = false,
                    }
                }
                if known {
                    self.client().caps = caps;
                    let tagged = caps & (SERVER_TIME | MESSAGE_TAGS) != 0;
                    self.output.set_protocol(render::irc(tagged, caps & BATCH != 0));
                    self.send(&format!(":{SERVER} CAP {me} ACK :{asked}"));
                } else {
                    self.send(&format!(":{SERVER} CAP {me} NAK :{asked}"));
                }
            }
            "END" => self.client().negotiating = false,
            _ => self.numeric("410", &format!("{sub} :Invalid CAP command")),
        }
    }

    /// SASL `PLAIN` (RFC 4616) against the registered names, with the same
    /// throttle as the name prompt.
    async fn authenticate(
        &mut self,
        registration: &mut Registration,
        message: &Message<'_>,
    ) -> Result<(), End> {
        let Some(data) = message.param(0) else {
            self.numeric("461", "AUTHENTICATE :Not enough parameters");
            return Ok(());
        };
        if data == "*" {
            registration.sasl = None;
            self.numeric("906", ":SASL authentication aborted");
            return Ok(());
        }
        let Some(received) = &mut registration.sasl else {
            if data.eq_ignore_ascii_case("PLAIN") {
                registration.sasl = Some(String::new());
                self.send("AUTHENTICATE +");
            } else {
                self.numeric("908", "PLAIN :are available SASL mechanisms");
                self.numeric("904", ":SASL authentication failed");
            }
            return Ok(());
        };
        if data != "+" {
            received.push_str(data);
        }
        if received.len() > 4 * SASL_CHUNK {
            registration.sasl = None;
            self.numeric("905", ":SASL message too long");
            return Ok(());
        }
        if data.len() == SASL_CHUNK {
            return Ok(());
        }
        let Some(received) = registration.sasl.take() else { return Ok(()) };
        let decoded = base64::engine::general_purpose::STANDARD.decode(received.as_bytes());
        let plain = decoded.ok().and_then(|bytes| String::from_utf8(bytes).ok());
        let mut fields = plain.as_deref().unwrap_or("").split('\0');
        let (_authzid, authcid, password) = (fields.next(), fields.next(), fields.next());
        let (Some(authcid), Some(password)) = (authcid, password) else {
            self.numeric("904", ":SASL authentication failed");
            return Ok(());
        };
        let ctx = Arc::clone(&self.ctx);
        let account = match Name::parse(authcid) {
            Ok(name) => login::account_of(&ctx, &name).await.map(|account| (name, account)),
            Err(_) => None,
        };
        let Some((name, account)) = account else {
            self.numeric("904", ":SASL authentication failed");
            return Ok(());
        };
        let who = login::Who { id: self.id, peer: self.peer };
        match login::check(&ctx, who, &name, &account, password.to_owned()).await {
            Ok(()) => {
                info!(peer = %self.peer, id = self.id, %name, "logged in with sasl");
                let mask = source(name.as_str());
                self.client().nick = name.to_string();
                self.numeric("900", &format!("{mask} {name} :You are now logged in as {name}"));
                self.numeric("903", ":SASL authentication successful");
                registration.account = Some((name, account));
            }
            Err(Denied::Refused(_)) => self.numeric("904", ":SASL authentication failed"),
            Err(Denied::Stopping) => return Err(End::Shutdown),
        }
        Ok(())
    }

    fn pong(&mut self, message: &Message<'_>) {
        let token = message.param(0).unwrap_or(SERVER);
        self.send(&format!(":{SERVER} PONG {SERVER} :{token}"));
    }

    /// A quiet client is pinged; one that said nothing since is let go.
    pub(crate) async fn keep_alive(&mut self) -> Result<(), End> {
        let client = self.client();
        if client.pinged {
            return Err(End::Lost("no answer to PING".to_owned()));
        }
        client.pinged = true;
        self.send(&format!("PING :{SERVER}"));
        Ok(self.output.flush().await?)
    }

    /// Carries out one IRC command of a registered client.
    pub(crate) async fn irc_line(&mut self, session: &mut Session, raw: &str) -> Result<(), End> {
        let client = self.client();
        client.heard = Instant::now();
        client.pinged = false;
        let message = match message::parse(raw) {
            Ok(message) => message,
            Err(Malformed::Empty) => return Ok(()),
            Err(Malformed::TooLong) => {
                self.numeric("417", ":Input line was too long");
                return Ok(self.output.flush().await?);
            }
        };
        match message.command.as_str() {
            "PING" => self.pong(&message),
            "PONG" => {}
            "CAP" => self.cap(&message, false),
            "USER" | "PASS" => self.numeric("462", ":You may not reregister"),
            "AUTHENTICATE" => self.numeric("907", ":You have already authenticated"),
            "QUIT" => return Err(End::Quit(message.param(0).map(clean))),
            "NICK" => self.nick(session, &message).await?,
            "JOIN" => self.join(session, &message).await?,
            "PART" => self.part(session, &message),
            "PRIVMSG" | "NOTICE" => return self.privmsg(session, &message).await,
            "NAMES" => self.names(&message),
            "WHO" => self.who(&message),
            "WHOIS" => self.whois(&message),
            "USERHOST" => self.userhost(&message),
            "LIST" => self.list(),
            "TOPIC" => self.topic(session, &message).await,
            "MODE" => self.mode(session, &message).await,
            "KICK" => self.kick(session, &message).await,
            "AWAY" => {
                let away = message.param(0).is_some_and(|text| !text.is_empty());
                self.client().away = away;
                match away {
                    true => self.numeric("306", ":You have been marked as being away"),
                    false => self.numeric("305", ":You are no longer marked as being away"),
                }
            }
            "CHATHISTORY" => self.chathistory(session, &message).await,
            "MOTD" => self.numeric("422", ":MOTD File is missing"),
            command => return self.chat_command(session, command, &message).await,
        }
        Ok(self.output.flush().await?)
    }

    /// A chat command IRC has no word for (`HISTORY`, `REGISTER`, ...), as
    /// `/history ...` would be; anything else is unknown.
    async fn chat_command(
        &mut self,
        session: &mut Session,
        command: &str,
        message: &Message<'_>,
    ) -> Result<(), End> {
        let line = format!("/{} {}", command.to_ascii_lowercase(), message.params.join(" "));
        if let chat_proto::Command::Unknown(_) = chat_proto::command::parse(line.trim()) {
            self.numeric("421", &format!("{command} :Unknown command"));
            return Ok(self.output.flush().await?);
        }
        command::execute(&self.ctx, session, &mut self.output, line.trim()).await
    }

    async fn nick(&mut self, session: &mut Session, message: &Message<'_>) -> Result<(), End> {
        let Some(nick) = message.param(0).filter(|nick| !nick.is_empty()) else {
            self.numeric("431", ":No nickname given");
            return Ok(());
        };
        let name = match nick_name(nick) {
            Ok(name) => name,
            Err(reason) => {
                self.numeric("432", &format!("{nick} :{reason}"));
                return Ok(());
            }
        };
        let ctx = Arc::clone(&self.ctx);
        match ctx.hub.rename(&mut session.speaker, name).await {
            Ok(()) => {
                let name = session.speaker.name.clone();
                info!(id = self.id, new = %name, "renamed");
                self.output.reply(&Reply::Renamed { name: name.clone() });
                self.output.me = Some(Box::new(name));
            }
            Err(error @ (RoomError::NameTaken | RoomError::Registered)) => {
                self.numeric("433", &format!("{nick} :{error}"));
            }
            Err(error) => self.numeric("432", &format!("{nick} :{error}")),
        }
        Ok(())
    }

    /// `JOIN #a,#b`: each channel joined (the last one current), with its
    /// topic, names and recent lines; `JOIN 0` parts every channel it may.
    async fn join(&mut self, session: &mut Session, message: &Message<'_>) -> Result<(), End> {
        let Some(targets) = message.param(0) else {
            self.numeric("461", "JOIN :Not enough parameters");
            return Ok(());
        };
        if targets == "0" {
            let keys = session.rooms.keys().to_vec();
            for key in keys {
                self.part_one(session, key.as_str());
            }
            return Ok(());
        }
        let ctx = Arc::clone(&self.ctx);
        for target in targets.split(',') {
            let name = match RoomName::parse(target) {
                Ok(name) if target.starts_with('#') => name,
                Ok(_) => {
                    self.numeric(
                        "403",
                        &format!("{target} :No such channel (channels start with #)"),
                    );
                    continue;
                }
                Err(error) => {
                    self.numeric("403", &format!("{target} :{error}"));
                    continue;
                }
            };
            match ctx.hub.join_room(&session.speaker, &name).await {
                Ok(Some(Joined { room, entry })) => {
                    info!(id = self.id, room = %room.name(), "joined a room");
                    self.joined_channel(room.name());
                    let lines = entry.history;
                    self.output.reply(&Reply::Recent { room: Some(room.name().clone()), lines });
                    let key = room.key().clone();
                    session.rooms.add(Subscription::new(room, entry.events, session.speaker.id));
                    session.rooms.set_current(&key);
                }
                Ok(None) => session.rooms.set_current(&name.key()),
                Err(error @ RoomError::Banned { .. }) => {
                    self.numeric("474", &format!("{name} :{error}"));
                }
                Err(
                    error @ (RoomError::TooManyRooms { .. } | RoomError::TooManyRoomsForYou { .. }),
                ) => {
                    self.numeric("405", &format!("{name} :{error}"));
                }
                Err(error) => self.numeric("403", &format!("{name} :{error}")),
            }
        }
        Ok(())
    }

    /// What a client is told of a channel it is now in: its `JOIN`, the
    /// topic and every member's name.
    pub(crate) fn joined_channel(&mut self, room: &RoomName) {
        let me = self.me();
        self.send(&format!(":{} JOIN {room}", source(&me)));
        if let Some(topic) = self.ctx.hub.moderation().topic(&room.key()) {
            let topic = Some(Box::new(topic));
            self.output.reply(&Reply::Topic { room: room.clone(), topic });
        }
        self.names_of(room.as_str());
    }

    fn part(&mut self, session: &mut Session, message: &Message<'_>) {
        let Some(targets) = message.param(0) else {
            self.numeric("461", "PART :Not enough parameters");
            return;
        };
        for target in targets.split(',') {
            self.part_one(session, target);
        }
    }

    /// Parts one channel, the last one too: the client is then in none,
    /// still connected and registered.
    fn part_one(&mut self, session: &mut Session, target: &str) {
        let key = RoomKey::of(target);
        if !session.rooms.contains(&key) {
            self.numeric("442", &format!("{target} :You're not on that channel"));
            return;
        }
        match self.ctx.hub.part_room(&session.speaker, &key, session.rooms.last_room()) {
            Ok(name) => {
                info!(id = self.id, room = %name, "left a room");
                self.output.reply(&Reply::Left { room: name });
                session.rooms.remove(&key);
            }
            Err(error) => self.numeric("442", &format!("{target} :{error}")),
        }
    }

    /// `PRIVMSG`/`NOTICE` to channels (the room's members, whatever their
    /// door) and nicks (a private line); CTCP ACTION is `/me`.
    async fn privmsg(&mut self, session: &mut Session, message: &Message<'_>) -> Result<(), End> {
        let notice = message.command == "NOTICE";
        let (Some(targets), Some(text)) = (message.param(0), message.param(1)) else {
            if !notice {
                match message.param(0) {
                    None => self.numeric("411", ":No recipient given (PRIVMSG)"),
                    Some(_) => self.numeric("412", ":No text to send"),
                }
            }
            return Ok(self.output.flush().await?);
        };
        let (text, action) = match text.strip_prefix("\u{1}ACTION") {
            Some(action) => (action.trim_end_matches('\u{1}').trim_start(), true),
            None if text.starts_with('\u{1}') => return Ok(()), // other CTCP: not carried
            None => (text, false),
        };
        let clean = sanitize_text(text);
        let clean = clean.trim();
        if clean.is_empty() {
            if !notice {
                self.numeric("412", ":No text to send");
            }
            return Ok(self.output.flush().await?);
        }
        let ctx = Arc::clone(&self.ctx);
        let echo = self.client().has(ECHO_MESSAGE);
        let mut paced = false;
        for target in targets.split(',') {
            if target.starts_with('#') {
                let Some(room) = session.rooms.room_named(target).cloned() else {
                    if !notice {
                        let reason = "Cannot send to channel (you are not in it; JOIN it first)";
                        self.numeric("404", &format!("{target} :{reason}"));
                    }
                    continue;
                };
                match ctx.hub.say(&session.speaker, &room, clean, action) {
                    Ok(_) => paced = true,
                    Err(mute) => {
                        self.output
                            .reply(&Reply::Muted { room: mute.room, until_ms: mute.until_ms });
                        continue;
                    }
                }
            } else {
                let text = if action {
                    format!("* {} {clean}", session.speaker.name)
                } else {
                    clean.to_owned()
                };
                match ctx.hub.whisper(&session.speaker, target, &text) {
                    Ok(_) => {}
                    Err(RoomError::NoSuchUser) if !notice => {
                        self.numeric("401", &format!("{target} :No such nick/channel"));
                        continue;
                    }
                    Err(error) if !notice => {
                        self.numeric("401", &format!("{target} :{error}"));
                        continue;
                    }
                    Err(_) => continue,
                }
            }
            if echo {
                let me = source(session.speaker.name.as_str());
                let command = if notice { "NOTICE" } else { "PRIVMSG" };
                let line = if action {
                    format!(":{me} {command} {target} :\u{1}ACTION {clean}\u{1}")
                } else {
                    format!(":{me} {command} {target} :{clean}")
                };
                self.timed(&line);
            }
        }
        self.output.flush().await?;
        if paced {
            session.rooms.pace(&mut self.output, |room| ctx.hub.is_backlogged(room)).await?;
        }
        Ok(())
    }

    /// A message with the time tag when the client takes tags.
    fn timed(&mut self, line: &str) {
        if self.client().has(SERVER_TIME | MESSAGE_TAGS) {
            let mut tagged = String::with_capacity(32 + line.len());
            render::push_time_tag(&mut tagged, now_ms());
            tagged.push_str(line);
            self.send(&tagged);
        } else {
            self.send(line);
        }
    }

    /// A member's nick with `@` for a room operator, owner or server operator.
    fn prefixed(&self, room: &RoomKey, member: &Listing) -> String {
        let rank = self.ctx.hub.moderation().rank(&member.name, true, Some(room));
        if rank >= Rank::RoomOperator {
            format!("@{}", member.name)
        } else {
            member.name.to_string()
        }
    }

    /// 353s and 366 for one channel (366 alone for one nobody is in).
    pub(crate) fn names_of(&mut self, channel: &str) {
        let key = RoomKey::of(channel);
        let members = self.ctx.hub.who(&key).unwrap_or_default();
        let names: Vec<String> = members.iter().map(|m| self.prefixed(&key, m)).collect();
        let me = self.me();
        for chunk in render::chunk_names(&names, 400).into_iter().filter(|c| !c.is_empty()) {
            self.send(&format!(":{SERVER} 353 {me} = {channel} :{chunk}"));
        }
        self.numeric("366", &format!("{channel} :End of /NAMES list."));
    }

    fn names(&mut self, message: &Message<'_>) {
        match message.param(0) {
            Some(channels) => channels.split(',').for_each(|channel| self.names_of(channel)),
            None => self.numeric("366", "* :End of /NAMES list."),
        }
    }

    /// `WHO #chan` (every member, here and on other daemons) or `WHO nick`.
    fn who(&mut self, message: &Message<'_>) {
        let mask = message.param(0).unwrap_or("*");
        let listed: Vec<(String, Listing, bool)> = if mask.starts_with('#') {
            let key = RoomKey::of(mask);
            let members = self.ctx.hub.who(&key).unwrap_or_default();
            members
                .into_iter()
                .map(|m| {
                    let op = self.prefixed(&key, &m).starts_with('@');
                    (mask.to_owned(), m, op)
                })
                .collect()
        } else {
            self.find(mask).into_iter().map(|m| ("*".to_owned(), m, false)).collect()
        };
        for (channel, member, op) in listed {
            let (name, user) = (member.name.as_str(), user_of(member.name.as_str()));
            let flags = if op { "H@" } else { "H" };
            let real = format!("{} {name}", member.theme.emoji);
            self.numeric(
                "352",
                &format!("{channel} {user} {SERVER} {SERVER} {name} {flags} :0 {real}"),
            );
        }
        self.numeric("315", &format!("{mask} :End of /WHO list."));
    }

    /// Someone connected here or to another daemon, by name (any case, look-alikes).
    fn find(&self, nick: &str) -> Option<Listing> {
        let key = Name::parse(nick).ok()?.key();
        let people = self.ctx.hub.people();
        if let Some(person) = people.local_people().into_iter().find(|p| p.name.key() == key) {
            return Some(Listing {
                name: person.name,
                theme: person.theme,
                place: Place::Here(person.peer),
            });
        }
        let (node, name) = people.remote_person(nick)?;
        let theme = chat_proto::THEMES[0];
        Some(Listing { name, theme, place: Place::Node(node) })
    }

    /// `USERHOST nick...` (the first five): `302` with `nick=+user@host`
    /// for each one online, as clients and scripts use it.
    fn userhost(&mut self, message: &Message<'_>) {
        if message.params.is_empty() {
            self.numeric("461", "USERHOST :Not enough parameters");
            return;
        }
        let found: Vec<String> = message
            .params
            .iter()
            .take(5)
            .filter_map(|nick| self.find(nick))
            .map(|member| {
                let name = member.name.to_string();
                format!("{name}=+{}@{SERVER}", user_of(&name))
            })
            .collect();
        self.numeric("302", &format!(":{}", found.join(" ")));
    }

    fn whois(&mut self, message: &Message<'_>) {
        let Some(nick) = message.params.last().copied() else {
            self.numeric("431", ":No nickname given");
            return;
        };
        let Some(member) = self.find(nick) else {
            self.numeric("401", &format!("{nick} :No such nick/channel"));
            self.numeric("318", &format!("{nick} :End of /WHOIS list."));
            return;
        };
        let name = member.name.to_string();
        let user = user_of(&name);
        self.numeric("311", &format!("{name} {user} {SERVER} * :{} {name}", member.theme.emoji));
        let keys = self.ctx.hub.people().local_people().into_iter().find(|p| p.name == member.name);
        let keys = keys.map(|person| person.rooms).unwrap_or_default();
        let rooms: Vec<String> = self
            .ctx
            .hub
            .room_list()
            .into_iter()
            .filter(|room| keys.contains(&room.key))
            .map(|room| room.name.to_string())
            .collect();
        if !rooms.is_empty() {
            self.numeric("319", &format!("{name} :{}", rooms.join(" ")));
        }
        let place = match member.place {
            Place::Here(_) => "connected to this daemon",
            Place::Node(_) => "connected to another daemon of this chat",
        };
        self.numeric("312", &format!("{name} {SERVER} :{place}"));
        self.numeric("318", &format!("{name} :End of /WHOIS list."));
    }

    fn list(&mut self) {
        self.numeric("321", "Channel :Users  Name");
        for room in self.ctx.hub.room_list() {
            let topic =
                self.ctx.hub.moderation().topic(&room.key).map(|t| t.text).unwrap_or_default();
            self.numeric("322", &format!("{} {} :{topic}", room.name, room.users));
        }
        self.numeric("323", ":End of /LIST");
    }

    /// A moderation command in `channel`, through the hub's rules; a
    /// refusal is 482 with the reason.
    async fn moderate(&mut self, session: &Session, channel: &str, action: Action<'_>) {
        let room = match RoomName::parse(channel) {
            Ok(room) => room,
            Err(error) => {
                self.numeric("403", &format!("{channel} :{error}"));
                return;
            }
        };
        let actor = Actor::User { speaker: &session.speaker, room: &room };
        let ctx = Arc::clone(&self.ctx);
        match ctx.hub.moderate(&actor, action).await {
            Ok(reply) => self.output.reply(&reply),
            Err(reason) => self.numeric("482", &format!("{room} :{reason}")),
        }
    }

    async fn topic(&mut self, session: &Session, message: &Message<'_>) {
        let Some(channel) = message.param(0) else {
            self.numeric("461", "TOPIC :Not enough parameters");
            return;
        };
        let key = RoomKey::of(channel);
        match message.param(1) {
            None => match RoomName::parse(channel) {
                Ok(room) => {
                    let topic = self.ctx.hub.moderation().topic(&key).map(Box::new);
                    self.output.reply(&Reply::Topic { room, topic });
                }
                Err(error) => self.numeric("403", &format!("{channel} :{error}")),
            },
            Some(_) if !session.rooms.contains(&key) => {
                self.numeric("442", &format!("{channel} :You're not on that channel"));
            }
            Some(text) => {
                let text = clean(text);
                self.moderate(session, channel, Action::Topic(Some(&text))).await;
            }
        }
    }

    async fn kick(&mut self, session: &Session, message: &Message<'_>) {
        let (Some(channel), Some(nicks)) = (message.param(0), message.param(1)) else {
            self.numeric("461", "KICK :Not enough parameters");
            return;
        };
        if !session.rooms.contains(&RoomKey::of(channel)) {
            self.numeric("442", &format!("{channel} :You're not on that channel"));
            return;
        }
        let reason = clean(message.param(2).unwrap_or(""));
        for who in nicks.split(',') {
            self.moderate(session, channel, Action::Kick { who, reason: &reason }).await;
        }
    }

    /// `MODE #chan` (324), `MODE #chan b` (the ban list), `+b/-b`, `+o/-o`
    /// and `+q/-q` (mute) through moderation; a user's own modes (221).
    async fn mode(&mut self, session: &Session, message: &Message<'_>) {
        let Some(target) = message.param(0) else {
            self.numeric("461", "MODE :Not enough parameters");
            return;
        };
        if !target.starts_with('#') {
            match Name::parse(target) {
                Ok(name) if name.key() == session.speaker.name.key() => self.numeric("221", "+i"),
                Ok(_) => self.numeric("502", ":Can't change mode for other users"),
                Err(_) => self.numeric("401", &format!("{target} :No such nick/channel")),
            }
            return;
        }
        let room = match RoomName::parse(target) {
            Ok(room) => room,
            Err(error) => {
                self.numeric("403", &format!("{target} :{error}"));
                return;
            }
        };
        let Some(changes) = message.param(1) else {
            self.numeric("324", &format!("{room} +nt"));
            return;
        };
        let mut args = message.params.iter().skip(2).copied();
        let mut adding = true;
        for mode in changes.chars() {
            match mode {
                '+' => adding = true,
                '-' => adding = false,
                'b' => match args.next() {
                    None => self.ban_list(&room),
                    Some(mask) => {
                        let target = mask_target(mask);
                        let action = if adding {
                            Action::Ban { target, duration: None, reason: "" }
                        } else {
                            Action::Unban(target)
                        };
                        self.moderate(session, room.as_str(), action).await;
                    }
                },
                'o' | 'q' => {
                    let Some(who) = args.next() else {
                        self.numeric("461", "MODE :Not enough parameters");
                        return;
                    };
                    let who = mask_target(who);
                    let action = match (mode, adding) {
                        ('o', true) => Action::Op(who),
                        ('o', false) => Action::Deop(who),
                        (_, true) => Action::Mute { who, duration: None },
                        (_, false) => Action::Unmute(who),
                    };
                    self.moderate(session, room.as_str(), action).await;
                }
                'n' | 't' if adding => {}
                other => self.numeric("472", &format!("{other} :is unknown mode char to me")),
            }
        }
    }

    /// 367 for each ban in force in `room`, then 368: ban lists are public, as on IRC.
    fn ban_list(&mut self, room: &RoomName) {
        let bans = self.ctx.hub.moderation().bans(Some(room), now_ms());
        self.output.reply(&Reply::Bans { room: Some(room.clone()), bans });
    }

    /// `CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN #chan ...` from the
    /// store, within a batch when the client takes them.
    async fn chathistory(&mut self, session: &Session, message: &Message<'_>) {
        let sub = message.param(0).unwrap_or("").to_ascii_uppercase();
        let Some(channel) = message.param(1) else {
            self.send(&format!("FAIL CHATHISTORY NEED_MORE_PARAMS {sub} :Not enough parameters"));
            return;
        };
        let key = RoomKey::of(channel);
        if !session.rooms.contains(&key) {
            let reason = "only the channels you are in";
            self.send(&format!("FAIL CHATHISTORY INVALID_TARGET {sub} {channel} :{reason}"));
            return;
        }
        let at = |i: usize| -> Option<Option<i64>> {
            match message.param(i)? {
                "*" => Some(None),
                reference => {
                    render::parse_iso_time(reference.strip_prefix("timestamp=")?).map(Some)
                }
            }
        };
        let limit_at = if sub == "BETWEEN" { 4 } else { 3 };
        let limit = message.param(limit_at).and_then(|n| n.parse::<usize>().ok());
        let (Some(limit), Some(first)) = (limit, at(2)) else {
            self.send(&format!(
                "FAIL CHATHISTORY INVALID_PARAMS {sub} :Give a timestamp= or * and a count"
            ));
            return;
        };
        let limit = limit.clamp(1, CHATHISTORY_MAX);
        let lines = match self.ctx.hub.history().recent(&key, CHATHISTORY_REACH).await {
            Ok(lines) => lines,
            Err(error) => {
                self.send(&format!("FAIL CHATHISTORY MESSAGE_ERROR {sub} {channel} :{error}"));
                return;
            }
        };
        let picked: Vec<&Stored> = match (sub.as_str(), first) {
            ("LATEST", None) => last(lines.iter().collect(), limit),
            ("LATEST", Some(t)) => last(lines.iter().filter(|l| l.at_ms > t).collect(), limit),
            ("BEFORE", Some(t)) => last(lines.iter().filter(|l| l.at_ms < t).collect(), limit),
            ("AFTER", Some(t)) => lines.iter().filter(|l| l.at_ms > t).take(limit).collect(),
            ("AROUND", Some(t)) => {
                let mut before = last(lines.iter().filter(|l| l.at_ms < t).collect(), limit / 2);
                let rest = limit - before.len();
                before.extend(lines.iter().filter(|l| l.at_ms >= t).take(rest));
                before
            }
            ("BETWEEN", Some(t)) => match at(3).flatten() {
                Some(u) => {
                    let (low, high) = (t.min(u), t.max(u));
                    let inside = lines.iter().filter(|l| l.at_ms > low && l.at_ms < high);
                    inside.take(limit).collect()
                }
                None => Vec::new(),
            },
            _ => {
                self.send(&format!("FAIL CHATHISTORY INVALID_PARAMS {sub} :Unknown subcommand"));
                return;
            }
        };
        let client = self.client();
        let batch = client.has(BATCH).then(|| {
            client.batches += 1;
            format!("history{}", client.batches)
        });
        let tagged = client.has(SERVER_TIME | MESSAGE_TAGS);
        let lines = picked.into_iter().map(|l| (l.at_ms, render::said_line(&l.said, channel)));
        let mut text = String::new();
        render::push_history(&mut text, batch.as_deref(), tagged, channel, lines);
        self.output.put(&Bytes::from(text));
    }
}

/// The last `n` of `lines`.
fn last(mut lines: Vec<&Stored>, n: usize) -> Vec<&Stored> {
    let from = lines.len().saturating_sub(n);
    lines.drain(..from);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_are_names_without_what_irc_reserves() {
        assert!(nick_name("alice").is_ok());
        assert!(nick_name("#alice").is_err());
        assert!(nick_name("a!b").is_err());
        assert!(nick_name("a,b").is_err());
        assert!(nick_name("admin").is_err());
    }

    #[test]
    fn masks_read_as_names_or_addresses() {
        assert_eq!(mask_target("bob!*@*"), "bob");
        assert_eq!(mask_target("bob"), "bob");
        assert_eq!(mask_target("*!*@10.0.0.1"), "10.0.0.1");
    }
}
