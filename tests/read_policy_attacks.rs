//! `bitrix24_call` attacked as a hostile client would: batch queries whose parameter names PHP
//! reads otherwise than they are written, and confirmations padded so that a write's target
//! would fall out of the question. Each case asserts the question asked and exactly which
//! requests reached the demo portal.

mod common;

use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::Bitrix24Tools;
use bitrix24_mcp::tools::Selection;
use bitrix24_mcp::tools::registry::Writes;
use common::elicit::{User, connect};
use common::*;
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::{Map, Value, json};

/// A demo portal and a client of a server with writes on and confirmation asked.
async fn setup() -> (DemoPortal, RunningService<RoleClient, User>, User) {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal))).serving(
        Selection::all().with_writes(Writes {
            allowed: true,
            skip_confirmation: false,
            ..Writes::default()
        }),
    );
    let user = User::default();
    let client = connect(tools, user.clone()).await;
    (portal, client, user)
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

#[tokio::test]
async fn query_names_that_php_reads_as_another_name_are_refused() {
    let (portal, client, user) = setup().await;
    // Each command names chat 2935 plainly and 2938 in a spelling that PHP's parse_url and
    // parse_str turn into CHAT_ID (or into an array that replaces it), or hides a parameter
    // behind a fragment that parse_url drops.
    for (command, expected) in [
        // An unmatched `[` becomes `_`: the portal reads CHAT_ID=2938.
        ("im.chat.leave?CHAT_ID=2935&CHAT[ID=2938", "\"CHAT[ID\""),
        // A name is cut at NUL: CHAT_ID again.
        (
            "im.chat.leave?CHAT_ID=2935&CHAT_ID%00x=2938",
            "\"CHAT_ID\\u0000x\"",
        ),
        // Text after `]` is dropped: CHAT_ID becomes an array.
        (
            "im.chat.leave?CHAT_ID=2935&CHAT_ID[0]x=2938",
            "\"CHAT_ID[0]x\"",
        ),
        // A dot in a name becomes `_`, and a leading space is dropped.
        ("im.chat.leave?X.Y=1", "\"X.Y\""),
        ("im.chat.leave?+CHAT_ID=2938", "\" CHAT_ID\""),
        // An empty name is dropped.
        ("im.chat.leave?[x]=1", "\"[x]\""),
    ] {
        let arguments = json!({"method": "batch", "params": {"cmd": {"a": command}}});
        let error = error_object(&call(&client, arguments).await);
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{command}: {error}");
        let text = error["error_description"].as_str().unwrap();
        assert!(text.contains(expected), "{command}: {text}");
        assert!(text.contains("Bitrix24 would read"), "{command}: {text}");
    }
    for (command, expected) in [
        // parse_url drops everything after `#`: the question would show a CHAT_ID never sent.
        ("im.chat.leave?x=1#&CHAT_ID=2935", "#"),
        // parse_url turns control characters into `_`: CHAT\x01ID is read as CHAT_ID.
        (
            "im.chat.leave?CHAT_ID=2935&CHAT\u{1}ID=2938",
            "control character",
        ),
    ] {
        let arguments = json!({"method": "batch", "params": {"cmd": [command]}});
        let error = error_object(&call(&client, arguments).await);
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{command}: {error}");
        let text = error["error_description"].as_str().unwrap();
        assert!(text.contains(expected), "{command}: {text}");
    }
    assert!(user.questions().is_empty(), "{:?}", user.questions());
    assert_eq!(portal.requests().len(), 0);
    assert_eq!(portal.members(2938), [99, 1271, 1400]);
}

/// 60 parameters named like targets, with long values, before the real target.
fn padding() -> Vec<(String, String)> {
    (0..60)
        .map(|i| (format!("PADDING_{i:02}_ID"), "p".repeat(80)))
        .collect()
}

#[tokio::test]
async fn padding_cannot_push_a_target_out_of_the_question() {
    let (portal, client, user) = setup().await;
    // A batch command.
    let mut query: Vec<String> = padding().iter().map(|(k, v)| format!("{k}={v}")).collect();
    query.push("CHAT_ID=2938".to_owned());
    let command = format!("im.chat.leave?{}", query.join("&"));
    let arguments = json!({"method": "batch", "params": {"cmd": {"a": command}}});
    let error = error_object(&call(&client, arguments).await);
    assert_eq!(error["error"], "NOT_CONFIRMED", "{error}");
    // A plain call.
    let mut params: Map<String, Value> = padding()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    params.insert("CHAT_ID".into(), json!(2938));
    let arguments = json!({"method": "im.chat.leave", "params": params});
    let error = error_object(&call(&client, arguments).await);
    assert_eq!(error["error"], "NOT_CONFIRMED", "{error}");
    let questions = user.questions();
    assert_eq!(questions.len(), 2);
    assert!(
        questions[0].contains("CHAT_ID=\"2938\""),
        "{}",
        questions[0]
    );
    assert!(questions[1].contains("CHAT_ID=2938"), "{}", questions[1]);
    for question in &questions {
        for (name, _) in padding() {
            assert!(
                question.contains(&format!("{name}=\"ppp")),
                "{name}: {question}"
            );
        }
    }
    assert_eq!(portal.requests().len(), 0);
}

#[tokio::test]
async fn a_padded_target_value_and_a_long_list_of_users_are_shown_whole() {
    let (portal, client, user) = setup().await;
    // PHP's intval skips leading blanks and zeros: this is chat 2938.
    let padded = format!("{}{}2938", " ".repeat(70), "0".repeat(70));
    let arguments = json!({"method": "im.chat.leave", "params": {"CHAT_ID": padded}});
    assert_eq!(
        error_object(&call(&client, arguments).await)["error"],
        "NOT_CONFIRMED"
    );
    let encoded = format!("{}{}2938", "+".repeat(70), "0".repeat(70));
    let arguments =
        json!({"method": "batch", "params": {"cmd": [format!("im.chat.leave?CHAT_ID={encoded}")]}});
    assert_eq!(
        error_object(&call(&client, arguments).await)["error"],
        "NOT_CONFIRMED"
    );
    // The eleventh user added is the one that matters.
    let users: Vec<i64> = (1..=10).chain([666]).collect();
    let arguments =
        json!({"method": "im.chat.user.add", "params": {"CHAT_ID": 2938, "USERS": users}});
    assert_eq!(
        error_object(&call(&client, arguments).await)["error"],
        "NOT_CONFIRMED"
    );
    let questions = user.questions();
    assert_eq!(questions.len(), 3);
    let shown = format!("CHAT_ID=\"{padded}\"");
    assert!(questions[0].contains(&shown), "{}", questions[0]);
    assert!(questions[1].contains(&shown), "{}", questions[1]);
    assert!(
        questions[2].contains("USERS=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 666]"),
        "{}",
        questions[2]
    );
    assert_eq!(portal.requests().len(), 0);
}

#[tokio::test]
async fn a_write_too_large_to_show_whole_is_refused_before_any_request() {
    let (portal, client, user) = setup().await;
    let fields: Map<String, Value> = (0..400)
        .map(|i| (format!("UF_CRM_{i:03}"), json!("v".repeat(50))))
        .collect();
    let arguments = json!({"method": "crm.deal.update", "params": {"ID": 7, "fields": fields}});
    let error = error_object(&call(&client, arguments).await);
    assert_eq!(error["error"], "INVALID_ARGUMENT", "{error}");
    let text = error["error_description"].as_str().unwrap();
    assert!(text.contains("too long to show"), "{text}");
    assert!(user.questions().is_empty());
    assert_eq!(portal.requests().len(), 0);
}

#[tokio::test]
async fn event_polls_that_confirm_and_remove_events_are_writes() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal)));
    // Their `offset` confirms and removes the events before it, for every application.
    for method in [
        "im.v2.Event.get",
        "imbot.v2.Event.get",
        "IM.V2.EVENT.GET",
        "im.v2.event.get",
    ] {
        let result = tools
            .call(
                "bitrix24_call",
                json!({"method": method, "params": {"offset": 2000}}).as_object(),
            )
            .await
            .unwrap();
        assert_eq!(
            error_object(&result)["error"],
            "WRITES_DISABLED",
            "{method}"
        );
        let batch = json!({"cmd": {"a": format!("{method}?offset=2000")}});
        let result = tools
            .call(
                "bitrix24_call",
                json!({"method": "batch", "params": batch}).as_object(),
            )
            .await
            .unwrap();
        assert_eq!(
            error_object(&result)["error"],
            "WRITES_DISABLED",
            "batch {method}"
        );
    }
    assert_eq!(portal.requests().len(), 0);
}

#[tokio::test]
async fn a_target_taken_from_an_earlier_answer_is_said_to_be() {
    let (portal, client, user) = setup().await;
    // The portal replaces $RESULT[a][ID] (any case) by chat a's ID before leaving it.
    let batch = json!({"cmd": {
        "a": "im.chat.get?ENTITY_TYPE=CRM&ENTITY_ID=DEAL|1663",
        "b": "im.chat.leave?CHAT_ID=$RESULT[a][ID]",
    }});
    let error = error_object(&call(&client, json!({"method": "batch", "params": batch})).await);
    assert_eq!(error["error"], "NOT_CONFIRMED", "{error}");
    assert_eq!(
        user.questions(),
        [
            "Call batch on your Bitrix24 portal: 1 read (im.chat.get) and 1 write:\n- \"b\": \
          im.chat.leave CHAT_ID=\"$RESULT[a][ID]\"\nValues with $result[…] (or $next, $total, \
          $time, $error) are filled in by the portal, from earlier commands' answers, when the \
          batch runs.\nThe writes may change data. To confirm, type the method name: batch"
        ]
    );
    assert_eq!(portal.requests().len(), 0);
}

#[tokio::test]
async fn two_names_for_one_place_are_refused() {
    let (portal, client, user) = setup().await;
    // PHP keeps the last value of a place: the question would show user 1 and a list, and the
    // portal would add 666 alone; or show the list and add user 5.
    for (command, both) in [
        (
            "im.chat.user.add?CHAT_ID=2938&USERS[]=1&USERS[0]=666",
            "has both \"USERS[]\" and \"USERS[0]\"",
        ),
        (
            "im.chat.user.add?CHAT_ID=2938&USERS[]=1&USERS=5",
            "has both \"USERS\" and \"USERS[]\"",
        ),
    ] {
        let arguments = json!({"method": "batch", "params": {"cmd": {"a": command}}});
        let error = error_object(&call(&client, arguments).await);
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{command}: {error}");
        let text = error["error_description"].as_str().unwrap();
        assert!(text.contains(both), "{command}: {text}");
    }
    assert!(user.questions().is_empty());
    assert_eq!(portal.requests().len(), 0);
    assert_eq!(portal.members(2938), [99, 1271, 1400]);
}
