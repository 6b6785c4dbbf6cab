//! The chat methods of the sample portal, answering as the Bitrix24 docs describe: `im.chat.get`,
//! `im.dialog.get`, `im.dialog.users.list`, `im.search.chat.list`, `im.recent.list` and
//! `im.user.list.get`, everything seen as the caller (the webhook's user, or a token's).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::people::ChatInfo;
use super::rest::{success, success_page};
use super::{PortalData, error, php};

/// A refusal: status, code and description.
pub(super) type Refusal = (StatusCode, &'static str, &'static str);

fn refuse((status, code, description): Refusal) -> Response {
    error(status, code, description)
}

/// A chat the caller is in, by `DIALOG_ID` (`chatN`, `sgN` or a user ID), or the refusal.
pub(super) fn dialog_chat(
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
) -> Result<i64, Refusal> {
    let dialog = match params.get("DIALOG_ID") {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let chat_id = if let Some(id) = dialog.strip_prefix("chat") {
        php::intval(&json!(id))
    } else if let Some(group) = dialog.strip_prefix("sg") {
        data.chat_info
            .iter()
            .find(|(_, info)| {
                info.entity
                    .as_ref()
                    .map(|(t, id)| (t.as_str(), id.as_str()))
                    == Some(("SONET_GROUP", group))
            })
            .map_or(0, |(id, _)| *id)
    } else {
        let user = php::intval(&json!(dialog));
        private_chat(data, caller, user).unwrap_or(0)
    };
    if dialog.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "DIALOG_ID_EMPTY",
            "Dialog ID can't be empty",
        ));
    }
    match data.chats.get(&chat_id) {
        Some(members) if members.contains(&caller) => Ok(chat_id),
        _ => Err((
            StatusCode::FORBIDDEN,
            "ACCESS_ERROR",
            "You do not have access to the specified dialog",
        )),
    }
}

pub(super) fn info(data: &PortalData, chat_id: i64) -> ChatInfo {
    data.chat_info.get(&chat_id).cloned().unwrap_or(ChatInfo {
        name: format!("Chat {chat_id}"),
        kind: "chat".into(),
        owner: 0,
        managers: Vec::new(),
        entity: None,
        members_visible: true,
    })
}

/// The private dialog of `caller` with `other`: the `private` chat whose members are the two.
fn private_chat(data: &PortalData, caller: i64, other: i64) -> Option<i64> {
    data.chat_info
        .iter()
        .filter(|(_, info)| info.kind == "private")
        .map(|(id, _)| *id)
        .find(|id| {
            data.chats.get(id).is_some_and(|members| {
                members.len() == 2 && members.contains(&caller) && members.contains(&other)
            })
        })
}

/// A chat object as `im.dialog.get` and `im.search.chat.list` give it, with the fields an
/// assistant does not need (colours, avatars, read receipts) as the portal sends them.
fn chat_object(data: &PortalData, caller: i64, chat_id: i64) -> Value {
    let info = info(data, chat_id);
    let members = data.chats.get(&chat_id).map_or(0, Vec::len);
    let role = if info.owner == caller {
        "owner"
    } else if info.managers.contains(&caller) {
        "manager"
    } else {
        "member"
    };
    let (entity_type, entity_id) = info.entity.clone().unwrap_or_default();
    json!({
        "id": chat_id,
        "parent_chat_id": 0,
        "name": info.name,
        "description": "",
        "owner": info.owner,
        "extranet": false,
        "avatar": "",
        "color": "#4ba984",
        "type": info.kind,
        "counter": 0,
        "user_counter": members,
        "message_count": 12,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "entity_data_1": "",
        "manager_list": info.managers,
        "role": role,
        "restrictions": {"avatar": true, "extend": true, "leave": true, "user_list": info.members_visible},
        "permissions": {"manage_users_add": "member", "manage_users_delete": "manager"},
        "readed_list": [{"user_id": caller, "user_name": "(read receipts)", "message_id": 0, "date": null}],
        "dialog_id": format!("chat{chat_id}"),
    })
}

pub(super) fn user_object(data: &PortalData, id: i64) -> Option<Value> {
    let user = data.users.get(&id)?;
    Some(json!({
        "id": id,
        "active": true,
        "name": user.name(),
        "first_name": user.first_name,
        "last_name": user.last_name,
        "work_position": if user.work_position.is_empty() { Value::Null } else { json!(user.work_position) },
        "color": "#df532d",
        "avatar": "",
        "gender": "F",
        "birthday": "",
        "extranet": user.extranet,
        "network": false,
        "bot": user.bot,
        "connector": false,
        "external_auth_id": if user.bot { "bot" } else { "default" },
        "status": "online",
        "idle": false,
        "last_activity_date": "2026-11-26T09:00:00+00:00",
        "absent": false,
        "departments": [1],
        "phones": false,
        "type": user.kind(),
    }))
}

/// A non-negative page bound from the request, `default` when absent, at most `max`.
fn bound(params: &Map<String, Value>, name: &str, default: i64, max: i64) -> usize {
    let value = params.get(name).map_or(default, php::intval);
    usize::try_from(value.clamp(0, max)).unwrap_or(0)
}

fn yes(params: &Map<String, Value>, name: &str) -> bool {
    params
        .get(name)
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("y"))
}

/// `im.chat.get`: the chat linked to an entity, `null` when none (any user may ask).
pub fn chat_get(data: &PortalData, params: &Map<String, Value>, started: f64) -> Response {
    let text = |name: &str| params.get(name).and_then(Value::as_str).map(str::trim);
    let (Some(entity_type), Some(entity_id)) = (text("ENTITY_TYPE"), text("ENTITY_ID")) else {
        return success(Value::Null, started);
    };
    let found = data.chat_info.iter().find(|(_, info)| {
        info.entity
            .as_ref()
            .map(|(t, id)| (t.as_str(), id.as_str()))
            == Some((entity_type, entity_id))
    });
    match found {
        Some((id, _)) => success(json!({"ID": id}), started),
        None => success(Value::Null, started),
    }
}

/// `im.dialog.get`: the chat object, for participants.
pub fn dialog_get(
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    match dialog_chat(data, caller, params) {
        Ok(chat_id) => success(chat_object(data, caller, chat_id), started),
        Err(refusal) => refuse(refusal),
    }
}

/// `im.dialog.users.list`: members with names, paged by `LIMIT` (≤ 200) and `OFFSET`.
pub fn dialog_users_list(
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    let chat_id = match dialog_chat(data, caller, params) {
        Ok(chat_id) => chat_id,
        Err(refusal) => return refuse(refusal),
    };
    if !info(data, chat_id).members_visible {
        return error(
            StatusCode::FORBIDDEN,
            "ACCESS_ERROR",
            "You don't have access to this chat",
        );
    }
    let skip_external = yes(params, "SKIP_EXTERNAL");
    let members: Vec<Value> = data.chats[&chat_id]
        .iter()
        .filter(|id| !(skip_external && data.users.get(id).is_some_and(|u| u.bot)))
        .filter_map(|id| user_object(data, *id))
        .collect();
    let limit = bound(params, "LIMIT", 50, 200);
    let offset = bound(params, "OFFSET", 0, i64::MAX);
    let page: Vec<Value> = members.iter().skip(offset).take(limit).cloned().collect();
    let end = offset.saturating_add(limit);
    let next = (end < members.len()).then_some(end);
    success_page(json!(page), Some(members.len()), next, started)
}

/// `im.search.chat.list`: the caller's chats with a word of the title or a member's name starting
/// with each word of `FIND`; newest (highest ID) first.
pub fn search_chat_list(
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    let find = params
        .get("FIND")
        .and_then(Value::as_str)
        .map(|f| f.trim().to_lowercase())
        .unwrap_or_default();
    if find.chars().count() < 2 {
        return error(
            StatusCode::BAD_REQUEST,
            "FIND_SHORT",
            "Too short search phrase",
        );
    }
    let starts_a_word = |text: &str, word: &str| {
        text.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w.starts_with(word))
    };
    let mut hits: Vec<i64> = data
        .chats
        .iter()
        .filter(|(id, members)| members.contains(&caller) && info(data, **id).kind != "private")
        .filter(|(id, members)| {
            let title = info(data, **id).name;
            find.split_whitespace().all(|word| {
                starts_a_word(&title, word)
                    || members.iter().filter_map(|m| data.users.get(m)).any(|u| {
                        starts_a_word(&u.first_name, word) || starts_a_word(&u.last_name, word)
                    })
            })
        })
        .map(|(id, _)| *id)
        .collect();
    hits.sort_unstable_by(|a, b| b.cmp(a));
    let limit = bound(params, "LIMIT", 10, 50);
    let offset = bound(params, "OFFSET", 0, i64::MAX);
    let page: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|id| chat_object(data, caller, *id))
        .collect();
    let end = offset.saturating_add(limit);
    let next = (end < hits.len()).then_some(end);
    success_page(json!(page), Some(hits.len()), next, started)
}

/// `im.recent.list`: the caller's recent rows from `OFFSET`, `LIMIT` (≤ 200) of them, with
/// `hasMore` and no `next` — and rows that can repeat a dialog, as the server's do.
pub fn recent_list(
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    let rows: Vec<&String> = data
        .recent
        .get(&caller)
        .into_iter()
        .flatten()
        .filter(|d| !(yes(params, "SKIP_CHAT") && d.starts_with("chat")))
        .filter(|d| !yes(params, "SKIP_DIALOG") || d.starts_with("chat"))
        .collect();
    let limit = bound(params, "LIMIT", 50, 200);
    let offset = bound(params, "OFFSET", 0, i64::MAX);
    let items: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|dialog| recent_item(data, caller, dialog))
        .collect();
    let has_more = offset.saturating_add(limit) < rows.len();
    let body = json!({"items": items, "hasMore": has_more, "hasMorePages": has_more,
        "messagesAutoDeleteConfigs": []});
    success(body, started)
}

fn recent_item(data: &PortalData, caller: i64, dialog: &str) -> Value {
    let message =
        json!({"id": 84413, "text": "…", "author_id": 1269, "date": "2026-11-25T16:20:00+00:00"});
    match dialog.strip_prefix("chat") {
        Some(id) => {
            let chat_id = php::intval(&json!(id));
            let info = info(data, chat_id);
            json!({"id": dialog, "chat_id": chat_id, "type": "chat", "title": info.name,
                "message": message, "counter": 0, "chat": chat_object(data, caller, chat_id)})
        }
        None => {
            let user_id = php::intval(&json!(dialog));
            let title = data
                .users
                .get(&user_id)
                .map(|u| u.name())
                .unwrap_or_default();
            json!({"id": user_id, "chat_id": private_chat(data, caller, user_id).unwrap_or(0),
                "type": "user", "title": title, "message": message, "counter": 0,
                "user": user_object(data, user_id)})
        }
    }
}

/// `im.user.list.get`: users by ID (an array, or a JSON string holding one); an object keyed by ID
/// unless `RESULT_TYPE` is `array`. Unknown IDs are left out.
pub fn user_list_get(data: &PortalData, params: &Map<String, Value>, started: f64) -> Response {
    let ids = match params.get("ID") {
        Some(Value::Array(ids)) => Some(ids.clone()),
        Some(Value::String(text)) => serde_json::from_str::<Vec<Value>>(text).ok(),
        _ => None,
    };
    let Some(ids) = ids.filter(|ids| !ids.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_FORMAT",
            "A wrong format for the ID field is passed",
        );
    };
    let users: Vec<(i64, Value)> = ids
        .iter()
        .map(php::intval)
        .filter_map(|id| user_object(data, id).map(|user| (id, user)))
        .collect();
    let as_array = params
        .get("RESULT_TYPE")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("array"));
    let result = if as_array {
        json!(users.into_iter().map(|(_, u)| u).collect::<Vec<_>>())
    } else {
        Value::Object(
            users
                .into_iter()
                .map(|(id, u)| (id.to_string(), u))
                .collect(),
        )
    };
    success(result, started)
}

/// `user.get` (scope `user`/`user_basic`): the directory in upper-case fields, IDs as strings,
/// bots skipped, 50 a page through `START`, filtered by `ID` (a value or a list) directly or in
/// `FILTER` (also as `@ID`).
pub fn user_get(data: &PortalData, params: &Map<String, Value>, started: f64) -> Response {
    let filter = params.get("FILTER").and_then(Value::as_object);
    let wanted = params
        .get("ID")
        .or_else(|| filter.and_then(|f| f.get("ID").or_else(|| f.get("@ID"))));
    let ids: Option<Vec<i64>> = wanted.map(|value| match value {
        Value::Array(list) => list.iter().map(php::intval).collect(),
        other => vec![php::intval(other)],
    });
    let users: Vec<Value> = data
        .users
        .iter()
        .filter(|(id, user)| !user.bot && ids.as_ref().is_none_or(|ids| ids.contains(id)))
        .map(|(id, user)| {
            json!({"ID": id.to_string(), "ACTIVE": true, "NAME": user.first_name,
                "LAST_NAME": user.last_name, "WORK_POSITION": user.work_position,
                "USER_TYPE": if user.extranet { "extranet" } else { "employee" }, "UF_DEPARTMENT": [1]})
        })
        .collect();
    let start = bound(params, "START", 0, i64::MAX);
    let page: Vec<Value> = users.iter().skip(start).take(50).cloned().collect();
    let end = start.saturating_add(50);
    let next = (end < users.len()).then_some(end);
    success_page(json!(page), Some(users.len()), next, started)
}
