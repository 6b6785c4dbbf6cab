//! Reading tool arguments before any I/O. Names are matched case-insensitively (the portal
//! upper-cases parameter names, so `chat_id` means `CHAT_ID`); unknown and repeated names are
//! refused; each refusal is `INVALID_ARGUMENT` naming the field, the expected form and the value
//! received.

use rmcp::model::JsonObject;
use serde_json::Value;

use super::error::ToolError;

/// The largest ID accepted: Bitrix24 keeps IDs in PHP integers, and JSON clients lose precision
/// past 2^53, so anything beyond is a mistake rather than an ID.
pub const MAX_ID: i64 = (1 << 53) - 1;

/// A tool's arguments, checked for names the tool does not take.
#[derive(Debug)]
pub struct Args<'a> {
    map: &'a JsonObject,
}

impl<'a> Args<'a> {
    /// Refuses names outside `accepted` and names given twice in different letter cases.
    pub fn new(map: &'a JsonObject, accepted: &[&str]) -> Result<Self, ToolError> {
        if let Some(unknown) = map
            .keys()
            .find(|k| !accepted.iter().any(|a| a.eq_ignore_ascii_case(k)))
        {
            return Err(ToolError::invalid_argument(format!(
                "unexpected argument {}: this tool takes {}",
                describe(&Value::String(unknown.clone())),
                list(accepted)
            )));
        }
        for name in accepted {
            if map.keys().filter(|k| k.eq_ignore_ascii_case(name)).count() > 1 {
                return Err(ToolError::invalid_argument(format!(
                    "{name} is given more than once (in different letter cases)"
                )));
            }
        }
        Ok(Self { map })
    }

    /// The value of `name`, whatever its letter case; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    /// The value of a required argument.
    pub fn required(&self, name: &str, expected: &str) -> Result<&'a Value, ToolError> {
        self.get(name)
            .ok_or_else(|| ToolError::invalid_argument(format!("{name} is required: {expected}")))
    }
}

/// "A, B and C".
fn list(names: &[&str]) -> String {
    match names {
        [] => "no arguments".to_owned(),
        [one] => format!("only {one}"),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A positive ID (1 to 2^53−1): an integer, a whole float (`2935.0`) or a numeric string.
pub fn positive_id(value: &Value) -> Option<i64> {
    let id = match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            // 2935.0 is the integer 2935; 2935.5 is not an ID.
            (None, Some(f)) if f.fract() == 0.0 && f.abs() <= MAX_ID as f64 => f as i64,
            _ => return None,
        },
        Value::String(s) => digits(s.trim())?,
        _ => return None,
    };
    (1..=MAX_ID).contains(&id).then_some(id)
}

/// A non-empty run of ASCII digits as a number.
pub fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A required positive ID argument.
pub fn id_arg(args: &Args<'_>, name: &str, example: i64) -> Result<i64, ToolError> {
    let expected = format!("a positive integer ID, e.g. {example}");
    let value = args.required(name, &expected)?;
    positive_id(value).ok_or_else(|| {
        wrong(
            name,
            &format!("a positive integer ID (1 to {MAX_ID})"),
            value,
        )
    })
}

/// A required array of 1 to `max` positive user IDs (integers or numeric strings), duplicates
/// dropped, in their first order. `example` is shown in the message, e.g. `[1269, 1271]`.
pub fn user_ids(
    args: &Args<'_>,
    name: &str,
    max: usize,
    example: &str,
) -> Result<Vec<i64>, ToolError> {
    let expected = format!("an array of 1 to {max} positive user IDs, e.g. {example}");
    let value = args.required(name, &expected)?;
    // Ten times the maximum, duplicates included, is read; anything longer is refused unread.
    let list = value
        .as_array()
        .filter(|list| !list.is_empty() && list.len() <= 10 * max)
        .ok_or_else(|| wrong(name, &expected, value))?;
    let mut seen = std::collections::HashSet::new();
    let mut ids = Vec::new();
    for (index, item) in list.iter().enumerate() {
        let id = positive_id(item)
            .ok_or_else(|| wrong(&format!("{name}[{index}]"), "a positive user ID", item))?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    if ids.len() > max {
        return Err(ToolError::invalid_argument(format!(
            "{name} holds {} different IDs; at most {max} are taken per call",
            ids.len()
        )));
    }
    Ok(ids)
}

/// A required `CHAT_ID`: a positive integer or `"chat2935"`.
pub fn chat_arg(args: &Args<'_>) -> Result<i64, ToolError> {
    let value = args.required("CHAT_ID", "the chat's positive integer ID, e.g. 2935")?;
    chat_id(value).ok_or_else(|| wrong("CHAT_ID", "a positive integer chat ID, e.g. 2935", value))
}

/// A chat: `CHAT_ID` (an integer, or `"chat2935"`) or `DIALOG_ID` (`chat2935`, `sg17` or a user
/// ID), exactly one of them. Returns the `DIALOG_ID` to send.
pub fn dialog(args: &Args<'_>) -> Result<String, ToolError> {
    match (args.get("CHAT_ID"), args.get("DIALOG_ID")) {
        (Some(_), Some(_)) => Err(ToolError::invalid_argument(
            "give CHAT_ID or DIALOG_ID, not both".to_owned(),
        )),
        (None, None) => Err(ToolError::invalid_argument(
            "CHAT_ID or DIALOG_ID is required: a chat's ID (e.g. 2935), or a dialog ID like \
             \"chat2935\", \"sg17\" (a workgroup's chat) or a user ID (a private dialog)"
                .to_owned(),
        )),
        (Some(chat), None) => chat_id(chat)
            .map(|id| format!("chat{id}"))
            .ok_or_else(|| wrong("CHAT_ID", "a positive integer chat ID, e.g. 2935", chat)),
        (None, Some(dialog)) => dialog_id(dialog).ok_or_else(|| {
            wrong(
                "DIALOG_ID",
                "\"chat<ID>\" (e.g. \"chat2935\"), \"sg<ID>\" (a workgroup's chat, e.g. \"sg17\") \
                 or a user ID for a private dialog",
                dialog,
            )
        }),
    }
}

/// A chat ID: a positive integer or `"chat2935"`.
pub fn chat_id(value: &Value) -> Option<i64> {
    if let Value::String(s) = value {
        let s = s.trim();
        if let Some(prefix) = s.get(..4)
            && prefix.eq_ignore_ascii_case("chat")
        {
            return digits(&s[4..]).filter(|id| (1..=MAX_ID).contains(id));
        }
    }
    positive_id(value)
}

/// A dialog ID in the portal's form: `chat2935`, `sg17`, or a user ID (`"47"` or `47`).
pub fn dialog_id(value: &Value) -> Option<String> {
    if let Value::String(s) = value {
        let s = s.trim();
        for prefix in ["chat", "sg"] {
            if let Some(head) = s.get(..prefix.len())
                && head.eq_ignore_ascii_case(prefix)
            {
                let id = digits(&s[prefix.len()..]).filter(|id| (1..=MAX_ID).contains(id))?;
                return Some(format!("{prefix}{id}"));
            }
        }
    }
    positive_id(value).map(|id| id.to_string())
}

/// An optional yes/no argument: a JSON boolean, or `"Y"`/`"N"` as the portal writes them.
pub fn flag(args: &Args<'_>, name: &str) -> Result<Option<bool>, ToolError> {
    let Some(value) = args.get(name) else {
        return Ok(None);
    };
    match value {
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("y") => Ok(Some(true)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("n") => Ok(Some(false)),
        other => Err(wrong(name, "true or false", other)),
    }
}

/// Bitrix24's spelling of a boolean.
pub fn yes_no(value: bool) -> &'static str {
    if value { "Y" } else { "N" }
}

/// An optional integer within `range`, `default` when absent.
pub fn integer(
    args: &Args<'_>,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
    default: i64,
) -> Result<i64, ToolError> {
    let Some(value) = args.get(name) else {
        return Ok(default);
    };
    let number = match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    number.filter(|n| range.contains(n)).ok_or_else(|| {
        wrong(
            name,
            &format!("an integer from {} to {}", range.start(), range.end()),
            value,
        )
    })
}

/// A required string, trimmed, of `min..=max` characters.
pub fn text(
    args: &Args<'_>,
    name: &str,
    min: usize,
    max: usize,
    expected: &str,
) -> Result<String, ToolError> {
    let value = args.required(name, expected)?;
    let Value::String(s) = value else {
        return Err(wrong(name, expected, value));
    };
    let trimmed = s.trim();
    let chars = trimmed.chars().count();
    if chars < min || chars > max {
        return Err(wrong(name, expected, value));
    }
    Ok(trimmed.to_owned())
}

/// The refusal for a value of the wrong form.
pub fn wrong(name: &str, expected: &str, got: &Value) -> ToolError {
    ToolError::invalid_argument(format!("{name} must be {expected}, got {}", describe(got)))
}

/// The received value as JSON, shortened, for an error message.
pub fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 80 {
        text
    } else {
        format!(
            "{}… ({} characters)",
            text.chars().take(80).collect::<String>(),
            text.chars().count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => panic!(),
        }
    }

    #[test]
    fn user_id_lists_keep_first_order_drop_duplicates_and_are_bounded() {
        let ids = |value: Value| {
            let arguments = map(json!({ "USERS": value }));
            let args = Args::new(&arguments, &["USERS"]).unwrap();
            user_ids(&args, "USERS", 3, "[1, 2]").map_err(|e| e.error_description)
        };
        assert_eq!(ids(json!([7, "5", 7.0, 5])), Ok(vec![7, 5]));
        assert!(ids(json!([])).unwrap_err().contains("an array of 1 to 3"));
        assert!(ids(json!([1, 0])).unwrap_err().contains("USERS[1]"));
        assert!(
            ids(json!([1, 2, 3, 4]))
                .unwrap_err()
                .contains("4 different IDs; at most 3")
        );
        // Duplicates count towards what is read (ten times the maximum), not towards the maximum.
        assert_eq!(ids(json!(vec![1; 30])), Ok(vec![1]));
        assert!(
            ids(json!(vec![1; 31]))
                .unwrap_err()
                .contains("an array of 1 to 3")
        );
    }

    #[test]
    fn dialog_forms_are_normalised() {
        for (args, expected) in [
            (json!({"CHAT_ID": 2935}), "chat2935"),
            (json!({"chat_id": "chat2935"}), "chat2935"),
            (json!({"DIALOG_ID": "CHAT2935"}), "chat2935"),
            (json!({"DIALOG_ID": "sg17"}), "sg17"),
            (json!({"DIALOG_ID": " 47 "}), "47"),
            (json!({"DIALOG_ID": 47}), "47"),
        ] {
            let m = map(args.clone());
            let a = Args::new(&m, &["CHAT_ID", "DIALOG_ID"]).unwrap();
            assert_eq!(dialog(&a).unwrap(), expected, "{args}");
        }
        for args in [
            json!({}),
            json!({"CHAT_ID": 1, "DIALOG_ID": "chat1"}),
            json!({"CHAT_ID": "sg17"}),
            json!({"DIALOG_ID": "chat"}),
            json!({"DIALOG_ID": "sg0"}),
            json!({"DIALOG_ID": "group17"}),
            json!({"DIALOG_ID": -3}),
        ] {
            let m = map(args.clone());
            let a = Args::new(&m, &["CHAT_ID", "DIALOG_ID"]).unwrap();
            let err = dialog(&a).unwrap_err();
            assert_eq!(err.error, "INVALID_ARGUMENT", "{args}");
        }
    }

    #[test]
    fn unknown_and_repeated_names_are_refused() {
        let m = map(json!({"FIND": "x", "LIMT": 5}));
        let err = Args::new(&m, &["FIND", "LIMIT", "OFFSET"]).unwrap_err();
        assert!(
            err.error_description
                .contains("unexpected argument \"LIMT\": this tool takes FIND, LIMIT and OFFSET"),
            "{}",
            err.error_description
        );
        let m = map(json!({"FIND": "x", "find": "y"}));
        assert!(Args::new(&m, &["FIND"]).is_err());
    }

    #[test]
    fn integers_flags_and_texts_are_checked() {
        let m = map(json!({"LIMIT": 51, "SKIP_CHAT": "Y", "FIND": " a "}));
        let a = Args::new(&m, &["LIMIT", "SKIP_CHAT", "FIND", "OFFSET"]).unwrap();
        assert!(integer(&a, "LIMIT", 1..=50, 10).is_err());
        assert_eq!(integer(&a, "OFFSET", 0..=1_000_000, 0).unwrap(), 0);
        assert_eq!(flag(&a, "SKIP_CHAT").unwrap(), Some(true));
        let err = text(&a, "FIND", 2, 100, "at least 2 characters").unwrap_err();
        assert!(
            err.error_description
                .contains("FIND must be at least 2 characters")
        );
    }
}
