//! What a newcomer meets in the first hour, run as they run it: messages that name the setting
//! as it was given (flag or variable), an unexpanded placeholder explained both ways, one-shot
//! commands that end quietly when their reader goes away (`tools | head`), and a demo start-up
//! log whose every claim the demo portal bears out.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};

use common::{BIN, CODE};
use serde_json::Value;

/// The binary with a clean environment: no configuration leaks in from the test runner.
fn bitrix24_mcp(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for var in [
        "BITRIX24_WEBHOOK_URL",
        "BITRIX24_ALLOW_INSECURE_HTTP",
        "BITRIX24_LOG_FORMAT",
        "BITRIX24_PORTAL_URL",
        "BITRIX24_ACCESS_TOKEN",
        "BITRIX24_REFRESH_TOKEN",
        "BITRIX24_CLIENT_ID",
        "BITRIX24_CLIENT_SECRET",
        "BITRIX24_TOKEN_FILE",
        "BITRIX24_TOOLS",
        "BITRIX24_EXCLUDE_TOOLS",
        "BITRIX24_STATE_URL",
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

// ---- messages name what the user wrote ----------------------------------------------------------

#[test]
fn a_bad_webhook_url_is_reported_under_the_flag_or_the_variable_that_gave_it() {
    let url = format!("https://acme.bitrix24.com/rest/x/{CODE}/");
    // Typed as a flag, before or after the command: the message names the flag only.
    for args in [
        vec!["--webhook-url", &url, "tools"],
        vec!["tools", "--webhook-url", &url],
        vec!["call", "im_chat_user_list", "{}", "--webhook-url", &url],
    ] {
        let (code, stdout, stderr) = run(&mut bitrix24_mcp(&args));
        assert_eq!((code, stdout.as_str()), (2, ""), "{args:?}");
        assert!(
            stderr.starts_with("bitrix24-mcp: --webhook-url: "),
            "{stderr}"
        );
        assert!(!stderr.contains("BITRIX24_WEBHOOK_URL"), "{stderr}");
        assert!(!stderr.contains(CODE), "leaked: {stderr}");
    }
    // Set as a variable: the message names the variable only.
    let (code, _, stderr) = run(bitrix24_mcp(&["tools"]).env("BITRIX24_WEBHOOK_URL", &url));
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("bitrix24-mcp: BITRIX24_WEBHOOK_URL: "),
        "{stderr}"
    );
    assert!(!stderr.contains("--webhook-url"), "{stderr}");
    // The same for a placeholder typed as the flag.
    let (code, _, stderr) = run(&mut bitrix24_mcp(&[
        "--webhook-url",
        "${BITRIX24_WEBHOOK_URL}",
        "tools",
    ]));
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("bitrix24-mcp: --webhook-url holds an unexpanded placeholder"),
        "{stderr}"
    );
}

/// `.mcp.json` with `"env": {"BITRIX24_WEBHOOK_URL": "${BITRIX24_WEBHOOK_URL}"}` and the variable
/// unset: Claude Code did substitute, found nothing, and passed the text on as written.
#[test]
fn an_unset_variable_behind_a_placeholder_is_called_unset() {
    let (code, stdout, stderr) =
        run(bitrix24_mcp(&["tools"]).env("BITRIX24_WEBHOOK_URL", "${BITRIX24_WEBHOOK_URL}"));
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "bitrix24-mcp: BITRIX24_WEBHOOK_URL holds an unexpanded placeholder \
             \"${BITRIX24_WEBHOOK_URL}\": BITRIX24_WEBHOOK_URL is not set where the MCP client \
             started"
        ),
        "{stderr}"
    );
    // The other cause is still named, second.
    assert!(stderr.contains("does not expand this form"), "{stderr}");
    assert!(stderr.contains("${env:NAME}"), "{stderr}");
}

/// The variable is set, yet its placeholder arrived as written: this client does not expand that
/// form.
#[test]
fn a_set_variable_behind_a_placeholder_means_the_client_did_not_substitute() {
    let (code, _, stderr) = run(bitrix24_mcp(&["tools"])
        .env("BITRIX24_WEBHOOK_URL", "${env:MY_BITRIX_HOOK}")
        .env(
            "MY_BITRIX_HOOK",
            format!("https://acme.bitrix24.com/rest/1/{CODE}/"),
        ));
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "\"${env:MY_BITRIX_HOOK}\": MY_BITRIX_HOOK is set, but the MCP client did not \
             substitute it"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(CODE), "leaked: {stderr}");
}

// ---- a reader that goes away ------------------------------------------------------------------

/// Runs `command` with stdout on a pipe whose reading end is already closed, so that its first
/// write fails with a broken pipe whatever the timing (as `tools | head` does once head has
/// read its lines). Returns the exit code and stderr.
fn run_into_a_closed_pipe(command: &mut Command) -> (i32, String) {
    let mut ends = [0; 2];
    // SAFETY: `ends` has room for the two descriptors pipe2 writes.
    assert_eq!(
        unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) },
        0
    );
    // SAFETY: both descriptors were just opened by pipe2 and are owned by nothing else.
    let (reader, writer) =
        unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    drop(reader);
    let output = command
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("binary runs");
    (
        output
            .status
            .code()
            .expect("exited normally, not by a signal"),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn one_shot_commands_end_quietly_when_their_reader_has_gone() {
    let cases: [(&[&str], i32); 5] = [
        (&["tools"], 0),
        (
            &["--demo", "call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#],
            0,
        ),
        // A tool error keeps its exit code: the reader's going changes nothing about the call.
        (
            &["--demo", "call", "im_chat_user_list", r#"{"CHAT_ID":1}"#],
            1,
        ),
        (&["--demo", "check"], 0),
        (&["--demo", "check", "--json"], 0),
    ];
    for (args, expected) in cases {
        // No logs: whatever reaches stderr is about the pipe (a panic's message, say).
        let (code, stderr) = run_into_a_closed_pipe(bitrix24_mcp(args).env("RUST_LOG", "off"));
        assert_eq!(stderr, "", "{args:?}");
        assert_eq!(code, expected, "{args:?}");
    }
}

// ---- the demo's start-up log tells the truth ---------------------------------------------------

fn demo_call(tool: &str, arguments: &str) -> Value {
    let (_, stdout, stderr) = run(&mut bitrix24_mcp(&["--demo", "call", tool, arguments]));
    serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stdout}{stderr}"))
}

/// Each clause of the start-up line ("chat N …") is checked against the demo portal it
/// describes.
#[test]
fn every_claim_of_the_demo_start_up_log_holds() {
    let (code, _, stderr) = run(bitrix24_mcp(&["--demo", "tools"]).env("RUST_LOG", "info"));
    assert_eq!(code, 0);
    // `tools` starts no portal; `call` does, and logs at info when asked.
    assert!(!stderr.contains("demo portal started"), "{stderr}");
    let (_, _, stderr) =
        run(
            bitrix24_mcp(&["--demo", "call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#])
                .env("RUST_LOG", "info"),
        );
    let line = stderr
        .lines()
        .find(|l| l.contains("demo portal started: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let claims = line.split("demo portal started: ").nth(1).unwrap();
    let claims: Vec<&str> = claims
        .split(';')
        .map(|c| c.trim().split(" portal=").next().unwrap().trim())
        .collect();
    assert_eq!(claims.len(), 4, "{line}");
    for claim in claims {
        let chat: i64 = claim
            .strip_prefix("chat ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not about a chat: {claim:?}"));
        let members = demo_call("im_chat_user_list", &format!(r#"{{"CHAT_ID":{chat}}}"#));
        if claim.contains("has users") {
            let listed: Vec<String> = members["user_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
                .collect();
            assert!(claim.ends_with(&listed.join(", ")), "{claim} vs {members}");
        } else if claim.contains("refused") {
            assert_eq!(members["error"], "ACCESS_ERROR", "{claim}");
        } else if claim.contains("hides its members") || claim.contains("hidden") {
            let dialog = demo_call("im_dialog_get", &format!(r#"{{"CHAT_ID":{chat}}}"#));
            assert_eq!(dialog["members_visible"], false, "{claim}: {dialog}");
            assert_eq!(members["user_ids"], serde_json::json!([]), "{claim}");
        } else if claim.contains("empty list") {
            assert_eq!(members["user_ids"], serde_json::json!([]), "{claim}");
            let dialog = demo_call("im_dialog_get", &format!(r#"{{"CHAT_ID":{chat}}}"#));
            assert_ne!(dialog["members_visible"], false, "{claim}: {dialog}");
        } else {
            panic!("a claim this test does not know how to check: {claim:?}");
        }
    }
}
