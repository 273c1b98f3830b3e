//! Reading the server's lines as text: words, speakers, commands.
//!
//! Pure string rules shared by [`crate::identity`] and [`crate::display`]:
//! whether a line contains a word (case-insensitive, whole words only), who
//! spoke a chat line (`🦊 alice: hi`, `🦊 * alice waves`,
//! `🦊 alice (private): psst`) and what they said, and the target of a
//! `/nick` command. All take text whose escapes are already stripped.

/// True when `word` occurs in `text` ignoring case, not as part of a longer
/// word: `Bob` is in `hi bob!` but not in `bobcat`.
pub fn contains_word(text: &str, word: &str) -> bool {
    let text = text.to_lowercase();
    let word = word.to_lowercase();
    if word.is_empty() {
        return false;
    }
    text.match_indices(&word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The speaker and the text of a chat line, action or private message;
/// `None` for notices (`*** `), our own private messages (`-> `) and
/// anything else that has no speaker.
pub fn speaker_and_text(line: &str) -> Option<(&str, &str)> {
    if line.starts_with("*** ") || line.starts_with("-> ") {
        return None;
    }
    let rest = skip_emoji(line);
    if let Some(action) = rest.strip_prefix("* ") {
        return Some(action.split_once(' ').unwrap_or((action, "")));
    }
    let (head, text) = rest.split_once(": ")?;
    let speaker = head.strip_suffix(" (private)").unwrap_or(head);
    let one_word = !speaker.is_empty() && !speaker.contains(char::is_whitespace);
    one_word.then_some((speaker, text))
}

/// Skips a leading theme emoji: a first word with no letters or digits.
fn skip_emoji(line: &str) -> &str {
    match line.split_once(' ') {
        Some((first, rest)) if !first.is_empty() && !first.chars().any(char::is_alphanumeric) => {
            rest
        }
        _ => line,
    }
}

/// The new name in `/nick NEW`.
pub fn strip_nick_command(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("/nick"), Some(new)) => Some(new),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_whole_and_ignoring_case() {
        assert!(contains_word("hi Bob!", "bob"));
        assert!(contains_word("@ALICE, look", "alice"));
        assert!(contains_word("bob", "bob"));
        assert!(contains_word("ask guest-12 now", "guest-12"));
        assert!(!contains_word("bobcat", "bob"));
        assert!(!contains_word("kebob", "bob"));
        assert!(!contains_word("bob_2", "bob"));
        assert!(!contains_word("anything", ""));
        assert!(contains_word("ÉMILE est là", "émile"));
    }

    #[test]
    fn speakers_of_chat_lines() {
        assert_eq!(speaker_and_text("🦊 alice: hi bob"), Some(("alice", "hi bob")));
        assert_eq!(speaker_and_text("🦊 * alice waves at bob"), Some(("alice", "waves at bob")));
        assert_eq!(speaker_and_text("🦊 alice (private): psst"), Some(("alice", "psst")));
        assert_eq!(speaker_and_text("👩‍🚀 carol: a: b"), Some(("carol", "a: b")));
        assert_eq!(speaker_and_text("alice: plain server"), Some(("alice", "plain server")));
        assert_eq!(speaker_and_text("📢 server: restart soon"), Some(("server", "restart soon")));
    }

    #[test]
    fn notices_and_own_lines_have_no_speaker() {
        assert_eq!(speaker_and_text("*** bob joined"), None);
        assert_eq!(speaker_and_text("-> bob: psst"), None);
        assert_eq!(speaker_and_text("Online now: alice bob"), None);
        assert_eq!(speaker_and_text("no colon here"), None);
    }

    #[test]
    fn nick_target() {
        assert_eq!(strip_nick_command("/nick Alicia"), Some("Alicia"));
        assert_eq!(strip_nick_command("/nick"), None);
        assert_eq!(strip_nick_command("nick Alicia"), None);
    }
}
