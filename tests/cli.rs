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
        "BITRIX24_TOOLS",
        "BITRIX24_EXCLUDE_TOOLS",
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
        stderr.contains("unknown tool \"nope\"; this server has: im_search_chat_list, im_chat_get"),
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
    assert_eq!(tools.len(), 10);
    let chat_user_list = tools
        .iter()
        .find(|t| t["name"] == "im_chat_user_list")
        .unwrap();
    assert_eq!(
        chat_user_list["inputSchema"]["required"],
        json!(["CHAT_ID"])
    );
    let (code, stdout, _) = run(&mut bitrix24_mcp(&[
        "tools",
        "--tools",
        "im_search_chat_list,im_dialog_users_list",
    ]));
    assert_eq!(code, 0);
    let listing: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = listing["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["im_search_chat_list", "im_dialog_users_list"]);
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

// ---- what a newcomer meets: messages that name what they set, once ---------------------------

#[test]
fn an_invalid_environment_value_is_reported_under_the_variable() {
    let cases = [
        ("BITRIX24_REQUEST_TIMEOUT", "soon", "is not a duration"),
        (
            "BITRIX24_ALLOW_INSECURE_HTTP",
            "maybe",
            "use one of true, false, 1, 0, yes, no, on, off",
        ),
        ("BITRIX24_LOG_FORMAT", "xml", "not one of: text, json"),
    ];
    for (variable, value, reason) in cases {
        let (code, stdout, stderr) = run(bitrix24_mcp(&["tools"]).env(variable, value));
        assert_eq!((code, stdout.as_str()), (2, ""), "{variable}");
        assert!(
            stderr.starts_with(&format!("bitrix24-mcp: {variable}: ")),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{stderr}");
        assert!(
            !stderr.contains("--"),
            "names the flag, not the variable: {stderr}"
        );
    }
    // Typed as a flag, it is reported as the flag.
    let (code, _, stderr) = run(&mut bitrix24_mcp(&["--request-timeout", "soon", "tools"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("--request-timeout"), "{stderr}");
}

#[test]
fn arguments_that_are_not_json_say_a_json_object_was_expected() {
    let (code, _, stderr) = run(&mut bitrix24_mcp(&[
        "--demo",
        "call",
        "im_chat_user_list",
        "{x",
    ]));
    assert_eq!(code, 2);
    assert!(stderr.contains("must be a JSON object like"), "{stderr}");
    assert!(!stderr.contains("expected ident"), "{stderr}");
}

#[test]
fn without_configuration_bad_arguments_are_still_invalid_arguments() {
    let (code, stdout, stderr) = run(&mut bitrix24_mcp(&[
        "call",
        "im_chat_user_list",
        r#"{"CHAT_ID":0}"#,
    ]));
    assert_eq!(code, 1);
    let error: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["error"], "INVALID_ARGUMENT");
    assert_eq!(stderr, "", "no warning on top of the answer");
}

#[test]
fn tools_and_check_print_no_warning_about_a_missing_portal() {
    let (_, _, stderr) = run(&mut bitrix24_mcp(&["tools"]));
    assert_eq!(stderr, "");
    let (code, stdout, stderr) = run(&mut bitrix24_mcp(&["check"]));
    assert_eq!(code, 1);
    assert!(stdout.contains("NOT_CONFIGURED"), "{stdout}");
    assert_eq!(stderr, "");
}

#[test]
fn a_bad_token_file_is_reported_once() {
    let dir = common::temp_dir("badfile");
    let file = dir.join("tokens.json");
    std::fs::write(&file, "{not json").unwrap();
    let (code, _, stderr) = run(bitrix24_mcp(&["serve"])
        .env("BITRIX24_PORTAL_URL", "https://acme.bitrix24.com/rest/")
        .env("BITRIX24_CLIENT_ID", "app")
        .env("BITRIX24_CLIENT_SECRET", "s3cr3t")
        .env("BITRIX24_TOKEN_FILE", &file));
    assert_eq!(code, 2);
    assert_eq!(
        stderr.matches("not a valid token file").count(),
        1,
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_token_file_that_is_a_fifo_is_refused_at_once() {
    let dir = common::temp_dir("fifo");
    let fifo = dir.join("tokens.json");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    let (code, _, stderr) = run(
        bitrix24_mcp(&["call", "im_chat_user_list", r#"{"CHAT_ID":1}"#])
            .env("BITRIX24_PORTAL_URL", "https://acme.bitrix24.com/rest/")
            .env("BITRIX24_CLIENT_ID", "app")
            .env("BITRIX24_CLIENT_SECRET", "s3cr3t")
            .env("BITRIX24_TOKEN_FILE", &fifo),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("a named pipe (FIFO), not a regular file"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

// ---- one-shot commands stop on a signal ------------------------------------------------------

/// A portal that accepts connections and never answers. Returns its address and a receiver that
/// gets a message as each connection arrives.
fn hanging_portal() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (arrived, arrivals) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            let _ = arrived.send(());
        }
    });
    (address, arrivals)
}

#[cfg(unix)]
#[test]
fn call_and_check_exit_promptly_on_sigint_and_sigterm() {
    use std::time::Duration;
    let cases: [(&[&str], i32, i32); 4] = [
        (
            &["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#],
            libc::SIGINT,
            130,
        ),
        (
            &["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#],
            libc::SIGTERM,
            143,
        ),
        (&["check"], libc::SIGINT, 130),
        (&["check"], libc::SIGTERM, 143),
    ];
    for (args, signal, expected) in cases {
        let (address, arrivals) = hanging_portal();
        let mut child = bitrix24_mcp(args)
            .env(
                "BITRIX24_WEBHOOK_URL",
                format!("http://{address}/rest/1/{CODE}/"),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        arrivals
            .recv_timeout(Duration::from_secs(10))
            .expect("the request reaches the portal");
        let started = std::time::Instant::now();
        // SAFETY: kill(2) with a valid signal number on our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{args:?} ignored the signal"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(expected), "{args:?}");
    }
}

#[test]
fn every_write_is_logged_with_what_changed_and_how_it_was_confirmed() {
    let (code, stdout, stderr) = run(bitrix24_mcp(&[
        "--demo",
        "--allow-writes",
        "call",
        "im_chat_user_add",
        r#"{"CHAT_ID":2935,"USERS":[1300]}"#,
    ])
    .env("RUST_LOG", "info"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        r#"{"ok":true,"chat_id":2935,"user_ids":[1300]}"#
    );
    let line = stderr
        .lines()
        .find(|l| l.contains(" write ") || l.ends_with(" write"))
        .unwrap_or_else(|| panic!("no write log line in {stderr}"));
    for part in [
        "tool=\"im_chat_user_add\"",
        "change=add users [1300] to chat 2935",
        "outcome=done",
        "confirmed=\"not needed (not destructive)\"",
        "transport=\"stdio\"",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    let (code, stdout, _) = run(&mut bitrix24_mcp(&["--demo", "--allow-writes", "check"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("writes          on; destructive ones need a typed confirmation"),
        "{stdout}"
    );
}
