//! One IRC message as a client sends it: tags, source, command and
//! parameters (RFC 1459 section 2.3.1, IRCv3 message-tags), and the limits
//! on its length.
//!
//! Written here rather than taken from `irc-proto`: the door needs only
//! to split a line it already holds (the session's codec frames, decodes
//! and bounds it) into borrowed parts, while `irc-proto` parses into its
//! own command enum of owned strings and brings its codec and encoding
//! crates along; the rendering side is ours either way, from events.

/// The longest message after its tags, without the line end (RFC 1459: 512 with `\r\n`).
pub const MAX_BODY: usize = 510;
/// The longest line the door reads: a client's tags (IRCv3 allows a
/// client 4,094 bytes of them, with `@` and the space) and the body.
pub const MAX_LINE: usize = 4096 + 512;

/// A parsed message, borrowing from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The command, in upper case (`PRIVMSG`, `001`).
    pub command: String,
    pub params: Vec<&'a str>,
}

impl<'a> Message<'a> {
    /// The `i`th parameter, if present.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied()
    }
}

/// Why a line is not a message the door can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Nothing but tags, a source or spaces.
    Empty,
    /// The part after the tags is over [`MAX_BODY`] bytes.
    TooLong,
}

/// Splits `line` into its command and parameters; tags and a source are
/// read past (a client's source is ignored, as servers do).
pub fn parse(line: &str) -> Result<Message<'_>, Malformed> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    if let Some(tagged) = rest.strip_prefix('@') {
        rest = tagged.split_once(' ').map_or("", |(_, body)| body);
    }
    rest = rest.trim_start_matches(' ');
    if rest.len() > MAX_BODY {
        return Err(Malformed::TooLong);
    }
    if rest.starts_with(':') {
        rest = rest.split_once(' ').map_or("", |(_, body)| body).trim_start_matches(' ');
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if command.is_empty() {
        return Err(Malformed::Empty);
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        // RFC 2812: at most 14 middle parameters, the 15th takes the rest.
        if params.len() == 14 {
            params.push(rest);
            break;
        }
        let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(param);
        rest = after;
    }
    Ok(Message { command: command.to_ascii_uppercase(), params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_source_command_and_trailing_parameter_are_split() {
        let message = parse("@time=x;+a=b :nick!u@h privmsg #rust :hello  there\r").expect("ok");
        assert_eq!(message.command, "PRIVMSG");
        assert_eq!(message.params, ["#rust", "hello  there"]);
        let message = parse("USER alice 0 * :Alice Liddell").expect("ok");
        assert_eq!(message.params, ["alice", "0", "*", "Alice Liddell"]);
        assert_eq!(parse("PING").expect("ok").params, Vec::<&str>::new());
        assert_eq!(parse("MODE  #a   +b   x").expect("ok").params, ["#a", "+b", "x"]);
        assert_eq!(parse("PRIVMSG #a :").expect("ok").params, ["#a", ""]);
    }

    #[test]
    fn empty_and_overlong_lines_are_refused() {
        assert_eq!(parse(""), Err(Malformed::Empty));
        assert_eq!(parse(":source"), Err(Malformed::Empty));
        assert_eq!(parse("@tags"), Err(Malformed::Empty));
        let long = format!("PRIVMSG #a :{}", "x".repeat(MAX_BODY));
        assert_eq!(parse(&long), Err(Malformed::TooLong));
        let tagged = format!("@{} PRIVMSG #a :hi", "t".repeat(3000));
        assert!(parse(&tagged).is_ok());
    }
}
