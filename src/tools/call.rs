//! `bitrix24_call`: any REST method through the same client — limits, retries, operating gate,
//! error table, secret hygiene. A documented read policy decides what is a read; everything else
//! is a write, allowed only with `--allow-writes` and after the user types the method name. A
//! `batch` is classified command by command.
//!
//! The read policy: a method is a read when its last segment is `get`, `list`, `fields`,
//! `search` or `count`, or a camel-case getter (`getFieldsByFilter`), or it is one of the
//! informational methods in [`INFORMATIONAL`]. Everything else (`add`, `update`, `delete`,
//! `set`, `send`, unknown verbs) is a write.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use serde_json::{Map, Value, json};

use super::args::{self, Args};
use super::confirm::Question;
use super::error::ToolError;
use super::registry::{Access, Intent, ToolEntry, read, write};
use crate::bitrix::{Client, Observer, untrusted};

const NAME: &str = "bitrix24_call";
const TITLE: &str = "Call any Bitrix24 REST method";

const DESCRIPTION: &str = "\
Calls any Bitrix24 REST method (e.g. crm.deal.fields, user.get) as the webhook's user, with the \
server's limits and errors; prefer a typed im_* tool where one fits. Reads (last segment get, \
list, fields, search, count, getXxx; scope, methods, user.current, app.info, server.time, \
profile) always work. Other methods change data: refused unless the server allows writes, then \
the user types the method name to confirm. batch is classified command by command.";

/// Methods that only inform, whatever their names.
pub const INFORMATIONAL: [&str; 8] = [
    "scope",
    "methods",
    "method.get",
    "user.current",
    "app.info",
    "server.time",
    "profile",
    "feature.get",
];

const MAX_METHOD_CHARS: usize = 100;
const MAX_PARAMS_BYTES: usize = 64 * 1024;
/// Bitrix24's own limit of commands in one batch.
const MAX_BATCH: usize = 50;
/// The largest result passed on, as JSON.
pub const MAX_RESULT_BYTES: usize = 100 * 1024;

pub const ENTRY: ToolEntry = ToolEntry {
    name: NAME,
    method: "any",
    // The scope depends on the method called; `check` does not judge it.
    scope: "",
    access: Access::Either,
    intent,
    title: TITLE,
    description: DESCRIPTION,
    input,
    output,
    check: |arguments| parse(arguments).map(drop),
    run,
};

fn input() -> Value {
    json!({
        "type": "object",
        "properties": {
            "method": {"type": "string", "description": "As the docs write it: crm.deal.fields, catalog.product.getFieldsByFilter."},
            "params": {"type": "object", "description": "The method's parameters, at most 64 KiB as JSON."},
        },
        "required": ["method"],
    })
}

fn output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "method": {"type": "string"},
            "result": {
                "type": ["object", "array", "string", "number", "boolean", "null"],
                "description": "The portal's result, as it sent it.",
            },
            "total": {"type": "integer"},
            "next": {"type": "integer"},
            "command_errors": {"type": "object", "description": "batch only: the commands that failed, by key."},
        },
        "required": ["method", "result"],
    })
}

struct Input {
    method: String,
    params: Map<String, Value>,
    writes: bool,
}

fn parse(arguments: &JsonObject) -> Result<Input, ToolError> {
    let args = Args::new(arguments, &["method", "params"])?;
    let value = args.required("method", "a REST method name, e.g. \"crm.deal.fields\"")?;
    let method = value
        .as_str()
        .map(str::trim)
        .filter(|m| valid_method(m))
        .ok_or_else(|| {
            args::wrong(
                "method",
                &format!(
                    "a REST method name of at most {MAX_METHOD_CHARS} characters: letters, digits \
                     and underscores between dots, e.g. \"crm.deal.fields\""
                ),
                value,
            )
        })?
        .to_owned();
    let params = match args.get("params") {
        None => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => return Err(args::wrong("params", "a JSON object", other)),
    };
    let size = Value::Object(params.clone()).to_string().len();
    if size > MAX_PARAMS_BYTES {
        return Err(ToolError::invalid_argument(format!(
            "params is {size} bytes of JSON; at most {MAX_PARAMS_BYTES} are taken"
        )));
    }
    let writes = if method.eq_ignore_ascii_case("batch") {
        batch_writes(&params)?
    } else {
        !is_read(&method)
    };
    Ok(Input {
        method,
        params,
        writes,
    })
}

/// Letters, digits and underscores between dots, starting with a letter: what the docs write,
/// and nothing a URL would treat as a path.
pub fn valid_method(method: &str) -> bool {
    method.len() <= MAX_METHOD_CHARS
        && method.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        && method.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// The read policy (see the module documentation).
pub fn is_read(method: &str) -> bool {
    let lower = method.to_ascii_lowercase();
    if INFORMATIONAL.contains(&lower.as_str()) {
        return true;
    }
    let last = method.rsplit('.').next().unwrap_or_default();
    // A camel-case getter (`getFieldsByFilter`) is a read by Bitrix24's naming; the hump is
    // only visible in the original spelling.
    let getter = last
        .strip_prefix("get")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
    getter
        || matches!(
            last.to_ascii_lowercase().as_str(),
            "get" | "list" | "fields" | "search" | "count"
        )
}

/// Whether a batch writes: one write makes it a write. Refused before I/O: more than 50
/// commands, a nested batch, a command whose method is not a method name.
fn batch_writes(params: &Map<String, Value>) -> Result<bool, ToolError> {
    let commands: Vec<&Value> = match params.get("cmd").or_else(|| params.get("CMD")) {
        Some(Value::Object(map)) => map.values().collect(),
        Some(Value::Array(list)) => list.iter().collect(),
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
    let mut writes = false;
    for command in commands {
        let method = match command {
            Value::String(text) => text.split('?').next().unwrap_or_default().trim(),
            Value::Object(object) => object
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            _ => "",
        };
        if !valid_method(method) {
            return Err(args::wrong(
                "a params.cmd command",
                "\"method?param=value&…\" with a REST method name",
                command,
            ));
        }
        if method.eq_ignore_ascii_case("batch") {
            return Err(ToolError::invalid_argument(
                "a batch inside a batch is refused (Bitrix24 refuses it too)".to_owned(),
            ));
        }
        writes |= !is_read(method);
    }
    Ok(writes)
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let input = parse(arguments)?;
    if !input.writes {
        return Ok(None);
    }
    let shown = untrusted::bounded(&Value::Object(input.params.clone()).to_string(), 300);
    Ok(Some(Intent {
        summary: format!("call {}", input.method),
        chat: None,
        user: None,
        confirm: Some(Question {
            message: format!(
                "Call {} on your Bitrix24 portal with the parameters {shown}? It may change data. \
                 To confirm, type the method name: {}",
                input.method, input.method
            ),
            expected: input.method.clone(),
        }),
    }))
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let input = parse(arguments)?;
        let params = Value::Object(input.params);
        let envelope = if input.writes {
            write(client, &input.method, &params, observer).await?
        } else {
            read(client, &input.method, &params, observer).await?
        };
        let secrets = client.auth().secrets();
        let result = scrubbed(envelope.result, &secrets);
        let size = result.to_string().len();
        if size > MAX_RESULT_BYTES {
            return Err(ToolError::result_too_large(format!(
                "{}'s result is {size} bytes of JSON, over the {MAX_RESULT_BYTES}-byte limit{}",
                input.method,
                if input.writes {
                    "; the call itself was made"
                } else {
                    ""
                }
            )));
        }
        let mut answer = json!({"method": input.method, "result": result});
        if let Some(total) = envelope.total {
            answer["total"] = json!(total);
        }
        if let Some(next) = envelope.next {
            answer["next"] = json!(next);
        }
        if let Some(errors) = command_errors(&answer["result"]) {
            answer["command_errors"] = errors;
        }
        Ok(answer)
    })
}

/// Every string of a result with the client's secrets redacted.
fn scrubbed(value: Value, secrets: &[String]) -> Value {
    match value {
        Value::String(s) => Value::String(untrusted::scrub(&s, secrets)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| scrubbed(v, secrets)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (untrusted::scrub(&k, secrets), scrubbed(v, secrets)))
                .collect(),
        ),
        other => other,
    }
}

/// A batch's failed commands (`result_error`), which Bitrix24 reports inside an HTTP 200.
fn command_errors(result: &Value) -> Option<Value> {
    let errors = result.get("result_error")?.as_object()?;
    (!errors.is_empty()).then(|| Value::Object(errors.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_policy() {
        for read in [
            "crm.deal.fields",
            "crm.deal.list",
            "user.get",
            "im.chat.user.list",
            "scope",
            "user.current",
            "SERVER.TIME",
            "crm.item.count",
        ] {
            assert!(is_read(read), "{read}");
        }
        assert!(is_read("catalog.product.getFieldsByFilter"));
        for write in [
            "crm.deal.add",
            "crm.deal.update",
            "im.chat.user.delete",
            "im.chat.leave",
            "im.message.add",
            "catalog.product.getter_reset",
            "disk.folder.getchildren_delete",
            "batch",
        ] {
            assert!(!is_read(write), "{write}");
        }
    }

    #[test]
    fn method_names_are_checked() {
        for good in [
            "crm.deal.fields",
            "scope",
            "catalog.product.getFieldsByFilter",
            "im.v2.File.upload",
        ] {
            assert!(valid_method(good), "{good}");
        }
        for bad in [
            "",
            ".x",
            "x.",
            "a..b",
            "../profile",
            "crm/deal",
            "x y",
            "1abc",
            "crm.deal.list?x=1",
            &"a".repeat(101),
        ] {
            assert!(!valid_method(bad), "{bad}");
        }
    }

    #[test]
    fn a_batch_is_a_write_when_one_command_is() {
        let batch = |cmd: Value| {
            let args = json!({"method": "batch", "params": {"cmd": cmd}});
            parse(args.as_object().unwrap()).map(|input| input.writes)
        };
        assert!(!batch(json!({"a": "user.get?ID=1", "b": "crm.deal.list"})).unwrap());
        assert!(batch(json!({"a": "user.get?ID=1", "b": "crm.deal.add?fields[TITLE]=x"})).unwrap());
        assert!(batch(json!({"a": "batch?cmd[x]=scope"})).is_err());
        assert!(batch(json!({})).is_err());
        let many: Map<String, Value> = (0..51).map(|i| (i.to_string(), json!("scope"))).collect();
        assert!(batch(Value::Object(many)).is_err());
    }
}
