//! `im_message_delete` (REST im.message.delete): skeleton, filled in by the message tools of issue 17.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use serde_json::{Value, json};

use super::error::ToolError;
use super::registry::{Access, Intent, ToolEntry, Writes};
use crate::bitrix::{Client, Observer};

pub const ENTRY: ToolEntry = ToolEntry {
    name: "im_message_delete",
    method: "im.message.delete",
    scope: "im",
    access: Access::Write {
        destructive: true,
        idempotent: true,
    },
    intent,
    title: "Delete a message",
    description: "Delete a message (REST im.message.delete).",
    input: || json!({"type": "object", "properties": {}}),
    output: || json!({"type": "object", "properties": {}}),
    check: |_| Ok(()),
    run,
};

fn intent(_arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    Err(ToolError::internal())
}

fn run<'a>(
    _client: &'a Client,
    _arguments: &'a JsonObject,
    _observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move { Err(ToolError::internal()) })
}
