//! What a named user's line does: a message, or one of the slash commands.
//!
//! The line is sanitised, parsed with [`chat_proto::command::parse`] (the
//! vocabulary the client shares), and carried out here: changes to rooms
//! and people go through the [`Hub`](crate::hub::Hub), typed [`Reply`]s
//! go to the user's own output, which renders them in its protocol. Plain lines and `/me` go to the current room; a
//! message is followed by pacing, so a flat-out sender moves at the room's
//! pace.

use chat_proto::command::{self, Command};
use chat_proto::{Name, RoomKey, RoomName, sanitize_text};
use tokio::io::AsyncWrite;
use tracing::info;

use crate::accounts;
use crate::context::Context;
use crate::hub::{Action, Actor, Joined, Speaker, needs_of};
use crate::login::{self, Denied};
use crate::moderation::Rank;
use crate::output::Output;
use crate::reply::{Mine, Page, Reply};
use crate::room::RoomError;
use crate::session::{End, LastRoom, Session};
use crate::store::{self, Stored, Unavailable};
use crate::subscription::Subscription;

/// Carries out one line the user sent.
pub async fn execute<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    raw: &str,
) -> Result<(), End> {
    let clean = sanitize_text(raw);
    let text = clean.trim();
    if text.is_empty() {
        return Ok(());
    }
    let parsed = command::parse(text);
    if let Some(action) = Action::of(&parsed) {
        // Boxed: rare, and inline its state would enlarge every connection's task.
        return Box::pin(moderate(ctx, session, out, action)).await;
    }
    match parsed {
        Command::Message(message) => say(ctx, session, out, message, false).await,
        Command::Me(action) => say(ctx, session, out, action, true).await,
        Command::Help => {
            let rank = rank_here(ctx, session);
            Ok(out.say(&Reply::Help { needs: needs_of(rank) }).await?)
        }
        Command::Who(room) => who(ctx, session, out, room).await,
        Command::Join(room) => join(ctx, session, out, room).await,
        Command::Part(room) => part(ctx, session, out, room).await,
        Command::Rooms => rooms(ctx, session, out).await,
        Command::History(count) => history(ctx, session, out, count).await,
        Command::Search(words) => search(ctx, session, out, words).await,
        Command::Nick(new) => rename(ctx, session, out, new).await,
        Command::Register(password) => register(ctx, session, out, password).await,
        Command::Password { old, new } => change_password(ctx, session, out, old, new).await,
        Command::Unregister(password) => unregister(ctx, session, out, password).await,
        Command::Msg { to, text } => {
            let reply = match ctx.hub.whisper(&session.speaker, to, text) {
                Ok(name) => Reply::PrivateSent { to: name, text: text.to_owned() },
                Err(e) => Reply::NotDelivered { reason: e.to_string() },
            };
            Ok(out.say(&reply).await?)
        }
        Command::Color(Some(on)) => {
            out.color = on;
            Ok(out.say(&Reply::Colour { on, asked: false }).await?)
        }
        Command::Color(None) => Ok(out.say(&Reply::Colour { on: out.color, asked: true }).await?),
        Command::Quit(reason) => Err(End::Quit(reason.map(str::to_owned))),
        Command::Usage(usage) => Ok(out.say(&Reply::Usage { usage }).await?),
        Command::Unknown(command) => {
            Ok(out.say(&Reply::Unknown { command: command.to_owned() }).await?)
        }
        Command::Topic(_)
        | Command::Kick { .. }
        | Command::Ban { .. }
        | Command::Unban(_)
        | Command::Mute { .. }
        | Command::Unmute(_)
        | Command::Bans
        | Command::Op(_)
        | Command::Deop(_) => Ok(()),
        Command::Say(_) | Command::Stats => console_command(ctx, session, out, text).await,
    }
}

/// `/say` and `/stats`: the console's own commands, for a server operator
/// logged in from a client (who has every power of the console).
async fn console_command<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &Session,
    out: &mut Output<W>,
    text: &str,
) -> Result<(), End> {
    let rank = rank_here(ctx, session);
    let name = text.split_whitespace().next().unwrap_or(text);
    if rank < Rank::ServerOperator {
        let reason = format!("{name} needs a server operator; you are {}", rank.describe());
        return Ok(refuse(out, reason).await?);
    }
    info!(by = %session.speaker.name, command = text, "server operator command");
    let answer = crate::console::execute(ctx, text).await;
    Ok(out.say(&Reply::Console { text: answer }).await?)
}

/// The speaker's rank in their current room (in none: their rank anywhere).
fn rank_here(ctx: &Context, session: &Session) -> Rank {
    match session.rooms.current() {
        Some(room) => ctx.hub.rank(&session.speaker, room.key()),
        None => {
            let Speaker { name, registered, .. } = &session.speaker;
            ctx.hub.moderation().rank(name, *registered, None)
        }
    }
}

/// A moderation command, in the current room, through the hub's rules.
async fn moderate<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &Session,
    out: &mut Output<W>,
    action: Action<'_>,
) -> Result<(), End> {
    let Some(room) = session.rooms.current().cloned() else {
        return Ok(refuse(out, RoomError::InNoRoom).await?);
    };
    let actor = Actor::User { speaker: &session.speaker, room: room.name() };
    let reply = match ctx.hub.moderate(&actor, action).await {
        Ok(reply) => reply,
        Err(reason) => Reply::Refusal { reason },
    };
    Ok(out.say(&reply).await?)
}

/// The user was put out of a room (kicked or banned from it): told why,
/// and out of it; put back in `#lobby` first if it was their only room
/// and they may not be in none.
pub async fn removed<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    key: RoomKey,
    notice: Box<Reply>,
) -> Result<(), End> {
    out.reply(&notice);
    if !session.rooms.contains(&key) {
        return Ok(out.flush().await?);
    }
    let last = session.rooms.last_room();
    if session.rooms.count() == 1 && last == LastRoom::Kept {
        let lobby = RoomName::lobby();
        if let Ok(Some(Joined { room, entry })) = ctx.hub.join_room(&session.speaker, &lobby).await
        {
            out.reply(&Reply::Joined { room: room.name().clone(), online: entry.online });
            session.rooms.add(Subscription::new(room, entry.events, session.speaker.id));
        }
    }
    if let Ok(room) = ctx.hub.part_room(&session.speaker, &key, last) {
        out.reply(&Reply::Left { room });
    }
    if let Some(current) = session.rooms.remove(&key) {
        out.reply(&Reply::NowIn { room: current.name().clone() });
    }
    Ok(out.flush().await?)
}

/// A message or action to the current room; a lonely speaker is told, and
/// a flat-out one waits for the room's readers.
async fn say<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    text: &str,
    action: bool,
) -> Result<(), End> {
    let Some(room) = session.rooms.current().cloned() else {
        return Ok(refuse(out, RoomError::InNoRoom).await?);
    };
    let said = ctx.hub.say(&session.speaker, &room, text, action);
    let others =
        match said.map_err(|mute| Reply::Muted { room: mute.room, until_ms: mute.until_ms }) {
            Ok(others) => others,
            Err(refusal) => return Ok(out.say(&refusal).await?),
        };
    if others == 0 {
        out.say(&Reply::Alone).await?;
    }
    Ok(session.rooms.pace(out, |room| ctx.hub.is_backlogged(room)).await?)
}

/// `/who` (the current room) or `/who #room`.
async fn who<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &Session,
    out: &mut Output<W>,
    room: Option<&str>,
) -> Result<(), End> {
    let (key, name) = match (room, session.rooms.current()) {
        (Some(typed), _) => (RoomKey::of(typed), typed.to_owned()),
        (None, Some(current)) => (current.key().clone(), current.name().to_string()),
        (None, None) => return Ok(refuse(out, RoomError::InNoRoom).await?),
    };
    let members = match ctx.hub.who(&key) {
        Ok(members) => members,
        Err(e) => return Ok(refuse(out, e).await?),
    };
    let me = session.speaker.name.clone();
    let topic = ctx.hub.moderation().topic(&key).map(Box::new);
    Ok(out.say(&Reply::Members { room: name, members, me, topic }).await?)
}

/// Says why something was refused.
async fn refuse<W: AsyncWrite + Unpin>(
    out: &mut Output<W>,
    reason: impl ToString,
) -> Result<(), crate::output::WriteError> {
    out.say(&Reply::Refusal { reason: reason.to_string() }).await
}

/// `/join #room`: joins (opening the room) and makes it current, or makes
/// it current if already in.
async fn join<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    typed: &str,
) -> Result<(), End> {
    let name = match RoomName::parse(typed) {
        Ok(name) => name,
        Err(e) => return Ok(refuse(out, e).await?),
    };
    match ctx.hub.join_room(&session.speaker, &name).await {
        Ok(Some(Joined { room, entry })) => {
            info!(id = session.speaker.id, room = %room.name(), "joined a room");
            out.reply(&Reply::Joined { room: room.name().clone(), online: entry.online });
            out.reply(&Reply::Recent { room: Some(room.name().clone()), lines: entry.history });
            if let Some(topic) = ctx.hub.moderation().topic(room.key()) {
                out.reply(&Reply::Topic {
                    room: room.name().clone(),
                    topic: Some(Box::new(topic)),
                });
            }
            let key = room.key().clone();
            session.rooms.add(Subscription::new(room, entry.events, session.speaker.id));
            session.rooms.set_current(&key);
        }
        Ok(None) => session.rooms.set_current(&name.key()),
        Err(e) => return Ok(refuse(out, e).await?),
    }
    if let Some(current) = session.rooms.current() {
        out.reply(&Reply::NowIn { room: current.name().clone() });
    }
    Ok(out.flush().await?)
}

/// `/part [#room]`: leaves a room (default: the current one), never the last.
async fn part<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    typed: Option<&str>,
) -> Result<(), End> {
    let key = match (typed, session.rooms.current()) {
        (Some(typed), _) => RoomKey::of(typed),
        (None, Some(current)) => current.key().clone(),
        (None, None) => return Ok(refuse(out, RoomError::InNoRoom).await?),
    };
    let name = match ctx.hub.part_room(&session.speaker, &key, session.rooms.last_room()) {
        Ok(name) => name,
        Err(e) => return Ok(refuse(out, e).await?),
    };
    info!(id = session.speaker.id, room = %name, "left a room");
    out.reply(&Reply::Left { room: name });
    if let Some(current) = session.rooms.remove(&key) {
        out.reply(&Reply::NowIn { room: current.name().clone() });
    }
    Ok(out.flush().await?)
}

/// `/rooms`: the rooms that have members, yours and your current one marked.
async fn rooms<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &Session,
    out: &mut Output<W>,
) -> Result<(), End> {
    let listings = ctx.hub.room_list();
    let current = session.rooms.current().map(|room| room.key());
    let rooms = listings
        .into_iter()
        .map(|room| {
            let mine = match (current == Some(&room.key), session.rooms.contains(&room.key)) {
                (true, _) => Mine::Current,
                (false, true) => Mine::Yes,
                (false, false) => Mine::No,
            };
            (room, mine)
        })
        .collect();
    Ok(out.say(&Reply::Rooms { rooms }).await?)
}

/// `/history [N]`: the current room's last N lines from the store, with times.
async fn history<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &Session,
    out: &mut Output<W>,
    count: usize,
) -> Result<(), End> {
    if !ctx.hub.history().keeps_history() {
        return Ok(out.say(&Reply::NoHistoryKept).await?);
    }
    let Some(room) = session.rooms.current().cloned() else {
        return Ok(refuse(out, RoomError::InNoRoom).await?);
    };
    let found = ctx.hub.history().recent(room.key(), count).await;
    show_stored(out, found, Page::History { room: room.name().clone() }).await
}

/// `/search WORDS`: the current room's latest lines with every word.
async fn search<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &Session,
    out: &mut Output<W>,
    typed: &str,
) -> Result<(), End> {
    let terms = store::search_terms(typed);
    if terms.is_empty() {
        return Ok(out.say(&Reply::NothingToSearch).await?);
    }
    if !ctx.hub.history().keeps_history() {
        return Ok(out.say(&Reply::NoHistoryKept).await?);
    }
    let Some(room) = session.rooms.current().cloned() else {
        return Ok(refuse(out, RoomError::InNoRoom).await?);
    };
    let found = ctx.hub.history().search(room.key(), terms).await;
    let page = Page::Search { room: room.name().clone(), words: typed.to_owned() };
    show_stored(out, found, page).await
}

/// A page of stored lines with their times, or why the history cannot answer.
async fn show_stored<W: AsyncWrite + Unpin>(
    out: &mut Output<W>,
    found: Result<Vec<Stored>, Unavailable>,
    page: Page,
) -> Result<(), End> {
    let reply = match found {
        Ok(lines) => Reply::Found { page, lines },
        Err(error) => Reply::Unavailable { reason: error.to_string() },
    };
    Ok(out.say(&reply).await?)
}

/// `/register PASSWORD`: the current name becomes the user's.
async fn register<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    password: &str,
) -> Result<(), End> {
    let name = session.speaker.name.clone();
    let reply = if session.speaker.registered {
        Reply::RegisteredAlready { name }
    } else if let Some(problem) = accounts::password_problem(password) {
        Reply::Refusal { reason: problem }
    } else {
        match accounts::hash(password.to_owned()).await {
            Err(error) => Reply::Refusal { reason: error },
            Ok(hash) => match ctx.hub.accounts().register(&name, hash).await {
                Ok(true) => {
                    session.speaker.registered = true;
                    info!(id = session.speaker.id, peer = %session.speaker.peer, %name, "registered");
                    Reply::Registered { name }
                }
                Ok(false) => Reply::Refusal { reason: RoomError::Registered.to_string() },
                Err(error) => not_kept(&format!("{name} is not registered"), &error),
            },
        }
    };
    Ok(out.say(&reply).await?)
}

/// Checks the owner's password for a command on their registered name,
/// in turn behind the name's throttle; the refusal when it is wrong.
async fn owner_check(ctx: &Context, session: &Session, password: &str) -> Result<(), String> {
    let name = &session.speaker.name;
    if !session.speaker.registered {
        return Err(format!("{name} is not registered; /register PASSWORD first"));
    }
    let account = match ctx.hub.accounts().account(&name.key()).await {
        Ok(Some(account)) => account,
        Ok(None) => return Err(format!("{name} is not registered any more")),
        Err(error) => return Err(error.to_string()),
    };
    let who = login::Who { id: session.speaker.id, peer: session.speaker.peer };
    // Boxed: rare, and inline its state would enlarge every connection's task.
    match Box::pin(login::check(ctx, who, name, &account, password.to_owned())).await {
        Ok(()) => Ok(()),
        Err(Denied::Refused(_)) => Err("wrong password".to_owned()),
        Err(Denied::Stopping) => Err("the server is shutting down".to_owned()),
    }
}

/// `/password OLD NEW`.
async fn change_password<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    old: &str,
    new: &str,
) -> Result<(), End> {
    let checked = match accounts::password_problem(new) {
        Some(problem) => Err(problem),
        None => owner_check(ctx, session, old).await,
    };
    let reply = match checked {
        Err(reason) => Reply::Refusal { reason },
        Ok(()) => match accounts::hash(new.to_owned()).await {
            Err(error) => Reply::Refusal { reason: error },
            Ok(hash) => {
                match ctx.hub.accounts().set_hash(&session.speaker.name.key(), hash).await {
                    Ok(true) => Reply::PasswordChanged,
                    Ok(false) => {
                        Reply::Refusal { reason: "the name is not registered any more".to_owned() }
                    }
                    Err(error) => not_kept("your password is unchanged", &error),
                }
            }
        },
    };
    Ok(out.say(&reply).await?)
}

/// `/unregister PASSWORD`: the name is anyone's again.
async fn unregister<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    password: &str,
) -> Result<(), End> {
    let name = session.speaker.name.clone();
    let reply = match owner_check(ctx, session, password).await {
        Err(reason) => Reply::Refusal { reason },
        Ok(()) => match ctx.hub.accounts().unregister(&name.key()).await {
            Ok(_) => {
                session.speaker.registered = false;
                info!(id = session.speaker.id, peer = %session.speaker.peer, %name, "unregistered");
                Reply::Unregistered { name }
            }
            Err(error) => not_kept(&format!("{name} is still registered"), &error),
        },
    };
    Ok(out.say(&reply).await?)
}

/// The refusal of an account change the store could not keep: `outcome`
/// says what stands ("your password is unchanged"), then why.
fn not_kept(outcome: &str, error: &Unavailable) -> Reply {
    let reason = format!("{outcome}: the change could not be kept ({}); try again later", error.0);
    Reply::Refusal { reason }
}

async fn rename<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    new: &str,
) -> Result<(), End> {
    let name = match Name::parse(new) {
        Ok(name) => name,
        Err(e) => return Ok(refuse(out, e).await?),
    };
    let old = session.speaker.name.clone();
    let reply = match ctx.hub.rename(&mut session.speaker, name).await {
        Ok(()) => {
            info!(id = session.speaker.id, %old, new = %session.speaker.name, "renamed");
            Reply::Renamed { name: session.speaker.name.clone() }
        }
        Err(e) => Reply::Refusal { reason: e.to_string() },
    };
    Ok(out.say(&reply).await?)
}
