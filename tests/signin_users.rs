//! Every call as its user: each grant's client has its own token lineage and its own shared
//! reads, while the portal's connections, rate bucket and operating blocks are one for all.
//! Expiry noticed by ten concurrent calls costs one refresh (also across two instances on one
//! real Redis); a dead Bitrix24 grant ends the user's sign-in; a user's lack of rights does not.

mod common;
mod signin_support;

use std::time::Duration;

use bitrix24_mcp::bitrix::{CallError, RateOptions};
use bitrix24_mcp::signin::SigninStore;
use bitrix24_mcp::signin::grants::Rejection;
use bitrix24_mcp::signin::users::{Unusable, pair_keys};
use common::redis_server::RedisServer;
use common::*;
use serde_json::json;
use signin_support::*;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Ten calls at once through one user's client; each a request of its own (not a shared read).
async fn ten_calls(clients: &[std::sync::Arc<bitrix24_mcp::bitrix::Client>]) {
    let calls = (0..10).map(|i| {
        let client = clients[i % clients.len()].clone();
        async move { unshared_chat_user_list(&client).await }
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap(), json!([99, 1269, 1271]));
    }
}

#[tokio::test]
async fn ten_concurrent_calls_of_one_user_after_expiry_refresh_once() {
    let portal = oauth_portal(oauth_app(), None).await;
    let signin = instance(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::memory(),
    );
    let grant = signed_in(&signin, 99, pair(ACCESS, REFRESH)).await;
    let client = signin.users().client_for(&grant).await.unwrap();
    portal.expire_access_tokens();
    ten_calls(std::slice::from_ref(&client)).await;
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    // The same client again (cached): no new refresh, and the rotated pair is the one in use.
    let again = signin.users().client_for(&grant).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&client, &again));
    ten_calls(&[again]).await;
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_refresh_a_users_pair_once_and_keep_it_sealed() {
    let Some(redis) = RedisServer::start("signin-users-refresh") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    let first = instance(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::redis(redis_store(&redis.url())),
    );
    let second = instance(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::redis(redis_store(&redis.url())),
    );
    let grant = signed_in(&first, 99, pair(ACCESS, REFRESH)).await;
    let clients = [
        first.users().client_for(&grant).await.unwrap(),
        second.users().client_for(&grant).await.unwrap(),
    ];
    portal.expire_access_tokens();
    ten_calls(&clients).await;
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);

    // The store holds the rotated pair, sealed under the grant's key; no token in clear.
    let [record, lock] = pair_keys(first.store(), &grant.grant_id);
    assert_eq!(
        record,
        format!("bitrix24-mcp:signin:pair:{}:tokens", grant.grant_id)
    );
    assert_eq!(
        lock,
        format!("bitrix24-mcp:signin:pair:{}:refresh-lock", grant.grant_id)
    );
    let current = match clients[0].auth() {
        bitrix24_mcp::bitrix::Auth::OAuth(session) => session.current().tokens.clone(),
        _ => unreachable!(),
    };
    assert_ne!(current.refresh_token.expose(), REFRESH);
    assert!(redis.get(&record).is_some());
    for (key, value) in redis.dump() {
        let value = String::from_utf8_lossy(&value);
        for secret in [
            ACCESS,
            REFRESH,
            CLIENT_SECRET,
            current.access_token.expose(),
            current.refresh_token.expose(),
        ] {
            assert!(!value.contains(secret), "{key} holds a token in clear");
        }
    }
    // A third instance, built after the rotation, calls with the rotated pair: no refresh.
    let third = instance(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::redis(redis_store(&redis.url())),
    );
    let late = third.users().client_for(&grant).await.unwrap();
    unshared_chat_user_list(&late).await.unwrap();
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
}

#[tokio::test]
async fn a_dead_bitrix24_grant_is_a_tool_error_once_then_revokes_the_sign_in() {
    let portal = oauth_portal(oauth_app(), None).await;
    let signin = instance(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::memory(),
    );
    // A refresh token the token server no longer knows (used elsewhere, expired, revoked).
    let grant = signed_in(&signin, 99, pair(ACCESS, "r3fresh-long-dead")).await;
    let (_, client) = signin.client_of(grant.clone()).await.ok().unwrap();
    portal.expire_access_tokens();
    let err = unshared_chat_user_list(&client).await.unwrap_err();
    match &err {
        CallError::TokenRefresh(inner) => {
            assert!(matches!(&**inner, CallError::Api(api) if api.code == "invalid_grant"))
        }
        other => panic!("{other:?}"),
    }
    assert!(client.grant_ended());
    // The next request: the grant is revoked and the token rejected (the transport answers 401).
    assert!(matches!(
        signin.client_of(grant.clone()).await,
        Err(Rejection::Invalid)
    ));
    assert!(grants(&signin).await.is_empty(), "the grant is gone");
    let [record, _] = pair_keys(signin.store(), &grant.grant_id);
    assert_eq!(signin.store().get(&record).await.unwrap(), None);
    assert_eq!(signin.users().live_count(), 0);
    assert!(matches!(
        signin.users().client_for(&grant).await,
        Err(Unusable::Ended)
    ));
    assert_eq!(portal.requests_to("/oauth/token").len(), 1, "no second try");
}

/// A portal whose REST answers `expired_token` to every call and whose token server answers
/// `code`; and one whose methods refuse the user with `code` (status `status`).
async fn refusing_portal(token_code: Option<&str>, rest: (u16, &str)) -> MockServer {
    let server = MockServer::start().await;
    if let Some(code) = token_code {
        Mock::given(method("POST"))
            .and(path("/oauth/token/"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(json!({"error": code, "error_description": "no"})),
            )
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/rest/im.chat.user.list"))
        .respond_with(
            ResponseTemplate::new(rest.0)
                .set_body_json(json!({"error": rest.1, "error_description": "refused"})),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn invalid_client_and_payment_required_end_the_grant_too() {
    for code in ["invalid_client", "PAYMENT_REQUIRED"] {
        let server = refusing_portal(Some(code), (401, "expired_token")).await;
        let signin = instance(
            &format!("{}/rest/", server.uri()),
            &format!("{}/oauth/token/", server.uri()),
            SigninStore::memory(),
        );
        let grant = signed_in(&signin, 7, pair(ACCESS, REFRESH)).await;
        let (_, client) = signin.client_of(grant.clone()).await.ok().unwrap();
        assert!(unshared_chat_user_list(&client).await.is_err());
        assert!(
            matches!(signin.client_of(grant).await, Err(Rejection::Invalid)),
            "{code}"
        );
        assert!(grants(&signin).await.is_empty(), "{code}");
    }
}

#[tokio::test]
async fn a_users_lack_of_rights_stays_a_tool_error_and_keeps_the_sign_in() {
    for (status, code) in [
        (403, "INVALID_CREDENTIALS"),
        (403, "ACCESS_DENIED"),
        (403, "insufficient_scope"),
    ] {
        let server = refusing_portal(None, (status, code)).await;
        let signin = instance(
            &format!("{}/rest/", server.uri()),
            &format!("{}/oauth/token/", server.uri()),
            SigninStore::memory(),
        );
        let grant = signed_in(&signin, 7, pair(ACCESS, REFRESH)).await;
        let (_, client) = signin.client_of(grant.clone()).await.ok().unwrap();
        let err = unshared_chat_user_list(&client).await.unwrap_err();
        assert!(
            matches!(&err, CallError::Api(api) if api.code == code),
            "{err:?}"
        );
        assert!(!client.grant_ended());
        assert!(signin.client_of(grant).await.is_ok(), "{code}");
        assert_eq!(grants(&signin).await.len(), 1);
        let requests = server.received_requests().await.unwrap();
        assert!(
            requests.iter().all(|r| r.url.path() != "/oauth/token/"),
            "{code}: no refresh"
        );
    }
}

#[tokio::test]
async fn identical_reads_are_shared_within_one_user_never_across_users() {
    let server = MockServer::start().await;
    for (token, members) in [
        ("acc3ss-anna", json!([99, 1269])),
        ("acc3ss-boris", json!([1269])),
    ] {
        Mock::given(method("POST"))
            .and(path("/rest/im.chat.user.list"))
            .and(body_string_contains(token))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": members})))
            .mount(&server)
            .await;
    }
    let signin = instance(
        &format!("{}/rest/", server.uri()),
        &format!("{}/oauth/token/", server.uri()),
        SigninStore::memory(),
    );
    let anna = signed_in(&signin, 99, pair("acc3ss-anna", "r-anna")).await;
    let boris = signed_in(&signin, 1269, pair("acc3ss-boris", "r-boris")).await;
    let anna = signin.users().client_for(&anna).await.unwrap();
    let boris = signin.users().client_for(&boris).await.unwrap();
    // All four start before any answer: Anna's two share one request, Boris's two another.
    let (a1, a2, b1, b2) = tokio::join!(
        anna.chat_user_list(2935, &|_| {}),
        anna.chat_user_list(2935, &|_| {}),
        boris.chat_user_list(2935, &|_| {}),
        boris.chat_user_list(2935, &|_| {}),
    );
    assert_eq!((a1.unwrap(), a2.unwrap()), (vec![99, 1269], vec![99, 1269]));
    assert_eq!((b1.unwrap(), b2.unwrap()), (vec![1269], vec![1269]));
    let requests = server.received_requests().await.unwrap();
    let tokens: Vec<String> = requests
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["auth"].to_string())
        .collect();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(tokens.contains(&"\"acc3ss-anna\"".to_owned()));
    assert!(tokens.contains(&"\"acc3ss-boris\"".to_owned()));
}

/// A portal whose `im.chat.user.list` answers, and whose `im.recent.list` is blocked by the
/// operating-time limit; two users signed in to it with `options`.
async fn two_users(
    options: bitrix24_mcp::bitrix::ClientOptions,
) -> (
    MockServer,
    std::sync::Arc<bitrix24_mcp::bitrix::Client>,
    std::sync::Arc<bitrix24_mcp::bitrix::Client>,
) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/im.chat.user.list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [1]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/im.recent.list"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": "OPERATION_TIME_LIMIT",
            "error_description": "Method is blocked due to operation time limit."
        })))
        .mount(&server)
        .await;
    let signin = instance_with(
        &format!("{}/rest/", server.uri()),
        &format!("{}/oauth/token/", server.uri()),
        SigninStore::memory(),
        options,
    );
    let anna = signed_in(&signin, 99, pair("acc3ss-anna", "r-anna")).await;
    let boris = signed_in(&signin, 1269, pair("acc3ss-boris", "r-boris")).await;
    let anna = signin.users().client_for(&anna).await.unwrap();
    let boris = signin.users().client_for(&boris).await.unwrap();
    (server, anna, boris)
}

#[tokio::test]
async fn every_users_client_draws_from_the_portals_one_rate_bucket() {
    // One request in the bucket, the next slot a long way off.
    let (server, anna, boris) = two_users(bitrix24_mcp::bitrix::ClientOptions {
        rate: RateOptions {
            per_second: 0.001,
            burst: 2,
            max_wait: Duration::ZERO,
        },
        ..fast_options()
    })
    .await;
    unshared_chat_user_list(&anna).await.unwrap();
    let err = unshared_chat_user_list(&boris).await.unwrap_err();
    assert!(matches!(err, CallError::RateLimited { .. }), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_method_blocked_for_one_user_is_blocked_for_every_user() {
    let (server, anna, boris) = two_users(fast_options()).await;
    let err = anna.call("im.recent.list", &json!({})).await.unwrap_err();
    assert!(matches!(&err, CallError::Api(api) if api.code == "OPERATION_TIME_LIMIT"));
    let err = boris.call("im.recent.list", &json!({})).await.unwrap_err();
    assert!(matches!(err, CallError::OperationBlocked { .. }), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn in_memory_the_number_of_signed_in_users_is_capped_and_revoking_makes_room() {
    use bitrix24_mcp::signin::users::MAX_MEMORY_GRANTS;
    let signin = instance(
        "http://127.0.0.1:9/rest/",
        "http://127.0.0.1:9/oauth/token/",
        SigninStore::memory(),
    );
    let users = signin.users();
    for n in 0..MAX_MEMORY_GRANTS {
        users
            .store_pair(&format!("grant-{n}"), pair("a", "r"))
            .await
            .unwrap();
    }
    let err = users
        .store_pair("one-too-many", pair("a", "r"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("BITRIX24_STATE_URL"), "{err}");
    assert_eq!(users.live_count(), MAX_MEMORY_GRANTS);
    // A revoked grant (revoked by the grants, which delete its pair key) frees its place.
    signin.grants().revoke("grant-17").await.unwrap();
    users.store_pair("one-more", pair("a", "r")).await.unwrap();
    assert_eq!(users.live_count(), MAX_MEMORY_GRANTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_revoked_on_one_instance_ends_at_the_next_refresh_on_another() {
    let Some(redis) = RedisServer::start("signin-users-revoked-elsewhere") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    let first = instance(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::redis(redis_store(&redis.url())),
    );
    let second = instance(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::redis(redis_store(&redis.url())),
    );
    let grant = signed_in(&first, 99, pair(ACCESS, REFRESH)).await;
    let (_, client) = second.client_of(grant.clone()).await.ok().unwrap();
    first.grants().revoke(&grant.grant_id).await.unwrap();
    portal.expire_access_tokens();
    // The pair is gone from the store: not written back, not refreshed, the grant is over.
    assert!(unshared_chat_user_list(&client).await.is_err());
    assert!(client.grant_ended());
    assert!(portal.requests_to("/oauth/token").is_empty());
    let [record, _] = pair_keys(first.store(), &grant.grant_id);
    assert_eq!(redis.get(&record), None);
    assert!(matches!(
        second.client_of(grant).await,
        Err(Rejection::Invalid)
    ));
}

#[tokio::test]
async fn users_pairs_in_a_state_store_require_its_key() {
    use bitrix24_mcp::bitrix::state::{RedisStore, StateSettings, StateUrl};
    // Nothing is sent: the store connects lazily.
    let keyless = RedisStore::new(&StateSettings {
        url: StateUrl::parse("redis://127.0.0.1:9/0", None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: None,
        lock_ttl: Duration::from_secs(10),
    })
    .unwrap();
    let store = SigninStore::redis(std::sync::Arc::new(keyless));
    let (settings, _) = users(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/rest/",
        "http://127.0.0.1:9/oauth/token/",
        &SigninStore::memory(),
        fast_options(),
    );
    let err = bitrix24_mcp::signin::users::Users::new(&settings, fast_options(), None, store)
        .unwrap_err()
        .to_string();
    assert!(err.contains("set BITRIX24_STATE_KEY"), "{err}");
}

#[tokio::test]
async fn a_client_for_another_identity_shares_the_bucket_but_not_the_reads() {
    use bitrix24_mcp::bitrix::{HttpPolicy, WebhookUrl};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [1]})))
        .mount(&server)
        .await;
    let options = bitrix24_mcp::bitrix::ClientOptions {
        rate: RateOptions {
            per_second: 0.001,
            burst: 3,
            max_wait: Duration::ZERO,
        },
        ..fast_options()
    };
    let first = webhook_client(&server.uri(), options);
    let other = WebhookUrl::parse(
        &format!("{}/rest/7/another-c0de/", server.uri()),
        HttpPolicy::HttpsOnly,
    )
    .unwrap();
    let second = first.for_auth(other.into());
    // Both read the same thing at once: each identity makes its own request.
    let (a, b) = tokio::join!(
        first.chat_user_list(5, &|_| {}),
        second.chat_user_list(5, &|_| {}),
    );
    assert_eq!((a.unwrap(), b.unwrap()), (vec![1], vec![1]));
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(paths.len(), 2);
    assert!(paths.iter().any(|p| p.starts_with("/rest/7/another-c0de/")));
    // The two requests used the bucket's two slots: a third call by either is refused unsent.
    let err = second.chat_user_list(6, &|_| {}).await.unwrap_err();
    assert!(matches!(err, CallError::RateLimited { .. }), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
