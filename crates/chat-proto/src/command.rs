//! The commands a user types, as both ends of the wire know them.
//!
//! A line starting with `/` is a command; `//` at the start sends a literal
//! `/`. [`COMMANDS`] is the one list of command names, their aliases, usage
//! and help text: the server parses with [`parse`] and answers `/help` from
//! it, and the client asks the same module whether a line it sends ends the
//! session ([`is_quit`]) or renames it ([`nick_target`]). Parsing is pure
//! and works on already-sanitised text.

use std::time::Duration;

/// One line from a named user, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Message(&'a str),
    Help,
    /// `/who` (the current room) or `/who #room`.
    Who(Option<&'a str>),
    /// `/join #room`: join it (creating it) and make it current.
    Join(&'a str),
    /// `/part [#room]`: leave it (default: the current room).
    Part(Option<&'a str>),
    Rooms,
    /// `/history [N]`: the current room's last N messages (default
    /// [`HISTORY_DEFAULT`], at most [`HISTORY_MAX`]).
    History(usize),
    /// `/search WORDS`: the current room's most recent messages with every word.
    Search(&'a str),
    Nick(&'a str),
    /// `/register PASSWORD`: make the current name yours.
    Register(&'a str),
    /// `/password OLD NEW`.
    Password {
        old: &'a str,
        new: &'a str,
    },
    /// `/unregister PASSWORD`: give the name back.
    Unregister(&'a str),
    Me(&'a str),
    Msg {
        to: &'a str,
        text: &'a str,
    },
    Color(Option<bool>),
    Quit(Option<&'a str>),
    /// `/topic` (show it) or `/topic TEXT` (set it; `-` clears it).
    Topic(Option<&'a str>),
    /// `/kick NAME [REASON]`.
    Kick {
        who: &'a str,
        reason: &'a str,
    },
    /// `/ban NAME|ADDRESS|CIDR [DURATION] [REASON]` (no duration: until
    /// lifted); [`duration_and_reason`] reads `rest`. (Two words, not three:
    /// a connection's task holds a parsed line, and must stay small.)
    Ban {
        target: &'a str,
        rest: &'a str,
    },
    Unban(&'a str),
    /// `/mute NAME [DURATION]`.
    Mute {
        who: &'a str,
        duration: Option<Duration>,
    },
    Unmute(&'a str),
    Bans,
    Op(&'a str),
    Deop(&'a str),
    /// A server operator's announcement: to every room, or (`#room TEXT`) one.
    Say(&'a str),
    /// A server operator asks for the daemon's counters.
    Stats,
    /// A known command used the wrong way: the usage to show.
    Usage(&'static str),
    Unknown(&'a str),
}

/// Who may use a command, lowest first: `/help` lists what a user may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Needs {
    Anyone,
    RoomOperator,
    RoomOwner,
    ServerOperator,
}

/// What every command is called and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The name `/help` shows.
    pub name: &'static str,
    /// Other names for the same command.
    pub aliases: &'static [&'static str],
    /// `/name ARGS`, as `/help` and usage hints show it.
    pub usage: &'static str,
    pub help: &'static str,
    /// Who may use it.
    pub needs: Needs,
}

impl CommandSpec {
    /// True when `word` (without the `/`, any case) names this command.
    pub fn is_called(&self, word: &str) -> bool {
        self.name.eq_ignore_ascii_case(word)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(word))
    }
}

pub const HELP: CommandSpec = CommandSpec {
    name: "help",
    aliases: &["?"],
    usage: "/help",
    help: "this list",
    needs: Needs::Anyone,
};
pub const WHO: CommandSpec = CommandSpec {
    name: "who",
    aliases: &["names"],
    usage: "/who [#ROOM]",
    help: "who is in this room (or another), with their themes",
    needs: Needs::Anyone,
};
pub const JOIN: CommandSpec = CommandSpec {
    name: "join",
    aliases: &["j"],
    usage: "/join #ROOM",
    help: "join a room (creating it) and talk there",
    needs: Needs::Anyone,
};
pub const PART: CommandSpec = CommandSpec {
    name: "part",
    aliases: &[],
    usage: "/part [#ROOM]",
    help: "leave a room (default: the one you talk in)",
    needs: Needs::Anyone,
};
pub const ROOMS: CommandSpec = CommandSpec {
    name: "rooms",
    aliases: &["list", "channels"],
    usage: "/rooms",
    help: "the rooms that have people, and yours",
    needs: Needs::Anyone,
};
pub const HISTORY: CommandSpec = CommandSpec {
    name: "history",
    aliases: &[],
    usage: "/history [N]",
    help: "the last N messages here (50; at most 500), with UTC times",
    needs: Needs::Anyone,
};
pub const SEARCH: CommandSpec = CommandSpec {
    name: "search",
    aliases: &[],
    usage: "/search WORDS",
    help: "the latest messages here that contain every word",
    needs: Needs::Anyone,
};
pub const NICK: CommandSpec = CommandSpec {
    name: "nick",
    aliases: &["name"],
    usage: "/nick NEW",
    help: "change your name",
    needs: Needs::Anyone,
};
pub const REGISTER: CommandSpec = CommandSpec {
    name: "register",
    aliases: &[],
    usage: "/register PASSWORD",
    help: "make your name yours (8+ characters, no spaces; sent in the clear without TLS)",
    needs: Needs::Anyone,
};
pub const PASSWORD: CommandSpec = CommandSpec {
    name: "password",
    aliases: &[],
    usage: "/password OLD NEW",
    help: "change the password of your registered name",
    needs: Needs::Anyone,
};
pub const UNREGISTER: CommandSpec = CommandSpec {
    name: "unregister",
    aliases: &[],
    usage: "/unregister PASSWORD",
    help: "give your registered name back",
    needs: Needs::Anyone,
};
pub const ME: CommandSpec = CommandSpec {
    name: "me",
    aliases: &[],
    usage: "/me ACTION",
    help: "say what you are doing (* alice waves)",
    needs: Needs::Anyone,
};
pub const MSG: CommandSpec = CommandSpec {
    name: "msg",
    aliases: &["tell", "whisper"],
    usage: "/msg NAME TEXT",
    help: "a private message to one user",
    needs: Needs::Anyone,
};
pub const COLOR: CommandSpec = CommandSpec {
    name: "color",
    aliases: &["colour"],
    usage: "/color on|off",
    help: "colours for your connection",
    needs: Needs::Anyone,
};
pub const QUIT: CommandSpec = CommandSpec {
    name: "quit",
    aliases: &["exit", "leave"],
    usage: "/quit [REASON]",
    help: "leave",
    needs: Needs::Anyone,
};

pub const TOPIC: CommandSpec = CommandSpec {
    name: "topic",
    aliases: &[],
    usage: "/topic [TEXT]",
    help: "this room's topic; room operators set it (- clears it)",
    needs: Needs::Anyone,
};
pub const KICK: CommandSpec = CommandSpec {
    name: "kick",
    aliases: &[],
    usage: "/kick NAME [REASON]",
    help: "put someone out of this room (in #lobby: off the server)",
    needs: Needs::RoomOperator,
};
pub const BAN: CommandSpec = CommandSpec {
    name: "ban",
    aliases: &[],
    usage: "/ban NAME [30m|2h|7d] [REASON]",
    help: "keep someone out of this room (in #lobby: off the server; or an ADDRESS/CIDR)",
    needs: Needs::RoomOperator,
};
pub const UNBAN: CommandSpec = CommandSpec {
    name: "unban",
    aliases: &[],
    usage: "/unban NAME",
    help: "lift a ban",
    needs: Needs::RoomOperator,
};
pub const MUTE: CommandSpec = CommandSpec {
    name: "mute",
    aliases: &[],
    usage: "/mute NAME [30m|2h|7d]",
    help: "refuse someone's lines here (in #lobby: everywhere)",
    needs: Needs::RoomOperator,
};
pub const UNMUTE: CommandSpec = CommandSpec {
    name: "unmute",
    aliases: &[],
    usage: "/unmute NAME",
    help: "let someone speak again",
    needs: Needs::RoomOperator,
};
pub const BANS: CommandSpec = CommandSpec {
    name: "bans",
    aliases: &[],
    usage: "/bans",
    help: "the bans here, who set each and when it ends",
    needs: Needs::RoomOperator,
};
pub const OP: CommandSpec = CommandSpec {
    name: "op",
    aliases: &[],
    usage: "/op NAME",
    help: "make a registered user an operator of your room",
    needs: Needs::RoomOwner,
};
pub const DEOP: CommandSpec = CommandSpec {
    name: "deop",
    aliases: &[],
    usage: "/deop NAME",
    help: "take a room operator's rank back",
    needs: Needs::RoomOwner,
};

pub const SAY: CommandSpec = CommandSpec {
    name: "say",
    aliases: &[],
    usage: "/say [#ROOM] TEXT",
    help: "announce to every room (or one), as the server",
    needs: Needs::ServerOperator,
};
pub const STATS: CommandSpec = CommandSpec {
    name: "stats",
    aliases: &[],
    usage: "/stats",
    help: "the daemon's counters, as the console shows them",
    needs: Needs::ServerOperator,
};

/// Every command, in the order `/help` lists them.
pub const COMMANDS: &[CommandSpec] = &[
    HELP, WHO, JOIN, PART, ROOMS, HISTORY, SEARCH, NICK, REGISTER, PASSWORD, UNREGISTER, ME, MSG,
    COLOR, QUIT, TOPIC, KICK, BAN, UNBAN, MUTE, UNMUTE, BANS, OP, DEOP, SAY, STATS,
];

/// A duration as typed: a number and `s`, `m`, `h` or `d` (`30m`, `2h`,
/// `7d`; seconds for quick cool-downs and tests), at most a year.
pub fn parse_duration(typed: &str) -> Option<Duration> {
    let unit = typed.chars().last()?;
    let number: u64 = typed[..typed.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit.to_ascii_lowercase() {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let total = number.checked_mul(seconds)?;
    (number > 0 && total <= 366 * 86_400).then(|| Duration::from_secs(total))
}

/// Messages `/history` shows when no number is given.
pub const HISTORY_DEFAULT: usize = 50;
/// The most `/history` shows at once.
pub const HISTORY_MAX: usize = 500;

/// The lines of `/help` for someone who may use what `needs` allows.
pub fn help_lines(needs: Needs) -> Vec<String> {
    let mut lines = vec!["Commands:".to_owned()];
    for spec in COMMANDS.iter().filter(|spec| spec.needs <= needs) {
        lines.push(format!("  {:<19} {}", spec.usage, spec.help));
    }
    lines.push(format!("  {:<19} {}", "//text", "send a line that starts with /"));
    lines
}

/// Parses one sanitised line from a named user.
pub fn parse(line: &str) -> Command<'_> {
    let Some(body) = line.strip_prefix('/') else {
        return Command::Message(line);
    };
    if body.starts_with('/') {
        return Command::Message(body);
    }
    let (word, rest) = match body.split_once(' ') {
        Some((word, rest)) => (word, rest.trim()),
        None => (body, ""),
    };
    let Some(spec) = COMMANDS.iter().find(|spec| spec.is_called(word)) else {
        return Command::Unknown(word);
    };
    let usage = Command::Usage(spec.usage);
    match spec.name {
        "help" => Command::Help,
        "who" => Command::Who(rest.split_whitespace().next()),
        "join" => match rest.split_whitespace().next() {
            Some(room) => Command::Join(room),
            None => usage,
        },
        "part" => Command::Part(rest.split_whitespace().next()),
        "rooms" => Command::Rooms,
        "history" => match rest {
            "" => Command::History(HISTORY_DEFAULT),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => Command::History(n.min(HISTORY_MAX)),
                _ => usage,
            },
        },
        "search" if rest.is_empty() => usage,
        "search" => Command::Search(rest),
        "register" | "unregister" if rest.is_empty() || rest.contains(' ') => usage,
        "register" => Command::Register(rest),
        "unregister" => Command::Unregister(rest),
        "password" => match rest.split_whitespace().collect::<Vec<_>>()[..] {
            [old, new] => Command::Password { old, new },
            _ => usage,
        },
        "nick" if rest.is_empty() => usage,
        "nick" => Command::Nick(rest),
        "me" if rest.is_empty() => usage,
        "me" => Command::Me(rest),
        "msg" => match rest.split_once(' ') {
            Some((to, text)) if !text.trim().is_empty() => Command::Msg { to, text: text.trim() },
            _ => usage,
        },
        "color" => match rest.to_ascii_lowercase().as_str() {
            "on" => Command::Color(Some(true)),
            "off" => Command::Color(Some(false)),
            "" => Command::Color(None),
            _ => usage,
        },
        "quit" => Command::Quit((!rest.is_empty()).then_some(rest)),
        "topic" => Command::Topic((!rest.is_empty()).then_some(rest)),
        "bans" => Command::Bans,
        "stats" => Command::Stats,
        _ if rest.is_empty() => usage,
        "say" => Command::Say(rest),
        "kick" => {
            let (who, reason) = first_word(rest);
            Command::Kick { who, reason }
        }
        "ban" => {
            let (target, rest) = first_word(rest);
            Command::Ban { target, rest }
        }
        "mute" => match rest.split_whitespace().collect::<Vec<_>>()[..] {
            [who] => Command::Mute { who, duration: None },
            [who, typed] => match parse_duration(typed) {
                Some(duration) => Command::Mute { who, duration: Some(duration) },
                None => usage,
            },
            _ => usage,
        },
        "unban" | "unmute" | "op" | "deop" if rest.contains(' ') => usage,
        "unban" => Command::Unban(rest),
        "unmute" => Command::Unmute(rest),
        "op" => Command::Op(rest),
        "deop" => Command::Deop(rest),
        _ => Command::Unknown(word),
    }
}

/// What follows `/ban TARGET`: a duration if the first word is one, and the reason.
pub fn duration_and_reason(rest: &str) -> (Option<Duration>, &str) {
    match first_word(rest) {
        (typed, reason) if parse_duration(typed).is_some() => (parse_duration(typed), reason),
        _ => (None, rest),
    }
}

/// The first word of `text` and the rest, trimmed.
fn first_word(text: &str) -> (&str, &str) {
    match text.split_once(' ') {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

/// True for a line after which the server says goodbye and closes: `/quit`,
/// `/exit`, `/leave`, in any case, with or without a reason.
pub fn is_quit(line: &str) -> bool {
    matches!(parse(line.trim()), Command::Quit(_))
}

/// The new name in `/nick NEW` (or an alias), if the line is one.
pub fn nick_target(line: &str) -> Option<&str> {
    match parse(line.trim()) {
        Command::Nick(new) => new.split_whitespace().next(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_escaped_slash_are_messages() {
        assert_eq!(parse("hello"), Command::Message("hello"));
        assert_eq!(parse("//not a command"), Command::Message("/not a command"));
    }

    #[test]
    fn commands_with_arguments() {
        assert_eq!(parse("/nick bob"), Command::Nick("bob"));
        assert_eq!(parse("/ME waves  "), Command::Me("waves"));
        assert_eq!(parse("/msg bob hi there"), Command::Msg { to: "bob", text: "hi there" });
        assert_eq!(parse("/color off"), Command::Color(Some(false)));
        assert_eq!(parse("/quit gone fishing"), Command::Quit(Some("gone fishing")));
        assert_eq!(parse("/quit"), Command::Quit(None));
    }

    #[test]
    fn room_commands() {
        assert_eq!(parse("/join #rust"), Command::Join("#rust"));
        assert_eq!(parse("/J rust"), Command::Join("rust"));
        assert_eq!(parse("/join"), Command::Usage("/join #ROOM"));
        assert_eq!(parse("/part"), Command::Part(None));
        assert_eq!(parse("/part #rust bye"), Command::Part(Some("#rust")));
        assert_eq!(parse("/rooms"), Command::Rooms);
        assert_eq!(parse("/list"), Command::Rooms);
        assert_eq!(parse("/who"), Command::Who(None));
        assert_eq!(parse("/who #rust"), Command::Who(Some("#rust")));
    }

    #[test]
    fn history_and_search() {
        assert_eq!(parse("/history"), Command::History(HISTORY_DEFAULT));
        assert_eq!(parse("/history 7"), Command::History(7));
        assert_eq!(parse("/HISTORY 100000"), Command::History(HISTORY_MAX));
        assert_eq!(parse("/history 0"), Command::Usage("/history [N]"));
        assert_eq!(parse("/history lots"), Command::Usage("/history [N]"));
        assert_eq!(parse("/search  Rust  async "), Command::Search("Rust  async"));
        assert_eq!(parse("/search"), Command::Usage("/search WORDS"));
    }

    #[test]
    fn registration_commands_take_one_word_passwords() {
        assert_eq!(parse("/register hunter22"), Command::Register("hunter22"));
        assert_eq!(parse("/register two words"), Command::Usage("/register PASSWORD"));
        assert_eq!(parse("/register"), Command::Usage("/register PASSWORD"));
        assert_eq!(parse("/password a b"), Command::Password { old: "a", new: "b" });
        assert_eq!(parse("/password a"), Command::Usage("/password OLD NEW"));
        assert_eq!(parse("/unregister hunter22"), Command::Unregister("hunter22"));
    }

    #[test]
    fn moderation_commands() {
        let minutes = |n: u64| Some(Duration::from_secs(60 * n));
        assert_eq!(parse("/topic"), Command::Topic(None));
        assert_eq!(parse("/topic Rust  and crabs"), Command::Topic(Some("Rust  and crabs")));
        assert_eq!(parse("/kick bob"), Command::Kick { who: "bob", reason: "" });
        assert_eq!(parse("/kick bob be nice"), Command::Kick { who: "bob", reason: "be nice" });
        assert_eq!(
            parse("/ban bob 30m spam again"),
            Command::Ban { target: "bob", rest: "30m spam again" }
        );
        assert_eq!(duration_and_reason("30m spam again"), (minutes(30), "spam again"));
        assert_eq!(
            parse("/ban 10.0.0.0/8 spam"),
            Command::Ban { target: "10.0.0.0/8", rest: "spam" }
        );
        assert_eq!(duration_and_reason("spam"), (None, "spam"));
        assert_eq!(duration_and_reason(""), (None, ""));
        assert_eq!(parse("/ban"), Command::Usage(BAN.usage));
        assert_eq!(parse("/mute bob 2h"), Command::Mute { who: "bob", duration: minutes(120) });
        assert_eq!(parse("/mute bob"), Command::Mute { who: "bob", duration: None });
        assert_eq!(parse("/mute bob soon"), Command::Usage(MUTE.usage));
        assert_eq!(parse("/unmute bob"), Command::Unmute("bob"));
        assert_eq!(parse("/unban 2001:db8::/32"), Command::Unban("2001:db8::/32"));
        assert_eq!(parse("/op olga"), Command::Op("olga"));
        assert_eq!(parse("/deop olga x"), Command::Usage(DEOP.usage));
        assert_eq!(parse("/bans"), Command::Bans);
    }

    #[test]
    fn durations_read_seconds_minutes_hours_and_days() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7D"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        for bad in ["", "m", "0m", "10", "2w", "-1h", "1.5h", "400d", "spam", "é"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn help_shows_only_what_a_user_may_use() {
        let guest = help_lines(Needs::Anyone).join("\n");
        assert!(guest.contains("/topic") && !guest.contains("/ban") && !guest.contains("/op "));
        let operator = help_lines(Needs::RoomOperator).join("\n");
        assert!(operator.contains("/ban") && !operator.contains("/deop"));
        assert!(help_lines(Needs::ServerOperator).join("\n").contains("/deop"));
    }

    #[test]
    fn misuse_and_unknown_commands() {
        assert_eq!(parse("/msg bob"), Command::Usage("/msg NAME TEXT"));
        assert_eq!(parse("/nick"), Command::Usage("/nick NEW"));
        assert_eq!(parse("/color purple"), Command::Usage("/color on|off"));
        assert_eq!(parse("/frobnicate x"), Command::Unknown("frobnicate"));
    }

    #[test]
    fn every_quit_alias_in_any_case_ends_the_session() {
        for line in ["/quit", "/QUIT", "/exit", "/Exit now", "/leave", "  /LEAVE bye"] {
            assert!(is_quit(line), "{line}");
        }
        for line in ["/quitter", "//quit", "say /quit", "quit"] {
            assert!(!is_quit(line), "{line}");
        }
    }

    #[test]
    fn nick_targets_come_from_any_alias() {
        assert_eq!(nick_target("/nick Alicia"), Some("Alicia"));
        assert_eq!(nick_target("/NAME Alicia"), Some("Alicia"));
        assert_eq!(nick_target("/nick"), None);
        assert_eq!(nick_target("nick Alicia"), None);
    }

    #[test]
    fn help_lists_every_command_and_alias_resolves() {
        let help = help_lines(Needs::ServerOperator).join("\n");
        for spec in COMMANDS {
            assert!(help.contains(spec.usage), "{} missing from /help", spec.name);
            assert!(spec.aliases.iter().all(|alias| spec.is_called(alias)));
        }
    }
}
