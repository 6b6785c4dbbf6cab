//! The Bitrix24 callback (`/oauth/callback`) over real HTTP, with a wiremock as the portal and its
//! token server: only a state this server issued, once, with its browser cookie, for the
//! configured portal, goes further; the code is exchanged once, by POST, at the configured token
//! server only (a forged `server_domain` or `client_endpoint` receives nothing); the user comes
//! from `profile` (or `user.current`); the client gets its own code, or a safe error.

mod common;
mod signin_support;

use bitrix24_mcp::signin::SigninStore;
use bitrix24_mcp::signin::users::pair_keys;
use common::redis_server::RedisServer;
use common::*;
use serde_json::json;
use signin_support::*;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BITRIX_CODE: &str = "b1trixC0deFromCallback";
const NEW_ACCESS: &str = "acc3ssFromExchange";
const NEW_REFRESH: &str = "r3freshFromExchange";
const MEMBER: &str = "m-0123";

/// A portal (REST and token server on one wiremock) and an unrelated server that must hear
/// nothing.
struct Portal {
    server: MockServer,
    evil: MockServer,
}

impl Portal {
    async fn start() -> Self {
        let server = MockServer::start().await;
        let evil = MockServer::start().await;
        // Whatever reaches the evil server is recorded and counted below.
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "evil", "refresh_token": "evil", "expires_in": 3600,
                "result": {"ID": "1"}
            })))
            .mount(&evil)
            .await;
        Self { server, evil }
    }

    fn rest_root(&self) -> String {
        format!("{}/rest/", self.server.uri())
    }

    fn token_url(&self) -> String {
        format!("{}/oauth/token/", self.server.uri())
    }

    fn host(&self) -> String {
        self.server.address().to_string()
    }

    /// Our sign-in, its records in memory, in front of this portal.
    async fn serve_in_memory(&self) -> Served {
        serve(&self.rest_root(), &self.token_url(), SigninStore::memory()).await
    }

    /// The token server answers the code with a pair, naming the evil server as REST root.
    async fn exchange_answers(&self) {
        Mock::given(method("POST"))
            .and(path("/oauth/token/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": NEW_ACCESS,
                "refresh_token": NEW_REFRESH,
                "expires_in": 3600,
                "scope": "im,user_basic",
                "domain": "oauth.bitrix.info",
                "server_endpoint": format!("{}/rest/", self.evil.uri()),
                "client_endpoint": format!("{}/rest/", self.evil.uri()),
                "member_id": MEMBER,
                "status": "L"
            })))
            .mount(&self.server)
            .await;
    }

    async fn profile_answers(&self, user: serde_json::Value) {
        Mock::given(method("POST"))
            .and(path("/rest/profile"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "result": user,
                "time": {"start": 1.0, "finish": 1.1, "duration": 0.1}
            })))
            .mount(&self.server)
            .await;
    }

    async fn requests_to(&self, prefix: &str) -> Vec<wiremock::Request> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path().starts_with(prefix))
            .collect()
    }

    async fn evil_requests(&self) -> usize {
        self.evil.received_requests().await.unwrap().len()
    }
}

fn location(response: &reqwest::Response) -> url::Url {
    let location = response.headers()["location"].to_str().unwrap();
    url::Url::parse(location).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn the_code_is_exchanged_once_by_post_at_the_configured_server_and_the_client_gets_its_own() {
    let portal = Portal::start().await;
    portal.exchange_answers().await;
    portal
        .profile_answers(
            json!({"ID": "99", "NAME": "Anna", "LAST_NAME": "Petrova", "ADMIN": false}),
        )
        .await;
    let served = portal.serve_in_memory().await;
    seed_state(&served, "st4te-one", &portal.host()).await;
    let evil = format!("&server_domain={}", portal.evil.address());
    let response = callback(
        &served,
        &query(BITRIX_CODE, "st4te-one", &portal.host(), &evil),
        Some(BINDING),
    )
    .await;

    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let back = location(&response);
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some(CLIENT_STATE));
    assert_eq!(param(&back, "iss").as_deref(), Some(served.base.as_str()));
    let code = param(&back, "code").expect("the client gets a code");
    assert_ne!(code, BITRIX_CODE, "our own code, not Bitrix24's");
    for secret in [BITRIX_CODE, NEW_ACCESS, NEW_REFRESH, CLIENT_SECRET] {
        assert!(
            !back.as_str().contains(secret),
            "Bitrix24's secrets stay here"
        );
    }
    assert!(code.len() >= 43);

    // Exactly one exchange, a form POST with the app's credentials, at the configured server.
    let exchanges = portal.requests_to("/oauth/token").await;
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].method.as_str(), "POST");
    assert_eq!(exchanges[0].url.query(), None, "nothing secret in the URL");
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&exchanges[0].body).unwrap();
    assert_eq!(
        form,
        [
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("client_id".to_owned(), CLIENT_ID.to_owned()),
            ("client_secret".to_owned(), CLIENT_SECRET.to_owned()),
            ("code".to_owned(), BITRIX_CODE.to_owned()),
        ]
    );
    // The user came from `profile` on the configured portal, with the new token.
    let profile = portal.requests_to("/rest/profile").await;
    assert_eq!(profile.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&profile[0].body).unwrap();
    assert_eq!(body, json!({"auth": NEW_ACCESS}));
    // Neither server_domain nor client_endpoint was contacted.
    assert_eq!(portal.evil_requests().await, 0);

    let grants = grants(&served.signin).await;
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (
            grants[0].user_id,
            grants[0].user_name.as_str(),
            grants[0].member_id.as_str()
        ),
        (99, "Anna Petrova", MEMBER)
    );
    assert_eq!(grants[0].client_id, "client-1");
    let store = served.signin.store();
    assert!(
        store
            .get(&store.key(&["code", &bitrix24_mcp::signin::digest(&code)]))
            .await
            .unwrap()
            .is_some(),
        "the code is kept by its digest"
    );
    // The pair is the grant's: its client calls with the new token.
    let client = served.signin.users().client_for(&grants[0]).await.unwrap();
    let envelope = client.call("profile", &json!({})).await.unwrap();
    assert_eq!(envelope.result["ID"], "99");

    // The same callback again (a replay): a local 400, nothing sent anywhere.
    let replay = callback(
        &served,
        &query(BITRIX_CODE, "st4te-one", &portal.host(), &evil),
        Some(BINDING),
    )
    .await;
    assert_eq!(replay.status(), 400);
    assert!(replay.headers().get("location").is_none());
    assert_eq!(portal.requests_to("/oauth/token").await.len(), 1);
    assert_eq!(signin_support::grants(&served.signin).await.len(), 1);
}

#[tokio::test]
async fn a_missing_or_wrong_binding_cookie_is_a_local_400_and_spends_the_state() {
    let portal = Portal::start().await;
    portal.exchange_answers().await;
    portal.profile_answers(json!({"ID": "99"})).await;
    let served = portal.serve_in_memory().await;
    for (state, cookie) in [
        ("st-none", None),
        ("st-wrong", Some("another-browsers-cookie")),
    ] {
        seed_state(&served, state, &portal.host()).await;
        let response = callback(
            &served,
            &query(BITRIX_CODE, state, &portal.host(), ""),
            cookie,
        )
        .await;
        assert_eq!(response.status(), 400, "{state}");
        assert!(response.headers().get("location").is_none());
        let page = response.text().await.unwrap();
        assert!(page.contains("another browser"), "{page}");
        // Taken: the right cookie afterwards does not revive it.
        let again = callback(
            &served,
            &query(BITRIX_CODE, state, &portal.host(), ""),
            Some(BINDING),
        )
        .await;
        assert_eq!(again.status(), 400);
    }
    assert!(
        portal.requests_to("/").await.is_empty(),
        "nothing was exchanged"
    );
    assert!(grants(&served.signin).await.is_empty());
}

#[tokio::test]
async fn a_foreign_domain_or_unknown_state_is_a_local_400_and_no_token_request() {
    let portal = Portal::start().await;
    portal.exchange_answers().await;
    let served = portal.serve_in_memory().await;
    seed_state(&served, "st-foreign", &portal.host()).await;
    let foreign = callback(
        &served,
        &query(BITRIX_CODE, "st-foreign", "evil.bitrix24.com", ""),
        Some(BINDING),
    )
    .await;
    assert_eq!(foreign.status(), 400);
    assert!(foreign.text().await.unwrap().contains("another portal"));
    // A state issued for another portal host than the configured one.
    seed_state(&served, "st-other-host", "evil.bitrix24.com").await;
    let other = callback(
        &served,
        &query(BITRIX_CODE, "st-other-host", "evil.bitrix24.com", ""),
        Some(BINDING),
    )
    .await;
    assert_eq!(other.status(), 400);
    for unknown in [
        query(BITRIX_CODE, "never-issued", &portal.host(), ""),
        format!("code={BITRIX_CODE}&domain={}", portal.host()),
        "x".repeat(9000),
    ] {
        let response = callback(&served, &unknown, Some(BINDING)).await;
        assert_eq!(response.status(), 400);
        assert!(response.headers().get("location").is_none());
    }
    assert!(portal.requests_to("/").await.is_empty());
}

#[tokio::test]
async fn a_refused_exchange_sends_the_client_a_safe_error_and_creates_nothing() {
    let portal = Portal::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token/"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": format!("<script>alert(1)</script> {CLIENT_SECRET} {BITRIX_CODE}")
        })))
        .expect(1)
        .mount(&portal.server)
        .await;
    let served = portal.serve_in_memory().await;
    let response = come_back(&served, &portal, "st-refused").await;
    assert_eq!(response.status(), 302);
    let back = location(&response);
    assert!(back.as_str().starts_with(REDIRECT_URI));
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some(CLIENT_STATE));
    assert_eq!(param(&back, "iss").as_deref(), Some(served.base.as_str()));
    let text = back.as_str().to_owned();
    for leak in ["alert", CLIENT_SECRET, BITRIX_CODE, "invalid_grant"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    assert!(grants(&served.signin).await.is_empty());
    assert_eq!(served.signin.users().live_count(), 0);
}

#[tokio::test]
async fn profile_refused_falls_back_to_user_current_and_member_ids_must_agree() {
    let portal = Portal::start().await;
    portal.exchange_answers().await;
    Mock::given(method("POST"))
        .and(path("/rest/profile"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "error": "insufficient_scope", "error_description": "no basic scope"
        })))
        .mount(&portal.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/user.current"))
        .and(body_string_contains(NEW_ACCESS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": {"ID": "1269", "NAME": "Boris", "LAST_NAME": "Ivanov"}
        })))
        .mount(&portal.server)
        .await;
    let served = portal.serve_in_memory().await;
    let response = come_back(&served, &portal, "st-current").await;
    assert!(param(&location(&response), "code").is_some());
    let grants_now = grants(&served.signin).await;
    assert_eq!(
        (grants_now[0].user_id, grants_now[0].user_name.as_str()),
        (1269, "Boris Ivanov")
    );

    // The callback names another portal ID than the token server: refused, no grant.
    seed_state(&served, "st-member", &portal.host()).await;
    let mismatched = callback(
        &served,
        &format!(
            "code={BITRIX_CODE}&state=st-member&domain={}&member_id=another-portal",
            portal.host()
        ),
        Some(BINDING),
    )
    .await;
    assert_eq!(
        param(&location(&mismatched), "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(grants(&served.signin).await.len(), 1);
}

#[tokio::test]
async fn with_redis_the_pair_is_stored_sealed_and_another_instance_calls_with_it() {
    let Some(redis) = RedisServer::start("signin-callback-sealed") else {
        return;
    };
    let portal = Portal::start().await;
    portal.exchange_answers().await;
    portal
        .profile_answers(json!({"ID": "99", "NAME": "Anna"}))
        .await;
    let served = serve(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::redis(redis_store(&redis.url())),
    )
    .await;
    let response = come_back(&served, &portal, "st-redis").await;
    let code = param(&location(&response), "code").unwrap();
    let grant = grants(&served.signin).await.remove(0);

    let [record, _] = pair_keys(served.signin.store(), &grant.grant_id);
    let raw = redis.get(&record).expect("the pair is in the store");
    let raw_text = String::from_utf8_lossy(&raw);
    assert!(raw_text.starts_with("v1:"), "sealed: {raw_text}");
    for (key, value) in redis.dump() {
        let value = String::from_utf8_lossy(&value);
        for secret in [
            NEW_ACCESS,
            NEW_REFRESH,
            CLIENT_SECRET,
            BITRIX_CODE,
            BINDING,
            &code,
        ] {
            assert!(!value.contains(secret) && !key.contains(secret), "{key}");
        }
    }
    // Another instance, knowing only the store, acts as the user.
    let other = instance(
        &portal.rest_root(),
        &portal.token_url(),
        SigninStore::redis(redis_store(&redis.url())),
    );
    let client = other.users().client_for(&grant).await.unwrap();
    client.call("profile", &json!({})).await.unwrap();
    let last = portal.requests_to("/rest/profile").await.pop().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(body["auth"], NEW_ACCESS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_callbacks_with_one_state_one_finishes_and_one_is_refused() {
    let portal = Portal::start().await;
    portal.exchange_answers().await;
    portal.profile_answers(json!({"ID": "99"})).await;
    let served = portal.serve_in_memory().await;
    seed_state(&served, "st-race", &portal.host()).await;
    let query = query(BITRIX_CODE, "st-race", &portal.host(), "");
    let (first, second) = tokio::join!(
        callback(&served, &query, Some(BINDING)),
        callback(&served, &query, Some(BINDING)),
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [302, 400]);
    assert_eq!(portal.requests_to("/oauth/token").await.len(), 1);
    assert_eq!(grants(&served.signin).await.len(), 1);
}

/// The callback of a sign-in approved with `state`, coming back from `portal` with its code and
/// the browser's binding cookie.
async fn come_back(served: &Served, portal: &Portal, state: &str) -> reqwest::Response {
    seed_state(served, state, &portal.host()).await;
    callback(
        served,
        &query(BITRIX_CODE, state, &portal.host(), ""),
        Some(BINDING),
    )
    .await
}
