//! Free text that people read: titles, sources, dataset names, labels, actor names.
//!
//! Such text must show something. A title made only of zero-width joiners, of spaces, or of
//! combining marks with nothing to combine with is accepted by a length check but shows as
//! nothing in a list of releases or an audit log. And control or text-direction characters
//! change how the text around them displays (an RTL override in a title would make an audit
//! log lie).
//!
//! The classification below is written out by hand rather than taken from a Unicode table
//! crate: it needs only a few ranges, all of them stable (whitespace and control from the
//! standard library, the format characters (`Cf`), the generic combining-mark blocks, the
//! variation selectors and the blank letters that fonts draw as nothing). A mark of a
//! particular script (a Devanagari vowel sign, say) counts as visible: fonts draw it on a
//! dotted circle when it stands alone.

/// Characters that change how text displays without being seen: control characters and the
/// bidirectional-text controls.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that draw nothing on their own: whitespace, controls, format characters
/// (zero-width space and joiners, soft hyphen, word joiner, BOM, tags...), combining marks
/// of the generic blocks, variation selectors, and blank letters (Hangul fillers, the blank
/// Braille pattern).
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            // Format characters (General_Category Cf).
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
                // Combining marks of the generic blocks, and the grapheme joiner.
                | '\u{0300}'..='\u{036F}'
                | '\u{0483}'..='\u{0489}'
                | '\u{1AB0}'..='\u{1AFF}'
                | '\u{1DC0}'..='\u{1DFF}'
                | '\u{20D0}'..='\u{20FF}'
                | '\u{FE20}'..='\u{FE2F}'
                // Variation selectors (including the Mongolian ones).
                | '\u{180B}'..='\u{180D}'
                | '\u{180F}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{E0100}'..='\u{E01EF}'
                // Letters and symbols drawn blank.
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FFA0}'
        )
}

/// True when `s` has at least one character that draws something.
pub fn has_visible(s: &str) -> bool {
    s.chars().any(|c| !is_invisible(c))
}

/// The rule every displayed text follows: at most `max` characters, none hidden, at least
/// one visible; the error says which rule `s` breaks.
pub fn check_display_text(s: &str, max: usize) -> Result<(), String> {
    if s.chars().count() > max || s.chars().any(is_hidden) {
        return Err(format!(
            "must be at most {max} characters without control or text-direction characters"
        ));
    }
    if !has_visible(s) {
        return Err(
            "must contain at least one visible character (not only spaces, zero-width or other invisible characters)"
                .into(),
        );
    }
    Ok(())
}

/// How many bytes of an input value an error message quotes at most.
pub const QUOTE: usize = 200;

/// `s` as an error message quotes it: whole if it has at most `max` bytes, else its first
/// `max` bytes at most, cut on a character boundary, then `… (N bytes)` with its whole
/// length. Every message that quotes input goes through here (with [`QUOTE`]), so that a
/// value of a gigabyte makes an error of a few hundred bytes, not a copy of itself.
pub fn quote_at_most(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &s[..cut], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_on_a_character_boundary() {
        assert_eq!(quote_at_most("short", 200), "short");
        assert_eq!(quote_at_most(&"x".repeat(200), 200), "x".repeat(200));
        assert_eq!(
            quote_at_most(&"x".repeat(5_000_000), 200),
            format!("{}… (5000000 bytes)", "x".repeat(200))
        );
        // "é" is two bytes: 199 bytes of `a` then `é` would cut it in half.
        let s = format!("{}é{}", "a".repeat(199), "b".repeat(100));
        assert_eq!(quote_at_most(&s, 200), format!("{}… (301 bytes)", "a".repeat(199)));
        assert_eq!(quote_at_most("漢字", 4), "漢… (6 bytes)");
        assert_eq!(quote_at_most("漢字", 2), "… (6 bytes)");
    }

    #[test]
    fn visibly_empty_text_is_told_apart() {
        for empty in [
            "",
            " \u{00A0}\u{3000}",
            "\u{200D}\u{200D}\u{200D}",
            "\u{200B}\u{2060}\u{FEFF}",
            "\u{00AD}",
            "\u{0301}\u{0308}\u{20DD}",
            "\u{FE0F}\u{E0100}",
            "\u{3164}\u{115F}\u{FFA0}\u{2800}",
            "\u{E0041}\u{E007F}",
            "\u{034F}\u{180E}",
        ] {
            assert!(!has_visible(empty), "{empty:?}");
            assert!(
                check_display_text(empty, 100).unwrap_err().contains("visible"),
                "{empty:?}"
            );
        }
        for shown in [
            "a",
            "\u{200D}x",
            "é",
            "e\u{0301}",
            "무역",
            "٣",
            "€",
            "🙂\u{FE0F}",
            "\u{0915}\u{093F}",
        ] {
            assert!(has_visible(shown), "{shown:?}");
            assert!(check_display_text(shown, 100).is_ok(), "{shown:?}");
        }
    }

    #[test]
    fn hidden_characters_and_length_are_refused() {
        assert!(check_display_text("a\u{202E}b", 100)
            .unwrap_err()
            .contains("text-direction"));
        assert!(check_display_text("a\u{0}b", 100).is_err());
        assert!(check_display_text(&"x".repeat(101), 100).is_err());
        assert!(check_display_text(&"x".repeat(100), 100).is_ok());
    }
}
