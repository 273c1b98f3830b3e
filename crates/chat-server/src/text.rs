//! The text protocol's edge (netcat, telnet, TLS, the bundled client):
//! how each [`Event`](crate::event::Event) reads as a line.
//!
//! The core hands events around as data; this is the one place they become
//! the lines PRODUCT.md describes, and `Event::text` caches the result on
//! the shared event. The words a program must recognise come from
//! `chat_proto::vocabulary` and `chat_proto::Line`.

use chat_proto::Line;

use crate::event::{Event, Presence, Said, Scope, What};

/// The line an event reads as, rendered by its first reader and shared by
/// the rest.
pub fn line(event: &Event) -> &Line {
    event.text_cache().get_or_init(|| render(&event.what))
}

/// Renders what an event is about as a line.
fn render(what: &What) -> Line {
    match what {
        What::Said(said) => said_line(said),
        What::Presence(change) => Line::notice(&presence(change)),
        What::Gathered(changes) => {
            Line::notice(&summarise_changes(changes.iter().map(|(change, _)| presence(change))))
        }
    }
}

/// The line of something said, as it was shown live.
pub fn said_line(said: &Said) -> Line {
    match said {
        Said::Message(message) if message.action => {
            Line::action(message.theme(), &message.name, &message.text)
        }
        Said::Message(message) => Line::chat(message.theme(), &message.name, &message.text),
        Said::Announcement(text) => Line::announcement(text),
    }
}

/// The words of a presence notice: `🦊 alice joined #rust`.
pub fn presence(change: &Presence) -> String {
    match change {
        Presence::Arrived { who, theme } => format!("{} {who} joined", theme.emoji),
        Presence::Joined { who, theme, room } => format!("{} {who} joined {room}", theme.emoji),
        Presence::Parted { who, theme, room } => format!("{} {who} left {room}", theme.emoji),
        Presence::Departed { who, theme, how } => format!("{} {who} {how}", theme.emoji),
        Presence::Renamed { old, new, theme } => {
            format!("{} {old} is now known as {new}", theme.emoji)
        }
    }
}

/// Gathered changes for a reader who saw some of them through another
/// room: the notice of the rest, if any are left.
pub fn gathered_for(changes: &[(Presence, Scope)], shown: impl Fn(&Scope) -> bool) -> Option<Line> {
    let kept: Vec<String> =
        changes.iter().filter(|(_, scope)| shown(scope)).map(|(c, _)| presence(c)).collect();
    (!kept.is_empty()).then(|| Line::notice(&summarise_changes(kept.into_iter())))
}

/// A gathered presence notice names everyone up to about this many bytes;
/// only past it does it say "and N more".
pub const PRESENCE_LINE_BYTES: usize = 4000;

/// One line for many joins and leaves: everyone named, up to a line of about
/// [`PRESENCE_LINE_BYTES`]; only past that, a count of the rest.
pub fn summarise_changes(changes: impl ExactSizeIterator<Item = String>) -> String {
    let total = changes.len();
    let mut line = String::new();
    for (listed, change) in changes.enumerate() {
        if !line.is_empty() && line.len() + change.len() + 2 > PRESENCE_LINE_BYTES {
            let more = total - listed;
            line.push_str(&format!(" and {more} more joined or left (/who lists everyone)"));
            return line;
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(&change);
    }
    line
}

#[cfg(test)]
mod tests {
    use chat_proto::{Name, RoomName, THEMES};

    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text).expect("valid name")
    }

    #[test]
    fn an_event_is_rendered_once_however_many_read_it() {
        let said = Said::Announcement("hello".to_owned());
        let event = Event::new(None, What::Said(said), Scope::Room);
        let first: *const Line = line(&event);
        let again: *const Line = line(&event);
        assert_eq!(first, again, "the cached rendering, not a second one");
    }

    #[test]
    fn an_arrival_is_told_without_a_room_and_a_join_with_one() {
        let (who, theme) = (name("alice"), THEMES[0]);
        let emoji = theme.emoji;
        let lobby = RoomName::lobby();
        let arrived = Presence::Arrived { who: who.clone(), theme };
        assert_eq!(presence(&arrived), format!("{emoji} alice joined"));
        let joined = Presence::Joined { who: who.clone(), theme, room: lobby.clone() };
        assert_eq!(presence(&joined), format!("{emoji} alice joined #lobby"));
        let parted = Presence::Parted { who, theme, room: lobby };
        assert_eq!(presence(&parted), format!("{emoji} alice left #lobby"));
    }

    #[test]
    fn a_gathered_notice_names_everyone_up_to_about_four_kilobytes() {
        let changes = (0..48).map(|i| format!("🦊 user{i} joined"));
        let line = summarise_changes(changes);
        for i in 0..48 {
            assert!(line.contains(&format!("user{i} joined")), "user{i} missing from {line}");
        }
        assert!(!line.contains("more"), "{line}");
    }

    #[test]
    fn only_past_the_limit_does_it_count_the_rest() {
        let line = summarise_changes((0..1000).map(|i| format!("🦊 user{i} joined")));
        assert!(line.len() <= PRESENCE_LINE_BYTES + 64, "{} bytes", line.len());
        let named = line.matches(" joined").count() - 1;
        assert!(named > 100, "only {named} named");
        let rest = format!("and {} more joined or left (/who lists everyone)", 1000 - named);
        assert!(line.ends_with(&rest), "{line}");
    }
}
