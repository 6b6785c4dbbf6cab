//! Characters a message must not carry into an assistant's context (§26's list: zero-width,
//! tag, bidi and variation-selector characters, plus other blank-looking ones and C0/C1 controls
//! but line feed and tab; line separators become line feeds), and
//! the HTML entities the portal may send, decoded once so that what they hide meets the same strip.

/// Whether `c` is invisible or changes direction: the runes `github/github-mcp-server` strips
/// (bitrix24-chat-methods.md §26).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}'
        | '\u{061c}'
        | '\u{00ad}'
        | '\u{feff}'
        | '\u{180e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{13441}'..='\u{13442}'
        | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{fe00}'..='\u{fe0f}'
        | '\u{e0100}'..='\u{e01ef}')
        || beyond_the_list(c)
}

/// Characters outside §26's list that show nothing either, the set the confirmation questions
/// drop (`confirm::targets`): the combining grapheme joiner, the Hangul and Khmer fillers, the
/// other Mongolian variation selectors, interlinear annotation marks, musical formatting
/// characters and the rest of the tag plane. A text made of them reads as blank to a person.
fn beyond_the_list(c: char) -> bool {
    matches!(c,
        '\u{034f}'
        | '\u{115f}'..='\u{1160}'
        | '\u{17b4}'..='\u{17b5}'
        | '\u{180b}'..='\u{180d}'
        | '\u{180f}'
        | '\u{3164}'
        | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}')
}

/// `text` without invisible characters and without control characters other than `\n` and `\t`
/// (`\r\n` and a lone `\r` become `\n`). `removed` is set when anything was dropped.
pub fn strip(text: &str, removed: &mut bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            // Line and paragraph separators break the line as a reader sees it: so they do here,
            // where quote marks and first lines are found.
            '\u{2028}' | '\u{2029}' => out.push('\n'),
            c if c.is_control() || is_invisible(c) => *removed = true,
            c => out.push(c),
        }
    }
    out
}

/// The longest entity decoded: `&#x10FFFF;` and `&#1114111;` are 10 bytes.
const MAX_ENTITY_BYTES: usize = 10;

/// `text` with `&amp; &lt; &gt; &quot; &#39; &apos;` and numeric entities (`&#NN;`, `&#xNN;`)
/// decoded, once: `&amp;lt;` gives `&lt;`. What an entity gives is not filtered here: run
/// [`strip`] again on the result. Anything else, an unknown name or a number that is no character,
/// stays as it was written.
pub fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match entity(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an entity at the start of `text` (which starts with `&`) stands for, and the
/// entity's length in bytes.
fn entity(text: &str) -> Option<(char, usize)> {
    let window = &text.as_bytes()[..text.len().min(MAX_ENTITY_BYTES)];
    let semi = window.iter().position(|&b| b == b';')?;
    // `&` and `;` are ASCII, so both ends are character boundaries.
    let body = &text[1..semi];
    let c = match body {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => numeric(body)?,
    };
    Some((c, semi + 1))
}

/// `#NN` or `#xNN` as a character.
fn numeric(body: &str) -> Option<char> {
    let number = body.strip_prefix('#')?;
    let (digits, radix) = match number.strip_prefix(['x', 'X']) {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    // from_str_radix accepts a leading `+`; an entity does not.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    char::from_u32(u32::from_str_radix(digits, radix).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_character_is_invisible_and_its_neighbours_are_not() {
        let listed = [
            0x200b..=0x200f,
            0x061c..=0x061c,
            0x00ad..=0x00ad,
            0xfeff..=0xfeff,
            0x180e..=0x180e,
            0x2060..=0x2064,
            0x13441..=0x13442,
            0xe0001..=0xe0001,
            0xe0020..=0xe007f,
            0x202a..=0x202e,
            0x2066..=0x2069,
            0xfe00..=0xfe0f,
            0xe0100..=0xe01ef,
        ];
        for range in listed {
            let (first, last) = (*range.start(), *range.end());
            for code in range {
                assert!(is_invisible(char::from_u32(code).unwrap()), "{code:x}");
            }
            for neighbour in [first - 1, last + 1] {
                let c = char::from_u32(neighbour).unwrap();
                assert!(!is_invisible(c) || beyond_the_list(c), "{neighbour:x}");
            }
        }
        assert!(!is_invisible('a') && !is_invisible('ж') && !is_invisible('😀'));
    }

    #[test]
    fn blank_looking_characters_beyond_the_list_go_too_and_separators_break_lines() {
        let mut removed = false;
        let out = strip(
            "a\u{34f}b\u{115f}\u{1160}\u{3164}\u{ffa0}c\u{180b}\u{180f}\u{17b4}d\u{fff9}e\u{1d173}f\u{e0000}\u{e0fff}g",
            &mut removed,
        );
        assert_eq!(out, "abcdefg");
        assert!(removed);
        for visible in [
            '\u{3163}',
            '\u{3165}',
            '\u{ff9f}',
            '\u{ffa1}',
            '\u{1d172}',
            '\u{1d17b}',
        ] {
            assert!(!is_invisible(visible), "{visible:?}");
        }
        let mut removed = false;
        assert_eq!(strip("a\u{2028}b\u{2029}c", &mut removed), "a\nb\nc");
        assert!(!removed, "a line break is not a removal");
    }

    #[test]
    fn controls_go_line_feeds_and_tabs_stay_and_carriage_returns_become_line_feeds() {
        let mut removed = false;
        let out = strip("a\r\nb\rc\td\u{1b}[31me\u{7f}\u{85}\u{0}f\n", &mut removed);
        assert_eq!(out, "a\nb\nc\td[31mef\n");
        assert!(removed);

        let mut removed = false;
        assert_eq!(strip("plain\r\ntext", &mut removed), "plain\ntext");
        assert!(!removed, "a line ending is not a removal");
    }

    #[test]
    fn entities_are_decoded_once() {
        assert_eq!(
            decode_entities("&amp; &lt;b&gt; &quot;q&quot; &#39;s&#39; &apos;"),
            "& <b> \"q\" 's' '"
        );
        assert_eq!(decode_entities("&#65;&#x42;&#X43;&#1078;"), "ABCж");
        assert_eq!(decode_entities("&amp;lt; &amp;#x202E;"), "&lt; &#x202E;");
        assert_eq!(decode_entities("&#x202E;&#8203;"), "\u{202e}\u{200b}");
    }

    #[test]
    fn what_is_not_an_entity_stays_as_written() {
        for text in [
            "AT&T",
            "&",
            "&;",
            "&#;",
            "&#x;",
            "&#+65;",
            "&#xD800;",
            "&#x110000;",
            "&#99999999999;",
            "&nbsp;",
            "&AMP;",
            "&#65",
            "&#x1F600 ;",
            "a & b; c",
        ] {
            assert_eq!(decode_entities(text), text);
        }
        assert_eq!(decode_entities("&&amp;&"), "&&&");
        assert_eq!(decode_entities("ж&amp;ж"), "ж&ж");
    }
}
