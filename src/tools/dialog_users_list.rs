//! `im_dialog_users_list`: a chat's participants with names, positions and bot/extranet flags.
//! The tool pages through the method itself (pages of 200 through `next`), stops at `MAX_USERS`,
//! and gives each user once.

use std::collections::HashSet;

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::dialog_get::{ChatRef, ChatRefSchema};
use super::error::ToolError;
use super::registry::{Access, ToolEntry, Writes, read, reads_only, unexpected};
use super::schema::{self, no_default};
use super::shape::{Shaper, User};
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_dialog_users_list";
const METHOD: &str = "im.dialog.users.list";
const TITLE: &str = "List chat participants with names";

const DESCRIPTION: &str = "\
A chat's participants with names, positions and bot/extranet flags (REST im.dialog.users.list), as \
the acting user sees them. Give CHAT_ID or DIALOG_ID. Pages by itself (200 members a request) \
up to MAX_USERS; truncated says more exist.";

/// The method's largest page.
pub const PAGE: i64 = 200;
const DEFAULT_MAX_USERS: i64 = 500;
const MAX_MAX_USERS: i64 = 5000;

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
    #[serde(flatten)]
    #[schemars(with = "ChatRefSchema")]
    chat: ChatRef,
    /// Leave out system users (bots, connectors).
    #[serde(rename = "SKIP_EXTERNAL")]
    #[schemars(extend("type" = "boolean"))]
    skip_external: Option<bool>,
    /// Most participants to return; default 500.
    #[serde(rename = "MAX_USERS", default)]
    #[schemars(range(min = 1, max = MAX_MAX_USERS), transform = no_default)]
    max_users: i64,
}

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    count: usize,
    /// Participants the caller may see, per the portal.
    total: i64,
    truncated: bool,
    users: Vec<User>,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(
        arguments,
        &["CHAT_ID", "DIALOG_ID", "SKIP_EXTERNAL", "MAX_USERS"],
    )?;
    Ok(Input {
        chat: ChatRef::parse(&args)?,
        skip_external: args::flag(&args, "SKIP_EXTERNAL")?,
        max_users: args::integer(&args, "MAX_USERS", 1..=MAX_MAX_USERS, DEFAULT_MAX_USERS)?,
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
        let dialog_id = input.chat.dialog();
        let shaper = Shaper::new(client);
        let mut users = Vec::new();
        let mut seen = HashSet::new();
        let mut offset = 0;
        let mut total = 0;
        // Enough pages for MAX_USERS even if every page repeated users, and no more.
        let most_pages = input.max_users / PAGE + 2;
        let mut pages = 0;
        // Whether the answer is known to be incomplete: a `next` not followed, or fewer users
        // than the portal says it has.
        let mut truncated = false;
        loop {
            if pages == most_pages {
                truncated = true;
                break;
            }
            pages += 1;
            let mut params = json!({"DIALOG_ID": dialog_id, "LIMIT": PAGE, "OFFSET": offset});
            if let Some(skip) = input.skip_external {
                params["SKIP_EXTERNAL"] = json!(args::yes_no(skip));
            }
            let envelope = read(client, METHOD, &params, observer).await?;
            let page = envelope.result.as_array().ok_or_else(|| {
                unexpected(
                    client,
                    format!("im.dialog.users.list answered {}", envelope.result),
                )
            })?;
            // The latest count: members may join or leave while the pages are read.
            total = envelope.total.unwrap_or(total);
            truncated |= envelope.cut;
            for user in page.iter().filter_map(|u| shaper.user(u)) {
                if seen.insert(user.id) {
                    users.push(user);
                }
            }
            match envelope.next {
                None => break,
                // A `next` that repeats or goes back would have us loop: more exist, unread.
                Some(next) if next <= offset => {
                    truncated = true;
                    break;
                }
                Some(_) if users.len() as i64 >= input.max_users => {
                    truncated = true;
                    break;
                }
                Some(next) => offset = next,
            }
        }
        let max = usize::try_from(input.max_users).unwrap_or(usize::MAX);
        truncated |= users.len() > max || (users.len() as i64) < total;
        users.truncate(max);
        let answer = Answer {
            count: users.len(),
            total: total.max(users.len() as i64),
            truncated,
            users,
        };
        serde_json::to_value(answer).map_err(|_| ToolError::internal())
    })
}
