//! Reading chat messages on the sample portal, as the Bitrix24 docs describe them (reference
//! §20–21): `im.dialog.messages.get` (snake_case, newest first, paging by message ID with the
//! portal's quirks) and `im.dialog.messages.search` (camelCase, with the plan's history limit).
//! Both answer only a member of the chat, as the caller sees it.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::history::{DemoMessage, History, history_cutoff};
use super::rest::success;
use super::{PortalData, PortalState, chat, dates, error, lock, php, posting};

/// How many messages a call without a cursor gives at most, unread ones included.
const MAX_WITH_UNREAD: usize = 100;

/// The message methods; `None` for any other.
pub(super) fn dispatch(
    state: &PortalState,
    data: &PortalData,
    caller: i64,
    method: &str,
    params: &Map<String, Value>,
    started: f64,
) -> Option<Response> {
    let answer = match method {
        "im.dialog.messages.get" => get(state, data, caller, params, started),
        "im.dialog.messages.search" => search(state, data, caller, params, started),
        "im.message.add" => posting::add(state, data, caller, params, started),
        "im.message.update" => posting::update(state, data, caller, params, started),
        "im.message.delete" => posting::delete(state, data, caller, params, started),
        _ => return None,
    };
    Some(answer)
}

/// A message ID cursor: absent (or 0), a number, or a string of digits; anything else is the
/// error `<NAME>_STRING`.
fn cursor(params: &Map<String, Value>, name: &str) -> Result<Option<i64>, ()> {
    let id = match params.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().ok_or(())?,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) if s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            php::intval(&json!(s))
        }
        Some(_) => return Err(()),
    };
    Ok((id > 0).then_some(id))
}

fn limit(params: &Map<String, Value>, default: i64, max: i64) -> usize {
    let value = params.get("LIMIT").map_or(default, php::intval);
    let value = if value <= 0 { default } else { value.min(max) };
    usize::try_from(value).unwrap_or(0)
}

/// `im.dialog.messages.get`.
fn get(
    state: &PortalState,
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    let dialog_given = match params.get("DIALOG_ID") {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Number(_)) => true,
        _ => false,
    };
    if !dialog_given {
        return error(
            StatusCode::BAD_REQUEST,
            "DIALOG_ID_EMPTY",
            "Dialog ID can't be empty",
        );
    }
    let Ok(first_id) = cursor(params, "FIRST_ID") else {
        return error(
            StatusCode::BAD_REQUEST,
            "FIRST_ID_STRING",
            "First ID can't be string",
        );
    };
    let Ok(last_id) = cursor(params, "LAST_ID") else {
        return error(
            StatusCode::BAD_REQUEST,
            "LAST_ID_STRING",
            "Last ID can't be string",
        );
    };
    let chat_id = match chat::dialog_chat(data, caller, params) {
        Ok(chat_id) => chat_id,
        Err((status, code, text)) => return error(status, code, text),
    };
    let limit = limit(params, 20, 50);
    let history = lock(&state.history);
    let all: Vec<&DemoMessage> = history
        .messages
        .iter()
        .filter(|m| m.chat_id == chat_id)
        .collect();
    let in_chat = |id: i64| all.iter().position(|m| m.id == id);
    // Oldest first here; sent newest first.
    let page: &[&DemoMessage] = match (first_id, last_id) {
        // FIRST_ID wins when both are given; the cursor's own message comes too.
        (Some(first), _) => match in_chat(first) {
            Some(at) => &all[at..all.len().min(at + 1 + limit)],
            None => &[],
        },
        (None, Some(last)) => match in_chat(last) {
            Some(at) => &all[at.saturating_sub(limit)..at],
            None => &[],
        },
        (None, None) => {
            // The newest LIMIT, reaching back to the oldest unread message if that is further.
            let unread = all
                .iter()
                .position(|m| history.unread(m, caller))
                .map_or(0, |at| all.len() - at);
            let count = limit.max(unread.min(MAX_WITH_UNREAD));
            &all[all.len().saturating_sub(count)..]
        }
    };
    let messages: Vec<Value> = page
        .iter()
        .rev()
        .map(|m| {
            json!({
                "id": m.id,
                "chat_id": m.chat_id,
                "author_id": m.author_id,
                "date": dates::local(m.date),
                "text": m.text,
                "unread": history.unread(m, caller),
                "uuid": uuid(m),
                "replaces": [],
                "params": params_value(m),
                "disappearing_date": null,
            })
        })
        .collect();
    let users: Vec<Value> = authors(page)
        .into_iter()
        .filter_map(|id| chat::user_object(data, id))
        .collect();
    let result = json!({
        "chat_id": chat_id,
        "messages": messages,
        "users": users,
        "files": files(state, data, &history, page),
    });
    success(result, started)
}

/// `im.dialog.messages.search`.
fn search(
    state: &PortalState,
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    let chat_id = params.get("CHAT_ID").map_or(0, php::intval);
    if chat_id <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "CHAT_ID_EMPTY",
            "Chat ID can't be empty",
        );
    }
    if !data
        .chats
        .get(&chat_id)
        .is_some_and(|m| m.contains(&caller))
    {
        return error(
            StatusCode::FORBIDDEN,
            "ACCESS_ERROR",
            "You do not have access to this chat",
        );
    }
    let text = |name: &str| params.get(name).and_then(Value::as_str).map(str::trim);
    // The portal searches only for more than two characters; shorter is no text filter.
    let needle = text("SEARCH_MESSAGE")
        .filter(|s| s.chars().count() > 2)
        .map(str::to_lowercase);
    // A date the portal cannot read is no filter.
    let from = text("DATE_FROM").and_then(dates::parse);
    let to = text("DATE_TO").and_then(dates::parse);
    let day = text("DATE").and_then(dates::parse);
    let ascending = order_ascending(params);
    let last_id = params.get("LAST_ID").map_or(0, php::intval);
    let limit = limit(params, 50, 200);
    let limited_history = chat::info(data, chat_id).kind == "open";

    let history = lock(&state.history);
    let mut hidden_by_plan = false;
    let mut hits: Vec<&DemoMessage> = history
        .messages
        .iter()
        .filter(|m| m.chat_id == chat_id && !m.is_deleted())
        .filter(|m| {
            needle
                .as_ref()
                .is_none_or(|n| m.text.to_lowercase().contains(n))
        })
        .filter(|m| from.is_none_or(|from| m.date >= from))
        .filter(|m| to.is_none_or(|to| m.date <= to))
        .filter(|m| day.is_none_or(|day| (day..day + 86_400).contains(&m.date)))
        .filter(|m| {
            let hidden = limited_history && m.date < history_cutoff();
            hidden_by_plan |= hidden;
            !hidden
        })
        .filter(|m| match (last_id > 0, ascending) {
            (false, _) => true,
            (true, false) => m.id < last_id,
            (true, true) => m.id > last_id,
        })
        .collect();
    if !ascending {
        hits.reverse();
    }
    hits.truncate(limit);
    let messages: Vec<Value> = hits
        .iter()
        .map(|m| {
            let unread = history.unread(m, caller);
            json!({
                "id": m.id,
                "chatId": m.chat_id,
                "chat_id": m.chat_id,
                "authorId": m.author_id,
                "author_id": m.author_id,
                "date": dates::local(m.date),
                "text": m.text,
                "isSystem": m.author_id == 0,
                "uuid": uuid(m),
                "forward": null,
                "params": params_value(m),
                "viewedByOthers": true,
                "block": null,
                "unread": unread,
                "viewed": !unread,
                "viewedCount": 1,
            })
        })
        .collect();
    let users: Vec<Value> = authors(&hits)
        .into_iter()
        .filter_map(|id| chat::user_object(data, id))
        .map(camel_case)
        .collect();
    let result = json!({
        "messages": messages,
        "users": users,
        "files": files(state, data, &history, &hits),
        "additionalMessages": [],
        "copilot": null,
        "stickers": [],
        "reactions": [],
        "tariffRestrictions": {"isHistoryLimitExceeded": hidden_by_plan},
        "usersShort": [],
    });
    success(result, started)
}

/// `ORDER` as `{"ID": "ASC"}` (JSON) or `ORDER[ID]=ASC` (a form); descending otherwise.
fn order_ascending(params: &Map<String, Value>) -> bool {
    let value = match params.get("ORDER") {
        Some(Value::Object(order)) => order
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("ID"))
            .map(|(_, v)| v),
        _ => params.get("ORDER[ID]"),
    };
    value
        .and_then(Value::as_str)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("ASC"))
}

/// `params` as PHP serialises it: an object, or `[]` when empty.
fn params_value(m: &DemoMessage) -> Value {
    if m.params.is_empty() {
        json!([])
    } else {
        Value::Object(m.params.clone())
    }
}

/// A UUID for a person's message (the client's, in the real messenger); `null` for a system one.
fn uuid(m: &DemoMessage) -> Value {
    if m.author_id == 0 {
        return Value::Null;
    }
    json!(format!(
        "0c42a08f-{:04x}-4{:03x}-8a1e-{:012x}",
        m.chat_id & 0xffff,
        m.author_id & 0xfff,
        m.id
    ))
}

/// The people who wrote these messages, each once, system messages aside.
fn authors(messages: &[&DemoMessage]) -> Vec<i64> {
    let mut ids: Vec<i64> = Vec::new();
    for m in messages {
        if m.author_id > 0 && !ids.contains(&m.author_id) {
            ids.push(m.author_id);
        }
    }
    ids
}

/// The files these messages carry, camelCase as both methods give them.
fn files(
    state: &PortalState,
    data: &PortalData,
    history: &History,
    messages: &[&DemoMessage],
) -> Vec<Value> {
    let wanted: Vec<i64> = messages.iter().flat_map(|m| m.file_ids()).collect();
    history
        .files
        .iter()
        .filter(|f| wanted.contains(&f.id))
        .map(|f| {
            let url = format!(
                "http://{}/bitrix/services/main/ajax.php?action=disk.api.file.download&fileId={}&_esd=1",
                state.host, f.id
            );
            let extension = f.name.rsplit_once('.').map_or("", |(_, e)| e);
            json!({
                "id": f.id,
                "chatId": f.chat_id,
                "date": dates::local(f.date),
                "type": f.kind,
                "name": f.name,
                "extension": extension,
                "size": f.size,
                "image": false,
                "status": "done",
                "progress": 100,
                "authorId": f.author_id,
                "authorName": data.users.get(&f.author_id).map(|u| u.name()).unwrap_or_default(),
                "urlPreview": "",
                "urlShow": url,
                "urlDownload": url,
                "viewerAttrs": null,
            })
        })
        .collect()
}

/// A messenger user object with camelCase keys, as search gives them.
fn camel_case(user: Value) -> Value {
    let Value::Object(fields) = user else {
        return user;
    };
    let renamed = fields
        .into_iter()
        .map(|(key, value)| {
            let mut out = String::with_capacity(key.len());
            let mut upper = false;
            for c in key.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.push(c.to_ascii_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            (out, value)
        })
        .collect();
    Value::Object(renamed)
}
