//! A fake Bitrix24 portal (wiremock on loopback) for the write tools, answering as the reference
//! and the wire contract of issue 17 say: `im.dialog.messages.get` finds a message by `FIRST_ID`
//! in its own dialog only (the message itself and the ones after it, newest first; a cursor
//! outside the chat gets an empty answer), `im.message.add` answers the new ID as a bare integer,
//! the other writes `true`, and the chat and user reads name their targets. Every request is
//! recorded, so a test asserts exactly what reached the portal.

#![allow(dead_code)]

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use bitrix24_mcp::tools::Bitrix24Tools;
use bitrix24_mcp::tools::registry::{Selection, Writes};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{ClientHandler, RoleClient};

use super::common::{CODE, fast_options, webhook_client};

pub const BASE_PATH: &str = "/rest/1/t0p53cr3tc0de42x/";

/// The ID `im.message.add` answers.
pub const NEW_MESSAGE_ID: i64 = 34239;

/// One message the portal holds.
#[derive(Clone, Debug)]
pub struct Stored {
    pub dialog: &'static str,
    pub id: i64,
    pub author_id: i64,
    pub text: String,
}

pub fn stored(dialog: &'static str, id: i64, text: &str) -> Stored {
    Stored {
        dialog,
        id,
        author_id: 99,
        text: text.to_owned(),
    }
}

/// The messages of the sample chats: chat 2935 holds 84870 and 84877, sg17 holds 84880, the
/// private dialog with user 1269 holds 84890.
pub fn sample() -> Vec<Stored> {
    vec![
        stored("chat2935", 84870, "Kick-off at 10"),
        stored("chat2935", 84877, "Launch moves to March 3\nDetails follow"),
        stored("sg17", 84880, "Workgroup note"),
        stored("1269", 84890, "Private note"),
        stored("chat2936", 84895, "Elsewhere"),
    ]
}

/// `im.dialog.messages.get` over `messages`, as the wire contract describes it.
struct History(Vec<Stored>);

impl Respond for History {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let Some(dialog) = body["DIALOG_ID"].as_str().map(str::to_owned) else {
            return ResponseTemplate::new(400).set_body_json(
                json!({"error": "DIALOG_ID_EMPTY", "error_description": "Dialog ID can't be empty"}),
            );
        };
        let limit = body["LIMIT"].as_i64().unwrap_or(20).clamp(1, 50) as usize;
        let mut mine: Vec<&Stored> = self.0.iter().filter(|m| m.dialog == dialog).collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.id));
        let chosen: Vec<&Stored> = match body["FIRST_ID"].as_i64() {
            // The cursor's own message comes too (quirk); a cursor outside the chat gets nothing.
            Some(first) if mine.iter().any(|m| m.id == first) => {
                let mut after: Vec<&Stored> = mine.into_iter().filter(|m| m.id >= first).collect();
                after.reverse();
                after.truncate(limit + 1);
                after.reverse();
                after
            }
            Some(_) => Vec::new(),
            None => mine.into_iter().take(limit).collect(),
        };
        let chat = dialog
            .strip_prefix("chat")
            .and_then(|id| id.parse::<i64>().ok())
            .unwrap_or(0);
        let messages: Vec<Value> = chosen
            .iter()
            .map(|m| {
                json!({"id": m.id, "chat_id": chat, "author_id": m.author_id,
                       "date": "2026-03-04T09:43:26+03:00", "text": m.text, "unread": false,
                       "uuid": null, "replaces": [], "params": [], "disappearing_date": null})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"result": {
            "chat_id": chat, "messages": messages, "users": [], "files": []}}))
    }
}

/// The portal with `messages`; `chat_name` is what `im.dialog.get` calls every chat.
pub async fn start(messages: Vec<Stored>, chat_name: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{BASE_PATH}im.dialog.messages.get")))
        .respond_with(History(messages))
        .mount(&server)
        .await;
    let answers = [
        ("im.message.add", json!({"result": NEW_MESSAGE_ID})),
        ("im.message.update", json!({"result": true})),
        ("im.message.delete", json!({"result": true})),
        ("im.chat.user.add", json!({"result": true})),
        ("im.chat.user.delete", json!({"result": true})),
        ("im.chat.leave", json!({"result": true})),
        ("im.dialog.get", json!({"result": {"name": chat_name}})),
        (
            "batch",
            json!({"result": {"result": {}, "result_error": [], "result_total": [],
                              "result_next": [], "result_time": []}}),
        ),
        (
            "im.user.list.get",
            json!({"result": {"1269": {"id": 1269, "name": "Alexander Smith"}}}),
        ),
    ];
    for (rest_method, body) in answers {
        Mock::given(method("POST"))
            .and(path(format!("{BASE_PATH}{rest_method}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    server
}

/// Every request the portal received: the method (the path's last segment) and the JSON body.
pub async fn received(server: &MockServer) -> Vec<(String, Value)> {
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

/// The requests that change something: everything but the reads.
pub async fn writes(server: &MockServer) -> Vec<(String, Value)> {
    received(server)
        .await
        .into_iter()
        .filter(|(method, _)| {
            ![
                "im.dialog.messages.get",
                "im.dialog.get",
                "im.user.list.get",
            ]
            .contains(&method.as_str())
        })
        .collect()
}

/// The webhook URL of the fake portal, for the binary's environment.
pub fn webhook_url(server: &MockServer) -> String {
    format!("{}/rest/1/{CODE}/", server.uri())
}

// ---- calling the tools ---------------------------------------------------------------------------

pub fn selection(skip_confirmation: bool, footer: Option<&str>) -> Selection {
    Selection::all().with_writes(Writes {
        allowed: true,
        skip_confirmation,
        footer: footer.map(str::to_owned),
        ..Writes::default()
    })
}

/// The tools for `server`, writes on, confirmation asked.
pub fn tools(server: &MockServer) -> Bitrix24Tools {
    Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())))
        .serving(selection(false, None))
}

pub async fn call_tool<H: ClientHandler>(
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

/// A call without an MCP client to ask (the `call` path): confirmation skipped where `selection`
/// says so.
pub async fn direct(tools: &Bitrix24Tools, tool: &str, arguments: Value) -> CallToolResult {
    tools.call(tool, arguments.as_object()).await.unwrap()
}

pub fn find(dialog: &str, message_id: i64) -> (String, Value) {
    (
        "im.dialog.messages.get".to_owned(),
        json!({"DIALOG_ID": dialog, "FIRST_ID": message_id, "LIMIT": 1}),
    )
}
