//! One-shot commands: `call` runs a tool through the same path as an MCP `tools/call` and prints
//! the result; `tools` prints the definitions as `tools/list` shows them; `check` (in its own
//! module) tells whether the configuration works; `grants` (in its own module) lists and ends
//! users' sign-ins.

pub mod check;
pub mod grants;

use std::io::Write;

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

/// Prints a one-shot command's output and returns its exit code. A reader that has gone
/// (`bitrix24-mcp tools | head`) has read all it wanted: the rest is dropped quietly and the
/// command's own exit code stands, never a panic.
pub fn print(outcome: &Outcome) -> i32 {
    if !outcome.stdout.is_empty()
        && let Err(code) = print_stdout(&outcome.stdout)
    {
        return code;
    }
    if !outcome.stderr.is_empty() {
        let _ = writeln!(std::io::stderr(), "{}", outcome.stderr);
    }
    outcome.exit_code
}

/// Writes `text` and a newline to stdout. A closed pipe is not an error (see [`print`]); any
/// other failure to write (a full disk) is reported on stderr, as `Err` with exit code 1.
pub fn print_stdout(text: &str) -> Result<(), i32> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "bitrix24-mcp: cannot write the output: {err}"
            );
            Err(1)
        }
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
