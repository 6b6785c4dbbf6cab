//! `im_user_list_get`: names for user IDs (bots included, which `user.get` skips). IDs go to the
//! portal in chunks of 50; both documented answer forms (an array, or an object keyed by ID) are
//! read, and IDs the portal did not return are listed as missing.

use std::collections::HashMap;

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::error::ToolError;
use super::registry::{Access, ToolEntry, Writes, read, reads_only, unexpected};
use super::schema;
use super::shape::{Shaper, User};
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_user_list_get";
const METHOD: &str = "im.user.list.get";
const TITLE: &str = "Names of users by ID";

const DESCRIPTION: &str = "\
Names, positions and bot/extranet flags of users by ID (REST im.user.list.get), bots included, as \
the acting user may see them. Up to 500 IDs, 50 per request; missing lists IDs the portal did \
not return.";

const MAX_IDS: usize = 500;
/// IDs per request.
pub const CHUNK: usize = 50;

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
    /// User IDs, e.g. [99, 1269].
    #[serde(rename = "ID")]
    #[schemars(length(min = 1, max = MAX_IDS), inner(range(min = 1)))]
    ids: Vec<i64>,
}

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    users: Vec<User>,
    missing: Vec<i64>,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(arguments, &["ID"])?;
    Ok(Input {
        ids: args::user_ids(&args, "ID", MAX_IDS, "[99, 1269]")?,
    })
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let ids = parse(arguments)?.ids;
        let shaper = Shaper::new(client);
        let mut found: HashMap<i64, User> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let envelope = read(client, METHOD, &json!({"ID": chunk}), observer).await?;
            let users: Vec<&Value> = match &envelope.result {
                Value::Array(list) => list.iter().collect(),
                Value::Object(by_id) => by_id.values().collect(),
                // PHP's empty array for "none of them".
                Value::Null => Vec::new(),
                other => {
                    return Err(unexpected(
                        client,
                        format!("im.user.list.get answered {other}"),
                    ));
                }
            };
            for user in users.into_iter().filter_map(|u| shaper.user(u)) {
                if chunk.contains(&user.id) {
                    found.insert(user.id, user);
                }
            }
        }
        let users: Vec<User> = ids.iter().filter_map(|id| found.get(id).cloned()).collect();
        let missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !found.contains_key(id))
            .collect();
        serde_json::to_value(Answer { users, missing }).map_err(|_| ToolError::internal())
    })
}
