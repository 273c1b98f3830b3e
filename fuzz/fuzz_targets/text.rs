//! Fuzzes the text rules: `sanitize_text`, `terminal::terminal_safe`,
//! `terminal::strip_escapes`, `Name::parse` and the rendered chat line.
//!
//! The input bytes are decoded lossily, as the codec does with a client's
//! line. Checked on every input: nothing panics, and
//! - sanitised text holds no C0/C1 control (so no ESC), no DEL, no bidi or
//!   other format character (Cf), no line or paragraph separator (Zl, Zp),
//!   except a zero-width joiner between two pictographs; sanitising twice
//!   changes nothing;
//! - `terminal_safe` output obeys the same rule outside escape sequences,
//!   and every ESC in it starts an SGR sequence `ESC [ digits/; m`;
//! - `strip_escapes` output holds no ESC at all;
//! - a name that parses is 1 to 32 visible characters without spaces, obeys
//!   the sanitised-text rule, and parses again to itself;
//! - a chat line rendered from any text is one line ending in `\r\n` whose
//!   only escapes are SGR colour, and its plain variant has no ESC.
#![no_main]

use chat_proto::{Line, Name, NameKey, THEMES, sanitize_text, terminal};
use libfuzzer_sys::fuzz_target;
use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

const ESC: char = '\u{1b}';
const ZWJ: char = '\u{200D}';

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let clean = sanitize_text(&text);
    assert_printable(&clean, false);
    assert_eq!(sanitize_text(&clean), clean, "sanitising is not idempotent");

    let safe = terminal::terminal_safe(&text);
    assert_printable(&safe, true);

    let stripped = terminal::strip_escapes(&text);
    assert!(!stripped.contains(ESC), "ESC survived strip_escapes: {stripped:?}");
    assert_printable(&stripped, false);

    let _ = NameKey::of(&text);
    if let Ok(name) = Name::parse(&text) {
        let shown = name.as_str();
        let chars = shown.chars().count();
        assert!((1..=32).contains(&chars), "name of {chars} characters: {shown:?}");
        assert!(!shown.chars().any(char::is_whitespace), "space in name {shown:?}");
        assert_printable(shown, false);
        assert_eq!(Name::parse(shown).as_ref(), Ok(&name), "a valid name parses to itself");
        let theme = &THEMES[usize::from(data.first().copied().unwrap_or(0)) % THEMES.len()];
        let line = Line::chat(theme, &name, &clean);
        let colored = std::str::from_utf8(line.bytes(true)).expect("rendered lines are UTF-8");
        let body = colored.strip_suffix("\r\n").expect("a rendered line ends in CRLF");
        assert!(!body.contains(['\r', '\n']), "a second line in {colored:?}");
        assert_printable(body, true);
        assert!(!line.bytes(false).contains(&0x1b), "ESC in the plain variant");
    }
});

/// Panics unless `text` has only printable characters; with `sgr_allowed`,
/// ESC may start an SGR sequence, which is skipped.
fn assert_printable(text: &str, sgr_allowed: bool) {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ESC && sgr_allowed {
            i = sgr_end(&chars, i).unwrap_or_else(|| panic!("non-SGR escape in {text:?}"));
            continue;
        }
        assert!(!c.is_control(), "control {c:?} in {text:?}");
        match c.general_category() {
            GeneralCategory::Format => {
                let joins = c == ZWJ
                    && i > 0
                    && is_pictograph(chars[i - 1])
                    && chars.get(i + 1).is_some_and(|&n| is_pictograph(n));
                assert!(joins, "format character {c:?} in {text:?}");
            }
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                panic!("separator {c:?} in {text:?}")
            }
            _ => {}
        }
        i += 1;
    }
}

/// The index after the SGR sequence `ESC [ [0-9;]* m` starting at `esc`.
fn sgr_end(chars: &[char], esc: usize) -> Option<usize> {
    if chars.get(esc + 1) != Some(&'[') {
        return None;
    }
    let mut i = esc + 2;
    while chars.get(i).is_some_and(|c| c.is_ascii_digit() || *c == ';') {
        i += 1;
    }
    (chars.get(i) == Some(&'m')).then_some(i + 1)
}

/// Same rule as `chat_proto::sanitize`: what a zero-width joiner may glue.
fn is_pictograph(c: char) -> bool {
    (c.is_emoji_char() && !c.is_ascii())
        || matches!(
            c.general_category(),
            GeneralCategory::OtherSymbol | GeneralCategory::ModifierSymbol
        )
        || c == '\u{FE0F}'
}
