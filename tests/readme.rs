//! README is part of the product: where it lists flags, variables, error codes, tools, the
//! minimum Rust and the client example files, it must agree with the code. Each test reads the
//! README's own text.

use std::collections::BTreeSet;

use bitrix24_mcp::bitrix::CallError;
use bitrix24_mcp::config::Cli;
use bitrix24_mcp::tools::codes::{BITRIX_CODES, REFRESH_CODES};
use bitrix24_mcp::tools::{Bitrix24Tools, ToolError};
use clap::CommandFactory;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The table rows of the section headed `heading`.
fn table_rows(heading: &str) -> Vec<Vec<String>> {
    let text = readme();
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    text[start..]
        .lines()
        .skip(1)
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// Every `backticked` word of a cell.
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_table_lists_every_flag_with_its_variable() {
    let command = Cli::command();
    let mut in_code = BTreeSet::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        in_code.insert(format!("--{long}"));
    }
    let mut in_readme = BTreeSet::new();
    for row in table_rows("## Configuration") {
        let Some(flag) = quoted(&row[0]).into_iter().next() else {
            continue;
        };
        let flag = flag.split_whitespace().next().unwrap().to_owned();
        let variable = quoted(&row[1]).into_iter().next();
        let arg = command
            .get_arguments()
            .find(|a| a.get_long().map(|l| format!("--{l}")) == Some(flag.clone()))
            .unwrap_or_else(|| panic!("README lists {flag}, which the binary does not have"));
        assert_eq!(
            variable,
            arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            "the variable of {flag}"
        );
        in_readme.insert(flag);
    }
    assert_eq!(in_readme, in_code, "README's flags and the binary's differ");
}

/// Every code the server itself can answer with.
fn own_codes() -> BTreeSet<String> {
    let errors = [
        CallError::Network { detail: "x".into() },
        CallError::Timeout {
            after: std::time::Duration::from_secs(1),
        },
        CallError::Redirect {
            status: 302,
            location_host: None,
        },
        CallError::UnexpectedResponse {
            status: 502,
            detail: "x".into(),
        },
        CallError::OperationBlocked {
            method: "m".into(),
            retry_after: std::time::Duration::from_secs(1),
        },
        CallError::RateLimited {
            retry_after: std::time::Duration::from_secs(1),
        },
        CallError::StateUnavailable { detail: "x".into() },
        CallError::StateUnreadable { detail: "x".into() },
        CallError::StateMisconfigured { detail: "x".into() },
    ];
    errors
        .iter()
        .map(|e| ToolError::from_call(e).error)
        .chain([
            ToolError::invalid_argument("x").error,
            ToolError::not_configured().error,
            ToolError::internal().error,
            ToolError::writes_disabled("x").error,
            ToolError::not_confirmed("x").error,
            ToolError::confirmation_unavailable("x").error,
            ToolError::result_too_large("x".into()).error,
        ])
        .collect()
}

#[test]
fn the_error_table_lists_every_code_the_server_knows() {
    let mut in_readme = BTreeSet::new();
    for row in table_rows("## Errors") {
        for code in quoted(&row[0]) {
            in_readme.insert(code);
        }
    }
    let mut in_code: BTreeSet<String> = BITRIX_CODES
        .iter()
        .chain(REFRESH_CODES)
        .map(|info| info.code.to_owned())
        .collect();
    in_code.extend(own_codes());
    let missing: Vec<_> = in_code.difference(&in_readme).collect();
    let unknown: Vec<_> = in_readme.difference(&in_code).collect();
    assert!(
        missing.is_empty(),
        "codes README does not list: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "codes README lists that the server does not know: {unknown:?}"
    );
}

#[test]
fn every_tool_is_documented() {
    let text = readme();
    for tool in Bitrix24Tools::definitions() {
        assert!(
            text.contains(&format!("`{}`", tool.name)),
            "README does not document {}",
            tool.name
        );
    }
}

#[test]
fn the_stated_minimum_rust_is_cargo_tomls() {
    let manifest = include_str!("../Cargo.toml");
    let version = manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        readme().contains(&format!("Rust toolchain ({version} or newer)")),
        "README must state rust-version {version}"
    );
}

#[test]
fn each_example_file_works_pasted_whole_in_its_own_client() {
    let read = |name: &str| -> serde_json::Value {
        let path = format!("{}/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    for (file, client_syntax, foreign_syntax) in [
        ("mcp.json.example", "${BITRIX24_WEBHOOK_URL}", "${env:"),
        (
            "cursor.mcp.json.example",
            "${env:BITRIX24_WEBHOOK_URL}",
            "${BITRIX",
        ),
    ] {
        let config = read(file);
        let servers = config["mcpServers"].as_object().unwrap();
        assert_eq!(
            servers.keys().collect::<Vec<_>>(),
            ["bitrix24"],
            "{file}: only the real-portal stdio entry"
        );
        let entry = &servers["bitrix24"];
        assert_eq!(entry["command"], "bitrix24-mcp", "{file}");
        assert!(entry.get("url").is_none(), "{file}: no HTTP entry");
        let text = config.to_string();
        assert!(!text.contains("--demo"), "{file}: no demo entry");
        assert!(text.contains(client_syntax), "{file}");
        assert!(
            !text.contains(foreign_syntax),
            "{file}: the other client's syntax"
        );
    }
}

/// The demo commands README shows, each with the JSON it says the command prints.
fn demo_examples() -> Vec<(String, String, serde_json::Value)> {
    let text = readme();
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("cargo run --release -- --demo call ") else {
            continue;
        };
        let (tool, arguments) = rest.split_once(' ').unwrap();
        let arguments = arguments.trim_matches('\'').to_owned();
        let json_start = lines[i..]
            .iter()
            .position(|l| *l == "```json")
            .map(|p| i + p + 1)
            .unwrap();
        let expected = serde_json::from_str(lines[json_start]).unwrap();
        examples.push((tool.to_owned(), arguments, expected));
    }
    examples
}

#[test]
fn every_demo_command_in_the_readme_prints_what_the_readme_says() {
    let examples = demo_examples();
    assert!(examples.len() >= 4, "README's walkthrough is missing");
    // Only the read tools are shown with --demo alone.
    for (tool, arguments, expected) in examples {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_bitrix24-mcp"))
            .args(["--demo", "call", &tool, &arguments])
            .env_remove("BITRIX24_WEBHOOK_URL")
            .env_remove("BITRIX24_TOOLS")
            .env_remove("BITRIX24_EXCLUDE_TOOLS")
            .output()
            .unwrap();
        assert!(output.status.success(), "{tool} {arguments}");
        let printed = String::from_utf8(output.stdout).unwrap();
        let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(printed, expected, "{tool} {arguments}");
    }
}

#[test]
fn the_tools_table_lists_every_tool_with_its_method() {
    let rows = table_rows("## The tools");
    let listed: Vec<(String, String)> = rows
        .iter()
        .map(|row| (quoted(&row[0])[0].clone(), quoted(&row[1])[0].clone()))
        .collect();
    let in_code: Vec<(String, String)> = bitrix24_mcp::tools::registry::TOOLS
        .iter()
        .map(|t| (t.name.to_owned(), t.method.to_owned()))
        .collect();
    assert_eq!(listed, in_code);
}
