//! Every error the portal can send, and every failure around it, reaches the assistant as the
//! documented error object; bad input never reaches the portal at all.

mod common;

use std::time::Duration;

use bitrix24_mcp::bitrix::ClientOptions;
use bitrix24_mcp::tools::Bitrix24Tools;
use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const METHOD_PATH: &str = "/rest/1/t0p53cr3tc0de42x/im.chat.user.list";

/// Each documented code with its HTTP status, and the category and retry flag the assistant must
/// see (reference sections 1 and 2).
const DOCUMENTED: &[(u16, &str, &str, bool)] = &[
    (400, "CHAT_ID_EMPTY", "invalid_input", false),
    (403, "ACCESS_ERROR", "permission", false),
    (500, "INTERNAL_SERVER_ERROR", "upstream", true),
    (500, "ERROR_UNEXPECTED_ANSWER", "upstream", true),
    (503, "QUERY_LIMIT_EXCEEDED", "rate_limit", true),
    (429, "OPERATION_TIME_LIMIT", "rate_limit", true),
    (405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "upstream", false),
    (400, "ERROR_BATCH_LENGTH_EXCEEDED", "upstream", false),
    (401, "NO_AUTH_FOUND", "authentication", false),
    (400, "INVALID_REQUEST", "configuration", false),
    (503, "OVERLOAD_LIMIT", "rate_limit", false),
    (403, "ACCESS_DENIED", "permission", false),
    (403, "INVALID_CREDENTIALS", "permission", false),
    (404, "ERROR_MANIFEST_IS_NOT_AVAILABLE", "upstream", false),
    (403, "insufficient_scope", "permission", false),
    (401, "expired_token", "authentication", false),
    (401, "invalid_token", "authentication", false),
    (403, "user_access_error", "permission", false),
    (500, "PORTAL_DELETED", "configuration", false),
    (404, "ERROR_METHOD_NOT_FOUND", "configuration", false),
];

async fn client_for(
    server: &MockServer,
    options: ClientOptions,
) -> rmcp::service::RunningService<rmcp::service::RoleClient, ()> {
    mcp_client(Bitrix24Tools::new(Some(webhook_client(
        &server.uri(),
        options,
    ))))
    .await
}

async fn answer_once(response: ResponseTemplate) -> (MockServer, Value) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METHOD_PATH))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server, fast_options()).await;
    let error = error_object(&call(&client, json!({"CHAT_ID": 2935})).await);
    (server, error)
}

#[tokio::test]
async fn every_documented_code_maps_to_its_category_and_retry_flag() {
    for &(status, code, category, retryable) in DOCUMENTED {
        let description = format!("description of {code}");
        let (_server, error) = answer_once(
            ResponseTemplate::new(status)
                .set_body_json(json!({"error": code, "error_description": description})),
        )
        .await;
        assert_eq!(error["error"], code);
        assert_eq!(error["error_description"], description, "{code}");
        assert_eq!(error["http_status"], status, "{code}");
        assert_eq!(error["category"], category, "{code}");
        assert_eq!(error["retryable"], retryable, "{code}");
    }
}

#[tokio::test]
async fn insufficient_scope_hint_names_the_im_scope_and_webhook_settings() {
    let (_server, error) = answer_once(ResponseTemplate::new(403).set_body_json(
        json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the webhook token"}),
    ))
    .await;
    let hint = error["hint"].as_str().unwrap();
    assert!(
        hint.contains("im scope") && hint.contains("webhook settings"),
        "{hint}"
    );
}

#[tokio::test]
async fn an_error_body_with_http_200_is_still_an_error() {
    let (_server, error) = answer_once(ResponseTemplate::new(200).set_body_json(
        json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
    ))
    .await;
    assert_eq!(error["error"], "QUERY_LIMIT_EXCEEDED");
    assert_eq!(error["http_status"], 200);
    assert_eq!(error["category"], "rate_limit");
}

#[tokio::test]
async fn an_unknown_code_passes_through_as_upstream() {
    let (_server, error) = answer_once(
        ResponseTemplate::new(418)
            .set_body_json(json!({"error": "TEAPOT", "error_description": "short and stout"})),
    )
    .await;
    assert_eq!(error["error"], "TEAPOT");
    assert_eq!(error["error_description"], "short and stout");
    assert_eq!(error["category"], "upstream");
    assert_eq!(error["retryable"], false);
}

#[tokio::test]
async fn non_envelope_bodies_are_unexpected_responses() {
    let html = format!(
        "<html><title>502 Bad Gateway</title><p>/rest/1/{CODE}/im.chat.user.list</p></html>"
    );
    let cases = [
        (
            ResponseTemplate::new(502).set_body_string(html),
            502,
            true,
            "not JSON",
        ),
        (ResponseTemplate::new(500), 500, true, "empty body"),
        (
            ResponseTemplate::new(200).set_body_string(r#"{"result":[99,12"#),
            200,
            false,
            "not JSON",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"result": {"a": 1}})),
            200,
            false,
            "not a list of user IDs",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"result": [99, "x"]})),
            200,
            false,
            "not a list of user IDs",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"items": []})),
            200,
            false,
            "without \"result\"",
        ),
    ];
    for (response, status, retryable, detail) in cases {
        let (_server, error) = answer_once(response).await;
        assert_eq!(error["error"], "UNEXPECTED_RESPONSE");
        assert_eq!(error["http_status"], status);
        assert_eq!(error["category"], "upstream");
        assert_eq!(error["retryable"], retryable, "{detail}");
        let description = error["error_description"].as_str().unwrap();
        assert!(description.contains(detail), "{description}");
        assert!(!description.contains(CODE), "{description}");
    }
}

#[tokio::test]
async fn a_body_past_the_cap_is_refused() {
    let server = MockServer::start().await;
    let big = json!({"result": vec![1_i64; 4000]});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(big))
        .mount(&server)
        .await;
    let options = ClientOptions {
        max_body_bytes: 1024,
        ..fast_options()
    };
    let client = client_for(&server, options).await;
    let error = error_object(&call(&client, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "UNEXPECTED_RESPONSE");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("1024-byte limit")
    );
}

#[tokio::test]
async fn numeric_strings_in_the_result_become_integers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": ["99", 1269, " 1271"]})),
        )
        .mount(&server)
        .await;
    let client = client_for(&server, fast_options()).await;
    let result = success_object(&call(&client, json!({"CHAT_ID": 2935})).await);
    assert_eq!(
        result,
        json!({"chat_id": 2935, "user_ids": [99, 1269, 1271], "count": 3})
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_names_only_the_new_host() {
    let target = format!("https://new-portal.bitrix24.com/rest/1/{CODE}/im.chat.user.list");
    let (server, error) =
        answer_once(ResponseTemplate::new(302).insert_header("Location", target.as_str())).await;
    assert_eq!(error["error"], "PORTAL_MOVED");
    assert_eq!(error["http_status"], 302);
    assert_eq!(error["category"], "configuration");
    assert_eq!(error["retryable"], false);
    let description = error["error_description"].as_str().unwrap();
    assert!(
        description.contains("new-portal.bitrix24.com"),
        "{description}"
    );
    assert!(!error.to_string().contains(CODE), "{error}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = mcp_client(Bitrix24Tools::new(Some(webhook_client(
        &format!("http://{address}"),
        fast_options(),
    ))))
    .await;
    let error = error_object(&call(&client, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "NETWORK_ERROR");
    assert_eq!(error["category"], "network");
    assert_eq!(error["retryable"], true);
    assert!(error.get("http_status").is_none());
    let description = error["error_description"].as_str().unwrap();
    assert!(
        description.contains(&format!("cannot connect to {address}")),
        "{description}"
    );
    assert!(
        description.to_lowercase().contains("refused"),
        "{description}"
    );
    assert!(!description.contains(CODE), "{description}");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"result": []}))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        ..fast_options()
    };
    let client = client_for(&server, options).await;
    let error = error_object(&call(&client, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "TIMEOUT");
    assert_eq!(error["category"], "network");
    assert_eq!(error["retryable"], true);
    assert_eq!(
        error["error_description"],
        "no complete answer within 200 ms"
    );
}

#[tokio::test]
async fn the_request_carries_the_documented_headers_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METHOD_PATH))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(header(
            "user-agent",
            format!("bitrix24-mcp/{}", env!("CARGO_PKG_VERSION")).as_str(),
        ))
        .and(body_json(json!({"CHAT_ID": 2935})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"result": [99, 1269, 1271], "time": {"start": 1}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server, fast_options()).await;
    let result = success_object(&call(&client, json!({"CHAT_ID": "chat2935"})).await);
    assert_eq!(result["user_ids"], json!([99, 1269, 1271]));
}

#[tokio::test]
async fn invalid_input_is_rejected_without_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": []})))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(&server, fast_options()).await;
    let cases = [
        (json!({}), "CHAT_ID is required"),
        (json!({"CHAT_ID": 0}), "got 0"),
        (json!({"CHAT_ID": -1}), "got -1"),
        (json!({"CHAT_ID": 1.5}), "got 1.5"),
        (json!({"CHAT_ID": "abc"}), "got \"abc\""),
        (json!({"CHAT_ID": "chat"}), "got \"chat\""),
        (
            json!({"CHAT_ID": 99999999999999999999_u128 as f64}),
            "got 1e+20",
        ),
        (
            json!({"CHAT_ID": "99999999999999999999"}),
            "got \"99999999999999999999\"",
        ),
        (json!({"CHAT_ID": null}), "CHAT_ID is required"),
        (json!({"CHAT_ID": {"id": 1}}), "got {\"id\":1}"),
        (json!({"CHAT_ID": [1]}), "got [1]"),
        (json!({"CHAT_ID": true}), "got true"),
        (
            json!({"CHAT_ID": 1, "USER_ID": 2}),
            "unexpected argument \"USER_ID\"",
        ),
    ];
    for (arguments, expected) in cases {
        let error = error_object(&call(&client, arguments.clone()).await);
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{arguments}");
        assert_eq!(error["category"], "invalid_input");
        assert_eq!(error["retryable"], false);
        assert!(error.get("http_status").is_none());
        let description = error["error_description"].as_str().unwrap();
        assert!(description.contains(expected), "{arguments}: {description}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_next_call_works_after_each_failure() {
    let server = MockServer::start().await;
    Mock::given(body_json(json!({"CHAT_ID": 1})))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .mount(&server)
        .await;
    Mock::given(body_json(json!({"CHAT_ID": 2935})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [99]})))
        .mount(&server)
        .await;
    let client = client_for(&server, fast_options()).await;
    for _ in 0..3 {
        error_object(&call(&client, json!({"CHAT_ID": 1})).await);
        error_object(&call(&client, json!({"CHAT_ID": "x"})).await);
        assert_eq!(
            success_object(&call(&client, json!({"CHAT_ID": 2935})).await)["count"],
            1
        );
    }
}
