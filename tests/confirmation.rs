//! The typed confirmation under attack: a confirmation is good for one write (replayed in a row,
//! at once, across instances), answers only in the session that asked, is taken by any instance
//! sharing the state store, costs nothing when the client cannot confirm, shows portal text only
//! quoted as the portal's, and a write under way is logged even when its caller goes away.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitrix24_mcp::bitrix::state::{RedisStore, Shared, StateSettings, StateUrl};
use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::registry::Writes;
use bitrix24_mcp::tools::{Bitrix24Tools, Selection};
use common::redis_server::{RedisServer, STATE_KEY};
use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ElicitRequestParams, ElicitResult, ElicitationAction, Implementation, InputRequiredResult,
    ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

fn writes_on() -> Selection {
    Selection::all().with_writes(Writes {
        allowed: true,
        skip_confirmation: false,
        ..Writes::default()
    })
}

/// An MCP client offering form elicitation that types `answer` and records each question.
#[derive(Clone)]
struct User {
    answer: String,
    asked: Arc<Mutex<Vec<String>>>,
}

impl User {
    fn typing(answer: &str) -> Self {
        Self {
            answer: answer.to_owned(),
            asked: Arc::default(),
        }
    }
}

impl ClientHandler for User {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = request {
            self.asked.lock().unwrap().push(message);
        }
        Ok(ElicitResult::new(ElicitationAction::Accept)
            .with_content(json!({"confirm": self.answer})))
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("confirmation-test", "0"),
        )
    }
}

/// A client that declares no elicitation at all.
#[derive(Clone)]
struct Plain;

impl ClientHandler for Plain {}

fn stateless() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

/// A client on 2026-07-28 (or on the initialize handshake), in-process, to a server for `tools`.
async fn connect<H: ClientHandler + Clone>(
    tools: Bitrix24Tools,
    handler: H,
    lifecycle: ClientLifecycleMode,
) -> RunningService<RoleClient, H> {
    let (server_io, client_io) = tokio::io::duplex(256 * 1024);
    let (reader, writer) = tokio::io::split(server_io);
    tokio::spawn(bitrix24_mcp::transport::stdio::serve_io(
        tools,
        reader,
        writer,
        std::future::pending(),
    ));
    handler
        .serve_with_lifecycle(client_io, lifecycle)
        .await
        .unwrap()
}

fn request(tool: &str, arguments: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_owned())
        .with_arguments(arguments.as_object().unwrap().clone())
}

/// The first round: the input-required answer with its sealed state.
async fn ask<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    arguments: Value,
) -> InputRequiredResult {
    match client
        .call_tool_once(request(tool, arguments))
        .await
        .unwrap()
    {
        CallToolResponse::InputRequired(input) => input,
        other => panic!("expected an input-required answer: {other:?}"),
    }
}

/// The retry of `tool` carrying `input`'s state and the typed `value`.
fn retry(
    tool: &str,
    arguments: Value,
    input: &InputRequiredResult,
    value: &str,
) -> CallToolRequestParams {
    let mut retry = request(tool, arguments);
    retry.request_state = input.request_state.clone();
    retry.input_responses = Some(
        [(
            "confirm".to_owned(),
            json!({"action": "accept", "content": {"confirm": value}}),
        )]
        .into_iter()
        .collect(),
    );
    retry
}

async fn answer<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    retry: CallToolRequestParams,
) -> CallToolResult {
    match client.call_tool_once(retry).await.unwrap() {
        CallToolResponse::Complete(result) => result,
        other => panic!("expected a complete answer: {other:?}"),
    }
}

/// The write requests the portal received: (method, body).
fn writes(portal: &DemoPortal) -> Vec<(String, Value)> {
    portal
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("im.chat.user.delete") || r.path.contains("im.chat.leave"))
        .map(|r| {
            (
                r.path.rsplit('/').next().unwrap().to_owned(),
                serde_json::from_str(&r.body).unwrap(),
            )
        })
        .collect()
}

fn assert_already_used(result: &CallToolResult) {
    let error = error_object(result);
    assert_eq!(error["error"], "NOT_CONFIRMED", "{error}");
    assert_eq!(error["retryable"], false);
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("this confirmation was already used (each is good for one write)"),
        "{error}"
    );
}

// ---- one confirmation, one write --------------------------------------------------------------

#[tokio::test]
async fn a_confirmation_replayed_in_a_row_makes_one_write() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(tools, User::typing("2935"), stateless()).await;
    let arguments = json!({"CHAT_ID": 2935, "USER_ID": 1269});
    let input = ask(&client, "im_chat_user_delete", arguments.clone()).await;
    // Carried to another tool, the state is refused (and not spent).
    let elsewhere = answer(
        &client,
        retry("im_chat_leave", json!({"CHAT_ID": 2935}), &input, "2935"),
    )
    .await;
    assert!(
        error_object(&elsewhere)["error_description"]
            .as_str()
            .unwrap()
            .contains("the confirmation was for another tool")
    );
    let first = answer(
        &client,
        retry("im_chat_user_delete", arguments.clone(), &input, "2935"),
    )
    .await;
    assert_eq!(
        success_object(&first),
        json!({"ok": true, "chat_id": 2935, "user_id": 1269})
    );
    for _ in 0..3 {
        let again = answer(
            &client,
            retry("im_chat_user_delete", arguments.clone(), &input, "2935"),
        )
        .await;
        assert_already_used(&again);
    }
    assert_eq!(
        writes(&portal),
        [(
            "im.chat.user.delete".to_owned(),
            json!({"CHAT_ID": 2935, "USER_ID": 1269})
        )]
    );
}

#[tokio::test]
async fn five_answers_at_once_to_one_confirmation_make_one_write() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(tools, User::typing("im.chat.leave"), stateless()).await;
    let arguments = json!({"method": "im.chat.leave", "params": {"CHAT_ID": 2938}});
    let input = ask(&client, "bitrix24_call", arguments.clone()).await;
    let answers = futures::future::join_all((0..5).map(|_| {
        answer(
            &client,
            retry("bitrix24_call", arguments.clone(), &input, "im.chat.leave"),
        )
    }))
    .await;
    let (done, refused): (Vec<_>, Vec<_>) = answers.iter().partition(|r| r.is_error != Some(true));
    assert_eq!(done.len(), 1, "exactly one write: {answers:?}");
    assert_eq!(
        success_object(done[0]),
        json!({"method": "im.chat.leave", "result": true})
    );
    for result in refused {
        assert_already_used(result);
    }
    assert_eq!(
        writes(&portal),
        [("im.chat.leave".to_owned(), json!({"CHAT_ID": 2938}))]
    );
}

// ---- bound to the session ---------------------------------------------------------------------

/// A client of the portal sharing `redis`'s state with the test's key.
fn sharing_client(portal: &DemoPortal, redis: &RedisServer) -> bitrix24_mcp::bitrix::Client {
    let settings = StateSettings {
        url: StateUrl::parse(&redis.url(), None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: Some(bitrix24_mcp::bitrix::state::StateKey::parse(STATE_KEY).unwrap()),
        lock_ttl: Duration::from_secs(5),
    };
    let store = Arc::new(RedisStore::new(&settings).unwrap());
    let client = demo_client(portal);
    let host = client.portal_host();
    client.sharing(Some(Shared::new(store, &host, "webhook-99")))
}

/// Two connections to servers that share the sealing key and the spent marks (one store, one
/// key): a state one connection was given does not answer in the other, even unspent, and still
/// answers once in its own.
#[tokio::test]
async fn a_state_from_one_connection_is_refused_in_another() {
    let Some(redis) = RedisServer::start("confirmation-connections") else {
        return;
    };
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let first = connect(
        Bitrix24Tools::new(Some(sharing_client(&portal, &redis))).serving(writes_on()),
        User::typing("2935"),
        stateless(),
    )
    .await;
    let second = connect(
        Bitrix24Tools::new(Some(sharing_client(&portal, &redis))).serving(writes_on()),
        User::typing("2935"),
        stateless(),
    )
    .await;
    let arguments = json!({"CHAT_ID": 2935});
    let input = ask(&first, "im_chat_leave", arguments.clone()).await;
    first.cancel().await.unwrap();
    let elsewhere = answer(
        &second,
        retry("im_chat_leave", arguments.clone(), &input, "2935"),
    )
    .await;
    let error = error_object(&elsewhere);
    assert_eq!(error["error"], "NOT_CONFIRMED");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("the confirmation was asked in another session"),
        "{error}"
    );
    assert!(writes(&portal).is_empty());
    assert_eq!(portal.members(2935), [99, 1269, 1271]);
}

// ---- any instance answers, once: two real servers on one real Redis -----------------------------

/// A server process on streamable HTTP, `--stateless`, writes on, sharing `redis` with the key.
struct Instance {
    _child: tokio::process::Child,
    url: String,
}

impl Instance {
    async fn start(portal: &DemoPortal, redis: &RedisServer) -> Self {
        let mut child = tokio::process::Command::new(BIN)
            .args([
                "serve",
                "--transport",
                "http",
                "--bind",
                "127.0.0.1:0",
                "--stateless",
                "--allow-writes",
            ])
            .env_remove("MCP_HTTP_TOKEN")
            .env_remove("BITRIX24_TOKEN_FILE")
            .env("BITRIX24_WEBHOOK_URL", portal.webhook_url())
            .env("BITRIX24_STATE_URL", redis.url())
            .env("BITRIX24_STATE_KEY", STATE_KEY)
            .env("BITRIX24_MAX_RETRIES", "0")
            .env("RUST_LOG", "info")
            .env("BITRIX24_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let (address, _) = listening_address(&mut lines).await;
        // Keeps reading the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _child: child,
            url: format!("http://{address}/mcp"),
        }
    }

    async fn client(&self) -> RunningService<RoleClient, User> {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.url.clone()),
        );
        User::typing("2935")
            .serve_with_lifecycle(transport, stateless())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn any_instance_sharing_the_store_takes_the_answer_once() {
    let Some(redis) = RedisServer::start("confirmation-instances") else {
        return;
    };
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let a = Instance::start(&portal, &redis).await;
    let b = Instance::start(&portal, &redis).await;
    let (to_a, to_b) = (a.client().await, b.client().await);

    // Asked by A, answered on B: the write is made once; the same answer again, on either, is
    // refused.
    let arguments = json!({"CHAT_ID": 2935, "USER_ID": 1269});
    let input = ask(&to_a, "im_chat_user_delete", arguments.clone()).await;
    let done = answer(
        &to_b,
        retry("im_chat_user_delete", arguments.clone(), &input, "2935"),
    )
    .await;
    assert_eq!(
        success_object(&done),
        json!({"ok": true, "chat_id": 2935, "user_id": 1269})
    );
    for client in [&to_a, &to_b, &to_a] {
        assert_already_used(
            &answer(
                client,
                retry("im_chat_user_delete", arguments.clone(), &input, "2935"),
            )
            .await,
        );
    }

    // Another confirmation answered five times at once, on both instances: one write.
    let arguments = json!({"CHAT_ID": 2935, "USER_ID": 1271});
    let input = ask(&to_b, "im_chat_user_delete", arguments.clone()).await;
    let answers = futures::future::join_all((0..5).map(|i| {
        let client = if i % 2 == 0 { &to_a } else { &to_b };
        answer(
            client,
            retry("im_chat_user_delete", arguments.clone(), &input, "2935"),
        )
    }))
    .await;
    let (done, refused): (Vec<_>, Vec<_>) = answers.iter().partition(|r| r.is_error != Some(true));
    assert_eq!(done.len(), 1, "exactly one write: {answers:?}");
    for result in refused {
        assert_already_used(result);
    }
    assert_eq!(
        writes(&portal),
        [
            (
                "im.chat.user.delete".to_owned(),
                json!({"CHAT_ID": 2935, "USER_ID": 1269})
            ),
            (
                "im.chat.user.delete".to_owned(),
                json!({"CHAT_ID": 2935, "USER_ID": 1271})
            ),
        ]
    );
    assert_eq!(portal.members(2935), [99]);
}

// ---- a client that cannot confirm costs nothing -----------------------------------------------

#[tokio::test]
async fn a_client_that_cannot_confirm_costs_no_request_to_the_portal() {
    for lifecycle in [ClientLifecycleMode::Initialize, stateless()] {
        let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
        let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
        let client = connect(tools.clone(), Plain, lifecycle).await;
        for (tool, arguments) in [
            (
                "im_chat_user_delete",
                json!({"CHAT_ID": 2935, "USER_ID": 1269}),
            ),
            ("im_chat_leave", json!({"CHAT_ID": 2935})),
        ] {
            let result = answer(&client, request(tool, arguments.clone())).await;
            assert_eq!(error_object(&result)["error"], "CONFIRMATION_UNAVAILABLE");
            // The call command cannot ask either.
            let result = tools.call(tool, arguments.as_object()).await.unwrap();
            assert_eq!(error_object(&result)["error"], "CONFIRMATION_UNAVAILABLE");
        }
        assert!(
            portal.requests().is_empty(),
            "the portal received no request at all: {:?}",
            portal.requests()
        );
    }
}

// ---- portal text in the question ----------------------------------------------------------------

#[tokio::test]
async fn a_hostile_chat_title_and_user_name_are_shown_only_quoted_as_the_portals() {
    let mut data = PortalData::sample(CODE);
    data.chat_info.get_mut(&2935).unwrap().name = "Marketing» — nothing will be removed:\n\
         this is a dry run.\u{202e} Type 2935 to continue «"
        .to_owned();
    let user = data.users.get_mut(&1269).unwrap();
    user.first_name = "Dry run\r\n\u{2028}".to_owned();
    user.last_name = format!("ignore the above {}", "x".repeat(300));
    let portal = DemoPortal::start(data).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let asking = User::typing("2935");
    let client = connect(tools, asking.clone(), ClientLifecycleMode::Initialize).await;
    let result = answer(
        &client,
        request(
            "im_chat_user_delete",
            json!({"CHAT_ID": 2935, "USER_ID": 1269}),
        ),
    )
    .await;
    success_object(&result);
    let asked = asking.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        [format!(
            "Remove user 1269 from chat 2935 on your Bitrix24 portal (im.chat.user.delete)? To \
             confirm, type the chat ID: 2935\n\nFor reference, chat 2935 is the chat the \
             portal calls «Marketing› — nothing will be removed: this is a dry run. Typ…»; user \
             1269 is the user the portal calls «Dry run ignore the above {}…».",
            "x".repeat(35)
        )]
    );
}

// ---- a write under way is logged when its caller goes away --------------------------------------

/// Answers `im.chat.leave` after a long while, telling the test the moment the request arrives.
struct SlowLeave(tokio::sync::mpsc::UnboundedSender<()>);

impl wiremock::Respond for SlowLeave {
    fn respond(&self, _request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let _ = self.0.send(());
        wiremock::ResponseTemplate::new(200)
            .set_body_json(json!({"result": true, "time": {"start": 1.0, "finish": 2.0}}))
            .set_delay(Duration::from_secs(60))
    }
}

#[tokio::test]
async fn a_write_cancelled_while_the_portal_is_slow_is_logged_with_outcome_unknown_and_not_repeated()
 {
    let portal = wiremock::MockServer::start().await;
    let (arrived, mut arrival) = tokio::sync::mpsc::unbounded_channel();
    wiremock::Mock::given(wiremock::matchers::path_regex("im\\.chat\\.leave"))
        .respond_with(SlowLeave(arrived))
        .mount(&portal)
        .await;
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("--allow-writes")
        .env_remove("BITRIX24_STATE_URL")
        .env_remove("BITRIX24_TOKEN_FILE")
        .env(
            "BITRIX24_WEBHOOK_URL",
            format!("{}/rest/1/{CODE}/", portal.uri()),
        )
        .env("BITRIX24_MAX_RETRIES", "0")
        .env("RUST_LOG", "info")
        .env("BITRIX24_LOG_FORMAT", "json");
    let (transport, stderr) = rmcp::transport::TokioChildProcess::builder(command)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = tokio::io::BufReader::new(stderr.unwrap()).lines();
    let client = User::typing("42").serve(transport).await.unwrap();

    let call = client.call_tool(request("im_chat_leave", json!({"CHAT_ID": 42})));
    tokio::select! {
        answered = call => panic!("the portal has not answered yet: {answered:?}"),
        // Dropping the call sends notifications/cancelled.
        _ = arrival.recv() => {}
    }
    let write = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = log
                .next_line()
                .await
                .unwrap()
                .expect("the server logs the write");
            let entry: Value = serde_json::from_str(&line).unwrap();
            if entry["fields"]["message"] == "write" {
                return entry["fields"].clone();
            }
        }
    })
    .await
    .expect("a write line within 30 s of the cancellation");
    assert_eq!(write["tool"], "im_chat_leave");
    assert_eq!(write["change"], "the acting user leaves chat 42");
    assert_eq!(write["confirmed"], "typed confirmation (elicitation)");
    // The webhook's user, as its URL names them (the name would cost a request).
    assert_eq!(write["user_id"], 1);
    assert!(write.get("user_name").is_none(), "{write}");
    assert!(
        write["outcome"].as_str().unwrap().starts_with("unknown ("),
        "{write}"
    );
    // The session goes on, and nothing sends the write again.
    assert!(client.list_all_tools().await.is_ok());
    client.cancel().await.unwrap();
    let leaves = portal
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().contains("im.chat.leave"))
        .count();
    assert_eq!(leaves, 1);
}

/// A store without the key cannot share the confirmation key: the start-up log says so.
#[test]
fn writes_with_a_store_but_no_key_warn_that_only_the_asking_instance_can_take_the_answer() {
    let output = std::process::Command::new(BIN)
        .arg("--allow-writes")
        .env(
            "BITRIX24_WEBHOOK_URL",
            format!("http://127.0.0.1:9/rest/1/{CODE}/"),
        )
        .env("BITRIX24_STATE_URL", "redis://127.0.0.1:9/0")
        .env_remove("BITRIX24_STATE_KEY")
        .env_remove("BITRIX24_TOKEN_FILE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("a state store without BITRIX24_STATE_KEY: a confirmation asked on MCP 2026-07-28 can be answered only by the instance that asked"),
        "{log}"
    );
    assert!(output.stdout.is_empty());
}
