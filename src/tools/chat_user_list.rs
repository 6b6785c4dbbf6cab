//! `im_chat_user_list`: the tool's definition as the assistant sees it, the coercion of `CHAT_ID`
//! (which rejects bad input before any I/O), the call, and the shaping of the answer.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::args::{self, Args, MAX_ID};
use super::error::ToolError;
use super::registry::{Access, ToolEntry, Writes, reads_only};
use super::schema;
use crate::bitrix::{Client, Observer};

pub const NAME: &str = "im_chat_user_list";

const TITLE: &str = "List chat participant IDs";

const DESCRIPTION: &str = "\
Participant user IDs of a chat (REST im.chat.user.list), as the acting user sees them: that \
user must be in the chat. An empty list does not prove the chat is empty (the caller may not see \
the members, or no such chat). Names: im_dialog_users_list; a chat's ID: im_chat_get.";

const CHAT_ID_DESCRIPTION: &str = "The chat's ID, e.g. 2935 (\"chat2935\" is accepted too).";

/// Added to an empty answer, in the result itself, because an empty list is ambiguous.
pub const EMPTY_NOTE: &str = "The list is empty: per Bitrix24 this can mean that the acting \
user may not see this chat's participants (e.g. is not a participant) or that the chat does not \
exist, not that the chat has no members.";

/// The successful answer, as `structuredContent` and as JSON text; the output schema is derived
/// from it (field docs are the schema's descriptions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ChatUserList {
    pub chat_id: i64,
    /// In the portal's order.
    pub user_ids: Vec<i64>,
    pub count: usize,
    /// Only when the chat has more participants than the 5000 given.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    #[schemars(transform = schema::no_default)]
    pub truncated: bool,
    /// Only when user_ids is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = "string"))]
    pub note: Option<&'static str>,
}

/// The most IDs passed on: a chat of more members is summarised by its first ones.
pub const MAX_USER_IDS: usize = 5000;

impl ChatUserList {
    pub fn new(chat_id: i64, user_ids: Vec<i64>, truncated: bool) -> Self {
        let note = user_ids.is_empty().then_some(EMPTY_NOTE);
        Self {
            chat_id,
            count: user_ids.len(),
            user_ids,
            truncated,
            note,
        }
    }
}

/// The registry's entry.
pub const ENTRY: ToolEntry = ToolEntry {
    name: NAME,
    method: "im.chat.user.list",
    scope: "im",
    access: Access::Read,
    intent: reads_only,
    title: TITLE,
    description: DESCRIPTION,
    input: input_schema,
    output: output_schema,
    check: |arguments| parse_chat_id(Some(arguments)).map(drop),
    run,
};

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let chat_id = parse_chat_id(Some(arguments))?;
        let (user_ids, truncated) = client
            .chat_members(chat_id, MAX_USER_IDS, observer)
            .await
            .map_err(|err| ToolError::from_call(&err))?;
        serde_json::to_value(ChatUserList::new(chat_id, user_ids, truncated))
            .map_err(|_| ToolError::internal())
    })
}

fn input_schema() -> Value {
    schema::of::<Input>()
}

fn output_schema() -> Value {
    schema::of::<ChatUserList>()
}

/// The arguments as [`parse_chat_id`] reads them; the input schema is derived from it.
#[derive(Debug, JsonSchema)]
pub struct Input {
    #[serde(rename = "CHAT_ID")]
    #[schemars(range(min = 1), description = CHAT_ID_DESCRIPTION)]
    pub chat_id: i64,
}

/// Reads `CHAT_ID` leniently: an integer, a numeric string, or a `chatNNN` dialog ID. The name is
/// matched case-insensitively, as the portal upper-cases parameter names.
pub fn parse_chat_id(arguments: Option<&JsonObject>) -> Result<i64, ToolError> {
    let empty = JsonObject::new();
    let args = Args::new(arguments.unwrap_or(&empty), &["CHAT_ID"]).map_err(with_hint)?;
    let value = args
        .required("CHAT_ID", "the chat's positive integer ID, e.g. 2935")
        .map_err(with_hint)?;
    args::chat_id(value).ok_or_else(|| {
        with_hint(ToolError::invalid_argument(format!(
            "CHAT_ID must be a positive integer chat ID (1 to {MAX_ID}) or a dialog ID like \"chat2935\", got {}",
            args::describe(value)
        )))
    })
}

/// The hint for this tool's refusals: how to call it right.
fn with_hint(error: ToolError) -> ToolError {
    ToolError {
        hint: "Call again with CHAT_ID set to the chat's positive integer ID, e.g. {\"CHAT_ID\": 2935} (a dialog ID like \"chat2935\" also works); im_search_chat_list or im_chat_get finds a chat's ID.".into(),
        ..error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => panic!("arguments are an object"),
        }
    }

    #[test]
    fn accepts_integers_numeric_strings_and_dialog_ids() {
        for value in [
            json!({"CHAT_ID": 2935}),
            json!({"CHAT_ID": "2935"}),
            json!({"CHAT_ID": " 2935 "}),
            json!({"CHAT_ID": "chat2935"}),
            json!({"CHAT_ID": "CHAT2935"}),
            json!({"CHAT_ID": 2935.0}),
            json!({"chat_id": 2935}),
        ] {
            assert_eq!(
                parse_chat_id(Some(&args(value.clone()))),
                Ok(2935),
                "{value}"
            );
        }
        assert_eq!(
            parse_chat_id(Some(&args(json!({"CHAT_ID": MAX_ID})))),
            Ok(MAX_ID)
        );
    }

    #[test]
    fn rejects_everything_else_naming_the_value() {
        let cases = [
            (json!({"CHAT_ID": 0}), "got 0"),
            (json!({"CHAT_ID": -5}), "got -5"),
            (json!({"CHAT_ID": 2.5}), "got 2.5"),
            (json!({"CHAT_ID": "abc"}), "got \"abc\""),
            (json!({"CHAT_ID": "chat"}), "got \"chat\""),
            (json!({"CHAT_ID": "chat0"}), "got \"chat0\""),
            (json!({"CHAT_ID": "+12"}), "got \"+12\""),
            (json!({"CHAT_ID": "12abc"}), "got \"12abc\""),
            (json!({"CHAT_ID": ""}), "got \"\""),
            (json!({"CHAT_ID": "sg12"}), "got \"sg12\""),
            (
                json!({"CHAT_ID": 9007199254740992_i64}),
                "got 9007199254740992",
            ),
            (json!({"CHAT_ID": u64::MAX}), "got 18446744073709551615"),
            (
                json!({"CHAT_ID": "99999999999999999999"}),
                "got \"99999999999999999999\"",
            ),
            (json!({"CHAT_ID": 1e300}), "got 1e+300"),
            (json!({"CHAT_ID": null}), "CHAT_ID is required"),
            (json!({"CHAT_ID": true}), "got true"),
            (json!({"CHAT_ID": [2935]}), "got [2935]"),
            (json!({"CHAT_ID": {"id": 2935}}), "got {\"id\":2935}"),
        ];
        for (value, expected) in cases {
            let err = parse_chat_id(Some(&args(value.clone()))).unwrap_err();
            assert_eq!(err.error, "INVALID_ARGUMENT", "{value}");
            assert!(
                err.error_description.contains(expected),
                "{value}: {}",
                err.error_description
            );
            assert!(
                err.error_description.contains("positive integer"),
                "{value}"
            );
        }
    }

    #[test]
    fn rejects_missing_duplicated_and_unknown_arguments() {
        let missing = parse_chat_id(None).unwrap_err();
        assert!(missing.error_description.starts_with("CHAT_ID is required"));
        let missing = parse_chat_id(Some(&JsonObject::new())).unwrap_err();
        assert!(missing.error_description.starts_with("CHAT_ID is required"));
        let twice = parse_chat_id(Some(&args(json!({"CHAT_ID": 1, "chat_id": 2})))).unwrap_err();
        assert!(twice.error_description.contains("more than once"));
        let unknown = parse_chat_id(Some(&args(json!({"CHAT_ID": 1, "LIMIT": 5})))).unwrap_err();
        assert!(
            unknown
                .error_description
                .contains("unexpected argument \"LIMIT\"")
        );
    }

    #[test]
    fn long_values_are_shortened_in_the_message() {
        let err = parse_chat_id(Some(&args(json!({"CHAT_ID": "x".repeat(5000)})))).unwrap_err();
        assert!(
            err.error_description.len() < 300,
            "{}",
            err.error_description
        );
    }

    #[test]
    fn empty_answer_carries_the_permission_note_and_others_do_not() {
        let empty = serde_json::to_value(ChatUserList::new(7, vec![], false)).unwrap();
        assert_eq!(
            empty,
            json!({"chat_id": 7, "user_ids": [], "count": 0, "note": EMPTY_NOTE})
        );
        let full =
            serde_json::to_value(ChatUserList::new(2935, vec![99, 1269, 1271], false)).unwrap();
        assert_eq!(
            full,
            json!({"chat_id": 2935, "user_ids": [99, 1269, 1271], "count": 3})
        );
        let cut = serde_json::to_value(ChatUserList::new(1, vec![5], true)).unwrap();
        assert_eq!(
            cut,
            json!({"chat_id": 1, "user_ids": [5], "count": 1, "truncated": true})
        );
    }
}
