//! The REST methods the sample portal implements, as the Bitrix24 server does, each answering as
//! its caller (the webhook's user, or the user a token was issued to): `im.chat.user.list`, `scope`,
//! `profile` and `user.current` here, the other chat methods in [`super::chat`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{PortalData, chat, error, now, php};

/// Answers one method call from an authorised caller (a user ID).
pub fn dispatch(
    data: &PortalData,
    caller: i64,
    method: &str,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
    match method {
        "im.chat.user.list" => chat_user_list(data, caller, params, started),
        "scope" => success(json!(data.scopes), started),
        "profile" => profile(data, caller, started),
        "user.current" => user_current(data, caller, started),
        "im.chat.get" => chat::chat_get(data, params, started),
        "im.dialog.get" => chat::dialog_get(data, caller, params, started),
        "im.dialog.users.list" => chat::dialog_users_list(data, caller, params, started),
        "im.search.chat.list" => chat::search_chat_list(data, caller, params, started),
        "im.recent.list" => chat::recent_list(data, caller, params, started),
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
fn chat_user_list(
    data: &PortalData,
    caller: i64,
    params: &Map<String, Value>,
    started: f64,
) -> Response {
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

/// `profile` (scope `basic`, any user): who the caller is, with `ID` as a string and `ADMIN`.
fn profile(data: &PortalData, caller: i64, started: f64) -> Response {
    let Some(user) = data.users.get(&caller) else {
        return no_user();
    };
    let result = json!({
        "ID": caller.to_string(),
        "ADMIN": data.admins.contains(&caller),
        "NAME": user.first_name,
        "LAST_NAME": user.last_name,
        "PERSONAL_GENDER": "",
        "PERSONAL_PHOTO": "",
        "TIME_ZONE": "",
        "TIME_ZONE_OFFSET": 0,
    });
    success(result, started)
}

/// `user.current` (scopes `user`, `user_brief`, `user_basic`): the caller's directory record.
fn user_current(data: &PortalData, caller: i64, started: f64) -> Response {
    let Some(user) = data.users.get(&caller) else {
        return no_user();
    };
    let result = json!({
        "ID": caller.to_string(),
        "ACTIVE": true,
        "NAME": user.first_name,
        "LAST_NAME": user.last_name,
        "IS_ONLINE": "Y",
        "PERSONAL_GENDER": "",
        "PERSONAL_BIRTHDAY": "",
        "WORK_POSITION": user.work_position,
        "USER_TYPE": if user.extranet { "extranet" } else { "employee" },
        "UF_DEPARTMENT": [1],
    });
    success(result, started)
}

/// A caller the portal's directory does not hold (a sample edited to name nobody): the token's
/// user is gone.
fn no_user() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "NO_AUTH_FOUND",
        "Wrong authorization data",
    )
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
