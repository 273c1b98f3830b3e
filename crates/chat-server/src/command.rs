//! What a named user's line does: a message, or one of the slash commands.
//!
//! The line is sanitised, parsed with [`chat_proto::command::parse`] (the
//! vocabulary the client shares), and carried out here: changes to the room
//! go through the [`Hub`](crate::hub::Hub), replies go to the user's own
//! output. A message is followed by pacing, so a flat-out sender moves at
//! the room's pace.

use chat_proto::command::{self, Command};
use chat_proto::{Line, Name, sanitize_text, vocabulary};
use tokio::io::AsyncWrite;
use tracing::info;

use crate::context::Context;
use crate::output::Output;
use crate::session::{End, Session};

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
        Command::Who => who(ctx, session, out).await,
        Command::Nick(new) => rename(ctx, session, out, new).await,
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

/// A message or action to the room; a lonely speaker is told, and a
/// flat-out one waits for the room's readers.
async fn say<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &mut Session,
    out: &mut Output<W>,
    text: &str,
    action: bool,
) -> Result<(), End> {
    let others = ctx.hub.say(&session.speaker, text, action);
    if others == 0 {
        out.say(&Line::notice(vocabulary::ALONE)).await?;
    }
    Ok(session.subscription.pace(out, || ctx.hub.is_backlogged()).await?)
}

async fn who<W: AsyncWrite + Unpin>(
    ctx: &Context,
    session: &Session,
    out: &mut Output<W>,
) -> Result<(), End> {
    let members = ctx.hub.room().who();
    out.push(&Line::notice(&format!("{} online:", members.len())));
    for member in members {
        let you = if member.name == session.speaker.name { " (you)" } else { "" };
        let entry =
            format!("  {} {} ({}){you}", member.theme.emoji, member.name, member.theme.colour);
        out.push(&Line::plain(&entry));
    }
    Ok(out.flush().await?)
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
        Err(e) => vocabulary::refusal(&e.to_string()),
    };
    Ok(out.say(&Line::notice(&reply)).await?)
}
