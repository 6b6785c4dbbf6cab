//! Writes: off until the user turns them on; destructive ones only after the user types the
//! confirmation (over both protocol eras: elicitation during the call up to 2025-11-25, the
//! input-required round trip with sealed state on 2026-07-28); never repeated blindly; and
//! `bitrix24_call` under the read policy.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::registry::Writes;
use bitrix24_mcp::tools::{Bitrix24Tools, Selection};
use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams,
    ElicitResult, ElicitationAction, Implementation, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RunningService};
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn writes_on() -> Selection {
    Selection::all().with_writes(Writes {
        allowed: true,
        skip_confirmation: false,
        ..Writes::default()
    })
}

/// What the test user does when asked to confirm.
#[derive(Clone, Debug)]
enum Answer {
    Type(String),
    Decline,
    Cancel,
}

/// An MCP client that offers form elicitation and answers it as told, recording each question.
#[derive(Clone)]
struct User {
    answer: Answer,
    asked: Arc<Mutex<Vec<String>>>,
}

impl User {
    fn new(answer: Answer) -> Self {
        Self {
            answer,
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
        Ok(match &self.answer {
            Answer::Type(value) => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"confirm": value}))
            }
            Answer::Decline => ElicitResult::new(ElicitationAction::Decline),
            Answer::Cancel => ElicitResult::new(ElicitationAction::Cancel),
        })
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("writes-test", "0"),
        )
    }
}

/// Which protocol era the client speaks.
#[derive(Clone, Copy, Debug)]
enum Era {
    /// `initialize`, then `elicitation/create` during the call.
    Classic,
    /// 2026-07-28: `server/discover`, then an input-required result and a retry.
    Stateless,
}

async fn connect<H: ClientHandler + Clone>(
    tools: Bitrix24Tools,
    handler: H,
    era: Era,
) -> RunningService<RoleClient, H> {
    let (server_io, client_io) = tokio::io::duplex(256 * 1024);
    let (reader, writer) = tokio::io::split(server_io);
    tokio::spawn(bitrix24_mcp::transport::stdio::serve_io(
        tools,
        reader,
        writer,
        std::future::pending(),
    ));
    match era {
        Era::Classic => handler.serve(client_io).await.unwrap(),
        Era::Stateless => handler
            .serve_with_lifecycle(
                client_io,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap(),
    }
}

async fn call_tool<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new(tool.to_owned())
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .expect("tools/call answers")
}

async fn demo() -> DemoPortal {
    DemoPortal::start(PortalData::sample(CODE)).await.unwrap()
}

fn write_requests(portal: &DemoPortal) -> Vec<(String, Value)> {
    portal
        .requests()
        .into_iter()
        .filter(|r| {
            r.path.contains("im.chat.user.")
                || r.path.contains("im.chat.leave")
                || r.path.contains("crm.")
        })
        .map(|r| {
            (
                r.path.rsplit('/').next().unwrap().to_owned(),
                serde_json::from_str(&r.body).unwrap(),
            )
        })
        .collect()
}

// ---- writes off --------------------------------------------------------------------------------

#[tokio::test]
async fn without_allow_writes_no_write_tool_is_listed_and_none_runs() {
    let portal = demo().await;
    let client = mcp_client(Bitrix24Tools::new(Some(demo_client(&portal)))).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("_add") || n.contains("_delete") || n.contains("leave"))
    );
    let call = tools.iter().find(|t| t.name == "bitrix24_call").unwrap();
    let annotations = call.annotations.as_ref().unwrap();
    assert_eq!(
        annotations.read_only_hint,
        Some(true),
        "read-only while writes are off"
    );
    let refused = [
        (
            "im_chat_user_add",
            json!({"CHAT_ID": 2935, "USERS": [1300]}),
        ),
        (
            "im_chat_user_delete",
            json!({"CHAT_ID": 2935, "USER_ID": 1269}),
        ),
        ("im_chat_leave", json!({"CHAT_ID": 2935})),
        (
            "bitrix24_call",
            json!({"method": "crm.deal.add", "params": {"fields": {"TITLE": "x"}}}),
        ),
        (
            "bitrix24_call",
            json!({"method": "batch", "params": {"cmd": {"a": "user.get", "b": "im.chat.leave?CHAT_ID=2935"}}}),
        ),
    ];
    for (tool, arguments) in refused {
        let error = error_object(&call_tool(&client, tool, arguments.clone()).await);
        assert_eq!(error["error"], "WRITES_DISABLED", "{tool} {arguments}");
        assert_eq!(
            (error["category"].as_str(), error["retryable"].as_bool()),
            (Some("configuration"), Some(false))
        );
        assert!(error["hint"].as_str().unwrap().contains("--allow-writes"));
    }
    assert!(portal.requests().is_empty(), "nothing was sent");
    // Reads through bitrix24_call work.
    let users = success_object(
        &call_tool(
            &client,
            "bitrix24_call",
            json!({"method": "user.get", "params": {"ID": 1269}}),
        )
        .await,
    );
    assert_eq!(users["method"], "user.get");
    assert_eq!(users["result"][0]["NAME"], "Alexander");
    let members = success_object(
        &call_tool(
            &client,
            "bitrix24_call",
            json!({"method": "im.chat.user.list", "params": {"CHAT_ID": 2935}}),
        )
        .await,
    );
    assert_eq!(members["result"], json!([99, 1269, 1271]));
}

// ---- not destructive: no confirmation -----------------------------------------------------------

#[tokio::test]
async fn im_chat_user_add_sends_exactly_chat_id_users_and_hide_history() {
    let portal = demo().await;
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = mcp_client(tools).await;
    let added = success_object(
        &call_tool(
            &client,
            "im_chat_user_add",
            json!({"CHAT_ID": 2935, "USERS": [1300, "1400", 1300]}),
        )
        .await,
    );
    assert_eq!(
        added,
        json!({"ok": true, "chat_id": 2935, "user_ids": [1300, 1400]})
    );
    success_object(
        &call_tool(
            &client,
            "im_chat_user_add",
            json!({"CHAT_ID": 2938, "USERS": [1269], "HIDE_HISTORY": false}),
        )
        .await,
    );
    assert_eq!(
        write_requests(&portal),
        [
            (
                "im.chat.user.add".to_owned(),
                json!({"CHAT_ID": 2935, "USERS": [1300, 1400], "HIDE_HISTORY": "Y"})
            ),
            (
                "im.chat.user.add".to_owned(),
                json!({"CHAT_ID": 2938, "USERS": [1269], "HIDE_HISTORY": "N"})
            ),
        ]
    );
    assert_eq!(portal.members(2935), [99, 1269, 1271, 1300, 1400]);
    let tools = client.list_all_tools().await.unwrap();
    let add = tools.iter().find(|t| t.name == "im_chat_user_add").unwrap();
    let a = add.annotations.as_ref().unwrap();
    assert_eq!(
        (a.read_only_hint, a.destructive_hint, a.idempotent_hint),
        (Some(false), Some(false), Some(true))
    );
    let leave = tools.iter().find(|t| t.name == "im_chat_leave").unwrap();
    let a = leave.annotations.as_ref().unwrap();
    assert_eq!(
        (a.destructive_hint, a.idempotent_hint),
        (Some(true), Some(false))
    );
    let call = tools.iter().find(|t| t.name == "bitrix24_call").unwrap();
    assert_eq!(
        call.annotations.as_ref().unwrap().destructive_hint,
        Some(true)
    );
}

// ---- destructive: typed confirmation, both eras --------------------------------------------------

#[tokio::test]
async fn the_typed_chat_id_lets_a_removal_through_in_both_eras() {
    for era in [Era::Classic, Era::Stateless] {
        let portal = demo().await;
        let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
        let user = User::new(Answer::Type("2935".into()));
        let client = connect(tools, user.clone(), era).await;
        let removed = success_object(
            &call_tool(
                &client,
                "im_chat_user_delete",
                json!({"CHAT_ID": 2935, "USER_ID": 1269}),
            )
            .await,
        );
        assert_eq!(
            removed,
            json!({"ok": true, "chat_id": 2935, "user_id": 1269}),
            "{era:?}"
        );
        assert_eq!(
            write_requests(&portal),
            [(
                "im.chat.user.delete".to_owned(),
                json!({"CHAT_ID": 2935, "USER_ID": 1269})
            )],
            "{era:?}"
        );
        assert_eq!(portal.members(2935), [99, 1271]);
        let asked = user.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 1, "{era:?}");
        assert!(
            asked[0].contains("Remove user 1269 from chat 2935"),
            "{asked:?}"
        );
        assert!(asked[0].contains("type the chat ID: 2935"), "{asked:?}");
        assert!(
            asked[0].starts_with("Remove user 1269 from chat 2935"),
            "the server's words come first: {asked:?}"
        );
        assert!(
            asked[0].ends_with(
                "2935\n\nFor reference, chat 2935 is the chat the portal calls «Marketing team»; user \
                 1269 is the user the portal calls «Alexander Smith»."
            ),
            "the targets are named, in the portal's quoted words: {asked:?}"
        );
        assert!(!asked[0].contains(CODE));
    }
}

#[tokio::test]
async fn a_wrong_value_a_decline_or_a_cancel_sends_nothing() {
    for era in [Era::Classic, Era::Stateless] {
        for answer in [
            Answer::Type("2936".into()),
            Answer::Type(String::new()),
            Answer::Decline,
            Answer::Cancel,
        ] {
            let portal = demo().await;
            let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
            let client = connect(tools, User::new(answer.clone()), era).await;
            for (tool, arguments) in [
                (
                    "im_chat_user_delete",
                    json!({"CHAT_ID": 2935, "USER_ID": 1269}),
                ),
                ("im_chat_leave", json!({"CHAT_ID": 2935})),
                (
                    "bitrix24_call",
                    json!({"method": "im.chat.leave", "params": {"CHAT_ID": 2935}}),
                ),
            ] {
                let error = error_object(&call_tool(&client, tool, arguments).await);
                assert_eq!(error["error"], "NOT_CONFIRMED", "{era:?} {answer:?} {tool}");
                assert_eq!(error["retryable"], false);
            }
            assert!(write_requests(&portal).is_empty(), "{era:?} {answer:?}");
            assert_eq!(portal.members(2935), [99, 1269, 1271]);
        }
    }
}

#[tokio::test]
async fn bitrix24_call_writes_need_the_method_name_typed() {
    let portal = demo().await;
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let user = User::new(Answer::Type("im.chat.leave".into()));
    let client = connect(tools, user.clone(), Era::Classic).await;
    let left = success_object(
        &call_tool(
            &client,
            "bitrix24_call",
            json!({"method": "im.chat.leave", "params": {"CHAT_ID": 2938}}),
        )
        .await,
    );
    assert_eq!(left, json!({"method": "im.chat.leave", "result": true}));
    assert!(!portal.members(2938).contains(&99));
    assert!(user.asked.lock().unwrap()[0].contains("type the method name: im.chat.leave"));
}

/// A client that answers the stateless era's first round by hand, with another chat's ID in the
/// retried arguments: the sealed state, not the retry, says which chat.
#[tokio::test]
async fn the_target_comes_from_the_sealed_state_not_the_retry() {
    let portal = demo().await;
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(
        tools,
        User::new(Answer::Type("2935".into())),
        Era::Stateless,
    )
    .await;
    let first = client
        .call_tool_once(
            CallToolRequestParams::new("im_chat_user_delete").with_arguments(
                json!({"CHAT_ID": 2935, "USER_ID": 1269})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    let rmcp::model::CallToolResponse::InputRequired(input) = first else {
        panic!("expected an input-required result: {first:?}")
    };
    let mut retry = CallToolRequestParams::new("im_chat_user_delete").with_arguments(
        json!({"CHAT_ID": 2935, "USER_ID": 1271})
            .as_object()
            .unwrap()
            .clone(),
    );
    retry.request_state = input.request_state.clone();
    retry.input_responses = Some(
        [(
            "confirm".to_owned(),
            json!({"action": "accept", "content": {"confirm": "2935"}}),
        )]
        .into_iter()
        .collect(),
    );
    let done = client.call_tool_once(retry).await.unwrap();
    let rmcp::model::CallToolResponse::Complete(done) = done else {
        panic!("{done:?}")
    };
    assert_eq!(
        success_object(&done)["user_id"],
        1269,
        "the sealed user, not the retried one"
    );
    assert_eq!(portal.members(2935), [99, 1271]);
    // A forged state is refused.
    let mut forged = CallToolRequestParams::new("im_chat_user_delete").with_arguments(
        json!({"CHAT_ID": 2935, "USER_ID": 1271})
            .as_object()
            .unwrap()
            .clone(),
    );
    forged.request_state = Some("eyJ0b29sIjoiaW0ifQ.AAAA".into());
    forged.input_responses = retry_answer();
    let refused = client.call_tool_once(forged).await.unwrap();
    let rmcp::model::CallToolResponse::Complete(refused) = refused else {
        panic!()
    };
    assert_eq!(error_object(&refused)["error"], "NOT_CONFIRMED");
    assert_eq!(portal.members(2935), [99, 1271]);
}

fn retry_answer() -> Option<rmcp::model::InputResponses> {
    Some(
        [(
            "confirm".to_owned(),
            json!({"action": "accept", "content": {"confirm": "2935"}}),
        )]
        .into_iter()
        .collect(),
    )
}

/// A client that declares no elicitation.
#[derive(Clone)]
struct Plain;

impl ClientHandler for Plain {}

#[tokio::test]
async fn without_form_elicitation_a_destructive_write_is_unavailable_unless_skipped() {
    let portal = demo().await;
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(tools, Plain, Era::Classic).await;
    let error = error_object(&call_tool(&client, "im_chat_leave", json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "CONFIRMATION_UNAVAILABLE");
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("--skip-write-confirmation")
    );
    assert!(write_requests(&portal).is_empty());
    let skipping = Selection::all().with_writes(Writes {
        allowed: true,
        skip_confirmation: true,
        ..Writes::default()
    });
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(skipping);
    let client = connect(tools, Plain, Era::Classic).await;
    success_object(&call_tool(&client, "im_chat_leave", json!({"CHAT_ID": 2935})).await);
    assert_eq!(write_requests(&portal).len(), 1);
    assert_eq!(portal.members(2935), [1269, 1271]);
}

// ---- never repeated blindly --------------------------------------------------------------------

fn retrying() -> bitrix24_mcp::bitrix::ClientOptions {
    bitrix24_mcp::bitrix::ClientOptions {
        retry: quick_retries(3),
        request_timeout: Duration::from_millis(500),
        ..fast_options()
    }
}

#[tokio::test]
async fn a_write_that_times_out_or_gets_a_500_is_sent_once_with_outcome_unknown() {
    let faults = [
        ResponseTemplate::new(200)
            .set_delay(Duration::from_secs(3))
            .set_body_json(json!({"result": true})),
        ResponseTemplate::new(500).set_body_json(
            json!({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal error"}),
        ),
        ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>"),
    ];
    for fault in faults {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(fault)
            .mount(&server)
            .await;
        let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), retrying())))
            .serving(writes_on());
        let result = tools
            .call(
                "im_chat_user_add",
                json!({"CHAT_ID": 5, "USERS": [7]}).as_object(),
            )
            .await
            .unwrap();
        let error = error_object(&result);
        assert_eq!(error["outcome"], "unknown", "{error}");
        assert_eq!(error["retryable"], false, "{error}");
        assert!(
            error["hint"]
                .as_str()
                .unwrap()
                .contains("check with a read tool"),
            "{error}"
        );
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "sent exactly once: {error}"
        );
    }
}

#[tokio::test]
async fn a_write_refused_for_the_rate_limit_is_retried_and_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": true})))
        .with_priority(2)
        .mount(&server)
        .await;
    let tools =
        Bitrix24Tools::new(Some(webhook_client(&server.uri(), retrying()))).serving(writes_on());
    let result = tools
        .call(
            "im_chat_user_add",
            json!({"CHAT_ID": 5, "USERS": [7]}).as_object(),
        )
        .await
        .unwrap();
    assert_eq!(success_object(&result)["ok"], true);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

// ---- bitrix24_call's limits ---------------------------------------------------------------------

#[tokio::test]
async fn bad_method_names_oversized_params_and_results_get_their_errors() {
    let server = MockServer::start().await;
    let big: Vec<Value> = (0..3000)
        .map(|i| json!({"ID": i, "TITLE": "x".repeat(40)}))
        .collect();
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"result": big, "total": 3000, "next": 50})),
        )
        .mount(&server)
        .await;
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
    for (arguments, expected) in [
        (
            json!({"method": "../profile"}),
            "method must be a REST method name",
        ),
        (json!({"method": "crm.deal.list?x=1"}), "method must be"),
        (json!({"method": "x".repeat(101)}), "method must be"),
        (
            json!({"method": "crm.deal.list", "params": [1]}),
            "params must be a JSON object",
        ),
        (
            json!({"method": "crm.deal.list", "params": {"x": "y".repeat(70_000)}}),
            "at most 65536",
        ),
        (
            json!({"method": "batch", "params": {"cmd": {"a": "batch?cmd[b]=scope"}}}),
            "a batch inside a batch",
        ),
    ] {
        let error = error_object(
            &tools
                .call("bitrix24_call", arguments.as_object())
                .await
                .unwrap(),
        );
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{arguments}");
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{error}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    let error = error_object(
        &tools
            .call(
                "bitrix24_call",
                json!({"method": "crm.deal.list"}).as_object(),
            )
            .await
            .unwrap(),
    );
    assert_eq!(error["error"], "RESULT_TOO_LARGE");
    assert!(error["hint"].as_str().unwrap().contains("select"));
}

#[tokio::test]
async fn a_batchs_command_errors_are_reported() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {
            "result": {"a": {"ID": 1}},
            "result_error": {"b": {"error": "ACCESS_DENIED", "error_description": "denied"}},
            "result_total": [], "result_next": [], "result_time": {}
        }})))
        .mount(&server)
        .await;
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
    let answer = success_object(
        &tools
            .call("bitrix24_call", json!({"method": "batch", "params": {"cmd": {"a": "user.get?ID=1", "b": "crm.deal.get?ID=2"}}}).as_object())
            .await
            .unwrap(),
    );
    assert_eq!(
        answer["command_errors"],
        json!({"b": {"error": "ACCESS_DENIED", "error_description": "denied"}})
    );
}
