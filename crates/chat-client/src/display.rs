//! What a received line becomes before it reaches the user.
//!
//! The client trusts no server: every line goes through
//! [`chat_proto::terminal::terminal_safe`] (only SGR colour survives) or,
//! without colour, [`chat_proto::terminal::strip_escapes`]. On a terminal a
//! line in which someone else mentions our name is highlighted and, with
//! `--bell`, rings the bell; the BEL is ours, added after sanitising.

use chat_proto::terminal::{strip_escapes, terminal_safe};

use chat_proto::Heard;

use crate::text::contains_word;

/// Bold reverse video: a mention stands out whatever the theme colour.
const HIGHLIGHT_ON: &str = "\x1b[1;7m";
const RESET: &str = "\x1b[0m";
/// Marks a mention when escapes are not wanted.
const PLAIN_MARK: &str = "» ";
const BELL: char = '\x07';

/// How received lines are shown.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub bell: bool,
}

/// `raw` made safe for a terminal: SGR colour kept or, without colour, no
/// escape at all.
pub fn sanitized(raw: &str, color: bool) -> String {
    if color { terminal_safe(raw) } else { strip_escapes(raw) }
}

/// `raw` as the line editor shows it: sanitised, and highlighted (with a
/// bell if wanted) when it mentions `me`.
pub fn for_terminal(raw: &str, style: Style, me: Option<&str>) -> String {
    let plain = strip_escapes(raw);
    if !me.is_some_and(|me| mentions(&plain, me)) {
        return sanitized(raw, style.color);
    }
    let mut shown = String::with_capacity(plain.len() + 16);
    if style.bell {
        shown.push(BELL);
    }
    if style.color {
        shown.push_str(HIGHLIGHT_ON);
        shown.push_str(&plain);
        shown.push_str(RESET);
    } else {
        shown.push_str(PLAIN_MARK);
        shown.push_str(&plain);
    }
    shown
}

/// True when someone other than `me` says `me`'s name (as a word, any case).
pub fn mentions(plain: &str, me: &str) -> bool {
    match chat_proto::classify(plain) {
        Heard::Said { speaker, text, .. } | Heard::Action { speaker, text } => {
            !speaker.eq_ignore_ascii_case(me) && contains_word(text, me)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLOR: Style = Style { color: true, bell: false };

    #[test]
    fn ordinary_lines_keep_colour_and_lose_other_escapes() {
        let line = "\x1b[38;5;208m🦊 bob: hi\x1b[2J\x1b]0;title\x07\x1b[0m";
        assert_eq!(for_terminal(line, COLOR, Some("alice")), "\x1b[38;5;208m🦊 bob: hi\x1b[0m");
        let plain = Style { color: false, bell: false };
        assert_eq!(for_terminal(line, plain, Some("alice")), "🦊 bob: hi");
    }

    #[test]
    fn mention_by_someone_else_is_highlighted() {
        let line = "\x1b[38;5;208m🦊 bob: hey ALICE, look\x1b[0m";
        assert_eq!(
            for_terminal(line, COLOR, Some("alice")),
            "\x1b[1;7m🦊 bob: hey ALICE, look\x1b[0m"
        );
        let bell = Style { color: false, bell: true };
        assert_eq!(for_terminal(line, bell, Some("alice")), "\x07» 🦊 bob: hey ALICE, look");
    }

    #[test]
    fn own_lines_notices_and_partial_words_are_not_mentions() {
        assert!(!mentions("🦊 alice: I am alice", "alice"));
        assert!(!mentions("*** Welcome, alice!", "alice"));
        assert!(!mentions("-> bob: this is alice", "alice"));
        assert!(!mentions("🐼 bob: malice aforethought", "alice"));
        assert!(mentions("🐼 * bob waves at alice", "alice"));
        assert!(mentions("🐼 bob (private): alice?", "alice"));
    }

    #[test]
    fn a_mention_from_another_room_is_highlighted_tag_and_all() {
        let line = "[#rust] \x1b[38;5;208m🦊 bob: hi alice\x1b[0m";
        assert_eq!(
            for_terminal(line, COLOR, Some("alice")),
            "\x1b[1;7m[#rust] 🦊 bob: hi alice\x1b[0m"
        );
        assert!(mentions("[#rust] 🐼 * bob waves at alice", "alice"));
        assert!(!mentions("[#rust] 🦊 alice: I am alice", "alice"));
        assert!(!mentions("[#rust] *** alice joined #rust.", "alice"));
    }

    #[test]
    fn a_server_cannot_smuggle_a_bell() {
        let shown = for_terminal("🦊 bob: ding\x07", COLOR, Some("alice"));
        assert!(!shown.contains(BELL));
    }
}
