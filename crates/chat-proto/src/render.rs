//! The lines the server sends, rendered once and shared by every recipient.
//!
//! A [`Line`] holds the same text twice, with and without ANSI colour, as
//! reference-counted [`Bytes`] ending in `\r\n`; fan-out clones the handle,
//! never the text. Every constructor takes already-sanitised parts, so the
//! only ESC bytes on the wire are the colour codes added here.

use bytes::Bytes;

use crate::name::Name;
use crate::theme::Theme;
use crate::vocabulary::{NOTICE_MARK, PRIVATE_SENT_MARK};

const RESET: &str = "\x1b[0m";
/// Colour of server notices: bold yellow.
const NOTICE_SGR: &str = "1;33";
/// Marks a private line: italic on top of the theme.
const PRIVATE_SGR: &str = "3";

/// One line to send, in colour and plain, each ending in `\r\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    colored: Bytes,
    plain: Bytes,
}

impl Line {
    /// The variant for a reader who wants colour or not.
    pub fn bytes(&self, color: bool) -> &Bytes {
        if color { &self.colored } else { &self.plain }
    }

    fn styled(sgr: &str, text: &str) -> Self {
        Line {
            colored: Bytes::from(format!("\x1b[{sgr}m{text}{RESET}\r\n")),
            plain: Bytes::from(format!("{text}\r\n")),
        }
    }

    /// A chat message: `🦊 alice: hello`.
    pub fn chat(theme: &Theme, name: &Name, text: &str) -> Self {
        Self::styled(theme.sgr, &format!("{} {name}: {text}", theme.emoji))
    }

    /// An action from `/me`: `🦊 * alice waves`.
    pub fn action(theme: &Theme, name: &Name, text: &str) -> Self {
        Self::styled(theme.sgr, &format!("{} * {name} {text}", theme.emoji))
    }

    /// A private message as its recipient sees it: `🦊 alice (private): psst`.
    pub fn private(theme: &Theme, name: &Name, text: &str) -> Self {
        let sgr = format!("{};{PRIVATE_SGR}", theme.sgr);
        Self::styled(&sgr, &format!("{} {name} (private): {text}", theme.emoji))
    }

    /// What the sender of a private message sees: `-> bob: psst`.
    pub fn private_sent(to: &Name, text: &str) -> Self {
        Self::styled(PRIVATE_SGR, &format!("{PRIVATE_SENT_MARK}{to}: {text}"))
    }

    /// A notice from the server: `*** bob joined`.
    pub fn notice(text: &str) -> Self {
        Self::styled(NOTICE_SGR, &format!("{NOTICE_MARK}{text}"))
    }

    /// An operator's announcement from the console: `📢 server: text`.
    pub fn announcement(text: &str) -> Self {
        Self::styled(NOTICE_SGR, &format!("📢 server: {text}"))
    }

    /// The same line with `prefix` (a time, say) in front, in both variants.
    pub fn prefixed(&self, prefix: &str) -> Self {
        let join = |bytes: &Bytes| {
            let mut joined = Vec::with_capacity(prefix.len() + bytes.len());
            joined.extend_from_slice(prefix.as_bytes());
            joined.extend_from_slice(bytes);
            Bytes::from(joined)
        };
        Line { colored: join(&self.colored), plain: join(&self.plain) }
    }

    /// Text without decoration (replies like `/help`), still ending in `\r\n`.
    pub fn plain(text: &str) -> Self {
        let bytes = Bytes::from(format!("{text}\r\n"));
        Line { colored: bytes.clone(), plain: bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::THEMES;

    #[test]
    fn chat_line_carries_theme_name_and_text_in_both_variants() {
        let name = Name::parse("alice").expect("valid");
        let line = Line::chat(&THEMES[0], &name, "hi");
        assert_eq!(&line.bytes(false)[..], "🦊 alice: hi\r\n".as_bytes());
        assert_eq!(&line.bytes(true)[..], "\x1b[38;5;208m🦊 alice: hi\x1b[0m\r\n".as_bytes());
    }

    #[test]
    fn plain_variants_never_contain_escape() {
        let name = Name::parse("bob").expect("valid");
        let theme = &THEMES[3];
        for line in [
            Line::chat(theme, &name, "x"),
            Line::action(theme, &name, "x"),
            Line::private(theme, &name, "x"),
            Line::private_sent(&name, "x"),
            Line::notice("x"),
            Line::announcement("x"),
        ] {
            assert!(!line.bytes(false).contains(&0x1b));
            assert!(line.bytes(false).ends_with(b"\r\n"));
        }
    }
}
