//! `bitrix24_call`'s read policy against the demo portal: what the portal would read is what is
//! classified (parameter names colliding once case-folded are refused at any depth; every command
//! of every `batch` key counts), methods named like reads that change data are writes (refused
//! with writes off, never retried), and the confirmation names every write whatever the padding.
//! Each case asserts exactly which requests reached the portal.

mod common;

use std::time::Duration;

use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::call::READ_LOOKING_WRITERS;
use bitrix24_mcp::tools::registry::Writes;
use bitrix24_mcp::tools::{Bitrix24Tools, Selection};
use common::elicit::{User, connect};
use common::*;
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::{Map, Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn writes(allowed: bool, skip_confirmation: bool) -> Selection {
    Selection::all().with_writes(Writes {
        allowed,
        skip_confirmation,
        ..Writes::default()
    })
}

async fn call(client: &RunningService<RoleClient, User>, arguments: Value) -> CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new("bitrix24_call")
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .expect("tools/call answers")
}

async fn demo() -> DemoPortal {
    DemoPortal::start(PortalData::sample(CODE)).await.unwrap()
}

/// The REST requests the portal received: the method (last path segment) and the JSON body.
fn received(portal: &DemoPortal) -> Vec<(String, Value)> {
    portal
        .requests()
        .into_iter()
        .map(|r| {
            (
                r.path.rsplit('/').next().unwrap().to_owned(),
                serde_json::from_str(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// `params` with the two keys in this order (JSON objects keep their order here).
fn params(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<Map<String, Value>>(),
    )
}

/// Every way of hiding a second `cmd`: both orders, every other spelling.
fn smuggling_batches() -> Vec<Value> {
    let read = json!({"a": "scope"});
    let write = json!({"b": "im.chat.leave?CHAT_ID=2938"});
    let mut all = Vec::new();
    for other in ["CMD", "Cmd", "cMD", "cmD"] {
        all.push(params(&[("cmd", read.clone()), (other, write.clone())]));
        all.push(params(&[(other, write.clone()), ("cmd", read.clone())]));
    }
    all.push(params(&[("CMD", read.clone()), ("Cmd", write.clone())]));
    all
}

#[tokio::test]
async fn a_second_spelling_of_cmd_is_refused_before_any_request_with_writes_off_or_on() {
    for selection in [
        writes(false, false),
        writes(true, false),
        writes(true, true),
    ] {
        let portal = demo().await;
        let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(selection.clone());
        let user = User::typing(Some("batch"));
        let client = connect(tools, user.clone()).await;
        for batch in smuggling_batches() {
            let error =
                error_object(&call(&client, json!({"method": "batch", "params": batch})).await);
            assert_eq!(error["error"], "INVALID_ARGUMENT", "{batch}: {error}");
            let text = error["error_description"].as_str().unwrap();
            assert!(text.starts_with("params has both \""), "{text}");
            assert!(text.contains("without regard to case"), "{text}");
        }
        assert_eq!(received(&portal), [], "{selection:?}");
        assert!(user.questions().is_empty(), "{selection:?}");
        assert_eq!(portal.members(2938), [99, 1271, 1400]);
    }
}

#[tokio::test]
async fn any_single_spelling_of_cmd_is_classified() {
    let portal = demo().await;
    let client = connect(
        Bitrix24Tools::new(Some(demo_client(&portal))),
        User::typing(None),
    )
    .await;
    for key in ["cmd", "CMD", "Cmd", "cMD"] {
        let batch = params(&[(
            key,
            json!({"a": "scope", "b": "im.chat.leave?CHAT_ID=2938"}),
        )]);
        let error = error_object(&call(&client, json!({"method": "batch", "params": batch})).await);
        assert_eq!(error["error"], "WRITES_DISABLED", "{key}: {error}");
    }
    assert_eq!(received(&portal), []);
    // With writes on, the question names the write whichever spelling carried it.
    let user = User::typing(None);
    let client = connect(
        Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes(true, false)),
        user.clone(),
    )
    .await;
    let batch = params(&[(
        "cMD",
        json!({"a": "scope", "b": "im.chat.leave?CHAT_ID=2938"}),
    )]);
    let error = error_object(&call(&client, json!({"method": "batch", "params": batch})).await);
    assert_eq!(error["error"], "NOT_CONFIRMED", "{error}");
    assert_eq!(
        user.questions(),
        [
            "Call batch on your Bitrix24 portal: 1 read (scope) and 1 write:\n- \"b\": im.chat.leave \
          CHAT_ID=\"2938\"\nThe writes may change data. To confirm, type the method name: batch"
        ]
    );
    assert_eq!(received(&portal), []);
}

#[tokio::test]
async fn names_colliding_once_folded_are_refused_at_every_depth() {
    let portal = demo().await;
    let client = connect(
        Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes(true, true)),
        User::typing(None),
    )
    .await;
    for (arguments, expected) in [
        // Two commands whose keys fold alike.
        (
            json!({"method": "batch", "params": {"cmd": {"a": "scope", "A": "im.chat.leave?CHAT_ID=2938"}}}),
            "params.\"cmd\" has both \"a\" and \"A\"",
        ),
        // Two spellings of halt.
        (
            json!({"method": "batch", "params": {"cmd": {"a": "scope"}, "halt": 0, "Halt": 1}}),
            "params has both \"halt\" and \"Halt\"",
        ),
        // A command's query naming its target twice.
        (
            json!({"method": "batch", "params": {"cmd": {"a": "im.chat.leave?CHAT_ID=2935&chat_id=2938"}}}),
            "the params.cmd command \"a\" has both \"CHAT_ID\" and \"chat_id\"",
        ),
        (
            json!({"method": "batch", "params": {"cmd": ["im.chat.leave?CHAT_ID=2935&CHAT_ID=2938"]}}),
            "the params.cmd command \"0\" has both \"CHAT_ID\" and \"CHAT_ID\"",
        ),
        (
            json!({"method": "batch", "params": {"cmd": {"a": "im.chat.leave?CHAT_ID=2935&CHAT.ID=2938"}}}),
            "has both \"CHAT_ID\" and \"CHAT.ID\"",
        ),
        // A plain call: the top level, and deep inside a read's filter.
        (
            json!({"method": "im.chat.leave", "params": {"CHAT_ID": 2935, "chat_id": 2938}}),
            "params has both \"CHAT_ID\" and \"chat_id\"",
        ),
        (
            json!({"method": "crm.deal.list", "params": {"filter": {"OR": [{"ID": 1, "id": 2}]}}}),
            "params.\"filter\".\"OR\"[0] has both \"ID\" and \"id\"",
        ),
    ] {
        let error = error_object(&call(&client, arguments.clone()).await);
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{arguments}: {error}");
        let text = error["error_description"].as_str().unwrap();
        assert!(text.contains(expected), "{arguments}: {text}");
    }
    assert_eq!(received(&portal), []);
    assert_eq!(portal.members(2935), [99, 1269, 1271]);
    assert_eq!(portal.members(2938), [99, 1271, 1400]);
}

#[tokio::test]
async fn commands_in_lists_and_query_strings_are_classified_and_other_forms_refused() {
    let portal = demo().await;
    let client = connect(
        Bitrix24Tools::new(Some(demo_client(&portal))),
        User::typing(None),
    )
    .await;
    for cmd in [
        json!(["scope", "im.chat.leave?CHAT_ID=2938"]),
        json!({"a": "user.get?ID=1", "b": "IM.CHAT.LEAVE?CHAT_ID=2938"}),
        json!({"a": "event.offline.get?clear=1"}),
    ] {
        let error = error_object(
            &call(
                &client,
                json!({"method": "batch", "params": {"cmd": cmd, "halt": 1}}),
            )
            .await,
        );
        assert_eq!(error["error"], "WRITES_DISABLED", "{cmd}: {error}");
    }
    for (params, expected) in [
        (
            json!({"cmd": {"a": {"method": "im.chat.leave", "params": {"CHAT_ID": 2938}}}}),
            "must be a string",
        ),
        (
            json!({"cmd": [["im.chat.leave", {"CHAT_ID": 2938}]]}),
            "must be a string",
        ),
        (
            json!({"cmd": {"a": "im.chat.leave.json?CHAT_ID=2938"}}),
            "format suffix",
        ),
        (
            json!({"cmd": {"a": "/im.chat.leave?CHAT_ID=2938"}}),
            "must be a string",
        ),
        (
            json!({"cmd": {"a": "Batch?cmd[b]=im.chat.leave"}}),
            "a batch inside a batch",
        ),
        (
            json!({"cmd": {"a": "scope"}, "cmd2": {"b": "im.chat.leave"}}),
            "takes params.cmd and params.halt",
        ),
    ] {
        let error =
            error_object(&call(&client, json!({"method": "batch", "params": params})).await);
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{params}: {error}");
        let text = error["error_description"].as_str().unwrap();
        assert!(text.contains(expected), "{params}: {text}");
    }
    let error = error_object(
        &call(
            &client,
            json!({"method": "batch.json", "params": {"cmd": {"b": "im.chat.leave?CHAT_ID=2938"}}}),
        )
        .await,
    );
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("format suffix"),
        "{error}"
    );
    assert_eq!(received(&portal), []);
    // A batch of reads goes, exactly as given.
    let reads = json!({"Cmd": ["user.get?ID=1", "crm.deal.list?filter[ID]=5"], "halt": 1});
    call(&client, json!({"method": "batch", "params": reads})).await;
    assert_eq!(received(&portal), [("batch".to_owned(), reads)]);
}

#[tokio::test]
async fn every_read_looking_writer_is_refused_with_writes_off() {
    assert!(READ_LOOKING_WRITERS.contains(&"event.offline.get"));
    assert!(READ_LOOKING_WRITERS.contains(&"disk.file.getexternallink"));
    let portal = demo().await;
    let client = connect(
        Bitrix24Tools::new(Some(demo_client(&portal))),
        User::typing(None),
    )
    .await;
    for listed in READ_LOOKING_WRITERS {
        for spelled in [
            listed.to_owned(),
            camel(listed),
            listed.to_ascii_uppercase(),
        ] {
            let error = error_object(
                &call(&client, json!({"method": spelled, "params": {"id": 10}})).await,
            );
            assert_eq!(error["error"], "WRITES_DISABLED", "{spelled}: {error}");
            let error = error_object(
                &call(&client, json!({"method": "batch", "params": {"cmd": {"a": format!("{spelled}?id=10")}}}))
                    .await,
            );
            assert_eq!(
                error["error"], "WRITES_DISABLED",
                "batch {spelled}: {error}"
            );
        }
    }
    assert_eq!(received(&portal), []);
}

/// The docs' spelling: `disk.file.getExternalLink`.
fn camel(method: &str) -> String {
    method.replace("getexternallink", "getExternalLink")
}

#[tokio::test]
async fn a_read_looking_writer_that_times_out_is_sent_once_with_outcome_unknown() {
    let slow = ResponseTemplate::new(200)
        .set_delay(Duration::from_secs(3))
        .set_body_json(json!({"result": true}));
    let options = bitrix24_mcp::bitrix::ClientOptions {
        retry: quick_retries(3),
        request_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    for listed in READ_LOOKING_WRITERS {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(slow.clone())
            .mount(&server)
            .await;
        let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), options)))
            .serving(writes(true, true));
        let result = tools
            .call(
                "bitrix24_call",
                json!({"method": camel(listed), "params": {"id": 10}}).as_object(),
            )
            .await
            .unwrap();
        let error = error_object(&result);
        assert_eq!(error["outcome"], "unknown", "{listed}: {error}");
        assert_eq!(error["retryable"], false, "{listed}: {error}");
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "{listed} sent exactly once");
        assert!(
            requests[0]
                .url
                .path()
                .ends_with(&format!("/{}", camel(listed)))
        );
    }
    // The same fault on a true read is retried: the count above is the policy's doing.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(slow)
        .mount(&server)
        .await;
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), options)));
    tools
        .call(
            "bitrix24_call",
            json!({"method": "disk.file.get", "params": {"id": 10}}).as_object(),
        )
        .await
        .unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn the_question_names_every_write_of_a_padded_batch_and_nothing_goes_unconfirmed() {
    let mut cmd = Map::new();
    for i in 0..20 {
        cmd.insert(
            format!("u{i:02}"),
            json!(format!("user.get?ID={}&pad={}", 1269, "x".repeat(200))),
        );
    }
    cmd.insert("leave".into(), json!("im.chat.leave?CHAT_ID=2938"));
    let arguments = json!({"method": "batch", "params": {"cmd": cmd}});
    let portal = demo().await;
    let declining = User::typing(None);
    let client = connect(
        Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes(true, false)),
        declining.clone(),
    )
    .await;
    let error = error_object(&call(&client, arguments.clone()).await);
    assert_eq!(error["error"], "NOT_CONFIRMED", "{error}");
    assert_eq!(
        declining.questions(),
        [
            "Call batch on your Bitrix24 portal: 20 reads (user.get ×20) and 1 write:\n- \"leave\": \
          im.chat.leave CHAT_ID=\"2938\"\nThe writes may change data. To confirm, type the method \
          name: batch"
        ]
    );
    assert_eq!(received(&portal), []);
    // Typed: the batch goes once, exactly as asked about.
    let typing = User::typing(Some("batch"));
    let client = connect(
        Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes(true, false)),
        typing.clone(),
    )
    .await;
    call(&client, arguments.clone()).await;
    assert_eq!(typing.questions().len(), 1);
    assert_eq!(
        received(&portal),
        [("batch".to_owned(), arguments["params"].clone())]
    );
}

#[tokio::test]
async fn padding_and_forged_lines_cannot_hide_a_deal_update() {
    let portal = demo().await;
    let user = User::typing(None);
    let client = connect(
        Bitrix24Tools::new(Some(demo_client(&portal))).serving(writes(true, false)),
        user.clone(),
    )
    .await;
    let arguments = json!({"method": "crm.deal.update", "params": {
        "fields": {"COMMENTS": format!("{}\nNothing will be changed: this is a dry run.", " ".repeat(400)),
                   "STAGE_ID": "LOSE", "OPPORTUNITY": 0},
        "id": 1663,
    }});
    call(&client, arguments).await;
    let asked = user.questions();
    assert_eq!(asked.len(), 1);
    let question = &asked[0];
    assert_eq!(question.lines().count(), 1, "{question}");
    assert!(
        question.starts_with(
            "Call crm.deal.update on your Bitrix24 portal with the parameters id=1663, \
             fields[STAGE_ID]=\"LOSE\", fields[COMMENTS]=\""
        ),
        "{question}"
    );
    assert!(
        question.contains("(444 characters), fields[OPPORTUNITY]=0? It may change data."),
        "{question}"
    );
    assert_eq!(received(&portal), []);
}
