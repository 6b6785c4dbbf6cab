//! SSE priming events over streamable HTTP, read as raw bytes: a client of protocol 2025-06-18
//! (Gemini CLI) gets no data-less event on any stream; a client of 2025-11-25, whose revision
//! defines priming, still gets it.

mod common;

use std::time::Duration;

use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::Bitrix24Tools;
use bitrix24_mcp::transport::http::{self, HttpOptions};
use bitrix24_mcp::transport::security::{DEFAULT_HOSTS, Guard};
use common::*;
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct Server {
    base: String,
    _stop: oneshot::Sender<()>,
    _portal: DemoPortal,
}

async fn start() -> Server {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal)));
    let options = HttpOptions {
        guard: Guard {
            token: None,
            origins: Vec::new(),
            hosts: DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
        },
        // Keep-alive comments mark how far a stream has been read (see `stream_start`).
        keep_alive: Duration::from_millis(50),
        ..HttpOptions::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(http::serve(tools, listener, options, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        _stop: stop,
        _portal: portal,
    }
}

fn post(server: &Server, session: Option<&str>, version: Option<&str>) -> reqwest::RequestBuilder {
    let mut request = reqwest::Client::new()
        .post(format!("{}/mcp", server.base))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    if let Some(id) = session {
        request = request.header("mcp-session-id", id);
    }
    if let Some(version) = version {
        request = request.header("mcp-protocol-version", version);
    }
    request
}

/// Opens a session speaking `version`; returns its ID and the raw initialize answer.
async fn open_session(server: &Server, version: &str) -> (String, String) {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "priming-test", "version": "0"}}});
    let response = post(server, None, None)
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let raw = response.text().await.unwrap();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let sent = post(server, Some(&id), Some(version))
        .json(&initialized)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    (id, raw)
}

/// The raw answer to `tools/list` in a session.
async fn list_raw(server: &Server, id: &str, version: &str) -> String {
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let response = post(server, Some(id), Some(version))
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The standalone GET stream up to its first keep-alive comment: everything the server sends
/// when it opens.
async fn stream_start(server: &Server, id: &str, version: &str) -> String {
    let mut response = reqwest::Client::new()
        .get(format!("{}/mcp", server.base))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", id)
        .header("mcp-protocol-version", version)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut raw = String::new();
    while !raw.starts_with(":") && !raw.contains("\n:") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("a keep-alive within 10 s")
            .unwrap()
            .expect("the stream stays open");
        raw.push_str(&String::from_utf8_lossy(&chunk));
    }
    raw
}

/// The events of a raw SSE text: for each, its `data` joined and whether it had a `retry`.
fn events(raw: &str) -> Vec<(String, bool)> {
    raw.split("\n\n")
        .filter(|block| block.lines().any(|l| !l.starts_with(':')))
        .map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let retry = block.lines().any(|l| l.starts_with("retry:"));
            (data.join("\n"), retry)
        })
        .collect()
}

#[tokio::test]
async fn a_2025_06_18_session_gets_no_priming_event_on_any_stream() {
    let server = start().await;
    let (id, raw) = open_session(&server, "2025-06-18").await;
    let answer = events(&raw);
    assert_eq!(answer.len(), 1, "{raw:?}");
    let message: Value = serde_json::from_str(&answer[0].0).unwrap();
    assert_eq!(message["result"]["protocolVersion"], "2025-06-18");

    let raw = list_raw(&server, &id, "2025-06-18").await;
    let answer = events(&raw);
    assert_eq!(answer.len(), 1, "{raw:?}");
    assert!(!answer[0].1, "{raw:?}");
    let message: Value = serde_json::from_str(&answer[0].0).unwrap();
    assert!(
        message["result"]["tools"]
            .to_string()
            .contains("\"im_chat_user_list\"")
    );

    let raw = stream_start(&server, &id, "2025-06-18").await;
    assert!(events(&raw).is_empty(), "{raw:?}");
}

#[tokio::test]
async fn a_2025_11_25_session_keeps_its_priming_events() {
    let server = start().await;
    let (id, raw) = open_session(&server, "2025-11-25").await;
    let answer = events(&raw);
    assert_eq!(answer.len(), 2, "{raw:?}");
    assert_eq!(answer[0], (String::new(), true), "{raw:?}");
    let message: Value = serde_json::from_str(&answer[1].0).unwrap();
    assert_eq!(message["result"]["protocolVersion"], "2025-11-25");

    let raw = list_raw(&server, &id, "2025-11-25").await;
    let answer = events(&raw);
    assert_eq!(answer.len(), 2, "{raw:?}");
    assert_eq!(answer[0], (String::new(), true), "{raw:?}");
    let message: Value = serde_json::from_str(&answer[1].0).unwrap();
    assert!(
        message["result"]["tools"]
            .to_string()
            .contains("\"im_chat_user_list\"")
    );

    let raw = stream_start(&server, &id, "2025-11-25").await;
    assert_eq!(events(&raw), vec![(String::new(), true)], "{raw:?}");
}
