//! MCP over HTTP on loopback: the rmcp streamable HTTP client (sessions and stateless), the legacy
//! SSE flow end to end, and raw HTTP for every refusal the guard and limits make.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bitrix24_mcp::bitrix::Secret;
use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::Bitrix24Tools;
use bitrix24_mcp::transport::http::{self, HttpOptions};
use bitrix24_mcp::transport::security::{DEFAULT_HOSTS, DEFAULT_ORIGINS, Guard, OriginPattern};
use common::*;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const TOKEN: &str = "http-t0ken-for-tests";

/// A server on a random loopback port, against the sample portal; stopped when dropped.
struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _portal: DemoPortal,
}

impl Server {
    async fn start(configure: impl FnOnce(&mut HttpOptions)) -> Self {
        let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
        let tools = Bitrix24Tools::new(Some(demo_client(&portal)));
        let mut options = HttpOptions {
            guard: Guard {
                token: Some(Secret::new(TOKEN)),
                origins: DEFAULT_ORIGINS
                    .iter()
                    .map(|o| OriginPattern::parse(o).unwrap())
                    .collect(),
                hosts: DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            },
            ..HttpOptions::default()
        };
        configure(&mut options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(tools, listener, options, async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{address}"),
            stop: Some(stop),
            task: Some(task),
            _portal: portal,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signals shutdown and waits for the server to finish.
    async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

async fn rmcp_client(url: String) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(TOKEN);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_rmcp_client_lists_and_calls_over_streamable_http_with_sessions() {
    let server = Server::start(|_| {}).await;
    for path in ["/mcp", "/mcp/"] {
        let client = rmcp_client(server.url(path)).await;
        assert_eq!(
            client
                .peer_info()
                .unwrap()
                .server_info
                .as_ref()
                .unwrap()
                .name,
            "bitrix24-mcp"
        );
        assert_lists_and_calls(&client).await;
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn the_rmcp_client_lists_and_calls_over_stateless_streamable_http() {
    let server = Server::start(|o| o.stateless = true).await;
    let client = rmcp_client(server.url("/mcp")).await;
    assert_lists_and_calls(&client).await;
    client.cancel().await.unwrap();
    // Stateless answers are plain JSON and carry no session.
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none());
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

/// A POST to /mcp as a well-behaved client sends it, before any changes.
fn mcp_post(server: &Server) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(server.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
}

#[tokio::test]
async fn requests_without_the_right_token_get_401() {
    let server = Server::start(|_| {}).await;
    let http = reqwest::Client::new();
    for token in [None, Some("wrong"), Some("http-t0ken-for-test")] {
        for (method, path) in [
            ("POST", "/mcp"),
            ("GET", "/sse"),
            ("POST", "/message?sessionId=x"),
        ] {
            let mut request = http
                .request(method.parse().unwrap(), server.url(path))
                .body(initialize().to_string());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Bearer realm="bitrix24-mcp""#
            );
        }
    }
    // Health stays open.
    let health: Value = http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn a_foreign_origin_or_host_gets_403_on_every_endpoint() {
    let server = Server::start(|_| {}).await;
    let http = reqwest::Client::new();
    for (method, path) in [
        ("POST", "/mcp"),
        ("GET", "/sse"),
        ("POST", "/message?sessionId=x"),
    ] {
        let request = |header: &str, value: &str| {
            http.request(method.parse().unwrap(), server.url(path))
                .bearer_auth(TOKEN)
                .header(header, value)
                .body(initialize().to_string())
        };
        for origin in ["http://evil.example", "https://localhost:3000", "null"] {
            assert_eq!(
                request("origin", origin).send().await.unwrap().status(),
                403,
                "{path} {origin}"
            );
        }
        assert_eq!(
            request("host", "evil.example")
                .send()
                .await
                .unwrap()
                .status(),
            403,
            "{path}"
        );
    }
    // Loopback origins of local tools are fine.
    let allowed = mcp_post(&server)
        .header("origin", "http://localhost:6274")
        .json(&initialize());
    assert_eq!(allowed.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let server = Server::start(|_| {}).await;
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(1_100_000)
    );
    let response = mcp_post(&server).body(huge.clone()).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let response = reqwest::Client::new()
        .post(server.url("/message?sessionId=whatever"))
        .bearer_auth(TOKEN)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn unknown_sessions_get_404_and_a_wrong_accept_gets_406() {
    let server = Server::start(|_| {}).await;
    let response = reqwest::Client::new()
        .post(server.url("/message?sessionId=no-such-session"))
        .bearer_auth(TOKEN)
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let response = mcp_post(&server)
        .header("mcp-session-id", "no-such-session")
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("accept", "text/html")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
}

/// Reads server-sent events from a response, one `(event, data)` at a time.
struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

impl EventReader {
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = "message".to_owned();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return (event, data.join("\n"));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn open_sse(server: &Server) -> (EventReader, String) {
    let response = reqwest::Client::new()
        .get(server.url("/sse"))
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = EventReader {
        response,
        buffer: String::new(),
    };
    let (event, endpoint) = events.next().await;
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/message?sessionId="), "{endpoint}");
    (events, endpoint)
}

#[tokio::test]
async fn the_legacy_sse_flow_works_end_to_end() {
    let server = Server::start(|_| {}).await;
    let (mut events, endpoint) = open_sse(&server).await;
    let post = |message: Value| {
        reqwest::Client::new()
            .post(server.url(&endpoint))
            .bearer_auth(TOKEN)
            .json(&message)
            .send()
    };
    assert_eq!(post(initialize()).await.unwrap().status(), 202);
    let (event, data) = events.next().await;
    assert_eq!(event, "message");
    let answer: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["serverInfo"]["name"], "bitrix24-mcp");
    assert_eq!(
        post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .unwrap()
            .status(),
        202
    );
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935}}});
    assert_eq!(post(call).await.unwrap().status(), 202);
    let (_, data) = events.next().await;
    let answer: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(answer["id"], 2);
    assert_eq!(
        answer["result"]["structuredContent"]["user_ids"],
        json!([99, 1269, 1271])
    );
    // Not JSON-RPC: 400, and the session carries on.
    let bad = reqwest::Client::new()
        .post(server.url(&endpoint))
        .bearer_auth(TOKEN)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Closing the stream ends the session: its endpoint is gone.
    drop(events);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = post(json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
            .await
            .unwrap()
            .status();
        if status == 404 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "session still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn deleting_a_session_ends_it_with_204() {
    let server = Server::start(|_| {}).await;
    let created = mcp_post(&server).json(&initialize()).send().await.unwrap();
    let id = created.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let deleted = reqwest::Client::new()
        .delete(server.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let gone = mcp_post(&server)
        .header("mcp-session-id", &id)
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn idle_sessions_are_reclaimed_and_free_their_slot() {
    let server = Server::start(|o| {
        o.session_idle_timeout = Duration::from_millis(200);
        o.max_sessions = 1;
    })
    .await;
    let created = mcp_post(&server).json(&initialize()).send().await.unwrap();
    let id = created.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(created);
    // Left idle, the session is closed: its ID is unknown, and a new session fits again. Each
    // probe is activity that would keep a live session open, so probes are further apart than
    // the idle timeout.
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let probe = mcp_post(&server).header("mcp-session-id", &id).json(&ping);
        let status = probe.send().await.unwrap().status();
        if status == 404 {
            break;
        }
        let now = std::time::Instant::now();
        assert!(
            now < deadline,
            "the idle session was never closed (last answer {status})"
        );
    }
    let again = mcp_post(&server).json(&initialize()).send().await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn sessions_past_the_limit_get_503() {
    let server = Server::start(|o| o.max_sessions = 2).await;
    let (_first, _) = open_sse(&server).await;
    let created = mcp_post(&server).json(&initialize()).send().await.unwrap();
    assert_eq!(created.status(), 200);
    assert!(created.headers().contains_key("mcp-session-id"));
    let refused = reqwest::Client::new()
        .get(server.url("/sse"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let refused = mcp_post(&server).json(&initialize()).send().await.unwrap();
    assert_eq!(refused.status(), 503);
}

#[tokio::test]
async fn shutdown_closes_open_streams_and_returns() {
    let server = Server::start(|_| {}).await;
    let (mut events, _) = open_sse(&server).await;
    let client = rmcp_client(server.url("/mcp")).await;
    assert_lists_and_calls(&client).await;
    let started = std::time::Instant::now();
    server.shutdown().await.unwrap();
    eprintln!("shutdown with open sessions took {:?}", started.elapsed());
    // The SSE stream has ended rather than hanging.
    let end = tokio::time::timeout(Duration::from_secs(5), events.response.chunk())
        .await
        .unwrap();
    assert!(
        matches!(end, Ok(None) | Err(_)),
        "stream still open: {end:?}"
    );
    let _ = events.buffer;
}

// ---- hostile clients: half-open connections, idle streams, odd headers -----------------------

#[tokio::test]
async fn half_open_connections_past_the_cap_neither_exhaust_the_server_nor_block_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(|o| {
        o.connections.max_connections = 4;
        o.connections.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_owned();
    // Three times the cap, each sending half a request and then nothing.
    let mut half_open = Vec::new();
    for _ in 0..12 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        half_open.push(stream);
    }
    // A real client still gets through: slots free up as the stalled headers time out.
    let created = tokio::time::timeout(
        Duration::from_secs(20),
        mcp_post(&server).json(&initialize()).send(),
    )
    .await
    .expect("initialize is answered despite the stalled connections")
    .unwrap();
    assert_eq!(created.status(), 200);
    // Every stalled connection was closed by the server, not left open.
    for mut stream in half_open {
        let mut buffer = Vec::new();
        // Closed means end of stream or a reset; before the fix this read waited for ever.
        let _closed =
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buffer))
                .await
                .expect("the server closes a stalled connection");
    }
}

#[tokio::test]
async fn a_lower_case_bearer_scheme_is_accepted() {
    let server = Server::start(|_| {}).await;
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("authorization", format!("bearer {TOKEN}"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_host_that_only_starts_like_loopback_is_refused() {
    let server = Server::start(|_| {}).await;
    for host in ["[::1].evil.com", "127.0.0.1.evil.com", "localhost:80:80"] {
        let response = mcp_post(&server)
            .header("host", host)
            .json(&initialize())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{host}");
    }
}

#[tokio::test]
async fn deleting_an_unknown_session_is_404() {
    let server = Server::start(|_| {}).await;
    let response = reqwest::Client::new()
        .delete(server.url("/mcp"))
        .bearer_auth(TOKEN)
        .header("mcp-session-id", "no-such-session")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn idle_sse_streams_are_closed_and_free_their_slot() {
    let server = Server::start(|o| {
        o.session_idle_timeout = Duration::from_millis(300);
        o.max_sessions = 1;
    })
    .await;
    let (mut events, _) = open_sse(&server).await;
    // Left idle, the stream ends...
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.response.chunk().await {
                Ok(Some(_)) => continue,
                other => break other,
            }
        }
    })
    .await
    .expect("the idle stream is closed");
    assert!(matches!(end, Ok(None) | Err(_)));
    // ...and its slot takes a new session.
    let created = mcp_post(&server).json(&initialize()).send().await.unwrap();
    assert_eq!(created.status(), 200);
}
