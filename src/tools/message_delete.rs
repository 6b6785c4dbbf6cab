//! `im_message_delete` (a write, served with `--allow-writes`): deletes one message. Destructive:
//! the question quotes the message's first line as the portal's text ([`super::confirm::targets`])
//! and the user types the message ID. The call names the message's chat too, and one read checks
//! that the message is there before anything is sent, so a wrong ID deletes nothing and
//! `--write-chats` holds.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::confirm::Question;
use super::dialog_get::{ChatRef, ChatRefSchema};
use super::error::ToolError;
use super::message_write::{self, Written, outcome_hint};
use super::registry::{Access, Intent, ToolEntry, Writes, write_true};
use super::schema;
use super::write_chats::shown;
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_message_delete";
const METHOD: &str = "im.message.delete";
const TITLE: &str = "Delete a message";
const ACCESS: Access = Access::Write {
    destructive: true,
    idempotent: true,
};

const DESCRIPTION: &str = "\
Deletes a message in the chat given, as the acting user (REST im.message.delete), else \
MESSAGE_NOT_FOUND; the user types the message ID to confirm.";

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
    schema::of::<Written>()
}

/// The arguments as [`parse`] reads them; the input schema is derived from it.
#[derive(JsonSchema)]
struct Input {
    #[serde(rename = "MESSAGE_ID")]
    #[schemars(range(min = 1))]
    message_id: i64,
    #[serde(flatten)]
    #[schemars(with = "ChatRefSchema")]
    chat: ChatRef,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(arguments, &["MESSAGE_ID", "CHAT_ID", "DIALOG_ID"])?;
    Ok(Input {
        message_id: args::id_arg(&args, "MESSAGE_ID", 84877)?,
        chat: ChatRef::parse(&args)?,
    })
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let Input { message_id, chat } = parse(arguments)?;
    let dialog = chat.dialog();
    let place = shown(&dialog);
    let question = Question {
        message: format!(
            "Delete message {message_id} in {place} on your Bitrix24 portal (im.message.delete)? \
             To confirm, type the message ID: {message_id}"
        ),
        expected: message_id.to_string(),
    };
    Ok(Some(chat.intent(
        format!("delete message {message_id} in {place}"),
        Some(question),
        Some(message_id),
    )))
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let Input { message_id, chat } = parse(arguments)?;
        let dialog = chat.dialog();
        message_write::ensure_in(client, &dialog, message_id, observer).await?;
        write_true(client, METHOD, &json!({"MESSAGE_ID": message_id}), observer)
            .await
            .map_err(outcome_hint)?;
        Written::answer(message_id, &chat)
    })
}
