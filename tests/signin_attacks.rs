//! The sign-in attacked over real HTTP on loopback, as a hostile MCP client, a hostile page in the
//! user's browser, or a hostile co-tenant would: each test is an attack that once worked (or one
//! that must keep failing), with the exact answer the server gives.

#[path = "signin/server.rs"]
mod server;

use bitrix24_mcp::signin::SigninStore;
use reqwest::StatusCode;
use serde_json::Value;
use server::*;

/// Live records of one kind (`"access"`, `"refresh-used"`...).
async fn count(server: &Server, kind: &str) -> usize {
    let store = server.signin.store();
    store.scan(&store.key(&[kind, ""])).await.unwrap().len()
}

async fn refresh(server: &Server, refresh_token: &str) -> (StatusCode, Value) {
    let (status, _, body) = server
        .post(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLIENT),
            ],
        )
        .await;
    (status, body)
}

async fn authenticates(server: &Server, access_token: &str) -> bool {
    server
        .signin
        .grants()
        .authenticate(access_token)
        .await
        .is_ok()
}

/// A client holding one grant refreshes in a loop, as fast as it can: before, every refresh left
/// a live access token (an hour) and a spent-token mark (30 days) behind, so one token holder
/// could fill the memory store (100 000 records, shared by every user's sign-in) within a
/// minute, or grow Redis without end. Now rotation ends the previous access token, and a grant
/// keeps marks of only its last few spent refresh tokens: the records of a grant stay bounded
/// however often it refreshes, and reusing a recently spent token still revokes the grant.
#[tokio::test]
async fn a_refresh_loop_leaves_a_bounded_number_of_records_behind() {
    let server = Server::start(SigninStore::memory()).await;
    let code = server.code(None).await;
    let (status, _, first) = server.exchange(&code).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let mut access = first["access_token"].as_str().unwrap().to_owned();
    let mut current = first["refresh_token"].as_str().unwrap().to_owned();
    let mut spent = Vec::new();
    for _ in 0..60 {
        let (status, body) = refresh(&server, &current).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        spent.push(std::mem::replace(
            &mut current,
            body["refresh_token"].as_str().unwrap().to_owned(),
        ));
        let old_access = std::mem::replace(
            &mut access,
            body["access_token"].as_str().unwrap().to_owned(),
        );
        assert!(
            !authenticates(&server, &old_access).await,
            "a rotated-away access token still works"
        );
    }
    assert!(authenticates(&server, &access).await);
    assert_eq!(count(&server, "access").await, 1);
    assert_eq!(count(&server, "refresh").await, 1);
    let marks = count(&server, "refresh-used").await;
    assert!(
        (1..=20).contains(&marks),
        "{marks} spent-token marks kept for one grant"
    );
    // The most recently spent token is still recognised: its reuse revokes the grant.
    let (status, body) = refresh(&server, spent.last().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(!authenticates(&server, &access).await);
    let (status, _) = refresh(&server, &current).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Anyone may register a client (100 a minute) or open consent pages, each leaving a record for
/// up to 30 days; the memory store's 100 000 records were one pool for those and for every
/// signed-in user's tokens. Seventeen hours of registrations (simulated here by writing them into
/// the store) filled it, and then no signed-in user could refresh and no one could sign in. Now
/// each kind of record anyone can create has its own share: when registrations are at theirs, a
/// new one is refused (503), and signed-in users go on.
#[tokio::test]
async fn anonymous_records_cannot_take_the_room_of_signed_in_users() {
    use bitrix24_mcp::signin::store::MEMORY_CAPACITY;
    let server = Server::start(SigninStore::memory()).await;
    let code = server.code(None).await;
    let (status, _, first) = server.exchange(&code).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let store = server.signin.store();
    let day = std::time::Duration::from_secs(86_400);
    for i in 0..MEMORY_CAPACITY {
        let key = store.key(&["client", &format!("junk-{i}")]);
        // Refusals are the point: the registrations' share fills, the rest stays free.
        let _ = store.put(&key, b"{}", day).await;
    }
    let refreshed = refresh(&server, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.0, StatusCode::OK, "{}", refreshed.1);
    let (status, _, second) = server.exchange(&server.code(None).await).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let response = server
        .http
        .post(format!("{}/register", server.base))
        .header("content-type", "application/json")
        .body(r#"{"client_name":"x","redirect_uris":["http://localhost/cb"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// Tokens and codes used where another belongs, or by another client: each is refused with the
/// exact OAuth error, and none works as a bearer but an access token.
#[tokio::test]
async fn substituted_tokens_and_borrowed_codes_are_refused() {
    let server = Server::start(SigninStore::memory()).await;
    // A code redeemed by another client, or with another flow's verifier, is spent and refused.
    for (client, verifier) in [
        ("https://evil.example/client.json", VERIFIER),
        (CLIENT, "another-flows-verifier-0123456789abcdefghijklmnopq"),
    ] {
        let code = server.code(None).await;
        let (status, _, body) = server
            .post(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", client),
                    ("code_verifier", verifier),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_grant");
    }
    // A code for this server's MCP endpoint cannot be turned into a token for another resource.
    let code = server.code(None).await;
    let (status, _, body) = server
        .post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT),
                ("code_verifier", VERIFIER),
                ("resource", "https://other.example/mcp"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_target");

    let (status, _, pair) = server.exchange(&server.code(None).await).await;
    assert_eq!(status, StatusCode::OK);
    let access = pair["access_token"].as_str().unwrap();
    let refresh_token = pair["refresh_token"].as_str().unwrap();
    // A refresh token or a code is no bearer; an access token is no refresh token.
    assert!(!authenticates(&server, refresh_token).await);
    assert!(!authenticates(&server, &code).await);
    let (status, body) = refresh(&server, access).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // Another client cannot refresh it (the attempt spends the token; the grant lives on).
    let (status, _, body) = server
        .post(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "https://evil.example/client.json"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(authenticates(&server, access).await);
}
