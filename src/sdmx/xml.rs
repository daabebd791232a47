//! Small helpers for writing XML: escaping, namespaces, header times.

use chrono::{DateTime, SecondsFormat, Utc};

pub const MESSAGE_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/message";
pub const COMMON_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/common";
pub const STRUCTURE_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/structure";
pub const GENERIC_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/data/generic";
pub const SS_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v2_1/data/structurespecific";
pub const MESSAGE3_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v3_0/message";
pub const COMMON3_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v3_0/common";
pub const SS3_NS: &str = "http://www.sdmx.org/resources/sdmxml/schemas/v3_0/data/structurespecific";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Text and attribute values with `& < > " '` escaped; characters XML 1.0 cannot carry at
/// all (controls other than tab, newline and carriage return) are replaced by U+FFFD.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'') || is_forbidden(c);
    if !s.chars().any(needs) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_forbidden(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn is_forbidden(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// A time as `xs:dateTime` in UTC.
pub fn header_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_controls() {
        assert_eq!(escape("a<b & \"c\"'\u{1}"), "a&lt;b &amp; &quot;c&quot;&apos;\u{FFFD}");
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
    }
}
