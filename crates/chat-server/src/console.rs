//! The operator console: commands typed on the daemon's standard input.
//!
//! Standard input is read on a plain thread (blocking reads do not belong on
//! the runtime) and each line is handed to a task that acts on the room and
//! answers on standard output. End of input closes the console only: under
//! systemd stdin is /dev/null, and the daemon must keep running.

use std::io::BufRead;
use std::sync::Arc;

use chat_proto::sanitize_text;
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::context::Context;
use crate::room::Place;
use crate::stats::Stats;

const CONSOLE_HELP: &str =
    "console commands: /who, /kick NAME [reason], /say TEXT, /stats, /quit (or exit)";

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
            let reply = execute(&ctx, &line);
            if !reply.is_empty() {
                println!("{reply}");
            }
        }
    });
}

/// Carries out one console command and returns what to print.
pub fn execute(ctx: &Context, line: &str) -> String {
    let line = sanitize_text(line);
    let (command, rest) = match line.trim().split_once(' ') {
        Some((command, rest)) => (command, rest.trim()),
        None => (line.trim(), ""),
    };
    match command {
        "" => String::new(),
        "/who" | "who" => who(ctx),
        "/kick" | "kick" => kick(ctx, rest),
        "/say" | "say" if !rest.is_empty() => {
            let receivers = ctx.hub.announce(rest);
            format!("said to {receivers} users")
        }
        "/stats" | "stats" => stats(ctx),
        "/quit" | "quit" | "exit" | "/exit" => {
            info!("shutdown requested from the console");
            ctx.shutdown.cancel();
            "shutting down".to_owned()
        }
        _ => CONSOLE_HELP.to_owned(),
    }
}

fn who(ctx: &Context) -> String {
    let members = ctx.hub.room().who();
    let mut out = format!("{} online", members.len());
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

fn kick(ctx: &Context, rest: &str) -> String {
    let (name, reason) = match rest.split_once(' ') {
        Some((name, reason)) => (name, reason.trim()),
        None => (rest, ""),
    };
    if name.is_empty() {
        return "usage: /kick NAME [reason]".to_owned();
    }
    let reason = if reason.is_empty() { "no reason given" } else { reason };
    match ctx.hub.kick(name, reason) {
        Ok(member) => format!("kicked {}", member.name),
        Err(e) => format!("cannot kick {name}: {e}"),
    }
}

fn stats(ctx: &Context) -> String {
    let s = ctx.hub.stats();
    let get = Stats::get;
    format!(
        "uptime {}s, connections {} open / {} total, users {}, messages {}, missed lines {}, \
         overlong lines {}, slow disconnects {}, refused {}",
        ctx.started.elapsed().as_secs(),
        ctx.connections(),
        get(&s.connections),
        ctx.hub.room().member_count(),
        get(&s.messages),
        get(&s.missed),
        get(&s.too_long),
        get(&s.slow_disconnects),
        get(&s.refused),
    )
}
