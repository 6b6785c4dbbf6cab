//! A portal (or token server, or proxy) that answers with hostile values: numbers that would
//! overflow a duration, text that would forge log lines or flood a result, secrets echoed in other
//! letter cases and encodings. None of it may panic, hang, leak or grow without bound, and the
//! next call must work.

mod common;

use std::process::Stdio;
use std::time::Duration;

use bitrix24_mcp::bitrix::{HttpPolicy, OAuthSettings, Secret, ServiceUrl};
use bitrix24_mcp::tools::Bitrix24Tools;
use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Values that have broken duration arithmetic somewhere, or could.
fn hostile_values() -> Vec<Value> {
    vec![
        json!(1e300),
        json!(-1),
        json!("inf"),
        json!("NaN"),
        Value::Null,
        json!("a string"),
        json!({"an": "object"}),
    ]
}

const TIME_FIELDS: [&str; 8] = [
    "start",
    "finish",
    "duration",
    "processing",
    "date_start",
    "date_finish",
    "operating",
    "operating_reset_at",
];

fn tool_result(result: &rmcp::model::CallToolResult) -> Value {
    if result.is_error == Some(true) {
        error_object(result)
    } else {
        success_object(result)
    }
}

async fn call_chat(tools: &Bitrix24Tools, chat_id: i64) -> Value {
    let arguments = json!({"CHAT_ID": chat_id});
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        tools.call("im_chat_user_list", arguments.as_object()),
    )
    .await
    .expect("the call answers")
    .expect("known tool");
    tool_result(&result)
}

#[tokio::test]
async fn hostile_time_fields_then_an_operating_limit_never_brick_the_tool() {
    for field in TIME_FIELDS {
        for value in hostile_values() {
            let server = MockServer::start().await;
            let mut time = serde_json::Map::new();
            time.insert(field.to_owned(), value.clone());
            Mock::given(method("POST"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(json!({"result": [99, 1269], "time": time})),
                )
                .up_to_n_times(1)
                .with_priority(1)
                .mount(&server)
                .await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(429).set_body_json(
                    json!({"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked"}),
                ))
                .with_priority(2)
                .mount(&server)
                .await;
            let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
            let case = format!("time.{field} = {value}");
            assert_eq!(
                call_chat(&tools, 2935).await["user_ids"],
                json!([99, 1269]),
                "{case}"
            );
            let blocked = call_chat(&tools, 2935).await;
            assert_eq!(blocked["error"], "OPERATION_TIME_LIMIT", "{case}");
            let wait = blocked["retry_after_secs"]
                .as_u64()
                .expect("retry_after_secs");
            assert!((1..=3600).contains(&wait), "{case}: {wait}");
            // The tool still answers, for any chat: the method fails fast until its reset.
            let again = call_chat(&tools, 7).await;
            assert_eq!(again["error"], "OPERATION_TIME_LIMIT", "{case}");
            assert!(
                again["retry_after_secs"].as_u64().unwrap() <= 3600,
                "{case}"
            );
            assert_eq!(server.received_requests().await.unwrap().len(), 2, "{case}");
        }
    }
}

/// An OAuth client against wiremock: the token server answers with `expires` = `value`.
async fn oauth_against(server: &MockServer) -> Bitrix24Tools {
    let settings = OAuthSettings {
        portal: ServiceUrl::portal(&format!("{}/rest/", server.uri()), HttpPolicy::HttpsOnly)
            .unwrap(),
        token_server: ServiceUrl::token_server(
            &format!("{}/oauth/token/", server.uri()),
            HttpPolicy::HttpsOnly,
        )
        .unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        access_token: None,
        refresh_token: Some(Secret::new(REFRESH)),
        token_file: None,
    };
    Bitrix24Tools::new(Some(oauth_client(settings)))
}

#[tokio::test]
async fn hostile_token_expiries_neither_panic_nor_refresh_on_every_call() {
    for value in hostile_values() {
        for field in ["expires", "expires_in"] {
            let server = MockServer::start().await;
            let mut answer = json!({"access_token": "acc3ssNew", "refresh_token": "r3freshNew"});
            answer[field] = value.clone();
            Mock::given(path("/oauth/token/"))
                .respond_with(ResponseTemplate::new(200).set_body_json(answer))
                .mount(&server)
                .await;
            Mock::given(path("/rest/im.chat.user.list"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"result": [99, 1269]})),
                )
                .mount(&server)
                .await;
            let tools = oauth_against(&server).await;
            let case = format!("{field} = {value}");
            for _ in 0..3 {
                assert_eq!(call_chat(&tools, 2935).await["count"], 2, "{case}");
            }
            let refreshes = server
                .received_requests()
                .await
                .unwrap()
                .iter()
                .filter(|r| r.url.path() == "/oauth/token/")
                .count();
            assert_eq!(refreshes, 1, "{case}: one refresh, then the token is used");
        }
    }
}

#[tokio::test]
async fn a_null_error_beside_a_result_is_a_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": [99], "error": null})),
        )
        .mount(&server)
        .await;
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
    assert_eq!(call_chat(&tools, 2935).await["user_ids"], json!([99]));
}

/// Runs `call` through the binary against `server` with warn-level text logs; returns stdout and
/// stderr.
async fn call_binary(server: &MockServer, env: &[(&str, String)]) -> (String, String) {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#])
        .env(
            "BITRIX24_WEBHOOK_URL",
            format!("{}/rest/1/{CODE}/", server.uri()),
        )
        .env("BITRIX24_MAX_RETRIES", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .expect("call finishes")
        .unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_upstream_description_cannot_forge_log_lines_or_flood_results() {
    let server = MockServer::start().await;
    let hostile = format!(
        "Denied\nINFO bitrix24_mcp: forged line\r\x1b[2J\x1b[31mred{}",
        "z".repeat(3_000_000)
    );
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"error": "ACCESS_ERROR", "error_description": hostile})),
        )
        .mount(&server)
        .await;
    let (stdout, stderr) = call_binary(&server, &[]).await;
    let error: Value = serde_json::from_str(stdout.trim()).unwrap();
    let description = error["error_description"].as_str().unwrap();
    assert!(description.starts_with("Denied\\nINFO bitrix24_mcp: forged line\\r\\u{1b}[2J"));
    assert!(
        description.ends_with("… (cut: 3000050 characters in all)"),
        "{description}"
    );
    assert!(stdout.len() < 2_000, "result of {} bytes", stdout.len());
    assert!(!stderr.contains('\x1b'), "an escape reached the log");
    assert!(
        !stderr.contains("\nINFO bitrix24_mcp: forged"),
        "a forged line: {stderr}"
    );
    assert!(stderr.len() < 4_000, "log of {} bytes", stderr.len());
}

#[tokio::test]
async fn a_webhook_code_echoed_in_another_case_or_encoding_is_redacted() {
    let encoded: String = CODE.chars().map(|c| format!("%{:02x}", c as u32)).collect();
    let echo = format!(
        "upper {} lower {} percent {encoded}",
        CODE.to_uppercase(),
        CODE.to_lowercase()
    );
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "SOMETHING", "error_description": echo})),
        )
        .mount(&server)
        .await;
    let (stdout, stderr) = call_binary(&server, &[]).await;
    for output in [&stdout, &stderr] {
        let lower = output.to_lowercase();
        assert!(!lower.contains(&CODE.to_lowercase()), "{output}");
        assert!(!lower.contains(&encoded), "{output}");
        assert!(
            output.contains("upper <redacted> lower <redacted> percent <redacted>"),
            "{output}"
        );
    }
}

#[tokio::test]
async fn a_token_server_echoing_its_form_body_leaks_no_secret() {
    let server = MockServer::start().await;
    let form = serde_urlencoded::to_string([
        ("grant_type", "refresh_token"),
        ("client_secret", CLIENT_SECRET_WITH_SLASH),
        ("refresh_token", REFRESH),
    ])
    .unwrap();
    Mock::given(path("/oauth/token/"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request",
            "error_description": format!("bad form: {form} / {}", form.to_uppercase()),
        })))
        .mount(&server)
        .await;
    let env = [
        ("BITRIX24_WEBHOOK_URL", String::new()),
        ("BITRIX24_PORTAL_URL", format!("{}/rest/", server.uri())),
        (
            "BITRIX24_OAUTH_TOKEN_URL",
            format!("{}/oauth/token/", server.uri()),
        ),
        ("BITRIX24_CLIENT_ID", CLIENT_ID.to_owned()),
        (
            "BITRIX24_CLIENT_SECRET",
            CLIENT_SECRET_WITH_SLASH.to_owned(),
        ),
        ("BITRIX24_REFRESH_TOKEN", REFRESH.to_owned()),
    ];
    let (stdout, stderr) = call_binary(&server, &env).await;
    assert!(stdout.contains("invalid_request"), "{stdout}");
    for output in [&stdout, &stderr] {
        let lower = output.to_lowercase();
        assert!(!lower.contains(&REFRESH.to_lowercase()), "{output}");
        assert!(!lower.contains("cl1ent%2f"), "{output}");
        assert!(!lower.contains("s3cr3t"), "{output}");
    }
}

/// A client secret with characters that form encoding changes.
const CLIENT_SECRET_WITH_SLASH: &str = "cl1ent/S3cr3t+val";
