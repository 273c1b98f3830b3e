//! What user-supplied text may contain before the server shows it to anyone.
//!
//! Text from a client is reduced to printable characters: no C0 or C1
//! controls (a tab becomes a space), hence no ESC and no terminal escape
//! sequence; no bidi overrides or isolates; no invisible format characters
//! (Unicode Cf), line or paragraph separators (Zl, Zp). Other spaces (Zs)
//! become a plain space. A zero-width joiner survives only between two
//! pictographs, where it glues an emoji sequence together. Only the server
//! adds ANSI colour, after sanitising.

use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

const ZERO_WIDTH_JOINER: char = '\u{200D}';

/// Returns `text` with every character a terminal could interpret, or that
/// hides or reorders text, removed.
pub fn sanitize_text(text: &str) -> String {
    // Most chat is printable ASCII, which needs no table lookups at all.
    if text.bytes().all(is_printable_ascii) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        let kept = match c {
            c if c.is_ascii() && is_printable_ascii(c as u8) => Some(c),
            '\t' => Some(' '),
            ZERO_WIDTH_JOINER => {
                let joins_emoji = previous.is_some_and(is_pictograph)
                    && chars.peek().is_some_and(|&n| is_pictograph(n));
                joins_emoji.then_some(c)
            }
            c if is_forbidden(c) => None,
            c if c.general_category() == GeneralCategory::SpaceSeparator => Some(' '),
            c => Some(c),
        };
        if let Some(k) = kept {
            out.push(k);
            previous = Some(k);
        }
    }
    out
}

fn is_printable_ascii(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte)
}

/// True for characters that never reach another user: controls, bidi and
/// other format characters, line and paragraph separators.
pub fn is_forbidden(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || is_invisible_filler(c)
}

/// Letters that render as nothing (Hangul fillers, the braille blank) and so
/// make a name or message look empty or like another.
fn is_invisible_filler(c: char) -> bool {
    matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}')
}

fn is_pictograph(c: char) -> bool {
    (c.is_emoji_char() && !c.is_ascii())
        || matches!(
            c.general_category(),
            GeneralCategory::OtherSymbol | GeneralCategory::ModifierSymbol
        )
        || c == '\u{FE0F}'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn removes_escape_sequences_and_controls() {
        assert_eq!(sanitize_text("a\x1b[31mred\x1b[0m\x07b"), "a[31mred[0mb");
        assert_eq!(sanitize_text("x\u{9b}31my"), "x31my");
        assert_eq!(sanitize_text("cr\rlf\nnul\0del\x7f"), "crlfnuldel");
    }

    #[test]
    fn tab_becomes_space_and_odd_spaces_are_plain() {
        assert_eq!(sanitize_text("a\tb\u{2003}c\u{A0}d"), "a b c d");
    }

    #[test]
    fn removes_bidi_and_invisible_format_characters() {
        let text = "\u{202E}evil\u{202C} \u{2066}x\u{2069} \u{200B}zw\u{FEFF} l\u{2028}p\u{2029}";
        assert_eq!(sanitize_text(text), "evil x zw lp");
        assert_eq!(sanitize_text("\u{3164}\u{115F}"), "");
    }

    #[test]
    fn zero_width_joiner_survives_only_inside_emoji() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(sanitize_text(family), family);
        assert_eq!(sanitize_text("a\u{200D}b"), "ab");
        assert_eq!(sanitize_text("\u{1F468}\u{200D}"), "\u{1F468}");
    }

    #[test]
    fn keeps_ordinary_text() {
        let text = "héllo wörld — 你好 🦀 ok!";
        assert_eq!(sanitize_text(text), text);
    }

    proptest! {
        #[test]
        fn output_never_contains_controls_bidi_or_format(text in any::<String>()) {
            let clean = sanitize_text(&text);
            for (i, c) in clean.char_indices() {
                prop_assert!(!c.is_control(), "control {:?} in {:?}", c, clean);
                let bidi_or_separator = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
                    | '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{2028}' | '\u{2029}');
                prop_assert!(!bidi_or_separator, "bidi or separator {:?} in {:?}", c, clean);
                if c.general_category() == GeneralCategory::Format {
                    prop_assert_eq!(c, ZERO_WIDTH_JOINER, "format char kept in {:?}", clean);
                    prop_assert!(i > 0 && i + c.len_utf8() < clean.len());
                }
            }
        }

        #[test]
        fn sanitising_is_idempotent(text in any::<String>()) {
            let once = sanitize_text(&text);
            prop_assert_eq!(sanitize_text(&once), once.clone());
        }

        #[test]
        fn bytes_from_the_wire_never_yield_escape(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let clean = sanitize_text(&String::from_utf8_lossy(&bytes));
            prop_assert!(!clean.bytes().any(|b| b == 0x1b || b < 0x20 || b == 0x7f));
        }
    }
}
