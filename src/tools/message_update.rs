//! `im_message_update` (REST im.message.update): skeleton, filled in by the message tools of issue 17.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use serde_json::{Value, json};

use super::error::ToolError;
use super::registry::{Access, Intent, ToolEntry, Writes};
use crate::bitrix::{Client, Observer};

pub const ENTRY: ToolEntry = ToolEntry {
    name: "im_message_update",
    method: "im.message.update",
    scope: "im",
    access: Access::Write {
        destructive: false,
        idempotent: true,
    },
    intent,
    title: "Edit a message",
    description: "Edit a message (REST im.message.update).",
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
