//! The request-rate bucket shared through Redis (a real `redis-server`) never turns against the
//! user: a value this server did not write (infinite, absurdly far ahead, not a number) counts as
//! an empty bucket, and the key always has a lifetime, so whatever is left in it clears by itself.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bitrix24_mcp::bitrix::state::{RedisStore, Shared, StateSettings, StateUrl};
use bitrix24_mcp::bitrix::{CallError, Client, HttpPolicy, WebhookUrl};
use common::redis_server::RedisServer;
use common::*;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A portal that answers every call.
async fn portal() -> MockServer {
    let portal = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": ["im"]})))
        .mount(&portal)
        .await;
    portal
}

/// An in-process client for `portal`'s webhook sharing its bucket through `redis`, and the
/// bucket's key.
fn shared_client(portal: &MockServer, redis: &RedisServer) -> (Client, String) {
    let url = format!("{}/rest/1/{CODE}/", portal.uri());
    let webhook = WebhookUrl::parse(&url, HttpPolicy::HttpsOnly).unwrap();
    let store = RedisStore::new(&StateSettings {
        url: StateUrl::parse(&redis.url(), None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: None,
        lock_ttl: Duration::from_secs(60),
    })
    .unwrap();
    let shared = Shared::new(Arc::new(store), &webhook.host(), "webhook-1");
    let bucket = shared.bucket().to_owned();
    let client = Client::new(webhook.into(), fast_options())
        .unwrap()
        .sharing(Some(shared));
    (client, bucket)
}

fn connection(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

/// The key's lifetime in ms (-1: none, -2: no key).
fn pttl(redis: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut connection(redis))
        .unwrap()
}

/// Sets `key` to `value` with no lifetime, as anything else with access to the store could.
fn set_forever(redis: &RedisServer, key: &str, value: &str) {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<()>(&mut connection(redis))
        .unwrap();
    assert_eq!(pttl(redis, key), -1);
}

/// Redis's clock in µs, as the bucket reads it.
fn redis_now_us(redis: &RedisServer) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query(&mut connection(redis)).unwrap();
    secs * 1_000_000 + micros
}

#[tokio::test]
async fn junk_in_the_bucket_counts_as_empty_and_gets_a_lifetime() {
    let Some(redis) = RedisServer::start("bucket-junk") else {
        return;
    };
    let portal = portal().await;
    let (client, bucket) = shared_client(&portal, &redis);
    let junk = [
        "inf".to_owned(),
        "-inf".to_owned(),
        "1e300".to_owned(),
        "9".repeat(400),
        "nan".to_owned(),
        "not a timestamp".to_owned(),
    ];
    for (i, value) in junk.iter().enumerate() {
        set_forever(&redis, &bucket, value);
        let answer = client.call("scope", &json!({})).await;
        assert!(answer.is_ok(), "{value:.20}: {answer:?}");
        assert_eq!(portal.received_requests().await.unwrap().len(), i + 1);
        // Replaced by a bucket of this server's, which drains within a second or so and has a
        // lifetime to match.
        let ttl = pttl(&redis, &bucket);
        assert!((1..=5_000).contains(&ttl), "{value:.20}: lifetime {ttl} ms");
        let stored: String = String::from_utf8(redis.get(&bucket).unwrap()).unwrap();
        let at: i64 = stored.parse().expect("a whole number of µs");
        assert!(
            (at - redis_now_us(&redis)).abs() < 60_000_000,
            "{value:.20}: {stored}"
        );
    }
}

#[tokio::test]
async fn the_bucket_key_always_has_a_lifetime() {
    let Some(redis) = RedisServer::start("bucket-ttl") else {
        return;
    };
    let portal = portal().await;
    let (client, bucket) = shared_client(&portal, &redis);
    client.call("scope", &json!({})).await.unwrap();
    let ttl = pttl(&redis, &bucket);
    assert!((1..=5_000).contains(&ttl), "lifetime {ttl} ms");

    // A plausible bucket half an hour ahead (so the call is refused) but with no lifetime: the
    // refusal gives it one, until the bucket would have drained.
    let ahead = redis_now_us(&redis) + 1_800_000_000;
    set_forever(&redis, &bucket, &ahead.to_string());
    match client.call("scope", &json!({})).await.unwrap_err() {
        CallError::RateLimited { retry_after } => {
            assert!(retry_after > Duration::from_secs(1700), "{retry_after:?}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    let ttl = pttl(&redis, &bucket);
    assert!(
        (1_700_000..=1_801_000).contains(&ttl),
        "lifetime {ttl} ms after a refusal"
    );
    assert_eq!(portal.received_requests().await.unwrap().len(), 1);
}
