//! The whole sign-in through the binary (`serve --transport http --auth oauth`) against the sample
//! portal: two people sign in (registration, consent, the portal's sign-in, the callback, the
//! token), and each one's calls reach the portal with their own Bitrix24 token and get their own
//! answers; a session opened by one refuses the other's token; tokens the server never issued
//! get the challenge.

mod common;

use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use common::signin::Browser;
use common::signin_server;
use common::*;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

const SECRET: &str = "e2e-app-s3cret-0001";

/// The binary serving sign-in for the portal's application on a free loopback port; its base URL.
async fn serve(portal: &DemoPortal) -> (tokio::process::Child, String) {
    let command = signin_server::command(&portal.rest_root(), &portal.token_url(), SECRET, "info");
    let (child, base, _) = signin_server::start(command, None).await;
    portal.set_redirect_uri(format!("{base}/oauth/callback"));
    (child, base)
}

/// Signs `user_id` in (the portal's browser is logged in as them): their MCP access token.
async fn sign_in(portal: &DemoPortal, base: &str, user_id: i64) -> String {
    portal.sign_in_browser_as(user_id);
    Browser::new().sign_in(base).await.access_token
}

/// The users whose Bitrix24 tokens the portal saw on `method`, in order.
fn callers_of(portal: &DemoPortal, method: &str) -> Vec<i64> {
    portal
        .requests_to(&format!("/rest/{method}"))
        .iter()
        .map(|request| {
            let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
            let token = body["auth"].as_str().expect("the call carries its token");
            portal.token_user(token).expect("a token the portal issued")
        })
        .collect()
}

#[tokio::test]
async fn each_person_signed_in_calls_as_themselves_and_keeps_their_session() {
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap();
    let (mut child, base) = serve(&portal).await;
    let anna = sign_in(&portal, &base, 99).await;
    let maria = sign_in(&portal, &base, 1271).await;
    let client = |token: &str| {
        let config =
            StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(token);
        ().serve(StreamableHttpClientTransport::from_config(config))
    };
    let as_anna = client(&anna).await.unwrap();
    let as_maria = client(&maria).await.unwrap();
    // Chat 2936 has Alexander and Maria, not Anna.
    let answer = success_object(&chat_users(&as_anna, 2936).await);
    assert_eq!(answer["user_ids"], json!([]));
    let answer = success_object(&chat_users(&as_maria, 2936).await);
    assert_eq!(answer["user_ids"], json!([1269, 1271]));
    assert_eq!(callers_of(&portal, "im.chat.user.list"), [99, 1271]);
    as_anna.cancel().await.unwrap();
    as_maria.cancel().await.unwrap();

    // A session Anna opened does not take Maria's token.
    let http = reqwest::Client::new();
    let post = |token: &str, body: &Value| {
        http.post(format!("{base}/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(body)
    };
    let opened = post(&anna, &initialize()).send().await.unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let refused = post(&maria, &list)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    // A token this server never issued (a Bitrix24 one included) gets the challenge.
    let bitrix_token = portal.requests_to("/rest/im.chat.user.list")[0]
        .body
        .clone();
    let bitrix_token: Value = serde_json::from_str(&bitrix_token).unwrap();
    for token in ["never-issued", bitrix_token["auth"].as_str().unwrap()] {
        let response = post(token, &initialize()).send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"].to_str().unwrap(),
            format!(
                r#"Bearer error="invalid_token", resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#
            )
        );
    }
    child.kill().await.unwrap();
}

#[tokio::test]
async fn when_bitrix24_ends_a_sign_in_the_call_says_sign_in_again_and_the_next_request_gets_401() {
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap();
    let (mut child, base) = serve(&portal).await;
    let anna = sign_in(&portal, &base, 99).await;
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(&anna);
    let as_anna = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    // The app is uninstalled: Anna's Bitrix24 tokens stop working, and so does a refresh.
    portal.uninstall_app();
    let answer = error_object(&chat_users(&as_anna, 2935).await);
    assert_eq!(answer["category"], "authentication", "{answer}");
    assert_eq!(
        answer["hint"],
        "Your Bitrix24 sign-in has ended (the application was uninstalled, its payment lapsed, \
         or the authorization expired): the next request asks you to sign in again through the \
         browser; do that, then retry."
    );
    // The grant is over: the next request (the same session) gets the challenge.
    let next = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .bearer_auth(&anna)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 401);
    child.kill().await.unwrap();
}
