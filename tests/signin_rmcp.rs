//! rmcp's own OAuth client as a second client of the sign-in (the Python SDK's is the first, in
//! tests/interop): against the binary (`serve --transport http --auth oauth`) and the sample
//! portal, rmcp connects without a token, takes the 401's challenge, discovers the metadata from
//! it, registers itself, builds the authorization URL; a headless browser approves the consent and
//! follows the portal's sign-in and the callback; rmcp exchanges the code (PKCE, `iss` checked),
//! refreshes once (rotation), and connects its streamable HTTP client with the tokens it got. Two people sign in this way; each
//! gets their own answer, and the portal sees each call with that person's own Bitrix24 token.

mod common;

use std::collections::BTreeMap;

use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use common::signin::{Browser, REDIRECT};
use common::signin_server;
use common::*;
use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationManager, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

const SECRET: &str = "rmcp-app-s3cret-0001";

/// The binary serving sign-in for the portal's application on a free loopback port; its base URL.
async fn serve(portal: &DemoPortal) -> (tokio::process::Child, String) {
    let command = signin_server::command(&portal.rest_root(), &portal.token_url(), SECRET, "info");
    let (child, base, _) = signin_server::start(command, None).await;
    portal.set_redirect_uri(format!("{base}/oauth/callback"));
    (child, base)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// rmcp's streamable HTTP client at `/mcp`, sending requests through `manager`'s tokens.
async fn connect(
    base: &str,
    manager: AuthorizationManager,
) -> Result<RunningService<RoleClient, ()>, rmcp::service::ClientInitializeError> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
    let transport =
        StreamableHttpClientTransport::with_client(AuthClient::new(http(), manager), config);
    ().serve(transport).await
}

/// What one person's rmcp client did to sign in.
struct SignedIn {
    client: RunningService<RoleClient, ()>,
    client_id: String,
    access_token: String,
}

/// The whole sign-in as rmcp drives it, for whoever the portal's browser is logged in as.
async fn sign_in_with_rmcp(base: &str) -> SignedIn {
    let mcp_url = format!("{base}/mcp");
    // Without a token, rmcp's client gets the 401 and hands its challenge back.
    let unauthorized = AuthorizationManager::new(mcp_url.as_str()).await.unwrap();
    let refused = connect(base, unauthorized)
        .await
        .expect_err("no sign-in yet");
    let challenge = refused
        .auth_challenge()
        .unwrap_or_else(|| panic!("a challenge in {refused}"))
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            r#"Bearer error="invalid_token", resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#
        )
    );

    // Discovery from the challenge, dynamic registration, the authorization URL.
    let mut state = OAuthState::new(mcp_url.as_str(), Some(http()))
        .await
        .unwrap();
    state
        .start_authorization(
            AuthorizationRequest::new(REDIRECT)
                .with_client_name("rmcp test client")
                .with_challenge(challenge),
        )
        .await
        .unwrap();
    let (client_id, credentials) = state.get_credentials().await.unwrap();
    assert!(credentials.is_none(), "no tokens before the callback");
    let authorization_url = state.get_authorization_url().await.unwrap();
    let (endpoint, query) = authorization_url.split_once('?').unwrap();
    assert_eq!(endpoint, format!("{base}/authorize"));
    let asked: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
    assert_eq!(asked["client_id"], client_id);
    assert_eq!(asked["redirect_uri"], REDIRECT);
    assert_eq!(asked["response_type"], "code");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["resource"], mcp_url);

    // The browser: consent approved, the portal's sign-in, our callback, back at the client.
    let mut browser = Browser::new();
    let back = browser.approve(base, &authorization_url).await;
    assert_eq!(browser.pages.len(), 1, "one consent page");
    assert!(
        browser.pages[0].contains("rmcp test client"),
        "the consent page names the client"
    );
    let returned: BTreeMap<String, String> =
        serde_urlencoded::from_str(back.split_once('?').unwrap().1).unwrap();
    assert_eq!(returned["state"], asked["state"]);
    assert_eq!(returned["iss"], base);
    state
        .handle_callback_with_issuer(
            &returned["code"],
            &returned["state"],
            Some(&returned["iss"]),
        )
        .await
        .unwrap();

    let OAuthState::Authorized(manager) = state else {
        panic!("rmcp is authorized after the callback");
    };
    // rmcp's refresh is accepted too: a new pair (rotation), which the client then uses.
    let (_, first) = manager.get_credentials().await.unwrap();
    let first = serde_json::to_value(first.expect("tokens after the callback")).unwrap();
    let renewed = serde_json::to_value(manager.refresh_token().await.unwrap()).unwrap();
    for name in ["access_token", "refresh_token"] {
        assert!(renewed[name].is_string(), "{renewed}");
        assert_ne!(renewed[name], first[name], "{name} rotated");
    }
    let access_token = manager.get_access_token().await.unwrap();
    assert_eq!(renewed["access_token"], access_token);
    let client = connect(base, manager).await.unwrap();
    SignedIn {
        client,
        client_id,
        access_token,
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_signs_two_people_in_and_each_calls_as_themselves() {
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap();
    let (mut child, base) = serve(&portal).await;

    portal.sign_in_browser_as(99);
    let anna = sign_in_with_rmcp(&base).await;
    portal.sign_in_browser_as(1271);
    let maria = sign_in_with_rmcp(&base).await;
    assert_ne!(anna.client_id, maria.client_id, "each registered itself");
    assert_ne!(anna.access_token, maria.access_token);

    let tools = anna.client.list_all_tools().await.unwrap();
    assert!(
        tools.iter().any(|tool| tool.name == "im_chat_user_list"),
        "{:?}",
        tools.iter().map(|tool| &tool.name).collect::<Vec<_>>()
    );
    let names = |list: &[rmcp::model::Tool]| -> Vec<String> {
        list.iter().map(|tool| tool.name.to_string()).collect()
    };
    let marias_tools = maria.client.list_all_tools().await.unwrap();
    assert_eq!(names(&tools), names(&marias_tools));

    // Chat 2937 (deal 1663's discussion) has Anna, Alexander and Anton; Maria is not in it.
    let answer = success_object(&chat_users(&anna.client, 2937).await);
    assert_eq!(answer["user_ids"], json!([99, 1269, 1300]));
    let answer = success_object(&chat_users(&maria.client, 2937).await);
    assert_eq!(answer["user_ids"], json!([]));
    assert_eq!(callers_of(&portal, "im.chat.user.list"), [99, 1271]);
    // Each person's sign-in exchanged one Bitrix24 code; our tokens never reached the portal.
    assert_eq!(
        (portal.code_exchanges(99), portal.code_exchanges(1271)),
        (1, 1)
    );
    for request in portal.requests() {
        let seen = format!("{request:?}");
        for ours in [&anna.access_token, &maria.access_token] {
            assert!(!seen.contains(ours.as_str()), "{seen}");
        }
    }

    anna.client.cancel().await.unwrap();
    maria.client.cancel().await.unwrap();
    child.kill().await.unwrap();
}
