//! What a client lets through to its terminal from a line it received.
//!
//! The client trusts no server: a received line keeps its SGR colour codes
//! (`ESC [ digits ; ... m`) and loses every other escape sequence (cursor
//! moves, screen clears, OSC titles and hyperlinks, ...) whole, and every
//! control or invisible character that [`crate::sanitize`] removes.

use crate::sanitize::sanitize_text;

const ESC: char = '\u{1b}';
const BEL: char = '\u{7}';
/// SGR sequences longer than this are not colour but an attack on the parser.
const MAX_SGR_PARAMS: usize = 32;

/// Returns `line` safe to print: only SGR colour escapes survive.
pub fn terminal_safe(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut text_start = 0;
    let mut at = 0;
    while let Some(offset) = line[at..].find(ESC) {
        let esc = at + offset;
        out.push_str(&sanitize_text(&line[text_start..esc]));
        let end = escape_end(line, esc);
        if let Some(sgr) = sgr_sequence(&line[esc..end]) {
            out.push_str(sgr);
        }
        at = end;
        text_start = end;
    }
    out.push_str(&sanitize_text(&line[text_start..]));
    out
}

/// Removes every escape sequence, colour included (for `--no-color`).
pub fn strip_escapes(line: &str) -> String {
    let colored = terminal_safe(line);
    let mut out = String::with_capacity(colored.len());
    let mut at = 0;
    while let Some(offset) = colored[at..].find(ESC) {
        out.push_str(&colored[at..at + offset]);
        at = escape_end(&colored, at + offset);
    }
    out.push_str(&colored[at..]);
    out
}

/// The byte index just past the escape sequence starting at `esc`.
fn escape_end(line: &str, esc: usize) -> usize {
    let rest = &line[esc + ESC.len_utf8()..];
    let mut chars = rest.char_indices();
    let base = esc + ESC.len_utf8();
    match chars.next() {
        None => base,
        // CSI: parameters and intermediates, then one final byte in @..~.
        Some((_, '[')) => {
            for (i, c) in chars {
                if ('@'..='~').contains(&c) {
                    return base + i + c.len_utf8();
                }
                if !(' '..='?').contains(&c) {
                    return base + i; // malformed: drop up to here
                }
            }
            line.len()
        }
        // OSC, DCS, SOS, PM, APC: a string ended by BEL or ESC \.
        Some((_, ']' | 'P' | 'X' | '^' | '_')) => {
            let mut previous_esc = false;
            for (i, c) in chars {
                if c == BEL || (previous_esc && c == '\\') {
                    return base + i + c.len_utf8();
                }
                previous_esc = c == ESC;
            }
            line.len()
        }
        // Two-character escapes (ESC c, ESC 7, ...).
        Some((i, c)) => base + i + c.len_utf8(),
    }
}

fn sgr_sequence(seq: &str) -> Option<&str> {
    let params = seq.strip_prefix("\u{1b}[")?.strip_suffix('m')?;
    let is_sgr =
        params.len() <= MAX_SGR_PARAMS && params.bytes().all(|b| b.is_ascii_digit() || b == b';');
    is_sgr.then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_colour() {
        let line = "\x1b[38;5;208m🦊 alice: hi\x1b[0m";
        assert_eq!(terminal_safe(line), line);
        assert_eq!(strip_escapes(line), "🦊 alice: hi");
    }

    #[test]
    fn drops_every_other_escape_whole() {
        assert_eq!(terminal_safe("a\x1b[2Jb\x1b[1;1Hc"), "abc");
        assert_eq!(terminal_safe("x\x1b]0;pwned\x07y"), "xy");
        assert_eq!(terminal_safe("x\x1b]8;;http://e\x1b\\link\x1b]8;;\x1b\\y"), "xlinky");
        assert_eq!(terminal_safe("x\x1bcy\x1b"), "xy");
        assert_eq!(terminal_safe("\r\x08\x07\u{202E}ok\u{9b}2J"), "ok2J");
    }

    proptest! {
        #[test]
        fn only_sgr_escapes_survive(text in any::<String>()) {
            let safe = terminal_safe(&text);
            let mut at = 0;
            while let Some(offset) = safe[at..].find(ESC) {
                let esc = at + offset;
                let end = escape_end(&safe, esc);
                prop_assert!(sgr_sequence(&safe[esc..end]).is_some(), "{:?}", &safe[esc..end]);
                at = end;
            }
            prop_assert!(!safe.chars().any(|c| c.is_control() && c != ESC));
            prop_assert!(!strip_escapes(&text).contains(ESC));
        }
    }
}
