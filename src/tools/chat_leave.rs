//! `im_chat_leave` (a write, served with `--allow-writes`): the acting user leaves a chat.
//! Destructive and not idempotent — only another member can bring the user back — so the user
//! must type the chat ID to confirm before anything is sent.

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

const NAME: &str = "im_chat_leave";
const METHOD: &str = "im.chat.leave";
const TITLE: &str = "Leave a chat";
const ACCESS: Access = Access::Write {
    destructive: true,
    idempotent: false,
};

const DESCRIPTION: &str = "\
The acting user leaves a chat (REST im.chat.leave); only another member can \
add them back. Destructive: the user types the chat ID to confirm first.";

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
}

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    ok: bool,
    chat_id: i64,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let chat_id = args::chat_arg(&Args::new(arguments, &["CHAT_ID"])?)?;
    Ok(Input { chat_id })
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let Input { chat_id } = parse(arguments)?;
    Ok(Some(Intent {
        summary: format!("the acting user leaves chat {chat_id}"),
        chat: Some(chat_id),
        message: None,
        writes_to: Some(vec![format!("chat{chat_id}")]),
        user: None,
        confirm: Some(Question {
            message: format!(
                "Your Bitrix24 user leaves chat {chat_id} (im.chat.leave); only \
                 another member can add it back. To confirm, type the chat ID: {chat_id}"
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
        let Input { chat_id } = parse(arguments)?;
        write_true(client, METHOD, &json!({"CHAT_ID": chat_id}), observer).await?;
        serde_json::to_value(Answer { ok: true, chat_id }).map_err(|_| ToolError::internal())
    })
}
