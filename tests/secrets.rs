//! The webhook code is a password. Full sessions of the real binary at trace level, against a
//! portal whose answers echo the code back in every way it can, must not show it anywhere:
//! stdout, stderr, tool results, error messages.

mod common;

use std::process::Stdio;

use common::{BIN, CODE};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use wiremock::matchers::body_json;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A portal whose answer depends on CHAT_ID, several of them quoting the code back.
async fn hostile_portal() -> MockServer {
    let server = MockServer::start().await;
    let echo_path = format!("/rest/1/{CODE}/im.chat.user.list");
    let answers = [
        (1, ResponseTemplate::new(200).set_body_json(json!({"result": [99, 1269]}))),
        (2, ResponseTemplate::new(403).set_body_json(json!({"error": "ACCESS_ERROR", "error_description": "Action unavailable"}))),
        (3, ResponseTemplate::new(502).set_body_string(format!("<html>Bad gateway for {echo_path}</html>"))),
        (4, ResponseTemplate::new(302).insert_header("Location", format!("https://moved.example{echo_path}").as_str())),
        (5, ResponseTemplate::new(200).set_body_json(json!({"result": format!("hook {CODE}")}))),
        (6, ResponseTemplate::new(401).set_body_json(json!({"error": "NO_AUTH_FOUND", "error_description": format!("Wrong code {CODE}")}))),
        (7, ResponseTemplate::new(200).set_body_json(json!({"items": CODE}))),
        (8, ResponseTemplate::new(200).set_body_string(CODE)),
    ];
    for (chat_id, response) in answers {
        Mock::given(body_json(json!({"CHAT_ID": chat_id})))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    // The other chat methods answer in their own shapes, with the code in every string, in
    // several letter cases and encodings.
    let upper = CODE.to_uppercase();
    let user = json!({"id": 5, "name": CODE, "first_name": upper, "last_name": format!("%{}", CODE),
        "work_position": format!("at /rest/1/{CODE}/"), "type": CODE});
    let chat = json!({"id": 7, "name": CODE, "type": upper, "entity_type": CODE, "entity_id": CODE,
        "role": CODE, "dialog_id": CODE, "restrictions": {"user_list": true}});
    let by_method = [
        (
            "im.dialog.users.list",
            json!({"result": [user.clone()], "total": 1}),
        ),
        ("im.user.list.get", json!({"result": {"5": user}})),
        (
            "im.search.chat.list",
            json!({"result": [chat.clone()], "total": 1}),
        ),
        ("im.dialog.get", json!({"result": chat})),
        ("im.chat.get", json!({"result": {"ID": CODE}})),
        (
            "im.recent.list",
            json!({"result": {"items": [{"id": CODE, "title": CODE, "type": CODE}], "hasMore": false}}),
        ),
    ];
    for (rest_method, body) in by_method {
        Mock::given(wiremock::matchers::path(format!(
            "/rest/1/{CODE}/{rest_method}"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    }
    server
}

fn traced(args: &[&str], webhook_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("BITRIX24_WEBHOOK_URL", webhook_url)
        .env("RUST_LOG", "trace");
    command
}

/// Runs a whole MCP session and returns everything the process printed and every result.
async fn session_output(extra_args: &[&str], webhook_url: &str) -> String {
    let (transport, stderr) = TokioChildProcess::builder(traced(extra_args, webhook_url))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = stderr.unwrap();
    let stderr_reader = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.unwrap();
        text
    });
    let client = ().serve(transport).await.unwrap();
    let mut seen = serde_json::to_string(&client.list_all_tools().await.unwrap()).unwrap();
    let arguments: [Value; 11] = [
        json!({"CHAT_ID": 1}),
        json!({"CHAT_ID": 2}),
        json!({"CHAT_ID": 3}),
        json!({"CHAT_ID": 4}),
        json!({"CHAT_ID": 5}),
        json!({"CHAT_ID": 6}),
        json!({"CHAT_ID": 7}),
        json!({"CHAT_ID": 8}),
        json!({"CHAT_ID": "abc"}),
        json!({"CHAT_ID": 9}),
        json!({}),
    ];
    for arguments in arguments {
        let result = client
            .call_tool(
                CallToolRequestParams::new("im_chat_user_list")
                    .with_arguments(arguments.as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        seen.push_str(&serde_json::to_string(&result).unwrap());
    }
    let others = [
        ("im_dialog_users_list", json!({"CHAT_ID": 7})),
        ("im_user_list_get", json!({"ID": [5]})),
        ("im_search_chat_list", json!({"FIND": "hook"})),
        ("im_dialog_get", json!({"CHAT_ID": 7})),
        (
            "im_chat_get",
            json!({"ENTITY_TYPE": "CRM", "ENTITY_ID": "DEAL|1"}),
        ),
        ("im_recent_list", json!({})),
    ];
    for (tool, arguments) in others {
        let result = client
            .call_tool(
                CallToolRequestParams::new(tool)
                    .with_arguments(arguments.as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        seen.push_str(&serde_json::to_string(&result).unwrap());
    }
    client.cancel().await.unwrap();
    seen.push_str(&stderr_reader.await.unwrap());
    seen
}

fn assert_no_code(output: &str) {
    let lower = output.to_lowercase();
    assert!(
        !lower.contains(&CODE.to_lowercase()),
        "the webhook code leaked:\n{output}"
    );
}

#[tokio::test]
async fn a_full_session_at_trace_level_never_shows_the_webhook_code() {
    let portal = hostile_portal().await;
    let url = format!("{}/rest/1/{CODE}/", portal.uri());
    for args in [&[][..], &["--log-format", "json"][..]] {
        let output = session_output(args, &url).await;
        assert_no_code(&output);
        // The scan is only worth something if the logs were there to scan.
        assert!(
            output.contains("TRACE") || output.contains("\"level\":\"TRACE\""),
            "no trace logs"
        );
        assert!(output.contains("bitrix24 call failed"));
        assert!(
            output.contains("moved.example"),
            "the redirect target host is named"
        );
    }
    // Every answer was really fetched (the 502 twice: one retry; six calls of the other tools),
    // with the code on each request.
    assert_eq!(
        portal.received_requests().await.unwrap().len(),
        2 * (10 + 6)
    );
}

#[tokio::test]
async fn an_unreachable_portal_never_shows_the_webhook_code() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/rest/1/{CODE}/", listener.local_addr().unwrap());
    drop(listener);
    let output = traced(
        &[
            "--max-retries",
            "0",
            "call",
            "im_chat_user_list",
            r#"{"CHAT_ID":5}"#,
        ],
        &url,
    )
    .output()
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("NETWORK_ERROR"), "{text}");
    assert_no_code(&text);
}

#[tokio::test]
async fn a_refused_configuration_never_shows_the_webhook_code() {
    let url = format!("http://remote.example/rest/1/{CODE}/");
    let output = traced(&["serve"], &url).output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_no_code(&String::from_utf8_lossy(&output.stderr));
}

/// An OAuth session at trace level: an expired token, a refresh, a failed refresh, a rejected one.
#[tokio::test]
async fn an_oauth_session_at_trace_level_never_shows_a_token_or_the_client_secret() {
    use common::{
        ACCESS, CLIENT_ID, CLIENT_SECRET, OAUTH_SECRETS, REFRESH, oauth_app, oauth_portal, temp_dir,
    };
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    let file = temp_dir("secrets").join("tokens.json");
    let mut command = Command::new(BIN);
    command
        .env_remove("BITRIX24_WEBHOOK_URL")
        .env("BITRIX24_PORTAL_URL", portal.rest_root())
        .env("BITRIX24_OAUTH_TOKEN_URL", portal.token_url())
        .env("BITRIX24_CLIENT_ID", CLIENT_ID)
        .env("BITRIX24_CLIENT_SECRET", CLIENT_SECRET)
        .env("BITRIX24_ACCESS_TOKEN", ACCESS)
        .env("BITRIX24_REFRESH_TOKEN", REFRESH)
        .env("BITRIX24_TOKEN_FILE", &file)
        .env("BITRIX24_MAX_RETRIES", "0")
        .env("RUST_LOG", "trace");
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = stderr.unwrap();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.unwrap();
        text
    });
    let client = ().serve(transport).await.unwrap();
    let mut seen = String::new();
    let call = |chat: i64| {
        CallToolRequestParams::new("im_chat_user_list")
            .with_arguments(json!({"CHAT_ID": chat}).as_object().unwrap().clone())
    };
    // Expired at the portal: refresh and repeat.
    seen.push_str(&serde_json::to_string(&client.call_tool(call(2935)).await.unwrap()).unwrap());
    // The refresh fails once (an HTML 503 from the token server), then works again.
    portal.expire_access_tokens();
    portal.fail_token_requests(1);
    seen.push_str(&serde_json::to_string(&client.call_tool(call(2935)).await.unwrap()).unwrap());
    seen.push_str(&serde_json::to_string(&client.call_tool(call(1)).await.unwrap()).unwrap());
    client.cancel().await.unwrap();
    let logs = reader.await.unwrap();
    assert!(
        logs.contains("oauth tokens refreshed"),
        "the refresh was logged"
    );
    assert!(logs.contains("TRACE"), "trace logs were on");
    // The rotated tokens, read back from the file, must not show either.
    let stored = bitrix24_mcp::bitrix::token_store::TokenStore::new(&file)
        .load()
        .unwrap()
        .unwrap();
    let rotated = [
        stored.tokens.access_token.expose().to_owned(),
        stored.tokens.refresh_token.expose().to_owned(),
    ];
    for secret in OAUTH_SECRETS
        .iter()
        .copied()
        .chain(rotated.iter().map(String::as_str))
    {
        assert!(!logs.contains(secret), "a secret is in the logs:\n{logs}");
        assert!(!seen.contains(secret), "a secret is in a result: {seen}");
    }
}

/// The HTTP bearer token at trace level, presented right and wrong.
#[tokio::test]
async fn the_http_token_never_shows_in_the_logs() {
    const HTTP_TOKEN: &str = "h77p-b34r3r-t0k3n-value";
    let (mut child, address, mut logs, mut lines) =
        common::spawn_http_server(HTTP_TOKEN, "trace").await;
    let http = reqwest::Client::new();
    let initialize = common::initialize();
    for token in [HTTP_TOKEN, "wrong-token"] {
        let _ = http
            .post(format!("http://{address}/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
            .await
            .unwrap();
    }
    // SAFETY: kill(2) with a valid signal number on our own child process.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    while let Ok(Some(line)) = lines.next_line().await {
        logs.push_str(&line);
    }
    child.wait().await.unwrap();
    assert!(logs.contains("\"level\":\"TRACE\""), "trace logs were on");
    assert!(
        !logs.contains(HTTP_TOKEN),
        "the HTTP token is in the logs:\n{logs}"
    );
}

/// Writes at trace level: the write log line, the confirmation-free path and a write whose answer
/// echoes the code never show it.
#[tokio::test]
async fn writes_at_trace_level_never_show_the_webhook_code() {
    let server = MockServer::start().await;
    for (rest_method, body) in [
        (
            "im.chat.user.add",
            json!({"error": "ACCESS_DENIED_EXTEND", "error_description": format!("no rights for {CODE}")}),
        ),
        (
            "crm.deal.add",
            json!({"result": format!("deal by /rest/1/{CODE}/")}),
        ),
        ("im.chat.leave", json!({"result": CODE})),
    ] {
        Mock::given(wiremock::matchers::path(format!(
            "/rest/1/{CODE}/{rest_method}"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    }
    let url = format!("{}/rest/1/{CODE}/", server.uri());
    let mut output = String::new();
    for (tool, arguments) in [
        ("im_chat_user_add", r#"{"CHAT_ID":5,"USERS":[7]}"#),
        (
            "bitrix24_call",
            r#"{"method":"crm.deal.add","params":{"fields":{"TITLE":"x"}}}"#,
        ),
        ("im_chat_leave", r#"{"CHAT_ID":5}"#),
    ] {
        let result = traced(
            &[
                "--allow-writes",
                "--skip-write-confirmation",
                "call",
                tool,
                arguments,
            ],
            &url,
        )
        .output()
        .await
        .unwrap();
        output.push_str(&String::from_utf8_lossy(&result.stdout));
        output.push_str(&String::from_utf8_lossy(&result.stderr));
    }
    assert_no_code(&output);
    assert!(
        output.contains(" write "),
        "the write log lines are there: {output}"
    );
    assert!(output.contains("TRACE"), "trace logs were on");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}
