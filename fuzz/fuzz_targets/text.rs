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

// The oracle is deliberately not chat-proto's own filter: a bug there must show here.
#[path = "../../tests/support/terminal_oracle.rs"]
mod terminal_oracle;

use terminal_oracle::check_printable;

const ESC: char = '\u{1b}';

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

/// Panics unless `text` is printable by the terminal-safety oracle; with
/// `sgr_allowed`, ESC may start an SGR sequence.
fn assert_printable(text: &str, sgr_allowed: bool) {
    if let Err(why) = check_printable(text, sgr_allowed) {
        panic!("{why} in {text:?}");
    }
}
