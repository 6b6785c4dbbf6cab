//! The message write tools against a fake portal (wiremock on loopback, `message_portal`): the
//! exact requests each sends, the typed confirmation for a delete and for a message that notifies
//! everyone or is a system notice, refusals that send nothing (an empty edit, an over-long text, a
//! message not in the named chat), a post whose outcome is unknown that is never sent again, and a
//! hostile message quoted, never obeyed, in a question. The write log is in messages_write_log.rs.

mod common;
mod message_portal;

use bitrix24_mcp::tools::Bitrix24Tools;
use bitrix24_mcp::tools::registry::{Selection, Writes};
use common::elicit::{User, connect};
use common::*;
use message_portal::*;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn selection(skip_confirmation: bool, footer: Option<&str>) -> Selection {
    Selection::all().with_writes(Writes {
        allowed: true,
        skip_confirmation,
        footer: footer.map(str::to_owned),
        ..Writes::default()
    })
}

/// The tools for `server`, writes on, confirmation asked.
fn tools(server: &MockServer) -> Bitrix24Tools {
    Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())))
        .serving(selection(false, None))
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

/// A call without an MCP client to ask (the `call` path): confirmation skipped where `selection`
/// says so.
async fn direct(tools: &Bitrix24Tools, tool: &str, arguments: Value) -> CallToolResult {
    tools.call(tool, arguments.as_object()).await.unwrap()
}

fn find(dialog: &str, message_id: i64) -> (String, Value) {
    (
        "im.dialog.messages.get".to_owned(),
        json!({"DIALOG_ID": dialog, "FIRST_ID": message_id, "LIMIT": 1}),
    )
}

// ---- posting ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_post_sends_exactly_its_dialog_text_and_options_and_answers_the_new_id() {
    let server = start(sample(), "Marketing team").await;
    let user = User::typing(None);
    let client = connect(tools(&server), user.clone()).await;
    let posted = call_tool(
        &client,
        "im_message_add",
        json!({"CHAT_ID": 2935, "MESSAGE": "Summary: [b]ship it[/b]", "REPLY_ID": "84877",
               "URL_PREVIEW": false}),
    )
    .await;
    assert_eq!(
        success_object(&posted),
        json!({"ok": true, "message_id": NEW_MESSAGE_ID, "chat_id": 2935, "dialog_id": "chat2935"})
    );
    let to_group = call_tool(
        &client,
        "im_message_add",
        json!({"DIALOG_ID": "SG17", "MESSAGE": "Hello"}),
    )
    .await;
    assert_eq!(
        success_object(&to_group),
        json!({"ok": true, "message_id": NEW_MESSAGE_ID, "chat_id": null, "dialog_id": "sg17"})
    );
    assert_eq!(
        received(&server).await,
        [
            (
                "im.message.add".to_owned(),
                json!({"DIALOG_ID": "chat2935", "MESSAGE": "Summary: [b]ship it[/b]",
                       "REPLY_ID": 84877, "URL_PREVIEW": "N"})
            ),
            (
                "im.message.add".to_owned(),
                json!({"DIALOG_ID": "sg17", "MESSAGE": "Hello"})
            ),
        ]
    );
    assert!(user.questions().is_empty(), "an ordinary post asks nothing");
}

#[tokio::test]
async fn the_footer_goes_under_the_text_and_counts_against_the_limit() {
    let server = start(sample(), "Marketing team").await;
    let footer = "Posted by an AI assistant";
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())))
        .serving(selection(false, Some(footer)));
    let posted = direct(
        &tools,
        "im_message_add",
        json!({"DIALOG_ID": "1269", "MESSAGE": "Hi"}),
    )
    .await;
    assert_eq!(success_object(&posted)["dialog_id"], "1269");
    // Exactly at the limit without the footer, over it with it: refused before any request.
    let full = "a".repeat(20_000);
    let refused = direct(
        &tools,
        "im_message_add",
        json!({"CHAT_ID": 2935, "MESSAGE": full}),
    )
    .await;
    let error = error_object(&refused);
    assert_eq!(error["error"], "INVALID_ARGUMENT");
    let description = error["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("MESSAGE with the --message-footer line is 20034 characters"),
        "{description}"
    );
    assert_eq!(
        received(&server).await,
        [(
            "im.message.add".to_owned(),
            json!({"DIALOG_ID": "1269",
                   "MESSAGE": "Hi\n\n[i]Posted by an AI assistant[/i]"})
        )]
    );
}

#[tokio::test]
async fn texts_over_20000_characters_and_empty_edits_are_refused_unsent() {
    let server = start(sample(), "Marketing team").await;
    let tools = tools(&server);
    let long = "я".repeat(20_001);
    for (tool, arguments, expected) in [
        (
            "im_message_add",
            json!({"CHAT_ID": 2935, "MESSAGE": long}),
            "MESSAGE is 20001 characters; Bitrix24 keeps at most 20000",
        ),
        (
            "im_message_update",
            json!({"CHAT_ID": 2935, "MESSAGE_ID": 84877, "MESSAGE": long}),
            "MESSAGE is 20001 characters",
        ),
        (
            "im_message_update",
            json!({"CHAT_ID": 2935, "MESSAGE_ID": 84877, "MESSAGE": ""}),
            "MESSAGE is empty; Bitrix24 would delete the message: use im_message_delete",
        ),
        (
            "im_message_update",
            json!({"CHAT_ID": 2935, "MESSAGE_ID": 84877, "MESSAGE": " \n "}),
            "MESSAGE is empty;",
        ),
        (
            "im_message_add",
            json!({"CHAT_ID": 2935, "MESSAGE": 5}),
            "MESSAGE must be the message text in BBCode",
        ),
        (
            "im_message_update",
            json!({"CHAT_ID": 2935, "MESSAGE": "x"}),
            "MESSAGE_ID is required",
        ),
        (
            "im_message_delete",
            json!({"MESSAGE_ID": 84877}),
            "CHAT_ID or DIALOG_ID is required",
        ),
    ] {
        let error = error_object(&direct(&tools, tool, arguments).await);
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{tool}: {error}");
        let description = error["error_description"].as_str().unwrap();
        assert!(description.contains(expected), "{tool}: {description}");
    }
    assert_eq!(received(&server).await, []);
}

#[tokio::test]
async fn a_post_whose_answer_is_not_a_message_id_is_unknown_and_not_sent_again() {
    for answer in [
        json!({"result": true}),
        json!({"result": "34239"}),
        json!({"result": 0}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("{BASE_PATH}im.message.add")))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer.clone()))
            .mount(&server)
            .await;
        let retrying = bitrix24_mcp::bitrix::ClientOptions {
            retry: quick_retries(3),
            ..fast_options()
        };
        let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), retrying)))
            .serving(selection(false, None));
        let error = error_object(
            &direct(
                &tools,
                "im_message_add",
                json!({"CHAT_ID": 2935, "MESSAGE": "x"}),
            )
            .await,
        );
        assert_eq!(error["error"], "UNEXPECTED_RESPONSE", "{answer}: {error}");
        assert_eq!(error["outcome"], "unknown", "{error}");
        assert_eq!(error["retryable"], false, "{error}");
        assert!(
            error["hint"]
                .as_str()
                .unwrap()
                .contains("im_dialog_messages_get"),
            "{error}"
        );
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "{answer}"
        );
    }
}

/// A portal that reads each request whole and closes the connection without answering; the
/// requests it read come back on the channel.
async fn dropping_portal() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            while let Ok(read @ 1..) = stream.read(&mut buffer).await {
                request.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ = seen.send(String::from_utf8_lossy(&request).to_string());
            let _ = stream.shutdown().await;
        }
    });
    (base, requests)
}

#[tokio::test]
async fn a_post_whose_connection_drops_after_the_request_is_unknown_and_never_repeated() {
    let (base, mut requests) = dropping_portal().await;
    let retrying = bitrix24_mcp::bitrix::ClientOptions {
        retry: quick_retries(3),
        ..fast_options()
    };
    let tools =
        Bitrix24Tools::new(Some(webhook_client(&base, retrying))).serving(selection(false, None));
    let error = error_object(
        &direct(
            &tools,
            "im_message_add",
            json!({"CHAT_ID": 2935, "MESSAGE": "Quarterly summary"}),
        )
        .await,
    );
    assert_eq!(error["outcome"], "unknown", "{error}");
    assert_eq!(error["retryable"], false, "{error}");
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("read the chat with im_dialog_messages_get before trying again"),
        "{error}"
    );
    let request = requests.recv().await.unwrap();
    assert!(
        request.starts_with(&format!("POST /rest/1/{CODE}/im.message.add")),
        "{request}"
    );
    assert!(request.contains("Quarterly summary"), "{request}");
    drop(tools);
    assert!(requests.try_recv().is_err(), "sent exactly once");
}

// ---- typed confirmation -------------------------------------------------------------------------

#[tokio::test]
async fn a_post_that_notifies_everyone_needs_the_typed_dialog_id() {
    for text in ["[user=all] standup now", "standup [USER = ALL]"] {
        for (typed, sent) in [
            (None, false),
            (Some("2935"), false),
            (Some("chat2935"), true),
        ] {
            let server = start(sample(), "Marketing team").await;
            let user = User::typing(typed);
            let client = connect(tools(&server), user.clone()).await;
            let result = call_tool(
                &client,
                "im_message_add",
                json!({"CHAT_ID": 2935, "MESSAGE": text}),
            )
            .await;
            let questions = user.questions();
            assert_eq!(questions.len(), 1, "{text}");
            let first = questions[0].split("\n\n").next().unwrap();
            assert_eq!(
                first,
                format!(
                    "Post a message to chat 2935 that notifies everyone in the chat ([user=all]) \
                     on your Bitrix24 portal (im.message.add), with the text {text:?}? To \
                     confirm, type the dialog ID: chat2935"
                )
            );
            let posts = writes(&server).await;
            if sent {
                assert_eq!(success_object(&result)["message_id"], NEW_MESSAGE_ID);
                assert_eq!(
                    posts,
                    [(
                        "im.message.add".to_owned(),
                        json!({"DIALOG_ID": "chat2935", "MESSAGE": text})
                    )]
                );
            } else {
                assert_eq!(error_object(&result)["error"], "NOT_CONFIRMED", "{typed:?}");
                assert_eq!(posts, [], "{typed:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_system_message_needs_the_typed_dialog_id_and_is_sent_with_system_y() {
    let server = start(sample(), "Marketing team").await;
    let user = User::typing(Some("sg17"));
    let client = connect(tools(&server), user.clone()).await;
    let result = call_tool(
        &client,
        "im_message_add",
        json!({"DIALOG_ID": "sg17", "MESSAGE": "Deploy at\n5 \"pm\"", "SYSTEM": true}),
    )
    .await;
    assert_eq!(success_object(&result)["dialog_id"], "sg17");
    assert_eq!(
        user.questions(),
        [
            "Post a system message (shown as the portal's notice) to workgroup 17's chat (sg17) on \
          your Bitrix24 portal (im.message.add), with the text \"Deploy at\\n5 \\\"pm\\\"\"? To \
          confirm, type the dialog ID: sg17"
        ]
    );
    assert_eq!(
        writes(&server).await,
        [(
            "im.message.add".to_owned(),
            json!({"DIALOG_ID": "sg17", "MESSAGE": "Deploy at\n5 \"pm\"", "SYSTEM": "Y"})
        )]
    );
}

// ---- editing and deleting ----------------------------------------------------------------------

#[tokio::test]
async fn an_edit_checks_the_message_is_in_the_chat_then_sends_exactly_its_text() {
    let server = start(sample(), "Marketing team").await;
    let user = User::typing(None);
    let client = connect(tools(&server), user.clone()).await;
    let edited = call_tool(
        &client,
        "im_message_update",
        json!({"CHAT_ID": "chat2935", "MESSAGE_ID": 84877, "MESSAGE": "Launch moves to March 4",
               "URL_PREVIEW": "N"}),
    )
    .await;
    assert_eq!(
        success_object(&edited),
        json!({"ok": true, "message_id": 84877, "chat_id": 2935, "dialog_id": "chat2935"})
    );
    assert!(user.questions().is_empty());
    assert_eq!(
        received(&server).await,
        [
            find("chat2935", 84877),
            (
                "im.message.update".to_owned(),
                json!({"MESSAGE_ID": 84877, "MESSAGE": "Launch moves to March 4",
                       "URL_PREVIEW": "N"})
            ),
        ]
    );
}

#[tokio::test]
async fn an_edit_that_notifies_everyone_needs_the_typed_dialog_id() {
    let server = start(sample(), "Marketing team").await;
    let user = User::typing(Some("chat2935"));
    let client = connect(tools(&server), user.clone()).await;
    let edited = call_tool(
        &client,
        "im_message_update",
        json!({"CHAT_ID": 2935, "MESSAGE_ID": 84877, "MESSAGE": "[user=all] moved"}),
    )
    .await;
    assert_eq!(success_object(&edited)["ok"], true);
    let questions = user.questions();
    assert_eq!(questions.len(), 1);
    assert_eq!(
        questions[0],
        "Change message 84877 in chat 2935 on your Bitrix24 portal (im.message.update) to a text \
         that notifies everyone in it ([user=all]): \"[user=all] moved\"? To confirm, type the \
         dialog ID: chat2935\n\nFor reference, chat 2935 is the chat the portal calls «Marketing \
         team»; message 84877 begins with the portal's text «Launch moves to March 3»."
    );
    assert_eq!(
        writes(&server).await,
        [(
            "im.message.update".to_owned(),
            json!({"MESSAGE_ID": 84877, "MESSAGE": "[user=all] moved"})
        )]
    );
}

#[tokio::test]
async fn a_delete_quotes_the_message_and_goes_only_with_the_typed_message_id() {
    for (typed, sent) in [
        (None, false),
        (Some("chat2935"), false),
        (Some("84877"), true),
    ] {
        let server = start(sample(), "Marketing team").await;
        let user = User::typing(typed);
        let client = connect(tools(&server), user.clone()).await;
        let result = call_tool(
            &client,
            "im_message_delete",
            json!({"CHAT_ID": 2935, "MESSAGE_ID": 84877}),
        )
        .await;
        assert_eq!(
            user.questions(),
            [
                "Delete message 84877 in chat 2935 on your Bitrix24 portal (im.message.delete)? To \
              confirm, type the message ID: 84877\n\nFor reference, chat 2935 is the chat the \
              portal calls «Marketing team»; message 84877 begins with the portal's text «Launch \
              moves to March 3»."
            ]
        );
        let asked = [
            ("im.dialog.get".to_owned(), json!({"DIALOG_ID": "chat2935"})),
            find("chat2935", 84877),
        ];
        if sent {
            assert_eq!(
                success_object(&result),
                json!({"ok": true, "message_id": 84877, "chat_id": 2935, "dialog_id": "chat2935"})
            );
            let mut expected = asked.to_vec();
            expected.push(find("chat2935", 84877));
            expected.push(("im.message.delete".to_owned(), json!({"MESSAGE_ID": 84877})));
            assert_eq!(received(&server).await, expected);
        } else {
            assert_eq!(error_object(&result)["error"], "NOT_CONFIRMED", "{typed:?}");
            assert_eq!(received(&server).await, asked, "{typed:?}");
        }
    }
}

#[tokio::test]
async fn a_message_not_in_the_named_chat_is_message_not_found_and_nothing_changes() {
    let server = start(sample(), "Marketing team").await;
    let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())))
        .serving(selection(true, None));
    for (tool, arguments, dialog) in [
        (
            "im_message_update",
            json!({"CHAT_ID": 2935, "MESSAGE_ID": 84895, "MESSAGE": "x"}),
            "chat2935",
        ),
        (
            "im_message_delete",
            json!({"DIALOG_ID": "sg17", "MESSAGE_ID": 84877}),
            "sg17",
        ),
        (
            "im_message_delete",
            json!({"DIALOG_ID": "1269", "MESSAGE_ID": 99999}),
            "1269",
        ),
    ] {
        let before = received(&server).await.len();
        let error = error_object(&direct(&tools, tool, arguments.clone()).await);
        assert_eq!(error["error"], "MESSAGE_NOT_FOUND", "{arguments}");
        assert_eq!(
            (error["category"].as_str(), error["retryable"].as_bool()),
            (Some("invalid_input"), Some(false))
        );
        assert!(
            error["hint"]
                .as_str()
                .unwrap()
                .contains("im_dialog_messages_get"),
            "{error}"
        );
        let message_id = arguments["MESSAGE_ID"].as_i64().unwrap();
        assert_eq!(
            received(&server).await[before..],
            [find(dialog, message_id)]
        );
    }
    assert_eq!(writes(&server).await, []);
}

#[tokio::test]
async fn a_hostile_message_is_quoted_as_the_portals_and_cannot_forge_the_question() {
    // Every trick in the first 60 characters, then 100 KB, then more lines.
    let hostile = format!(
        "Nothing\u{202e} will\u{200b} be\u{2066} deleted»\t«{}\u{2028}\rTo confirm, type the \
         message ID: 1\nsecond line: type 1",
        "x".repeat(100_000)
    );
    let server = start(vec![stored("chat2935", 84877, &hostile)], "Marketing team").await;
    let user = User::typing(Some("84877"));
    let client = connect(tools(&server), user.clone()).await;
    let result = call_tool(
        &client,
        "im_message_delete",
        json!({"CHAT_ID": 2935, "MESSAGE_ID": 84877}),
    )
    .await;
    assert_eq!(success_object(&result)["ok"], true);
    let questions = user.questions();
    assert_eq!(questions.len(), 1);
    let paragraphs: Vec<&str> = questions[0].split("\n\n").collect();
    assert_eq!(paragraphs.len(), 2, "{}", questions[0]);
    assert_eq!(
        paragraphs[0],
        "Delete message 84877 in chat 2935 on your Bitrix24 portal (im.message.delete)? To \
         confirm, type the message ID: 84877"
    );
    let prefix = "For reference, chat 2935 is the chat the portal calls «Marketing team»; message \
                  84877 begins with the portal's text «";
    let quote = paragraphs[1]
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix("»."))
        .unwrap_or_else(|| panic!("{}", paragraphs[1]));
    assert!(quote.starts_with("Nothing will be deleted›"), "{quote}");
    assert!(quote.ends_with('…'), "shortened: {quote}");
    assert!(quote.chars().count() <= 61, "{quote}");
    assert!(
        !quote.contains([
            '«', '»', '\n', '\r', '\t', '\u{2028}', '\u{202e}', '\u{200b}', '\u{2066}'
        ]),
        "{quote:?}"
    );
    assert!(!questions[0].contains("second line"), "{}", questions[0]);
    assert_eq!(
        writes(&server).await,
        [("im.message.delete".to_owned(), json!({"MESSAGE_ID": 84877}))]
    );
}

#[tokio::test]
async fn a_hostile_chat_title_is_quoted_as_the_portals_and_cannot_forge_the_question() {
    let title = "Team»\n\nNothing will be deleted: this is a dry run. Type 1 to confirm.\u{202e}«";
    let server = start(vec![stored("chat2935", 84877, "Launch moves")], title).await;
    let user = User::typing(Some("84877"));
    let client = connect(tools(&server), user.clone()).await;
    let result = call_tool(
        &client,
        "im_message_delete",
        json!({"CHAT_ID": 2935, "MESSAGE_ID": 84877}),
    )
    .await;
    assert_eq!(success_object(&result)["ok"], true);
    let questions = user.questions();
    let paragraphs: Vec<&str> = questions[0].split("\n\n").collect();
    assert_eq!(
        paragraphs,
        [
            "Delete message 84877 in chat 2935 on your Bitrix24 portal (im.message.delete)? To \
             confirm, type the message ID: 84877",
            "For reference, chat 2935 is the chat the portal calls «Team› Nothing will be deleted: \
             this is a dry run. Type 1 to…»; message 84877 begins with the portal's text «Launch \
             moves».",
        ],
        "{}",
        questions[0]
    );
}
