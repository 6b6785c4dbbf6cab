//! One page of messages out of a portal answer, so that paging never skips or repeats: the
//! messages on the wrong side of the cursor are left out (the `FIRST_ID` message itself among
//! them), extras beyond `LIMIT` (the portal adds unread ones) are dropped on the far side from the
//! cursor, and so are messages past the answer's size cap. `older_than` / `newer_than` name the
//! edges of what is given; an empty page echoes the cursor.

use serde::Serialize;
use serde_json::Value;

use super::shape::{self, Shaper};
use super::{Format, MAX_ANSWER_BYTES, Message};
use crate::bitrix::Client;
use crate::tools::args::{self, Args, MAX_ID};
use crate::tools::error::ToolError;
use crate::tools::registry::unexpected;

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The newest messages.
    Newest,
    /// `LAST_ID`: the messages just before this ID.
    Before(i64),
    /// `FIRST_ID`: the messages just after this ID.
    After(i64),
}

impl Cursor {
    fn admits(self, id: i64) -> bool {
        match self {
            Cursor::Newest => true,
            Cursor::Before(last) => id < last,
            Cursor::After(first) => id > first,
        }
    }

    fn id(self) -> Option<i64> {
        match self {
            Cursor::Newest => None,
            Cursor::Before(id) | Cursor::After(id) => Some(id),
        }
    }
}

/// The messages of a page, oldest first, and whether more are known or likely to exist.
#[derive(Debug)]
pub struct Chosen<'a> {
    pub messages: Vec<(i64, &'a Value)>,
    pub has_more: bool,
}

/// From `sorted` (each ID once, oldest first), the `limit` messages nearest `cursor` on its side.
/// `requested` is the LIMIT the portal was asked for: a page that full means more may exist.
pub fn choose(
    sorted: Vec<(i64, &Value)>,
    cursor: Cursor,
    limit: usize,
    requested: usize,
) -> Chosen<'_> {
    // Whether the portal filled the page, counting the `FIRST_ID` message it adds: should a
    // portal count that message within LIMIT (the reference calls this unverified), a full page
    // then still says more may exist, erring towards `has_more`.
    let answered = sorted
        .iter()
        .filter(|(id, _)| cursor.admits(*id) || Cursor::After(*id) == cursor)
        .count();
    let mut messages: Vec<(i64, &Value)> = sorted
        .into_iter()
        .filter(|(id, _)| cursor.admits(*id))
        .collect();
    let full = answered >= requested;
    let dropped = messages.len() > limit;
    if dropped {
        match cursor {
            // Nearest the cursor are the oldest after it: the newest are dropped.
            Cursor::After(_) => messages.truncate(limit),
            // Nearest are the newest (before the cursor, or of all): the oldest are dropped.
            Cursor::Newest | Cursor::Before(_) => {
                messages.drain(..messages.len() - limit);
            }
        }
    }
    Chosen {
        messages,
        has_more: full || dropped,
    }
}

/// An optional message ID argument (`LAST_ID`, `FIRST_ID`).
pub fn message_id(args: &Args<'_>, name: &str) -> Result<Option<i64>, ToolError> {
    args.get(name)
        .map(|value| {
            args::positive_id(value).ok_or_else(|| {
                args::wrong(
                    name,
                    "a positive message ID, e.g. older_than or newer_than of a page",
                    value,
                )
            })
        })
        .transpose()
}

/// A page read from an answer: its messages shaped, before the size cap.
#[derive(Debug)]
pub struct Page {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// The page `cursor` asked for from `result`, the answer of `method` to a request for
/// `requested` messages: at most `limit`, shaped for `format`. An answer without a message list
/// is an error naming the method.
pub fn read(
    client: &Client,
    method: &str,
    result: &Value,
    cursor: Cursor,
    limit: i64,
    requested: i64,
    format: Format,
) -> Result<Page, ToolError> {
    let listed = match result.get("messages") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        // PHP sends a list whose keys are not 0, 1, 2, … as an object.
        Some(Value::Object(map)) => map.values().collect(),
        _ => {
            return Err(unexpected(
                client,
                format!(
                    "{method} answered {} without a messages list",
                    super::kind(result)
                ),
            ));
        }
    };
    let sorted = shape::by_id(listed);
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    let chosen = choose(sorted, cursor, count(limit), count(requested));
    let shaper = Shaper::new(result, &chosen.messages, format, client.auth().secrets());
    Ok(Page {
        messages: chosen
            .messages
            .iter()
            .map(|(id, raw)| shaper.message(*id, raw))
            .collect(),
        has_more: chosen.has_more,
    })
}

/// Drops messages on the far side from `cursor` until `answer` (built by `build` from the
/// messages kept) is at most [`MAX_ANSWER_BYTES`] of JSON. The message nearest the cursor is
/// always kept (one message is far below the cap: its text, names and file list are bounded), so
/// paging always moves on. Returns whether any was dropped.
pub fn fit<T: Serialize>(
    messages: &mut Vec<Message>,
    cursor: Cursor,
    build: impl Fn(Vec<Message>) -> T,
) -> bool {
    // The answer without messages, its cursors at their longest.
    let base = json_len(&build(Vec::new())) + 2 * MAX_ID.to_string().len();
    let sizes: Vec<usize> = messages.iter().map(|m| json_len(m) + 1).collect();
    let mut total = base + sizes.iter().sum::<usize>();
    let mut keep = messages.len();
    while total > MAX_ANSWER_BYTES && keep > 1 {
        let far = match cursor {
            Cursor::After(_) => keep - 1,
            Cursor::Newest | Cursor::Before(_) => messages.len() - keep,
        };
        total -= sizes[far];
        keep -= 1;
    }
    let dropped = keep < messages.len();
    match cursor {
        Cursor::After(_) => messages.truncate(keep),
        Cursor::Newest | Cursor::Before(_) => {
            messages.drain(..messages.len() - keep);
        }
    }
    dropped
}

/// `older_than` and `newer_than`: the smallest and largest ID given, or the cursor on an empty
/// page (so that "newer than X" can be asked again), or null.
pub fn edges(messages: &[Message], cursor: Cursor) -> (Option<i64>, Option<i64>) {
    match (messages.first(), messages.last()) {
        (Some(first), Some(last)) => (Some(first.id), Some(last.id)),
        _ => (cursor.id(), cursor.id()),
    }
}

/// The length of `value`'s JSON, counted without building it.
fn json_len<T: Serialize>(value: &T) -> usize {
    let mut counter = Counter(0);
    // Writing to a counter cannot fail; a value that cannot be serialized counts as 0.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(chosen: &Chosen<'_>) -> Vec<i64> {
        chosen.messages.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn extras_go_on_the_far_side_and_the_cursor_itself_is_left_out() {
        let raw: Vec<Value> = (1..=10).map(|id| json!({"id": id})).collect();
        let sorted = || {
            raw.iter()
                .enumerate()
                .map(|(i, v)| (i as i64 + 1, v))
                .collect()
        };
        let newest = choose(sorted(), Cursor::Newest, 3, 4);
        assert_eq!((ids(&newest), newest.has_more), (vec![8, 9, 10], true));
        let before = choose(sorted(), Cursor::Before(5), 3, 4);
        assert_eq!((ids(&before), before.has_more), (vec![2, 3, 4], true));
        let after = choose(sorted(), Cursor::After(5), 3, 4);
        assert_eq!((ids(&after), after.has_more), (vec![6, 7, 8], true));
        let end = choose(sorted(), Cursor::After(8), 3, 4);
        assert_eq!((ids(&end), end.has_more), (vec![9, 10], false));
        // A portal that counts the FIRST_ID message within LIMIT (5 and the 3 after it, for a
        // LIMIT of 4): the page was full, so more may exist.
        let counted = choose(sorted()[4..8].to_vec(), Cursor::After(5), 3, 4);
        assert_eq!((ids(&counted), counted.has_more), (vec![6, 7, 8], true));
    }

    fn message(id: i64, text: String) -> Message {
        Message {
            id,
            date: String::new(),
            author_id: 1,
            author_name: String::new(),
            text,
            text_truncated: false,
            system: false,
            edited: false,
            deleted: false,
            reply_to: None,
            files: Vec::new(),
            flags: Vec::new(),
        }
    }

    #[test]
    fn the_cap_drops_the_far_side_and_keeps_one() {
        let big = |n: i64| {
            (1..=n)
                .map(|id| message(id, "x".repeat(4000)))
                .collect::<Vec<_>>()
        };
        let build = |messages: Vec<Message>| json!({"messages": messages, "older_than": null});
        let mut before = big(20);
        assert!(fit(&mut before, Cursor::Before(21), build));
        assert_eq!(before.last().map(|m| m.id), Some(20));
        assert!(serde_json::to_vec(&build(before.clone())).unwrap().len() <= MAX_ANSWER_BYTES);
        assert!(before.len() >= 11);
        let mut after = big(20);
        assert!(fit(&mut after, Cursor::After(0), build));
        assert_eq!(after.first().map(|m| m.id), Some(1));
        assert_eq!(after.len(), before.len());
        let mut huge = vec![message(1, "x".repeat(60_000))];
        assert!(!fit(&mut huge, Cursor::Newest, build));
        assert_eq!(huge.len(), 1);
    }
}
