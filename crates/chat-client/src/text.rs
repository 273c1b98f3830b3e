//! Reading text for words: the rule mention highlighting uses.
//!
//! Whether a line contains a word (case-insensitive, whole words only).
//! Who spoke a line is [`chat_proto::classify`]'s business, not this one's.

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
}
