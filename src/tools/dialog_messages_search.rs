//! `im_dialog_messages_search` (REST im.dialog.messages.search): skeleton, filled in by the message tools of issue 17.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use serde_json::{Value, json};

use super::error::ToolError;
use super::registry::{Access, ToolEntry, Writes, reads_only};
use crate::bitrix::{Client, Observer};

pub const ENTRY: ToolEntry = ToolEntry {
    name: "im_dialog_messages_search",
    method: "im.dialog.messages.search",
    scope: "im",
    access: Access::Read,
    intent: reads_only,
    title: "Search a chat's messages",
    description: "Search a chat's messages (REST im.dialog.messages.search).",
    input: || json!({"type": "object", "properties": {}}),
    output: || json!({"type": "object", "properties": {}}),
    check: |_| Ok(()),
    run,
};

fn run<'a>(
    _client: &'a Client,
    _arguments: &'a JsonObject,
    _observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move { Err(ToolError::internal()) })
}
