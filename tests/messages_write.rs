//! The message write tools against a fake portal (wiremock on loopback, `message_portal`): the
//! exact requests a post sends (with the footer within the limit), refusals that send nothing (an
//! empty edit, an over-long text), and a post whose outcome is unknown that is never sent again.
//! The confirmations are in messages_confirm.rs, the write log in messages_write_log.rs.

mod common;
mod message_portal;

use bitrix24_mcp::tools::Bitrix24Tools;
use common::elicit::{User, connect};
use common::*;
use message_portal::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

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
