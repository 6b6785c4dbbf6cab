//! `im_chat_user_list`: the tool's definition as the assistant sees it, the coercion of `CHAT_ID`
//! (which rejects bad input before any I/O), the call, and the shaping of the answer.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::Serialize;
use serde_json::{Value, json};

use super::error::ToolError;
use crate::bitrix::{Client, Observer};

pub const NAME: &str = "im_chat_user_list";

const TITLE: &str = "List chat participant IDs";

const DESCRIPTION: &str = "\
Returns the user IDs of the participants of a Bitrix24 chat (REST method im.chat.user.list), in \
the portal's order, with their count. Needs the webhook's \"im\" scope, and the webhook's user must \
be a participant of the chat. An empty list does not prove the chat is empty: Bitrix24 answers an \
empty list when the caller may not see the participants or the chat does not exist. Get a chat's \
ID from im.chat.get (for example the chat of a CRM deal). Errors come back as a JSON object with \
error, error_description, category, retryable and a hint saying what to do next.";

const CHAT_ID_DESCRIPTION: &str = "\
Numeric ID of the chat, e.g. 2935 (from im.chat.get). A dialog ID of the form \"chat2935\" is \
accepted too.";

/// Added to an empty answer, in the result itself, because an empty list is ambiguous.
pub const EMPTY_NOTE: &str = "The list is empty: per Bitrix24 this can mean that the webhook's \
user may not see this chat's participants (e.g. is not a participant) or that the chat does not \
exist, not that the chat has no members.";

/// The largest ID accepted: Bitrix24 keeps IDs in PHP integers, and JSON clients lose precision
/// past 2^53, so anything beyond is a mistake rather than an ID.
const MAX_ID: i64 = (1 << 53) - 1;

/// The successful answer, as `structuredContent` and as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatUserList {
    pub chat_id: i64,
    pub user_ids: Vec<i64>,
    pub count: usize,
    /// Present only when the list is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

impl ChatUserList {
    pub fn new(chat_id: i64, user_ids: Vec<i64>) -> Self {
        let note = user_ids.is_empty().then_some(EMPTY_NOTE);
        Self {
            chat_id,
            count: user_ids.len(),
            user_ids,
            note,
        }
    }
}

/// The tool as listed to clients. Schemas are written out rather than derived: the input accepts
/// more than its schema admits (numeric strings, dialog IDs), and clients choke on the `format`
/// keywords and nullable unions a derive would add.
pub fn definition() -> Tool {
    Tool::new(NAME, DESCRIPTION, Arc::new(object(input_schema())))
        .with_title(TITLE)
        .with_raw_output_schema(Arc::new(object(output_schema())))
        .with_annotations(
            ToolAnnotations::with_title(TITLE)
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(true),
        )
}

fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "CHAT_ID": {
                "type": "integer",
                "minimum": 1,
                "description": CHAT_ID_DESCRIPTION,
            }
        },
        "required": ["CHAT_ID"],
    })
}

fn output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "chat_id": {"type": "integer", "description": "The chat that was asked about."},
            "user_ids": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "Participant user IDs in the portal's order.",
            },
            "count": {"type": "integer", "minimum": 0, "description": "Number of user IDs."},
            "note": {
                "type": "string",
                "description": "Present when user_ids is empty: an empty list can mean no permission to see the participants.",
            },
        },
        "required": ["chat_id", "user_ids", "count"],
    })
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        // Both schemas above are object literals.
        _ => JsonObject::new(),
    }
}

/// Runs the tool: validates, calls the portal, shapes the answer.
pub async fn run(
    client: &Client,
    arguments: Option<&JsonObject>,
    observer: Observer<'_>,
) -> CallToolResult {
    let chat_id = match parse_chat_id(arguments) {
        Ok(id) => id,
        Err(err) => return err.into_result(),
    };
    match client.chat_user_list(chat_id, observer).await {
        Ok(user_ids) => success(ChatUserList::new(chat_id, user_ids)),
        Err(err) => ToolError::from_call(&err).into_result(),
    }
}

fn success(list: ChatUserList) -> CallToolResult {
    match serde_json::to_value(&list) {
        Ok(value) => CallToolResult::structured(value),
        // A struct of integers and a static string always serialises.
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
    }
}

/// Reads `CHAT_ID` leniently: an integer, a numeric string, or a `chatNNN` dialog ID. The name is
/// matched case-insensitively, as the portal upper-cases parameter names.
pub fn parse_chat_id(arguments: Option<&JsonObject>) -> Result<i64, ToolError> {
    let empty = JsonObject::new();
    let arguments = arguments.unwrap_or(&empty);
    if let Some(unknown) = arguments
        .keys()
        .find(|k| !k.eq_ignore_ascii_case("CHAT_ID"))
    {
        return Err(ToolError::invalid_argument(format!(
            "unexpected argument {}: this tool takes only CHAT_ID",
            quote_key(unknown)
        )));
    }
    let mut values = arguments.values();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ToolError::invalid_argument(if arguments.is_empty() {
            "CHAT_ID is required: the chat's positive integer ID, e.g. 2935".to_owned()
        } else {
            "CHAT_ID is given more than once (in different letter cases)".to_owned()
        }));
    };
    coerce(value).ok_or_else(|| {
        ToolError::invalid_argument(format!(
            "CHAT_ID must be a positive integer chat ID (1 to {MAX_ID}) or a dialog ID like \"chat2935\", got {}",
            describe(value)
        ))
    })
}

fn coerce(value: &Value) -> Option<i64> {
    let id = match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            // 2935.0 is the integer 2935; 2935.5 is not an ID.
            (None, Some(f)) if f.fract() == 0.0 && f.abs() <= MAX_ID as f64 => f as i64,
            _ => return None,
        },
        Value::String(s) => {
            let s = s.trim();
            let digits = match s.get(..4) {
                Some(prefix) if prefix.eq_ignore_ascii_case("chat") => &s[4..],
                _ => s,
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse::<i64>().ok()?
        }
        _ => return None,
    };
    (1..=MAX_ID).contains(&id).then_some(id)
}

/// The received value as JSON, shortened, for the error message.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 80 {
        text
    } else {
        format!(
            "{}… ({} characters)",
            text.chars().take(80).collect::<String>(),
            text.len()
        )
    }
}

fn quote_key(key: &str) -> String {
    describe(&Value::String(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> JsonObject {
        object(value)
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
            (json!({"CHAT_ID": null}), "got null"),
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
        let empty = serde_json::to_value(ChatUserList::new(7, vec![])).unwrap();
        assert_eq!(
            empty,
            json!({"chat_id": 7, "user_ids": [], "count": 0, "note": EMPTY_NOTE})
        );
        let full = serde_json::to_value(ChatUserList::new(2935, vec![99, 1269, 1271])).unwrap();
        assert_eq!(
            full,
            json!({"chat_id": 2935, "user_ids": [99, 1269, 1271], "count": 3})
        );
    }
}
