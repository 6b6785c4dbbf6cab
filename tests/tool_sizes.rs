//! What the tools cost an assistant's context, in bytes: `tools/list` stays within 14 KB for the
//! default read tools and 18 KB with writes on, and a page of 20 ordinary messages is under 6 KB
//! of structured content. Sizes, not timings: the same on every machine (BENCHMARKS.md shows them).

mod common;

use bitrix24_mcp::demo::{DemoPortal, PortalData};
use bitrix24_mcp::tools::Bitrix24Tools;
use bitrix24_mcp::tools::registry::{Selection, Writes};
use common::*;
use serde_json::{Value, json};

/// `tools/list`'s result as compact JSON, for this selection.
fn listing_bytes(selection: Selection) -> usize {
    let tools = Bitrix24Tools::new(None).serving(selection).listed();
    serde_json::to_string(&json!({"tools": tools}))
        .unwrap()
        .len()
}

#[test]
fn the_tool_listing_stays_within_its_budget() {
    let reads = listing_bytes(Selection::all());
    assert!(
        reads <= 14 * 1024,
        "tools/list with the read tools is {reads} bytes"
    );
    let writes = listing_bytes(Selection::all().with_writes(Writes {
        allowed: true,
        ..Writes::default()
    }));
    assert!(
        writes <= 18 * 1024,
        "tools/list with writes on is {writes} bytes"
    );
}

#[tokio::test]
async fn a_page_of_twenty_ordinary_messages_is_under_six_kilobytes() {
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let tools = Bitrix24Tools::new(Some(demo_client(&portal)));
    // The Marketing chat, two pages back from its newest: ordinary messages, one line each.
    let call = async |arguments: Value| {
        let result = tools
            .call("im_dialog_messages_get", arguments.as_object())
            .await
            .unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
        result.structured_content.unwrap()
    };
    let mut page = call(json!({"CHAT_ID": 2935, "LIMIT": 20})).await;
    for _ in 0..2 {
        page = call(json!({"CHAT_ID": 2935, "LIMIT": 20, "LAST_ID": page["older_than"]})).await;
    }
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 20, "{page}");
    assert!(
        messages
            .iter()
            .all(|m| m.get("flags").is_none() && m.get("files").is_none()),
        "not ordinary: {page}"
    );
    let bytes = serde_json::to_string(&page).unwrap().len();
    assert!(bytes < 6 * 1024, "a page of 20 is {bytes} bytes: {page}");
}
