//! The portal's objects trimmed to what an assistant needs, in snake_case: users and chats as the
//! chat methods return them. Everything read here came from the network: strings are scrubbed of
//! secrets, escaped and bounded, numbers checked, missing fields given a stated default.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::bitrix::Client;
use crate::bitrix::response::lenient_integer;
use crate::bitrix::untrusted;

/// The longest name, title or position passed on.
const MAX_TEXT_CHARS: usize = 200;

/// Reads portal objects for one client (whose secrets are scrubbed from every string).
pub struct Shaper {
    secrets: Vec<String>,
}

impl Shaper {
    pub fn new(client: &Client) -> Self {
        Self {
            secrets: client.auth().secrets(),
        }
    }

    /// A string field, or `""` when absent, null or `false` (the portal's "no value").
    pub fn text(&self, value: Option<&Value>) -> String {
        match value {
            Some(Value::String(s)) => untrusted::sanitize(s, &self.secrets, MAX_TEXT_CHARS),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    }

    /// A user as `im.dialog.users.list` and `im.user.list.get` return one. `None` without an ID.
    pub fn user(&self, value: &Value) -> Option<User> {
        let id = value.get("id").and_then(id)?;
        Some(User {
            id,
            name: self.text(value.get("name")),
            first_name: self.text(value.get("first_name")),
            last_name: self.text(value.get("last_name")),
            work_position: self.text(value.get("work_position")),
            active: flag(value.get("active"), true),
            bot: flag(value.get("bot"), false),
            extranet: flag(value.get("extranet"), false),
            kind: match self.text(value.get("type")) {
                t if t.is_empty() => "user".to_owned(),
                t => t,
            },
        })
    }

    /// A chat as `im.search.chat.list` returns one. `None` without an ID.
    pub fn chat(&self, value: &Value) -> Option<ChatSummary> {
        let chat_id = value.get("id").and_then(id)?;
        Some(ChatSummary {
            chat_id,
            dialog_id: format!("chat{chat_id}"),
            name: self.text(value.get("name")),
            kind: self.text(value.get("type")),
            user_counter: count(value.get("user_counter")),
            entity_type: self.text(value.get("entity_type")),
            entity_id: self.text(value.get("entity_id")),
        })
    }
}

// One chat in a search's answer; its schema is derived from it. (A plain comment: a doc comment
// would become the schema's description, which the model reads.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ChatSummary {
    pub chat_id: i64,
    pub dialog_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_counter: i64,
    pub entity_type: String,
    pub entity_id: String,
}

// One user of the user tools' answers; its schema is derived from it. (A plain comment, as for
// ChatSummary.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub work_position: String,
    pub active: bool,
    pub bot: bool,
    pub extranet: bool,
    /// user, bot, extranet, email, …
    #[serde(rename = "type")]
    pub kind: String,
}

/// A positive ID, as a number or numeric string.
pub fn id(value: &Value) -> Option<i64> {
    lenient_integer(value).filter(|n| (1..=super::args::MAX_ID).contains(n))
}

/// A count: a non-negative integer, 0 when absent or unreadable.
pub fn count(value: Option<&Value>) -> i64 {
    value
        .and_then(lenient_integer)
        .filter(|n| *n >= 0)
        .unwrap_or(0)
}

/// A boolean as the portal writes it (`true`, `"Y"`, `1`), `default` when absent.
pub fn flag(value: Option<&Value>, default: bool) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "Y" | "y" | "1" | "true"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => default,
    }
}

/// A list of IDs (numbers or numeric strings); anything unreadable is left out.
pub fn ids(value: Option<&Value>) -> Vec<i64> {
    value
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(id).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shaper() -> Shaper {
        Shaper {
            secrets: vec!["s3cr3t".into()],
        }
    }

    #[test]
    fn a_user_keeps_the_useful_fields_with_defaults() {
        let user = shaper().user(&json!({
            "id": "1269", "name": "Alexander Smith\u{1b}[2J", "first_name": "Alexander",
            "last_name": "Smith", "work_position": null, "active": true, "bot": false,
            "avatar": "https://x/a.png", "color": "#df532d"
        }));
        assert_eq!(
            user.map(|u| serde_json::to_value(u).unwrap()),
            Some(
                json!({"id": 1269, "name": "Alexander Smith\\u{1b}[2J", "first_name": "Alexander",
                "last_name": "Smith", "work_position": "", "active": true, "bot": false,
                "extranet": false, "type": "user"})
            )
        );
        assert_eq!(shaper().user(&json!({"name": "no id"})), None);
    }

    #[test]
    fn strings_are_bounded_and_scrubbed() {
        let long = "n".repeat(1000);
        let text = shaper().text(Some(&json!(format!("S3CR3T {long}"))));
        assert!(text.starts_with("<redacted> nnn"));
        assert!(text.chars().count() < 260);
    }
}
