//! The operating-time block is keyed by the method as the portal resolves it (lower case): once
//! `im.chat.user.list` is blocked, no spelling of it reaches the portal — through this instance's
//! own gate, or through the block another instance left in a shared Redis (a real `redis-server`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use bitrix24_mcp::bitrix::state::{RedisStore, Shared, StateSettings, StateUrl};
use bitrix24_mcp::bitrix::{CallError, Client, HttpPolicy, WebhookUrl};
use bitrix24_mcp::tools::Bitrix24Tools;
use common::redis_server::RedisServer;
use common::*;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A portal that refuses its first request with `OPERATION_TIME_LIMIT` and answers every later
/// one.
async fn blocking_portal() -> MockServer {
    let portal = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked"
        })))
        .up_to_n_times(1)
        .mount(&portal)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [1]})))
        .mount(&portal)
        .await;
    portal
}

/// `bitrix24_call` with `method` and chat 2935's parameters; the error object it returned.
async fn call_spelled(tools: &RunningService<RoleClient, ()>, spelling: &str) -> Value {
    let result = tools
        .call_tool(
            CallToolRequestParams::new("bitrix24_call").with_arguments(
                json!({"method": spelling, "params": {"CHAT_ID": 2935}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    error_object(&result)
}

#[tokio::test]
async fn a_method_blocked_here_is_blocked_in_every_spelling() {
    let portal = blocking_portal().await;
    let tools = mcp_client(Bitrix24Tools::new(Some(webhook_client(
        &portal.uri(),
        fast_options(),
    ))))
    .await;
    let refused = error_object(&chat_users(&tools, 2935).await);
    assert_eq!(refused["error"], "OPERATION_TIME_LIMIT", "{refused}");
    for spelling in [
        "IM.CHAT.USER.LIST",
        "Im.Chat.User.List",
        "im.chat.user.list",
    ] {
        let error = call_spelled(&tools, spelling).await;
        assert_eq!(
            error["error"], "OPERATION_TIME_LIMIT",
            "{spelling}: {error}"
        );
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains("no request was sent"),
            "{error}"
        );
    }
    assert_eq!(
        portal.received_requests().await.unwrap().len(),
        1,
        "no spelling of the blocked method reached the portal"
    );
}

/// An in-process client for `portal_uri`'s webhook sharing state through `redis`.
fn shared_client(portal_uri: &str, redis: &RedisServer) -> Client {
    let url = format!("{portal_uri}/rest/1/{CODE}/");
    let webhook = WebhookUrl::parse(&url, HttpPolicy::HttpsOnly).unwrap();
    let host = webhook.host();
    let store = RedisStore::new(&StateSettings {
        url: StateUrl::parse(&redis.url(), None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: None,
        lock_ttl: Duration::from_secs(60),
    })
    .unwrap();
    Client::new(webhook.into(), fast_options())
        .unwrap()
        .sharing(Some(Shared::new(Arc::new(store), &host, "webhook-1")))
}

#[tokio::test]
async fn a_block_in_redis_holds_for_every_spelling_on_every_instance() {
    let Some(redis) = RedisServer::start("block-spelling") else {
        return;
    };
    let portal = blocking_portal().await;
    let first = shared_client(&portal.uri(), &redis);
    // The block is set by an upper-case spelling, and found by the others.
    let refused = first
        .call("IM.CHAT.USER.LIST", &json!({"CHAT_ID": 2935}))
        .await
        .unwrap_err();
    assert!(matches!(refused, CallError::Api(ref api) if api.code == "OPERATION_TIME_LIMIT"));
    let blocks: Vec<String> = redis
        .dump()
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.contains(":blocked:"))
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert!(
        blocks[0].ends_with(":blocked:im.chat.user.list"),
        "{blocks:?}"
    );

    for spelling in [
        "im.chat.user.list",
        "IM.CHAT.USER.LIST",
        "im.CHAT.user.List",
    ] {
        // A fresh instance each time: its own gate knows nothing, only Redis does.
        let other = mcp_client(Bitrix24Tools::new(Some(shared_client(
            &portal.uri(),
            &redis,
        ))))
        .await;
        let error = call_spelled(&other, spelling).await;
        assert_eq!(
            error["error"], "OPERATION_TIME_LIMIT",
            "{spelling}: {error}"
        );
        assert!(error["retry_after_secs"].as_u64().unwrap() > 500, "{error}");
    }
    assert_eq!(portal.received_requests().await.unwrap().len(), 1);
}
