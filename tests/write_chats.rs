//! `--write-chats` (`BITRIX24_WRITE_CHATS`) for every write tool and for `bitrix24_call`: a write
//! to a listed chat goes out; a write anywhere else, or whose chat cannot be told from its
//! parameters, answers `CHAT_NOT_ALLOWED` with zero requests at the portal (a fake portal on
//! loopback records them). Also through the real binary, with the variable and with the flag, and
//! a bad list refused at start.

mod common;
mod message_portal;

use std::process::Stdio;

use bitrix24_mcp::tools::Bitrix24Tools;
use bitrix24_mcp::tools::registry::{Selection, Writes};
use bitrix24_mcp::tools::write_chats::WriteChats;
use common::elicit::{User, connect};
use common::*;
use message_portal::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use wiremock::MockServer;

/// Writes on, only to chat 2935 and workgroup 17's chat; confirmation skipped where `skip`, so
/// that the `call` path reaches the portal.
fn listed(skip: bool) -> Selection {
    Selection::all().with_writes(Writes {
        allowed: true,
        skip_confirmation: skip,
        chats: Some(WriteChats::parse(&["2935,sg17".to_owned()]).unwrap()),
        footer: None,
    })
}

fn tools(server: &MockServer) -> Bitrix24Tools {
    Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options()))).serving(listed(true))
}

async fn call(tools: &Bitrix24Tools, tool: &str, arguments: &Value) -> rmcp::model::CallToolResult {
    tools.call(tool, arguments.as_object()).await.unwrap()
}

/// Calls that change only chat 2935 or sg17, and the write each must send.
fn inside() -> Vec<(&'static str, Value, (&'static str, Value))> {
    vec![
        (
            "im_chat_user_add",
            json!({"CHAT_ID": 2935, "USERS": [1300]}),
            (
                "im.chat.user.add",
                json!({"CHAT_ID": 2935, "USERS": [1300], "HIDE_HISTORY": "Y"}),
            ),
        ),
        (
            "im_chat_user_delete",
            json!({"CHAT_ID": "chat2935", "USER_ID": 1269}),
            (
                "im.chat.user.delete",
                json!({"CHAT_ID": 2935, "USER_ID": 1269}),
            ),
        ),
        (
            "im_chat_leave",
            json!({"CHAT_ID": 2935}),
            ("im.chat.leave", json!({"CHAT_ID": 2935})),
        ),
        (
            "im_message_add",
            json!({"DIALOG_ID": "sg17", "MESSAGE": "hi"}),
            (
                "im.message.add",
                json!({"DIALOG_ID": "sg17", "MESSAGE": "hi"}),
            ),
        ),
        (
            "im_message_update",
            json!({"CHAT_ID": 2935, "MESSAGE_ID": 84877, "MESSAGE": "edited"}),
            (
                "im.message.update",
                json!({"MESSAGE_ID": 84877, "MESSAGE": "edited"}),
            ),
        ),
        (
            "im_message_delete",
            json!({"DIALOG_ID": "chat2935", "MESSAGE_ID": 84870}),
            ("im.message.delete", json!({"MESSAGE_ID": 84870})),
        ),
        (
            "bitrix24_call",
            json!({"method": "im.message.add", "params": {"dialog_id": "chat2935", "MESSAGE": "hi"}}),
            (
                "im.message.add",
                json!({"dialog_id": "chat2935", "MESSAGE": "hi"}),
            ),
        ),
        (
            "bitrix24_call",
            json!({"method": "batch", "params": {"cmd": {
                "read": "im.dialog.messages.get?DIALOG_ID=chat1",
                "post": "im.message.add?DIALOG_ID=sg17&MESSAGE=hi"}}}),
            (
                "batch",
                json!({"cmd": {
                "read": "im.dialog.messages.get?DIALOG_ID=chat1",
                "post": "im.message.add?DIALOG_ID=sg17&MESSAGE=hi"}}),
            ),
        ),
    ]
}

/// Calls that would change another chat, or one that cannot be told.
fn outside() -> Vec<(&'static str, Value)> {
    vec![
        (
            "im_chat_user_add",
            json!({"CHAT_ID": 2936, "USERS": [1300]}),
        ),
        (
            "im_chat_user_delete",
            json!({"CHAT_ID": 17, "USER_ID": 1269}),
        ),
        ("im_chat_leave", json!({"CHAT_ID": 1})),
        ("im_message_add", json!({"CHAT_ID": 2936, "MESSAGE": "hi"})),
        (
            "im_message_add",
            json!({"DIALOG_ID": "1269", "MESSAGE": "hi"}),
        ),
        (
            "im_message_add",
            json!({"DIALOG_ID": "sg18", "MESSAGE": "hi"}),
        ),
        // sg17's chat addressed by a number is not "sg17": the list matches by form.
        (
            "im_message_add",
            json!({"DIALOG_ID": "chat17", "MESSAGE": "hi"}),
        ),
        (
            "im_message_update",
            json!({"CHAT_ID": 2936, "MESSAGE_ID": 84895, "MESSAGE": "x"}),
        ),
        (
            "im_message_delete",
            json!({"CHAT_ID": 2936, "MESSAGE_ID": 84895}),
        ),
        (
            "bitrix24_call",
            json!({"method": "im.message.add", "params": {"DIALOG_ID": "chat2936", "MESSAGE": "x"}}),
        ),
        (
            "bitrix24_call",
            json!({"method": "batch", "params": {"cmd": {
                "read": "im.dialog.messages.get?DIALOG_ID=chat2935",
                "post": "im.message.add?DIALOG_ID=chat2936&MESSAGE=x"}}}),
        ),
        (
            "bitrix24_call",
            json!({"method": "crm.deal.add", "params": {"fields": {"TITLE": "x"}}}),
        ),
        (
            "bitrix24_call",
            json!({"method": "im.message.delete", "params": {"MESSAGE_ID": 84877}}),
        ),
        (
            "bitrix24_call",
            json!({"method": "im.message.delete", "params": {"MESSAGE_ID": 84895, "CHAT_ID": 2935}}),
        ),
        (
            "bitrix24_call",
            json!({"method": "im.message.add", "params": {"CHAT_ID": 1, "DIALOG_ID": "chat2935"}}),
        ),
        (
            "bitrix24_call",
            json!({"method": "batch", "params": {"cmd": [
                "im.chat.add?TITLE=x",
                "im.chat.user.add?CHAT_ID=$result[0]&USERS[]=5"]}}),
        ),
    ]
}

#[tokio::test]
async fn every_write_to_a_listed_chat_goes_out() {
    for (tool, arguments, expected) in inside() {
        let server = start(sample(), "Marketing team").await;
        let result = call(&tools(&server), tool, &arguments).await;
        assert_ne!(
            result.is_error,
            Some(true),
            "{tool} {arguments}: {result:?}"
        );
        let (method, body) = expected;
        assert_eq!(
            writes(&server).await,
            [(method.to_owned(), body)],
            "{tool} {arguments}"
        );
    }
}

#[tokio::test]
async fn every_write_elsewhere_is_chat_not_allowed_with_zero_requests() {
    for (tool, arguments) in outside() {
        let server = start(sample(), "Marketing team").await;
        let error = error_object(&call(&tools(&server), tool, &arguments).await);
        assert_eq!(
            error["error"], "CHAT_NOT_ALLOWED",
            "{tool} {arguments}: {error}"
        );
        assert_eq!(
            (error["category"].as_str(), error["retryable"].as_bool()),
            (Some("configuration"), Some(false))
        );
        let description = error["error_description"].as_str().unwrap();
        assert!(
            description.contains("chat2935,sg17") && description.contains("nothing was sent"),
            "{description}"
        );
        assert_eq!(received(&server).await, [], "{tool} {arguments}");
    }
}

#[tokio::test]
async fn a_refused_destructive_write_asks_nothing() {
    let server = start(sample(), "Marketing team").await;
    let user = User::typing(Some("84895"));
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())))
        .serving(listed(false));
    let client = connect(tools, user.clone()).await;
    let result = client
        .call_tool(
            CallToolRequestParams::new("im_message_delete").with_arguments(
                json!({"CHAT_ID": 2936, "MESSAGE_ID": 84895})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(error_object(&result)["error"], "CHAT_NOT_ALLOWED");
    assert!(user.questions().is_empty(), "{:?}", user.questions());
    assert_eq!(received(&server).await, []);
}

// ---- the real binary -------------------------------------------------------------------------

/// The binary for the fake portal with writes on and confirmation skipped; no list yet.
fn binary(server: &MockServer) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .env_remove("BITRIX24_WRITE_CHATS")
        .env_remove("BITRIX24_MESSAGE_FOOTER")
        .env_remove("BITRIX24_STATE_URL")
        .env_remove("BITRIX24_TOKEN_FILE")
        .env("BITRIX24_WEBHOOK_URL", webhook_url(server))
        .env("BITRIX24_ALLOW_WRITES", "true")
        .env("BITRIX24_SKIP_WRITE_CONFIRMATION", "true")
        .env("BITRIX24_MAX_RETRIES", "0")
        .env("RUST_LOG", "warn");
    command
}

async fn post(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    arguments: Value,
) -> rmcp::model::CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new("im_message_add")
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn the_binary_holds_writes_to_the_list_from_the_variable_or_the_flag() {
    for how in ["variable", "flag"] {
        let server = start(sample(), "Marketing team").await;
        let mut command = binary(&server);
        match how {
            "variable" => command.env("BITRIX24_WRITE_CHATS", "2935, sg17"),
            _ => command.args(["--write-chats", "2935,sg17"]),
        };
        let client = mcp_process(command).await;
        let posted = post(&client, json!({"CHAT_ID": 2935, "MESSAGE": "hi"})).await;
        assert_eq!(
            success_object(&posted)["message_id"],
            NEW_MESSAGE_ID,
            "{how}"
        );
        let refused = post(&client, json!({"CHAT_ID": 2936, "MESSAGE": "hi"})).await;
        assert_eq!(error_object(&refused)["error"], "CHAT_NOT_ALLOWED", "{how}");
        client.cancel().await.unwrap();
        assert_eq!(
            received(&server).await,
            [(
                "im.message.add".to_owned(),
                json!({"DIALOG_ID": "chat2935", "MESSAGE": "hi"})
            )],
            "{how}"
        );
    }
}

#[tokio::test]
async fn a_bad_list_is_refused_at_start_with_what_to_write() {
    let server = MockServer::start().await;
    for (variable, flag) in [(Some("2935,chat"), None), (None, Some("2935,group17"))] {
        let mut command = binary(&server);
        if let Some(list) = variable {
            command.env("BITRIX24_WRITE_CHATS", list);
        }
        if let Some(list) = flag {
            command.args(["--write-chats", list]);
        }
        let output = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        assert!(output.stdout.is_empty(), "nothing on the protocol stream");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let bad = variable.or(flag).unwrap().split(',').nth(1).unwrap();
        assert!(
            stderr.contains(&format!(
                "BITRIX24_WRITE_CHATS / --write-chats: {bad:?} is not a chat; use 2935 or \
                 chat2935 (a chat), sg17 (a workgroup's chat) or user1269"
            )),
            "{stderr}"
        );
    }
    assert_eq!(received(&server).await, []);
}
