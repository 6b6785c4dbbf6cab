//! Every list a tool returns is bounded, and says when it was cut; `truncated` is true whenever
//! the answer is known to be incomplete. A hostile portal (wiremock on loopback) sends floods,
//! pages that repeat, `next` values that stand still or go back, and members joining mid-listing;
//! each test checks the exact requests the portal received.

mod common;

use bitrix24_mcp::tools::Bitrix24Tools;
use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BASE_PATH: &str = "/rest/1/t0p53cr3tc0de42x/";

fn tools(server: &MockServer) -> Bitrix24Tools {
    Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())))
}

async fn call(tools: &Bitrix24Tools, tool: &str, arguments: Value) -> rmcp::model::CallToolResult {
    tools
        .call(tool, arguments.as_object())
        .await
        .expect("known tool")
}

/// Every request the portal received: the method (the path's last segment) and the JSON body.
async fn received(server: &MockServer) -> Vec<(String, Value)> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .map(|request| {
            let method = request
                .url
                .path()
                .strip_prefix(BASE_PATH)
                .expect("the webhook's path")
                .to_owned();
            let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
            (method, body)
        })
        .collect()
}

/// Answers `method` with `body` (every time).
async fn answer(server: &MockServer, rest_method: &str, body: Value) {
    Mock::given(method("POST"))
        .and(path(format!("{BASE_PATH}{rest_method}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// A user as `im.dialog.users.list` sends one.
fn user(id: i64) -> Value {
    json!({"id": id, "name": format!("User {id}"), "first_name": "User", "last_name": id.to_string(),
           "work_position": "", "active": true, "bot": false, "extranet": false, "type": "user"})
}

fn users(ids: impl IntoIterator<Item = i64>) -> Value {
    Value::Array(ids.into_iter().map(user).collect())
}

/// Answers the `im.dialog.users.list` page at `offset` with `body`.
async fn page(server: &MockServer, offset: i64, body: Value) {
    Mock::given(method("POST"))
        .and(path(format!("{BASE_PATH}im.dialog.users.list")))
        .and(body_partial_json(json!({"OFFSET": offset})))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// The request for the page at `offset` of chat 2935's members.
fn page_request(offset: i64) -> (String, Value) {
    (
        "im.dialog.users.list".to_owned(),
        json!({"DIALOG_ID": "chat2935", "LIMIT": 200, "OFFSET": offset}),
    )
}

async fn members(server: &MockServer) -> Value {
    let result = call(
        &tools(server),
        "im_dialog_users_list",
        json!({"CHAT_ID": 2935}),
    )
    .await;
    success_object(&result)
}

/// The IDs of a member listing, in order.
fn ids_of(answer: &Value) -> Vec<i64> {
    answer["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect()
}

// ---- item 14: truncated whenever the answer is known to be incomplete ----------------------

#[tokio::test]
async fn a_complete_listing_is_not_truncated() {
    let server = MockServer::start().await;
    page(
        &server,
        0,
        json!({"result": users(1..=200), "total": 250, "next": 200}),
    )
    .await;
    page(
        &server,
        200,
        json!({"result": users(201..=250), "total": 250}),
    )
    .await;
    let answer = members(&server).await;
    assert_eq!(ids_of(&answer), (1..=250).collect::<Vec<_>>());
    assert_eq!(
        (&answer["count"], &answer["total"], &answer["truncated"]),
        (&json!(250), &json!(250), &json!(false))
    );
    assert_eq!(
        received(&server).await,
        vec![page_request(0), page_request(200)]
    );
}

#[tokio::test]
async fn a_next_that_repeats_is_not_followed_and_the_answer_is_truncated() {
    let server = MockServer::start().await;
    page(
        &server,
        0,
        json!({"result": users(1..=200), "total": 450, "next": 200}),
    )
    .await;
    page(
        &server,
        200,
        json!({"result": users(201..=400), "total": 450, "next": 200}),
    )
    .await;
    let answer = members(&server).await;
    assert_eq!(ids_of(&answer), (1..=400).collect::<Vec<_>>());
    assert_eq!(answer["truncated"], true, "count {}", answer["count"]);
    assert_eq!(answer["total"], 450);
    assert_eq!(
        received(&server).await,
        vec![page_request(0), page_request(200)]
    );
}

#[tokio::test]
async fn a_next_that_goes_back_is_not_followed_and_the_answer_is_truncated() {
    let server = MockServer::start().await;
    // No total: only the `next` that goes back says there is more.
    page(&server, 0, json!({"result": users(1..=200), "next": 200})).await;
    page(
        &server,
        200,
        json!({"result": users(201..=400), "next": 100}),
    )
    .await;
    let answer = members(&server).await;
    assert_eq!(answer["count"], 400);
    assert_eq!(answer["truncated"], true, "count {}", answer["count"]);
    assert_eq!(
        received(&server).await,
        vec![page_request(0), page_request(200)]
    );
}

#[tokio::test]
async fn pages_of_duplicates_stop_at_the_page_bound_and_the_answer_is_truncated() {
    let server = MockServer::start().await;
    // 27 pages announced, every one the same 200 users.
    for offset in (0..27).map(|n| n * 200) {
        let next = if offset < 26 * 200 {
            json!(offset + 200)
        } else {
            Value::Null
        };
        page(
            &server,
            offset,
            json!({"result": users(1..=200), "total": 5400, "next": next}),
        )
        .await;
    }
    let answer = members(&server).await;
    assert_eq!(ids_of(&answer), (1..=200).collect::<Vec<_>>());
    assert_eq!(answer["truncated"], true, "count {}", answer["count"]);
    // MAX_USERS 500: 500 / 200 + 2 pages, and not one more.
    assert_eq!(
        received(&server).await,
        vec![
            page_request(0),
            page_request(200),
            page_request(400),
            page_request(600)
        ]
    );
}

#[tokio::test]
async fn a_member_who_joins_while_paging_makes_the_answer_truncated() {
    let server = MockServer::start().await;
    page(
        &server,
        0,
        json!({"result": users(1..=200), "total": 250, "next": 200}),
    )
    .await;
    // User 0 joined at the front: user 200 slid onto the second page, and there are 251.
    page(
        &server,
        200,
        json!({"result": users(200..=250), "total": 251}),
    )
    .await;
    let answer = members(&server).await;
    assert_eq!(ids_of(&answer), (1..=250).collect::<Vec<_>>());
    assert_eq!(
        (&answer["count"], &answer["total"], &answer["truncated"]),
        (&json!(250), &json!(251), &json!(true))
    );
    assert_eq!(
        received(&server).await,
        vec![page_request(0), page_request(200)]
    );
}

// ---- item 13: every list a tool returns is bounded -----------------------------------------

/// A chat as `im.dialog.get` answers it, with `managers` as its manager list.
fn dialog(managers: Value) -> Value {
    json!({"result": {"id": 2935, "dialog_id": "chat2935", "name": "Marketing", "type": "chat",
        "owner": 1269, "user_counter": 3, "entity_type": "", "entity_id": "", "role": "MEMBER",
        "manager_list": managers, "restrictions": {"user_list": true}}})
}

#[tokio::test]
async fn im_dialog_get_bounds_a_flood_of_managers_and_says_so() {
    let server = MockServer::start().await;
    let flood: Vec<i64> = (1..400_000).collect();
    answer(&server, "im.dialog.get", dialog(json!(flood))).await;
    let result = call(&tools(&server), "im_dialog_get", json!({"CHAT_ID": 2935})).await;
    let chat = success_object(&result);
    let managers: Vec<i64> = serde_json::from_value(chat["manager_list"].clone()).unwrap();
    assert_eq!(managers, (1..=200).collect::<Vec<_>>());
    assert_eq!(chat["manager_list_truncated"], true);
    assert_eq!(chat["user_counter"], 3);
    assert!(text(&result).len() < 5_000, "{}", text(&result).len());
    assert_eq!(
        received(&server).await,
        vec![("im.dialog.get".to_owned(), json!({"DIALOG_ID": "chat2935"}))]
    );
}

#[tokio::test]
async fn im_dialog_get_with_few_managers_says_nothing_was_cut() {
    let server = MockServer::start().await;
    answer(&server, "im.dialog.get", dialog(json!([1269, "1271"]))).await;
    let result = call(&tools(&server), "im_dialog_get", json!({"CHAT_ID": 2935})).await;
    let chat = success_object(&result);
    assert_eq!(chat["manager_list"], json!([1269, 1271]));
    assert_eq!(chat.get("manager_list_truncated"), None);
}

#[tokio::test]
async fn im_chat_user_list_bounds_a_chat_of_half_a_million_and_says_so() {
    let server = MockServer::start().await;
    // 4.0 MB of IDs: under the body cap, so the portal's answer is read (within its budget).
    let ids: Vec<i64> = (1_000_000..1_500_000).collect();
    answer(&server, "im.chat.user.list", json!({"result": ids})).await;
    let result = call(
        &tools(&server),
        "im_chat_user_list",
        json!({"CHAT_ID": 2935}),
    )
    .await;
    let list = success_object(&result);
    let kept: Vec<i64> = serde_json::from_value(list["user_ids"].clone()).unwrap();
    assert_eq!(kept, (1_000_000..1_005_000).collect::<Vec<_>>());
    assert_eq!(
        (&list["count"], &list["truncated"]),
        (&json!(5000), &json!(true))
    );
    assert_eq!(
        received(&server).await,
        vec![("im.chat.user.list".to_owned(), json!({"CHAT_ID": 2935}))]
    );
}

#[tokio::test]
async fn im_recent_list_cuts_a_page_longer_than_limit_and_offers_the_rest() {
    let server = MockServer::start().await;
    let items: Vec<Value> = (1..=300)
        .map(|n| json!({"id": format!("chat{n}"), "chat_id": n, "type": "chat", "title": format!("Chat {n}")}))
        .collect();
    answer(
        &server,
        "im.recent.list",
        json!({"result": {"items": items, "hasMore": false}}),
    )
    .await;
    let result = call(&tools(&server), "im_recent_list", json!({"LIMIT": 5})).await;
    let recent = success_object(&result);
    let dialogs: Vec<&str> = recent["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["dialog_id"].as_str().unwrap())
        .collect();
    assert_eq!(dialogs, ["chat1", "chat2", "chat3", "chat4", "chat5"]);
    assert_eq!(
        (&recent["has_more"], &recent["next_offset"]),
        (&json!(true), &json!(5))
    );
    assert_eq!(
        received(&server).await,
        vec![(
            "im.recent.list".to_owned(),
            json!({"LIMIT": 5, "OFFSET": 0})
        )]
    );
}

#[tokio::test]
async fn im_search_chat_list_cuts_a_page_longer_than_limit_and_offers_the_rest() {
    let server = MockServer::start().await;
    let chats: Vec<Value> = (1..=100)
        .map(|n| json!({"id": n, "name": format!("Market {n}"), "type": "chat"}))
        .collect();
    answer(
        &server,
        "im.search.chat.list",
        json!({"result": chats, "total": 100}),
    )
    .await;
    let result = call(
        &tools(&server),
        "im_search_chat_list",
        json!({"FIND": "Market", "LIMIT": 3}),
    )
    .await;
    let found = success_object(&result);
    let ids: Vec<i64> = found["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chat_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!((&found["total"], &found["next"]), (&json!(100), &json!(3)));
    assert_eq!(
        received(&server).await,
        vec![(
            "im.search.chat.list".to_owned(),
            json!({"FIND": "Market", "LIMIT": 3, "OFFSET": 0})
        )]
    );
}

#[tokio::test]
async fn bitrix24_call_refuses_a_result_cut_while_it_was_read() {
    let server = MockServer::start().await;
    let ids: Vec<i64> = (1_000_000..1_500_000).collect();
    answer(
        &server,
        "crm.deal.list",
        json!({"result": ids, "total": 500000}),
    )
    .await;
    let result = call(
        &tools(&server),
        "bitrix24_call",
        json!({"method": "crm.deal.list"}),
    )
    .await;
    let error = error_object(&result);
    assert_eq!(error["error"], "RESULT_TOO_LARGE");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("crm.deal.list's result holds more than 65536 values"),
        "{error}"
    );
    assert_eq!(
        received(&server).await,
        vec![("crm.deal.list".to_owned(), json!({}))]
    );
}
