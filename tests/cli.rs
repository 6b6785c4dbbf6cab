//! The binary's one-shot commands and its start-up validation, run as a user would.

mod common;

use std::process::{Command, Output};

use common::{BIN, CODE};
use serde_json::{Value, json};

/// The binary with a clean environment: no configuration leaks in from the test runner.
fn bitrix24_mcp(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for var in [
        "BITRIX24_WEBHOOK_URL",
        "BITRIX24_ALLOW_INSECURE_HTTP",
        "BITRIX24_CONNECT_TIMEOUT",
        "BITRIX24_REQUEST_TIMEOUT",
        "BITRIX24_LOG_FORMAT",
        "BITRIX24_PORTAL_URL",
        "BITRIX24_ACCESS_TOKEN",
        "BITRIX24_REFRESH_TOKEN",
        "BITRIX24_CLIENT_ID",
        "BITRIX24_CLIENT_SECRET",
        "BITRIX24_TOKEN_FILE",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("binary runs");
    (
        status.code().expect("exited normally"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[test]
fn demo_call_prints_the_participants() {
    let (code, stdout, stderr) = run(&mut bitrix24_mcp(&[
        "--demo",
        "call",
        "im_chat_user_list",
        r#"{"CHAT_ID":2935}"#,
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "{\"chat_id\":2935,\"user_ids\":[99,1269,1271],\"count\":3}\n"
    );
    assert_eq!(stderr, "", "one-shot commands are quiet by default");
}

#[test]
fn demo_call_error_prints_the_error_object_and_exits_1() {
    let (code, stdout, _) = run(&mut bitrix24_mcp(&[
        "call",
        "im_chat_user_list",
        r#"{"CHAT_ID":1}"#,
        "--demo",
    ]));
    assert_eq!(code, 1);
    let error: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["error"], "ACCESS_ERROR");
    assert_eq!(error["http_status"], 403);
}

#[test]
fn invalid_arguments_exit_1_with_invalid_argument() {
    let (code, stdout, _) = run(&mut bitrix24_mcp(&[
        "--demo",
        "call",
        "im_chat_user_list",
        r#"{"CHAT_ID":"abc"}"#,
    ]));
    assert_eq!(code, 1);
    let error: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["error"], "INVALID_ARGUMENT");
}

#[test]
fn arguments_that_are_not_a_json_object_are_a_usage_error() {
    for (arguments, expected) in [("[1]", "got an array"), ("{oops", "not valid JSON")] {
        let (code, stdout, stderr) = run(&mut bitrix24_mcp(&[
            "--demo",
            "call",
            "im_chat_user_list",
            arguments,
        ]));
        assert_eq!(code, 2);
        assert_eq!(stdout, "");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn an_unknown_tool_is_a_usage_error_naming_the_tools() {
    let (code, _, stderr) = run(&mut bitrix24_mcp(&["--demo", "call", "nope", "{}"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown tool \"nope\"; this server has: im_chat_user_list"),
        "{stderr}"
    );
}

#[test]
fn without_configuration_a_call_answers_not_configured() {
    let (code, stdout, _) = run(&mut bitrix24_mcp(&[
        "call",
        "im_chat_user_list",
        r#"{"CHAT_ID":2935}"#,
    ]));
    assert_eq!(code, 1);
    let error: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["error"], "NOT_CONFIGURED");
}

#[test]
fn tools_prints_the_listed_definitions() {
    let (code, stdout, _) = run(&mut bitrix24_mcp(&["tools"]));
    assert_eq!(code, 0);
    let listing: Value = serde_json::from_str(&stdout).unwrap();
    let tools = listing["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["name"], "im_chat_user_list");
    assert_eq!(tools[0]["inputSchema"]["required"], json!(["CHAT_ID"]));
}

#[test]
fn a_malformed_webhook_url_is_refused_in_one_line_without_the_code() {
    let cases = [
        (
            format!("https://acme.bitrix24.com/rest/x/{CODE}/"),
            "must be the user ID, a positive number, but it is 1 character without digits",
        ),
        (
            // Swapped segments: the code stands where the user ID belongs, and is not quoted.
            format!("https://acme.bitrix24.com/rest/{CODE}/1/"),
            "are the user ID and the code swapped?",
        ),
        (
            format!("https://acme.bitrix24.com/{CODE}/"),
            "no /rest/ segment",
        ),
        (
            format!("http://acme.bitrix24.com/rest/1/{CODE}/"),
            "plain http://",
        ),
        (
            format!("acme.bitrix24.com/rest/1/{CODE}"),
            "not an absolute URL",
        ),
    ];
    for (url, expected) in cases {
        for args in [
            &["serve"][..],
            &["call", "im_chat_user_list", "{}"][..],
            &["tools"][..],
        ] {
            let (code, stdout, stderr) = run(bitrix24_mcp(args).env("BITRIX24_WEBHOOK_URL", &url));
            assert_eq!(code, 2, "{url}");
            assert_eq!(stdout, "");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(expected), "{stderr}");
            assert!(!stderr.contains(CODE), "leaked: {stderr}");
        }
    }
}

#[test]
fn help_does_not_print_the_configured_webhook_url() {
    let (code, stdout, _) = run(bitrix24_mcp(&["--help"]).env(
        "BITRIX24_WEBHOOK_URL",
        format!("https://a.bitrix24.com/rest/1/{CODE}/"),
    ));
    assert_eq!(code, 0);
    assert!(stdout.contains("BITRIX24_WEBHOOK_URL"));
    assert!(!stdout.contains(CODE), "{stdout}");
}

#[test]
fn an_insecure_self_hosted_portal_is_allowed_when_asked() {
    // Nothing listens on this port: the call fails, but configuration is accepted.
    let (code, stdout, _) = run(bitrix24_mcp(&[
        "--allow-insecure-http",
        "--max-retries",
        "0",
        "--connect-timeout",
        "2s",
        "call",
        "im_chat_user_list",
        r#"{"CHAT_ID":5}"#,
    ])
    .env("BITRIX24_WEBHOOK_URL", "http://127.0.0.1:9/rest/1/abc/"));
    assert_eq!(code, 1);
    let error: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["error"], "NETWORK_ERROR");
}
