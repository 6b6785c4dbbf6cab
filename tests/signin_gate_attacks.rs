//! Attacks on the bearer gate and the per-user routing behind it (`--auth oauth`), as a hostile
//! signed-in co-worker and a hostile client would make them: tokens in odd places, paths and
//! methods that might reach rmcp around the gate, another user's session on every route, and a
//! revoked sign-in whose session or stream is still open.
//!
//! The in-process tests use the table of signed-in people of signin_http.rs (Anna and Maria, each
//! with their own Bitrix24 pair at the sample portal); the revocation test runs the binary with
//! the real sign-in. Requests whose bytes matter (two `Authorization` headers, raw paths) are
//! written on a plain TCP connection.

mod common;
#[path = "signin_http/people.rs"]
mod people;

use std::time::Duration;

use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use common::signin::Browser;
use common::*;
use people::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `head` (request line and headers, without the blank line) and `body` on a new
/// connection: the status code and the response head.
async fn raw(base: &str, head: &str, body: &str) -> (u16, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    // Only the head is read: an event stream would never end.
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("an answer within 10 s")
            .unwrap_or(0);
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

const ACCEPT: &str =
    "Accept: application/json, text/event-stream\r\nContent-Type: application/json";

fn initialize_body() -> String {
    initialize().to_string()
}

#[tokio::test]
async fn two_authorization_headers_are_refused_whichever_comes_first() {
    let server = Server::start(false).await;
    let body = initialize_body();
    for (first, second) in [
        (MARIA, ANNA),
        (ANNA, MARIA),
        ("never-issued", ANNA),
        (ANNA, "never-issued"),
    ] {
        let head = format!(
            "POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer {first}\r\nAuthorization: Bearer {second}"
        );
        let (status, answer) = raw(&server.base, &head, &body).await;
        assert_eq!(status, 400, "{first} then {second}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains(r#"www-authenticate: bearer error="invalid_request""#),
            "{answer}"
        );
        assert!(!answer.to_ascii_lowercase().contains("mcp-session-id"));
    }
    // The same on the legacy SSE endpoints.
    let head = format!(
        "GET /sse HTTP/1.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer {ANNA}\r\nAuthorization: Bearer {MARIA}"
    );
    assert_eq!(raw(&server.base, &head, "").await.0, 400);
    assert!(server.portal.requests_to("/rest/").is_empty());
}

#[tokio::test]
async fn tokens_count_only_in_the_authorization_header_with_the_bearer_scheme() {
    let server = Server::start(false).await;
    let body = initialize_body();
    let status = |head: String| {
        let base = server.base.clone();
        let body = body.clone();
        async move { raw(&base, &head, &body).await.0 }
    };
    // The scheme is case-insensitive (RFC 7235); spaces around the token are no part of it.
    for header in [
        format!("authorization: bearer {ANNA}"),
        format!("Authorization: BEARER   {ANNA}"),
        format!("Authorization: Bearer {ANNA}   "),
    ] {
        let head = format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\n{header}");
        assert_eq!(status(head).await, 200, "{header:?}");
    }
    // Anywhere else a token is no token (MCP: never in the query string).
    for head in [
        format!("POST /mcp?access_token={ANNA} HTTP/1.1\r\n{ACCEPT}"),
        format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nX-Access-Token: {ANNA}"),
        format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Token {ANNA}"),
        format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer{ANNA}"),
        format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer {ANNA}x"),
        format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer x{ANNA}"),
        format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer {ANNA} {MARIA}"),
        format!("GET /sse?access_token={ANNA} HTTP/1.1\r\nAccept: text/event-stream"),
    ] {
        assert_eq!(status(head.clone()).await, 401, "{head}");
    }
    // A very long token is checked and refused; a header past the server's limit never reaches
    // the gate.
    let long = "A".repeat(60_000);
    let head = format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer {long}");
    assert_eq!(status(head).await, 401);
    let huge = "A".repeat(2_000_000);
    let head = format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer {huge}");
    let refused = status(head).await;
    assert!(refused == 431 || refused == 0, "{refused}");
    assert!(server.portal.requests_to("/rest/").is_empty());
    // The server still answers.
    let head = format!("POST /mcp HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer {ANNA}");
    assert_eq!(status(head).await, 200);
}

#[tokio::test]
async fn no_path_or_method_reaches_rmcp_around_the_gate() {
    let server = Server::start(false).await;
    let session = open_session(&server, ANNA).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935}}})
    .to_string();
    let paths = [
        "/mcp//",
        "//mcp",
        "/MCP",
        "/Mcp/",
        "/mcp/../mcp",
        "/./mcp",
        "/mcp%2F",
        "/%6Dcp",
        "/mcp?x",
        "/mcp/?x=1",
        "/mcp#x",
        "/mcp;x",
        "/sse/",
        "/message/?sessionId=x",
        "http://127.0.0.1/mcp",
    ];
    for path in paths {
        for method in ["POST", "GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"] {
            // No token: nothing but the challenge or "no such page".
            let head = format!("{method} {path} HTTP/1.1\r\n{ACCEPT}");
            let (status, answer) = raw(&server.base, &head, &call).await;
            assert!(
                [401, 404, 400].contains(&status),
                "{method} {path} without a token: {answer}"
            );
            // Maria's token on Anna's session: never let through.
            let head = format!(
                "{method} {path} HTTP/1.1\r\n{ACCEPT}\r\nAuthorization: Bearer {MARIA}\r\nMcp-Session-Id: {session}"
            );
            let (status, answer) = raw(&server.base, &head, &call).await;
            assert!(
                [404, 400, 405].contains(&status),
                "{method} {path} as Maria in Anna's session: {answer}"
            );
        }
    }
    // Every method on the real paths without a token gets the challenge.
    for path in ["/mcp", "/mcp/", "/sse", "/message?sessionId=x"] {
        for method in ["POST", "GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"] {
            let head = format!("{method} {path} HTTP/1.1\r\n{ACCEPT}");
            let (status, answer) = raw(&server.base, &head, &call).await;
            assert!(
                status == 401
                    || (status == 405 && ["/sse", "/message?sessionId=x"].contains(&path)),
                "{method} {path}: {answer}"
            );
            if status == 401 {
                assert!(answer.contains(&server.challenge(path)), "{answer}");
            }
        }
    }
    assert!(
        server.portal.requests_to("/rest/").is_empty(),
        "nothing reached the portal"
    );
}

#[tokio::test]
async fn another_user_s_session_is_refused_on_the_2026_route_too() {
    let server = Server::start(false).await;
    let session = open_session(&server, ANNA).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "x", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {}}}});
    for token in [MARIA, ANNA] {
        let response = post_json(&server.url("/mcp"), Some(token), &call)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "im_chat_user_list")
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        if token == MARIA {
            assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
        } else {
            // Anna's own session header on the stateless route: her call, as her.
            assert!(text.contains("[99,1269,1271]"), "{status} {text}");
        }
    }
    assert_eq!(server.callers_of("im.chat.user.list"), [99]);
}

#[tokio::test]
async fn a_stateless_server_answers_each_request_as_its_own_token() {
    let server = Server::start_with(false, true).await;
    let call = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2936},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "x", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {}}}})
    };
    // Whatever session ID a request names, it runs as its own token's user.
    for (token, expected) in [(ANNA, "[]"), (MARIA, "[1269,1271]")] {
        let response = post_json(&server.url("/mcp"), Some(token), &call(3))
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "im_chat_user_list")
            .header("mcp-session-id", "anna-s-session")
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        assert!(text.contains(expected), "{text}");
    }
    assert_eq!(server.callers_of("im.chat.user.list"), [99, 1271]);
    let response = post_json(&server.url("/mcp"), None, &call(4))
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "im_chat_user_list")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

const SECRET: &str = "gate-attack-app-s3cret";

/// Waits for the first `data:` of an event of `kind` on an SSE stream.
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
async fn a_revoked_sign_in_can_no_longer_use_its_open_session_or_stream() {
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap();
    let command =
        common::signin_server::command(&portal.rest_root(), &portal.token_url(), SECRET, "info");
    let (mut child, base, _) = common::signin_server::start(command, None).await;
    portal.set_redirect_uri(format!("{base}/oauth/callback"));
    portal.sign_in_browser_as(99);
    let anna = Browser::new().sign_in(&base).await;
    let http = browser();

    // A legacy SSE session and a streamable HTTP session, both Anna's.
    let mut events = http
        .get(format!("{base}/sse"))
        .bearer_auth(&anna.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let mut buffer = String::new();
    let endpoint = next_event(&mut events, &mut buffer, "endpoint").await;
    let message = |body: Value| {
        http.post(format!("{base}{endpoint}"))
            .bearer_auth(&anna.access_token)
            .json(&body)
            .send()
    };
    assert_eq!(message(initialize()).await.unwrap().status(), 202);
    next_event(&mut events, &mut buffer, "message").await;
    let opened = post_json(
        &format!("{base}/mcp"),
        Some(&anna.access_token),
        &initialize(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(opened.status(), StatusCode::OK);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    // Anna's client signs out (RFC 7009).
    let revoked = http
        .post(format!("{base}/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("token", anna.access_token.as_str()),
                ("client_id", anna.client_id.as_str()),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    // Neither session takes another message with the revoked token.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935}}});
    assert_eq!(message(call.clone()).await.unwrap().status(), 401);
    let refused = post_json(&format!("{base}/mcp"), Some(&anna.access_token), &call)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(portal.requests_to("/rest/im.chat.user.list").is_empty());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn at_trace_level_the_mcp_traffic_logs_no_token_of_either_side() {
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap();
    let command =
        common::signin_server::command(&portal.rest_root(), &portal.token_url(), SECRET, "trace");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (mut child, base, drain) = common::signin_server::start(command, Some(log.clone())).await;
    portal.set_redirect_uri(format!("{base}/oauth/callback"));
    portal.sign_in_browser_as(99);
    let anna = Browser::new().sign_in(&base).await;
    let http = browser();

    // A session, a call in it, the same on legacy SSE, and tokens in odd places.
    let session = {
        let opened = post_json(
            &format!("{base}/mcp"),
            Some(&anna.access_token),
            &initialize(),
        )
        .send()
        .await
        .unwrap();
        opened.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935}}});
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    for body in [&initialized, &call] {
        let answer = post_json(&format!("{base}/mcp"), Some(&anna.access_token), body)
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap();
        let text = answer.text().await.unwrap();
        if body == &call {
            assert!(text.contains("[99,1269,1271]"), "{text}");
        }
    }
    let mut events = http
        .get(format!("{base}/sse"))
        .bearer_auth(&anna.access_token)
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let endpoint = next_event(&mut events, &mut buffer, "endpoint").await;
    for body in [initialize(), initialized.clone(), call.clone()] {
        let sent = http
            .post(format!("{base}{endpoint}"))
            .bearer_auth(&anna.access_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 202);
        if body.get("id").is_some() {
            next_event(&mut events, &mut buffer, "message").await;
        }
    }
    let queried = post_json(
        &format!("{base}/mcp?access_token={}", anna.access_token),
        None,
        &initialize(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(queried.status(), 401);
    let doubled = post_json(
        &format!("{base}/mcp"),
        Some(&anna.access_token),
        &initialize(),
    )
    .header("authorization", format!("Bearer {}", anna.refresh_token))
    .send()
    .await
    .unwrap();
    assert_eq!(doubled.status(), 400);

    let mut secrets = vec![anna.access_token.clone(), anna.refresh_token.clone()];
    for request in portal.requests_to("/rest/") {
        let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
        if let Some(token) = body["auth"].as_str() {
            secrets.push(token.to_owned());
        }
    }
    assert!(secrets.len() > 2, "the portal was called with Anna's token");
    drop(events);
    child.kill().await.unwrap();
    drain.await.unwrap();
    let text = log.lock().unwrap().clone();
    assert!(text.contains("TRACE"), "trace logs were on");
    // rmcp's own log of each request it received, arguments and all, was on too.
    assert!(text.contains("received request"), "{text}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a token was logged");
    }
}
