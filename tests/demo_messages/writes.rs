//! Posting, editing and deleting as the caller, each refusal changing nothing, and every user
//! reading and writing only where they are a member.

use reqwest::StatusCode;
use serde_json::json;

use super::support::{call, call_as, call_form, get, ids, portal, refused, search, token_for};

#[tokio::test]
async fn each_user_reads_and_writes_only_where_they_are_a_member() {
    let portal = portal().await;
    let anna = token_for(&portal, 99).await;
    let maria = token_for(&portal, 1271).await;
    let deal = json!({"DIALOG_ID": "chat2937"});
    assert_eq!(
        call_as(&portal, &anna, "im.dialog.messages.get", deal.clone())
            .await
            .0,
        StatusCode::OK
    );
    refused(
        &call_as(&portal, &maria, "im.dialog.messages.get", deal).await,
        StatusCode::FORBIDDEN,
        "ACCESS_ERROR",
    );
    refused(
        &call_as(
            &portal,
            &maria,
            "im.dialog.messages.search",
            json!({"CHAT_ID": 2937}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "ACCESS_ERROR",
    );
    let before = portal.messages(2937).len();
    refused(
        &call_as(
            &portal,
            &maria,
            "im.message.add",
            json!({"DIALOG_ID": "chat2937", "MESSAGE": "hi"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "ACCESS_ERROR",
    );
    assert_eq!(portal.messages(2937).len(), before);
    // Maria finds her own invoice notes, in Finance too, where Anna is not.
    let (_, finance) = call_as(
        &portal,
        &maria,
        "im.dialog.messages.search",
        json!({"CHAT_ID": 2936, "SEARCH_MESSAGE": "invoice"}),
    )
    .await;
    assert_eq!(ids(&finance).len(), 1);
    // Her private dialog with Anna is "99" to her; she has read Marketing to the end.
    let (_, private) = call_as(
        &portal,
        &maria,
        "im.dialog.messages.get",
        json!({"DIALOG_ID": "99"}),
    )
    .await;
    assert_eq!(private["result"]["chat_id"], 5002);
    let (_, marketing) = call_as(
        &portal,
        &maria,
        "im.dialog.messages.get",
        json!({"DIALOG_ID": "chat2935", "LIMIT": 3}),
    )
    .await;
    assert_eq!(ids(&marketing).len(), 3);
    // Her post is hers; Anna may not edit it, but as a Marketing manager may delete it.
    let (_, posted) = call_as(
        &portal,
        &maria,
        "im.message.add",
        json!({"DIALOG_ID": "chat2935", "MESSAGE": "Maria's note"}),
    )
    .await;
    let id = posted["result"].as_i64().unwrap();
    assert_eq!(portal.messages(2935).last().unwrap().author_id, 1271);
    refused(
        &call_as(
            &portal,
            &anna,
            "im.message.update",
            json!({"MESSAGE_ID": id, "MESSAGE": "x"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "CANT_EDIT_MESSAGE",
    );
    let deleted = call_as(
        &portal,
        &anna,
        "im.message.delete",
        json!({"MESSAGE_ID": id}),
    )
    .await;
    assert_eq!(
        (deleted.0, &deleted.1["result"]),
        (StatusCode::OK, &json!(true))
    );
}

#[tokio::test]
async fn writes_show_in_the_reads_and_refusals_change_nothing() {
    let portal = portal().await;
    let (status, added) = call(
        &portal,
        "im.message.add",
        json!({"DIALOG_ID": "chat2935", "MESSAGE": "Summary: [b]launch on March 2[/b]"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = added["result"].as_i64().expect("a bare integer");
    let page = get(&portal, json!({"DIALOG_ID": "chat2935", "LIMIT": 1})).await;
    let newest = &page["result"]["messages"][0];
    assert_eq!(
        (
            &newest["id"],
            &newest["author_id"],
            &newest["text"],
            &newest["unread"]
        ),
        (
            &json!(id),
            &json!(99),
            &json!("Summary: [b]launch on March 2[/b]"),
            &json!(false)
        )
    );
    // Anna's post marks the chat read for her: no more unread extras.
    assert_eq!(ids(&page).len(), 1);
    let deal_id = portal.messages(2937)[1].id;
    let before = portal.messages(2935);
    for (body, status, code) in [
        (
            json!({"DIALOG_ID": "chat2935", "MESSAGE": "  "}),
            StatusCode::BAD_REQUEST,
            "MESSAGE_EMPTY",
        ),
        (
            json!({"DIALOG_ID": "chat2936", "MESSAGE": "hi"}),
            StatusCode::FORBIDDEN,
            "ACCESS_ERROR",
        ),
        (
            json!({"MESSAGE": "hi"}),
            StatusCode::BAD_REQUEST,
            "DIALOG_ID_EMPTY",
        ),
        (
            json!({"DIALOG_ID": "chat2935", "MESSAGE": "hi", "REPLY_ID": deal_id}),
            StatusCode::BAD_REQUEST,
            "REPLY_FROM_OTHER_CHAT_ERROR",
        ),
        (
            json!({"DIALOG_ID": "chat2935", "MESSAGE": "hi", "REPLY_ID": 99_999_999}),
            StatusCode::BAD_REQUEST,
            "REPLY_ACCESS_ERROR",
        ),
        (
            json!({"DIALOG_ID": "chat2935", "MESSAGE": "hi", "REPLY_ID": "x"}),
            StatusCode::BAD_REQUEST,
            "PARAMS_ERROR",
        ),
    ] {
        refused(&call(&portal, "im.message.add", body).await, status, code);
    }
    assert_eq!(portal.messages(2935), before);
    // A reply in the same chat, as a form with string numbers.
    let (_, reply) = call_form(
        &portal,
        "im.message.add",
        &[
            ("DIALOG_ID", "chat2935"),
            ("MESSAGE", "Yes"),
            ("REPLY_ID", &id.to_string()),
        ],
    )
    .await;
    let reply_id = reply["result"].as_i64().unwrap();
    assert_eq!(
        portal.messages(2935).last().unwrap().params["REPLY_ID"],
        json!(id)
    );
    // Past 20,000 characters the text is cut and marked.
    let long = "é".repeat(25_000);
    call(
        &portal,
        "im.message.add",
        json!({"DIALOG_ID": "chat2935", "MESSAGE": long}),
    )
    .await;
    let stored = portal.messages(2935).last().unwrap().text.clone();
    assert_eq!(stored, format!("{} (...)", "é".repeat(20_000)));
    // SYSTEM=Y: a system message, named after its poster.
    call(
        &portal,
        "im.message.add",
        json!({"DIALOG_ID": "chat2935", "MESSAGE": "Deploy done", "SYSTEM": "Y"}),
    )
    .await;
    let found = search(
        &portal,
        json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "deploy done"}),
    )
    .await;
    let system = &found["result"]["messages"][0];
    assert_eq!(
        (&system["isSystem"], &system["author_id"], &system["text"]),
        (
            &json!(true),
            &json!(0),
            &json!("[b]Anna Petrova[/b]\nDeploy done")
        )
    );
    // Update: the author's own; IS_EDITED; unknown IDs; someone else's.
    assert_eq!(
        call(
            &portal,
            "im.message.update",
            json!({"MESSAGE_ID": id, "MESSAGE": "Summary v2"})
        )
        .await
        .1["result"],
        true
    );
    let edited = portal
        .messages(2935)
        .into_iter()
        .find(|m| m.id == id)
        .unwrap();
    assert_eq!(
        (edited.text.as_str(), &edited.params["IS_EDITED"]),
        ("Summary v2", &json!("Y"))
    );
    refused(
        &call(
            &portal,
            "im.message.update",
            json!({"MESSAGE_ID": 99_999_999, "MESSAGE": "x"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "MESSAGE_ID_ERROR",
    );
    refused(
        &call(&portal, "im.message.delete", json!({"MESSAGE_ID": 0})).await,
        StatusCode::BAD_REQUEST,
        "MESSAGE_ID_ERROR",
    );
    let alexander_s = portal
        .messages(2937)
        .iter()
        .find(|m| m.author_id == 1269)
        .unwrap()
        .id;
    refused(
        &call(
            &portal,
            "im.message.update",
            json!({"MESSAGE_ID": alexander_s, "MESSAGE": "x"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "CANT_EDIT_MESSAGE",
    );
    // In the deal chat Anna is no manager: Alexander's message is not hers to delete.
    refused(
        &call(
            &portal,
            "im.message.delete",
            json!({"MESSAGE_ID": alexander_s}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "CANT_EDIT_MESSAGE",
    );
    // An empty MESSAGE deletes; delete is soft; search no longer finds it.
    assert_eq!(
        call(
            &portal,
            "im.message.update",
            json!({"MESSAGE_ID": reply_id, "MESSAGE": ""})
        )
        .await
        .1["result"],
        true
    );
    assert_eq!(
        call(&portal, "im.message.delete", json!({"MESSAGE_ID": id}))
            .await
            .1["result"],
        true
    );
    let page = get(&portal, json!({"DIALOG_ID": "chat2935", "LIMIT": 4})).await;
    for m in page["result"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"] == id || m["id"] == reply_id)
    {
        assert_eq!(
            (&m["text"], &m["params"]),
            (
                &json!("This message was deleted."),
                &json!({"IS_DELETED": "Y"})
            )
        );
    }
    assert_eq!(
        ids(&search(
            &portal,
            json!({"CHAT_ID": 2935, "SEARCH_MESSAGE": "Summary"})
        )
        .await),
        Vec::<i64>::new()
    );
}

#[tokio::test]
async fn the_portal_stops_taking_messages_at_its_bound() {
    let portal = portal().await;
    let held: usize = [1, 2935, 2936, 2937, 2938, 2939, 2940, 5001, 5002]
        .iter()
        .map(|chat| portal.messages(*chat).len())
        .sum();
    for n in held..10_000 {
        portal.post_as(1269, 5001, &n.to_string());
    }
    let before = portal.messages(2935).len();
    let refused_add = call(
        &portal,
        "im.message.add",
        json!({"DIALOG_ID": "chat2935", "MESSAGE": "one too many"}),
    )
    .await;
    refused(&refused_add, StatusCode::BAD_REQUEST, "CHAT_ID");
    assert_eq!(refused_add.1["error_description"], "Error creating message");
    assert_eq!(portal.messages(2935).len(), before);
}
