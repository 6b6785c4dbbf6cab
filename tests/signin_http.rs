//! Each person signed in over HTTP (`--auth oauth`), at the transport: the 401 challenge on every
//! MCP endpoint (never a redirect), each request's call reaching the portal with its own user's
//! token, sessions (streamable HTTP and legacy SSE) answering only the user who opened them, the
//! confirmation and the write log naming the user; and the binary's configuration of the mode.
//!
//! The server runs on loopback against the sample portal, whose people sign in for real (its
//! `/oauth/authorize/` and code exchange): each test user holds their own Bitrix24 pair. Who a
//! bearer token is, is answered here by a table of those users behind the transport's `Callers`
//! seam, so that the transport is tested apart from the grants that issue MCP tokens.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use bitrix24_mcp::bitrix::{
    Auth, Client, HttpPolicy, OAuthSession, OAuthSettings, Secret, ServiceUrl,
};
use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use bitrix24_mcp::signin::PublicUrl;
use bitrix24_mcp::tools::registry::{Selection, Writes};
use bitrix24_mcp::tools::{Acting, Bitrix24Tools};
use bitrix24_mcp::transport::gate::{self, Callers, Refusal};
use bitrix24_mcp::transport::http::{self, HttpOptions};
use bitrix24_mcp::transport::security::{DEFAULT_HOSTS, DEFAULT_ORIGINS, Guard, OriginPattern};
use common::elicit::User;
use common::*;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt, service::RunningService};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const APP_ID: &str = "local.signin0http0.00000001";
const APP_SECRET: &str = "s1gn1nHttpAppS3cret";
/// The MCP access tokens of the two test users.
const ANNA: &str = "mcp-access-anna-0001";
const MARIA: &str = "mcp-access-maria-0002";
/// The token the stand-in cannot check (its store is "down").
const UNCHECKABLE: &str = "mcp-access-store-down";

/// Who each MCP token is: the users signed in to the sample portal.
#[derive(Debug)]
struct People {
    public: PublicUrl,
    by_token: HashMap<&'static str, Acting>,
}

impl Callers for People {
    fn routes(&self) -> Router {
        Router::new()
    }

    fn caller<'a>(&'a self, bearer: Option<&'a str>) -> BoxFuture<'a, Result<Acting, Refusal>> {
        Box::pin(async move {
            if bearer == Some(UNCHECKABLE) {
                return Err(Refusal::Unavailable("the store is down".into()));
            }
            bearer
                .and_then(|token| self.by_token.get(token))
                .cloned()
                .ok_or(Refusal::Unauthenticated)
        })
    }

    fn challenge(&self) -> Response {
        gate::challenge(&self.public)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// The sample portal with an application people sign in to.
async fn portal() -> DemoPortal {
    let mut app = OAuthApp::signin(APP_ID, APP_SECRET);
    app.redirect_uri = Some("http://127.0.0.1:9/oauth/callback".into());
    DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `user_id` in at the portal (its chooser, then the code exchange) and returns a client
/// with that user's own Bitrix24 pair, and the access token of the pair.
async fn signed_in(portal: &DemoPortal, user_id: u64, name: &str) -> (Acting, String) {
    let user = user_id.to_string();
    let chosen = browser()
        .post(portal.authorize_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("client_id", APP_ID),
                ("state", "s"),
                ("user_id", &user),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::FOUND);
    let location = url::Url::parse(chosen.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let pair: Value = browser()
        .post(portal.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", "authorization_code"),
                ("client_id", APP_ID),
                ("client_secret", APP_SECRET),
                ("code", &code),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let settings = OAuthSettings {
        portal: ServiceUrl::portal(&portal.rest_root(), HttpPolicy::HttpsOnly).unwrap(),
        token_server: ServiceUrl::token_server(&portal.token_url(), HttpPolicy::HttpsOnly).unwrap(),
        client_id: APP_ID.into(),
        client_secret: Secret::new(APP_SECRET),
        access_token: Some(Secret::new(&access)),
        refresh_token: pair["refresh_token"].as_str().map(Secret::new),
        token_file: None,
    };
    let session = OAuthSession::open(settings).unwrap();
    let client = Client::new(Auth::OAuth(Box::new(session)), fast_options()).unwrap();
    let acting = Acting {
        client: Arc::new(client),
        user_id,
        user_name: name.to_owned(),
    };
    (acting, access)
}

/// A server where Anna (99) and Maria (1271) are signed in; stopped when dropped.
struct Server {
    base: String,
    portal: DemoPortal,
    /// Each user's Bitrix24 access token.
    bitrix_tokens: HashMap<u64, String>,
    _stop: oneshot::Sender<()>,
}

impl Server {
    async fn start(writes: bool) -> Self {
        Self::start_with(writes, false).await
    }

    async fn start_with(writes: bool, stateless: bool) -> Self {
        let portal = portal().await;
        let (anna, anna_token) = signed_in(&portal, 99, "Anna Petrova").await;
        let (maria, maria_token) = signed_in(&portal, 1271, "Maria Garcia").await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let people = People {
            public: PublicUrl::parse(&format!("http://{address}")).unwrap(),
            by_token: HashMap::from([(ANNA, anna), (MARIA, maria)]),
        };
        let options = HttpOptions {
            guard: Guard {
                token: None,
                origins: DEFAULT_ORIGINS
                    .iter()
                    .map(|o| OriginPattern::parse(o).unwrap())
                    .collect(),
                hosts: DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            },
            callers: Some(Arc::new(people)),
            stateless,
            ..HttpOptions::default()
        };
        let tools = Bitrix24Tools::per_user(None).serving(Selection::all().with_writes(Writes {
            allowed: writes,
            skip_confirmation: false,
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(http::serve(tools, listener, options, async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{address}"),
            portal,
            bitrix_tokens: HashMap::from([(99, anna_token), (1271, maria_token)]),
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The exact challenge for this server.
    fn challenge(&self) -> String {
        format!(
            r#"Bearer error="invalid_token", resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
            self.base
        )
    }

    /// The users whose tokens the portal saw on `method`, in order.
    fn callers_of(&self, method: &str) -> Vec<u64> {
        self.portal
            .requests_to(&format!("/rest/{method}"))
            .iter()
            .map(|request| {
                let seen = format!(
                    "{} {}",
                    request.query.as_deref().unwrap_or(""),
                    request.body
                );
                let users: Vec<u64> = self
                    .bitrix_tokens
                    .iter()
                    .filter(|(_, token)| seen.contains(token.as_str()))
                    .map(|(user, _)| *user)
                    .collect();
                assert_eq!(users.len(), 1, "one user's token per request: {seen}");
                users[0]
            })
            .collect()
    }
}

async fn rmcp_client<C: rmcp::ClientHandler>(
    handler: C,
    url: String,
    token: &str,
) -> RunningService<RoleClient, C> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    handler
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

fn post_json(url: &str, token: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
    let mut request = browser()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
}

#[tokio::test]
async fn every_mcp_endpoint_without_a_valid_token_answers_the_challenge_and_never_redirects() {
    let server = Server::start(false).await;
    let expected = server.challenge();
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
                    expected,
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

/// Opens a streamable HTTP session as `token`: its ID.
async fn open_session(server: &Server, token: &str) -> String {
    let response = post_json(&server.url("/mcp"), Some(token), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = post_json(&server.url("/mcp"), Some(token), &initialized)
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    id
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

// ---- the binary ------------------------------------------------------------------------------

/// The binary with `args`, its environment cleared of every setting a test run might carry.
fn binary(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command.args(args);
    for variable in [
        "BITRIX24_WEBHOOK_URL",
        "BITRIX24_PORTAL_URL",
        "BITRIX24_CLIENT_ID",
        "BITRIX24_CLIENT_SECRET",
        "BITRIX24_REFRESH_TOKEN",
        "BITRIX24_ACCESS_TOKEN",
        "BITRIX24_TOKEN_FILE",
        "BITRIX24_STATE_URL",
        "BITRIX24_STATE_KEY",
        "MCP_HTTP_TOKEN",
        "MCP_HTTP_AUTH",
        "MCP_PUBLIC_URL",
        "MCP_TRANSPORT",
        "MCP_BIND",
    ] {
        command.env_remove(variable);
    }
    command
}

#[test]
fn oauth_mode_refuses_a_plain_http_public_url_off_loopback_and_a_webhook() {
    let app = [
        "--portal-url",
        "https://acme.bitrix24.com/rest/",
        "--client-id",
        "local.app",
        "--client-secret",
        "s3cretOfTheApp",
    ];
    let cases: [(&[&str], &str); 3] = [
        (
            &["--public-url", "http://mcp.example.com"],
            "MCP_PUBLIC_URL must be https:// for a host that is not loopback (mcp.example.com)",
        ),
        (
            &[
                "--webhook-url",
                "https://acme.bitrix24.com/rest/1/w3bh00kc0de/",
            ],
            "a webhook (--webhook-url) would act as one person for everybody",
        ),
        (
            &["--bind", "0.0.0.0:8000"],
            "MCP_PUBLIC_URL (--public-url) is required with --auth oauth on 0.0.0.0:8000",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["serve", "--transport", "http", "--auth", "oauth"];
        args.extend_from_slice(&app);
        args.extend_from_slice(extra);
        let output = binary(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        for secret in ["s3cretOfTheApp", "w3bh00kc0de"] {
            assert!(!stderr.contains(secret), "{stderr}");
        }
    }
}

/// `--demo serve --transport http --auth oauth` on a free loopback port, with `extra` settings:
/// the process, the base URL it serves, its log up to "listening".
async fn demo_signin_process(extra: &[&str]) -> (tokio::process::Child, String, String) {
    let mut args = vec![
        "--demo",
        "serve",
        "--transport",
        "http",
        "--auth",
        "oauth",
        "--bind",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut child = tokio::process::Command::from(binary(&args))
        .env("RUST_LOG", "info")
        .env("BITRIX24_LOG_FORMAT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    let (address, logs) = listening_address(&mut lines).await;
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{address}"), logs)
}

#[tokio::test]
async fn the_health_check_asks_the_sign_in_store() {
    let Some(mut redis) = common::redis_server::RedisServer::start("signin-health") else {
        return;
    };
    let url = redis.url();
    let (mut child, base, logs) = demo_signin_process(&[
        "--state-url",
        &url,
        "--state-key",
        common::redis_server::STATE_KEY,
    ])
    .await;
    assert!(logs.contains("in the state store"), "{logs}");
    let health = || browser().get(format!("{base}/healthz")).send();
    assert_eq!(health().await.unwrap().status(), StatusCode::OK);
    redis.stop();
    let down = health().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_demo_serves_sign_in_on_loopback_with_no_other_setting() {
    let (mut child, base, logs) = demo_signin_process(&[]).await;
    let started: Value = serde_json::Deserializer::from_str(&logs)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .find(|entry| entry["fields"]["auth"] == "oauth")
        .expect("the start-up log names the mode");
    assert_eq!(started["fields"]["public_url"], base);
    assert_eq!(
        started["fields"]["handler_url"],
        format!("{base}/oauth/callback")
    );
    assert!(
        started["fields"]["grants"]
            .as_str()
            .unwrap()
            .starts_with("in this process's memory"),
        "{started}"
    );
    let response = post_json(&format!("{base}/mcp"), None, &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"].to_str().unwrap(),
        format!(
            r#"Bearer error="invalid_token", resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#
        )
    );
    let health = browser()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    child.kill().await.unwrap();
}
