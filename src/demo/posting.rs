//! Writing chat messages on the sample portal, as the caller (reference §22–23):
//! `im.message.add`, `im.message.update` and `im.message.delete`, with the codes the docs give;
//! and the test helpers that post as someone in the browser would and read a chat's state.
//!
//! Choices where the docs are silent: `SYSTEM=Y` stores a system message (`author_id` 0, so
//! search says `isSystem`) whose text starts with the poster's name in bold, as the old handler
//! prefixes the app's name; nobody may edit it, the chat's owner and managers may delete it.
//! Edits have no time limit. An empty `DIALOG_ID` is `DIALOG_ID_EMPTY`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::chat::Refusal;
use super::history::{DELETED_TEXT, DemoMessage};
use super::rest::success;
use super::{DemoPortal, PortalData, PortalState, chat, error, lock, now, php};

/// The longest text the portal keeps; past it the text is cut and ` (...)` appended.
pub const MAX_MESSAGE_CHARS: usize = 20_000;

/// The most messages the portal holds: past it, `im.message.add` fails as the docs' "Error
/// creating message" (`CHAT_ID`), so no caller can grow it without bound (at most 10,000 texts of
/// 20,000 characters).
pub const MAX_MESSAGES: usize = 10_000;

/// The largest `ATTACH` or `KEYBOARD`, serialised.
const MAX_ATTACH_CHARS: usize = 60_000;

fn refuse(status: StatusCode, code: &str, text: &str) -> Response {
    error(status, code, text)
}

fn cant_edit() -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "CANT_EDIT_MESSAGE",
        "Time has expired for modification or you don't have access",
    )
}

/// A text param as the portal reads it (numbers as their digits).
fn text_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The text as stored: at most [`MAX_MESSAGE_CHARS`] characters, then ` (...)`.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{} (...)", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `ATTACH` or `KEYBOARD`: an object or list, or a JSON string holding one; `Ok(None)` when
/// absent or empty.
fn rich(params: &Map<String, Value>, name: &str) -> Result<Option<Value>, Refusal> {
    let value = match params.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
        Some(other) => Some(other.clone()),
    };
    let (malformed, oversize) = if name == "ATTACH" {
        ("ATTACH_ERROR", "ATTACH_OVERSIZE")
    } else {
        ("KEYBOARD_ERROR", "KEYBOARD_OVERSIZE")
    };
    let Some(value) = value.filter(|v| v.is_array() || v.is_object()) else {
        return Err((StatusCode::BAD_REQUEST, malformed, "Incorrect format"));
    };
    if value.to_string().chars().count() > MAX_ATTACH_CHARS {
        return Err((StatusCode::BAD_REQUEST, oversize, "Too large"));
    }
    Ok(Some(value))
}

/// `im.message.add`: the new message's ID as a bare integer.
pub(super) fn add(
    state: &PortalState,
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    if text_param(params, "DIALOG_ID").is_none_or(|d| d.trim().is_empty()) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "DIALOG_ID_EMPTY",
            "Dialog ID can't be empty",
        );
    }
    let mut extra = Map::new();
    for name in ["ATTACH", "KEYBOARD"] {
        match rich(params, name) {
            Ok(Some(value)) => {
                extra.insert(name.into(), value);
            }
            Ok(None) => {}
            Err((status, code, text)) => return refuse(status, code, text),
        }
    }
    let text = text_param(params, "MESSAGE").unwrap_or_default();
    if text.trim().is_empty() && !extra.contains_key("ATTACH") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "MESSAGE_EMPTY",
            "Message can't be empty",
        );
    }
    let chat_id = match chat::dialog_chat(data, caller, params) {
        Ok(chat_id) => chat_id,
        Err((status, code, text)) => return refuse(status, code, text),
    };
    let mut history = lock(&state.history);
    if history.messages.len() >= MAX_MESSAGES {
        return refuse(StatusCode::BAD_REQUEST, "CHAT_ID", "Error creating message");
    }
    let reply = text_param(params, "REPLY_ID").filter(|r| !r.trim().is_empty() && r != "0");
    if let Some(reply) = reply {
        let id = php::intval(&json!(reply));
        if id <= 0 {
            return refuse(
                StatusCode::BAD_REQUEST,
                "PARAMS_ERROR",
                "Incorrect REPLY_ID",
            );
        }
        match history.find(id) {
            None => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "REPLY_ACCESS_ERROR",
                    "The message to reply to was not found",
                );
            }
            Some(m) if m.chat_id != chat_id => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "REPLY_FROM_OTHER_CHAT_ERROR",
                    "You can only reply to a message in the same chat",
                );
            }
            Some(_) => {
                extra.insert("REPLY_ID".into(), json!(id));
            }
        }
    }
    let system = params.get("SYSTEM").is_some_and(|v| match v {
        Value::String(s) => s.trim().eq_ignore_ascii_case("y"),
        Value::Bool(b) => *b,
        _ => false,
    });
    let text = if system {
        let name = data
            .users
            .get(&caller)
            .map(|u| u.name())
            .unwrap_or_default();
        format!("[b]{name}[/b]\n{text}")
    } else {
        text
    };
    let message = DemoMessage {
        id: 0,
        chat_id,
        author_id: if system { 0 } else { caller },
        poster: caller,
        date: 0,
        text: bounded(&text),
        params: extra,
    };
    let id = history.push(message, now() as i64);
    success(json!(id), started)
}

/// The message a `MESSAGE_ID` names, or `MESSAGE_ID_ERROR`.
fn message_id(params: &Map<String, Value>, state: &PortalState) -> Result<i64, Refusal> {
    let id = params.get("MESSAGE_ID").map_or(0, php::intval);
    if id <= 0 {
        return Err((
            StatusCode::BAD_REQUEST,
            "MESSAGE_ID_ERROR",
            "Message ID can't be empty",
        ));
    }
    if lock(&state.history).find(id).is_none() {
        return Err((
            StatusCode::BAD_REQUEST,
            "MESSAGE_ID_ERROR",
            "Incorrect message ID",
        ));
    }
    Ok(id)
}

fn member(data: &PortalData, chat_id: i64, user: i64) -> bool {
    data.chats.get(&chat_id).is_some_and(|m| m.contains(&user))
}

fn soft_delete(message: &mut DemoMessage) {
    message.text = DELETED_TEXT.into();
    message.params = Map::from_iter([("IS_DELETED".to_owned(), json!("Y"))]);
}

/// `im.message.update`: the author's own message; an empty `MESSAGE` deletes it.
pub(super) fn update(
    state: &PortalState,
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    let id = match message_id(params, state) {
        Ok(id) => id,
        Err((status, code, text)) => return refuse(status, code, text),
    };
    let attach = match rich(params, "ATTACH") {
        Ok(attach) => attach,
        Err((status, code, text)) => return refuse(status, code, text),
    };
    let mut history = lock(&state.history);
    let Some(message) = history.find_mut(id) else {
        return cant_edit();
    };
    let own = message.poster == caller && message.author_id == caller;
    if !own || !member(data, message.chat_id, caller) || message.is_deleted() {
        return cant_edit();
    }
    match text_param(params, "MESSAGE") {
        Some(text) if text.trim().is_empty() => soft_delete(message),
        Some(text) => {
            message.text = bounded(&text);
            message.params.insert("IS_EDITED".into(), json!("Y"));
        }
        None => {}
    }
    if let Some(attach) = attach.filter(|_| !message.is_deleted()) {
        message.params.insert("ATTACH".into(), attach);
        message.params.insert("IS_EDITED".into(), json!("Y"));
    }
    success(json!(true), started)
}

/// `im.message.delete`: the author's, or any in a group chat the caller owns or manages.
pub(super) fn delete(
    state: &PortalState,
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    let id = match message_id(params, state) {
        Ok(id) => id,
        Err((status, code, text)) => return refuse(status, code, text),
    };
    let mut history = lock(&state.history);
    let Some(message) = history.find_mut(id) else {
        return cant_edit();
    };
    let info = chat::info(data, message.chat_id);
    let manages =
        info.kind != "private" && (info.owner == caller || info.managers.contains(&caller));
    let own = message.poster == caller && message.author_id == caller;
    if !member(data, message.chat_id, caller) || !(own || manages) {
        return cant_edit();
    }
    soft_delete(message);
    success(json!(true), started)
}

impl DemoPortal {
    /// Adds a message to a chat as `user` writing it in the browser would (no request, no
    /// membership check). Returns its ID: the next of the portal-wide sequence.
    pub fn post_as(&self, user: i64, chat_id: i64, text: &str) -> i64 {
        let message = DemoMessage {
            id: 0,
            chat_id,
            author_id: user,
            poster: user,
            date: 0,
            text: text.to_owned(),
            params: Map::new(),
        };
        lock(&self.state.history).push(message, now() as i64)
    }

    /// A chat's messages now, oldest first, deleted ones included (as their soft-deleted text).
    pub fn messages(&self, chat_id: i64) -> Vec<DemoMessage> {
        lock(&self.state.history)
            .messages
            .iter()
            .filter(|m| m.chat_id == chat_id)
            .cloned()
            .collect()
    }
}
