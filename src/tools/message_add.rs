//! `im_message_add` (a write, served with `--allow-writes`): posts a message as the acting user.
//! Not destructive — the client's own approval prompt guards it — except a message that notifies
//! everyone (`[user=all]`) or is shown as a system notice (`SYSTEM`): the user then types the
//! dialog ID. `--message-footer` adds its line under the text, within the 20,000 characters.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use super::args::{self, Args};
use super::confirm::Question;
use super::dialog_get::{ChatRef, ChatRefSchema};
use super::error::ToolError;
use super::message_write::{self, MAX_MESSAGE_CHARS, Written, notifies_everyone, outcome_hint};
use super::registry::{Access, Intent, ToolEntry, Writes, unexpected, write};
use super::schema;
use super::write_chats::shown;
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_message_add";
const METHOD: &str = "im.message.add";
const TITLE: &str = "Post a message";
const ACCESS: Access = Access::Write {
    destructive: false,
    idempotent: false,
};

const DESCRIPTION: &str = "\
Posts a message as the acting user (REST im.message.add). MESSAGE is BBCode; [user=all] or \
SYSTEM needs the user to type the dialog ID.";

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
    #[serde(flatten)]
    #[schemars(with = "ChatRefSchema")]
    chat: ChatRef,
    #[serde(rename = "MESSAGE")]
    #[schemars(length(max = MAX_MESSAGE_CHARS))]
    message: String,
    #[serde(rename = "REPLY_ID")]
    #[schemars(range(min = 1), extend("type" = "integer"))]
    reply_id: Option<i64>,
    #[serde(rename = "URL_PREVIEW")]
    #[schemars(extend("type" = "boolean"))]
    url_preview: Option<bool>,
    #[serde(rename = "SYSTEM")]
    #[schemars(extend("type" = "boolean"))]
    system: Option<bool>,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(
        arguments,
        &[
            "CHAT_ID",
            "DIALOG_ID",
            "MESSAGE",
            "REPLY_ID",
            "URL_PREVIEW",
            "SYSTEM",
        ],
    )?;
    let chat = ChatRef::parse(&args)?;
    let message = message_write::text(&args, "give the text to post")?;
    let reply_id = match args.get("REPLY_ID") {
        Some(_) => Some(args::id_arg(&args, "REPLY_ID", 84877)?),
        None => None,
    };
    Ok(Input {
        chat,
        message,
        reply_id,
        url_preview: args::flag(&args, "URL_PREVIEW")?,
        system: args::flag(&args, "SYSTEM")?,
    })
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let post = parse(arguments)?;
    let dialog = post.chat.dialog();
    let everyone = notifies_everyone(&post.message);
    let system = post.system == Some(true);
    let place = shown(&dialog);
    let kind = if system {
        "a system message (shown as the portal's notice)"
    } else {
        "a message"
    };
    let summary = format!("post {kind} to {place}");
    let confirm = (everyone || system).then(|| {
        let notifies = if everyone {
            " that notifies everyone in the chat ([user=all])"
        } else {
            ""
        };
        Question {
            message: format!(
                "Post {kind} to {place}{notifies} on your Bitrix24 portal (im.message.add), \
                 with the text {}? To confirm, type the dialog ID: {}",
                message_write::quoted(&post.message),
                dialog
            ),
            expected: dialog.clone(),
        }
    });
    Ok(Some(post.chat.intent(summary, confirm, None)))
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
    writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let post = parse(arguments)?;
        let dialog = post.chat.dialog();
        let text = message_write::with_footer(&post.message, writes);
        if writes.footer.is_some() {
            message_write::within_limit(&text, "MESSAGE with the --message-footer line")?;
        }
        let mut params = Map::new();
        params.insert("DIALOG_ID".into(), json!(dialog));
        params.insert("MESSAGE".into(), json!(text));
        if let Some(reply_id) = post.reply_id {
            params.insert("REPLY_ID".into(), json!(reply_id));
        }
        for (name, flag) in [("URL_PREVIEW", post.url_preview), ("SYSTEM", post.system)] {
            if let Some(flag) = flag {
                params.insert(name.into(), json!(args::yes_no(flag)));
            }
        }
        let envelope = write(client, METHOD, &Value::Object(params), observer)
            .await
            .map_err(outcome_hint)?;
        // The documented answer is the new message's ID, a bare integer; anything else leaves
        // the post's fate unknown (and it is never sent again by itself).
        let message_id = match &envelope.result {
            Value::Number(n) => n.as_i64().filter(|id| *id > 0),
            _ => None,
        }
        .ok_or_else(|| {
            outcome_hint(
                unexpected(
                    client,
                    format!(
                        "{METHOD} answered {} instead of the new message's ID",
                        super::messages::kind(&envelope.result)
                    ),
                )
                .outcome_unknown(),
            )
        })?;
        Written::answer(message_id, &post.chat)
    })
}
