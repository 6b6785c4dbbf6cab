//! What a `bitrix24_call` will really run, as the portal will read it. The portal reads parameter
//! names without regard to case (and a batch command the way PHP's `parse_url` and `parse_str`
//! do: [`super::query`]), so names that collide once folded are refused at any depth, and every
//! command of a `batch` is classified by the read policy ([`super::policy`]).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::policy::{is_read, valid_method};
use super::query;
use crate::tools::args;
use crate::tools::error::ToolError;

/// Bitrix24's own limit of commands in one batch.
const MAX_BATCH: usize = 50;
/// The parameters a batch takes besides its commands' own.
const BATCH_PARAMETERS: [&str; 2] = ["CMD", "HALT"];

/// What a call will do, as the portal will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One method with the call's parameters.
    Single { method: String, read: bool },
    /// A `batch`: every command, in the order sent.
    Batch(Vec<Command>),
}

/// One command of a batch: `key` is its name in `cmd` (its index for a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub key: String,
    pub method: String,
    pub read: bool,
    /// The command's query, decoded, in order.
    pub params: Vec<(String, String)>,
}

impl Plan {
    /// Whether anything in the call may change data.
    pub fn writes(&self) -> bool {
        match self {
            Self::Single { read, .. } => !read,
            Self::Batch(commands) => commands.iter().any(|c| !c.read),
        }
    }
}

/// Classifies a call whose method name is valid: refuses what the portal would read otherwise
/// than the policy (names that collide once folded, a format suffix, a batch command that is not
/// a plain `method?query` string), then names every method the call runs.
pub fn classify(method: &str, params: &Map<String, Value>) -> Result<Plan, ToolError> {
    refuse_format_suffix(method, "method")?;
    refuse_folded_collisions(params, "params")?;
    if method.eq_ignore_ascii_case("batch") {
        return batch(params).map(Plan::Batch);
    }
    Ok(Plan::Single {
        method: method.to_owned(),
        read: is_read(method),
    })
}

/// A parameter name as the portal files it: upper case, and with the dots and spaces PHP turns
/// into underscores, leading spaces dropped. Two names with one fold reach the portal as one.
pub(super) fn fold(name: &str) -> String {
    name.trim_start()
        .chars()
        .flat_map(char::to_uppercase)
        .map(|c| if c == '.' || c == ' ' { '_' } else { c })
        .collect()
}

/// Refuses an object, at any depth, holding two names with one fold: the portal would use one
/// and drop the other, while the policy and the confirmation might have read the other.
fn refuse_folded_collisions(object: &Map<String, Value>, path: &str) -> Result<(), ToolError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (name, value) in object {
        if let Some(first) = seen.insert(fold(name), name) {
            return Err(collision(path, first, name));
        }
        refuse_nested_collisions(value, &format!("{path}.{}", shown_name(name)))?;
    }
    Ok(())
}

fn refuse_nested_collisions(value: &Value, path: &str) -> Result<(), ToolError> {
    match value {
        Value::Object(object) => refuse_folded_collisions(object, path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| refuse_nested_collisions(item, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

pub(super) fn collision(path: &str, first: &str, second: &str) -> ToolError {
    ToolError::invalid_argument(format!(
        "{path} has both {} and {}: Bitrix24 reads parameter names without regard to case, so \
         only one of them would be used; give each parameter once",
        shown_name(first),
        shown_name(second)
    ))
}

/// A name from the caller, quoted and shortened for a message.
pub(super) fn shown_name(name: &str) -> String {
    args::describe(&Value::String(name.to_owned()))
}

/// `user.get.json` runs `user.get` (the suffix picks the answer's format), and `batch.json` runs
/// a batch: refused, so that the name classified is the name run.
fn refuse_format_suffix(method: &str, what: &str) -> Result<(), ToolError> {
    let last = method.rsplit('.').next().unwrap_or_default();
    if method.contains('.') && ["json", "xml"].iter().any(|s| last.eq_ignore_ascii_case(s)) {
        return Err(ToolError::invalid_argument(format!(
            "{what} {} ends in a format suffix; give the method name alone (answers are JSON)",
            shown_name(method)
        )));
    }
    Ok(())
}

/// A batch's commands, each classified. Refused before I/O: parameters other than `cmd` and
/// `halt`, no commands or more than 50, a command that is not a `method?query` string, a nested
/// batch, a query naming one parameter twice.
fn batch(params: &Map<String, Value>) -> Result<Vec<Command>, ToolError> {
    if let Some(other) = params
        .keys()
        .find(|k| !BATCH_PARAMETERS.contains(&fold(k).as_str()))
    {
        return Err(ToolError::invalid_argument(format!(
            "a batch takes params.cmd and params.halt, not {}",
            shown_name(other)
        )));
    }
    // At most one spelling of `cmd` is present: colliding spellings were refused.
    let cmd = params
        .iter()
        .find(|(k, _)| fold(k) == "CMD")
        .map(|(_, v)| v);
    let commands: Vec<(String, &Value)> = match cmd {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => {
            return Err(ToolError::invalid_argument(
                "a batch needs params.cmd: an object (or array) of commands like \"user.get?ID=1\""
                    .to_owned(),
            ));
        }
    };
    if commands.is_empty() || commands.len() > MAX_BATCH {
        return Err(ToolError::invalid_argument(format!(
            "params.cmd holds {} commands; a batch takes 1 to {MAX_BATCH}",
            commands.len()
        )));
    }
    commands
        .into_iter()
        .map(|(key, command)| batch_command(key, command))
        .collect()
}

fn batch_command(key: String, command: &Value) -> Result<Command, ToolError> {
    let expected = "a string \"method?param=value&…\" with a REST method name";
    let Value::String(text) = command else {
        return Err(args::wrong("a params.cmd command", expected, command));
    };
    let (method, query) = text.split_once('?').unwrap_or((text, ""));
    if !valid_method(method) {
        return Err(args::wrong("a params.cmd command", expected, command));
    }
    query::refuse_url_rewrites(&key, text)?;
    refuse_format_suffix(method, "the params.cmd command")?;
    if method.eq_ignore_ascii_case("batch") {
        return Err(ToolError::invalid_argument(
            "a batch inside a batch is refused (Bitrix24 refuses it too)".to_owned(),
        ));
    }
    let params = query::read(&key, query)?;
    Ok(Command {
        read: is_read(method),
        method: method.to_owned(),
        key,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(method: &str, params: Value) -> Result<Plan, String> {
        classify(method, params.as_object().unwrap()).map_err(|e| e.error_description)
    }

    fn batch_writes(cmd: Value) -> Result<bool, String> {
        plan("batch", json!({"cmd": cmd})).map(|p| p.writes())
    }

    #[test]
    fn a_batch_is_a_write_when_one_command_is() {
        assert_eq!(
            batch_writes(json!({"a": "user.get?ID=1", "b": "crm.deal.list"})),
            Ok(false)
        );
        assert_eq!(
            batch_writes(json!({"a": "user.get?ID=1", "b": "crm.deal.add?fields[TITLE]=x"})),
            Ok(true)
        );
        assert_eq!(
            batch_writes(json!(["scope", "im.chat.leave?CHAT_ID=42"])),
            Ok(true)
        );
        assert_eq!(batch_writes(json!({"a": "event.offline.get"})), Ok(true));
        assert!(batch_writes(json!({"a": "batch?cmd[x]=scope"})).is_err());
        assert!(batch_writes(json!({})).is_err());
        assert!(batch_writes(json!([])).is_err());
        let many: Map<String, Value> = (0..51).map(|i| (i.to_string(), json!("scope"))).collect();
        assert!(batch_writes(Value::Object(many)).is_err());
    }

    #[test]
    fn every_spelling_of_cmd_is_read_and_two_spellings_are_refused() {
        for key in ["cmd", "CMD", "Cmd", "cMD"] {
            let mut params = Map::new();
            params.insert(key.to_owned(), json!({"b": "im.chat.leave?CHAT_ID=42"}));
            assert_eq!(
                plan("batch", Value::Object(params)).map(|p| p.writes()),
                Ok(true),
                "{key}"
            );
        }
        for other in ["CMD", "Cmd", "cMD"] {
            let mut params = Map::new();
            params.insert("cmd".to_owned(), json!({"a": "scope"}));
            params.insert(other.to_owned(), json!({"b": "im.chat.leave?CHAT_ID=42"}));
            let refused = plan("batch", Value::Object(params)).unwrap_err();
            assert!(refused.contains("params has both \"cmd\" and"), "{refused}");
            assert!(refused.contains("without regard to case"), "{refused}");
        }
    }

    #[test]
    fn names_that_fold_alike_are_refused_at_any_depth() {
        for (method, params, path) in [
            (
                "crm.deal.update",
                json!({"id": 1, "ID": 2}),
                "params has both",
            ),
            (
                "crm.deal.update",
                json!({"ID": 1, "fields": {"TITLE": "a", "title": "b"}}),
                "params.\"fields\" has both",
            ),
            (
                "crm.deal.list",
                json!({"filter": [{"x": {"Stage_ID": 1, "STAGE.ID": 2}}]}),
                "params.\"filter\"[0].\"x\" has both",
            ),
            (
                "batch",
                json!({"cmd": {"a": "scope", "A": "im.chat.leave?CHAT_ID=1"}}),
                "params.\"cmd\" has both",
            ),
            (
                "batch",
                json!({"cmd": {"a": "scope"}, "halt": 0, "HALT": 1}),
                "params has both",
            ),
            (
                "batch",
                json!({"cmd": {"a": "crm.deal.update?ID=1&id=2"}}),
                "the params.cmd command \"a\" has both",
            ),
            (
                "batch",
                json!({"cmd": {"a": "crm.deal.update?ID=1&fields[TITLE]=x&FIELDS[title]=y"}}),
                "has both \"fields[TITLE]\" and \"FIELDS[title]\"",
            ),
            (
                "batch",
                json!({"cmd": {"a": "crm.deal.update?ID=1&ID=2"}}),
                "has both \"ID\" and \"ID\"",
            ),
            (
                "batch",
                json!({"cmd": {"a": "crm.deal.update?ID=1&%20id=2"}}),
                "has both",
            ),
        ] {
            let refused = plan(method, params.clone()).unwrap_err();
            assert!(refused.contains(path), "{params}: {refused}");
        }
        // A list's `name[]` repeats when spelled alike.
        assert!(
            plan(
                "batch",
                json!({"cmd": {"a": "im.chat.user.add?CHAT_ID=1&USERS[]=2&USERS[]=3"}})
            )
            .is_ok()
        );
    }

    #[test]
    fn a_command_must_be_a_plain_method_query_string() {
        for (cmd, expected) in [
            (
                json!({"a": {"method": "im.chat.leave", "params": {"CHAT_ID": 1}}}),
                "must be a string",
            ),
            (
                json!({"a": ["im.chat.leave", {"CHAT_ID": 1}]}),
                "must be a string",
            ),
            (json!({"a": 5}), "must be a string"),
            (json!({"a": " im.chat.leave?CHAT_ID=1"}), "must be a string"),
            (json!({"a": "user.get#?x=1"}), "must be a string"),
            (json!({"a": "/rest/im.chat.leave"}), "must be a string"),
            (
                json!({"a": "im.chat.leave.json?CHAT_ID=1"}),
                "format suffix",
            ),
            (
                json!({"a": "BATCH?cmd[b]=im.chat.leave"}),
                "a batch inside a batch",
            ),
        ] {
            let refused = batch_writes(cmd.clone()).unwrap_err();
            assert!(refused.contains(expected), "{cmd}: {refused}");
        }
        let refused = plan("batch", json!({"cmd": {"a": "scope"}, "auth": "x"})).unwrap_err();
        assert!(
            refused.contains("takes params.cmd and params.halt"),
            "{refused}"
        );
        assert!(
            plan("batch.json", json!({"cmd": {"a": "scope"}}))
                .unwrap_err()
                .contains("format suffix")
        );
        assert!(
            plan("user.get.XML", json!({}))
                .unwrap_err()
                .contains("format suffix")
        );
    }

    #[test]
    fn a_commands_query_is_decoded_as_the_portal_decodes_it() {
        let Ok(Plan::Batch(commands)) = plan(
            "batch",
            json!({"halt": 1, "Cmd": {"x": "im.chat.leave?CHAT%5FID=42&note=a+b%0Ac"}}),
        ) else {
            panic!("a batch");
        };
        assert_eq!(
            commands,
            [Command {
                key: "x".into(),
                method: "im.chat.leave".into(),
                read: false,
                params: vec![
                    ("CHAT_ID".into(), "42".into()),
                    ("note".into(), "a b\nc".into())
                ],
            }]
        );
    }
}
