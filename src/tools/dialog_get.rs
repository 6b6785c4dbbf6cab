//! `im_dialog_get`: what a chat is — its name, type, owner, managers, member count, linked
//! entity, the caller's role, and whether the caller may see its member list.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{self, Args};
use super::confirm::Question;
use super::error::ToolError;
use super::registry::{Access, Intent, ToolEntry, Writes, read, reads_only, unexpected};
use super::schema;
use super::shape::{self, Shaper};
use crate::bitrix::{Client, Observer};

const NAME: &str = "im_dialog_get";
const METHOD: &str = "im.dialog.get";
const TITLE: &str = "Describe a chat";

const DESCRIPTION: &str = "\
What a chat is (REST im.dialog.get), as the acting user sees it; that user must be in the chat. \
Give CHAT_ID (sent as DIALOG_ID chat<ID>) or DIALOG_ID. members_visible false explains an empty \
member list.";

/// The most managers passed on.
const MAX_MANAGERS: usize = 200;

/// A chat as every tool that takes one reads it: `CHAT_ID` or `DIALOG_ID` (exactly one), held in
/// the portal's dialog form (`chat2935`, `sg17`, `1269`). Flattened into the tools' inputs, with
/// the schema of [`ChatRefSchema`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRef {
    dialog: String,
}

/// The schema of a [`ChatRef`]: the two names a caller may give. Only its schema is used.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub struct ChatRefSchema {
    #[serde(rename = "CHAT_ID")]
    #[schemars(range(min = 1), extend("type" = "integer"))]
    chat_id: Option<i64>,
    /// chat2935, sg17 (a workgroup) or a user ID (private).
    #[serde(rename = "DIALOG_ID")]
    #[schemars(extend("type" = "string"))]
    dialog_id: Option<String>,
}

impl ChatRef {
    /// Reads `CHAT_ID` or `DIALOG_ID` leniently (`"chat2935"` and `"2935"` as a CHAT_ID too).
    pub fn parse(args: &Args<'_>) -> Result<Self, ToolError> {
        Ok(Self {
            dialog: args::dialog(args)?,
        })
    }

    /// The dialog ID to send: `chat2935`, `sg17` or a user ID.
    pub fn dialog(&self) -> String {
        self.dialog.clone()
    }

    /// The chat, when the dialog is one by number: 2935 for `chat2935`; `None` for `sg17` or a
    /// user.
    pub fn chat(&self) -> Option<i64> {
        self.dialog.strip_prefix("chat")?.parse().ok()
    }

    /// A write to this chat: named in its confirmation and held to `--write-chats`.
    pub fn intent(
        &self,
        summary: String,
        confirm: Option<Question>,
        message: Option<i64>,
    ) -> Intent {
        Intent {
            summary,
            confirm,
            chat: self.chat(),
            user: self.user(),
            message,
            writes_to: Some(vec![self.dialog()]),
        }
    }

    /// The user of a private dialog: 1269 for `1269`; `None` for a chat.
    pub fn user(&self) -> Option<i64> {
        self.dialog
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| self.dialog.parse().ok())
            .flatten()
    }
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
    schema::of::<ChatRefSchema>()
}

fn output() -> Value {
    schema::of::<Answer>()
}

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    chat_id: i64,
    dialog_id: String,
    name: String,
    /// chat, open, crm, sonetGroup, …
    #[serde(rename = "type")]
    kind: String,
    /// User ID; 0 when none.
    owner: i64,
    user_counter: i64,
    /// Empty when not linked.
    entity_type: String,
    entity_id: String,
    /// The caller's role: owner, manager, member.
    role: String,
    #[schemars(length(max = MAX_MANAGERS))]
    manager_list: Vec<i64>,
    /// Whether the caller may see the member list.
    members_visible: bool,
    /// Only when the chat has more managers than the 200 given.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    #[schemars(transform = schema::no_default)]
    manager_list_truncated: bool,
}

fn parse(arguments: &JsonObject) -> Result<ChatRef, ToolError> {
    ChatRef::parse(&Args::new(arguments, &["CHAT_ID", "DIALOG_ID"])?)
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let dialog_id = parse(arguments)?.dialog();
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
        let answer = Answer {
            chat_id,
            dialog_id: dialog,
            name: shaper.text(chat.get("name")),
            kind: shaper.text(chat.get("type")),
            owner: chat.get("owner").and_then(shape::id).unwrap_or(0),
            user_counter: shape::count(chat.get("user_counter")),
            entity_type: shaper.text(chat.get("entity_type")),
            entity_id: shaper.text(chat.get("entity_id")),
            role: shaper.text(chat.get("role")).to_ascii_lowercase(),
            manager_list: managers,
            members_visible,
            manager_list_truncated: managers_cut,
        };
        serde_json::to_value(answer).map_err(|_| ToolError::internal())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(arguments: Value) -> ChatRef {
        let map = arguments.as_object().unwrap().clone();
        ChatRef::parse(&Args::new(&map, &["CHAT_ID", "DIALOG_ID"]).unwrap()).unwrap()
    }

    #[test]
    fn a_chat_names_its_dialog_its_chat_or_its_user() {
        let by_id = chat(json!({"CHAT_ID": "chat2935"}));
        assert_eq!(
            (by_id.dialog(), by_id.chat(), by_id.user()),
            ("chat2935".into(), Some(2935), None)
        );
        let as_dialog = chat(json!({"DIALOG_ID": "CHAT2935"}));
        assert_eq!(as_dialog, by_id);
        let group = chat(json!({"DIALOG_ID": "sg17"}));
        assert_eq!(
            (group.dialog(), group.chat(), group.user()),
            ("sg17".into(), None, None)
        );
        let private = chat(json!({"DIALOG_ID": 1269}));
        assert_eq!(
            (private.dialog(), private.chat(), private.user()),
            ("1269".into(), None, Some(1269))
        );
    }
}
