//! The confirmation question of a `bitrix24_call` write: every write command with every
//! parameter it sends, targets first and whole, other values shortened with their length; reads
//! only counted. A write too large to show so is refused, never cut away. Every value from the
//! caller's parameters is quoted and escaped, so none can forge a line of the question.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::plan::{Command, Plan};
use super::quote::{quote, quote_bounded};
use crate::tools::confirm::Question;
use crate::tools::error::ToolError;

/// The longest parameter name shown whole.
const MAX_NAME_CHARS: usize = 40;
/// The longest question asked, in characters: a write whose every parameter cannot be shown
/// within it is refused rather than summarised away.
pub const MAX_QUESTION_CHARS: usize = 20_000;
/// The parameters of one write looked at; past them the write is refused (see above).
const MAX_LEAVES: usize = 400;
/// The distinct read methods named in a batch's summary.
const MAX_READ_METHODS: usize = 10;

/// The question for a call that writes: every parameter of every write, each value quoted (a
/// target's whole, any other's shortened with its length). Refused when that is more than
/// [`MAX_QUESTION_CHARS`]: a question too long to read would hide what it asks about.
pub fn question(
    method: &str,
    params: &Map<String, Value>,
    plan: &Plan,
) -> Result<Question, ToolError> {
    let message = match plan {
        Plan::Single { method, .. } => {
            let (pairs, unseen) = flatten(params);
            if unseen > 0 {
                return Err(too_long(pairs.len() + unseen));
            }
            let shown = if params.is_empty() {
                "no parameters".to_owned()
            } else {
                format!("the parameters {}", parameters(pairs))
            };
            format!("Call {method} on your Bitrix24 portal with {shown}? It may change data.")
        }
        Plan::Batch(commands) => batch(commands),
    };
    let message = format!("{message} To confirm, type the method name: {method}");
    if message.chars().count() > MAX_QUESTION_CHARS {
        let parameters = match plan {
            Plan::Single { .. } => flatten(params).0.len(),
            Plan::Batch(commands) => commands
                .iter()
                .filter(|c| !c.read)
                .map(|c| c.params.len())
                .sum(),
        };
        return Err(too_long(parameters));
    }
    Ok(Question {
        message,
        expected: method.to_owned(),
    })
}

fn too_long(parameters: usize) -> ToolError {
    ToolError::invalid_argument(format!(
        "the confirmation of this write would be too long to show the user whole ({parameters} \
         parameters; a question takes at most {MAX_QUESTION_CHARS} characters, with at most \
         {MAX_LEAVES} parameters a write); split it into smaller calls"
    ))
}

/// What the write log says changes: the method, and for a batch the methods that write
/// (`call batch: im.chat.leave ×2, crm.deal.update`). Method names only: they were checked to be
/// names, while values are the caller's.
pub fn summary(plan: &Plan) -> String {
    match plan {
        Plan::Single { method, .. } => format!("call {method}"),
        Plan::Batch(commands) => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for command in commands.iter().filter(|c| !c.read) {
                *counts
                    .entry(command.method.to_ascii_lowercase())
                    .or_default() += 1;
            }
            let writes: Vec<String> = counts
                .iter()
                .map(|(method, &n)| match n {
                    1 => method.clone(),
                    n => format!("{method} ×{n}"),
                })
                .collect();
            format!("call batch: {}", writes.join(", "))
        }
    }
}

/// "Call batch …: 3 reads (user.get ×3) and 1 write:\n- \"b\": im.chat.leave CHAT_ID=\"42\"".
fn batch(commands: &[Command]) -> String {
    let writes: Vec<&Command> = commands.iter().filter(|c| !c.read).collect();
    let mut text = format!(
        "Call batch on your Bitrix24 portal: {} and {}:",
        reads(commands),
        plural(writes.len(), "write")
    );
    for command in writes {
        let pairs = command.params.iter().map(|(name, value)| {
            let name = name_of(name);
            let value = quote_value(&name, value);
            (name, value)
        });
        let shown = if command.params.is_empty() {
            "with no parameters".to_owned()
        } else {
            parameters(pairs.collect())
        };
        let _ = write!(
            text,
            "\n- {}: {} {shown}",
            quote(&command.key),
            command.method
        );
    }
    if commands
        .iter()
        .filter(|c| !c.read)
        .flat_map(|c| &c.params)
        .any(|(name, value)| refers(name) || refers(value))
    {
        text.push_str(
            "\nValues with $result[…] (or $next, $total, $time, $error) are filled in by the \
             portal, from earlier commands' answers, when the batch runs.",
        );
    }
    text.push_str("\nThe writes may change data.");
    text
}

/// Whether text may name an earlier command's answer, which the portal substitutes before
/// running the command (`$result[a][ID]`, any letter case).
fn refers(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["$result", "$next", "$total", "$time", "$error"]
        .iter()
        .any(|r| lower.contains(r))
}

/// "3 reads (user.get ×2, crm.deal.get)" or "no reads".
fn reads(commands: &[Command]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for command in commands.iter().filter(|c| c.read) {
        *counts
            .entry(command.method.to_ascii_lowercase())
            .or_default() += 1;
    }
    let total: usize = counts.values().sum();
    if total == 0 {
        return "no reads".to_owned();
    }
    let mut named: Vec<String> = counts
        .iter()
        .take(MAX_READ_METHODS)
        .map(|(method, &n)| {
            if n == 1 {
                method.clone()
            } else {
                format!("{method} ×{n}")
            }
        })
        .collect();
    if counts.len() > MAX_READ_METHODS {
        named.push(format!("{} other methods", counts.len() - MAX_READ_METHODS));
    }
    format!("{} ({})", plural(total, "read"), named.join(", "))
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `ID=5, fields[TITLE]="New"`: every parameter, targets first.
fn parameters(mut pairs: Vec<(String, String)>) -> String {
    // Stable: the call's own targets (`ID`), then targets inside (`fields[STAGE_ID]`), then the
    // rest, each in the order given.
    pairs.sort_by_key(|(name, _)| match (is_target(name), name.contains('[')) {
        (true, false) => 0,
        (true, true) => 1,
        (false, _) => 2,
    });
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as shown: a target's whole (padding such as `"   0002938"`, which the portal reads
/// as 2938, must not push the ID out of view), any other's shortened with its length.
fn quote_value(name: &str, value: &str) -> String {
    if is_target(name) {
        quote_bounded(value, usize::MAX)
    } else {
        quote(value)
    }
}

/// Whether a parameter names what a write changes: an ID, an entity, a dialog, users.
fn is_target(name: &str) -> bool {
    let leaf = name
        .trim_end_matches(']')
        .rsplit(['[', '"'])
        .find(|s| !s.is_empty())
        .unwrap_or(name)
        .to_ascii_uppercase();
    leaf.ends_with("ID") || leaf.ends_with("IDS") || leaf == "USERS" || leaf.starts_with("ENTITY")
}

/// The JSON parameters as `name[sub]` = rendered value, and how many were past the limit.
fn flatten(params: &Map<String, Value>) -> (Vec<(String, String)>, usize) {
    let mut pairs = Vec::new();
    let mut unseen = 0;
    for (name, value) in params {
        leaves(name_of(name), value, &mut pairs, &mut unseen);
    }
    (pairs, unseen)
}

fn leaves(path: String, value: &Value, out: &mut Vec<(String, String)>, unseen: &mut usize) {
    if out.len() >= MAX_LEAVES {
        *unseen += 1;
        return;
    }
    match value {
        Value::Object(object) if !object.is_empty() => {
            for (name, inner) in object {
                leaves(format!("{path}[{}]", name_of(name)), inner, out, unseen);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            for (i, inner) in items.iter().enumerate() {
                leaves(format!("{path}[{i}]"), inner, out, unseen);
            }
        }
        _ => {
            let shown = render(&path, value);
            out.push((path, shown));
        }
    }
}

/// A scalar, or a list of scalars, as shown: strings quoted (see [`quote_value`]), every item.
fn render(name: &str, value: &Value) -> String {
    match value {
        Value::String(text) => quote_value(name, text),
        Value::Array(items) => {
            let shown: Vec<String> = items.iter().map(|item| render(name, item)).collect();
            format!("[{}]", shown.join(", "))
        }
        Value::Object(_) => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// A parameter name as shown: bare when it is plain (letters, digits, `_-.<>!%@*` and
/// brackets, at most [`MAX_NAME_CHARS`]), quoted otherwise; a name holding `=` is quoted, so
/// that `CHAT_ID=2938` cannot pass for a parameter and its value.
fn name_of(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.<>!%@*[]".contains(c));
    if plain {
        name.to_owned()
    } else {
        quote_bounded(name, MAX_NAME_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::classify;
    use super::*;
    use serde_json::json;

    fn asked(method: &str, params: Value) -> String {
        let params = params.as_object().unwrap().clone();
        let plan = classify(method, &params).unwrap();
        question(method, &params, &plan).unwrap().message
    }

    #[test]
    fn a_batch_names_every_write_and_counts_its_reads() {
        let mut cmd = Map::new();
        for i in 0..20 {
            cmd.insert(format!("u{i}"), json!(format!("user.get?ID={i}")));
        }
        cmd.insert("leave".into(), json!("im.chat.leave?CHAT_ID=42"));
        cmd.insert("d".into(), json!("crm.deal.get?ID=7"));
        let message = asked("batch", json!({"cmd": cmd}));
        assert_eq!(
            message,
            "Call batch on your Bitrix24 portal: 21 reads (crm.deal.get, user.get ×20) and 1 \
             write:\n- \"leave\": im.chat.leave CHAT_ID=\"42\"\nThe writes may change data. To \
             confirm, type the method name: batch"
        );
    }

    #[test]
    fn padding_cannot_hide_the_target_or_a_later_write() {
        let pad = "x".repeat(5000);
        let mut cmd = Map::new();
        for i in 0..48 {
            cmd.insert(
                format!("w{i:02}"),
                json!(format!(
                    "crm.deal.update?fields[COMMENTS]={pad}&ID={i}&fields[STAGE_ID]=WON"
                )),
            );
        }
        cmd.insert("z".into(), json!("im.chat.leave?CHAT_ID=42"));
        let message = asked("batch", json!({"cmd": cmd}));
        for i in 0..48 {
            assert!(
                message.contains(&format!("- \"w{i:02}\": crm.deal.update ID=\"{i}\", fields[STAGE_ID]=\"WON\", fields[COMMENTS]=\"xxx")),
                "write {i} in {message}"
            );
        }
        assert!(message.contains("(5000 characters)"));
        assert!(message.contains("- \"z\": im.chat.leave CHAT_ID=\"42\""));
        assert!(message.contains("no reads and 49 writes:"));
        assert!(message.len() < 20_000, "{}", message.len());
    }

    #[test]
    fn a_single_write_shows_its_target_and_fields_first_whatever_the_padding() {
        let message = asked(
            "crm.deal.update",
            json!({"fields": {"COMMENTS": "y".repeat(3000), "TITLE": "Won", "OPPORTUNITY": 5000},
                   "params": {"REGISTER_SONET_EVENT": "N"}, "id": 1663}),
        );
        assert!(
            message.starts_with(
                "Call crm.deal.update on your Bitrix24 portal with the parameters id=1663, \
                 fields[COMMENTS]=\"yyy"
            ),
            "{message}"
        );
        assert!(message.contains("(3000 characters), fields[TITLE]=\"Won\", fields[OPPORTUNITY]=5000, params[REGISTER_SONET_EVENT]=\"N\"? It may change data."), "{message}");
        assert_eq!(
            asked("im.chat.leave", json!({})),
            "Call im.chat.leave on your Bitrix24 portal with no parameters? It may change data. \
             To confirm, type the method name: im.chat.leave"
        );
    }

    #[test]
    fn every_field_is_named_with_its_value_or_the_write_is_refused() {
        let fields: Map<String, Value> =
            (0..300).map(|i| (format!("UF_{i:03}"), json!(i))).collect();
        let message = asked("crm.deal.update", json!({"ID": 9, "fields": fields}));
        assert!(
            message.contains("ID=9, fields[UF_000]=0, fields[UF_001]=1"),
            "{message}"
        );
        for i in 0..300 {
            assert!(
                message.contains(&format!("fields[UF_{i:03}]={i}")),
                "{message}"
            );
        }
        let fields: Map<String, Value> =
            (0..400).map(|i| (format!("UF_{i:03}"), json!(i))).collect();
        let params = json!({"ID": 9, "fields": fields});
        let params = params.as_object().unwrap();
        let plan = classify("crm.deal.update", params).unwrap();
        let refused = question("crm.deal.update", params, &plan).unwrap_err();
        assert!(
            refused.error_description.contains("401 parameters"),
            "{}",
            refused.error_description
        );
    }

    #[test]
    fn quoted_values_cannot_forge_lines() {
        let forged = "1\n\nNothing will be removed: this is a dry run.\u{2028}\u{202e}\"";
        let message = asked("im.chat.leave", json!({"CHAT_ID": forged, "bad\nname": 1}));
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.contains(
            "CHAT_ID=\"1\\n\\nNothing will be removed: this is a dry run.\\u{2028}\\u{202e}\\\"\""
        ), "{message}");
        assert!(message.contains("\"bad\\nname\"=1"), "{message}");
        let message = asked(
            "batch",
            json!({"cmd": {"a\nb": "im.chat.leave?CHAT_ID=1%0A-%20c:%20scope"}}),
        );
        assert_eq!(message.lines().count(), 3, "{message}");
        assert!(
            message.contains("- \"a\\nb\": im.chat.leave CHAT_ID=\"1\\n- c: scope\""),
            "{message}"
        );
    }

    #[test]
    fn a_name_holding_an_equals_sign_is_quoted() {
        let message = asked("im.chat.leave", json!({"CHAT_ID": 2935, "CHAT_ID=2938": 1}));
        assert!(
            message.contains("CHAT_ID=2935, \"CHAT_ID=2938\"=1?"),
            "{message}"
        );
        let message = asked(
            "batch",
            json!({"cmd": ["im.chat.leave?CHAT_ID=2935&CHAT_ID%3D2938=1"]}),
        );
        assert!(
            message.contains("CHAT_ID=\"2935\", \"CHAT_ID=2938\"=\"1\""),
            "{message}"
        );
    }

    #[test]
    fn the_write_log_names_the_methods_that_write() {
        let params = json!({"cmd": ["user.get", "im.chat.leave?CHAT_ID=1", "IM.CHAT.LEAVE?CHAT_ID=2", "crm.deal.add"]});
        let plan = classify("batch", params.as_object().unwrap()).unwrap();
        assert_eq!(summary(&plan), "call batch: crm.deal.add, im.chat.leave ×2");
        let plan = classify("im.chat.leave", &Map::new()).unwrap();
        assert_eq!(summary(&plan), "call im.chat.leave");
    }
}
