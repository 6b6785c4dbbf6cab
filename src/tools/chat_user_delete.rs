//! `im_chat_user_delete` (a write, served with `--allow-writes`): removes one user from a chat.
//! Destructive: the user must type the chat ID to confirm before anything is sent.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::confirm::Question;
use super::error::ToolError;
use super::registry::{Access, Intent, ToolEntry, Writes, write_true};
use super::schema;
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_chat_user_delete";
const METHOD: &str = "im.chat.user.delete";
const TITLE: &str = "Remove a user from a chat";
const ACCESS: Access = Access::Write {
    destructive: true,
    idempotent: true,
};

const DESCRIPTION: &str = "\
Removes one user from a chat (REST im.chat.user.delete), as the acting user, who needs the \
right to remove members. Destructive: the user types the chat ID to confirm first.";

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
    schema::of::<Input>()
}

fn output() -> Value {
    schema::of::<Answer>()
}

/// The arguments as [`parse`] reads them; the input schema is derived from it.
#[derive(JsonSchema)]
struct Input {
    #[serde(rename = "CHAT_ID")]
    #[schemars(range(min = 1))]
    chat_id: i64,
    #[serde(rename = "USER_ID")]
    #[schemars(range(min = 1))]
    user_id: i64,
}

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    ok: bool,
    chat_id: i64,
    user_id: i64,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(arguments, &["CHAT_ID", "USER_ID"])?;
    Ok(Input {
        chat_id: args::chat_arg(&args)?,
        user_id: args::id_arg(&args, "USER_ID", 1271)?,
    })
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let Input { chat_id, user_id } = parse(arguments)?;
    Ok(Some(Intent {
        summary: format!("remove user {user_id} from chat {chat_id}"),
        chat: Some(chat_id),
        message: None,
        writes_to: Some(vec![format!("chat{chat_id}")]),
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
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let Input { chat_id, user_id } = parse(arguments)?;
        let params = json!({"CHAT_ID": chat_id, "USER_ID": user_id});
        write_true(client, METHOD, &params, observer).await?;
        let answer = Answer {
            ok: true,
            chat_id,
            user_id,
        };
        serde_json::to_value(answer).map_err(|_| ToolError::internal())
    })
}
