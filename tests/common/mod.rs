//! Shared test scaffolding: portals on loopback, an in-process MCP client, the built binary.
#![allow(dead_code)]

pub mod elicit;
pub mod redis_server;
pub mod signin;
pub mod signin_server;

use std::time::Duration;

use bitrix24_mcp::bitrix::{
    Client, ClientOptions, HttpPolicy, RateOptions, RetryPolicy, WebhookUrl,
};
use bitrix24_mcp::tools::Bitrix24Tools;
use bitrix24_mcp::transport::stdio::serve_io;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// The webhook code the tests configure; it must never show up in output.
pub const CODE: &str = "t0p53cr3tc0de42x";

/// Path of the built binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_bitrix24-mcp");

/// Options that keep failure tests short and show each failure as it is: no retries, and a rate
/// limit out of the way.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        rate: RateOptions {
            per_second: 10_000.0,
            burst: 10_000,
            max_wait: Duration::from_secs(5),
        },
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    }
}

/// Retries with delays short enough for tests.
pub fn quick_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        deadline: Duration::from_secs(10),
    }
}

/// A client for `{base}/rest/1/CODE/`.
pub fn webhook_client(base: &str, options: ClientOptions) -> Client {
    let url = format!("{base}/rest/1/{CODE}/");
    let webhook = WebhookUrl::parse(&url, HttpPolicy::HttpsOnly).expect("loopback webhook URL");
    Client::new(webhook.into(), options).expect("client builds")
}

/// A client for a running demo portal.
pub fn demo_client(portal: &bitrix24_mcp::demo::DemoPortal) -> Client {
    let webhook =
        WebhookUrl::parse(&portal.webhook_url(), HttpPolicy::HttpsOnly).expect("demo webhook URL");
    Client::new(webhook.into(), fast_options()).expect("client builds")
}

/// An MCP client connected in-process, over a duplex pipe, to a server for `tools`.
pub async fn mcp_client(tools: Bitrix24Tools) -> RunningService<RoleClient, ()> {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let (reader, writer) = tokio::io::split(server_io);
    tokio::spawn(serve_io(tools, reader, writer, std::future::pending()));
    ().serve(client_io).await.expect("client initializes")
}

/// An MCP client connected to the binary run by `command` over its stdio (its stderr dropped).
pub async fn mcp_process(command: tokio::process::Command) -> RunningService<RoleClient, ()> {
    let (transport, _stderr) = rmcp::transport::TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server starts");
    ().serve(transport).await.expect("client initializes")
}

/// A JSON-RPC `initialize` request (id 1), for tests that speak the protocol by hand.
pub fn initialize() -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bitrix24-mcp-tests", "version": "0"}}})
}

/// Calls `im_chat_user_list` with raw JSON arguments.
pub async fn call(client: &RunningService<RoleClient, ()>, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new("im_chat_user_list").with_arguments(arguments))
        .await
        .expect("tools/call answers")
}

/// Calls `im_chat_user_list` for one chat.
pub async fn chat_users(client: &RunningService<RoleClient, ()>, chat_id: i64) -> CallToolResult {
    call(client, serde_json::json!({"CHAT_ID": chat_id})).await
}

/// The proof for shared tokens: `cycles` times, every access token expires and each
/// process makes four concurrent calls (about different chats, so none is shared within a
/// process). Every call must succeed and each cycle cost exactly one refresh request.
pub async fn expiry_cycles(
    portal: &bitrix24_mcp::demo::DemoPortal,
    processes: &[RunningService<RoleClient, ()>],
    cycles: usize,
) {
    let before = portal.requests_to("/oauth/token").len();
    for cycle in 1..=cycles {
        portal.expire_access_tokens();
        let calls = processes.iter().enumerate().flat_map(|(p, process)| {
            (0..4).map(move |c| chat_users(process, 2935 + (p * 4 + c) as i64 * 1000))
        });
        for result in futures::future::join_all(calls).await {
            assert_ne!(result.is_error, Some(true), "cycle {cycle}: {result:?}");
        }
        assert_eq!(
            portal.requests_to("/oauth/token").len() - before,
            cycle,
            "exactly one refresh per expiry"
        );
    }
}

/// What every transport must deliver: the ten tools (nine chat reads and bitrix24_call), a call to chat 2935 answered with the
/// IDs as structured content and as the same JSON text, and chat 1 answered with `ACCESS_ERROR`.
pub async fn assert_lists_and_calls(client: &RunningService<RoleClient, ()>) {
    let tools = client.list_all_tools().await.expect("tools/list answers");
    assert_eq!(tools.len(), 10);
    assert!(tools.iter().any(|t| t.name == "im_chat_user_list"));
    let success = call(client, serde_json::json!({"CHAT_ID": 2935})).await;
    assert_eq!(
        success_object(&success),
        serde_json::json!({"chat_id": 2935, "user_ids": [99, 1269, 1271], "count": 3})
    );
    let refused = call(client, serde_json::json!({"CHAT_ID": 1})).await;
    assert_eq!(error_object(&refused)["error"], "ACCESS_ERROR");
}

/// The single text content of a result.
pub fn text(result: &CallToolResult) -> &str {
    assert_eq!(result.content.len(), 1, "one content block: {result:?}");
    &result.content[0].as_text().expect("text content").text
}

/// The error object of an `isError` result, checking the shape every error must have.
pub fn error_object(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(true), "expected an error: {result:?}");
    assert!(
        result.structured_content.is_none(),
        "errors carry no structuredContent"
    );
    // First a plain sentence (a client that parses a first JSON text as structured content
    // must not find one), then the JSON object.
    let texts: Vec<&str> = result
        .content
        .iter()
        .map(|c| c.as_text().expect("text content").text.as_str())
        .collect();
    assert_eq!(texts.len(), 2, "a sentence and the object: {result:?}");
    assert!(
        serde_json::from_str::<Value>(texts[0]).is_err(),
        "the first text is not JSON: {}",
        texts[0]
    );
    let object: Value = serde_json::from_str(texts[1]).expect("error text is JSON");
    for field in ["error", "error_description", "category", "hint"] {
        let value = object[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {object}"));
        assert!(!value.is_empty(), "{field} is empty in {object}");
    }
    assert!(object["retryable"].is_boolean(), "{object}");
    // Debug builds check every answer against its tool's output schema (src/tools/schema.rs).
    assert!(
        !object["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match the tool's output schema"),
        "{object}"
    );
    let code = object["error"].as_str().unwrap_or_default();
    let hint = object["hint"].as_str().unwrap_or_default();
    assert!(
        texts[0].starts_with(&format!("Error {code}: "))
            && texts[0].ends_with(&format!("Hint: {hint}")),
        "the sentence names the code and the hint: {}",
        texts[0]
    );
    object
}

/// The structured content of a successful result, checking it is repeated as JSON text.
pub fn success_object(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "expected success: {result:?}");
    let structured = result
        .structured_content
        .clone()
        .expect("structuredContent");
    let text: Value = serde_json::from_str(text(result)).expect("text is JSON");
    assert_eq!(text, structured);
    structured
}

// ---- OAuth ----------------------------------------------------------------------------------

use bitrix24_mcp::bitrix::{Auth, OAuthSession, OAuthSettings, Secret, ServiceUrl};
use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData, RequestObserver};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

pub const CLIENT_ID: &str = "local.5f3e2a.test";
pub const CLIENT_SECRET: &str = "cl1ent5ecretv4lue";
pub const REFRESH: &str = "r3freshT0kenInitial";
pub const ACCESS: &str = "acc3ssT0kenInitial";

/// Every OAuth secret a test starts with; none may ever be shown.
pub const OAUTH_SECRETS: [&str; 3] = [CLIENT_SECRET, REFRESH, ACCESS];

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// An app whose refresh token is `REFRESH` and whose access token `ACCESS` is valid for an hour.
pub fn oauth_app() -> OAuthApp {
    let mut app = OAuthApp::new(CLIENT_ID, CLIENT_SECRET, REFRESH);
    app.access_tokens = vec![(ACCESS.to_owned(), unix_now() + 3600.0)];
    app
}

/// The sample portal with an installed app.
pub async fn oauth_portal(app: OAuthApp, observer: Option<RequestObserver>) -> DemoPortal {
    let mut data = PortalData::sample(CODE);
    data.oauth = Some(app);
    data.observer = observer;
    DemoPortal::start(data).await.unwrap()
}

/// Settings for the portal's app, as the user would configure them.
pub fn oauth_settings(
    portal: &DemoPortal,
    access: Option<&str>,
    refresh: Option<&str>,
    token_file: Option<PathBuf>,
) -> OAuthSettings {
    OAuthSettings {
        portal: ServiceUrl::portal(&portal.rest_root(), HttpPolicy::HttpsOnly).unwrap(),
        token_server: ServiceUrl::token_server(&portal.token_url(), HttpPolicy::HttpsOnly).unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        access_token: access.map(Secret::new),
        refresh_token: refresh.map(Secret::new),
        token_file,
    }
}

/// A client for an OAuth app, with [`fast_options`].
pub fn oauth_client(settings: OAuthSettings) -> Client {
    let session = OAuthSession::open(settings).expect("oauth session opens");
    Client::new(Auth::OAuth(Box::new(session)), fast_options()).expect("client builds")
}

/// The usual OAuth client: the app's initial refresh token, the given access token, no file.
pub fn app_client(portal: &DemoPortal, access: Option<&str>) -> Client {
    oauth_client(oauth_settings(portal, access, Some(REFRESH), None))
}

/// The binary configured, through its environment, for the portal's app with the app's initial
/// pair (the access token expired or not, as the portal says), no retries, quiet logs; no
/// token file or state store until the caller adds one.
pub fn oauth_process(portal: &DemoPortal) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .env_remove("BITRIX24_WEBHOOK_URL")
        .env_remove("BITRIX24_TOKEN_FILE")
        .env_remove("BITRIX24_STATE_URL")
        .env("BITRIX24_PORTAL_URL", portal.rest_root())
        .env("BITRIX24_OAUTH_TOKEN_URL", portal.token_url())
        .env("BITRIX24_CLIENT_ID", CLIENT_ID)
        .env("BITRIX24_CLIENT_SECRET", CLIENT_SECRET)
        .env("BITRIX24_REFRESH_TOKEN", REFRESH)
        .env("BITRIX24_ACCESS_TOKEN", ACCESS)
        .env("BITRIX24_MAX_RETRIES", "0")
        .env("RUST_LOG", "warn");
    command
}

/// A fresh, empty directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bitrix24-mcp-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- the binary over HTTP --------------------------------------------------------------------

/// The binary serving HTTP on a free loopback port with the demo portal, a bearer token and JSON
/// logs at `log_level`. Returns the process, the address it bound (read from its "listening" log
/// line), the log lines read so far, and the rest of its log.
pub async fn spawn_http_server(
    token: &str,
    log_level: &str,
) -> (
    tokio::process::Child,
    String,
    String,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
) {
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--transport",
            "http",
            "--bind",
            "127.0.0.1:0",
            "--demo",
        ])
        .env("MCP_HTTP_TOKEN", token)
        .env("RUST_LOG", log_level)
        .env("BITRIX24_LOG_FORMAT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (address, logs) = listening_address(&mut lines).await;
    (child, address, logs, lines)
}

/// Reads a server's JSON log until it says where it listens: the address, and the log so far.
pub async fn listening_address(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
) -> (String, String) {
    let mut logs = String::new();
    loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the server logs where it listens");
        logs.push_str(&line);
        let entry: Value = serde_json::from_str(&line).unwrap();
        if let Some(address) = entry["fields"]["address"].as_str() {
            return (address.to_owned(), logs);
        }
    }
}

/// `im.chat.user.list` for chat 2935 as a request of its own: not shared with identical concurrent
/// reads, for tests that count what each call does (refreshes, bucket slots).
pub async fn unshared_chat_user_list(
    client: &Client,
) -> Result<Value, bitrix24_mcp::bitrix::CallError> {
    client
        .call("im.chat.user.list", &serde_json::json!({"CHAT_ID": 2935}))
        .await
        .map(|envelope| envelope.result)
}
