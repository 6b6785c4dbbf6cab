//! A message's text made safe to hand an assistant: invisible and direction-changing characters
//! stripped (before and after entity decoding), BBCode turned into readable text (or kept, with
//! `FORMAT: "bbcode"`), what a reader should know said in flags, secrets redacted, and the length
//! bounded — never cut mid-character. Reference: bitrix24-chat-methods.md §26.
//!
//! [`strip`] owns the characters, [`tag`] reads one BBCode tag, [`bbcode`] reads a whole text,
//! [`quote`] marks quoted lines.

mod bbcode;
mod quote;
mod strip;
mod tag;

use super::Format;
use crate::bitrix::untrusted::{REDACTED, scrub};

/// The longest text given, in characters; longer ones are cut and say so (`text_truncated`).
pub const MAX_TEXT_CHARS: usize = 4000;

/// How much of a text is read at all, in characters: markup, entities and stripped characters
/// take room, so several times what is given; past it, the rest is never looked at, and a 10 MB
/// text costs what a 32 KB one does.
const MAX_INPUT_CHARS: usize = 8 * MAX_TEXT_CHARS;

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
    /// Cut at [`MAX_TEXT_CHARS`] (or not read to its end).
    pub truncated: bool,
    /// From [`flag`], each once, in the order above.
    pub flags: Vec<&'static str>,
}

/// What the text itself shows; the read tools add the flags that come from a message's fields.
#[derive(Debug, Default)]
struct Flags {
    action_button: bool,
    link_text_differs: bool,
    mentions_everyone: bool,
    hidden_formatting: bool,
    invisible_removed: bool,
}

impl Flags {
    fn names(&self) -> Vec<&'static str> {
        [
            (self.action_button, flag::ACTION),
            (self.link_text_differs, flag::LINK_TEXT_DIFFERS),
            (self.mentions_everyone, flag::MENTIONS_ALL),
            (self.hidden_formatting, flag::HIDDEN_FORMATTING),
            (self.invisible_removed, flag::INVISIBLE_REMOVED),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}

/// `raw` (the portal's text) as the tools give it, with the client's `secrets` redacted. Flags
/// come from the BBCode in either format: `[send=…]` matters whether or not it is rendered.
pub fn clean(raw: &str, format: Format, secrets: &[String]) -> Cleaned {
    let (input, cut) = head(raw, MAX_INPUT_CHARS);
    let mut flags = Flags::default();
    let text = decoded(input, &mut flags.invisible_removed);
    let plain = bbcode::render(&text, &mut flags);
    let shown = match format {
        Format::Plain => quote::mark(&plain),
        Format::Bbcode => text,
    };
    let safe = redacted(&shown, cut, secrets);
    let (text, over) = capped(&safe, MAX_TEXT_CHARS);
    Cleaned {
        text,
        truncated: cut || over,
        flags: flags.names(),
    }
}

/// The first non-empty line of `raw` as plain text, invisible characters stripped, at most
/// `max_chars` characters: for quoting a message in a confirmation question (which quotes and
/// marks it further).
pub fn first_line(raw: &str, max_chars: usize, secrets: &[String]) -> String {
    let cleaned = clean(raw, Format::Plain, secrets);
    let line = cleaned
        .text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    capped(line, max_chars).0
}

/// A name, title or file name from the portal: invisible and direction-changing characters
/// stripped, entities decoded, line breaks and control characters flattened to single spaces,
/// secrets redacted, at most `max_chars` characters (cut with `…`). BBCode stays as written.
pub fn name(raw: &str, max_chars: usize, secrets: &[String]) -> String {
    let (input, cut) = head(raw, max_chars.saturating_mul(8).max(64));
    let spaced: String = input
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut removed = false;
    let text = decoded(&spaced, &mut removed);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let safe = redacted(&flat, cut, secrets);
    if !cut && safe.chars().count() <= max_chars {
        return safe;
    }
    let kept = capped(&safe, max_chars.saturating_sub(1)).0;
    if max_chars == 0 {
        kept
    } else {
        format!("{kept}…")
    }
}

/// `input` stripped, its entities decoded, and stripped again: an entity hides nothing.
fn decoded(input: &str, removed: &mut bool) -> String {
    let once = strip::strip(input, removed);
    strip::strip(&strip::decode_entities(&once), removed)
}

/// The first `limit` characters of `raw`, and whether that left anything out.
fn head(raw: &str, limit: usize) -> (&str, bool) {
    match raw.char_indices().nth(limit) {
        Some((end, _)) => (&raw[..end], true),
        None => (raw, false),
    }
}

/// `text` with `secrets` redacted. When the input was cut, its last characters may be the start
/// of a secret the cut split; they are dropped (as many as the longest secret written
/// percent-encoded), after redacting, so that no whole secret is split by the drop either.
fn redacted(text: &str, cut: bool, secrets: &[String]) -> String {
    let mut safe = scrub(text, secrets);
    let longest = secrets.iter().map(String::len).max().unwrap_or(0);
    if cut && longest > 0 {
        let keep = safe.chars().count().saturating_sub(3 * longest + 3);
        safe = capped(&safe, keep).0;
    }
    safe
}

/// At most `max_chars` characters of `text`, and whether it was longer. A cut inside a
/// redaction marker takes the whole marker out rather than leave half of it.
fn capped(text: &str, max_chars: usize) -> (String, bool) {
    let Some((end, _)) = text.char_indices().nth(max_chars) else {
        return (text.to_owned(), false);
    };
    let (kept, rest) = text.split_at(end);
    let split_marker = (1..REDACTED.len())
        .find(|&at| kept.ends_with(&REDACTED[..at]) && rest.starts_with(&REDACTED[at..]));
    let end = split_marker.map_or(end, |at| end - at);
    (text[..end].to_owned(), true)
}

#[cfg(test)]
mod tests;
