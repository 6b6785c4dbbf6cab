//! `im_chat_user_delete` (a write, served with `--allow-writes`): removes one user from a chat.
//! Destructive: the user must type the chat ID to confirm before anything is sent.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::confirm::Question;
use super::error::ToolError;
use super::registry::{Access, Intent, ToolEntry, write_true};
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_chat_user_delete";
const METHOD: &str = "im.chat.user.delete";
const TITLE: &str = "Remove a user from a chat";
const ACCESS: Access = Access::Write {
    destructive: true,
    idempotent: true,
};

const DESCRIPTION: &str = "\
Removes one user from a chat (REST im.chat.user.delete), as the webhook's user, who needs the \
right to remove members. Destructive: the user is asked to type the chat ID to confirm, and \
nothing is sent otherwise.";

pub const ENTRY: ToolEntry = ToolEntry {
    name: NAME,
    method: METHOD,
    scope: "im",
    access: ACCESS,
    intent,
    title: TITLE,
    description: DESCRIPTION,
    input,
    output,
    check: |arguments| parse(arguments).map(drop),
    run,
};

fn input() -> Value {
    json!({
        "type": "object",
        "properties": {
            "CHAT_ID": {"type": "integer", "minimum": 1},
            "USER_ID": {"type": "integer", "minimum": 1},
        },
        "required": ["CHAT_ID", "USER_ID"],
    })
}

fn output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "chat_id": {"type": "integer"},
            "user_id": {"type": "integer"},
        },
        "required": ["ok", "chat_id", "user_id"],
    })
}

fn parse(arguments: &JsonObject) -> Result<(i64, i64), ToolError> {
    let args = Args::new(arguments, &["CHAT_ID", "USER_ID"])?;
    Ok((
        args::chat_arg(&args)?,
        args::id_arg(&args, "USER_ID", 1271)?,
    ))
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let (chat_id, user_id) = parse(arguments)?;
    Ok(Some(Intent {
        summary: format!("remove user {user_id} from chat {chat_id}"),
        chat: Some(chat_id),
        user: Some(user_id),
        confirm: Some(Question {
            message: format!(
                "Remove user {user_id} from chat {chat_id} on your Bitrix24 portal \
                 (im.chat.user.delete)? To confirm, type the chat ID: {chat_id}"
            ),
            expected: chat_id.to_string(),
        }),
    }))
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let (chat_id, user_id) = parse(arguments)?;
        let params = json!({"CHAT_ID": chat_id, "USER_ID": user_id});
        write_true(client, METHOD, &params, observer).await?;
        Ok(json!({"ok": true, "chat_id": chat_id, "user_id": user_id}))
    })
}
