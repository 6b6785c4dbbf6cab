//! `im_search_chat_list`: chats whose title (or a member's name) starts with the words of `FIND`,
//! among the chats the acting user can access — the way from a name to a chat ID.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::error::ToolError;
use super::registry::{Access, ToolEntry, Writes, read, reads_only, unexpected};
use super::schema::{self, no_default};
use super::shape::{ChatSummary, Shaper};
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_search_chat_list";
const METHOD: &str = "im.search.chat.list";
const TITLE: &str = "Find chats by name";

const DESCRIPTION: &str = "\
Chats found by name (REST im.search.chat.list) among those the acting user can access. Matching \
is by word prefix (\"Market\" finds \"Marketing \
team\", \"arket\" does not) on chat titles and members' names. Newest chats first; page with \
OFFSET = next.";

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

/// The arguments as [`parse`] reads them; the input schema is derived from it.
#[derive(JsonSchema)]
struct Input {
    #[serde(rename = "FIND")]
    #[schemars(
        length(min = 2),
        description = "At least 2 characters: the start of a word of the title."
    )]
    find: String,
    #[serde(rename = "LIMIT", default)]
    #[schemars(range(min = 1, max = 50), description = "Default 10.", transform = no_default)]
    limit: i64,
    #[serde(rename = "OFFSET", default)]
    #[schemars(range(min = 0), transform = no_default)]
    offset: i64,
}

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    total: i64,
    /// OFFSET of the next page, or null.
    #[schemars(required, extend("type" = ["integer", "null"]))]
    next: Option<i64>,
    chats: Vec<ChatSummary>,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(arguments, &["FIND", "LIMIT", "OFFSET"])?;
    Ok(Input {
        find: args::text(
            &args,
            "FIND",
            2,
            200,
            "a search phrase of 2 to 200 characters (Bitrix24 refuses shorter ones), e.g. \"Marketing\"",
        )?,
        limit: args::integer(&args, "LIMIT", 1..=50, 10)?,
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
        let params = json!({"FIND": input.find, "LIMIT": input.limit, "OFFSET": input.offset});
        let envelope = read(client, METHOD, &params, observer).await?;
        let found = envelope.result.as_array().ok_or_else(|| {
            unexpected(
                client,
                format!("im.search.chat.list answered {}", envelope.result),
            )
        })?;
        let shaper = Shaper::new(client);
        // A page longer than LIMIT is cut to LIMIT, and the next page starts where it was cut.
        let limit = usize::try_from(input.limit).unwrap_or(usize::MAX);
        let cut = found.len() > limit || envelope.cut;
        let chats: Vec<ChatSummary> = found
            .iter()
            .take(limit)
            .filter_map(|chat| shaper.chat(chat))
            .collect();
        let next = if cut {
            Some(input.offset + input.limit)
        } else {
            envelope.next.filter(|next| *next > input.offset)
        };
        let listed = input.offset + found.len() as i64;
        let answer = Answer {
            total: envelope.total.unwrap_or(listed),
            next,
            chats,
        };
        serde_json::to_value(answer).map_err(|_| ToolError::internal())
    })
}
