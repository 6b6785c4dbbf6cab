//! A message's text made safe to hand an assistant: invisible and direction-changing characters
//! stripped (before and after entity decoding), BBCode turned into readable text (or kept, with
//! `FORMAT: "bbcode"`), what a reader should know said in flags, and the length bounded — never
//! cut mid-character. Reference: bitrix24-chat-methods.md §26.

use super::Format;

/// The longest text given, in characters; longer ones are cut and say so (`text_truncated`).
pub const MAX_TEXT_CHARS: usize = 4000;

/// The flags a message can carry, as the tools name them.
pub mod flag {
    /// A system message (author 0): the portal's own words about an event.
    pub const SYSTEM: &str = "system_message";
    /// `[send=…]` or `[put=…]`: a button that sends or types a command when clicked.
    pub const ACTION: &str = "action_button";
    /// `[url=X]Y[/url]` whose text Y is not its target X.
    pub const LINK_TEXT_DIFFERS: &str = "link_text_differs";
    /// `[user=all]`: notifies everyone in the chat.
    pub const MENTIONS_ALL: &str = "mentions_everyone";
    /// Text made hard to see: a tiny `[size=…]` or a `[color=…]`.
    pub const HIDDEN_FORMATTING: &str = "hidden_formatting";
    /// Invisible or direction-changing characters were removed.
    pub const INVISIBLE_REMOVED: &str = "invisible_characters_removed";
    /// A rich attachment (`ATTACH`) not shown in the text.
    pub const ATTACHMENT: &str = "attachment";
    /// Buttons (`KEYBOARD` or `MENU`) not shown in the text.
    pub const KEYBOARD: &str = "keyboard";
}

/// A cleaned text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cleaned {
    pub text: String,
    /// Cut at [`MAX_TEXT_CHARS`].
    pub truncated: bool,
    /// From [`flag`], each once, in the order above.
    pub flags: Vec<&'static str>,
}

/// `raw` (the portal's text) as the tools give it, with the client's `secrets` redacted.
pub fn clean(raw: &str, format: Format, secrets: &[String]) -> Cleaned {
    // Skeleton: replaced by the full rules.
    let _ = format;
    let text: String = raw.chars().take(MAX_TEXT_CHARS).collect();
    Cleaned {
        text: crate::bitrix::untrusted::scrub(&text, secrets),
        truncated: raw.chars().count() > MAX_TEXT_CHARS,
        flags: Vec::new(),
    }
}

/// The first non-empty line of `raw` as plain text, invisible characters stripped, at most
/// `max_chars` characters: for quoting a message in a confirmation question (which quotes and
/// marks it further).
pub fn first_line(raw: &str, max_chars: usize, secrets: &[String]) -> String {
    let cleaned = clean(raw, Format::Plain, secrets);
    cleaned
        .text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default()
        .chars()
        .take(max_chars)
        .collect()
}

/// A name, title or file name from the portal: invisible and direction-changing characters
/// stripped, line breaks and control characters flattened to spaces, secrets redacted, at most
/// `max_chars` characters (cut with `…`).
pub fn name(raw: &str, max_chars: usize, secrets: &[String]) -> String {
    // Skeleton: replaced by the full rules.
    crate::bitrix::untrusted::sanitize(raw, secrets, max_chars)
}
