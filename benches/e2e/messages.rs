//! What the tools cost an assistant's context, in bytes, as the binary gives them: `tools/list`
//! for the default read tools and with writes on (`bitrix24-mcp tools`, compacted as on the
//! wire), and a page of 20 ordinary messages (`--demo call im_dialog_messages_get`: the Marketing
//! chat's third page of 20 from its newest).

use serde_json::{Value, json};

use super::{BIN, Row};

/// The binary's output for `args`, parsed as JSON.
fn json_of(args: &[&str]) -> Value {
    let output = std::process::Command::new(BIN)
        .args(args)
        .env_remove("BITRIX24_WEBHOOK_URL")
        .env("RUST_LOG", "error")
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{args:?}: {output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn bytes(value: &Value) -> usize {
    value.to_string().len()
}

fn kb(bytes: usize) -> String {
    format!("{:.1} KB ({bytes} bytes)", bytes as f64 / 1024.0)
}

pub fn rows() -> Vec<Row> {
    let reads = bytes(&json_of(&["tools"]));
    let writes = bytes(&json_of(&["tools", "--allow-writes"]));
    // Two pages back from the newest: each call starts its own sample portal, whose history is
    // the same every time.
    let mut page = json_of(&[
        "--demo",
        "call",
        "im_dialog_messages_get",
        r#"{"CHAT_ID":2935,"LIMIT":20}"#,
    ]);
    for _ in 0..2 {
        let arguments = json!({"CHAT_ID": 2935, "LIMIT": 20, "LAST_ID": page["older_than"]});
        page = json_of(&[
            "--demo",
            "call",
            "im_dialog_messages_get",
            &arguments.to_string(),
        ]);
    }
    let count = page["messages"].as_array().map_or(0, Vec::len);
    let page_bytes = bytes(&page);
    vec![
        Row::new(
            "tools/list, default read tools (compact JSON)",
            kb(reads),
            "≤ 14 KB",
            reads <= 14 * 1024,
        ),
        Row::new(
            "tools/list with --allow-writes (compact JSON)",
            kb(writes),
            "≤ 18 KB",
            writes <= 18 * 1024,
        ),
        Row::new(
            &format!(
                "im_dialog_messages_get: structuredContent of a page of {count} ordinary messages"
            ),
            kb(page_bytes),
            "< 6 KB",
            count == 20 && page_bytes < 6 * 1024,
        ),
    ]
}
