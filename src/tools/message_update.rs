//! `im_message_update` (a write, served with `--allow-writes`): replaces the text of one of the
//! acting user's messages. The call names the message's chat too, and one read checks that the
//! message is there before anything is sent, so a wrong ID changes nothing and `--write-chats`
//! holds. An empty text (which Bitrix24 reads as "delete") is refused; a text that notifies
//! everyone (`[user=all]`) needs the user to type the dialog ID.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use super::args::{self, Args};
use super::confirm::Question;
use super::dialog_get::{ChatRef, ChatRefSchema};
use super::error::ToolError;
use super::message_write::{self, MAX_MESSAGE_CHARS, Written, notifies_everyone, outcome_hint};
use super::registry::{Access, Intent, ToolEntry, Writes, write_true};
use super::schema;
use super::write_chats::shown;
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_message_update";
const METHOD: &str = "im.message.update";
const TITLE: &str = "Edit a message";
const ACCESS: Access = Access::Write {
    destructive: false,
    idempotent: true,
};

const DESCRIPTION: &str = "\
Edits the acting user's message in the chat given (REST im.message.update), else \
MESSAGE_NOT_FOUND. MESSAGE is BBCode; [user=all] needs the typed dialog ID.";

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
    #[serde(rename = "MESSAGE")]
    #[schemars(length(max = MAX_MESSAGE_CHARS))]
    message: String,
    #[serde(rename = "URL_PREVIEW")]
    #[schemars(extend("type" = "boolean"))]
    url_preview: Option<bool>,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(
        arguments,
        &[
            "MESSAGE_ID",
            "CHAT_ID",
            "DIALOG_ID",
            "MESSAGE",
            "URL_PREVIEW",
        ],
    )?;
    Ok(Input {
        message_id: args::id_arg(&args, "MESSAGE_ID", 84877)?,
        chat: ChatRef::parse(&args)?,
        message: message_write::text(
            &args,
            "Bitrix24 would delete the message: use im_message_delete to delete it",
        )?,
        url_preview: args::flag(&args, "URL_PREVIEW")?,
    })
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let edit = parse(arguments)?;
    let dialog = edit.chat.dialog();
    let place = shown(&dialog);
    let message_id = edit.message_id;
    let confirm = notifies_everyone(&edit.message).then(|| Question {
        message: format!(
            "Change message {message_id} in {place} on your Bitrix24 portal (im.message.update) \
             to a text that notifies everyone in it ([user=all]): {}? To confirm, type the dialog \
             ID: {}",
            message_write::quoted(&edit.message),
            dialog
        ),
        expected: dialog.clone(),
    });
    Ok(Some(edit.chat.intent(
        format!("edit message {message_id} in {place}"),
        confirm,
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
        let edit = parse(arguments)?;
        let dialog = edit.chat.dialog();
        message_write::ensure_in(client, &dialog, edit.message_id, observer).await?;
        let mut params = Map::new();
        params.insert("MESSAGE_ID".into(), json!(edit.message_id));
        params.insert("MESSAGE".into(), json!(edit.message));
        if let Some(flag) = edit.url_preview {
            params.insert("URL_PREVIEW".into(), json!(args::yes_no(flag)));
        }
        write_true(client, METHOD, &Value::Object(params), observer)
            .await
            .map_err(outcome_hint)?;
        Written::answer(edit.message_id, &edit.chat)
    })
}
