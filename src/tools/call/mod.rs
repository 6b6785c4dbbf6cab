//! `bitrix24_call`: any REST method through the same client — limits, retries, operating gate,
//! error table, secret hygiene. The read policy ([`policy`]) decides what is a read; everything
//! else is a write, allowed only with `--allow-writes` and after the user types the method name
//! to a question ([`question`]) that names every write. A `batch` is classified command by
//! command, exactly as the portal will read it.

mod dialogs;
mod plan;
mod policy;
mod query;
mod question;
pub(super) mod quote;

pub use policy::{INFORMATIONAL, MAX_METHOD_CHARS, READ_LOOKING_WRITERS, is_read, valid_method};

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde_json::{Map, Value};

use super::args::{self, Args};
use super::error::ToolError;
use super::registry::{Access, Intent, ToolEntry, Writes, read, write};
use super::schema;
use crate::bitrix::{Client, Observer, bounded, untrusted};

const NAME: &str = "bitrix24_call";
const TITLE: &str = "Call any Bitrix24 REST method";

const DESCRIPTION: &str = "\
Calls any Bitrix24 REST method (e.g. crm.deal.fields) as the acting user, with the server's \
limits and errors; prefer an im_* tool where one fits. Reads (last segment get, list, fields, \
search, count, getXxx; scope, methods, user.current, app.info, server.time, profile) always \
work, except writers named like reads (event.offline.get, disk.file.getExternalLink, \
disk.folder.getExternalLink, im.v2.Event.get, imbot.v2.Event.get). Other methods write: refused \
unless the server allows writes, then the user types the method name. batch is classified per \
command (\"method?query\" strings).";

const MAX_PARAMS_BYTES: usize = 64 * 1024;
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
    schema::of::<Input>()
}

fn output() -> Value {
    schema::of::<Answer>()
}

/// For a field of any JSON object: `additionalProperties: true` says nothing `type` does not.
fn any_object(schema: &mut Schema) {
    if let Some(map) = schema.as_object_mut() {
        map.remove("additionalProperties");
        map.remove("default");
    }
}

/// The answer; the output schema is derived from it.
#[derive(Serialize, JsonSchema)]
struct Answer {
    method: String,
    /// The portal's result, as it sent it.
    #[schemars(extend("type" = ["object", "array", "string", "number", "boolean", "null"]))]
    result: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = "integer"))]
    total: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = "integer"))]
    next: Option<i64>,
    /// batch only: the commands that failed, by key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = "object"), transform = any_object)]
    command_errors: Option<Map<String, Value>>,
}

/// The arguments as [`parse`] reads them; the input schema is derived from it.
#[derive(JsonSchema)]
struct Input {
    /// As the docs write it: crm.deal.fields, catalog.product.getFieldsByFilter.
    method: String,
    /// At most 64 KiB of JSON; each name once, in any case (Bitrix24 ignores case). batch: {"cmd": {"a": "user.get?ID=1"}, "halt": 0}.
    #[serde(default)]
    #[schemars(transform = any_object)]
    params: Map<String, Value>,
    // What the call runs, as the portal will read it (not an argument).
    #[schemars(skip)]
    plan: plan::Plan,
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
    let plan = plan::classify(&method, &params)?;
    Ok(Input {
        method,
        params,
        plan,
    })
}

fn intent(arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    let input = parse(arguments)?;
    if !input.plan.writes() {
        return Ok(None);
    }
    Ok(Some(Intent {
        summary: question::summary(&input.plan),
        chat: None,
        user: None,
        message: None,
        writes_to: dialogs::writes_to(&input.plan, &input.params),
        confirm: Some(question::question(
            &input.method,
            &input.params,
            &input.plan,
        )?),
    }))
}

fn run<'a>(
    client: &'a Client,
    arguments: &'a JsonObject,
    observer: Observer<'a>,
    _writes: &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>> {
    Box::pin(async move {
        let input = parse(arguments)?;
        let params = Value::Object(input.params);
        let envelope = if input.plan.writes() {
            write(client, &input.method, &params, observer).await?
        } else {
            read(client, &input.method, &params, observer).await?
        };
        let secrets = client.auth().secrets();
        // A result cut while it was read held more values than 100 KiB of JSON can.
        let cut = envelope.cut;
        let result = scrubbed(envelope.result, &secrets);
        let size = json_size(&result);
        if cut || size > MAX_RESULT_BYTES {
            let measure = if cut {
                format!("holds more than {} values", bounded::RESULT_VALUES)
            } else {
                format!("is {size} bytes of JSON")
            };
            return Err(ToolError::result_too_large(format!(
                "{}'s result {measure}, over the {MAX_RESULT_BYTES}-byte limit{}",
                input.method,
                if input.plan.writes() {
                    "; the call itself was made"
                } else {
                    ""
                }
            )));
        }
        let command_errors = command_errors(&result);
        let answer = Answer {
            method: input.method,
            result,
            total: envelope.total,
            next: envelope.next,
            command_errors,
        };
        serde_json::to_value(answer).map_err(|_| ToolError::internal())
    })
}

/// The length of a value's JSON, counted without writing it out.
fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Cannot fail: the counter takes every byte, and a Value (string keys only) always serialises.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
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
fn command_errors(result: &Value) -> Option<Map<String, Value>> {
    let errors = result.get("result_error")?.as_object()?;
    (!errors.is_empty()).then(|| errors.clone())
}
