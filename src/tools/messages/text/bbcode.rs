//! BBCode to readable text: a tag is read only when its closing tag follows (properly nested),
//! anything else stays as text; `[code]` keeps its content as written. Linear in the input with no
//! recursion: one scan for tags, one stack to pair them, one pass to write, so neither a long
//! text nor 10,000 nested tags cost more than their length.

use super::Flags;
use super::tag::{self, Kind, Single, Tag};
use crate::bitrix::clock::civil_from_days;

/// The longest tag read, in bytes: a link target past it leaves the tag as text.
const MAX_TAG_BYTES: usize = 2048;
/// `[/code]`, which ends a code block whatever tags it holds.
const CODE_END: &[u8] = b"[/code]";

/// A tag and where it is written in the text (byte offsets).
struct Token<'a> {
    start: usize,
    end: usize,
    tag: Tag<'a>,
}

/// `text` (stripped and decoded) as readable text; what it asks of a reader goes to `flags`.
pub fn render(text: &str, flags: &mut Flags) -> String {
    let tokens = tokenize(text);
    let partners = pair(&tokens);
    let mut out = String::with_capacity(text.len());
    // Open tags being written: their token and where their content starts in `out`.
    let mut open: Vec<(Tag<'_>, usize)> = Vec::new();
    let mut copied = 0;
    for (token, partner) in tokens.iter().zip(&partners) {
        out.push_str(&text[copied..token.start]);
        copied = token.end;
        match (token.tag, partner) {
            (Tag::Single(single), _) => write_single(&mut out, single, flags),
            (Tag::Open(kind, value), Some(_)) => {
                write_open(&mut out, kind, value, flags);
                open.push((token.tag, out.len()));
            }
            (Tag::Close(_), Some(_)) => {
                // Pairs nest properly, so the innermost open tag is this one's partner.
                if let Some((Tag::Open(kind, value), start)) = open.pop() {
                    write_close(&mut out, start, kind, value, flags);
                }
            }
            (_, None) => out.push_str(&text[token.start..token.end]),
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Every tag in `text`, in order. A code block's content holds none.
fn tokenize(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    // Once no `[/code]` follows some point, none follows any later point.
    let mut code_ends_left = true;
    while let Some(offset) = text[at..].find('[') {
        let start = at + offset;
        // A tag holds no `[`, so each byte is looked at here at most once more than by `find`.
        let end = bytes[start + 1..]
            .iter()
            .take(MAX_TAG_BYTES)
            .position(|&b| matches!(b, b']' | b'[' | b'\n'))
            .map(|len| start + 1 + len)
            .filter(|&end| bytes[end] == b']');
        let Some(end) = end else {
            at = start + 1;
            continue;
        };
        at = end + 1;
        // `[` and `]` are ASCII, so the slice is on character boundaries.
        let Some(tag) = tag::parse(&text[start + 1..end]) else {
            continue;
        };
        if tag == Tag::Open(Kind::Code, None) {
            let close = code_ends_left
                .then(|| find_ignoring_case(bytes, end + 1, CODE_END))
                .flatten();
            let Some(close) = close else {
                code_ends_left = false;
                continue;
            };
            tokens.push(Token {
                start,
                end: end + 1,
                tag,
            });
            let close_end = close + CODE_END.len();
            let tag = Tag::Close(Kind::Code);
            tokens.push(Token {
                start: close,
                end: close_end,
                tag,
            });
            at = close_end;
            continue;
        }
        tokens.push(Token {
            start,
            end: end + 1,
            tag,
        });
    }
    tokens
}

/// The first `needle` (ASCII) in `bytes` at or after `from`, in any letter case.
fn find_ignoring_case(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let haystack = bytes.get(from..)?;
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
        .map(|offset| from + offset)
}

/// For each token, the token that closes or opens it, if it has one. A closing tag pairs with the
/// nearest open tag of its kind; open tags between them stay unpaired (text). Per-kind counts
/// keep this linear: a closing tag with nothing to close never searches the stack.
fn pair(tokens: &[Token<'_>]) -> Vec<Option<usize>> {
    let mut partners = vec![None; tokens.len()];
    let mut stack: Vec<(usize, Kind)> = Vec::new();
    let mut open_of_kind = [0usize; Kind::COUNT];
    for (index, token) in tokens.iter().enumerate() {
        match token.tag {
            Tag::Open(kind, _) => {
                stack.push((index, kind));
                open_of_kind[kind as usize] += 1;
            }
            Tag::Close(kind) if open_of_kind[kind as usize] > 0 => {
                while let Some((opener, opened)) = stack.pop() {
                    open_of_kind[opened as usize] -= 1;
                    if opened == kind {
                        partners[opener] = Some(index);
                        partners[index] = Some(opener);
                        break;
                    }
                }
            }
            Tag::Close(_) | Tag::Single(_) => {}
        }
    }
    partners
}

fn write_single(out: &mut String, single: Single<'_>, flags: &mut Flags) {
    match single {
        Single::Break => out.push('\n'),
        Single::Everyone => {
            flags.mentions_everyone = true;
            out.push_str("@all");
        }
        Single::Disk(id) => {
            out.push_str("[file ");
            out.push_str(id);
            out.push(']');
        }
        Single::Timestamp(seconds) => out.push_str(&utc(seconds)),
    }
}

fn write_open(out: &mut String, kind: Kind, value: Option<&str>, flags: &mut Flags) {
    match kind {
        Kind::Size if value.is_some_and(tiny) => flags.hidden_formatting = true,
        Kind::Color => flags.hidden_formatting = true,
        Kind::Send | Kind::Put => flags.action_button = true,
        Kind::User => out.push('@'),
        Kind::Img => out.push_str("[image: "),
        _ => {}
    }
}

/// Writes what follows a tag's content (which is `out[start..]`), or replaces the content.
fn write_close(out: &mut String, start: usize, kind: Kind, value: Option<&str>, flags: &mut Flags) {
    match (kind, value) {
        (Kind::Url, Some(target)) => {
            if is_blank(&out[start..]) || same_link(&out[start..], target) {
                out.truncate(start);
                out.push_str(target);
            } else {
                flags.link_text_differs = true;
                out.push_str(&format!(" <{target}>"));
            }
        }
        (Kind::User, Some(id)) => note(out, start, &format!("user {id}")),
        (Kind::Chat, Some(chat)) => note(out, start, &format!("chat {chat}")),
        (Kind::Context, Some(value)) => {
            if let Some((chat, message)) = tag::context(value) {
                note(out, start, &format!("message {message} in chat {chat}"));
            }
        }
        (Kind::Call, Some(number)) => note(out, start, &format!("call {number}")),
        (Kind::Call, None) => note(out, start, "call"),
        (Kind::Send | Kind::Put, Some(command)) => out.push_str(&format!(" [button: {command}]")),
        (Kind::Send | Kind::Put, None) => out.push_str(" [button]"),
        (Kind::Img, _) => {
            out.truncate(out.trim_end().len().max(start));
            out.push(']');
        }
        _ => {}
    }
}

/// `content (note)`, or just `note` when there is no content.
fn note(out: &mut String, start: usize, note: &str) {
    if !is_blank(&out[start..]) {
        out.push_str(" (");
        out.push_str(note);
        out.push(')');
    } else {
        out.truncate(start);
        out.push_str(note);
    }
}

/// Empty or a little whitespace. Looks at a bounded length, so nested tags cost no rescans.
fn is_blank(content: &str) -> bool {
    content.len() <= 64 && content.trim().is_empty()
}

/// `[size=N]` below 10 is hard to read.
fn tiny(size: &str) -> bool {
    let digits: String = size
        .chars()
        .take_while(char::is_ascii_digit)
        .take(4)
        .collect();
    digits.parse::<u32>().is_ok_and(|n| n < 10)
}

/// Whether a link's text names its own target: the same but for letter case, the scheme, a
/// `www.` and trailing slashes (`example.com` for `https://www.example.com/`).
fn same_link(text: &str, target: &str) -> bool {
    // Longer text cannot match, and comparing it would rescan nested content.
    if text.len() > 2 * target.len() + 64 {
        return false;
    }
    let bare = |link: &str| {
        let lower = link.trim().to_ascii_lowercase();
        let rest = ["https://", "http://"]
            .iter()
            .find_map(|scheme| lower.strip_prefix(scheme))
            .unwrap_or(&lower);
        let rest = rest.strip_prefix("www.").unwrap_or(rest);
        rest.trim_end_matches('/').to_owned()
    };
    bare(text) == bare(target)
}

/// Unix seconds (0 to the end of year 9999) as `2026-03-04 06:43:26 UTC`.
fn utc(seconds: i64) -> String {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

#[cfg(test)]
mod tests;
