//! `im_chat_user_add` (a write, served with `--allow-writes`): adds users to a chat. Not
//! destructive — it can be undone — so it needs no typed confirmation; the client's own approval
//! prompt, driven by the annotations, applies.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::error::ToolError;
use super::registry::{Access, Intent, ToolEntry, Writes, write_true};
use super::schema;
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_chat_user_add";
const METHOD: &str = "im.chat.user.add";
const TITLE: &str = "Add users to a chat";
const ACCESS: Access = Access::Write {
    destructive: false,
    idempotent: true,
};

const DESCRIPTION: &str = "\
Adds users to a chat (REST im.chat.user.add), as the acting user, who needs the right to add \
members. HIDE_HISTORY (default true, as the portal's) hides earlier messages from them.";

const MAX_USERS: usize = 100;

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

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    ok: bool,
    chat_id: i64,
    user_ids: Vec<i64>,
}

/// The arguments as [`parse`] reads them; the input schema is derived from it.
#[derive(JsonSchema)]
struct Input {
    #[serde(rename = "CHAT_ID")]
    #[schemars(range(min = 1))]
    chat_id: i64,
    #[serde(rename = "USERS")]
    #[schemars(length(min = 1, max = MAX_USERS), inner(range(min = 1)))]
    users: Vec<i64>,
    /// Default true.
    #[serde(rename = "HIDE_HISTORY", default)]
    #[schemars(transform = schema::no_default)]
    hide_history: bool,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(arguments, &["CHAT_ID", "USERS", "HIDE_HISTORY"])?;
    let chat_id = args::chat_arg(&args)?;
    let users = args::user_ids(&args, "USERS", MAX_USERS, "[1269, 1271]")?;
    Ok(Input {
        chat_id,
        users,
        hide_history: args::flag(&args, "HIDE_HISTORY")?.unwrap_or(true),
    })
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let input = parse(arguments)?;
    Ok(Some(Intent {
        summary: format!("add users {:?} to chat {}", input.users, input.chat_id),
        chat: Some(input.chat_id),
        message: None,
        writes_to: Some(vec![format!("chat{}", input.chat_id)]),
        user: None,
        confirm: None,
    }))
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let input = parse(arguments)?;
        let params = json!({
            "CHAT_ID": input.chat_id,
            "USERS": input.users,
            "HIDE_HISTORY": args::yes_no(input.hide_history),
        });
        write_true(client, METHOD, &params, observer).await?;
        let answer = Answer {
            ok: true,
            chat_id: input.chat_id,
            user_ids: input.users,
        };
        serde_json::to_value(answer).map_err(|_| ToolError::internal())
    })
}
