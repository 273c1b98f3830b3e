//! The operator console: commands typed on the daemon's standard input.
//!
//! Standard input is read on a plain thread (blocking reads do not belong on
//! the runtime) and each line is handed to a task that acts on the room and
//! answers on standard output. End of input closes the console only: under
//! systemd stdin is /dev/null, and the daemon must keep running.

use std::io::BufRead;
use std::sync::Arc;

use chat_proto::{LOBBY, RoomKey, sanitize_text};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::context::Context;
use crate::hub::{Action, Actor};
use crate::reply::Reply;
use crate::room::Place;
use crate::stats::Stats;

const CONSOLE_HELP: &str = "console commands: /who [#room], /rooms, /kick NAME [reason], \
     /ban NAME|ADDRESS|CIDR [30m|2h|7d] [reason], /unban NAME|ADDRESS|CIDR, /mute NAME [30m|2h|7d], \
     /unmute NAME, /bans, /topic [TEXT] (of #lobby), /say [#room] TEXT, /stats, /quit (or exit)";

/// Starts reading operator commands from stdin.
pub fn spawn(ctx: Arc<Context>) {
    // A daemon started in the background of an interactive shell would be
    // stopped by SIGTTIN on its first read of the terminal; ignoring the
    // signal turns that read into an error, which just closes the console.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGTTIN, libc::SIG_IGN);
    }
    let (lines_tx, mut lines_rx) = mpsc::channel::<String>(16);
    let spawned = std::thread::Builder::new().name("console".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
        debug!("console input ended; the daemon keeps running");
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "console unavailable");
        return;
    }
    tokio::spawn(async move {
        while let Some(line) = lines_rx.recv().await {
            let reply = execute(&ctx, &line).await;
            if !reply.is_empty() {
                println!("{reply}");
            }
        }
    });
}

/// Carries out one console command and returns what to print (the
/// console and the control socket alike). Moderation commands act as a
/// server operator in `#lobby`, that is, server-wide.
pub async fn execute(ctx: &Context, line: &str) -> String {
    let line = sanitize_text(line);
    let (command, rest) = match line.trim().split_once(' ') {
        Some((command, rest)) => (command, rest.trim()),
        None => (line.trim(), ""),
    };
    let slashed =
        if command.starts_with('/') { line.trim().to_owned() } else { format!("/{}", line.trim()) };
    let parsed = chat_proto::command::parse(&slashed);
    if let Some(action) = Action::of(&parsed) {
        let reply = match Box::pin(ctx.hub.moderate(&Actor::Server, action)).await {
            Ok(reply) => reply,
            Err(reason) => Reply::Refusal { reason },
        };
        return plain(&reply);
    }
    if let chat_proto::command::Command::Usage(usage) = parsed
        && matches!(
            command.trim_start_matches('/'),
            "ban" | "unban" | "mute" | "unmute" | "op" | "deop"
        )
    {
        return format!("usage: {usage}");
    }
    match command {
        "" => String::new(),
        "/who" | "who" => who(ctx, rest),
        "/rooms" | "rooms" => rooms(ctx),
        "/say" | "say" if !rest.is_empty() => say(ctx, rest),
        "/stats" | "stats" => stats(ctx),
        "/quit" | "quit" | "exit" | "/exit" => {
            info!("shutdown requested from the console");
            ctx.shutdown.cancel();
            "shutting down".to_owned()
        }
        _ => CONSOLE_HELP.to_owned(),
    }
}

/// `/say TEXT` speaks in every room, `/say #room TEXT` in one.
fn say(ctx: &Context, rest: &str) -> String {
    let (room, text) = match rest.split_once(' ') {
        Some((room, text)) if room.starts_with('#') && !text.trim().is_empty() => {
            (Some(RoomKey::of(room)), text.trim())
        }
        _ => (None, rest),
    };
    match ctx.hub.announce(text, room.as_ref()) {
        Ok(receivers) => format!("said to {receivers} users"),
        Err(e) => format!("cannot say that: {e}"),
    }
}

fn rooms(ctx: &Context) -> String {
    let listings = ctx.hub.room_list();
    let mut out = format!("{} rooms", listings.len());
    for room in listings {
        let topic = room.topic.map(|topic| format!(": {topic}")).unwrap_or_default();
        out.push_str(&format!("\n  {} ({} users){topic}", room.name, room.users));
    }
    out
}

/// `/who` lists `#lobby` (where everyone starts); `/who #room` another room.
fn who(ctx: &Context, room: &str) -> String {
    let room = if room.is_empty() { LOBBY } else { room };
    let members = match ctx.hub.who(&RoomKey::of(room)) {
        Ok(members) => members,
        Err(e) => return format!("cannot list {room}: {e}"),
    };
    let mut out = format!("{} online in {room}", members.len());
    for member in members {
        let place = match member.place {
            Place::Here(peer) => format!("from {peer}"),
            Place::Node(node) => format!("on node {node:x}"),
        };
        out.push_str(&format!(
            "\n  {} {} ({}) {place}",
            member.theme.emoji, member.name, member.theme.colour
        ));
    }
    out
}

/// A reply as the text protocol words it, without colour, for the console.
fn plain(reply: &Reply) -> String {
    let bytes = crate::protocol::standalone(&crate::protocol::text::TEXT, reply);
    let text = String::from_utf8_lossy(&bytes);
    // Line by line: stripping escapes also strips the line endings between lines.
    let lines: Vec<String> = text.lines().map(chat_proto::terminal::strip_escapes).collect();
    lines.join("\n").trim_end().to_owned()
}

fn stats(ctx: &Context) -> String {
    let s = ctx.hub.stats();
    let get = Stats::get;
    format!(
        "uptime {}s, connections {} open / {} total, users {}, rooms {}, messages {}, \
         missed lines {}, overlong lines {}, slow disconnects {}, refused {}, \
         moderation actions {}, moderation refused {}, banned connections {}",
        ctx.started.elapsed().as_secs(),
        ctx.connections(),
        get(&s.connections),
        ctx.hub.people().local_count(),
        ctx.hub.rooms().count(),
        get(&s.messages),
        get(&s.missed),
        get(&s.too_long),
        get(&s.slow_disconnects),
        get(&s.refused),
        get(&s.moderation),
        get(&s.moderation_refused),
        get(&s.banned),
    )
}
