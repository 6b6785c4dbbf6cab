//! One BBCode tag as the portal writes it (`[b]`, `[url=U]`, `[USER=503 REPLACE]`, `[/url]`,
//! `[timestamp=1772606606 format=…]`): its name, case-insensitive, and a value checked for the
//! tags that need one. Anything else is not a tag and stays as text.

/// A tag that wraps text and needs its closing tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bold,
    Italic,
    Underline,
    Strike,
    Size,
    Color,
    Code,
    Url,
    User,
    Chat,
    Context,
    Img,
    Send,
    Put,
    Call,
}

impl Kind {
    /// How many kinds there are, for per-kind counts.
    pub const COUNT: usize = 15;

    fn named(name: &str) -> Option<Kind> {
        const NAMES: [(&str, Kind); Kind::COUNT] = [
            ("b", Kind::Bold),
            ("i", Kind::Italic),
            ("u", Kind::Underline),
            ("s", Kind::Strike),
            ("size", Kind::Size),
            ("color", Kind::Color),
            ("code", Kind::Code),
            ("url", Kind::Url),
            ("user", Kind::User),
            ("chat", Kind::Chat),
            ("context", Kind::Context),
            ("img", Kind::Img),
            ("send", Kind::Send),
            ("put", Kind::Put),
            ("call", Kind::Call),
        ];
        NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, kind)| kind)
    }
}

/// A tag that stands alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Single<'a> {
    /// `[br]`.
    Break,
    /// `[user=all]`.
    Everyone,
    /// `[disk=ID]`: the file's ID, digits.
    Disk(&'a str),
    /// `[timestamp=UNIX …]`: seconds since 1970, within years 1970–9999.
    Timestamp(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag<'a> {
    /// An opening tag and its value (`[url=U]` → `U`), if any.
    Open(Kind, Option<&'a str>),
    Close(Kind),
    Single(Single<'a>),
}

/// The last second of 9999-12-31, so that a date always has four digits.
const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// The tag written between `[` and `]`, if `inner` is one.
pub fn parse(inner: &str) -> Option<Tag<'_>> {
    if let Some(name) = inner.strip_prefix('/') {
        return Kind::named(name.trim_end()).map(Tag::Close);
    }
    let name_len = inner.bytes().take_while(u8::is_ascii_alphabetic).count();
    let (name, rest) = inner.split_at(name_len);
    let (value, attributes) = match rest.strip_prefix('=') {
        Some(assigned) => {
            let end = assigned.find(char::is_whitespace).unwrap_or(assigned.len());
            (Some(&assigned[..end]), &assigned[end..])
        }
        None if rest.is_empty() || rest.starts_with(char::is_whitespace) => (None, rest),
        None => return None,
    };
    let bare = value.is_none() && attributes.trim().is_empty();
    if name.eq_ignore_ascii_case("br") {
        return bare.then_some(Tag::Single(Single::Break));
    }
    if name.eq_ignore_ascii_case("disk") {
        return value
            .filter(|v| is_id(v))
            .map(|v| Tag::Single(Single::Disk(v)));
    }
    if name.eq_ignore_ascii_case("timestamp") {
        let seconds = value?.parse::<i64>().ok()?;
        let known = value?.bytes().all(|b| b.is_ascii_digit()) && seconds <= MAX_TIMESTAMP;
        return known.then_some(Tag::Single(Single::Timestamp(seconds)));
    }
    let kind = Kind::named(name)?;
    let value = value.filter(|v| !v.is_empty());
    let fits = match kind {
        Kind::Bold | Kind::Italic | Kind::Underline | Kind::Strike | Kind::Code => bare,
        Kind::Size | Kind::Color | Kind::Chat => value.is_some(),
        Kind::Img => value.is_none(),
        Kind::Url | Kind::Send | Kind::Put | Kind::Call => true,
        Kind::User if value.is_some_and(|v| v.eq_ignore_ascii_case("all")) => {
            return Some(Tag::Single(Single::Everyone));
        }
        Kind::User => value.is_some_and(is_id),
        Kind::Context => value.and_then(context).is_some(),
    };
    if !fits {
        return None;
    }
    if matches!(kind, Kind::Url | Kind::Send | Kind::Put | Kind::Call) {
        // A link or a command runs to the `]` (it may hold `=` and spaces), and may be quoted.
        let whole = inner[name_len..].strip_prefix('=').map(str::trim);
        let unquoted = whole.map(|t| t.trim_matches(|c| c == '"' || c == '\''));
        return Some(Tag::Open(kind, unquoted.filter(|t| !t.is_empty())));
    }
    Some(Tag::Open(kind, value))
}

/// `chat5/6` as (chat 5, message 6).
pub fn context(value: &str) -> Option<(&str, &str)> {
    let ids = value
        .get(..4)
        .filter(|prefix| prefix.eq_ignore_ascii_case("chat"))
        .map(|_| &value[4..])?;
    let (chat, message) = ids.split_once('/')?;
    (is_id(chat) && is_id(message)).then_some((chat, message))
}

/// A portal ID: 1–19 digits.
fn is_id(value: &str) -> bool {
    (1..=19).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_recognised_in_any_letter_case() {
        assert_eq!(parse("b"), Some(Tag::Open(Kind::Bold, None)));
        assert_eq!(parse("B"), Some(Tag::Open(Kind::Bold, None)));
        assert_eq!(parse("/B"), Some(Tag::Close(Kind::Bold)));
        assert_eq!(parse("/Url"), Some(Tag::Close(Kind::Url)));
        assert_eq!(
            parse("USER=503 REPLACE"),
            Some(Tag::Open(Kind::User, Some("503")))
        );
        assert_eq!(parse("user=ALL"), Some(Tag::Single(Single::Everyone)));
        assert_eq!(parse("BR"), Some(Tag::Single(Single::Break)));
        assert_eq!(parse("Disk=5"), Some(Tag::Single(Single::Disk("5"))));
        assert_eq!(
            parse("timestamp=1772606606 format=j F Y"),
            Some(Tag::Single(Single::Timestamp(1_772_606_606)))
        );
        assert_eq!(parse("img size=small"), Some(Tag::Open(Kind::Img, None)));
        assert_eq!(
            parse("CONTEXT=chat5/6"),
            Some(Tag::Open(Kind::Context, Some("chat5/6")))
        );
        assert_eq!(parse("send"), Some(Tag::Open(Kind::Send, None)));
    }

    #[test]
    fn a_link_or_command_runs_to_the_bracket() {
        assert_eq!(
            parse("url=https://x.test/?a=b&c=d"),
            Some(Tag::Open(Kind::Url, Some("https://x.test/?a=b&c=d")))
        );
        assert_eq!(
            parse("url=\"https://x.test\""),
            Some(Tag::Open(Kind::Url, Some("https://x.test")))
        );
        assert_eq!(parse("url"), Some(Tag::Open(Kind::Url, None)));
        assert_eq!(parse("url="), Some(Tag::Open(Kind::Url, None)));
        assert_eq!(
            parse("SEND=/help topic two"),
            Some(Tag::Open(Kind::Send, Some("/help topic two")))
        );
        assert_eq!(
            parse("call=+49 30 123"),
            Some(Tag::Open(Kind::Call, Some("+49 30 123")))
        );
    }

    #[test]
    fn what_is_not_a_tag_is_none() {
        for inner in [
            "",
            "/",
            "bold",
            "b=1",
            "b x",
            "/br",
            "/disk",
            "user",
            "user=abc",
            "user=12a",
            "disk",
            "disk=x",
            "timestamp=-5",
            "timestamp=+5",
            "timestamp=99999999999999",
            "timestamp=abc",
            "size",
            "color=",
            "chat",
            "context=5/6",
            "context=chat5",
            "context=chatx/6",
            "img=x",
            "1",
            "b]",
            "ü",
            "/ü",
            "user=12345678901234567890",
        ] {
            assert_eq!(parse(inner), None, "{inner:?}");
        }
    }
}
