//! The message write tools' typed confirmations against a fake portal (wiremock on loopback,
//! `message_portal`): a post or edit that notifies everyone, a system notice and a delete each ask
//! for the typed value and go only with it; a message not in the named chat changes nothing; a
//! hostile message or chat title is quoted as the portal's, never obeyed, in the question.

mod common;
mod message_portal;

use bitrix24_mcp::tools::Bitrix24Tools;
use common::elicit::{User, connect};
use common::*;
use message_portal::*;
use serde_json::json;

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
