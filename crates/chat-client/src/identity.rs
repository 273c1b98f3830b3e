//! Who we are and where we talk, learnt from the conversation with the server.
//!
//! [`Identity`] reads received lines through [`chat_proto::classify`], the
//! vocabulary the server writes with: after the name prompt, a welcome
//! naming us means our name was accepted, a refusal means it was not (with
//! the server's reason); later, the confirmation of `/nick` renames us, and
//! the server's word that we are now in a room makes it our current room,
//! and its answers to `/join` and `/part` keep the list of rooms we are in.
//! What we typed is never read for any of these: a `/join` the server
//! refused moves us nowhere. The name is what mention highlighting looks for
//! and piped mode waits for, the room what the terminal prompt shows, the
//! list what a reconnection rejoins; a server that words things differently
//! costs only those and a short wait.

use chat_proto::{Heard, LOBBY, RoomKey};

/// What a received line told us about our name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameEvent {
    /// Nothing new.
    Unchanged,
    /// The server accepted this name (on joining or after `/nick`).
    Accepted(String),
    /// The server refused the name we sent and asks again.
    Refused { name: String, reason: String },
    /// The name we sent is registered: the server asks for its password.
    PasswordAsked(String),
}

/// Our name, or where we are in obtaining one, and our current room.
#[derive(Debug)]
pub struct Identity {
    /// Whether the server has asked for a name yet.
    prompt_seen: bool,
    /// The name sent and not yet answered.
    candidate: Option<String>,
    me: Option<String>,
    /// Where our plain lines go: [`LOBBY`] until the server says otherwise.
    room: String,
    /// The rooms we are in, in the order we came into them.
    rooms: Vec<String>,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            prompt_seen: false,
            candidate: None,
            me: None,
            room: LOBBY.to_owned(),
            rooms: vec![LOBBY.to_owned()],
        }
    }
}

impl Identity {
    /// Our accepted name, once the server has welcomed us.
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// The room our plain lines go to, as the server last named it.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The rooms we are in, as far as the server has told us, oldest first.
    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    fn entered(&mut self, room: &str) {
        let key = RoomKey::of(room);
        if !self.rooms.iter().any(|known| RoomKey::of(known) == key) {
            self.rooms.push(room.to_owned());
        }
    }

    fn left(&mut self, room: &str) {
        let key = RoomKey::of(room);
        self.rooms.retain(|known| RoomKey::of(known) != key);
    }

    /// Records a line we sent: a name attempt, before we are named.
    pub fn on_sent(&mut self, line: &str) {
        if self.me.is_none() {
            self.candidate = Some(line.trim().to_owned());
        }
    }

    /// Reads a received line (escapes already stripped) for news about our
    /// name, which it returns, and our current room, which [`Self::room`] shows.
    pub fn on_received(&mut self, plain: &str) -> NameEvent {
        match chat_proto::classify(plain) {
            Heard::NamePrompt => self.prompt_seen = true,
            Heard::CurrentRoom { room } if self.me.is_some() => {
                self.entered(room);
                self.room = room.to_owned();
            }
            Heard::Joined { room } if self.me.is_some() => self.entered(room),
            Heard::Left { room } if self.me.is_some() => self.left(room),
            Heard::Welcome { name } if self.me.is_none() && self.prompt_seen => {
                self.candidate = None;
                self.me = Some(name.to_owned());
                return NameEvent::Accepted(name.to_owned());
            }
            Heard::Renamed { name } if self.me.is_some() => {
                self.me = Some(name.to_owned());
                return NameEvent::Accepted(name.to_owned());
            }
            Heard::PasswordPrompt { name } if self.me.is_none() && self.candidate.is_some() => {
                return NameEvent::PasswordAsked(name.to_owned());
            }
            Heard::Refusal { reason } if self.me.is_none() && self.prompt_seen => {
                if let Some(name) = self.candidate.take() {
                    return NameEvent::Refused { name, reason: reason.to_owned() };
                }
            }
            _ => {}
        }
        NameEvent::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::vocabulary::{self, ANOTHER_NAME_PROMPT, GREETING, NAME_PROMPT};
    use chat_proto::{Name, RoomName, THEMES};

    fn notice(text: &str) -> String {
        format!("*** {text}")
    }

    fn welcome(name: &str) -> String {
        notice(&vocabulary::welcome(&Name::parse(name).expect("valid"), &THEMES[0]))
    }

    fn greeted() -> Identity {
        let mut id = Identity::default();
        assert_eq!(id.on_received(&notice(GREETING)), NameEvent::Unchanged);
        assert_eq!(id.on_received(&notice(NAME_PROMPT)), NameEvent::Unchanged);
        id
    }

    #[test]
    fn welcome_after_a_name_accepts_it() {
        let mut id = greeted();
        id.on_sent("alice");
        assert_eq!(id.on_received(&welcome("alice")), NameEvent::Accepted("alice".into()));
        assert_eq!(id.me(), Some("alice"));
    }

    #[test]
    fn name_sent_before_the_greeting_arrives_still_counts() {
        let mut id = Identity::default();
        id.on_sent("alice");
        assert_eq!(id.on_received(&notice(GREETING)), NameEvent::Unchanged);
        assert_eq!(id.on_received(&notice(NAME_PROMPT)), NameEvent::Unchanged);
        assert_eq!(id.on_received(&welcome("alice")), NameEvent::Accepted("alice".into()));
    }

    #[test]
    fn a_refusal_refuses_with_the_servers_reason() {
        let mut id = greeted();
        id.on_sent("bob");
        let event = id.on_received(&notice(&vocabulary::refusal("that name is taken")));
        let reason = "that name is taken".to_owned();
        assert_eq!(event, NameEvent::Refused { name: "bob".into(), reason });
        assert_eq!(id.on_received(&notice(ANOTHER_NAME_PROMPT)), NameEvent::Unchanged);
        assert_eq!(id.me(), None);
        id.on_sent("bob2");
        assert_eq!(id.on_received(&welcome("bob2")), NameEvent::Accepted("bob2".into()));
    }

    #[test]
    fn a_refusal_before_the_prompt_is_not_about_the_name() {
        let mut id = Identity::default();
        id.on_sent("alice");
        let full = notice(&vocabulary::refusal("the server is full (2 users)"));
        assert_eq!(id.on_received(&full), NameEvent::Unchanged);
    }

    #[test]
    fn generated_name_is_read_from_the_welcome() {
        let mut id = greeted();
        id.on_sent("");
        assert_eq!(
            id.on_received(&welcome("guest-1234")),
            NameEvent::Accepted("guest-1234".into())
        );
    }

    #[test]
    fn a_user_saying_welcome_is_not_an_acceptance() {
        let mut id = greeted();
        id.on_sent("alice");
        assert_eq!(id.on_received("🦊 bob: Welcome, alice! You are in."), NameEvent::Unchanged);
        assert_eq!(id.me(), None);
    }

    #[test]
    fn nick_is_confirmed_by_the_servers_notice() {
        let mut id = greeted();
        id.on_sent("alice");
        id.on_received(&welcome("alice"));
        id.on_sent("/nick Alicia");
        assert_eq!(id.on_received("🦊 bob: Alicia is a nice name"), NameEvent::Unchanged);
        assert_eq!(
            id.on_received(&notice(&vocabulary::refusal("that name is taken"))),
            NameEvent::Unchanged
        );
        let renamed = notice(&vocabulary::renamed(&Name::parse("Alicia").expect("valid")));
        assert_eq!(id.on_received(&renamed), NameEvent::Accepted("Alicia".into()));
        assert_eq!(id.me(), Some("Alicia"));
    }

    fn now_in(room: &str) -> String {
        notice(&vocabulary::now_in(&RoomName::parse(room).expect("valid")))
    }

    #[test]
    fn the_room_is_the_lobby_until_the_server_says_otherwise() {
        let mut id = greeted();
        id.on_sent("alice");
        id.on_received(&welcome("alice"));
        assert_eq!(id.room(), LOBBY);
        id.on_sent("/join #rust");
        assert_eq!(id.room(), LOBBY, "what we type moves us nowhere");
        assert_eq!(id.on_received(&now_in("#rust")), NameEvent::Unchanged);
        assert_eq!(id.room(), "#rust");
        let renamed = notice(&vocabulary::renamed(&Name::parse("Alicia").expect("valid")));
        id.on_received(&renamed);
        assert_eq!((id.me(), id.room()), (Some("Alicia"), "#rust"), "a rename keeps the room");
    }

    #[test]
    fn only_the_servers_notice_moves_us() {
        let mut id = greeted();
        id.on_sent("alice");
        id.on_received(&welcome("alice"));
        id.on_received("🦊 bob: *** You are now in #trap.");
        id.on_received(&format!("[#rust] 🦊 bob: {}", now_in("#trap")));
        assert_eq!(id.room(), LOBBY);
    }

    #[test]
    fn the_rooms_we_are_in_follow_joins_and_parts() {
        let mut id = greeted();
        id.on_sent("alice");
        id.on_received(&welcome("alice"));
        let rust = RoomName::parse("#rust").expect("valid");
        id.on_received(&notice(&vocabulary::joined(&rust, "Nobody else is here yet.")));
        id.on_received(&now_in("#rust"));
        id.on_received(&now_in("#Quiet"));
        assert_eq!(id.rooms(), ["#lobby", "#rust", "#Quiet"]);
        id.on_received(&notice(&vocabulary::left(&RoomName::parse("#quiet").expect("valid"))));
        id.on_received(&format!("[#rust] 🦊 bob: {}", now_in("#trap")));
        assert_eq!(
            id.rooms(),
            ["#lobby", "#rust"],
            "the same room in any case; speech is not news"
        );
    }

    #[test]
    fn no_room_before_we_are_named() {
        let mut id = greeted();
        id.on_received(&now_in("#rust"));
        assert_eq!(id.room(), LOBBY);
    }
}
