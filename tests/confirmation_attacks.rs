//! A hostile client against the typed confirmation: a retry whose arguments differ from the
//! sealed ones, tampered states, lookalike and mistyped values, a form answered with extra fields
//! or the wrong type, and the state store going away while a state is spent. Each attack must
//! end in a refusal (or the sealed write, exactly) and send the portal nothing else.

mod common;

use std::sync::Arc;
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
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::{Value, json};

fn writes_on() -> Selection {
    Selection::all().with_writes(Writes {
        allowed: true,
        skip_confirmation: false,
        ..Writes::default()
    })
}

/// A client offering form elicitation that answers every form with `content`.
#[derive(Clone)]
struct Answering {
    content: Value,
}

impl ClientHandler for Answering {
    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(self.content.clone()))
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("confirmation-attacks", "0"),
        )
    }
}

fn stateless() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

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

/// A retry carrying `state` and `response` as the answer to the form.
fn retry_raw(tool: &str, arguments: Value, state: &str, response: Value) -> CallToolRequestParams {
    let mut retry = request(tool, arguments);
    retry.request_state = Some(state.to_owned());
    retry.input_responses = Some([("confirm".to_owned(), response)].into_iter().collect());
    retry
}

fn typed(value: Value) -> Value {
    json!({"action": "accept", "content": {"confirm": value}})
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

fn assert_refused(result: &CallToolResult, code: &str, words: &str) {
    let error = error_object(result);
    assert_eq!(error["error"], code, "{error}");
    assert!(
        error["error_description"].as_str().unwrap().contains(words),
        "{error}"
    );
}

#[tokio::test]
async fn a_retry_with_other_arguments_makes_exactly_the_sealed_write() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(tools, Answering { content: json!({}) }, stateless()).await;
    let sealed = json!({"CHAT_ID": 2935, "USER_ID": 1269});
    let input = ask(&client, "im_chat_user_delete", sealed).await;
    let state = input.request_state.clone().unwrap();
    // Another user in the retry: the sealed call is what runs.
    let done = answer(
        &client,
        retry_raw(
            "im_chat_user_delete",
            json!({"CHAT_ID": 2935, "USER_ID": 1271}),
            &state,
            typed(json!("2935")),
        ),
    )
    .await;
    assert_eq!(
        success_object(&done),
        json!({"ok": true, "chat_id": 2935, "user_id": 1269})
    );
    // A state for one chat answered with another chat's ID, typed to match the retry: refused.
    let input = ask(
        &client,
        "im_chat_user_delete",
        json!({"CHAT_ID": 2935, "USER_ID": 1271}),
    )
    .await;
    let refused = answer(
        &client,
        retry_raw(
            "im_chat_user_delete",
            json!({"CHAT_ID": 2937, "USER_ID": 1271}),
            input.request_state.as_deref().unwrap(),
            typed(json!("2937")),
        ),
    )
    .await;
    assert_refused(&refused, "NOT_CONFIRMED", "does not match");
    assert_eq!(
        writes(&portal),
        [(
            "im.chat.user.delete".to_owned(),
            json!({"CHAT_ID": 2935, "USER_ID": 1269})
        )]
    );
}

#[tokio::test]
async fn tampered_states_are_refused_without_spending_the_real_one() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(tools, Answering { content: json!({}) }, stateless()).await;
    let arguments = json!({"CHAT_ID": 2935});
    let input = ask(&client, "im_chat_leave", arguments.clone()).await;
    let state = input.request_state.clone().unwrap();
    let (payload, tag) = state.split_once('.').unwrap();
    let standard = |s: &str| s.replace('-', "+").replace('_', "/");
    let variants = [
        format!("{state}="),
        format!("{payload}==.{tag}"),
        format!("{state}.x"),
        format!("{state}\n"),
        format!(" {state}"),
        format!("{}.{}", standard(payload), standard(tag)),
        format!("{payload}.{tag}A"),
        format!("{payload}A.{tag}"),
        format!("{tag}.{payload}"),
        payload.to_owned(),
        format!("{payload}."),
        String::new(),
        ".".to_owned(),
        "x".repeat(100_000),
    ];
    for variant in &variants {
        if variant == &state {
            continue;
        }
        let result = answer(
            &client,
            retry_raw(
                "im_chat_leave",
                arguments.clone(),
                variant,
                typed(json!("2935")),
            ),
        )
        .await;
        let error = error_object(&result);
        assert_eq!(error["error"], "NOT_CONFIRMED", "{variant:.80}: {error}");
    }
    // Sealed for im_chat_leave, answered as another destructive tool: refused.
    let other = answer(
        &client,
        retry_raw(
            "im_chat_user_delete",
            json!({"CHAT_ID": 2935, "USER_ID": 1269}),
            &state,
            typed(json!("2935")),
        ),
    )
    .await;
    assert_refused(&other, "NOT_CONFIRMED", "another tool");
    assert!(writes(&portal).is_empty());
    // None of that spent the real state: it still answers, once.
    let done = answer(
        &client,
        retry_raw(
            "im_chat_leave",
            arguments.clone(),
            &state,
            typed(json!("2935")),
        ),
    )
    .await;
    assert_eq!(success_object(&done)["ok"], true, "{done:?}");
    assert_eq!(writes(&portal).len(), 1);
}

/// An answer without a state is no answer: the call is asked, and nothing is written. A state
/// without an answer is spent and refused.
#[tokio::test]
async fn an_answer_without_its_state_or_a_state_without_an_answer_writes_nothing() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(tools, Answering { content: json!({}) }, stateless()).await;
    let arguments = json!({"CHAT_ID": 2935});
    let mut unasked = request("im_chat_leave", arguments.clone());
    unasked.input_responses = Some(
        [("confirm".to_owned(), typed(json!("2935")))]
            .into_iter()
            .collect(),
    );
    match client.call_tool_once(unasked).await.unwrap() {
        CallToolResponse::InputRequired(input) => assert!(input.request_state.is_some()),
        other => panic!("expected to be asked: {other:?}"),
    }
    let input = ask(&client, "im_chat_leave", arguments.clone()).await;
    let mut bare = request("im_chat_leave", arguments.clone());
    bare.request_state = input.request_state.clone();
    let result = answer(&client, bare).await;
    assert_refused(&result, "NOT_CONFIRMED", "no answer");
    assert!(writes(&portal).is_empty());
}

#[tokio::test]
async fn lookalike_mistyped_and_malformed_answers_are_refused() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(tools, Answering { content: json!({}) }, stateless()).await;
    let arguments = json!({"CHAT_ID": 2935});
    let answers = [
        typed(json!("２９３５")),
        typed(json!("2935\u{200b}")),
        typed(json!("\u{2066}2935")),
        typed(json!("2935.0")),
        typed(json!("+2935")),
        typed(json!("02935")),
        typed(json!("2935 2935")),
        typed(json!(2935)),
        typed(json!(["2935"])),
        typed(json!(null)),
        json!({"action": "decline", "content": {"confirm": "2935"}}),
        json!({"action": "cancel", "content": {"confirm": "2935"}}),
        json!({"action": "ACCEPT", "content": {"confirm": "2935"}}),
        json!({"action": "accept", "content": {"CONFIRM": "2935"}}),
        json!({"action": "accept", "content": "2935"}),
        json!({"content": {"confirm": "2935"}}),
        json!("2935"),
    ];
    for response in answers {
        let input = ask(&client, "im_chat_leave", arguments.clone()).await;
        let result = answer(
            &client,
            retry_raw(
                "im_chat_leave",
                arguments.clone(),
                input.request_state.as_deref().unwrap(),
                response.clone(),
            ),
        )
        .await;
        let error = error_object(&result);
        assert_eq!(error["error"], "NOT_CONFIRMED", "{response}: {error}");
    }
    // The method name of bitrix24_call, in another case: refused too.
    let arguments = json!({"method": "im.chat.leave", "params": {"CHAT_ID": 2935}});
    let input = ask(&client, "bitrix24_call", arguments.clone()).await;
    let result = answer(
        &client,
        retry_raw(
            "bitrix24_call",
            arguments,
            input.request_state.as_deref().unwrap(),
            typed(json!("IM.CHAT.LEAVE")),
        ),
    )
    .await;
    assert_refused(&result, "NOT_CONFIRMED", "does not match");
    assert!(writes(&portal).is_empty());
}

#[tokio::test]
async fn an_elicitation_answered_with_extra_fields_or_the_wrong_type() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    for content in [
        json!({"confirm": 2935}),
        json!({"confirm": ["2935"]}),
        json!({"confirm": "２９３５"}),
        json!({"Confirm": "2935"}),
    ] {
        let client = connect(
            tools.clone(),
            Answering {
                content: content.clone(),
            },
            ClientLifecycleMode::Initialize,
        )
        .await;
        let result = call_tool(&client, "im_chat_leave", json!({"CHAT_ID": 2935})).await;
        assert_refused(&result, "NOT_CONFIRMED", "");
    }
    assert!(writes(&portal).is_empty());
    // Extra fields change nothing: the write is the one asked about.
    let client = connect(
        tools,
        Answering {
            content: json!({"confirm": "2935", "CHAT_ID": 1, "USER_ID": 1}),
        },
        ClientLifecycleMode::Initialize,
    )
    .await;
    let done = call_tool(
        &client,
        "im_chat_user_delete",
        json!({"CHAT_ID": 2935, "USER_ID": 1269}),
    )
    .await;
    assert_eq!(success_object(&done)["user_id"], 1269, "{done:?}");
    assert_eq!(
        writes(&portal),
        [(
            "im.chat.user.delete".to_owned(),
            json!({"CHAT_ID": 2935, "USER_ID": 1269})
        )]
    );
}

async fn call_tool<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
    answer(client, request(tool, arguments)).await
}

/// The store stopped between the question and the answer: the spend cannot be recorded, so
/// nothing is sent; once the store is back the same state answers, once.
#[tokio::test]
async fn a_store_down_while_spending_refuses_and_sends_nothing() {
    let Some(mut redis) = RedisServer::start("confirmation-attacks-down") else {
        return;
    };
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let settings = StateSettings {
        url: StateUrl::parse(&redis.url(), None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: Some(bitrix24_mcp::bitrix::state::StateKey::parse(STATE_KEY).unwrap()),
        lock_ttl: Duration::from_secs(5),
    };
    let store = Arc::new(RedisStore::new(&settings).unwrap());
    let client = demo_client(&portal);
    let host = client.portal_host();
    let client = client.sharing(Some(Shared::new(store, &host, "webhook-99")));
    let tools = Bitrix24Tools::new(Some(client)).serving(writes_on());
    let mcp = connect(tools, Answering { content: json!({}) }, stateless()).await;
    let arguments = json!({"CHAT_ID": 2935});
    let input = ask(&mcp, "im_chat_leave", arguments.clone()).await;
    let state = input.request_state.clone().unwrap();
    redis.stop();
    let refused = answer(
        &mcp,
        retry_raw(
            "im_chat_leave",
            arguments.clone(),
            &state,
            typed(json!("2935")),
        ),
    )
    .await;
    assert_eq!(
        error_object(&refused)["error"],
        "STATE_UNAVAILABLE",
        "{refused:?}"
    );
    assert!(writes(&portal).is_empty());
    redis.restart();
    let done = answer(
        &mcp,
        retry_raw(
            "im_chat_leave",
            arguments.clone(),
            &state,
            typed(json!("2935")),
        ),
    )
    .await;
    assert_eq!(success_object(&done)["ok"], true, "{done:?}");
    let again = answer(
        &mcp,
        retry_raw("im_chat_leave", arguments, &state, typed(json!("2935"))),
    )
    .await;
    assert_refused(&again, "NOT_CONFIRMED", "already used");
    assert_eq!(writes(&portal).len(), 1);
}

/// A refusal spends nothing: otherwise any client could fill the book of spent confirmations
/// with answers it mistypes on purpose (a `bitrix24_call` question costs no portal request), and
/// a full book refuses every user's confirmation. Only a write spends its state; a state answered
/// wrongly, declined or left unanswered can still be answered right, once.
#[tokio::test]
async fn only_a_write_spends_its_state() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes_on());
    let client = connect(tools, Answering { content: json!({}) }, stateless()).await;
    let arguments = json!({"CHAT_ID": 2935});
    let input = ask(&client, "im_chat_leave", arguments.clone()).await;
    let state = input.request_state.clone().unwrap();
    for wrong in [
        typed(json!("2936")),
        json!({"action": "decline"}),
        json!({"action": "cancel"}),
    ] {
        let result = answer(
            &client,
            retry_raw("im_chat_leave", arguments.clone(), &state, wrong),
        )
        .await;
        let error = error_object(&result);
        assert_eq!(error["error"], "NOT_CONFIRMED", "{error}");
        assert!(
            !error["error_description"]
                .as_str()
                .unwrap()
                .contains("already used"),
            "{error}"
        );
    }
    let mut bare = request("im_chat_leave", arguments.clone());
    bare.request_state = Some(state.clone());
    assert_refused(&answer(&client, bare).await, "NOT_CONFIRMED", "no answer");
    assert!(writes(&portal).is_empty());
    let done = answer(
        &client,
        retry_raw(
            "im_chat_leave",
            arguments.clone(),
            &state,
            typed(json!("2935")),
        ),
    )
    .await;
    assert_eq!(success_object(&done)["ok"], true, "{done:?}");
    let again = answer(
        &client,
        retry_raw("im_chat_leave", arguments, &state, typed(json!("2935"))),
    )
    .await;
    assert_refused(&again, "NOT_CONFIRMED", "already used");
    assert_eq!(writes(&portal).len(), 1);
}
