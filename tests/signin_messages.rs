//! The message tools with each person signed in (`serve --transport http --auth oauth
//! --allow-writes`, the binary against the sample portal): each reads only the chats their own
//! Bitrix24 rights open, each request reaches the portal with that person's token, and a post is
//! made as its author and named with them in the write log.

mod common;

use std::sync::{Arc, Mutex};

use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use common::signin::Browser;
use common::signin_server;
use common::*;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const SECRET: &str = "messages-app-s3cret-01";

async fn tool(
    client: &RunningService<RoleClient, ()>,
    name: &str,
    arguments: Value,
) -> rmcp::model::CallToolResult {
    let mut request = CallToolRequestParams::new(name.to_owned());
    request.arguments = arguments.as_object().cloned();
    client.call_tool(request).await.unwrap()
}

/// The users whose Bitrix24 tokens the portal saw on `method`, in order.
fn callers_of(portal: &DemoPortal, method: &str) -> Vec<i64> {
    portal
        .requests_to(&format!("/rest/{method}"))
        .iter()
        .map(|request| {
            let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
            let token = body["auth"].as_str().expect("the call carries its token");
            portal.token_user(token).expect("a token the portal issued")
        })
        .collect()
}

#[tokio::test]
async fn each_person_reads_what_their_rights_allow_and_a_post_names_its_author_in_the_write_log() {
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap();
    let mut command =
        signin_server::command(&portal.rest_root(), &portal.token_url(), SECRET, "info");
    command.arg("--allow-writes");
    let log = Arc::new(Mutex::new(String::new()));
    let (mut child, base, _drain) = signin_server::start(command, Some(log.clone())).await;
    portal.set_redirect_uri(format!("{base}/oauth/callback"));
    let sign_in = async |user: i64| {
        portal.sign_in_browser_as(user);
        let token = Browser::new().sign_in(&base).await.access_token;
        let config =
            StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(token);
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .unwrap()
    };
    let anna = sign_in(99).await;
    let maria = sign_in(1271).await;

    // Deal 1663's chat (2937) has Anna, not Maria: the portal answers each as themselves.
    let page =
        success_object(&tool(&anna, "im_dialog_messages_get", json!({"CHAT_ID": 2937})).await);
    assert_eq!(page["chat_id"], 2937);
    assert!(!page["messages"].as_array().unwrap().is_empty(), "{page}");
    let refused =
        error_object(&tool(&maria, "im_dialog_messages_get", json!({"CHAT_ID": 2937})).await);
    assert_eq!(refused["error"], "ACCESS_ERROR", "{refused}");
    let refused = error_object(
        &tool(
            &maria,
            "im_dialog_messages_search",
            json!({"CHAT_ID": 2937, "SEARCH_MESSAGE": "budget"}),
        )
        .await,
    );
    assert_eq!(refused["error"], "ACCESS_ERROR", "{refused}");
    assert_eq!(callers_of(&portal, "im.dialog.messages.get"), [99, 1271]);
    assert_eq!(callers_of(&portal, "im.dialog.messages.search"), [1271]);

    // Maria posts to the Marketing chat (2935), where both are members: the message is hers.
    let posted = success_object(
        &tool(
            &maria,
            "im_message_add",
            json!({"CHAT_ID": 2935, "MESSAGE": "Invoice sent to the printer"}),
        )
        .await,
    );
    assert_eq!(posted["ok"], true);
    assert_eq!(posted["chat_id"], 2935);
    let message_id = posted["message_id"].as_i64().unwrap();
    assert_eq!(callers_of(&portal, "im.message.add"), [1271]);
    let latest = success_object(
        &tool(
            &anna,
            "im_dialog_messages_get",
            json!({"CHAT_ID": 2935, "LIMIT": 1}),
        )
        .await,
    );
    let last = latest["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["id"], message_id, "{latest}");
    assert_eq!(last["author_id"], 1271);
    assert_eq!(last["author_name"], "Maria Garcia");
    assert_eq!(last["text"], "Invoice sent to the printer");

    // Anna may not edit Maria's message: the portal refuses her (only the author edits).
    let refused = error_object(
        &tool(
            &anna,
            "im_message_update",
            json!({"CHAT_ID": 2935, "MESSAGE_ID": message_id, "MESSAGE": "Mine now"}),
        )
        .await,
    );
    assert_eq!(refused["error"], "CANT_EDIT_MESSAGE", "{refused}");

    child.kill().await.unwrap();
    let log = log.lock().unwrap().clone();
    let writes: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "write")
        .collect();
    assert_eq!(writes.len(), 2, "{log}");
    assert_eq!(writes[0]["fields"]["tool"], "im_message_add");
    assert_eq!(writes[0]["fields"]["outcome"], "done");
    assert_eq!(writes[0]["fields"]["user_id"], 1271);
    assert_eq!(writes[0]["fields"]["user_name"], "Maria Garcia");
    assert_eq!(writes[1]["fields"]["tool"], "im_message_update");
    assert_eq!(writes[1]["fields"]["user_id"], 99);
    assert_eq!(writes[1]["fields"]["user_name"], "Anna Petrova");
    assert!(
        writes[1]["fields"]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("failed (CANT_EDIT_MESSAGE"),
        "{}",
        writes[1]
    );
    // The message's text is the portal's: it never reaches a log line.
    assert!(!log.contains("Invoice sent to the printer"), "{log}");
}
