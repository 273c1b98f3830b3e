//! The terminal-safety oracle: whether text holds anything a terminal would act on other than
//! SGR colour. It is written apart from chat-proto's sanitiser on purpose, so that a bug there is
//! caught here rather than copied. Its one home is this file; `tests/abuse.rs` (received lines)
//! and the fuzz target `fuzz/fuzz_targets/text.rs` (the text rules) both include it by path,
//! since the fuzz crate is built outside the workspace.
//!
//! Printable means: no C0 or C1 control and no DEL (so no ESC, unless SGR colour is allowed and
//! the ESC starts `ESC [ digits/; m`), no format character (Cf, bidi controls included) and no
//! line or paragraph separator (Zl, Zp), except a zero-width joiner between two pictographs.

use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

/// Checks that `text` is printable; otherwise says what it found first. With `sgr_allowed`, an
/// ESC may start an SGR colour sequence `ESC [ digits/; m`, which is skipped; without, an ESC is
/// a control character like any other.
pub fn check_printable(text: &str, sgr_allowed: bool) -> Result<(), String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\x1b' && sgr_allowed {
            i = sgr_end(&chars, i).ok_or("an escape that is not SGR colour")?;
            continue;
        }
        if c.is_control() {
            return Err(format!("control character {c:?}"));
        }
        match c.general_category() {
            GeneralCategory::Format if !joins_pictographs(&chars, i) => {
                return Err(format!("format character {c:?}"));
            }
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                return Err(format!("separator {c:?}"));
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index after the SGR sequence `ESC [ [0-9;]* m` that starts at `esc`.
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

/// Whether `chars[i]` is a zero-width joiner between two pictographs.
fn joins_pictographs(chars: &[char], i: usize) -> bool {
    chars[i] == '\u{200D}'
        && i > 0
        && is_pictograph(chars[i - 1])
        && chars.get(i + 1).is_some_and(|&next| is_pictograph(next))
}

/// What a zero-width joiner may glue: an emoji or symbol (the rule chat-proto states).
fn is_pictograph(c: char) -> bool {
    (c.is_emoji_char() && !c.is_ascii())
        || matches!(
            c.general_category(),
            GeneralCategory::OtherSymbol | GeneralCategory::ModifierSymbol
        )
        || c == '\u{FE0F}'
}
