//! The read-only chat toolset against a portal on loopback: each tool sends exactly the documented
//! request and answers the documented fields; paging and chunking are exact; duplicates appear
//! once; method errors and bad input give the right error objects (bad input: zero requests);
//! identical concurrent reads share one request; the listing stays small.

mod common;

use std::time::Duration;

use bitrix24_mcp::demo::{DemoPortal, PortalData, RecordedRequest};
use bitrix24_mcp::tools::Bitrix24Tools;
use common::*;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn demo() -> (DemoPortal, RunningService<RoleClient, ()>) {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let client = mcp_client(Bitrix24Tools::new(Some(demo_client(&portal)))).await;
    (portal, client)
}

async fn call_tool(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .expect("tools/call answers")
}

/// The REST method and JSON body of each request the portal received.
fn sent(portal: &DemoPortal) -> Vec<(String, Value)> {
    portal
        .requests()
        .into_iter()
        .map(|RecordedRequest { path, body, .. }| {
            let method = path.rsplit('/').next().unwrap().to_owned();
            (method, serde_json::from_str(&body).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn im_search_chat_list_sends_find_limit_offset_and_answers_chats() {
    let (portal, client) = demo().await;
    let answer = success_object(
        &call_tool(&client, "im_search_chat_list", json!({"FIND": " Market "})).await,
    );
    assert_eq!(
        answer,
        json!({"total": 1, "next": null, "chats": [{"chat_id": 2935, "dialog_id": "chat2935",
            "name": "Marketing team", "type": "chat", "user_counter": 3, "entity_type": "",
            "entity_id": ""}]})
    );
    assert_eq!(
        sent(&portal),
        [(
            "im.search.chat.list".to_owned(),
            json!({"FIND": "Market", "LIMIT": 10, "OFFSET": 0})
        )]
    );
    // Word prefix, not substring; and members' names match too.
    let none =
        success_object(&call_tool(&client, "im_search_chat_list", json!({"FIND": "arket"})).await);
    assert_eq!(none["chats"], json!([]));
    let paged = success_object(
        &call_tool(
            &client,
            "im_search_chat_list",
            json!({"FIND": "Maria", "LIMIT": 1}),
        )
        .await,
    );
    assert_eq!(paged["chats"].as_array().unwrap().len(), 1);
    assert_eq!(paged["next"], 1);
    assert!(paged["total"].as_i64().unwrap() >= 2);
}

#[tokio::test]
async fn im_chat_get_finds_a_deals_chat_and_says_when_none_is_linked() {
    let (portal, client) = demo().await;
    let found = success_object(
        &call_tool(
            &client,
            "im_chat_get",
            json!({"ENTITY_TYPE": "crm", "ENTITY_ID": "DEAL|1663"}),
        )
        .await,
    );
    assert_eq!(
        found,
        json!({"found": true, "chat_id": 2937, "dialog_id": "chat2937", "entity_type": "CRM",
            "entity_id": "DEAL|1663"})
    );
    let missing = success_object(
        &call_tool(
            &client,
            "im_chat_get",
            json!({"ENTITY_TYPE": "CRM", "ENTITY_ID": "DEAL|1"}),
        )
        .await,
    );
    assert_eq!(missing["found"], false);
    assert_eq!(missing["chat_id"], Value::Null);
    assert!(
        missing["note"]
            .as_str()
            .unwrap()
            .contains("only the item's discussion chat")
    );
    assert_eq!(
        sent(&portal),
        [
            (
                "im.chat.get".to_owned(),
                json!({"ENTITY_TYPE": "CRM", "ENTITY_ID": "DEAL|1663"})
            ),
            (
                "im.chat.get".to_owned(),
                json!({"ENTITY_TYPE": "CRM", "ENTITY_ID": "DEAL|1"})
            ),
        ]
    );
}

#[tokio::test]
async fn im_dialog_get_sends_chat_ids_as_dialog_ids_and_answers_the_chat() {
    let (portal, client) = demo().await;
    let deal = success_object(&call_tool(&client, "im_dialog_get", json!({"CHAT_ID": 2937})).await);
    assert_eq!(
        deal,
        json!({"chat_id": 2937, "dialog_id": "chat2937", "name": "Deal: Website redesign",
            "type": "crm", "owner": 1269, "user_counter": 3, "entity_type": "CRM",
            "entity_id": "DEAL|1663", "role": "member", "manager_list": [1269],
            "members_visible": true})
    );
    let group =
        success_object(&call_tool(&client, "im_dialog_get", json!({"DIALOG_ID": "sg17"})).await);
    assert_eq!(
        (group["chat_id"].as_i64(), group["type"].as_str()),
        (Some(2938), Some("sonetGroup"))
    );
    let hidden = success_object(
        &call_tool(&client, "im_dialog_get", json!({"DIALOG_ID": "chat2939"})).await,
    );
    assert_eq!(hidden["members_visible"], false);
    assert_eq!(
        sent(&portal),
        [
            ("im.dialog.get".to_owned(), json!({"DIALOG_ID": "chat2937"})),
            ("im.dialog.get".to_owned(), json!({"DIALOG_ID": "sg17"})),
            ("im.dialog.get".to_owned(), json!({"DIALOG_ID": "chat2939"})),
        ]
    );
}

#[tokio::test]
async fn im_dialog_users_list_pages_by_200_through_next() {
    let (portal, client) = demo().await;
    let answer =
        success_object(&call_tool(&client, "im_dialog_users_list", json!({"CHAT_ID": 2940})).await);
    assert_eq!(
        (answer["count"].as_i64(), answer["total"].as_i64()),
        (Some(450), Some(450))
    );
    assert_eq!(answer["truncated"], false);
    let users = answer["users"].as_array().unwrap();
    assert_eq!(
        users[0],
        json!({"id": 99, "name": "Anna Petrova", "first_name": "Anna", "last_name": "Petrova",
            "work_position": "Integration Developer", "active": true, "bot": false,
            "extranet": false, "type": "user"})
    );
    let ids: std::collections::HashSet<i64> =
        users.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 450);
    let pages: Vec<(String, Value)> = sent(&portal);
    assert_eq!(
        pages,
        [0, 200, 400].map(|offset| (
            "im.dialog.users.list".to_owned(),
            json!({"DIALOG_ID": "chat2940", "LIMIT": 200, "OFFSET": offset})
        ))
    );
}

#[tokio::test]
async fn im_dialog_users_list_stops_at_max_users_and_sends_skip_external_as_y() {
    let (portal, client) = demo().await;
    let capped = success_object(
        &call_tool(
            &client,
            "im_dialog_users_list",
            json!({"CHAT_ID": 2940, "MAX_USERS": 250}),
        )
        .await,
    );
    assert_eq!(
        (capped["count"].as_i64(), capped["truncated"].as_bool()),
        (Some(250), Some(true))
    );
    assert_eq!(capped["total"], 450);
    assert_eq!(portal.requests().len(), 2);
    let humans = success_object(
        &call_tool(
            &client,
            "im_dialog_users_list",
            json!({"DIALOG_ID": "chat2937", "SKIP_EXTERNAL": true}),
        )
        .await,
    );
    let names: Vec<&str> = humans["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Anna Petrova", "Alexander Smith"]);
    assert_eq!(
        sent(&portal)[2],
        (
            "im.dialog.users.list".to_owned(),
            json!({"DIALOG_ID": "chat2937", "LIMIT": 200, "OFFSET": 0, "SKIP_EXTERNAL": "Y"})
        )
    );
    let with_bot =
        success_object(&call_tool(&client, "im_dialog_users_list", json!({"CHAT_ID": 2937})).await);
    let bot = &with_bot["users"][2];
    assert_eq!(
        (bot["bot"].as_bool(), bot["type"].as_str()),
        (Some(true), Some("bot"))
    );
}

#[tokio::test]
async fn im_user_list_get_sends_fifty_ids_a_request_and_lists_the_missing() {
    let (portal, client) = demo().await;
    // 120 different IDs (2000..=2117, and two unknown), a duplicate and a numeric string.
    let mut ids: Vec<Value> = (2000..2118).map(|id| json!(id)).collect();
    ids.extend([json!(777_001), json!("777002"), json!(2000)]);
    let answer = success_object(&call_tool(&client, "im_user_list_get", json!({"ID": ids})).await);
    assert_eq!(answer["users"].as_array().unwrap().len(), 118);
    assert_eq!(answer["missing"], json!([777_001, 777_002]));
    assert_eq!(answer["users"][0]["name"], "Employee 2000");
    let chunks: Vec<usize> = sent(&portal)
        .iter()
        .map(|(method, body)| {
            assert_eq!(method, "im.user.list.get");
            body["ID"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(chunks, [50, 50, 20]);
}

#[tokio::test]
async fn im_recent_list_sends_y_n_and_gives_each_dialog_once() {
    let (portal, client) = demo().await;
    let first = success_object(
        &call_tool(
            &client,
            "im_recent_list",
            json!({"LIMIT": 5, "SKIP_OPENLINES": true}),
        )
        .await,
    );
    let dialogs: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["dialog_id"].as_str().unwrap())
        .collect();
    // The portal's page repeats chat2935; it appears once.
    assert_eq!(dialogs, ["chat2935", "1269", "chat2937", "chat2938"]);
    assert_eq!(
        (first["has_more"].as_bool(), first["next_offset"].as_i64()),
        (Some(true), Some(5))
    );
    assert_eq!(
        first["items"][1],
        json!({"dialog_id": "1269", "chat_id": 5001, "type": "user", "title": "Alexander Smith",
            "last_message_date": "2026-11-25T16:20:00+00:00"})
    );
    let last = success_object(
        &call_tool(
            &client,
            "im_recent_list",
            json!({"OFFSET": 5, "LIMIT": 5, "SKIP_CHAT": false}),
        )
        .await,
    );
    assert_eq!(
        (last["has_more"].as_bool(), last["next_offset"].clone()),
        (Some(false), Value::Null)
    );
    assert_eq!(
        sent(&portal),
        [
            (
                "im.recent.list".to_owned(),
                json!({"SKIP_OPENLINES": "Y", "LIMIT": 5, "OFFSET": 0})
            ),
            (
                "im.recent.list".to_owned(),
                json!({"SKIP_CHAT": "N", "LIMIT": 5, "OFFSET": 5})
            ),
        ]
    );
}

#[tokio::test]
async fn the_readme_walkthrough_from_a_name_to_the_people_costs_two_requests() {
    let (portal, client) = demo().await;
    let found =
        success_object(&call_tool(&client, "im_search_chat_list", json!({"FIND": "Market"})).await);
    let chat_id = found["chats"][0]["chat_id"].clone();
    let members = success_object(
        &call_tool(&client, "im_dialog_users_list", json!({"CHAT_ID": chat_id})).await,
    );
    let names: Vec<&str> = members["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Anna Petrova", "Alexander Smith", "Maria Garcia"]);
    assert_eq!(portal.requests().len(), 2);
}

// ---- pages that overlap, answers in either documented form ------------------------------------

#[tokio::test]
async fn users_repeated_across_pages_appear_once() {
    let server = MockServer::start().await;
    let user = |id: i64| json!({"id": id, "name": format!("User {id}"), "first_name": "User", "last_name": id.to_string()});
    let page1: Vec<Value> = (1..=200).map(user).collect();
    let page2: Vec<Value> = (150..=260).map(user).collect();
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(json!({"OFFSET": 0})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"result": page1, "total": 260, "next": 200})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"OFFSET": 200}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": page2, "total": 260})),
        )
        .mount(&server)
        .await;
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
    let result = tools
        .call("im_dialog_users_list", json!({"CHAT_ID": 5}).as_object())
        .await
        .unwrap();
    let answer = success_object(&result);
    assert_eq!(answer["count"], 260);
    let ids: Vec<i64> = answer["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=260).collect::<Vec<_>>());
}

#[tokio::test]
async fn im_user_list_get_reads_the_array_form_too() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [
            {"id": 7, "name": "Seven", "bot": true, "type": "bot"},
            {"id": 8, "name": "Eight"}
        ]})))
        .mount(&server)
        .await;
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
    let result = tools
        .call("im_user_list_get", json!({"ID": [8, 7, 9]}).as_object())
        .await
        .unwrap();
    let answer = success_object(&result);
    let names: Vec<&str> = answer["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Eight", "Seven"], "in the order asked");
    assert_eq!(answer["missing"], json!([9]));
}

// ---- errors -----------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_with_zero_requests() {
    let (portal, client) = demo().await;
    let cases = [
        (
            "im_search_chat_list",
            json!({"FIND": " a "}),
            "FIND must be",
        ),
        (
            "im_search_chat_list",
            json!({"FIND": "Market", "LIMIT": 51}),
            "LIMIT must be an integer from 1 to 50",
        ),
        (
            "im_search_chat_list",
            json!({"FIND": "Market", "OFFSET": -1}),
            "OFFSET must be",
        ),
        (
            "im_chat_get",
            json!({"ENTITY_TYPE": "DEAL", "ENTITY_ID": "1663"}),
            "ENTITY_TYPE must be one of CRM",
        ),
        (
            "im_chat_get",
            json!({"ENTITY_TYPE": "CRM", "ENTITY_ID": "  "}),
            "ENTITY_ID must be a non-empty string",
        ),
        (
            "im_chat_get",
            json!({"ENTITY_TYPE": "CRM"}),
            "ENTITY_ID is required",
        ),
        (
            "im_dialog_get",
            json!({}),
            "CHAT_ID or DIALOG_ID is required",
        ),
        (
            "im_dialog_get",
            json!({"CHAT_ID": 1, "DIALOG_ID": "chat1"}),
            "not both",
        ),
        (
            "im_dialog_get",
            json!({"DIALOG_ID": "group17"}),
            "DIALOG_ID must be \"chat<ID>\"",
        ),
        (
            "im_dialog_users_list",
            json!({"CHAT_ID": 2935, "MAX_USERS": 5001}),
            "MAX_USERS must be an integer from 1 to 5000",
        ),
        (
            "im_dialog_users_list",
            json!({"CHAT_ID": 2935, "SKIP_EXTERNAL": "maybe"}),
            "SKIP_EXTERNAL must be true or false",
        ),
        (
            "im_dialog_users_list",
            json!({"CHAT_ID": 2935, "LIMIT": 10}),
            "unexpected argument \"LIMIT\"",
        ),
        (
            "im_user_list_get",
            json!({"ID": []}),
            "ID must be an array of 1 to 500",
        ),
        (
            "im_user_list_get",
            json!({"ID": [1, "x"]}),
            "ID[1] must be a positive user ID",
        ),
        (
            "im_user_list_get",
            json!({"ID": (1..=501).collect::<Vec<_>>()}),
            "at most 500",
        ),
        (
            "im_recent_list",
            json!({"LIMIT": 201}),
            "LIMIT must be an integer from 1 to 200",
        ),
        (
            "im_recent_list",
            json!({"SKIP_CHAT": 1}),
            "SKIP_CHAT must be true or false",
        ),
    ];
    for (tool, arguments, expected) in cases {
        let error = error_object(&call_tool(&client, tool, arguments.clone()).await);
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{tool} {arguments}");
        assert_eq!(
            (error["category"].as_str(), error["retryable"].as_bool()),
            (Some("invalid_input"), Some(false))
        );
        let description = error["error_description"].as_str().unwrap();
        assert!(
            description.contains(expected),
            "{tool} {arguments}: {description}"
        );
    }
    assert_eq!(
        portal.requests().len(),
        0,
        "bad input never reaches the portal"
    );
}

#[tokio::test]
async fn method_error_codes_come_back_classified() {
    let cases = [
        (
            "im_dialog_get",
            json!({"CHAT_ID": 1}),
            400,
            "DIALOG_ID_EMPTY",
            "invalid_input",
        ),
        (
            "im_dialog_get",
            json!({"CHAT_ID": 1}),
            403,
            "ACCESS_ERROR",
            "permission",
        ),
        (
            "im_dialog_users_list",
            json!({"CHAT_ID": 1}),
            403,
            "ACCESS_ERROR",
            "permission",
        ),
        (
            "im_search_chat_list",
            json!({"FIND": "ab"}),
            400,
            "FIND_SHORT",
            "invalid_input",
        ),
        (
            "im_user_list_get",
            json!({"ID": [1]}),
            400,
            "INVALID_FORMAT",
            "invalid_input",
        ),
        (
            "im_user_list_get",
            json!({"ID": [1]}),
            400,
            "ID_EMPTY",
            "invalid_input",
        ),
        (
            "im_user_list_get",
            json!({"ID": [1]}),
            400,
            "USER_NOT_EXISTS",
            "invalid_input",
        ),
        (
            "im_recent_list",
            json!({}),
            403,
            "insufficient_scope",
            "permission",
        ),
        (
            "im_chat_get",
            json!({"ENTITY_TYPE": "CRM", "ENTITY_ID": "DEAL|1"}),
            503,
            "QUERY_LIMIT_EXCEEDED",
            "rate_limit",
        ),
    ];
    for (tool, arguments, status, code, category) in cases {
        let server = MockServer::start().await;
        Mock::given(path_regex(".*"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"error": code, "error_description": "said the portal"})),
            )
            .mount(&server)
            .await;
        let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
        let result = tools.call(tool, arguments.as_object()).await.unwrap();
        let error = error_object(&result);
        assert_eq!(error["error"], code, "{tool}");
        assert_eq!(error["category"], category, "{tool} {code}");
        assert_eq!(
            error["retryable"],
            code == "QUERY_LIMIT_EXCEEDED",
            "{tool} {code}"
        );
        assert_eq!(error["http_status"], status);
    }
}

#[tokio::test]
async fn the_demo_refuses_what_bitrix24_refuses() {
    let (_portal, client) = demo().await;
    // Not a member of chat 2936; the members of 2939 are hidden.
    for (tool, arguments) in [
        ("im_dialog_get", json!({"CHAT_ID": 2936})),
        ("im_dialog_users_list", json!({"CHAT_ID": 2936})),
        ("im_dialog_users_list", json!({"CHAT_ID": 2939})),
    ] {
        let error = error_object(&call_tool(&client, tool, arguments.clone()).await);
        assert_eq!(error["error"], "ACCESS_ERROR", "{tool} {arguments}");
    }
}

// ---- request economy and size -----------------------------------------------------------------

#[tokio::test]
async fn ten_concurrent_identical_dialog_gets_share_one_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(300))
                .set_body_json(
                    json!({"result": {"id": 2935, "name": "Marketing team", "type": "chat"}}),
                ),
        )
        .mount(&server)
        .await;
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
    let arguments = json!({"CHAT_ID": 2935});
    let calls = (0..10).map(|_| tools.call("im_dialog_get", arguments.as_object()));
    let results = futures::future::join_all(calls).await;
    for result in results {
        assert_eq!(success_object(&result.unwrap())["name"], "Marketing team");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // Once answered, the next call asks again: sharing is for concurrent calls only.
    tools
        .call("im_dialog_get", arguments.as_object())
        .await
        .unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_listing_stays_small() {
    let client = mcp_client(Bitrix24Tools::new(None)).await;
    let tools = client.list_all_tools().await.unwrap();
    let listing = serde_json::to_string(&json!({"tools": tools})).unwrap();
    eprintln!("tools/list: {} bytes", listing.len());
    assert!(
        listing.len() < 14 * 1024,
        "tools/list is {} bytes",
        listing.len()
    );
    for tool in &tools {
        let description = tool.description.as_deref().unwrap_or_default();
        assert!(
            description.chars().count() < 700,
            "{}: {} characters",
            tool.name,
            description.chars().count()
        );
    }
    let info = client.peer_info().unwrap();
    let instructions = info.instructions.as_deref().unwrap();
    for step in [
        "im_search_chat_list",
        "im_dialog_get",
        "im_dialog_users_list",
        "im_chat_get",
    ] {
        assert!(instructions.contains(step), "instructions lack {step}");
    }
}
