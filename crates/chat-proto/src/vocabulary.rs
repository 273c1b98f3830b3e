//! The server's words, and how a received line is read back.
//!
//! The wire is text for people, so the server and the bundled client agree
//! the way IRC servers and clients agree through numerics: the server writes
//! every line a program needs to recognise through the wording here (the
//! name prompt, a refusal, the welcome, a rename, a goodbye, the count of
//! missed lines), and [`classify`] reads a received line back into a
//! [`Heard`]. Nothing else on either side matches server wording by hand.
//! A server worded differently is still shown to the user; only what the
//! client infers from it (its name, a clean goodbye) is lost.

use crate::name::Name;
use crate::room::RoomName;
use crate::theme::Theme;

/// What every notice starts with (see [`crate::Line::notice`]).
pub const NOTICE_MARK: &str = "*** ";
/// What the sender of a private message sees before the recipient's name.
pub const PRIVATE_SENT_MARK: &str = "-> ";
/// What marks a private message after the sender's name.
const PRIVATE_MARK: &str = " (private)";

pub const GREETING: &str = "Welcome to the chat server!";
pub const NAME_PROMPT: &str = "What is your name? (letters and digits, no spaces)";
pub const ANOTHER_NAME_PROMPT: &str = "Choose another name:";
pub const ALONE: &str = "You are alone here: nobody else received that.";
pub const GOODBYE: &str = "Goodbye!";
pub const SHUTDOWN_GOODBYE: &str = "The server is shutting down. Goodbye!";
pub const NAME_TIMEOUT_GOODBYE: &str = "Timed out waiting for a name. Goodbye!";
const KICKED_PREFIX: &str = "You were removed by the operator: ";
pub const REPLACED_GOODBYE: &str =
    "Your name logged in from another connection; this one is closed. Goodbye!";
const PASSWORD_PROMPT_SUFFIX: &str = " is registered: type its password.";
pub const DEGRADED: &str =
    "The room is degraded: messages reach only users on this server until the backplane is back.";
pub const WHOLE_AGAIN: &str = "The room is whole again: messages reach every server.";
/// The one plain line a stray HTTP client gets.
pub const NOT_HTTP: &str =
    "This is a chat server, not a web server: connect with chat-client, nc or telnet.";

const REFUSAL_PREFIX: &str = "Sorry, ";
const WELCOME_PREFIX: &str = "Welcome, ";
const RENAMED_PREFIX: &str = "You are now known as ";
const MISSED_PREFIX: &str = "You missed ";
const MISSED_SUFFIX: &str = " messages: your connection is not keeping up.";
const NOW_IN_PREFIX: &str = "You are now in ";
const JOINED_PREFIX: &str = "You joined ";
const LEFT_PREFIX: &str = "You left ";

/// What starts a line from a room other than the reader's current one:
/// `[#rust] 🦊 alice: hello`.
pub fn room_tag(room: &RoomName) -> String {
    format!("[{room}] ")
}

/// The line that tells a user which room their plain lines now go to.
pub fn now_in(room: &RoomName) -> String {
    format!("{NOW_IN_PREFIX}{room}.")
}

/// What `/join` answers for a room we were not in, with who else is there.
pub fn joined(room: &RoomName, online: &str) -> String {
    format!("{JOINED_PREFIX}{room}. {online}")
}

/// What `/part` answers.
pub fn left(room: &RoomName) -> String {
    format!("{LEFT_PREFIX}{room}.")
}

/// The room a line is tagged with, and the line without its tag.
pub fn split_room_tag(plain: &str) -> (Option<&str>, &str) {
    let tagged = plain.strip_prefix("[#").and_then(|rest| rest.split_once("] "));
    match tagged {
        Some((room, line)) if !room.contains(char::is_whitespace) => {
            (Some(&plain[1..room.len() + 2]), line)
        }
        _ => (None, plain),
    }
}

/// Why a name (or anything else) was refused: `Sorry, that name is taken.`
pub fn refusal(reason: &str) -> String {
    format!("{REFUSAL_PREFIX}{reason}.")
}

/// The first line a named user gets.
pub fn welcome(name: &Name, theme: &Theme) -> String {
    format!(
        "{WELCOME_PREFIX}{name}! You are {} {}. Type /help for commands.",
        theme.emoji, theme.colour
    )
}

/// The confirmation of `/nick`.
pub fn renamed(name: &Name) -> String {
    format!("{RENAMED_PREFIX}{name}.")
}

/// What a reader that fell behind is told.
pub fn missed(count: u64) -> String {
    format!("{MISSED_PREFIX}{count}{MISSED_SUFFIX}")
}

/// What the name prompt asks next for a registered name (the client
/// answers it without echo).
pub fn password_prompt(name: &Name) -> String {
    format!("{name}{PASSWORD_PROMPT_SUFFIX}")
}

/// The goodbye of a user the operator removed.
pub fn kicked(reason: &str) -> String {
    format!("{KICKED_PREFIX}{reason}")
}

/// What a received line is, as far as a program needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// The server asks for a name (first, or again after a refusal).
    NamePrompt,
    /// The name we chose is registered: the server asks its password.
    PasswordPrompt { name: &'a str },
    /// Something we asked for was refused, with the reason.
    Refusal { reason: &'a str },
    /// We are in, under this name.
    Welcome { name: &'a str },
    /// `/nick` took effect: this is our name now.
    Renamed { name: &'a str },
    /// We fell behind and skipped this many lines.
    Missed { count: u64 },
    /// Our plain lines now go to this room.
    CurrentRoom { room: &'a str },
    /// We are in this room now (and were not before).
    Joined { room: &'a str },
    /// We are no longer in this room.
    Left { room: &'a str },
    /// The server is about to close the connection.
    Goodbye(Goodbye),
    /// Any other notice from the server, without its mark.
    Notice(&'a str),
    /// A line someone said (`🦊 alice: hi`); `private` when only we got it.
    Said { speaker: &'a str, text: &'a str, private: bool },
    /// An action (`🦊 * alice waves`).
    Action { speaker: &'a str, text: &'a str },
    /// Our own private message, as the server confirms it (`-> bob: psst`).
    PrivateSent { to: &'a str, text: &'a str },
    /// Anything else (`/help` and `/who` lines, another server's words).
    Other(&'a str),
}

/// Why the server is closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goodbye {
    /// The answer to our `/quit` (or one of its aliases).
    Quit,
    Shutdown,
    Kicked,
    NameTimeout,
    /// Our registered name logged in from another connection.
    Replaced,
}

/// Reads a received line, escapes already stripped. A room tag
/// ([`room_tag`]) is looked through: `[#rust] 🦊 alice: hi` is alice
/// speaking (see [`split_room_tag`] for the room).
pub fn classify(plain: &str) -> Heard<'_> {
    let (_, plain) = split_room_tag(plain);
    if let Some(notice) = plain.strip_prefix(NOTICE_MARK) {
        return classify_notice(notice);
    }
    if let Some((to, text)) =
        plain.strip_prefix(PRIVATE_SENT_MARK).and_then(|sent| sent.split_once(": "))
    {
        return Heard::PrivateSent { to, text };
    }
    classify_speech(plain).unwrap_or(Heard::Other(plain))
}

fn classify_notice(notice: &str) -> Heard<'_> {
    match notice {
        NAME_PROMPT | ANOTHER_NAME_PROMPT => return Heard::NamePrompt,
        GOODBYE => return Heard::Goodbye(Goodbye::Quit),
        SHUTDOWN_GOODBYE => return Heard::Goodbye(Goodbye::Shutdown),
        NAME_TIMEOUT_GOODBYE => return Heard::Goodbye(Goodbye::NameTimeout),
        REPLACED_GOODBYE => return Heard::Goodbye(Goodbye::Replaced),
        _ => {}
    }
    if notice.starts_with(KICKED_PREFIX) {
        return Heard::Goodbye(Goodbye::Kicked);
    }
    if let Some(name) = notice.strip_suffix(PASSWORD_PROMPT_SUFFIX) {
        return Heard::PasswordPrompt { name };
    }
    if let Some(reason) = notice.strip_prefix(REFUSAL_PREFIX) {
        return Heard::Refusal { reason: reason.strip_suffix('.').unwrap_or(reason) };
    }
    if let Some(name) = notice.strip_prefix(RENAMED_PREFIX).and_then(|n| n.strip_suffix('.')) {
        return Heard::Renamed { name };
    }
    if let Some(room) = notice.strip_prefix(NOW_IN_PREFIX).and_then(|n| n.strip_suffix('.')) {
        return Heard::CurrentRoom { room };
    }
    if let Some((room, _)) = notice.strip_prefix(JOINED_PREFIX).and_then(|n| n.split_once(". ")) {
        return Heard::Joined { room };
    }
    if let Some(room) = notice.strip_prefix(LEFT_PREFIX).and_then(|n| n.strip_suffix('.')) {
        return Heard::Left { room };
    }
    if let Some((name, _)) = notice.strip_prefix(WELCOME_PREFIX).and_then(|n| n.split_once("! ")) {
        return Heard::Welcome { name };
    }
    let missed = notice.strip_prefix(MISSED_PREFIX).and_then(|n| n.strip_suffix(MISSED_SUFFIX));
    if let Some(count) = missed.and_then(|n| n.parse().ok()) {
        return Heard::Missed { count };
    }
    Heard::Notice(notice)
}

/// `🦊 alice: hi`, `🦊 alice (private): psst`, `🦊 * alice waves`.
fn classify_speech(line: &str) -> Option<Heard<'_>> {
    let (emoji, rest) = line.split_once(' ')?;
    if emoji.is_empty() || emoji.chars().any(char::is_alphanumeric) {
        return None;
    }
    if let Some(action) = rest.strip_prefix("* ") {
        let (speaker, text) = action.split_once(' ').unwrap_or((action, ""));
        return Some(Heard::Action { speaker, text });
    }
    let (head, text) = rest.split_once(": ")?;
    let (speaker, private) = match head.strip_suffix(PRIVATE_MARK) {
        Some(speaker) => (speaker, true),
        None => (head, false),
    };
    let one_word = !speaker.is_empty() && !speaker.contains(char::is_whitespace);
    one_word.then_some(Heard::Said { speaker, text, private })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Line;
    use crate::theme::THEMES;

    fn plain(line: &Line) -> &str {
        let bytes = line.bytes(false);
        std::str::from_utf8(bytes).expect("utf-8").trim_end_matches("\r\n")
    }

    fn name(s: &str) -> Name {
        Name::parse(s).expect("valid")
    }

    #[test]
    fn every_line_the_server_writes_reads_back_as_what_it_is() {
        let alice = name("alice");
        let cases = [
            (Line::notice(NAME_PROMPT), Heard::NamePrompt),
            (Line::notice(ANOTHER_NAME_PROMPT), Heard::NamePrompt),
            (
                Line::notice(&refusal("that name is taken")),
                Heard::Refusal { reason: "that name is taken" },
            ),
            (Line::notice(&welcome(&alice, &THEMES[0])), Heard::Welcome { name: "alice" }),
            (Line::notice(&renamed(&alice)), Heard::Renamed { name: "alice" }),
            (Line::notice(&missed(42)), Heard::Missed { count: 42 }),
            (Line::notice(GOODBYE), Heard::Goodbye(Goodbye::Quit)),
            (Line::notice(SHUTDOWN_GOODBYE), Heard::Goodbye(Goodbye::Shutdown)),
            (Line::notice(NAME_TIMEOUT_GOODBYE), Heard::Goodbye(Goodbye::NameTimeout)),
            (Line::notice(&kicked("spam")), Heard::Goodbye(Goodbye::Kicked)),
            (Line::notice(REPLACED_GOODBYE), Heard::Goodbye(Goodbye::Replaced)),
            (Line::notice(&password_prompt(&alice)), Heard::PasswordPrompt { name: "alice" }),
            (Line::notice("bob joined"), Heard::Notice("bob joined")),
            (
                Line::chat(&THEMES[1], &alice, "hi: there"),
                Heard::Said { speaker: "alice", text: "hi: there", private: false },
            ),
            (
                Line::private(&THEMES[1], &alice, "psst"),
                Heard::Said { speaker: "alice", text: "psst", private: true },
            ),
            (
                Line::action(&THEMES[1], &alice, "waves at bob"),
                Heard::Action { speaker: "alice", text: "waves at bob" },
            ),
            (Line::private_sent(&alice, "psst"), Heard::PrivateSent { to: "alice", text: "psst" }),
            (
                Line::announcement("restart soon"),
                Heard::Said { speaker: "server", text: "restart soon", private: false },
            ),
            (Line::plain("  /who  who is online"), Heard::Other("  /who  who is online")),
        ];
        for (line, heard) in cases {
            assert_eq!(classify(plain(&line)), heard, "{}", plain(&line));
        }
    }

    #[test]
    fn room_tags_are_looked_through_and_the_current_room_is_read() {
        let rust = RoomName::parse("rust").expect("valid");
        let line = Line::chat(&THEMES[0], &name("alice"), "hi");
        let tagged = format!("{}{}", room_tag(&rust), plain(&line));
        assert_eq!(split_room_tag(&tagged), (Some("#rust"), plain(&line)));
        assert_eq!(classify(&tagged), Heard::Said { speaker: "alice", text: "hi", private: false });
        assert_eq!(split_room_tag("[#a b] x"), (None, "[#a b] x"));
        let now = Line::notice(&now_in(&rust));
        assert_eq!(classify(plain(&now)), Heard::CurrentRoom { room: "#rust" });
        let joined = Line::notice(&joined(&rust, "Online: 🦊 bob. Or so."));
        assert_eq!(classify(plain(&joined)), Heard::Joined { room: "#rust" });
        assert_eq!(classify(plain(&Line::notice(&left(&rust)))), Heard::Left { room: "#rust" });
    }

    #[test]
    fn the_welcome_names_a_generated_name_too() {
        let guest = name("guest-1234");
        let line = Line::notice(&welcome(&guest, &THEMES[2]));
        assert_eq!(classify(plain(&line)), Heard::Welcome { name: "guest-1234" });
    }

    #[test]
    fn a_user_cannot_pass_a_chat_line_for_a_notice() {
        let line = Line::chat(&THEMES[0], &name("mallory"), "*** Goodbye!");
        assert!(matches!(classify(plain(&line)), Heard::Said { speaker: "mallory", .. }));
    }
}
