//! Who we are in the room, learnt from the conversation with the server.
//!
//! [`Identity`] reads received lines through [`chat_proto::classify`], the
//! vocabulary the server writes with: after the name prompt, a welcome
//! naming us means our name was accepted, a refusal means it was not (with
//! the server's reason); later, the confirmation of `/nick` renames us. The
//! name is what mention highlighting looks for and piped mode waits for; a
//! server that words things differently costs only the highlighting and a
//! short wait.

use chat_proto::Heard;

/// What a received line told us about our name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameEvent {
    /// Nothing new.
    Unchanged,
    /// The server accepted this name (on joining or after `/nick`).
    Accepted(String),
    /// The server refused the name we sent and asks again.
    Refused { name: String, reason: String },
}

/// Our name, or where we are in obtaining one.
#[derive(Debug, Default)]
pub struct Identity {
    /// Whether the server has asked for a name yet.
    prompt_seen: bool,
    /// The name sent and not yet answered.
    candidate: Option<String>,
    me: Option<String>,
}

impl Identity {
    /// Our accepted name, once the server has welcomed us.
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// Records a line we sent: a name attempt, before we are named.
    pub fn on_sent(&mut self, line: &str) {
        if self.me.is_none() {
            self.candidate = Some(line.trim().to_owned());
        }
    }

    /// Reads a received line (escapes already stripped) for news about our name.
    pub fn on_received(&mut self, plain: &str) -> NameEvent {
        match chat_proto::classify(plain) {
            Heard::NamePrompt => self.prompt_seen = true,
            Heard::Welcome { name } if self.me.is_none() && self.prompt_seen => {
                self.candidate = None;
                self.me = Some(name.to_owned());
                return NameEvent::Accepted(name.to_owned());
            }
            Heard::Renamed { name } if self.me.is_some() => {
                self.me = Some(name.to_owned());
                return NameEvent::Accepted(name.to_owned());
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
    use chat_proto::{Name, THEMES};

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
}
