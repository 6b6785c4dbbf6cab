//! README's "Try it" walkthrough, run as written: what each demo command prints, and that the
//! walk asks about the chats it finds.

use super::readme;

/// The demo commands README shows (with `--allow-writes` or not), each with the line it says the
/// command prints.
fn demo_examples() -> Vec<(bool, String, String, String)> {
    let text = readme();
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (writes, rest) =
            if let Some(rest) = line.strip_prefix("cargo run --release -- --demo call ") {
                (false, rest)
            } else if let Some(rest) =
                line.strip_prefix("cargo run --release -- --demo --allow-writes call ")
            {
                (true, rest)
            } else {
                continue;
            };
        let (tool, arguments) = rest.split_once(' ').unwrap();
        let arguments = arguments.trim_matches('\'').to_owned();
        let json_start = lines[i..]
            .iter()
            .position(|l| *l == "```json")
            .map(|p| i + p + 1)
            .unwrap();
        assert_eq!(
            lines[json_start + 1],
            "```",
            "{tool} {arguments}: README shows the output as one line"
        );
        examples.push((
            writes,
            tool.to_owned(),
            arguments,
            lines[json_start].to_owned(),
        ));
    }
    examples
}

/// What a newcomer sees on a fresh clone: each command of README's walkthrough prints, byte for
/// byte, the line README shows under it.
#[test]
fn every_demo_command_in_the_readme_prints_what_the_readme_says() {
    let examples = demo_examples();
    assert!(examples.len() >= 4, "README's walkthrough is missing");
    assert!(
        examples.iter().any(|(writes, ..)| *writes),
        "README's walkthrough shows no write"
    );
    // Each command starts its own sample portal, as a newcomer's would.
    for (writes, tool, arguments, expected) in examples {
        let flags: &[&str] = if writes {
            &["--demo", "--allow-writes", "call"]
        } else {
            &["--demo", "call"]
        };
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_bitrix24-mcp"))
            .args(flags)
            .args([&tool, &arguments])
            .env_remove("BITRIX24_WEBHOOK_URL")
            .env_remove("BITRIX24_TOOLS")
            .env_remove("BITRIX24_EXCLUDE_TOOLS")
            .env_remove("BITRIX24_WRITE_CHATS")
            .env_remove("BITRIX24_MESSAGE_FOOTER")
            .output()
            .unwrap();
        assert!(output.status.success(), "{tool} {arguments}");
        let printed = String::from_utf8(output.stdout).unwrap();
        assert_eq!(printed, format!("{expected}\n"), "{tool} {arguments}");
    }
}

/// The README's walkthrough asks about the chat it has just found: each chat ID a command asks
/// about is the one the latest command that printed a chat printed.
#[test]
fn the_walkthrough_asks_about_the_chat_it_just_found() {
    let mut latest: Option<serde_json::Value> = None;
    for (_, tool, arguments, printed) in demo_examples() {
        let arguments: serde_json::Value = serde_json::from_str(&arguments).unwrap();
        if let Some(chat) = arguments.get("CHAT_ID") {
            assert_eq!(
                Some(chat),
                latest.as_ref(),
                "{tool} asks about chat {chat}, not the one just found"
            );
        }
        let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
        let found = printed["chats"]
            .get(0)
            .unwrap_or(&printed)
            .get("chat_id")
            .filter(|id| id.is_u64());
        if let Some(id) = found {
            latest = Some(id.clone());
        }
    }
}
