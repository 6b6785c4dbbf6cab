//! One-shot commands: `call` runs a tool through the same path as an MCP `tools/call` and prints
//! the result; `tools` prints the definitions as `tools/list` shows them; `check` (in its own
//! module) tells whether the configuration works.

pub mod check;

use rmcp::model::{CallToolResult, JsonObject};
use serde_json::{Value, json};

use crate::tools::{Bitrix24Tools, Selection};

/// Exit code when the tool reports an error.
pub const EXIT_TOOL_ERROR: i32 = 1;
/// Exit code for a call that could not be made: unknown tool, arguments not a JSON object.
pub const EXIT_USAGE: i32 = 2;

/// What a command prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// Runs one tool call. Success prints the structured result; a tool error prints its JSON object.
pub async fn call(tools: &Bitrix24Tools, name: &str, arguments: &str) -> Outcome {
    let arguments: JsonObject = match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            return usage(format!(
                "the arguments must be a JSON object like '{{\"CHAT_ID\":2935}}', got {}",
                kind(&other)
            ));
        }
        Err(err) => {
            return usage(format!(
                "the arguments must be a JSON object like '{{\"CHAT_ID\":2935}}', but the text \
                 is not valid JSON (the problem is at column {})",
                err.column()
            ));
        }
    };
    match tools.call(name, Some(&arguments)).await {
        Ok(result) => render(&result),
        Err(unknown) => usage(unknown.to_string()),
    }
}

/// The served tool definitions, as the `tools/list` result.
pub fn tools(selection: &Selection) -> Outcome {
    let listing = json!({ "tools": Bitrix24Tools::new(None).serving(selection.clone()).listed() });
    Outcome {
        stdout: serde_json::to_string_pretty(&listing).unwrap_or_default(),
        stderr: String::new(),
        exit_code: 0,
    }
}

fn render(result: &CallToolResult) -> Outcome {
    let is_error = result.is_error == Some(true);
    let stdout = match (&result.structured_content, is_error) {
        (Some(value), false) => value.to_string(),
        // An error's last text is its JSON object (the first repeats it as a sentence).
        (_, true) => result
            .content
            .iter()
            .rev()
            .find_map(|c| c.as_text().map(|t| t.text.clone()))
            .unwrap_or_default(),
        _ => result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    Outcome {
        stdout,
        stderr: String::new(),
        exit_code: if is_error { EXIT_TOOL_ERROR } else { 0 },
    }
}

fn usage(message: String) -> Outcome {
    Outcome {
        stdout: String::new(),
        stderr: format!("bitrix24-mcp: {message}"),
        exit_code: EXIT_USAGE,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
