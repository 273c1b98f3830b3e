//! Who we are in the room, learnt from the conversation with the server.
//!
//! The wire has no structured "name accepted" message, only lines meant for
//! people, so [`Identity`] reads them the way a person would: the first line
//! that contains the word `name` is the server's prompt; once we have sent a
//! name, a line with the word `welcome` means it was accepted, and a line
//! with the word `name` means it was refused (`Sorry, that name is taken`,
//! `Choose another name:`; a line before a bare prompt is the reason).
//! Later, `/nick NEW` followed by a notice naming `NEW` renames us. The name
//! is what mention highlighting looks for and piped mode waits for; a server
//! that words things differently costs only the highlighting and a short
//! wait.

use crate::text::{contains_word, strip_nick_command};

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
    /// The last line received after sending the candidate: a refusal's reason.
    reason: Option<String>,
    me: Option<String>,
    pending_nick: Option<String>,
}

impl Identity {
    /// Our accepted name, once the server has welcomed us.
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// Records a line we sent: a name attempt before we are named, a
    /// possible `/nick` afterwards.
    pub fn on_sent(&mut self, line: &str) {
        if self.me.is_none() {
            self.candidate = Some(line.trim().to_owned());
            self.reason = None;
        } else if let Some(new) = strip_nick_command(line) {
            self.pending_nick = Some(new.to_owned());
        }
    }

    /// Reads a received line (escapes already stripped) for news about our name.
    pub fn on_received(&mut self, plain: &str) -> NameEvent {
        if self.me.is_some() {
            return self.nick_change(plain);
        }
        if !self.prompt_seen {
            // The greeting may say "welcome" too: nothing counts before the prompt.
            self.prompt_seen = contains_word(plain, "name");
            return NameEvent::Unchanged;
        }
        let Some(candidate) = self.candidate.take() else {
            return NameEvent::Unchanged;
        };
        if contains_word(plain, "welcome") {
            let name = accepted_name(plain, &candidate);
            self.me = Some(name.clone());
            return NameEvent::Accepted(name);
        }
        if contains_word(plain, "name") {
            let reason = match self.reason.take() {
                Some(before) if is_prompt(plain) => before,
                _ => plain.to_owned(),
            };
            return NameEvent::Refused { name: candidate, reason: tidy_reason(&reason) };
        }
        self.reason = Some(plain.to_owned());
        self.candidate = Some(candidate);
        NameEvent::Unchanged
    }

    fn nick_change(&mut self, plain: &str) -> NameEvent {
        let confirmed = plain.starts_with("*** ")
            && self.pending_nick.as_deref().is_some_and(|new| contains_word(plain, new));
        match self.pending_nick.take() {
            Some(new) if confirmed => {
                self.me = Some(new.clone());
                NameEvent::Accepted(new)
            }
            pending => {
                self.pending_nick = pending;
                NameEvent::Unchanged
            }
        }
    }
}

/// A line that asks for something: it ends in `:` or `?`.
fn is_prompt(line: &str) -> bool {
    line.trim_end().ends_with([':', '?'])
}

/// A notice as an error reason: no `*** ` marker, no final full stop.
fn tidy_reason(line: &str) -> String {
    let line = line.trim();
    let line = line.strip_prefix("*** ").unwrap_or(line);
    line.trim_end_matches('.').to_owned()
}

/// The name a welcome line names: the one we sent when the line contains it,
/// else (the server chose one, as for an empty name) the word after `welcome`.
fn accepted_name(welcome: &str, candidate: &str) -> String {
    if !candidate.is_empty() && contains_word(welcome, candidate) {
        return candidate.to_owned();
    }
    word_after_welcome(welcome).unwrap_or(candidate).to_owned()
}

fn word_after_welcome(line: &str) -> Option<&str> {
    // ASCII lowercasing keeps byte offsets, so the index is valid in `line`.
    let at = line.to_ascii_lowercase().find("welcome")? + "welcome".len();
    let word = line[at..]
        .trim_start_matches([',', ' '])
        .split_whitespace()
        .next()?
        .trim_end_matches(['!', ',', '.', ';', ':']);
    (!word.is_empty()).then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What chat-server says, in order.
    const GREETING: &str = "*** Welcome to the chat server!";
    const PROMPT: &str = "*** What is your name? (letters and digits, no spaces)";

    fn greeted() -> Identity {
        let mut id = Identity::default();
        assert_eq!(id.on_received(GREETING), NameEvent::Unchanged);
        assert_eq!(id.on_received(PROMPT), NameEvent::Unchanged);
        id
    }

    #[test]
    fn welcome_after_a_name_accepts_it() {
        let mut id = greeted();
        id.on_sent("alice");
        let event = id.on_received("*** Welcome, alice! You are 🦊 orange.");
        assert_eq!(event, NameEvent::Accepted("alice".into()));
        assert_eq!(id.me(), Some("alice"));
    }

    #[test]
    fn name_sent_before_the_greeting_arrives_still_counts() {
        let mut id = Identity::default();
        id.on_sent("alice");
        assert_eq!(id.on_received(GREETING), NameEvent::Unchanged);
        assert_eq!(id.on_received(PROMPT), NameEvent::Unchanged);
        let event = id.on_received("*** Welcome, alice!");
        assert_eq!(event, NameEvent::Accepted("alice".into()));
    }

    #[test]
    fn a_reason_naming_the_name_refuses() {
        let mut id = greeted();
        id.on_sent("bob");
        let event = id.on_received("*** Sorry, that name is taken.");
        let reason = "Sorry, that name is taken".to_owned();
        assert_eq!(event, NameEvent::Refused { name: "bob".into(), reason });
        assert_eq!(id.on_received("*** Choose another name:"), NameEvent::Unchanged);
        assert_eq!(id.me(), None);
        id.on_sent("bob2");
        assert_eq!(id.on_received("*** Welcome, bob2!"), NameEvent::Accepted("bob2".into()));
    }

    #[test]
    fn a_prompt_after_a_reason_refuses_with_that_reason() {
        let mut id = greeted();
        id.on_sent("root");
        assert_eq!(id.on_received("reserved, sorry"), NameEvent::Unchanged);
        let event = id.on_received("Your name?");
        let reason = "reserved, sorry".to_owned();
        assert_eq!(event, NameEvent::Refused { name: "root".into(), reason });
    }

    #[test]
    fn generated_name_is_read_from_the_welcome() {
        let mut id = greeted();
        id.on_sent("");
        let event = id.on_received("*** Welcome, guest-1234! Type /help.");
        assert_eq!(event, NameEvent::Accepted("guest-1234".into()));
    }

    #[test]
    fn welcome_without_a_name_sent_is_not_an_acceptance() {
        let mut id = greeted();
        assert_eq!(id.on_received("*** Welcome, everyone"), NameEvent::Unchanged);
        assert_eq!(id.me(), None);
    }

    #[test]
    fn nick_is_confirmed_by_a_notice() {
        let mut id = greeted();
        id.on_sent("alice");
        id.on_received("*** Welcome, alice!");
        id.on_sent("/nick Alicia");
        assert_eq!(id.on_received("🦊 bob: Alicia is a nice name"), NameEvent::Unchanged);
        assert_eq!(id.on_received("*** Sorry, that name is taken."), NameEvent::Unchanged);
        let event = id.on_received("*** You are now known as Alicia.");
        assert_eq!(event, NameEvent::Accepted("Alicia".into()));
        assert_eq!(id.me(), Some("Alicia"));
    }
}
