//! Speaker themes: an emoji and an ANSI colour that mark each user's lines.
//!
//! The pool holds [`THEMES`]; the server hands out unused ones at random so
//! that voices stay easy to tell apart while the pool lasts.

/// An emoji and a 256-colour SGR foreground.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Theme {
    pub emoji: &'static str,
    /// SGR parameters for the foreground colour, e.g. `38;5;208`.
    pub sgr: &'static str,
    /// What the colour is called, for `/who` and the welcome line.
    pub colour: &'static str,
}

macro_rules! theme {
    ($emoji:literal, $code:literal, $colour:literal) => {
        Theme { emoji: $emoji, sgr: concat!("38;5;", $code), colour: $colour }
    };
}

/// Every theme a user can get. Each emoji and each colour appears once.
pub const THEMES: [Theme; 24] = [
    theme!("🦊", "208", "orange"),
    theme!("🐸", "40", "green"),
    theme!("🐳", "33", "blue"),
    theme!("🦄", "213", "pink"),
    theme!("🐝", "220", "yellow"),
    theme!("🐙", "129", "purple"),
    theme!("🦁", "178", "gold"),
    theme!("🐧", "45", "cyan"),
    theme!("🍄", "196", "red"),
    theme!("🌵", "34", "forest"),
    theme!("🐢", "71", "olive"),
    theme!("🦉", "137", "brown"),
    theme!("🐬", "39", "sky"),
    theme!("🌻", "226", "lemon"),
    theme!("🍇", "98", "violet"),
    theme!("🦋", "51", "aqua"),
    theme!("🐞", "160", "crimson"),
    theme!("🍀", "118", "lime"),
    theme!("🦩", "205", "rose"),
    theme!("🐼", "250", "silver"),
    theme!("🦀", "202", "coral"),
    theme!("🐋", "27", "navy"),
    theme!("🌸", "218", "blossom"),
    theme!("🦜", "49", "teal"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn pool_has_at_least_sixteen_distinct_themes() {
        assert!(THEMES.len() >= 16);
        let emoji: HashSet<_> = THEMES.iter().map(|t| t.emoji).collect();
        let colours: HashSet<_> = THEMES.iter().map(|t| t.sgr).collect();
        assert_eq!(emoji.len(), THEMES.len());
        assert_eq!(colours.len(), THEMES.len());
    }
}
