//! One [`Message`] from either read method's answer: `im.dialog.messages.get` names fields in
//! snake_case (`author_id`), `im.dialog.messages.search` in camelCase (`authorId`, `isSystem`) and
//! both at once; `params` is an object or `[]`. Authors are named from the answer's own `users`
//! list, files from its `files` list (camelCase in both methods). Everything here came from the
//! network: numbers are checked, strings cleaned and bounded, lists read only so far.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::text::{self, flag};
use super::{File, Format, Message};
use crate::tools::args::{self, Args};
use crate::tools::error::ToolError;
use crate::tools::shape::{self as common, count};

/// The most entries of an answer's `users` or `files` list looked at.
pub const MAX_LISTED: usize = 5000;
/// The most files given per message.
pub const MAX_FILES_PER_MESSAGE: usize = 10;
/// The longest author or file name given, in characters.
const MAX_NAME_CHARS: usize = 200;
/// The longest date given: `2026-03-04T09:43:26.123456+03:00` is 32.
const MAX_DATE_CHARS: usize = 40;
/// The file kinds the portal names; anything else is given as `file`.
const FILE_KINDS: [&str; 4] = ["image", "video", "audio", "file"];

/// `FORMAT`: `"plain"` (the default) or `"bbcode"`, in any letter case.
pub fn format(args: &Args<'_>) -> Result<Format, ToolError> {
    match args.get("FORMAT") {
        None => Ok(Format::Plain),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("plain") => Ok(Format::Plain),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("bbcode") => Ok(Format::Bbcode),
        Some(other) => Err(args::wrong("FORMAT", "\"plain\" or \"bbcode\"", other)),
    }
}

/// The messages of an answer with a readable ID, each once (the first of an ID wins), sorted by
/// ID, oldest first. Only IDs are read here: what the tools pass on is shaped later. The list is
/// as long as the envelope kept (see `bitrix::bounded`).
pub fn by_id(messages: Vec<&Value>) -> Vec<(i64, &Value)> {
    let mut seen = HashSet::new();
    let mut found: Vec<(i64, &Value)> = messages
        .into_iter()
        .filter_map(|m| Some((m.get("id").and_then(common::id)?, m)))
        .filter(|(id, _)| seen.insert(*id))
        .collect();
    found.sort_unstable_by_key(|(id, _)| *id);
    found
}

/// Shapes the chosen messages of one answer.
pub struct Shaper {
    users: HashMap<i64, String>,
    files: HashMap<i64, File>,
    format: Format,
    secrets: Vec<String>,
}

impl Shaper {
    /// Reads from `result`'s `users` and `files` only the entries `chosen` refers to.
    pub fn new(
        result: &Value,
        chosen: &[(i64, &Value)],
        format: Format,
        secrets: Vec<String>,
    ) -> Self {
        let authors: HashSet<i64> = chosen.iter().filter_map(|(_, m)| author(m)).collect();
        let file_ids: HashSet<i64> = chosen
            .iter()
            .flat_map(|(_, m)| file_ids(&params(m)))
            .collect();
        let listed = |name: &str| {
            result
                .get(name)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .take(MAX_LISTED)
                .filter_map(|entry| Some((entry.get("id").and_then(common::id)?, entry)))
        };
        let mut users = HashMap::new();
        for (id, user) in listed("users").filter(|(id, _)| authors.contains(id)) {
            users.entry(id).or_insert_with(|| user_name(user, &secrets));
        }
        let mut files = HashMap::new();
        for (id, file) in listed("files").filter(|(id, _)| file_ids.contains(id)) {
            files.entry(id).or_insert_with(|| File {
                id,
                name: text::name(&string(file.get("name")), MAX_NAME_CHARS, &secrets),
                kind: file_kind(file.get("type")),
                size: count(file.get("size")).min(args::MAX_ID),
            });
        }
        Self {
            users,
            files,
            format,
            secrets,
        }
    }

    /// One message, its `id` already read.
    pub fn message(&self, id: i64, raw: &Value) -> Message {
        let params = params(raw);
        let author_id = author(raw).unwrap_or(0);
        let system = author(raw) == Some(0) || common::flag(raw.get("isSystem"), false);
        let cleaned = text::clean(&string(raw.get("text")), self.format, &self.secrets);
        let mut flags: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !flags.iter().any(|f| f == name) {
                flags.push(name.to_owned());
            }
        };
        if system {
            add(flag::SYSTEM);
        }
        cleaned.flags.iter().for_each(|f| add(f));
        if params.get("ATTACH").is_some_and(non_empty) {
            add(flag::ATTACHMENT);
        }
        if ["KEYBOARD", "MENU"]
            .iter()
            .any(|key| params.get(*key).is_some_and(non_empty))
        {
            add(flag::KEYBOARD);
        }
        Message {
            id,
            date: date(raw.get("date")),
            author_id,
            author_name: self.users.get(&author_id).cloned().unwrap_or_default(),
            text: cleaned.text,
            text_truncated: cleaned.truncated,
            system,
            edited: yes(params.get("IS_EDITED")),
            deleted: yes(params.get("IS_DELETED")),
            reply_to: params.get("REPLY_ID").and_then(common::id),
            files: file_ids(&params)
                .into_iter()
                .map(|id| {
                    self.files.get(&id).cloned().unwrap_or_else(|| File {
                        id,
                        name: String::new(),
                        kind: "file".to_owned(),
                        size: 0,
                    })
                })
                .collect(),
            flags,
        }
    }
}

/// The author: `author_id` (get) or `authorId` (search); 0 for the portal itself.
fn author(message: &Value) -> Option<i64> {
    message
        .get("author_id")
        .or_else(|| message.get("authorId"))
        .and_then(crate::bitrix::response::lenient_integer)
        .filter(|id| (0..=args::MAX_ID).contains(id))
}

/// `params` as an object; `[]` (PHP's empty array) and anything else as none.
fn params(message: &Value) -> Map<String, Value> {
    match message.get("params") {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

/// `FILE_ID`: a list of IDs (or one), the first few, each once.
fn file_ids(params: &Map<String, Value>) -> Vec<i64> {
    let ids: Vec<i64> = match params.get("FILE_ID") {
        Some(Value::Array(list)) => list
            .iter()
            .take(10 * MAX_FILES_PER_MESSAGE)
            .filter_map(common::id)
            .collect(),
        Some(one) => common::id(one).into_iter().collect(),
        None => Vec::new(),
    };
    let mut seen = HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(*id))
        .take(MAX_FILES_PER_MESSAGE)
        .collect()
}

/// A user's display name: `name`, else first and last name (snake_case or camelCase).
fn user_name(user: &Value, secrets: &[String]) -> String {
    let name = string(user.get("name"));
    let full = if name.trim().is_empty() {
        let first = string(user.get("first_name").or_else(|| user.get("firstName")));
        let last = string(user.get("last_name").or_else(|| user.get("lastName")));
        format!("{} {}", first.trim(), last.trim())
    } else {
        name
    };
    text::name(full.trim(), MAX_NAME_CHARS, secrets)
}

fn file_kind(value: Option<&Value>) -> String {
    let kind = value.and_then(Value::as_str).unwrap_or_default();
    FILE_KINDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(kind))
        .unwrap_or(&"file")
        .to_string()
}

/// A date as the portal writes it (`2026-03-04T09:43:26+03:00`), or `""` when it is anything
/// else: only digits and the separators of ISO 8601 pass, so nothing else can ride along.
fn date(value: Option<&Value>) -> String {
    match value.and_then(Value::as_str) {
        Some(s)
            if s.len() <= MAX_DATE_CHARS
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b"-+:.TZ ".contains(&b)) =>
        {
            s.to_owned()
        }
        _ => String::new(),
    }
}

/// A string field; numbers as written; anything else (null, `false`, objects) as `""`.
fn string(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `"Y"` (or `true`) as the portal marks an edited or deleted message.
fn yes(value: Option<&Value>) -> bool {
    common::flag(value, false)
}

/// Whether a `params` entry holds something: not null, `false`, `""`, `"N"`, `[]` or `{}`.
fn non_empty(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.trim().is_empty() && s.trim() != "N",
        Value::Array(list) => !list.is_empty(),
        Value::Object(map) => !map.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(result: Value) -> Vec<Message> {
        let messages = result["messages"].as_array().cloned().unwrap_or_default();
        let chosen = by_id(messages.iter().collect());
        let shaper = Shaper::new(&result, &chosen, Format::Plain, vec!["s3cr3t".into()]);
        chosen
            .iter()
            .map(|(id, m)| shaper.message(*id, m))
            .collect()
    }

    #[test]
    fn both_namings_give_one_shape() {
        let get = shape(json!({
            "messages": [{"id": 7, "author_id": 503, "date": "2026-03-04T09:43:26+03:00",
                "text": "hi", "params": {"FILE_ID": [5255, "5256"], "IS_EDITED": "Y",
                "REPLY_ID": "6"}}],
            "users": [{"id": 503, "name": "Klaus Weber"}],
            "files": [{"id": 5255, "chatId": 1, "type": "image", "name": "image.png",
                "size": 2144, "authorId": 503}]}));
        let search = shape(json!({
            "messages": [{"id": 7, "authorId": 503, "chatId": 1, "isSystem": false,
                "date": "2026-03-04T09:43:26+03:00", "text": "hi",
                "params": {"FILE_ID": [5255, "5256"], "IS_EDITED": "Y", "REPLY_ID": 6}}],
            "users": [{"id": 503, "firstName": "Klaus", "lastName": "Weber"}],
            "files": [{"id": 5255, "type": "image", "name": "image.png", "size": "2144"}]}));
        assert_eq!(get, search);
        assert_eq!(
            serde_json::to_value(&get[0]).unwrap(),
            json!({"id": 7, "date": "2026-03-04T09:43:26+03:00", "author_id": 503,
                "author_name": "Klaus Weber", "text": "hi", "edited": true, "reply_to": 6,
                "files": [{"id": 5255, "name": "image.png", "type": "image", "size": 2144},
                          {"id": 5256, "name": "", "type": "file", "size": 0}]})
        );
    }

    #[test]
    fn system_deleted_attachment_and_keyboard_are_said() {
        let got = shape(json!({"messages": [
            {"id": 3, "author_id": 0, "text": "joined", "params": {"CODE": ["CHAT_JOIN"]}},
            {"id": 2, "authorId": 5, "isSystem": true, "text": "x", "params": []},
            {"id": 1, "author_id": 5, "text": "This message was deleted.",
             "params": {"IS_DELETED": "Y", "ATTACH": [{"x": 1}], "KEYBOARD": "N", "MENU": [1]}},
        ]}));
        assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(got[0].deleted && !got[0].system);
        assert_eq!(got[0].flags, ["attachment", "keyboard"]);
        assert!(got[1].system && got[2].system);
        assert_eq!(got[2].flags, ["system_message"]);
        assert_eq!(got[2].author_name, "");
    }

    #[test]
    fn hostile_values_are_dropped_or_bounded() {
        let got = shape(json!({"messages": [
            {"id": -4}, {"id": "x"}, {"id": 1e300}, {"text": "no id"},
            {"id": 9, "author_id": -1, "date": "<script>", "text": ["no"],
             "params": {"FILE_ID": (1..500).collect::<Vec<_>>(), "REPLY_ID": -3}},
            {"id": 9, "text": "a repeat"},
        ], "users": "none", "files": {"id": 1}}));
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(
            (m.id, m.author_id, m.date.as_str(), m.text.as_str()),
            (9, 0, "", "")
        );
        assert!(!m.system);
        assert_eq!(m.reply_to, None);
        assert_eq!(m.files.len(), MAX_FILES_PER_MESSAGE);
    }
}
