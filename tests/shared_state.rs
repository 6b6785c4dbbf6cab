//! Several instances on one Redis: shared OAuth tokens (sealed at rest, one refresh per expiry
//! for all, a lock that outlives a killed holder only until it expires), one request-rate bucket
//! for all, operating-time blocks seen by all, and a store that goes away and comes back. Every
//! test starts a real `redis-server` on a loopback port (see `common::redis_server`).

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitrix24_mcp::bitrix::state::{RedisStore, Shared, StateKey, StateSettings, StateUrl};
use bitrix24_mcp::bitrix::token_store::decode;
use bitrix24_mcp::bitrix::{CallError, Client, HttpPolicy, WebhookUrl};
use bitrix24_mcp::demo::{DemoPortal, PortalData};
use common::redis_server::{RedisServer, STATE_KEY};
use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The server binary for the OAuth app of `portal`, keeping its state in `redis`.
fn oauth_server(portal: &DemoPortal, redis: &RedisServer) -> tokio::process::Command {
    let mut command = oauth_process(portal);
    command
        .env("BITRIX24_STATE_URL", redis.url())
        .env("BITRIX24_STATE_KEY", STATE_KEY)
        // The bucket is shared too: lifted out of the way of tests about tokens.
        .env("BITRIX24_RATE_LIMIT", "1000")
        .env("BITRIX24_RATE_BURST", "1000");
    command
}

/// The record key of the test app's tokens on `portal`.
fn tokens_key(portal: &DemoPortal) -> String {
    let host = url::Url::parse(&portal.rest_root()).unwrap();
    let host = format!("{}_{}", host.host_str().unwrap(), host.port().unwrap());
    format!("bitrix24-mcp:{host}:{CLIENT_ID}:tokens")
}

/// The pair stored for the test app, opened with the test key.
fn stored_pair(redis: &RedisServer, portal: &DemoPortal) -> (String, String) {
    let key = tokens_key(portal);
    let raw = redis.get(&key).expect("a token record");
    let plain = StateKey::parse(STATE_KEY)
        .unwrap()
        .open(&raw, key.as_bytes())
        .expect("the record opens with the key");
    let stored = decode(&plain).expect("a whole record");
    (
        stored.tokens.access_token.expose().to_owned(),
        stored.tokens.refresh_token.expose().to_owned(),
    )
}

/// Waits until `condition` holds (bounded: a condition that never holds fails the test).
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_redis_refresh_once_per_expiry_and_store_no_token_in_clear() {
    let Some(redis) = RedisServer::start("tokens") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(mcp_process(oauth_server(&portal, &redis)).await);
    }
    expiry_cycles(&portal, &processes, 5).await;
    for process in processes {
        process.cancel().await.unwrap();
    }
    // The store holds the newest pair, sealed: no token or secret appears in any raw value.
    let (access, refresh) = stored_pair(&redis, &portal);
    assert_ne!(refresh, REFRESH);
    let dump = redis.dump();
    assert!(dump.iter().any(|(key, _)| key == &tokens_key(&portal)));
    for (key, value) in &dump {
        let value = String::from_utf8_lossy(value);
        for secret in [
            access.as_str(),
            refresh.as_str(),
            REFRESH,
            ACCESS,
            CLIENT_SECRET,
        ] {
            assert!(!value.contains(secret), "{key} holds a token in clear");
            assert!(!key.contains(secret), "a key names a token");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_lock_holder_killed_mid_refresh_holds_the_others_only_until_its_lock_expires() {
    let Some(redis) = RedisServer::start("killed-holder") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    // The token server stalls the first refresh: its process holds the lock, mid-refresh.
    portal.stall_token_requests(1);
    let mut holder = oauth_server(&portal, &redis);
    holder
        .args(["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#])
        .env("BITRIX24_STATE_LOCK_TTL", "2s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut holder = holder.spawn().unwrap();
    until("the first refresh request", || {
        portal.requests_to("/oauth/token").len() == 1
    })
    .await;
    let lock = tokens_key(&portal).replace(":tokens", ":refresh-lock");
    assert!(redis.get(&lock).is_some(), "the holder has the lock");
    holder.start_kill().unwrap();
    holder.wait().await.unwrap();

    let others = [
        mcp_process(oauth_server(&portal, &redis)).await,
        mcp_process(oauth_server(&portal, &redis)).await,
    ];
    let results = futures::future::join_all(
        others
            .iter()
            .enumerate()
            .map(|(i, process)| chat_users(process, 2935 + i as i64 * 1000)),
    )
    .await;
    for result in &results {
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    // One refresh after the stalled one; the stored pair is whole and is the new one.
    assert_eq!(portal.requests_to("/oauth/token").len(), 2);
    let (_, refresh) = stored_pair(&redis, &portal);
    assert_ne!(refresh, REFRESH);
    for process in others {
        process.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_retryably_while_redis_is_down_and_succeed_once_it_is_back() {
    let Some(mut redis) = RedisServer::start("restart") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    let process = mcp_process(oauth_server(&portal, &redis)).await;
    portal.expire_access_tokens();
    success_object(&chat_users(&process, 2935).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    let before = portal.requests().len();

    redis.stop();
    let error = error_object(&chat_users(&process, 2935).await);
    assert_eq!(error["error"], "STATE_UNAVAILABLE");
    assert_eq!(error["retryable"], true);
    let description = error["error_description"].as_str().unwrap();
    assert!(
        description.contains(&format!("state store {}", redis.url())),
        "{description}"
    );
    assert_eq!(
        portal.requests().len(),
        before,
        "nothing reached the portal"
    );

    redis.restart();
    assert_eq!(
        success_object(&chat_users(&process, 2935).await)["user_ids"],
        json!([99, 1269, 1271])
    );
    // No token was lost: the next expiry is one refresh with the stored pair, and it works.
    portal.expire_access_tokens();
    success_object(&chat_users(&process, 2936).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 2);
    process.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_one_redis_stay_inside_the_portals_bucket() {
    let Some(redis) = RedisServer::start("bucket") else {
        return;
    };
    // Bitrix24's bucket scaled up 10 times in drain so the test takes seconds: 20/s, burst 30.
    let (drain, burst) = (20.0, 30);
    let mut data = PortalData::sample(CODE);
    data.rate_limit = Some((drain, burst));
    // The instances share a stricter bucket than the portal's (16/s, burst 10): requests leave on
    // schedule but reach the portal whenever a loaded machine lets them, sometimes many together,
    // and with the same bucket on both sides one late batch was refused. The margin absorbs
    // about a second of such lateness; without sharing, three instances at 16/s would still
    // overrun the portal's 20/s long before 150 calls.
    let (client_drain, client_burst) = (16.0, 10);
    let portal = DemoPortal::start(data).await.unwrap();
    let mut processes = Vec::new();
    for _ in 0..3 {
        let mut command = tokio::process::Command::new(BIN);
        command
            .env("BITRIX24_WEBHOOK_URL", portal.webhook_url())
            .env("BITRIX24_STATE_URL", redis.url())
            .env("BITRIX24_RATE_LIMIT", client_drain.to_string())
            .env("BITRIX24_RATE_BURST", u32::to_string(&client_burst))
            .env("BITRIX24_MAX_RETRIES", "0")
            .env("RUST_LOG", "warn");
        processes.push(mcp_process(command).await);
    }
    let calls = 150;
    let started = Instant::now();
    let results = futures::future::join_all((0..calls).map(|i| {
        // Distinct chats, so no call is shared with another in the same process.
        chat_users(&processes[i % 3], 2935 + i as i64 * 1000)
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    for result in &results {
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    assert_eq!(portal.rate_limited(), 0, "the portal refused some calls");
    assert_eq!(portal.requests().len(), calls);
    let minimum = (calls as f64 - f64::from(client_burst)) / client_drain;
    eprintln!(
        "{calls} calls over 3 instances in {elapsed:.3} s; the bucket's minimum is {minimum:.3} s"
    );
    for process in processes {
        process.cancel().await.unwrap();
    }
}

/// An in-process client for `portal_uri`'s webhook sharing state through `redis`.
fn shared_client(portal_uri: &str, redis: &RedisServer) -> Client {
    let url = format!("{portal_uri}/rest/1/{CODE}/");
    let webhook = WebhookUrl::parse(&url, HttpPolicy::HttpsOnly).unwrap();
    let host = webhook.host();
    let store = RedisStore::new(&StateSettings {
        url: StateUrl::parse(&redis.url(), None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: None,
        lock_ttl: Duration::from_secs(60),
    })
    .unwrap();
    Client::new(webhook.into(), fast_options())
        .unwrap()
        .sharing(Some(Shared::new(Arc::new(store), &host, "webhook-1")))
}

#[tokio::test]
async fn a_method_blocked_for_one_instance_is_blocked_for_every_instance() {
    let Some(redis) = RedisServer::start("gate") else {
        return;
    };
    let portal = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked"
        })))
        .up_to_n_times(1)
        .mount(&portal)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [1]})))
        .mount(&portal)
        .await;
    let first = shared_client(&portal.uri(), &redis);
    let second = shared_client(&portal.uri(), &redis);
    let refused = unshared_chat_user_list(&first).await.unwrap_err();
    assert!(matches!(refused, CallError::Api(ref api) if api.code == "OPERATION_TIME_LIMIT"));

    // The other instance never asked the portal: the block came through the store.
    match unshared_chat_user_list(&second).await.unwrap_err() {
        CallError::OperationBlocked {
            method,
            retry_after,
        } => {
            assert_eq!(method, "im.chat.user.list");
            assert!(retry_after > Duration::from_secs(500), "{retry_after:?}");
        }
        other => panic!("expected OperationBlocked, got {other:?}"),
    }
    assert_eq!(portal.received_requests().await.unwrap().len(), 1);
    // Other methods go on.
    second
        .call("scope", &json!({}))
        .await
        .expect("other methods are not blocked");
}

#[tokio::test]
async fn oauth_in_redis_needs_a_key_and_every_instance_the_same_key() {
    let Some(redis) = RedisServer::start("keys") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    let output = oauth_server(&portal, &redis)
        .env_remove("BITRIX24_STATE_KEY")
        .args(["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BITRIX24_STATE_KEY"), "{stderr}");
    assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
    assert!(redis.dump().is_empty(), "nothing was stored");

    // The first instance seeds the store; one with another key cannot read it, and says so.
    let seeded = oauth_server(&portal, &redis)
        .args(["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#])
        .output()
        .await
        .unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    let other_key = "ab".repeat(32);
    let output = oauth_server(&portal, &redis)
        .env("BITRIX24_STATE_KEY", &other_key)
        .args(["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["error"], "STATE_KEY_MISMATCH");
    assert_eq!(error["category"], "configuration");
    assert_eq!(error["retryable"], false);
    let description = error["error_description"].as_str().unwrap();
    assert!(description.contains("BITRIX24_STATE_KEY"), "{description}");
    let everything = format!("{output:?}");
    for secret in [
        STATE_KEY,
        other_key.as_str(),
        REFRESH,
        ACCESS,
        CLIENT_SECRET,
    ] {
        assert!(!everything.contains(secret));
    }
}

#[tokio::test]
async fn check_shows_the_store_and_its_tokens_but_never_the_password_or_key() {
    let Some(redis) = RedisServer::start("check") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    let output = oauth_server(&portal, &redis)
        .env("BITRIX24_STATE_PASSWORD", "")
        .args(["check", "--json"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let store = format!("{} (prefix \"bitrix24-mcp\")", redis.url());
    assert_eq!(
        report["settings"]["state_store"],
        format!("shared through {store}")
    );
    assert_eq!(report["state"]["store"], store);
    assert_eq!(report["state"]["reachable"], true);
    assert_eq!(
        report["state"]["tokens"],
        "none stored yet (the first call stores the configured ones)"
    );
    let again = oauth_server(&portal, &redis)
        .arg("check")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains("oauth tokens    stored; BITRIX24_STATE_KEY opens them"),
        "{text}"
    );

    // A store that is down (with a password in its URL): not ready, the password nowhere.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = oauth_server(&portal, &redis)
        .env(
            "BITRIX24_STATE_URL",
            format!("redis://:pa55w0rdXYZ@127.0.0.1:{port}/0"),
        )
        .args(["check", "--json"])
        .output()
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&down.stdout).unwrap();
    assert_eq!(report["state"]["reachable"], false);
    assert_eq!(report["problems"][0]["code"], "STATE_UNAVAILABLE");
    assert_eq!(report["problems"].as_array().unwrap().len(), 1);
    let everything = format!("{down:?}");
    assert!(!everything.contains("pa55w0rdXYZ"));
    assert!(!everything.contains(STATE_KEY));
}

#[tokio::test]
async fn healthz_answers_503_with_the_reason_while_the_store_is_down() {
    let Some(mut redis) = RedisServer::start("healthz") else {
        return;
    };
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--transport", "http", "--bind", "127.0.0.1:0"])
        .env("BITRIX24_WEBHOOK_URL", portal.webhook_url())
        .env("BITRIX24_STATE_URL", redis.url())
        .env("BITRIX24_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (address, _) = listening_address(&mut log).await;
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let health = || async {
        let response = reqwest::get(format!("http://{address}/healthz"))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, body) = health().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    redis.stop();
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("state store is unreachable"), "{body}");
    // The endpoint is open: it names no address of the store.
    assert!(
        !body.to_string().contains(&redis.port().to_string()),
        "{body}"
    );
    redis.restart();
    let (status, _) = health().await;
    assert_eq!(status, 200, "reconnected by itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_level_shows_the_store_password_the_key_or_a_token() {
    let password = "st0rePassw0rdZZ";
    let Some(redis) = RedisServer::start_with("secrets", Some(password)) else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    let mut transcripts = String::new();
    // A refresh through the store (the password given apart), then a wrong password in the URL:
    // both at trace level.
    for (url, apart) in [
        (format!("redis://127.0.0.1:{}/0", redis.port()), password),
        (
            format!("redis://:wr0ngPassw0rd@127.0.0.1:{}/0", redis.port()),
            "",
        ),
    ] {
        let output = oauth_server(&portal, &redis)
            .env("BITRIX24_STATE_URL", url)
            .env("BITRIX24_STATE_PASSWORD", apart)
            .env("RUST_LOG", "trace")
            .args(["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#])
            .output()
            .await
            .unwrap();
        transcripts.push_str(&format!("{output:?}"));
    }
    assert!(transcripts.contains("user_ids"), "the first call worked");
    assert!(
        transcripts.contains("STATE_UNAVAILABLE"),
        "the second did not"
    );
    let (access, refresh) = stored_pair(&redis, &portal);
    for secret in [
        password,
        "wr0ngPassw0rd",
        STATE_KEY,
        &access,
        &refresh,
        REFRESH,
        ACCESS,
        CLIENT_SECRET,
    ] {
        assert!(!transcripts.contains(secret), "a secret was shown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_abandoned_mid_way_gives_its_lock_back_at_once() {
    let Some(redis) = RedisServer::start("abandoned") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    portal.stall_token_requests(1);
    let settings = oauth_settings(&portal, Some(ACCESS), Some(REFRESH), None);
    let store = Arc::new(
        RedisStore::new(&StateSettings {
            url: StateUrl::parse(&redis.url(), None).unwrap(),
            prefix: "bitrix24-mcp".into(),
            key: Some(StateKey::parse(STATE_KEY).unwrap()),
            // Far longer than the test: only an explicit release can free it in time.
            lock_ttl: Duration::from_secs(600),
        })
        .unwrap(),
    );
    let shared = Shared::new(store, &settings.portal.host(), CLIENT_ID);
    let session =
        bitrix24_mcp::bitrix::OAuthSession::open_with(settings, Some(shared.clone())).unwrap();
    let client = Arc::new(
        Client::new(
            bitrix24_mcp::bitrix::Auth::OAuth(Box::new(session)),
            fast_options(),
        )
        .unwrap()
        .sharing(Some(shared)),
    );
    let call = tokio::spawn({
        let client = client.clone();
        async move { unshared_chat_user_list(&client).await }
    });
    until("the stalled refresh request", || {
        portal.requests_to("/oauth/token").len() == 1
    })
    .await;
    let lock = tokens_key(&portal).replace(":tokens", ":refresh-lock");
    assert!(redis.get(&lock).is_some(), "the refresh holds the lock");
    // The call is abandoned (as a cancelled tool call is): the lock is released, not left to
    // expire.
    call.abort();
    until("the lock's release", || redis.get(&lock).is_none()).await;
    // And the next call refreshes at once.
    assert_eq!(
        unshared_chat_user_list(&client).await.unwrap(),
        json!([99, 1269, 1271])
    );
    assert_eq!(portal.requests_to("/oauth/token").len(), 2);
}

#[tokio::test]
async fn rediss_verifies_the_stores_certificate() {
    let Some((redis, ca)) = RedisServer::start_tls("tls") else {
        return;
    };
    let portal = DemoPortal::start(PortalData::sample(CODE)).await.unwrap();
    let call = |trusted: bool| {
        let mut command = tokio::process::Command::new(BIN);
        command
            .env("BITRIX24_WEBHOOK_URL", portal.webhook_url())
            .env(
                "BITRIX24_STATE_URL",
                format!("rediss://localhost:{}/0", redis.port()),
            )
            .env("BITRIX24_MAX_RETRIES", "0")
            .args(["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#]);
        if trusted {
            // A private CA, trusted the standard way for rustls' native roots.
            command.env("SSL_CERT_FILE", &ca);
        } else {
            command
                .env_remove("SSL_CERT_FILE")
                .env_remove("SSL_CERT_DIR");
        }
        command.output()
    };
    let output = call(true).await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["user_ids"], json!([99, 1269, 1271]));
    let before = portal.requests().len();
    // A certificate nobody vouched for is refused: nothing reaches the portal.
    let output = call(false).await.unwrap();
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["error"], "STATE_UNAVAILABLE", "{output:?}");
    assert_eq!(portal.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_seeded_and_reseeded_by_the_token_files_lineage_rule() {
    let Some(redis) = RedisServer::start("lineage") else {
        return;
    };
    let portal = oauth_portal(oauth_app(), None).await;
    portal.expire_access_tokens();
    // The first instance seeds the store with the configured pair and refreshes: REFRESH is
    // now dead at the portal.
    let first = mcp_process(oauth_server(&portal, &redis)).await;
    success_object(&chat_users(&first, 2935).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    let (_, rotated) = stored_pair(&redis, &portal);

    // An instance started later with the same (now spent) configuration descends from the same
    // refresh token: it adopts the stored pair instead of refreshing with a dead one.
    let second = mcp_process(oauth_server(&portal, &redis)).await;
    success_object(&chat_users(&second, 2936).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    assert_eq!(stored_pair(&redis, &portal).1, rotated);

    // The user authorizes the app again: a refresh token that is neither the stored one nor its
    // ancestor replaces the stored pair.
    portal.add_refresh_token("reauth0rizedT0ken");
    let mut reauthorized = oauth_server(&portal, &redis);
    reauthorized
        .env("BITRIX24_REFRESH_TOKEN", "reauth0rizedT0ken")
        .env_remove("BITRIX24_ACCESS_TOKEN");
    let third = mcp_process(reauthorized).await;
    success_object(&chat_users(&third, 2937).await);
    let refreshes = portal.requests_to("/oauth/token");
    assert_eq!(refreshes.len(), 2);
    assert!(refreshes[1].body.contains("reauth0rizedT0ken"));
    let (_, newest) = stored_pair(&redis, &portal);
    assert_ne!(newest, rotated);

    // The instances already running follow at their next refresh: they adopt the new lineage.
    portal.expire_access_tokens();
    for (i, process) in [&first, &second, &third].into_iter().enumerate() {
        success_object(&chat_users(process, 3000 + i as i64).await);
    }
    assert_eq!(portal.requests_to("/oauth/token").len(), 3);
    for process in [first, second, third] {
        process.cancel().await.unwrap();
    }
}
