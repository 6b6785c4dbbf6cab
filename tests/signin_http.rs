//! Each person signed in over HTTP (`--auth oauth`), at the transport: the 401 challenge on every
//! MCP endpoint (never a redirect), each request's call reaching the portal with its own user's
//! token, sessions (streamable HTTP and legacy SSE) answering only the user who opened them, the
//! confirmation and the write log naming the user. The binary's side is in signin_process.rs.
//!
//! The server runs on loopback against the sample portal, whose people sign in for real (its
//! `/oauth/authorize/` and code exchange): each test user holds their own Bitrix24 pair. Who a
//! bearer token is, is answered here by a table of those users behind the transport's `Callers`
//! seam, so that the transport is tested apart from the grants that issue MCP tokens.

mod common;
#[path = "signin_http/people.rs"]
mod people;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::elicit::User;
use common::*;
use people::*;
use reqwest::StatusCode;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn every_mcp_endpoint_without_a_valid_token_answers_the_challenge_and_never_redirects() {
    let server = Server::start(false).await;
    let headers: [Option<&str>; 5] = [
        None,
        Some("Bearer unknown-token"),
        Some("Bearer "),
        Some("Basic bWNwOm1jcA=="),
        Some(ANNA),
    ];
    for path in ["/mcp", "/mcp/", "/sse", "/message?sessionId=x"] {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            for authorization in headers {
                // ANNA's token without the Bearer scheme is no token at all.
                let mut request = browser()
                    .request(method.clone(), server.url(path))
                    .header("accept", "application/json, text/event-stream")
                    .json(&initialize());
                if let Some(value) = authorization {
                    request = request.header("authorization", value);
                }
                let response = request.send().await.unwrap();
                let what = format!("{method} {path} {authorization:?}");
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
                assert_eq!(
                    response.headers()["www-authenticate"].to_str().unwrap(),
                    server.challenge(path),
                    "{what}"
                );
                assert!(response.headers().get("location").is_none(), "{what}");
            }
        }
    }
    assert!(
        server.portal.requests_to("/rest/").is_empty(),
        "nothing reached the portal"
    );
    // The health check stays open.
    let health = browser().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_whose_check_cannot_be_made_gets_503_not_401() {
    let server = Server::start(false).await;
    let response = post_json(&server.url("/mcp"), Some(UNCHECKABLE), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("www-authenticate").is_none());
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("store is down"),
        "the reason stays in the log: {body}"
    );
}

#[tokio::test]
async fn each_user_s_call_reaches_the_portal_with_their_own_token_and_answer() {
    let server = Server::start(false).await;
    let anna = rmcp_client((), server.url("/mcp"), ANNA).await;
    let maria = rmcp_client((), server.url("/mcp/"), MARIA).await;
    // Chat 2936 has Alexander and Maria, not Anna: the same question, two answers.
    let as_anna = success_object(&chat_users(&anna, 2936).await);
    let as_maria = success_object(&chat_users(&maria, 2936).await);
    assert_eq!(as_anna["user_ids"], json!([]));
    assert_eq!(as_maria["user_ids"], json!([1269, 1271]));
    // Identical concurrent reads are shared only within one user.
    // Chat 5001 has Anna and Alexander.
    let (a, m) = tokio::join!(chat_users(&anna, 5001), chat_users(&maria, 5001));
    assert_eq!(success_object(&a)["user_ids"], json!([99, 1269]));
    assert_eq!(success_object(&m)["user_ids"], json!([]));
    let mut seen = server.callers_of("im.chat.user.list");
    seen[2..].sort_unstable();
    assert_eq!(seen, [99, 1271, 99, 1271]);
    anna.cancel().await.unwrap();
    maria.cancel().await.unwrap();
}

#[tokio::test]
async fn a_session_answers_only_the_user_who_opened_it() {
    let server = Server::start(false).await;
    let session = open_session(&server, ANNA).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935}}});
    for method in ["POST", "GET", "DELETE"] {
        let request = match method {
            "POST" => post_json(&server.url("/mcp"), Some(MARIA), &call),
            "GET" => browser()
                .get(server.url("/mcp"))
                .header("accept", "text/event-stream")
                .bearer_auth(MARIA),
            _ => browser().delete(server.url("/mcp")).bearer_auth(MARIA),
        };
        let response = request
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{method} as Maria"
        );
    }
    assert!(
        server.portal.requests_to("/rest/").is_empty(),
        "Maria's call never ran in Anna's session"
    );
    // The session is Anna's still, untouched by Maria's DELETE.
    let response = post_json(&server.url("/mcp/"), Some(ANNA), &call)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"\"user_ids\":[99,1269,1271]"#) || text.contains("[99,1269,1271]"),
        "{text}"
    );
    assert_eq!(server.callers_of("im.chat.user.list"), [99]);
}

/// The first `data:` of an event stream's `event` kind.
async fn next_event(stream: &mut reqwest::Response, buffer: &mut String, kind: &str) -> String {
    let marker = format!("event: {kind}\ndata: ");
    loop {
        if let Some(start) = buffer.find(&marker) {
            let rest = &buffer[start + marker.len()..];
            if let Some(end) = rest.find('\n') {
                let data = rest[..end].to_owned();
                buffer.drain(..start + marker.len() + end);
                return data;
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_legacy_sse_session_takes_messages_only_from_the_user_who_opened_it() {
    let server = Server::start(false).await;
    let mut events = browser()
        .get(server.url("/sse"))
        .bearer_auth(ANNA)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let mut buffer = String::new();
    let endpoint = next_event(&mut events, &mut buffer, "endpoint").await;
    let post = |token: Option<&'static str>, body: Value| {
        let mut request = browser().post(server.url(&endpoint)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        post(None, initialize()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some(MARIA), initialize()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(Some(ANNA), initialize()).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let answer = next_event(&mut events, &mut buffer, "message").await;
    assert!(answer.contains("bitrix24-mcp"), "{answer}");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post(Some(ANNA), initialized).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935}}});
    assert_eq!(
        post(Some(MARIA), call.clone()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(Some(ANNA), call).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let answer = next_event(&mut events, &mut buffer, "message").await;
    assert!(answer.contains("[99,1269,1271]"), "{answer}");
    assert_eq!(server.callers_of("im.chat.user.list"), [99]);
}

/// Log lines written while the guard lives (current-thread runtime: the server's tasks too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_confirmation_and_the_write_log_name_the_user_the_write_runs_as() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = Server::start(true).await;
    let user = User::typing(Some("2936"));
    let maria = rmcp_client(user.clone(), server.url("/mcp"), MARIA).await;
    let arguments = json!({"CHAT_ID": 2936, "USER_ID": 1271});
    let result = maria
        .call_tool(
            CallToolRequestParams::new("im_chat_user_delete")
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let questions = user.questions();
    assert_eq!(questions.len(), 1);
    assert!(
        questions[0].contains(
            "\n\nIt runs as «Maria Garcia» (Bitrix24 user 1271), with that user's rights."
        ),
        "{}",
        questions[0]
    );
    assert_eq!(server.portal.members(2936), [1269]);
    assert_eq!(server.callers_of("im.chat.user.delete"), [1271]);
    maria.cancel().await.unwrap();
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let write: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "write")
        .map(|entry| entry["fields"].clone())
        .collect();
    assert_eq!(write.len(), 1, "{text}");
    assert_eq!(write[0]["tool"], "im_chat_user_delete");
    assert_eq!(write[0]["outcome"], "done");
    assert_eq!(write[0]["user_id"], 1271);
    assert_eq!(write[0]["user_name"], "Maria Garcia");
}

#[tokio::test]
async fn a_confirmation_asked_of_one_user_is_never_answered_as_another() {
    let server = Server::start_with(true, true).await;
    let connect = |token: &'static str| {
        let config =
            StreamableHttpClientTransportConfig::with_uri(server.url("/mcp")).auth_header(token);
        User::typing(None).serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(config),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
    };
    let anna = connect(ANNA).await.unwrap();
    let maria = connect(MARIA).await.unwrap();
    // Anna leaves chat 5001 (Anna and Alexander): she is asked to type 5001.
    let request = || {
        CallToolRequestParams::new("im_chat_user_delete").with_arguments(
            json!({"CHAT_ID": 5001, "USER_ID": 99})
                .as_object()
                .unwrap()
                .clone(),
        )
    };
    let asked = anna.call_tool_once(request()).await.unwrap();
    let CallToolResponse::InputRequired(input) = asked else {
        panic!("expected an input-required result: {asked:?}")
    };
    let answered = || {
        let mut retry = request();
        retry.request_state = input.request_state.clone();
        retry.input_responses = Some(
            [(
                "confirm".to_owned(),
                json!({"action": "accept", "content": {"confirm": "5001"}}),
            )]
            .into_iter()
            .collect(),
        );
        retry
    };
    let CallToolResponse::Complete(as_maria) = maria.call_tool_once(answered()).await.unwrap()
    else {
        panic!("a complete answer")
    };
    let refused = error_object(&as_maria);
    assert_eq!(refused["error"], "NOT_CONFIRMED", "{refused}");
    assert!(
        server
            .portal
            .requests_to("/rest/im.chat.user.delete")
            .is_empty()
    );
    let CallToolResponse::Complete(as_anna) = anna.call_tool_once(answered()).await.unwrap() else {
        panic!("a complete answer")
    };
    assert_ne!(as_anna.is_error, Some(true), "{as_anna:?}");
    assert_eq!(server.portal.members(5001), [1269]);
    assert_eq!(server.callers_of("im.chat.user.delete"), [99]);
}
