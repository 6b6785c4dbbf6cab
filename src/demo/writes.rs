//! The write methods of the sample portal: `im.chat.user.add`, `im.chat.user.delete` and
//! `im.chat.leave`, run as the caller (the webhook's user, or a token's) against the chats'
//! current members.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::rest::success;
use super::{PortalData, chat, error, lock, php};

/// The write methods (`im.chat.user.add`, `im.chat.user.delete`, `im.chat.leave`), changing
/// `members`; `None` for any other method. Codes and texts as the docs give them.
pub fn dispatch_write(
    members: &Mutex<BTreeMap<i64, Vec<i64>>>,
    data: &PortalData,
    caller: i64,
    method: &str,
    params: &Map<String, Value>,
    started: f64,
) -> Option<Response> {
    if !matches!(
        method,
        "im.chat.user.add" | "im.chat.user.delete" | "im.chat.leave"
    ) {
        return None;
    }
    let mut members = lock(members);
    let chat_id = params.get("CHAT_ID").map_or(0, php::intval);
    if chat_id <= 0 {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "CHAT_ID_EMPTY",
            "Chat ID can't be empty",
        ));
    }
    if chat_id == data.general_chat_id {
        return Some(error(
            StatusCode::FORBIDDEN,
            "ACCESS_ERROR",
            "Action unavailable",
        ));
    }
    let Some(chat) = members.get_mut(&chat_id).filter(|m| m.contains(&caller)) else {
        let code = if method == "im.chat.user.add" {
            "ACCESS_DENIED_EXTEND"
        } else {
            "ACCESS_DENIED_KICK"
        };
        return Some(error(
            StatusCode::FORBIDDEN,
            code,
            "You do not have access to this chat",
        ));
    };
    let managers = chat::info(data, chat_id).managers;
    match method {
        "im.chat.user.add" => {
            let users: Vec<i64> = match params.get("USERS") {
                Some(Value::Array(list)) => {
                    list.iter().map(php::intval).filter(|id| *id > 0).collect()
                }
                _ => Vec::new(),
            };
            for user in users.into_iter().filter(|u| data.users.contains_key(u)) {
                if !chat.contains(&user) {
                    chat.push(user);
                }
            }
        }
        "im.chat.user.delete" => {
            let user = params.get("USER_ID").map_or(0, php::intval);
            if user <= 0 {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "USER_ID_EMPTY",
                    "User ID can't be empty",
                ));
            }
            // Removing others takes a manager (manage_users_delete: manager).
            if user != caller && !managers.contains(&caller) {
                return Some(error(
                    StatusCode::FORBIDDEN,
                    "ACCESS_DENIED_KICK",
                    "You don't have enough rights to exclude a user from the chat",
                ));
            }
            let Some(at) = chat.iter().position(|m| *m == user) else {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "USER_NOT_FOUND",
                    "User not found in chat",
                ));
            };
            chat.remove(at);
        }
        _ => chat.retain(|m| *m != caller),
    }
    Some(success(json!(true), started))
}
