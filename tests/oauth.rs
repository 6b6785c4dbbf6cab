//! OAuth against the sample portal's token server: the token travels in the body, expiry triggers
//! exactly one refresh however many calls notice it, rotated tokens reach the token file before
//! they are used, refresh failures become clear errors, and tokens only go where configured.

mod common;

use std::sync::{Arc, Mutex};

use bitrix24_mcp::bitrix::token_store::TokenStore;
use bitrix24_mcp::bitrix::{OAuthSession, auth::SetupError};
use bitrix24_mcp::demo::RequestObserver;
use bitrix24_mcp::tools::Bitrix24Tools;
use common::*;
use serde_json::{Value, json};

fn body(request: &bitrix24_mcp::demo::RecordedRequest) -> Value {
    serde_json::from_str(&request.body).unwrap()
}

fn form(request: &bitrix24_mcp::demo::RecordedRequest) -> Vec<(String, String)> {
    serde_urlencoded::from_str(&request.body).unwrap()
}

#[tokio::test]
async fn calls_carry_the_access_token_in_the_body_to_the_client_endpoint() {
    let portal = oauth_portal(oauth_app(), None).await;
    let client = app_client(&portal, Some(ACCESS));
    assert_eq!(
        client.chat_user_list(2935, &|_| {}).await.unwrap(),
        [99, 1269, 1271]
    );
    let requests = portal.requests();
    assert_eq!(requests.len(), 1, "no refresh while the token is good");
    assert_eq!(requests[0].path, "/rest/im.chat.user.list");
    assert_eq!(requests[0].query, None, "no token in the URL");
    assert_eq!(body(&requests[0]), json!({"CHAT_ID": 2935, "auth": ACCESS}));
}

#[tokio::test]
async fn without_an_access_token_the_first_call_refreshes_first() {
    let portal = oauth_portal(oauth_app(), None).await;
    let client = app_client(&portal, None);
    assert_eq!(
        client.chat_user_list(2935, &|_| {}).await.unwrap(),
        [99, 1269, 1271]
    );
    let paths: Vec<String> = portal.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/oauth/token/", "/rest/im.chat.user.list"]);
}

#[tokio::test]
async fn expired_token_triggers_one_refresh_and_one_repeat() {
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    let client = app_client(&portal, Some(ACCESS));
    assert_eq!(
        client.chat_user_list(2935, &|_| {}).await.unwrap(),
        [99, 1269, 1271]
    );
    let requests = portal.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/rest/im.chat.user.list",
            "/oauth/token/",
            "/rest/im.chat.user.list"
        ]
    );

    // The refresh: a form-encoded POST with exactly the documented fields, nothing in the URL.
    let refresh = &requests[1];
    assert_eq!(refresh.method, "POST");
    assert_eq!(refresh.query, None);
    assert_eq!(
        refresh.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        form(refresh),
        [
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("client_id".to_owned(), CLIENT_ID.to_owned()),
            ("client_secret".to_owned(), CLIENT_SECRET.to_owned()),
            ("refresh_token".to_owned(), REFRESH.to_owned()),
        ]
    );
    // The repeat uses the new token; the client secret never goes to the portal.
    let repeated = body(&requests[2]);
    assert_ne!(repeated["auth"], ACCESS);
    for request in [&requests[0], &requests[2]] {
        assert!(!request.body.contains(CLIENT_SECRET) && !request.body.contains(REFRESH));
    }
}

#[tokio::test]
async fn fifty_concurrent_calls_with_an_expired_token_make_exactly_one_refresh() {
    let dir = temp_dir("concurrent");
    let file = dir.join("tokens.json");
    // At the moment each REST request arrives, note whether the token file already held the
    // access token it carries.
    let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let observer = {
        let (seen, file) = (seen.clone(), file.clone());
        RequestObserver(Arc::new(move |request| {
            let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&request.body) else {
                return;
            };
            let Some(token) = body.get("auth").and_then(Value::as_str) else {
                return;
            };
            let stored = TokenStore::new(&file).load().unwrap().unwrap();
            let in_file = stored.tokens.access_token.expose() == token;
            seen.lock().unwrap().push((token.to_owned(), in_file));
        }))
    };
    let portal = oauth_portal(oauth_app(), Some(observer)).await;
    portal.expire_access_tokens();
    let client = Arc::new(oauth_client(oauth_settings(
        &portal,
        Some(ACCESS),
        Some(REFRESH),
        Some(file.clone()),
    )));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { unshared_chat_user_list(&client).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), json!([99, 1269, 1271]));
    }
    assert_eq!(
        portal.requests_to("/oauth/token").len(),
        1,
        "exactly one refresh"
    );

    let seen = seen.lock().unwrap().clone();
    let with_new_token: Vec<_> = seen.iter().filter(|(token, _)| token != ACCESS).collect();
    assert_eq!(
        with_new_token.len(),
        50,
        "every call succeeded with the new token"
    );
    assert!(
        with_new_token.iter().all(|(_, in_file)| *in_file),
        "new token used before it was saved"
    );

    // The file holds the rotated refresh token: the portal accepts it for the next refresh.
    let stored = TokenStore::new(&file).load().unwrap().unwrap();
    assert_ne!(stored.tokens.refresh_token.expose(), REFRESH);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    portal.expire_access_tokens();
    let restarted = oauth_client(oauth_settings(
        &portal,
        Some(ACCESS),
        Some(REFRESH),
        Some(file.clone()),
    ));
    assert_eq!(
        restarted.chat_user_list(2935, &|_| {}).await.unwrap(),
        [99, 1269, 1271]
    );
}

#[tokio::test]
async fn invalid_grant_tells_the_assistant_the_app_must_be_authorized_again() {
    let portal = oauth_portal(oauth_app(), None).await;
    let client = oauth_client(oauth_settings(&portal, None, Some("spent-token"), None));
    let tools = mcp_client(Bitrix24Tools::new(Some(client))).await;
    let error = error_object(&call(&tools, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "invalid_grant");
    assert_eq!(error["http_status"], 400);
    assert_eq!(error["category"], "authentication");
    assert_eq!(error["retryable"], false);
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .starts_with("Token refresh failed")
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("the app must be authorized again")
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client() {
    let portal = oauth_portal(oauth_app(), None).await;
    let mut settings = oauth_settings(&portal, None, Some(REFRESH), None);
    settings.client_secret = bitrix24_mcp::bitrix::Secret::new("wrong-secret");
    let tools = mcp_client(Bitrix24Tools::new(Some(oauth_client(settings)))).await;
    let error = error_object(&call(&tools, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "invalid_client");
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("BITRIX24_CLIENT_SECRET")
    );
}

#[tokio::test]
async fn a_failing_refresh_is_retryable_and_the_next_call_refreshes_again() {
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    portal.fail_token_requests(1);
    let client = app_client(&portal, Some(ACCESS));
    let tools = mcp_client(Bitrix24Tools::new(Some(client))).await;
    let error = error_object(&call(&tools, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "UNEXPECTED_RESPONSE");
    assert_eq!(error["http_status"], 503);
    assert_eq!(error["retryable"], true);
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .starts_with("Token refresh failed")
    );
    let result = success_object(&call(&tools, json!({"CHAT_ID": 2935})).await);
    assert_eq!(result["count"], 3);
    assert_eq!(portal.requests_to("/oauth/token").len(), 2);
}

#[tokio::test]
async fn an_unreachable_token_server_is_a_retryable_network_error() {
    let portal = oauth_portal(oauth_app(), None).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/oauth/token/", closed.local_addr().unwrap());
    drop(closed);
    let mut settings = oauth_settings(&portal, None, Some(REFRESH), None);
    settings.token_server = bitrix24_mcp::bitrix::ServiceUrl::token_server(
        &closed_url,
        bitrix24_mcp::bitrix::HttpPolicy::HttpsOnly,
    )
    .unwrap();
    let tools = mcp_client(Bitrix24Tools::new(Some(oauth_client(settings)))).await;
    let error = error_object(&call(&tools, json!({"CHAT_ID": 2935})).await);
    assert_eq!(error["error"], "NETWORK_ERROR");
    assert_eq!(error["category"], "network");
    assert_eq!(error["retryable"], true);
    assert!(error["hint"].as_str().unwrap().contains("OAuth server"));
}

#[tokio::test]
async fn concurrent_callers_share_one_failed_refresh() {
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    portal.fail_token_requests(1);
    let client = Arc::new(app_client(&portal, Some(ACCESS)));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { unshared_chat_user_list(&client).await })
        })
        .collect();
    let mut failures = 0;
    for call in calls {
        if call.await.unwrap().is_err() {
            failures += 1;
        }
    }
    // Callers that found the token expired while the failing refresh ran share its failure;
    // any that came after it made one more attempt, which succeeded.
    let refreshes = portal.requests_to("/oauth/token").len();
    assert!(refreshes <= 2, "{refreshes} refreshes");
    assert!(failures >= 1);
}

#[tokio::test]
async fn a_client_endpoint_on_another_host_is_not_followed() {
    let mut app = oauth_app();
    app.client_endpoint = Some("https://elsewhere.example/rest/".into());
    let portal = oauth_portal(app, None).await;
    let client = app_client(&portal, None);
    for _ in 0..2 {
        assert_eq!(
            client.chat_user_list(2935, &|_| {}).await.unwrap(),
            [99, 1269, 1271]
        );
    }
    assert_eq!(
        portal.requests_to("/rest/").len(),
        2,
        "calls stayed on the configured portal"
    );
}

#[tokio::test]
async fn the_token_file_outlives_the_process_and_a_new_refresh_token_replaces_it() {
    let dir = temp_dir("restart");
    let file = dir.join("tokens.json");
    let portal = oauth_portal(oauth_app(), None).await;

    // First run: no access token, so it refreshes; the rotated pair lands in the file.
    let first = oauth_client(oauth_settings(
        &portal,
        None,
        Some(REFRESH),
        Some(file.clone()),
    ));
    first.chat_user_list(2935, &|_| {}).await.unwrap();
    drop(first);
    let saved = TokenStore::new(&file).load().unwrap().unwrap();

    // Second run with the same (now spent) environment: the file wins, no refresh needed.
    let second = oauth_client(oauth_settings(
        &portal,
        None,
        Some(REFRESH),
        Some(file.clone()),
    ));
    second.chat_user_list(2935, &|_| {}).await.unwrap();
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    drop(second);

    // The user authorizes again and pastes a new refresh token: it replaces the file's.
    portal.add_refresh_token("brand-new-refresh");
    let session = OAuthSession::open(oauth_settings(
        &portal,
        None,
        Some("brand-new-refresh"),
        Some(file.clone()),
    ))
    .unwrap();
    assert_eq!(
        session.current().tokens.refresh_token.expose(),
        "brand-new-refresh"
    );
    let reseeded = TokenStore::new(&file).load().unwrap().unwrap();
    assert_eq!(reseeded.tokens.refresh_token.expose(), "brand-new-refresh");
    assert_ne!(reseeded.seed, saved.seed);
}

#[tokio::test]
async fn without_any_refresh_token_the_session_does_not_open() {
    let portal = oauth_portal(oauth_app(), None).await;
    let file = temp_dir("none").join("missing.json");
    let err =
        OAuthSession::open(oauth_settings(&portal, Some(ACCESS), None, Some(file))).unwrap_err();
    assert!(matches!(err, SetupError::NoRefreshToken), "{err}");
}
