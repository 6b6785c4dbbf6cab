//! Quoting the caller's text into a confirmation question: one value on one line, whatever it
//! holds, so that no value can forge a line of the question or hide part of it.

use std::fmt::Write as _;

/// The longest value quoted whole, in characters; longer ones are shortened with their length.
pub const MAX_VALUE_CHARS: usize = 60;

/// A value from the caller, quoted: see [`quote_bounded`].
pub fn quote(text: &str) -> String {
    quote_bounded(text, MAX_VALUE_CHARS)
}

/// `text` in double quotes with quotes, backslashes, control characters, line and paragraph
/// separators and bidirectional or invisible formatting characters escaped (`\n`, `\u{202e}`),
/// so that it reads as one value on one line; past `max` characters it is shortened and its
/// length given: `"abc…" (1200 characters)`.
pub fn quote_bounded(text: &str, max: usize) -> String {
    let total = text.chars().count();
    let mut quoted = String::from("\"");
    for c in text.chars().take(max) {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() || is_format(c) => {
                let _ = write!(quoted, "\\u{{{:x}}}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    if total > max {
        let _ = write!(quoted, "…\" ({total} characters)");
    } else {
        quoted.push('"');
    }
    quoted
}

/// Characters that move or hide text without showing themselves: line and paragraph separators,
/// bidirectional controls, zero-width characters, the byte-order mark.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_shortens_long_text_with_its_length() {
        assert_eq!(quote_bounded("abcdef", 3), "\"abc…\" (6 characters)");
        assert_eq!(quote_bounded("a\\b", 10), "\"a\\\\b\"");
        assert_eq!(
            quote_bounded("\u{0}\u{7f}\u{feff}", 10),
            "\"\\u{0}\\u{7f}\\u{feff}\""
        );
    }
}
