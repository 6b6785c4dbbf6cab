//! One OAuth app, several processes on one machine: the token file is the shared truth. Three
//! server processes share one token file against a portal that rotates refresh tokens and
//! invalidates the old one; across five expiry cycles with concurrent calls in every process,
//! each cycle costs exactly one refresh request, no call meets invalid_grant, every call succeeds.

mod common;

use common::*;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

fn server(
    portal: &bitrix24_mcp::demo::DemoPortal,
    file: &std::path::Path,
) -> tokio::process::Command {
    let mut command = oauth_process(portal);
    command.env("BITRIX24_TOKEN_FILE", file);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_on_one_token_file_refresh_once_per_expiry() {
    let portal = oauth_portal(oauth_app(), None).await;
    let file = temp_dir("shared-tokens").join("tokens.json");
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(mcp_process(server(&portal, &file)).await);
    }
    expiry_cycles(&portal, &processes, 5).await;
    for process in processes {
        process.cancel().await.unwrap();
    }
    // The file holds the last pair, whole.
    let stored = bitrix24_mcp::bitrix::token_store::TokenStore::new(&file)
        .load()
        .unwrap()
        .unwrap();
    assert_ne!(stored.tokens.refresh_token.expose(), REFRESH);
}

#[tokio::test]
async fn a_process_that_loaded_an_old_pair_adopts_the_file_instead_of_meeting_invalid_grant() {
    // The story: two processes start while the access token is expired; the first
    // refreshes and saves; the second must not refresh with the refresh token it loaded at start.
    let portal = oauth_portal(oauth_app(), None).await;
    let file = temp_dir("old-pair").join("tokens.json");
    let first = mcp_process(server(&portal, &file)).await;
    let second = mcp_process(server(&portal, &file)).await;
    portal.expire_access_tokens();
    for process in [&first, &second] {
        let result = process
            .call_tool(
                CallToolRequestParams::new("im_chat_user_list")
                    .with_arguments(json!({"CHAT_ID": 2935}).as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        assert_eq!(success_object(&result)["user_ids"], json!([99, 1269, 1271]));
    }
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
}

#[tokio::test]
async fn an_adopted_pair_that_expired_meanwhile_is_refreshed_rather_than_reported() {
    // The first process refreshes; then an hour passes (every access token expires) before the
    // second process makes its first call. The pair it adopts from the file is expired too: it
    // refreshes with the adopted refresh token instead of reporting expired_token.
    let portal = oauth_portal(oauth_app(), None).await;
    let file = temp_dir("adopted-expired").join("tokens.json");
    let first = mcp_process(server(&portal, &file)).await;
    let second = mcp_process(server(&portal, &file)).await;
    portal.expire_access_tokens();
    success_object(&chat_users(&first, 2935).await);
    portal.expire_access_tokens();
    assert_eq!(
        success_object(&chat_users(&second, 2935).await)["user_ids"],
        json!([99, 1269, 1271])
    );
    let refreshes = portal.requests_to("/oauth/token");
    assert_eq!(
        refreshes.len(),
        2,
        "the adopted pair's refresh token was used once"
    );
    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
}
