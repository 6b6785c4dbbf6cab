//! `im_dialog_get`: what a chat is — its name, type, owner, managers, member count, linked
//! entity, the caller's role, and whether the caller may see its member list.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::error::ToolError;
use super::registry::{Access, ToolEntry, read, reads_only, unexpected};
use super::shape::{self, Shaper};
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_dialog_get";
const METHOD: &str = "im.dialog.get";
const TITLE: &str = "Describe a chat";

const DESCRIPTION: &str = "\
What a chat is (REST im.dialog.get), as the webhook's user sees it; that user must be in the chat. \
Give CHAT_ID (sent as DIALOG_ID chat<ID>) or DIALOG_ID. members_visible false explains an empty \
member list.";

/// The most managers passed on.
const MAX_MANAGERS: usize = 200;

/// Shared by the tools that take a chat as `CHAT_ID` or `DIALOG_ID`.
pub fn chat_properties() -> Value {
    json!({
        "CHAT_ID": {"type": "integer", "minimum": 1, "description": "The chat's ID, e.g. 2935. Or give DIALOG_ID."},
        "DIALOG_ID": {"type": "string", "description": "chat2935, sg17 (a workgroup's chat) or a user ID (a private dialog)."},
    })
}

pub const ENTRY: ToolEntry = ToolEntry {
    name: NAME,
    method: METHOD,
    scope: "im",
    access: Access::Read,
    intent: reads_only,
    title: TITLE,
    description: DESCRIPTION,
    input,
    output,
    check: |arguments| parse(arguments).map(drop),
    run,
};

fn input() -> Value {
    json!({"type": "object", "properties": chat_properties()})
}

fn output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "chat_id": {"type": "integer"},
            "dialog_id": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string", "description": "chat, open, crm, sonetGroup, …"},
            "owner": {"type": "integer", "description": "User ID; 0 when none."},
            "user_counter": {"type": "integer"},
            "entity_type": {"type": "string", "description": "Empty when not linked."},
            "entity_id": {"type": "string"},
            "role": {"type": "string", "description": "The caller's role: owner, manager, member."},
            "manager_list": {"type": "array", "items": {"type": "integer"}, "maxItems": MAX_MANAGERS},
            "manager_list_truncated": {"type": "boolean", "description": "Only when the chat has more managers than the 200 given."},
            "members_visible": {"type": "boolean", "description": "Whether the caller may see the member list."},
        },
        "required": ["chat_id", "dialog_id", "name", "type", "owner", "user_counter",
            "entity_type", "entity_id", "role", "manager_list", "members_visible"],
    })
}

fn parse(arguments: &JsonObject) -> Result<String, ToolError> {
    args::dialog(&Args::new(arguments, &["CHAT_ID", "DIALOG_ID"])?)
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let dialog_id = parse(arguments)?;
        let params = json!({"DIALOG_ID": dialog_id});
        let envelope = read(client, METHOD, &params, observer).await?;
        let chat = &envelope.result;
        let chat_id = chat.get("id").and_then(shape::id).ok_or_else(|| {
            unexpected(
                client,
                format!("im.dialog.get answered without a chat id: {chat}"),
            )
        })?;
        let shaper = Shaper::new(client);
        let dialog = match shaper.text(chat.get("dialog_id")) {
            d if d.is_empty() => dialog_id,
            d => d,
        };
        let members_visible = chat
            .get("restrictions")
            .and_then(|r| r.get("user_list"))
            .is_none_or(|v| shape::flag(Some(v), true));
        let mut managers = shape::ids(chat.get("manager_list"));
        let managers_cut = managers.len() > MAX_MANAGERS || envelope.cut;
        managers.truncate(MAX_MANAGERS);
        let mut answer = json!({
            "chat_id": chat_id,
            "dialog_id": dialog,
            "name": shaper.text(chat.get("name")),
            "type": shaper.text(chat.get("type")),
            "owner": chat.get("owner").and_then(shape::id).unwrap_or(0),
            "user_counter": shape::count(chat.get("user_counter")),
            "entity_type": shaper.text(chat.get("entity_type")),
            "entity_id": shaper.text(chat.get("entity_id")),
            "role": shaper.text(chat.get("role")).to_ascii_lowercase(),
            "manager_list": managers,
            "members_visible": members_visible,
        });
        if managers_cut {
            answer["manager_list_truncated"] = json!(true);
        }
        Ok(answer)
    })
}
