//! The chat daemon's wire format, shared by the server and the client.
//!
//! [`codec`] frames client input into lines, [`sanitize`] decides what user
//! text may contain, [`name`] what a valid and unique name is, [`room`] the
//! same for room names, [`theme`] the
//! emoji and colours that mark speakers, [`render`] the lines the server
//! sends, and [`terminal`] what the client lets through to a terminal. Both
//! ends speak one vocabulary: [`command`] names what a user may type, and
//! [`vocabulary`] the server's words and how a received line reads back.

pub mod codec;
pub mod command;
pub mod name;
pub mod render;
pub mod room;
pub mod sanitize;
pub mod terminal;
pub mod theme;
pub mod vocabulary;

pub use codec::{ChatCodec, DEFAULT_MAX_LINE, Frame};
pub use command::Command;
pub use name::{Name, NameError, NameKey};
pub use render::Line;
pub use room::{LOBBY, RoomKey, RoomName, RoomNameError};
pub use sanitize::sanitize_text;
pub use theme::{THEMES, Theme};
pub use vocabulary::{Heard, classify};
