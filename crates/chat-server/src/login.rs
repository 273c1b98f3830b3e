//! One login, whoever asks: the name prompt of every door, and the
//! commands that need the owner's password (`/password`, `/unregister`).
//!
//! Looking up a name's account, the throttle on guessing (per name, here
//! and, with a backplane, across daemons), checking the password on the
//! hashing threads, and replacing an older connection that uses the name
//! (here or on another daemon) are written here once. A wrong password is
//! logged without the password.

use std::net::SocketAddr;

use chat_proto::Name;
use tracing::{info, warn};

use crate::accounts;
use crate::context::Context;
use crate::event::ConnId;
use crate::hub::{Arrival, NameRight};
use crate::room::RoomError;
use crate::store::Account;

/// Who is logging in: the connection, for the log.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    pub id: ConnId,
    pub peer: SocketAddr,
}

/// Why a login did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Refused, with the reason the user is told.
    Refused(String),
    /// The daemon is stopping.
    Stopping,
}

/// The account registered under `name` (or a look-alike), if any. A store
/// that cannot answer lets the name through, logged: an unreachable store
/// must not lock everyone out.
pub async fn account_of(ctx: &Context, name: &Name) -> Option<Account> {
    match ctx.hub.accounts().account(&name.key()).await {
        Ok(account) => account,
        Err(error) => {
            warn!(%error, %name, "cannot tell whether a name is registered");
            None
        }
    }
}

/// Checks `password` against `account`, in turn behind the name's throttle.
pub async fn check(
    ctx: &Context,
    who: Who,
    name: &Name,
    account: &Account,
    password: String,
) -> Result<(), Denied> {
    let key = name.key();
    let turn = ctx.hub.accounts().login_turn(&key, &ctx.logins).await;
    // How long the throttle held this attempt back, for the log.
    let held_ms = turn.saturating_duration_since(tokio::time::Instant::now()).as_millis() as u64;
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return Err(Denied::Stopping),
        _ = tokio::time::sleep_until(turn) => {}
    }
    if !accounts::verify(password, account.hash.clone()).await {
        warn!(peer = %who.peer, id = who.id, %name, held_ms, "wrong password");
        return Err(Denied::Refused(format!("wrong password for {name}")));
    }
    ctx.hub.accounts().login_succeeded(&key, &ctx.logins).await;
    Ok(())
}

/// Logs the owner of a registered name in: the password checked, an older
/// connection using the name replaced, and arrived as its owner.
pub async fn log_in(
    ctx: &Context,
    who: Who,
    name: Name,
    account: &Account,
    password: String,
) -> Result<(Name, Arrival), Denied> {
    check(ctx, who, &name, account, password).await?;
    info!(peer = %who.peer, id = who.id, %name, "logged in");
    if !ctx.hub.replace(&name).await {
        return Err(Denied::Refused(RoomError::NameTaken.to_string()));
    }
    let arrived = ctx.hub.arrive(who.id, name, who.peer, NameRight::Owner).await;
    arrived.map_err(|e| Denied::Refused(e.to_string()))
}
