//! The fault suite: the tool driven through a portal that misbehaves in every way the reference
//! and the network allow, one test per fault. Each checks the structured error (or success), that
//! the very next call on the same server works, and that the test's own trace-level logs and every
//! result are free of the webhook code, tokens and client secret.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitrix24_mcp::bitrix::{Client, ClientOptions};
use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::Bitrix24Tools;
use common::*;
use rmcp::model::CallToolResult;
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::subscriber::DefaultGuard;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---- the harness: one MCP session, its logs, and the secret scan ------------------------------

/// Collects everything logged on this test's thread, at trace level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Harness {
    tools: RunningService<RoleClient, ()>,
    logs: Logs,
    seen: String,
    _guard: DefaultGuard,
}

impl Harness {
    /// Logging is captured before the client exists, so its set-up is scanned too. Tests run on a
    /// current-thread runtime, so every task of the test logs into this thread's subscriber.
    fn capture() -> (Logs, DefaultGuard) {
        let _ = tracing_log::LogTracer::init();
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    async fn new(client: impl FnOnce() -> Client) -> Self {
        let (logs, guard) = Self::capture();
        let tools = mcp_client(Bitrix24Tools::new(Some(client()))).await;
        Self {
            tools,
            logs,
            seen: String::new(),
            _guard: guard,
        }
    }

    async fn call(&mut self, arguments: Value) -> CallToolResult {
        let result = call(&self.tools, arguments).await;
        self.seen.push_str(&serde_json::to_string(&result).unwrap());
        result
    }

    async fn error(&mut self, chat_id: i64) -> Value {
        let result = self.call(json!({"CHAT_ID": chat_id})).await;
        error_object(&result)
    }

    /// The very next call works.
    async fn recovers(&mut self) {
        let result = self.call(json!({"CHAT_ID": 2935})).await;
        assert_eq!(success_object(&result)["user_ids"], json!([99, 1269, 1271]));
    }

    /// No secret in any result or log line; and the logs were really captured.
    fn assert_clean(&self) {
        let logs = String::from_utf8_lossy(&self.logs.0.lock().unwrap()).into_owned();
        assert!(
            logs.contains("TRACE") || logs.contains("DEBUG"),
            "no logs were captured"
        );
        for secret in std::iter::once(CODE).chain(OAUTH_SECRETS) {
            assert!(!logs.contains(secret), "secret in the logs:\n{logs}");
            assert!(
                !self.seen.contains(secret),
                "secret in a result: {}",
                self.seen
            );
        }
    }
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"result": [99, 1269, 1271]}))
}

/// A portal that answers `fault` `times` times, then correctly.
async fn faulty_portal(fault: ResponseTemplate, times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(fault)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok())
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

async fn webhook_harness(server: &MockServer, options: ClientOptions) -> Harness {
    let uri = server.uri();
    Harness::new(move || webhook_client(&uri, options)).await
}

fn retrying() -> ClientOptions {
    ClientOptions {
        retry: quick_retries(3),
        ..fast_options()
    }
}

// ---- answers that are not what they should be -------------------------------------------------

#[tokio::test]
async fn every_system_error_code() {
    let codes = [
        (500, "INTERNAL_SERVER_ERROR", true),
        (500, "ERROR_UNEXPECTED_ANSWER", true),
        (503, "QUERY_LIMIT_EXCEEDED", true),
        (429, "OPERATION_TIME_LIMIT", true),
        (405, "ERROR_BATCH_METHOD_NOT_ALLOWED", false),
        (400, "ERROR_BATCH_LENGTH_EXCEEDED", false),
        (401, "NO_AUTH_FOUND", false),
        (400, "INVALID_REQUEST", false),
        (503, "OVERLOAD_LIMIT", false),
        (403, "ACCESS_DENIED", false),
        (403, "INVALID_CREDENTIALS", false),
        (404, "ERROR_MANIFEST_IS_NOT_AVAILABLE", false),
        (403, "insufficient_scope", false),
        (401, "expired_token", false),
        (401, "invalid_token", false),
        (403, "user_access_error", false),
        (500, "PORTAL_DELETED", false),
        (404, "ERROR_METHOD_NOT_FOUND", false),
    ];
    for (status, code, retryable) in codes {
        let fault = ResponseTemplate::new(status)
            .set_body_json(json!({"error": code, "error_description": format!("{code} happened")}));
        let server = faulty_portal(fault, 1).await;
        let options = ClientOptions {
            min_operating_block: Duration::ZERO,
            ..fast_options()
        };
        let mut harness = webhook_harness(&server, options).await;
        let error = harness.error(2935).await;
        assert_eq!(
            (error["error"].as_str(), error["http_status"].as_u64()),
            (Some(code), Some(u64::from(status)))
        );
        assert_eq!(error["retryable"], retryable, "{code}");
        if code == "OPERATION_TIME_LIMIT" {
            // The method stays blocked until the (unknown, so full-window) reset: the next call
            // fails fast rather than working.
            assert_eq!(harness.error(2935).await["error"], "OPERATION_TIME_LIMIT");
        } else {
            harness.recovers().await;
        }
        harness.assert_clean();
    }
}

/// A portal that answers once with something that is not a Bitrix24 envelope: the error is
/// `UNEXPECTED_RESPONSE` naming `detail`, and the next call works. Returns the error.
async fn unexpected_once(fault: ResponseTemplate, detail: &str) -> Value {
    let server = faulty_portal(fault, 1).await;
    let mut harness = webhook_harness(&server, fast_options()).await;
    let error = harness.error(2935).await;
    assert_eq!(error["error"], "UNEXPECTED_RESPONSE");
    let description = error["error_description"].as_str().unwrap();
    assert!(description.contains(detail), "{description}");
    harness.recovers().await;
    harness.assert_clean();
    error
}

#[tokio::test]
async fn an_html_502_page() {
    let page = format!(
        "<html><head><title>502 Bad Gateway</title></head><body>nginx /rest/1/{CODE}/</body></html>"
    );
    let fault = ResponseTemplate::new(502).set_body_string(page);
    let error = unexpected_once(fault, "502 Bad Gateway").await;
    assert_eq!(error["http_status"], 502);
    assert_eq!(error["retryable"], true);
}

#[tokio::test]
async fn an_empty_body() {
    unexpected_once(ResponseTemplate::new(200), "empty body").await;
}

#[tokio::test]
async fn truncated_json() {
    let fault = ResponseTemplate::new(200).set_body_string(r#"{"result":[99,12"#);
    unexpected_once(fault, "body is not JSON").await;
}

#[tokio::test]
async fn a_result_of_the_wrong_type() {
    let fault = ResponseTemplate::new(200).set_body_json(json!({"result": {"users": [99]}}));
    unexpected_once(fault, "not a list of user IDs").await;
}

#[tokio::test]
async fn a_huge_body_past_the_cap() {
    let huge = json!({"result": vec![99; 2_000_000]});
    unexpected_once(ResponseTemplate::new(200).set_body_json(huge), "byte limit").await;
}

#[tokio::test]
async fn permanent_and_temporary_redirects() {
    for status in [301, 302] {
        let location = format!("https://moved.bitrix24.com/rest/1/{CODE}/im.chat.user.list");
        let fault = ResponseTemplate::new(status).insert_header("Location", location.as_str());
        let server = faulty_portal(fault, 1).await;
        let mut harness = webhook_harness(&server, retrying()).await;
        let error = harness.error(2935).await;
        assert_eq!(error["error"], "PORTAL_MOVED");
        assert_eq!(error["http_status"], status);
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains("moved.bitrix24.com")
        );
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "neither followed nor retried"
        );
        harness.recovers().await;
        harness.assert_clean();
    }
}

#[tokio::test]
async fn a_response_slower_than_the_timeout() {
    let slow = ok().set_delay(Duration::from_secs(30));
    let server = faulty_portal(slow, 1).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    let mut harness = webhook_harness(&server, options).await;
    let error = harness.error(2935).await;
    assert_eq!(
        (error["error"].as_str(), error["retryable"].as_bool()),
        (Some("TIMEOUT"), Some(true))
    );
    harness.recovers().await;
    harness.assert_clean();
}

// ---- the network misbehaving -------------------------------------------------------------------

/// What a raw portal does with one connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Starts a 200 answer, then resets the connection mid-body.
    ResetMidBody,
    /// Sends the headers and part of the body, then stalls with the connection open.
    StallBody,
    /// Answers properly.
    Answer,
}

/// A portal speaking raw HTTP/1.1, one behaviour per connection in order, the last repeated.
async fn raw_portal(script: Vec<Behaviour>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut script = script.into_iter().peekable();
        let mut stalled = Vec::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let behaviour = match script.next() {
                Some(b) if script.peek().is_some() => b,
                Some(b) => {
                    script = vec![b].into_iter().peekable();
                    b
                }
                None => Behaviour::Answer,
            };
            read_request(&mut stream).await;
            let body = r#"{"result":[99,1269,1271]}"#;
            match behaviour {
                Behaviour::Answer => {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
                Behaviour::ResetMidBody => {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"result\":[99,";
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.flush().await;
                    // Zero linger turns the close into a reset (RST), as a crashed proxy does.
                    #[allow(deprecated)]
                    let _ = stream.set_linger(Some(Duration::ZERO));
                    drop(stream);
                }
                Behaviour::StallBody => {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"result\":[99,";
                    let _ = stream.write_all(head.as_bytes()).await;
                    stalled.push(stream);
                }
            }
        }
    });
    base
}

/// Reads one request: headers, then the body by Content-Length.
async fn read_request(stream: &mut TcpStream) {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_connection_reset_mid_body() {
    let base = raw_portal(vec![Behaviour::ResetMidBody, Behaviour::Answer]).await;
    let mut harness = Harness::new(|| webhook_client(&base, fast_options())).await;
    let error = harness.error(2935).await;
    assert_eq!(error["error"], "NETWORK_ERROR");
    assert_eq!(error["retryable"], true);
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("broke while reading"),
        "{error}"
    );
    harness.recovers().await;
    harness.assert_clean();
}

#[tokio::test]
async fn a_stalled_body() {
    let base = raw_portal(vec![Behaviour::StallBody, Behaviour::Answer]).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    let mut harness = Harness::new(|| webhook_client(&base, options)).await;
    let error = harness.error(2935).await;
    assert_eq!(error["error"], "TIMEOUT");
    harness.recovers().await;
    harness.assert_clean();
}

#[tokio::test]
async fn a_reset_then_success_is_retried_transparently() {
    let base = raw_portal(vec![Behaviour::ResetMidBody, Behaviour::Answer]).await;
    let mut harness = Harness::new(|| webhook_client(&base, retrying())).await;
    harness.recovers().await;
    harness.assert_clean();
}

#[tokio::test]
async fn connection_refused_until_the_portal_comes_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    // The sample portal's webhook acts as user 99, a participant of chat 2935.
    let url = format!("http://{address}/rest/99/{CODE}/");
    let client = move || {
        let webhook = bitrix24_mcp::bitrix::WebhookUrl::parse(
            &url,
            bitrix24_mcp::bitrix::HttpPolicy::HttpsOnly,
        )
        .unwrap();
        Client::new(webhook.into(), fast_options()).unwrap()
    };
    let mut harness = Harness::new(client).await;
    let error = harness.error(2935).await;
    assert_eq!(
        (error["error"].as_str(), error["category"].as_str()),
        (Some("NETWORK_ERROR"), Some("network"))
    );
    // The portal starts on the same address; the same server's next call reaches it.
    let listener = TcpListener::bind(address).await.unwrap();
    let _portal = DemoPortal::serve(listener, PortalData::sample(CODE)).unwrap();
    harness.recovers().await;
    harness.assert_clean();
}

// ---- OAuth faults ------------------------------------------------------------------------------

async fn oauth_harness(portal: &DemoPortal, access: Option<&str>) -> Harness {
    Harness::new(|| app_client(portal, access)).await
}

#[tokio::test]
async fn expired_token_then_success() {
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    let mut harness = oauth_harness(&portal, Some(ACCESS)).await;
    harness.recovers().await;
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    harness.recovers().await;
    harness.assert_clean();
}

#[tokio::test]
async fn expired_token_with_a_failing_refresh() {
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    portal.fail_token_requests(1);
    let mut harness = oauth_harness(&portal, Some(ACCESS)).await;
    let error = harness.error(2935).await;
    assert_eq!(
        (error["error"].as_str(), error["retryable"].as_bool()),
        (Some("UNEXPECTED_RESPONSE"), Some(true))
    );
    harness.recovers().await;
    harness.assert_clean();
}

#[tokio::test]
async fn invalid_grant() {
    let portal = oauth_portal(oauth_app(), None).await;
    let settings = oauth_settings(&portal, None, Some("already-used-refresh"), None);
    let mut harness = Harness::new(move || oauth_client(settings)).await;
    let error = harness.error(2935).await;
    assert_eq!(
        (error["error"].as_str(), error["category"].as_str()),
        (Some("invalid_grant"), Some("authentication"))
    );
    // Nothing but the user can cure a dead refresh token; the server stays healthy and says the
    // same thing again, and input errors are still answered.
    assert_eq!(harness.error(2935).await["error"], "invalid_grant");
    assert_eq!(harness.error(0).await["error"], "INVALID_ARGUMENT");
    harness.assert_clean();
}

#[tokio::test]
async fn concurrent_expiry_fifty_calls_one_refresh() {
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    let mut harness = oauth_harness(&portal, Some(ACCESS)).await;
    let calls: Vec<_> = (0..50)
        .map(|_| call(&harness.tools, json!({"CHAT_ID": 2935})))
        .collect();
    for result in futures::future::join_all(calls).await {
        assert_eq!(success_object(&result)["count"], 3);
        harness
            .seen
            .push_str(&serde_json::to_string(&result).unwrap());
    }
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    harness.recovers().await;
    harness.assert_clean();
}

// ---- limits ------------------------------------------------------------------------------------

fn query_limit() -> ResponseTemplate {
    ResponseTemplate::new(503).set_body_json(
        json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
    )
}

#[tokio::test]
async fn query_limit_exceeded_twice_then_success() {
    let server = faulty_portal(query_limit(), 2).await;
    let mut harness = webhook_harness(&server, retrying()).await;
    harness.recovers().await;
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    harness.recovers().await;
    harness.assert_clean();
}

#[tokio::test]
async fn query_limit_exceeded_forever() {
    let server = faulty_portal(query_limit(), 4).await;
    let mut harness = webhook_harness(&server, retrying()).await;
    let error = harness.error(2935).await;
    assert_eq!(
        (error["error"].as_str(), error["attempts"].as_u64()),
        (Some("QUERY_LIMIT_EXCEEDED"), Some(4))
    );
    assert_eq!(error["http_status"], 503);
    assert_eq!(error["category"], "rate_limit");
    assert_eq!(error["retryable"], true);
    let description = error["error_description"].as_str().unwrap();
    assert!(
        description.ends_with("(gave up after 4 attempts)"),
        "{description}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
    // The portal has recovered (the fault ran out): the next call works.
    harness.recovers().await;
    harness.assert_clean();
}

/// Seconds since the Unix epoch, as the client's operating gate counts them.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A successful answer whose `time` block puts the method's window reset `ahead` whole seconds
/// after the moment it is sent (not when the test started: a loaded machine may take seconds to
/// get there), remembering the reset it reported.
struct BudgetAnswer {
    ahead: u64,
    reported: Arc<Mutex<Option<u64>>>,
}

impl wiremock::Respond for BudgetAnswer {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        // Whole seconds, as the portal reports them: the next second boundary plus the margin.
        let reset_at = unix_now().ceil() as u64 + self.ahead;
        *self.reported.lock().unwrap() = Some(reset_at);
        ResponseTemplate::new(200).set_body_json(
            json!({"result": [99, 1269, 1271], "time": {"operating": 479, "operating_reset_at": reset_at}}),
        )
    }
}

#[tokio::test]
async fn operation_time_limit_then_blocked_until_reset() {
    let server = MockServer::start().await;
    let reported = Arc::new(Mutex::new(None));
    // Five seconds from the answer to the reset: the next call's 429 comes back long before it,
    // even with several builds sharing two cores. The test waits out that margin once.
    let budget = BudgetAnswer {
        ahead: 5,
        reported: reported.clone(),
    };
    let blocked = ResponseTemplate::new(429).set_body_json(
        json!({"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked"}),
    );
    Mock::given(method("POST"))
        .respond_with(budget)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(blocked)
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok())
        .with_priority(3)
        .mount(&server)
        .await;
    let options = ClientOptions {
        min_operating_block: Duration::ZERO,
        ..retrying()
    };
    let mut harness = webhook_harness(&server, options).await;
    harness.recovers().await;
    let reset_at = reported.lock().unwrap().expect("the budget was reported") as f64;
    let before = unix_now();
    let refused = harness.error(2935).await;
    let after = unix_now();
    assert!(
        after < reset_at,
        "the 429 must come back before the reported reset for this test to mean anything"
    );
    assert_eq!(refused["error"], "OPERATION_TIME_LIMIT");
    assert_eq!(refused["http_status"], 429);
    assert_eq!(refused["category"], "rate_limit");
    assert_eq!(refused["retryable"], true);
    // Blocked until one second past the reported reset (not the 600-second window), counted
    // from the moment the 429 arrived, which lies between `before` and `after`.
    let wait = refused["retry_after_secs"].as_u64().unwrap() as f64;
    let (shortest, longest) = (
        (reset_at + 1.0 - after).ceil(),
        (reset_at + 1.0 - before).ceil(),
    );
    assert!(
        (shortest..=longest).contains(&wait),
        "{wait} not in {shortest}..={longest}"
    );
    let sent = server.received_requests().await.unwrap().len();
    assert_eq!(sent, 2, "a blocked method is not retried");
    // Until the reset, calls fail fast without a request.
    let fast = harness.error(2935).await;
    assert_eq!(fast["error"], "OPERATION_TIME_LIMIT");
    assert!(fast.get("http_status").is_none());
    let description = fast["error_description"].as_str().unwrap();
    assert!(description.contains("no request was sent"), "{description}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "failed fast"
    );
    // Not a stand-in for synchronisation: the block is on the wall clock, and ends at its time.
    while unix_now() < reset_at + 1.0 {
        let left = Duration::try_from_secs_f64(reset_at + 1.0 - unix_now()).unwrap_or_default();
        tokio::time::sleep(left.max(Duration::from_millis(10))).await;
    }
    harness.recovers().await;
    harness.assert_clean();
}
