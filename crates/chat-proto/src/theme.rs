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
    /// The same colour for a web page (`#rrggbb`, the terminal's 256-colour value).
    pub css: &'static str,
}

macro_rules! theme {
    ($emoji:literal, $code:literal, $colour:literal, $css:literal) => {
        Theme { emoji: $emoji, sgr: concat!("38;5;", $code), colour: $colour, css: $css }
    };
}

/// Every theme a user can get. Each emoji and each colour appears once.
pub const THEMES: [Theme; 24] = [
    theme!("🦊", "208", "orange", "#ff8700"),
    theme!("🐸", "40", "green", "#00d700"),
    theme!("🐳", "33", "blue", "#0087ff"),
    theme!("🦄", "213", "pink", "#ff87ff"),
    theme!("🐝", "220", "yellow", "#ffd700"),
    theme!("🐙", "129", "purple", "#af00ff"),
    theme!("🦁", "178", "gold", "#d7af00"),
    theme!("🐧", "45", "cyan", "#00d7ff"),
    theme!("🍄", "196", "red", "#ff0000"),
    theme!("🌵", "34", "forest", "#00af00"),
    theme!("🐢", "71", "olive", "#5faf5f"),
    theme!("🦉", "137", "brown", "#af875f"),
    theme!("🐬", "39", "sky", "#00afff"),
    theme!("🌻", "226", "lemon", "#ffff00"),
    theme!("🍇", "98", "violet", "#875fd7"),
    theme!("🦋", "51", "aqua", "#00ffff"),
    theme!("🐞", "160", "crimson", "#d70000"),
    theme!("🍀", "118", "lime", "#87ff00"),
    theme!("🦩", "205", "rose", "#ff5faf"),
    theme!("🐼", "250", "silver", "#bcbcbc"),
    theme!("🦀", "202", "coral", "#ff5f00"),
    theme!("🐋", "27", "navy", "#005fff"),
    theme!("🌸", "218", "blossom", "#ffafd7"),
    theme!("🦜", "49", "teal", "#00ffaf"),
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
