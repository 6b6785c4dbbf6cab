//! `im_dialog_messages_search` against a fake portal on loopback (wiremock, tests/messages_fake)
//! that searches as the reference says: newest matches first, `LAST_ID` for older ones, a phrase of
//! 2 characters or fewer ignored, and the plan's history limit said in `tariffRestrictions`. Each
//! test checks the exact requests the portal received; bad input is refused with zero requests.

mod common;
mod messages_fake;

use std::collections::BTreeSet;

use common::*;
use messages_fake::Fake;
use serde_json::{Value, json};

fn ids(answer: &Value) -> Vec<i64> {
    answer["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn search_below_three_characters_is_refused_without_a_request() {
    let fake = Fake::start(Fake::history(3)).await;
    for (arguments, says) in [
        (
            json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "ab"}),
            "at least 3 characters",
        ),
        (
            json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "  ab  "}),
            "at least 3 characters",
        ),
        (
            json!({"CHAT_ID": 2935}),
            "SEARCH_MESSAGE, DATE, DATE_FROM or DATE_TO",
        ),
        (json!({"SEARCH_MESSAGE": "invoice"}), "CHAT_ID is required"),
        (
            json!({"CHAT_ID": "sg17", "SEARCH_MESSAGE": "invoice"}),
            "CHAT_ID must be",
        ),
        (
            json!({"CHAT_ID": 2935, "DATE": "2026-03-04", "DATE_FROM": "2026-03-01"}),
            "or DATE_FROM/DATE_TO, not both",
        ),
        (
            json!({"CHAT_ID": 2935, "DATE": "yesterday"}),
            "DATE must be",
        ),
        (
            json!({"CHAT_ID": 2935, "DATE_FROM": "2026-02-30"}),
            "DATE_FROM must be",
        ),
        (
            json!({"CHAT_ID": 2935, "DATE_TO": "2026-03-04T25:00:00+03:00"}),
            "DATE_TO must be",
        ),
        (
            json!({"CHAT_ID": 2935, "DATE_TO": "2026-03-04T10:00:00"}),
            "DATE_TO must be",
        ),
        (
            json!({"CHAT_ID": 2935, "DATE_FROM": "2026-03-05", "DATE_TO": "2026-03-04"}),
            "DATE_FROM is after DATE_TO",
        ),
        (
            json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "invoice", "LIMIT": 51}),
            "LIMIT must be",
        ),
        (
            json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "invoice", "FIRST_ID": 5}),
            "unexpected argument \"FIRST_ID\"",
        ),
        (
            json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "invoice", "ORDER": {"ID": "ASC"}}),
            "unexpected argument \"ORDER\"",
        ),
    ] {
        let error = error_object(
            &fake
                .call("im_dialog_messages_search", arguments.clone())
                .await,
        );
        assert_eq!(error["error"], "INVALID_ARGUMENT", "{arguments}");
        let description = error["error_description"].as_str().unwrap();
        assert!(description.contains(says), "{arguments}: {description}");
    }
    assert_eq!(fake.received().await, []);
}

#[tokio::test]
async fn search_sends_one_request_and_pages_older_through_the_matches() {
    let mut history = Fake::history(120);
    for m in history.iter_mut().step_by(4) {
        m.text = format!("{} about the Invoice", m.text);
    }
    let fake = Fake::start(history).await;
    let matching: Vec<i64> = fake
        .state()
        .messages
        .iter()
        .filter(|m| m.text.contains("Invoice"))
        .map(|m| m.id)
        .collect();
    assert_eq!(matching.len(), 30);
    let mut arguments = json!({"CHAT_ID": "chat2935", "SEARCH_MESSAGE": " invoice ", "LIMIT": 8});
    let mut seen = Vec::new();
    let mut expected_requests = Vec::new();
    loop {
        let answer = success_object(
            &fake
                .call("im_dialog_messages_search", arguments.clone())
                .await,
        );
        let mut request = json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "invoice", "LIMIT": 9});
        if let Some(last) = arguments.get("LAST_ID") {
            request["LAST_ID"] = last.clone();
        }
        expected_requests.push(("im.dialog.messages.search".to_owned(), request));
        assert_eq!(answer["chat_id"], 2935);
        assert_eq!(answer["history_limited"], false);
        let page = ids(&answer);
        assert!(page.windows(2).all(|w| w[0] < w[1]));
        seen.splice(0..0, page);
        fake.arrive(2);
        if !answer["has_more"].as_bool().unwrap() {
            break;
        }
        arguments["LAST_ID"] = answer["older_than"].clone();
    }
    assert_eq!(seen, matching);
    assert_eq!(fake.received().await, expected_requests);
}

#[tokio::test]
async fn search_says_when_the_plan_hides_older_history() {
    let mut history = Fake::history(20);
    for m in &mut history {
        m.text = format!("{} invoice", m.text);
    }
    let oldest_visible = history[15].id;
    let fake = Fake::start(history).await;
    let open = success_object(
        &fake
            .call(
                "im_dialog_messages_search",
                json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "invoice"}),
            )
            .await,
    );
    assert_eq!(open["history_limited"], false);
    assert_eq!(ids(&open).len(), 20);
    fake.state().history_from = Some(oldest_visible);
    let limited = success_object(
        &fake
            .call(
                "im_dialog_messages_search",
                json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "invoice", "DATE_FROM": "2026-03-04",
                       "DATE_TO": "2026-03-05T00:00:00+03:00", "FORMAT": "bbcode"}),
            )
            .await,
    );
    assert_eq!(limited["history_limited"], true);
    assert_eq!(limited["has_more"], false);
    assert_eq!(ids(&limited), fake.ids()[15..]);
    assert_eq!(
        fake.received().await[1],
        (
            "im.dialog.messages.search".to_owned(),
            json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "invoice", "DATE_FROM": "2026-03-04",
                   "DATE_TO": "2026-03-05T00:00:00+03:00", "LIMIT": 21})
        )
    );
    let by_day = success_object(
        &fake
            .call(
                "im_dialog_messages_search",
                json!({"CHAT_ID": 2935, "DATE": "2026-03-04T00:00:00Z"}),
            )
            .await,
    );
    assert_eq!(by_day["history_limited"], true);
    assert_eq!(
        fake.received().await[2].1,
        json!({"CHAT_ID": 2935, "DATE": "2026-03-04T00:00:00Z", "LIMIT": 21})
    );
}

#[tokio::test]
async fn search_errors_are_mapped() {
    let fake = Fake::start(Fake::history(3)).await;
    let error = error_object(
        &fake
            .call(
                "im_dialog_messages_search",
                json!({"CHAT_ID": 77, "SEARCH_MESSAGE": "invoice"}),
            )
            .await,
    );
    assert_eq!(error["error"], "ACCESS_ERROR");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("You do not have access to this chat")
    );
    let authors: BTreeSet<i64> = [503, 547].into();
    let answer = success_object(
        &fake
            .call(
                "im_dialog_messages_search",
                json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "Message"}),
            )
            .await,
    );
    for m in answer["messages"].as_array().unwrap() {
        assert!(authors.contains(&m["author_id"].as_i64().unwrap()));
        assert!(["Klaus Weber", "Anna Weber"].contains(&m["author_name"].as_str().unwrap()));
    }
    assert_eq!(ids(&answer), fake.ids());
}
