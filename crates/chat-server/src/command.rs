//! What a named user's line does: a message, or one of the slash commands.
//!
//! The line is sanitised, parsed with [`chat_proto::command::parse`] (the
//! vocabulary the client shares), and carried out here: changes to rooms
//! and people go through the [`Hub`](crate::hub::Hub), replies go to the
//! user's own output. Plain lines and `/me` go to the current room; a
//! message is followed by pacing, so a flat-out sender moves at the room's
//! pace.

use std::sync::Arc;

use chat_proto::command::{self, Command};
use chat_proto::{Line, Name, RoomKey, RoomName, sanitize_text, vocabulary};
use tokio::io::AsyncWrite;
use tracing::{info, warn};

use crate::accounts;
use crate::context::Context;
use crate::hub::Joined;
use crate::output::Output;
use crate::room::{Listing, RoomError};
use crate::session::{End, Session};
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
    match command::parse(text) {
        Command::Message(message) => say(ctx, session, out, message, false).await,
        Command::Me(action) => say(ctx, session, out, action, true).await,
        Command::Help => {
            for line in command::help_lines() {
                out.push(&Line::plain(&line));
            }
            Ok(out.flush().await?)
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
                Ok(name) => Line::private_sent(&name, text),
                Err(e) => Line::notice(&format!("Not delivered: {e}.")),
            };
            Ok(out.say(&reply).await?)
        }
        Command::Color(Some(on)) => {
            out.color = on;
            let state = if on { "on" } else { "off" };
            Ok(out.say(&Line::notice(&format!("Colour is {state}."))).await?)
        }
        Command::Color(None) => {
            let state = if out.color { "on" } else { "off" };
            Ok(out.say(&Line::notice(&format!("Colour is {state}; /color on|off"))).await?)
        }
        Command::Quit(reason) => Err(End::Quit(reason.map(str::to_owned))),
        Command::Usage(usage) => Ok(out.say(&Line::notice(&format!("Usage: {usage}"))).await?),
        Command::Unknown(command) => {
            let hint = format!("Unknown command /{command}; type /help for the list.");
            Ok(out.say(&Line::notice(&hint)).await?)
        }
    }
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
    let room = Arc::clone(session.rooms.current());
    let others = ctx.hub.say(&session.speaker, &room, text, action);
    if others == 0 {
        out.say(&Line::notice(vocabulary::ALONE)).await?;
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
    let current = session.rooms.current();
    let (key, name) = match room {
        Some(typed) => (RoomKey::of(typed), typed.to_owned()),
        None => (current.key().clone(), current.name().to_string()),
    };
    let members = match ctx.hub.who(&key) {
        Ok(members) => members,
        Err(e) => return Ok(out.say(&Line::notice(&vocabulary::refusal(&e.to_string()))).await?),
    };
    out.push(&Line::notice(&format!("{} online in {name}:", members.len())));
    push_listings(out, &members, &session.speaker.name);
    Ok(out.flush().await?)
}

fn push_listings<W: AsyncWrite + Unpin>(out: &mut Output<W>, members: &[Listing], me: &Name) {
    for member in members {
        let you = if member.name == *me { " (you)" } else { "" };
        let entry =
            format!("  {} {} ({}){you}", member.theme.emoji, member.name, member.theme.colour);
        out.push(&Line::plain(&entry));
    }
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
        Err(e) => return Ok(out.say(&Line::notice(&vocabulary::refusal(&e.to_string()))).await?),
    };
    match ctx.hub.join_room(&session.speaker, &name).await {
        Ok(Some(Joined { room, entry })) => {
            info!(id = session.speaker.id, room = %room.name(), "joined a room");
            out.push(&Line::notice(&vocabulary::joined(room.name(), &entry.online.describe())));
            if !entry.history.is_empty() {
                out.push(&Line::notice(&format!("Recent messages in {}:", room.name())));
                for event in &entry.history {
                    out.push(&event.line);
                }
            }
            let key = room.key().clone();
            session.rooms.add(Subscription::new(room, entry.events, session.speaker.id));
            session.rooms.set_current(&key);
        }
        Ok(None) => session.rooms.set_current(&name.key()),
        Err(e) => return Ok(out.say(&Line::notice(&vocabulary::refusal(&e.to_string()))).await?),
    }
    let now_in = vocabulary::now_in(session.rooms.current().name());
    Ok(out.say(&Line::notice(&now_in)).await?)
}

/// `/part [#room]`: leaves a room (default: the current one), never the last.
async fn part<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    typed: Option<&str>,
) -> Result<(), End> {
    let key = match typed {
        Some(typed) => RoomKey::of(typed),
        None => session.rooms.current().key().clone(),
    };
    let name = match ctx.hub.part_room(&session.speaker, &key) {
        Ok(name) => name,
        Err(e) => return Ok(out.say(&Line::notice(&vocabulary::refusal(&e.to_string()))).await?),
    };
    info!(id = session.speaker.id, room = %name, "left a room");
    out.push(&Line::notice(&vocabulary::left(&name)));
    if let Some(current) = session.rooms.remove(&key) {
        out.push(&Line::notice(&vocabulary::now_in(current.name())));
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
    let current = session.rooms.current().key();
    out.push(&Line::notice(&format!("{} rooms:", listings.len())));
    for room in listings {
        let mark = match (&room.key == current, session.rooms.contains(&room.key)) {
            (true, _) => " (yours, current)",
            (false, true) => " (yours)",
            (false, false) => "",
        };
        out.push(&Line::plain(&format!("  {} ({}){mark}", room.name, room.users)));
    }
    Ok(out.flush().await?)
}

/// What `/history` and `/search` answer on a daemon run with `--db none`.
const NO_HISTORY_KEPT: &str =
    "This server keeps no history: /history and /search have nothing to show.";

/// `/history [N]`: the current room's last N lines from the store, with times.
async fn history<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &Session,
    out: &mut Output<W>,
    count: usize,
) -> Result<(), End> {
    if !ctx.hub.store().keeps_history() {
        return Ok(out.say(&Line::notice(NO_HISTORY_KEPT)).await?);
    }
    let room = Arc::clone(session.rooms.current());
    let found = ctx.hub.store().recent(room.key(), count).await;
    let heading = |n: usize| match n {
        0 => format!("No messages in {} yet.", room.name()),
        n => format!("The last {} in {} (times in UTC):", messages(n), room.name()),
    };
    show_stored(out, found, heading).await
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
        let hint = "Search for words made of letters or digits: /search WORDS";
        return Ok(out.say(&Line::notice(hint)).await?);
    }
    if !ctx.hub.store().keeps_history() {
        return Ok(out.say(&Line::notice(NO_HISTORY_KEPT)).await?);
    }
    let room = Arc::clone(session.rooms.current());
    let found = ctx.hub.store().search(room.key(), terms).await;
    let heading = |n: usize| match n {
        0 => format!("No messages in {} contain {typed}.", room.name()),
        n => {
            format!("{} in {} with {typed} (latest last, times in UTC):", messages(n), room.name())
        }
    };
    show_stored(out, found, heading).await
}

/// "1 message", "2 messages".
fn messages(n: usize) -> String {
    if n == 1 { "1 message".to_owned() } else { format!("{n} messages") }
}

/// A heading, then each line with its time; or why the history cannot answer.
async fn show_stored<W: AsyncWrite + Unpin>(
    out: &mut Output<W>,
    found: Result<Vec<Stored>, Unavailable>,
    heading: impl FnOnce(usize) -> String,
) -> Result<(), End> {
    let lines = match found {
        Ok(lines) => lines,
        Err(error) => return Ok(out.say(&Line::notice(&format!("Sorry, {error}."))).await?),
    };
    out.push(&Line::notice(&heading(lines.len())));
    for stored in &lines {
        out.push(&stored.timed_line());
    }
    Ok(out.flush().await?)
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
        format!("{name} is registered already; /password OLD NEW changes its password.")
    } else if let Some(problem) = accounts::password_problem(password) {
        vocabulary::refusal(&problem)
    } else {
        match accounts::hash(password.to_owned()).await {
            Err(error) => vocabulary::refusal(&error),
            Ok(hash) => match ctx.hub.store().register(&name, hash).await {
                Ok(true) => {
                    session.speaker.registered = true;
                    info!(id = session.speaker.id, peer = %session.speaker.peer, %name, "registered");
                    format!(
                        "{name} is yours now: next time it asks for your password. \
                         Without TLS, passwords cross the network in the clear."
                    )
                }
                Ok(false) => vocabulary::refusal(&RoomError::Registered.to_string()),
                Err(error) => vocabulary::refusal(&error.to_string()),
            },
        }
    };
    Ok(out.say(&Line::notice(&reply)).await?)
}

/// Checks the owner's password for a command on their registered name,
/// in turn behind the name's throttle; the refusal when it is wrong.
async fn owner_check(ctx: &Context, session: &Session, password: &str) -> Result<(), String> {
    let name = &session.speaker.name;
    if !session.speaker.registered {
        return Err(format!("{name} is not registered; /register PASSWORD first"));
    }
    let account = match ctx.hub.store().account(&name.key()).await {
        Ok(Some(account)) => account,
        Ok(None) => return Err(format!("{name} is not registered any more")),
        Err(error) => return Err(error.to_string()),
    };
    let key = name.key();
    tokio::time::sleep_until(ctx.hub.store().login_turn(&key, &ctx.logins).await).await;
    if accounts::verify(password.to_owned(), account.hash).await {
        ctx.hub.store().login_succeeded(&key, &ctx.logins).await;
        Ok(())
    } else {
        warn!(id = session.speaker.id, peer = %session.speaker.peer, %name, "wrong password");
        Err("wrong password".to_owned())
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
        Err(reason) => vocabulary::refusal(&reason),
        Ok(()) => match accounts::hash(new.to_owned()).await {
            Err(error) => vocabulary::refusal(&error),
            Ok(hash) => match ctx.hub.store().set_hash(&session.speaker.name.key(), hash).await {
                Ok(true) => "Your password is changed.".to_owned(),
                Ok(false) => vocabulary::refusal("the name is not registered any more"),
                Err(error) => vocabulary::refusal(&error.to_string()),
            },
        },
    };
    Ok(out.say(&Line::notice(&reply)).await?)
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
        Err(reason) => vocabulary::refusal(&reason),
        Ok(()) => match ctx.hub.store().unregister(&name.key()).await {
            Ok(_) => {
                session.speaker.registered = false;
                info!(id = session.speaker.id, peer = %session.speaker.peer, %name, "unregistered");
                format!("{name} is no longer registered.")
            }
            Err(error) => vocabulary::refusal(&error.to_string()),
        },
    };
    Ok(out.say(&Line::notice(&reply)).await?)
}

async fn rename<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    new: &str,
) -> Result<(), End> {
    let name = match Name::parse(new) {
        Ok(name) => name,
        Err(e) => return Ok(out.say(&Line::notice(&vocabulary::refusal(&e.to_string()))).await?),
    };
    let old = session.speaker.name.clone();
    let reply = match ctx.hub.rename(&mut session.speaker, name).await {
        Ok(()) => {
            info!(id = session.speaker.id, %old, new = %session.speaker.name, "renamed");
            vocabulary::renamed(&session.speaker.name)
        }
        Err(e) => vocabulary::refusal(&RoomError::to_string(&e)),
    };
    Ok(out.say(&Line::notice(&reply)).await?)
}
