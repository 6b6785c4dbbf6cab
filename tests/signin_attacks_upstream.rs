//! The Bitrix24 side of the sign-in attacked over real HTTP on loopback (a wiremock is the portal
//! and its token server): what a signed-in co-tenant can do by signing in again and again.

mod common;
mod signin_support;

use bitrix24_mcp::signin::SigninStore;
use serde_json::json;
use signin_support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A portal whose token server answers every code, and whose `profile` names `user_id`.
async fn portal(user_id: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "acc3ss", "refresh_token": "r3fresh", "expires_in": 3600,
            "member_id": "m-0123"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/profile"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": {"ID": user_id, "NAME": "Mallory"},
            "time": {"start": 1.0, "finish": 1.1, "duration": 0.1}
        })))
        .mount(&server)
        .await;
    server
}

/// Bitrix24 approves a signed-in user silently, so one user can sign in as often as the consent
/// page lets them (30 a minute per address). Each sign-in was a new grant with its own Bitrix24
/// pair, for 30 days: in memory mode the 10 000th filled the server and refused every other
/// user's sign-in; with Redis they grew without end. Now a user keeps at most 10 grants: a new
/// one ends their oldest.
#[tokio::test]
async fn one_user_signing_in_again_and_again_keeps_a_bounded_number_of_grants() {
    let portal = portal("66").await;
    let served = serve(
        &format!("{}/rest/", portal.uri()),
        &format!("{}/oauth/token/", portal.uri()),
        SigninStore::memory(),
    )
    .await;
    let host = portal.address().to_string();
    let mut ids = Vec::new();
    for round in 0..14 {
        let state = format!("st4te-{round}");
        seed_state(&served, &state, &host).await;
        let response = callback(&served, &query("c0de", &state, &host, ""), Some(BINDING)).await;
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.contains("code="), "{location}");
        let newest = grants(&served.signin)
            .await
            .into_iter()
            .filter(|g| !ids.contains(&g.grant_id))
            .map(|g| g.grant_id)
            .collect::<Vec<_>>();
        assert_eq!(newest.len(), 1, "round {round}");
        ids.extend(newest);
    }
    let live: Vec<String> = grants(&served.signin)
        .await
        .into_iter()
        .map(|g| g.grant_id)
        .collect();
    assert_eq!(live.len(), 10, "{live:?}");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(live.contains(id), i >= 4, "grant {i}");
    }
    assert_eq!(served.signin.users().live_count(), 10);
}
