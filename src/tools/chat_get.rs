//! `im_chat_get`: the chat linked to an entity (a CRM item, a workgroup, a task, …), by
//! `ENTITY_TYPE` and `ENTITY_ID`. The portal answers `null` when nothing is linked, which is a
//! normal answer here (`found: false`), not an error.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::error::ToolError;
use super::registry::{Access, ToolEntry, Writes, read, reads_only, unexpected};
use super::schema;
use super::shape;
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_chat_get";
const METHOD: &str = "im.chat.get";
const TITLE: &str = "Find the chat of an entity";

const DESCRIPTION: &str = "\
The ID of the chat linked to an entity (REST im.chat.get), as the acting user sees it: e.g. \
ENTITY_TYPE CRM with ENTITY_ID DEAL|1663 gives the deal's discussion chat; SONET_GROUP with a \
workgroup ID its chat. For CRM only the discussion chat is linked, not open-line chats.";

/// The link types Bitrix24 documents for `im.chat.get`.
pub const ENTITY_TYPES: [&str; 12] = [
    "CRM",
    "SONET_GROUP",
    "TASKS_TASK",
    "TASKS",
    "CALENDAR",
    "LINES",
    "LIVECHAT",
    "VIDEOCONF",
    "AI_ASSISTANT_PRIVATE",
    "ANNOUNCEMENT",
    "MAIL",
    "CALL",
];

/// Said when nothing is linked, in the result itself.
pub const NOT_FOUND_NOTE: &str = "No chat is linked to this entity as the acting user sees \
it. For CRM, only the item's discussion chat is linked (open-line chats of a CRM item come from \
imopenlines.crm.chat.get, scope imopenlines); im_search_chat_list finds chats by name.";

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
    schema::of::<Input>()
}

fn output() -> Value {
    schema::of::<Answer>()
}

/// The arguments as [`parse`] reads them; the input schema is derived from it.
#[derive(JsonSchema)]
struct Input {
    #[serde(rename = "ENTITY_TYPE")]
    #[schemars(extend("enum" = ENTITY_TYPES))]
    entity_type: String,
    /// By type: CRM DEAL|1663, LEAD|13, CONTACT|25, COMPANY|7, DYNAMIC_<type>|<id>; SONET_GROUP, TASKS, CALENDAR: the ID.
    #[serde(rename = "ENTITY_ID")]
    entity_id: String,
}

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    found: bool,
    /// The chat's ID, or null when not found.
    #[schemars(required, extend("type" = ["integer", "null"]))]
    chat_id: Option<i64>,
    /// chat<ID> for im_dialog_get and im_dialog_users_list, or null.
    #[schemars(required, extend("type" = ["string", "null"]))]
    dialog_id: Option<String>,
    entity_type: String,
    entity_id: String,
    /// Only when not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = "string"))]
    note: Option<&'static str>,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(arguments, &["ENTITY_TYPE", "ENTITY_ID"])?;
    let expected_type = format!("one of {}", ENTITY_TYPES.join(", "));
    let given = args.required("ENTITY_TYPE", &expected_type)?;
    let entity_type = given
        .as_str()
        .map(|t| t.trim().to_ascii_uppercase())
        .filter(|t| ENTITY_TYPES.contains(&t.as_str()))
        .ok_or_else(|| args::wrong("ENTITY_TYPE", &expected_type, given))?;
    let entity_id = args::text(
        &args,
        "ENTITY_ID",
        1,
        200,
        "a non-empty string of at most 200 characters, e.g. \"DEAL|1663\"",
    )?;
    Ok(Input {
        entity_type,
        entity_id,
    })
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let input = parse(arguments)?;
        let params = json!({"ENTITY_TYPE": input.entity_type, "ENTITY_ID": input.entity_id});
        let envelope = read(client, METHOD, &params, observer).await?;
        let chat_id = match &envelope.result {
            Value::Null | Value::Bool(false) => None,
            Value::Object(found) => Some(
                found
                    .get("ID")
                    .or_else(|| found.get("id"))
                    .and_then(shape::id)
                    .ok_or_else(|| {
                        unexpected(client, format!("im.chat.get answered {}", envelope.result))
                    })?,
            ),
            other => return Err(unexpected(client, format!("im.chat.get answered {other}"))),
        };
        let answer = Answer {
            found: chat_id.is_some(),
            chat_id,
            dialog_id: chat_id.map(|id| format!("chat{id}")),
            entity_type: input.entity_type,
            entity_id: input.entity_id,
            note: chat_id.is_none().then_some(NOT_FOUND_NOTE),
        };
        serde_json::to_value(answer).map_err(|_| ToolError::internal())
    })
}
