//! The REST methods the sample portal implements, as the Bitrix24 server does: `im.chat.user.list`
//! and `scope` here, the other chat methods in [`super::chat`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{PortalData, chat, error, now, php};

/// Answers one method call from an authorised caller.
pub fn dispatch(
    data: &PortalData,
    method: &str,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    match method {
        "im.chat.user.list" => chat_user_list(data, params, started),
        "scope" => success(json!(data.scopes), started),
        "im.chat.get" => chat::chat_get(data, params, started),
        "im.dialog.get" => chat::dialog_get(data, params, started),
        "im.dialog.users.list" => chat::dialog_users_list(data, params, started),
        "im.search.chat.list" => chat::search_chat_list(data, params, started),
        "im.recent.list" => chat::recent_list(data, params, started),
        "im.user.list.get" => chat::user_list_get(data, params, started),
        "user.get" => chat::user_get(data, params, started),
        _ => error(
            StatusCode::NOT_FOUND,
            "ERROR_METHOD_NOT_FOUND",
            "Method not found!",
        ),
    }
}

/// `im.chat.user.list` as the server implements it: `CHAT_ID` through PHP `intval` (or the
/// undocumented `DIALOG_ID=chatNNN`), the general chat refused, unknown or foreign chats empty.
fn chat_user_list(data: &PortalData, params: &Map<String, Value>, started: f64) -> Response {
    let chat_id = match params.get("CHAT_ID") {
        Some(value) => php::intval(value),
        None => params
            .get("DIALOG_ID")
            .and_then(Value::as_str)
            .and_then(|d| d.strip_prefix("chat"))
            .map_or(0, |id| php::intval(&Value::String(id.to_owned()))),
    };
    if chat_id <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "CHAT_ID_EMPTY",
            "Chat ID can't be empty",
        );
    }
    if chat_id == data.general_chat_id {
        return error(StatusCode::FORBIDDEN, "ACCESS_ERROR", "Action unavailable");
    }
    let caller = data.webhook_user_id as i64;
    let hidden = data
        .chat_info
        .get(&chat_id)
        .is_some_and(|info| !info.members_visible);
    let visible = data
        .chats
        .get(&chat_id)
        .filter(|members| members.contains(&caller) && !hidden)
        .cloned()
        .unwrap_or_default();
    success(json!(visible), started)
}

/// A success without paging fields.
pub fn success(result: Value, started: f64) -> Response {
    success_page(result, None, None, started)
}

/// A success of a list method: `total` and, when there is a further page, `next`.
pub fn success_page(
    result: Value,
    total: Option<usize>,
    next: Option<usize>,
    started: f64,
) -> Response {
    let finished = now();
    let reset_at = started.floor() as i64 + 600;
    let mut body = json!({
        "result": result,
        "time": {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": 0,
            "date_start": php::iso8601(started as i64),
            "date_finish": php::iso8601(finished as i64),
            "operating_reset_at": reset_at,
            "operating": 0,
        }
    });
    if let Some(total) = total {
        body["total"] = json!(total);
    }
    if let Some(next) = next {
        body["next"] = json!(next);
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}
