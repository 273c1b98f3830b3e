//! A named user's state on one connection, and how a session ends.
//!
//! [`Session`] is what a connection holds once its user is in the room:
//! who they are ([`Speaker`]), their place in the room's queue, their
//! direct-message inbox and their input rate. [`End`] is every way a
//! session can end; it decides the goodbye line, the leave notice the
//! others read, and the log.

use std::sync::Arc;

use chat_proto::{Line, vocabulary};

use crate::hub::Speaker;
use crate::output::WriteError;
use crate::room::Inbox;
use crate::subscription::Subscription;
use crate::throttle::Throttle;

/// A named user's state on this connection.
pub struct Session {
    pub speaker: Speaker,
    pub subscription: Subscription,
    pub inbox: Arc<Inbox>,
    pub throttle: Throttle,
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    Quit(Option<String>),
    Closed,
    Lost(String),
    Stalled,
    Kicked(String),
    Shutdown,
    NameTimeout,
    Http,
}

impl End {
    /// The last line the client gets, if there is anyone to say it to.
    pub fn goodbye(&self) -> Option<Line> {
        Some(match self {
            End::Quit(_) => Line::notice(vocabulary::GOODBYE),
            End::Kicked(reason) => Line::notice(&vocabulary::kicked(reason)),
            End::Shutdown => Line::notice(vocabulary::SHUTDOWN_GOODBYE),
            End::NameTimeout => Line::notice(vocabulary::NAME_TIMEOUT_GOODBYE),
            End::Http => Line::plain(vocabulary::NOT_HTTP),
            End::Closed | End::Lost(_) | End::Stalled => return None,
        })
    }

    /// Whether the peer can still read a goodbye.
    pub fn peer_is_listening(&self) -> bool {
        !matches!(self, End::Lost(_) | End::Stalled)
    }

    /// What the others read after the name: "alice left (bye)".
    pub fn leave_notice(&self) -> String {
        match self {
            End::Quit(Some(reason)) => format!("left ({reason})"),
            End::Quit(None) | End::Closed => "left".to_owned(),
            End::Lost(_) => "lost connection".to_owned(),
            End::Stalled => "was disconnected (not reading)".to_owned(),
            End::Kicked(reason) => format!("was kicked ({reason})"),
            End::Shutdown | End::NameTimeout | End::Http => "left".to_owned(),
        }
    }

    /// For the log.
    pub fn describe(&self) -> String {
        match self {
            End::Quit(reason) => format!("quit ({})", reason.as_deref().unwrap_or("no reason")),
            End::Closed => "closed by peer".to_owned(),
            End::Lost(error) => format!("lost: {error}"),
            End::Stalled => "not reading, write timed out".to_owned(),
            End::Kicked(reason) => format!("kicked: {reason}"),
            End::Shutdown => "server shutdown".to_owned(),
            End::NameTimeout => "no name in time".to_owned(),
            End::Http => "HTTP request".to_owned(),
        }
    }
}

impl From<WriteError> for End {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Stalled => End::Stalled,
            WriteError::Io(e) => End::Lost(e.to_string()),
        }
    }
}
