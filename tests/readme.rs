//! README.md and the pages under docs/ are part of the product: where they list flags,
//! variables, error codes, tools, the minimum Rust and the client example files, they must agree
//! with the code, and their links must lead somewhere. Each kind of fact has one home, named
//! below; each test reads that page's own text.

#[path = "readme/links.rs"]
mod links;
#[path = "readme/walkthrough.rs"]
mod walkthrough;

use std::collections::BTreeSet;
use std::path::Path;

use bitrix24_mcp::bitrix::CallError;
use bitrix24_mcp::config::Cli;
use bitrix24_mcp::tools::codes::{BITRIX_CODES, REFRESH_CODES};
use bitrix24_mcp::tools::{Bitrix24Tools, ToolError};
use clap::CommandFactory;

/// The newcomer's page: Try it (the demo commands and what they print, the minimum Rust), and the
/// short table of the tools.
const README: &str = "README.md";
/// Every flag with its environment variable, in the table under its title.
const CONFIGURATION: &str = "docs/configuration.md";
/// Every error code, in the table under `## Codes`.
const ERRORS: &str = "docs/errors.md";
/// Every tool with its REST method, example input and answer, in the table under its title.
const TOOLS: &str = "docs/tools.md";

fn read(page: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(page);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn readme() -> String {
    read(README)
}

/// README.md and every page under docs/.
fn documentation_pages() -> Vec<String> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut pages: Vec<String> = std::fs::read_dir(&docs)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    pages.insert(0, README.to_owned());
    pages
}

/// The table rows under the heading line `heading` of `page` (the first table after it).
fn table_rows(page: &str, heading: &str) -> Vec<Vec<String>> {
    let text = read(page);
    let mut lines = text.lines();
    assert!(
        lines.any(|line| line == heading),
        "{page} has no heading {heading:?}"
    );
    let rows: Vec<Vec<String>> = lines
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect();
    assert!(!rows.is_empty(), "{page}: no table under {heading:?}");
    rows
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
    for row in table_rows(CONFIGURATION, "# Configuration") {
        let Some(flag) = quoted(&row[0]).into_iter().next() else {
            continue;
        };
        let flag = flag.split_whitespace().next().unwrap().to_owned();
        let variable = quoted(&row[1]).into_iter().next();
        let arg = command
            .get_arguments()
            .find(|a| a.get_long().map(|l| format!("--{l}")) == Some(flag.clone()))
            .unwrap_or_else(|| {
                panic!("{CONFIGURATION} lists {flag}, which the binary does not have")
            });
        assert_eq!(
            variable,
            arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            "the variable of {flag}"
        );
        in_readme.insert(flag);
    }
    assert_eq!(
        in_readme, in_code,
        "{CONFIGURATION}'s flags and the binary's differ"
    );
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
            ToolError::chat_not_allowed("x".into()).error,
            ToolError::message_not_found(1, "chat1").error,
            ToolError::not_confirmed("x").error,
            ToolError::confirmation_unavailable("x").error,
            ToolError::result_too_large("x".into()).error,
        ])
        .collect()
}

#[test]
fn the_error_table_lists_every_code_the_server_knows() {
    let mut in_readme = BTreeSet::new();
    for row in table_rows(ERRORS, "## Codes") {
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
        "codes {ERRORS} does not list: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "codes {ERRORS} lists that the server does not know: {unknown:?}"
    );
}

/// README is the newcomer's path, in the order a newcomer walks it; the rest lives in docs/.
#[test]
fn the_readme_stays_a_newcomers_page() {
    let text = readme();
    assert!(
        text.len() < 15 * 1024,
        "README.md is {} bytes: move the detail into a page under docs/",
        text.len()
    );
    let sections: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        sections,
        [
            "## Try it",
            "## Install",
            "## Connect your assistant",
            "## The tools",
            "## Read more",
            "## Run the tests",
        ]
    );
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

/// README shows each example file whole where it says the file is that entry "as a whole
/// file".
#[test]
fn readme_shows_each_example_file_as_it_is() {
    let text = readme();
    let mut shown = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line) {
            (None, "```json") => block = Some(String::new()),
            (Some(json), "```") => {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(json) {
                    shown.push(value);
                }
                block = None;
            }
            (Some(json), line) => json.push_str(line),
            (None, _) => {}
        }
    }
    for file in ["mcp.json.example", "cursor.mcp.json.example"] {
        let example: serde_json::Value = serde_json::from_str(&read(file)).unwrap();
        assert!(shown.contains(&example), "README does not show {file}");
    }
}

/// The tools, in the registry's order, with their REST methods: in README's short table and in
/// the full table of docs/tools.md.
#[test]
fn the_tools_tables_list_every_tool_with_its_method() {
    let in_code: Vec<(String, String)> = bitrix24_mcp::tools::registry::TOOLS
        .iter()
        .map(|t| (t.name.to_owned(), t.method.to_owned()))
        .collect();
    let served: Vec<String> = Bitrix24Tools::definitions()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    for (page, heading) in [(README, "## The tools"), (TOOLS, "# The tools")] {
        let listed: Vec<(String, String)> = table_rows(page, heading)
            .iter()
            .map(|row| (quoted(&row[0])[0].clone(), quoted(&row[1])[0].clone()))
            .collect();
        assert_eq!(listed, in_code, "{page}");
        for name in &served {
            assert!(
                listed.iter().any(|(listed, _)| listed == name),
                "{page} does not list {name}"
            );
        }
    }
}

/// Every `BITRIX24_*` or `MCP_*` variable the documentation names is one the binary reads (a
/// renamed variable must not live on in some page).
#[test]
fn every_variable_the_documentation_names_exists() {
    // Read by the interoperability script, not by the binary.
    let not_the_binarys = ["BITRIX24_MCP_BIN"];
    let known: BTreeSet<String> = Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    for page in documentation_pages() {
        let text = read(&page);
        let mut rest = text.as_str();
        while let Some(at) = rest.find(['B', 'M']) {
            let word: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let before = rest[..at].chars().next_back();
            let starts_word = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if starts_word
                && (word.starts_with("BITRIX24_") || word.starts_with("MCP_"))
                && !not_the_binarys.contains(&word.as_str())
            {
                assert!(
                    known.contains(&word),
                    "{page} names {word}, which the binary does not read"
                );
            }
            rest = &rest[at + word.len().max(1)..];
        }
    }
}

#[test]
fn every_relative_link_leads_to_a_file_and_a_heading() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let problems: Vec<String> = documentation_pages()
        .iter()
        .flat_map(|page| links::broken_links(&root.join(page), &read(page)))
        .collect();
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}
