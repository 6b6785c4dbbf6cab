//! `im_recent_list`: the acting user's recent dialogs, one page. Bitrix24 pages this list by
//! `OFFSET` and `hasMore` (no `next`), and its pages can repeat a dialog: each appears once here.

use std::collections::HashSet;

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::error::ToolError;
use super::registry::{Access, ToolEntry, Writes, read, reads_only, unexpected};
use super::schema::{self, no_default};
use super::shape::{self, Shaper};
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_recent_list";
const METHOD: &str = "im.recent.list";
const TITLE: &str = "List my recent dialogs";

const DESCRIPTION: &str = "\
The acting user's own recent chats and private dialogs, newest first (REST im.recent.list). \
Page with OFFSET = next_offset while has_more; a page may repeat a dialog of an earlier one.";

const FLAGS: [&str; 3] = ["SKIP_CHAT", "SKIP_DIALOG", "SKIP_OPENLINES"];
const MAX_OFFSET: i64 = 1_000_000;

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

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    items: Vec<RecentItem>,
    has_more: bool,
    /// OFFSET of the next page, or null.
    #[schemars(required, extend("type" = ["integer", "null"]))]
    next_offset: Option<i64>,
}

// One dialog of the list. (Plain comments: a doc comment on a nested type would become its
// schema's description.)
#[derive(Serialize, JsonSchema)]
struct RecentItem {
    /// chat<ID>, or a user ID for a private dialog.
    dialog_id: String,
    chat_id: i64,
    /// chat, user, lines, …
    #[serde(rename = "type")]
    kind: String,
    title: String,
    last_message_date: String,
}

/// The arguments as [`parse`] reads them; the input schema is derived from it.
#[derive(JsonSchema)]
struct Input {
    /// Leave out group chats.
    #[serde(rename = "SKIP_CHAT")]
    #[schemars(extend("type" = "boolean"))]
    skip_chat: Option<bool>,
    /// Leave out private dialogs.
    #[serde(rename = "SKIP_DIALOG")]
    #[schemars(extend("type" = "boolean"))]
    skip_dialog: Option<bool>,
    /// Leave out open-line chats.
    #[serde(rename = "SKIP_OPENLINES")]
    #[schemars(extend("type" = "boolean"))]
    skip_openlines: Option<bool>,
    #[serde(rename = "LIMIT", default)]
    #[schemars(range(min = 1, max = 200), description = "Default 50.", transform = no_default)]
    limit: i64,
    #[serde(rename = "OFFSET", default)]
    #[schemars(range(min = 0), transform = no_default)]
    offset: i64,
}

impl Input {
    /// The flags given, with their names.
    fn flags(&self) -> impl Iterator<Item = (&'static str, bool)> {
        FLAGS
            .into_iter()
            .zip([self.skip_chat, self.skip_dialog, self.skip_openlines])
            .filter_map(|(name, value)| value.map(|v| (name, v)))
    }
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(
        arguments,
        &[
            "SKIP_CHAT",
            "SKIP_DIALOG",
            "SKIP_OPENLINES",
            "LIMIT",
            "OFFSET",
        ],
    )?;
    Ok(Input {
        skip_chat: args::flag(&args, "SKIP_CHAT")?,
        skip_dialog: args::flag(&args, "SKIP_DIALOG")?,
        skip_openlines: args::flag(&args, "SKIP_OPENLINES")?,
        limit: args::integer(&args, "LIMIT", 1..=200, 50)?,
        offset: args::integer(&args, "OFFSET", 0..=MAX_OFFSET, 0)?,
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
        let mut params = json!({});
        for (name, value) in input.flags() {
            params[name] = json!(args::yes_no(value));
        }
        params["LIMIT"] = json!(input.limit);
        params["OFFSET"] = json!(input.offset);
        let envelope = read(client, METHOD, &params, observer).await?;
        let result = &envelope.result;
        let page = result
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| unexpected(client, format!("im.recent.list answered {result}")))?;
        // A page longer than LIMIT is cut to LIMIT; the rest is the next page's, so there is more.
        let limit = usize::try_from(input.limit).unwrap_or(usize::MAX);
        let cut = page.len() > limit || envelope.cut;
        let has_more = cut
            || shape::flag(
                result.get("hasMore").or_else(|| result.get("hasMorePages")),
                false,
            );
        let shaper = Shaper::new(client);
        let mut seen = HashSet::new();
        let items: Vec<RecentItem> = page
            .iter()
            .take(limit)
            .filter_map(|item| recent_item(&shaper, item))
            .filter(|item| seen.insert(item.dialog_id.clone()))
            .collect();
        let answer = Answer {
            items,
            has_more,
            next_offset: has_more.then_some(input.offset + input.limit),
        };
        serde_json::to_value(answer).map_err(|_| ToolError::internal())
    })
}

/// One dialog of the list: its `id` is a user ID for a private dialog, `chatNNN` for a chat.
fn recent_item(shaper: &Shaper, item: &Value) -> Option<RecentItem> {
    let dialog_id = match item.get("id")? {
        Value::String(s) => args::dialog_id(&Value::String(s.clone()))?,
        number => shape::id(number)?.to_string(),
    };
    let chat_id = item
        .get("chat_id")
        .and_then(shape::id)
        .or_else(|| {
            dialog_id
                .strip_prefix("chat")
                .and_then(|id| id.parse().ok())
        })
        .unwrap_or(0);
    Some(RecentItem {
        dialog_id,
        chat_id,
        kind: shaper.text(item.get("type")),
        title: shaper.text(item.get("title")),
        last_message_date: shaper.text(item.get("message").and_then(|m| m.get("date"))),
    })
}
