//! What a user's line means: a message, or one of the slash commands.
//!
//! Parsing is pure and works on already-sanitised text; the connection
//! carries the commands out. `//` at the start sends a literal `/`.

/// One line from a named user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    Message(&'a str),
    Help,
    Who,
    Nick(&'a str),
    Me(&'a str),
    Msg {
        to: &'a str,
        text: &'a str,
    },
    Color(Option<bool>),
    Quit(Option<&'a str>),
    /// A known command used the wrong way: the usage to show.
    Usage(&'static str),
    Unknown(&'a str),
}

/// The text of `/help`, one line each.
pub const HELP: &[&str] = &[
    "Commands:",
    "  /help               this list",
    "  /who                who is online, with their themes",
    "  /nick NEW           change your name",
    "  /me ACTION          say what you are doing (* alice waves)",
    "  /msg NAME TEXT      a private message to one user",
    "  /color on|off       colours for your connection",
    "  /quit [REASON]      leave",
    "  //text              send a line that starts with /",
];

pub fn parse(line: &str) -> Input<'_> {
    let Some(body) = line.strip_prefix('/') else {
        return Input::Message(line);
    };
    if body.starts_with('/') {
        return Input::Message(body);
    }
    let (command, rest) = match body.split_once(' ') {
        Some((command, rest)) => (command, rest.trim()),
        None => (body, ""),
    };
    match command.to_ascii_lowercase().as_str() {
        "help" | "?" => Input::Help,
        "who" | "names" | "list" => Input::Who,
        "nick" | "name" if !rest.is_empty() => Input::Nick(rest),
        "nick" | "name" => Input::Usage("/nick NEW"),
        "me" if !rest.is_empty() => Input::Me(rest),
        "me" => Input::Usage("/me ACTION"),
        "msg" | "tell" | "whisper" => match rest.split_once(' ') {
            Some((to, text)) if !text.trim().is_empty() => Input::Msg { to, text: text.trim() },
            _ => Input::Usage("/msg NAME TEXT"),
        },
        "color" | "colour" => match rest.to_ascii_lowercase().as_str() {
            "on" => Input::Color(Some(true)),
            "off" => Input::Color(Some(false)),
            "" => Input::Color(None),
            _ => Input::Usage("/color on|off"),
        },
        "quit" | "exit" | "leave" => Input::Quit((!rest.is_empty()).then_some(rest)),
        _ => Input::Unknown(command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_escaped_slash_are_messages() {
        assert_eq!(parse("hello"), Input::Message("hello"));
        assert_eq!(parse("//not a command"), Input::Message("/not a command"));
    }

    #[test]
    fn commands_with_arguments() {
        assert_eq!(parse("/nick bob"), Input::Nick("bob"));
        assert_eq!(parse("/ME waves  "), Input::Me("waves"));
        assert_eq!(parse("/msg bob hi there"), Input::Msg { to: "bob", text: "hi there" });
        assert_eq!(parse("/color off"), Input::Color(Some(false)));
        assert_eq!(parse("/quit gone fishing"), Input::Quit(Some("gone fishing")));
        assert_eq!(parse("/quit"), Input::Quit(None));
    }

    #[test]
    fn misuse_and_unknown_commands() {
        assert_eq!(parse("/msg bob"), Input::Usage("/msg NAME TEXT"));
        assert_eq!(parse("/nick"), Input::Usage("/nick NEW"));
        assert_eq!(parse("/color purple"), Input::Usage("/color on|off"));
        assert_eq!(parse("/frobnicate x"), Input::Unknown("frobnicate"));
    }
}
