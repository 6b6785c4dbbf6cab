//! The sample portal's chat messages over real HTTP, as the reference (§20–23) and the wire
//! contract of issue 17 describe them: histories with one portal-wide ID sequence, paging by
//! message ID with its quirks (newest first, `FIRST_ID` included, a foreign cursor answering
//! empty, unread messages beyond `LIMIT`), search with the plan's history limit, writes that the
//! reads then show, and every answer as its caller (webhook, Anna's or Maria's token).

#[path = "demo_messages/search.rs"]
mod search;
#[path = "demo_messages/support.rs"]
mod support;
#[path = "demo_messages/writes.rs"]
mod writes;

use bitrix24_mcp::demo::DemoPortal;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{call, call_form, get, ids, marketing_ids, portal, refused};

#[tokio::test]
async fn a_page_comes_newest_first_in_snake_case_with_the_unread_beyond_limit() {
    let portal = portal().await;
    let all = marketing_ids(&portal);
    assert_eq!(all.len(), 120);
    let page = get(&portal, json!({"DIALOG_ID": "chat2935"})).await;
    let newest: Vec<i64> = all.iter().rev().take(20).copied().collect();
    assert_eq!(ids(&page), newest);
    let result = &page["result"];
    assert_eq!(result["chat_id"], 2935);
    let first = &result["messages"][0];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "author_id",
            "chat_id",
            "date",
            "disappearing_date",
            "id",
            "params",
            "replaces",
            "text",
            "unread",
            "uuid"
        ]
    );
    assert_eq!(first["params"], json!([]), "empty params are PHP's []");
    let date = first["date"].as_str().unwrap();
    assert!(
        date.starts_with("2026-11-27T") && date.ends_with("+03:00"),
        "{date}"
    );
    // Anna has not read the last five; the others she has.
    let unread: Vec<bool> = result["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["unread"].as_bool().unwrap())
        .collect();
    assert_eq!(unread.iter().filter(|u| **u).count(), 5);
    assert!(unread[..5].iter().all(|u| *u));
    let user = &result["users"].as_array().unwrap()[0];
    assert!(
        user.get("first_name").is_some() && user.get("firstName").is_none(),
        "{user}"
    );
    assert_eq!(result["files"], json!([]));
    // LIMIT 3 still gives all five unread messages.
    let page = get(&portal, json!({"DIALOG_ID": "chat2935", "LIMIT": 3})).await;
    assert_eq!(
        ids(&page),
        all[115..].iter().rev().copied().collect::<Vec<_>>()
    );
    // LIMIT is at most 50.
    let page = get(&portal, json!({"DIALOG_ID": "chat2935", "LIMIT": 500})).await;
    assert_eq!(ids(&page).len(), 50);
}

/// Pages older from the newest, then newer from the oldest; with `arrivals`, someone posts
/// between pages (up to that many times in each direction).
async fn page_through(portal: &DemoPortal, arrivals: usize) -> (Vec<i64>, Vec<i64>) {
    let mut older = ids(&get(portal, json!({"DIALOG_ID": "chat2935", "LIMIT": 20})).await);
    let mut posted = 0;
    loop {
        if posted < arrivals {
            portal.post_as(1269, 2935, &format!("arriving while paging older {posted}"));
            posted += 1;
        }
        let last = *older.iter().min().unwrap();
        // As a form, every value a string.
        let (status, page) = call_form(
            portal,
            "im.dialog.messages.get",
            &[
                ("DIALOG_ID", "chat2935"),
                ("LAST_ID", &last.to_string()),
                ("LIMIT", "17"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let page = ids(&page);
        assert!(page.iter().all(|id| *id < last), "{page:?}");
        if page.is_empty() {
            break;
        }
        older.extend(page);
    }
    let oldest = *older.iter().min().unwrap();
    let mut newer = vec![oldest];
    loop {
        if posted < 2 * arrivals {
            portal.post_as(1271, 2935, &format!("arriving while paging newer {posted}"));
            posted += 1;
        }
        let first = *newer.last().unwrap();
        let page = ids(&get(
            portal,
            json!({"DIALOG_ID": "chat2935", "FIRST_ID": first, "LIMIT": 13}),
        )
        .await);
        assert_eq!(
            page.last(),
            Some(&first),
            "FIRST_ID's own message comes too, last: {page:?}"
        );
        if page.len() == 1 {
            break;
        }
        newer.extend(page[..page.len() - 1].iter().rev());
    }
    (older, newer)
}

#[tokio::test]
async fn paging_older_and_newer_through_marketing_has_no_gap_or_repeat() {
    let portal = portal().await;
    let all = marketing_ids(&portal);
    let (mut older, newer) = page_through(&portal, 0).await;
    older.reverse();
    assert_eq!(older, all);
    assert_eq!(newer, all);
}

#[tokio::test]
async fn paging_while_messages_arrive_has_no_gap_or_repeat() {
    let portal = portal().await;
    let before = marketing_ids(&portal);
    let (mut older, newer) = page_through(&portal, 6).await;
    older.reverse();
    // Older pages walk back from where they started; newer pages pick up every arrival.
    assert_eq!(older, before);
    let now = marketing_ids(&portal);
    assert_eq!(now.len(), 132);
    assert_eq!(newer, now);
}

#[tokio::test]
async fn cursors_and_dialog_ids_are_checked_as_the_portal_checks_them() {
    let portal = portal().await;
    let deal = portal.messages(2937)[1].id;
    // A cursor that is no message of this chat: empty messages, users and files.
    for cursor in ["FIRST_ID", "LAST_ID"] {
        for id in [json!(deal), json!(99_999_999)] {
            let page = get(&portal, json!({"DIALOG_ID": "chat2935", cursor: id})).await;
            let result = &page["result"];
            assert_eq!(
                (&result["messages"], &result["users"], &result["files"]),
                (&json!([]), &json!([]), &json!([])),
                "{cursor} {id}"
            );
        }
    }
    refused(
        &call(
            &portal,
            "im.dialog.messages.get",
            json!({"DIALOG_ID": "chat2935", "FIRST_ID": "abc"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "FIRST_ID_STRING",
    );
    refused(
        &call(
            &portal,
            "im.dialog.messages.get",
            json!({"DIALOG_ID": "chat2935", "LAST_ID": "12x"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "LAST_ID_STRING",
    );
    refused(
        &call(&portal, "im.dialog.messages.get", json!({"LIMIT": 5})).await,
        StatusCode::BAD_REQUEST,
        "DIALOG_ID_EMPTY",
    );
    let denied = call(
        &portal,
        "im.dialog.messages.get",
        json!({"DIALOG_ID": "chat2936"}),
    )
    .await;
    refused(&denied, StatusCode::FORBIDDEN, "ACCESS_ERROR");
    assert_eq!(
        denied.1["error_description"],
        "You do not have access to the specified dialog"
    );
    // A private dialog by the other person's ID; a workgroup by sgN.
    let private = get(&portal, json!({"DIALOG_ID": "1269"})).await;
    assert_eq!(private["result"]["chat_id"], 5001);
    assert_eq!(ids(&private).len(), 2);
    let group = get(&portal, json!({"DIALOG_ID": "sg17"})).await;
    assert_eq!(group["result"]["chat_id"], 2938);
}

#[tokio::test]
async fn the_deal_chat_holds_one_of_each_kind_of_message() {
    let portal = portal().await;
    let page = get(&portal, json!({"DIALOG_ID": "chat2937", "LIMIT": 50})).await;
    let result = &page["result"];
    let messages = result["messages"].as_array().unwrap();
    assert_eq!(messages.len(), portal.messages(2937).len());
    let find = |pred: &dyn Fn(&Value) -> bool| messages.iter().find(|m| pred(m)).unwrap().clone();
    let system = find(&|m| m["author_id"] == 0);
    assert_eq!(
        (&system["uuid"], &system["params"]["CODE"]),
        (&Value::Null, &json!(["CHAT_JOIN"]))
    );
    assert!(
        system["text"]
            .as_str()
            .unwrap()
            .starts_with("[USER=1269 REPLACE]Alexander Smith[/USER] invited ")
    );
    let bot = find(&|m| m["author_id"] == 1300);
    assert!(
        bot["params"]["ATTACH"].is_array() && bot["params"]["KEYBOARD"].is_array(),
        "{bot}"
    );
    let users = result["users"].as_array().unwrap();
    assert!(users.iter().any(|u| u["id"] == 1300 && u["bot"] == true));
    let file = find(&|m| m["params"]["FILE_ID"].is_array());
    assert_eq!(file["params"]["FILE_ID"], json!([5255]));
    let brief = &result["files"][0];
    assert_eq!(
        (
            &brief["id"],
            &brief["chatId"],
            &brief["name"],
            &brief["type"],
            &brief["authorId"]
        ),
        (
            &json!(5255),
            &json!(2937),
            &json!("brief.pdf"),
            &json!("file"),
            &json!(1269)
        )
    );
    assert!(
        brief["urlDownload"]
            .as_str()
            .unwrap()
            .contains("fileId=5255")
    );
    let edited = find(&|m| m["params"]["IS_EDITED"] == "Y");
    assert!(edited["text"].as_str().unwrap().contains("18,500 EUR"));
    let deleted = find(&|m| m["params"]["IS_DELETED"] == "Y");
    assert_eq!(deleted["text"], "This message was deleted.");
    let mention = find(&|m| {
        m["text"]
            .as_str()
            .unwrap()
            .contains("[user=1271]Maria Garcia[/user]")
    });
    assert_eq!(mention["author_id"], 99);
    let reply = find(&|m| m["params"]["REPLY_ID"].is_number() && m["author_id"] == 99);
    let target = messages
        .iter()
        .find(|m| m["id"] == reply["params"]["REPLY_ID"])
        .unwrap();
    assert!(
        target["text"].as_str().unwrap().contains("Decision:"),
        "{target}"
    );
}

#[tokio::test]
async fn ids_grow_with_dates_across_the_whole_portal() {
    let portal = portal().await;
    let mut all: Vec<_> = [1, 2935, 2936, 2937, 2938, 2939, 2940, 5001, 5002]
        .iter()
        .flat_map(|c| portal.messages(*c))
        .collect();
    all.sort_by_key(|m| m.id);
    let sequence: Vec<i64> = all.iter().map(|m| m.id).collect();
    assert_eq!(
        sequence,
        (sequence[0]..sequence[0] + sequence.len() as i64).collect::<Vec<_>>(),
        "one sequence, no gaps"
    );
    assert!(all.windows(2).all(|w| w[0].date <= w[1].date));
    let posted = portal.post_as(99, 5002, "a new one");
    assert_eq!(posted, sequence.last().unwrap() + 1);
    let private = get(&portal, json!({"DIALOG_ID": "1271"})).await;
    assert_eq!(ids(&private)[0], posted);
}
