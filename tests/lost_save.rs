//! A save the store loses must not lock anyone out. The demo portal's token server rotates refresh
//! tokens as Bitrix24's does (the old one dies the moment a new one is issued); a refresh succeeds
//! and its save is lost — Redis (a real `redis-server`) killed mid-refresh and restarted from its
//! append-only file, or the token file's save failing and an older file back in its place. The
//! instance keeps the live pair: at the next expiry it does not take up the stale stored pair (whose
//! refresh token is spent) but writes its own back and refreshes with it, and from then on every
//! instance can use what is stored.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bitrix24_mcp::bitrix::state::StateKey;
use bitrix24_mcp::bitrix::token_store::{TokenStore, decode};
use bitrix24_mcp::demo::{DemoPortal, RequestObserver};
use common::redis_server::{RedisServer, STATE_KEY};
use common::*;
use serde_json::json;

/// An observer that runs `action` once, when the token server receives a refresh after `armed`
/// was set: the moment between a refresh and its save.
fn on_refresh(
    armed: Arc<AtomicBool>,
    action: impl Fn() + Send + Sync + 'static,
) -> RequestObserver {
    RequestObserver(Arc::new(move |request| {
        if request.path.starts_with("/oauth/token") && armed.swap(false, Ordering::SeqCst) {
            action();
        }
    }))
}

/// The record key of the test app's tokens on `portal`.
fn tokens_key(portal: &DemoPortal) -> String {
    let url = url::Url::parse(&portal.rest_root()).unwrap();
    let host = format!("{}_{}", url.host_str().unwrap(), url.port().unwrap());
    format!("bitrix24-mcp:{host}:{CLIENT_ID}:tokens")
}

/// The refresh token stored in `redis` for the test app.
fn stored_refresh(redis: &RedisServer, portal: &DemoPortal) -> String {
    let key = tokens_key(portal);
    let raw = redis.get(&key).expect("a token record");
    let plain = StateKey::parse(STATE_KEY)
        .unwrap()
        .open(&raw, key.as_bytes())
        .expect("the record opens with the key");
    let stored = decode(&plain).expect("a whole record");
    stored.tokens.refresh_token.expose().to_owned()
}

/// Sets `key` to `value` in the store at `url`, as a restore from an older copy would.
fn put_raw(url: &str, key: &str, value: &[u8]) {
    let mut connection = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<()>(&mut connection)
        .unwrap();
}

fn redis_instance(portal: &DemoPortal, redis_url: &str) -> tokio::process::Command {
    let mut command = oauth_process(portal);
    command
        .env("BITRIX24_STATE_URL", redis_url)
        .env("BITRIX24_STATE_KEY", STATE_KEY)
        // A lock left by the killed store's last moments holds a refresh up only briefly.
        .env("BITRIX24_STATE_LOCK_TTL", "2s")
        .env("BITRIX24_RATE_LIMIT", "1000")
        .env("BITRIX24_RATE_BURST", "1000");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_between_a_refresh_and_its_save_locks_nobody_out() {
    let Some(redis) = RedisServer::start("lost-save") else {
        return;
    };
    let redis_url = redis.url();
    let redis = Arc::new(Mutex::new(redis));
    let armed = Arc::new(AtomicBool::new(false));
    let killer = redis.clone();
    let observer = on_refresh(armed.clone(), move || killer.lock().unwrap().stop());
    let portal = oauth_portal(oauth_app(), Some(observer)).await;
    let first = mcp_process(redis_instance(&portal, &redis_url)).await;

    // The store is seeded with the configured pair.
    success_object(&chat_users(&first, 2935).await);
    assert_eq!(stored_refresh(&redis.lock().unwrap(), &portal), REFRESH);
    let spent_record = redis.lock().unwrap().get(&tokens_key(&portal)).unwrap();

    // The access token expires; the refresh succeeds at the token server while Redis dies, so the
    // new pair cannot be saved. This call fails for want of the store; the new pair lives on in
    // memory.
    armed.store(true, Ordering::SeqCst);
    portal.expire_access_tokens();
    let down = error_object(&chat_users(&first, 2935).await);
    assert_eq!(down["error"], "STATE_UNAVAILABLE", "{down}");
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);

    // Redis comes back with what it had saved: the spent pair. The next call works with the pair
    // in memory and writes it back, so the store holds a live pair again.
    redis.lock().unwrap().restart();
    assert_eq!(stored_refresh(&redis.lock().unwrap(), &portal), REFRESH);
    success_object(&chat_users(&first, 2935).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    let written_back = stored_refresh(&redis.lock().unwrap(), &portal);
    assert_ne!(written_back, REFRESH, "the live pair was not written back");

    // The store loses it again, unnoticed this time (a replica that lagged takes over, say): it
    // holds the spent pair's record. At the next expiry the live pair is refreshed (the spent one
    // is not taken up), and the store gets the new one.
    put_raw(&redis_url, &tokens_key(&portal), &spent_record);
    assert_eq!(stored_refresh(&redis.lock().unwrap(), &portal), REFRESH);
    portal.expire_access_tokens();
    let users = success_object(&chat_users(&first, 2935).await);
    assert_eq!(users["user_ids"], json!([99, 1269, 1271]));
    let refreshes = portal.requests_to("/oauth/token");
    assert_eq!(refreshes.len(), 2);
    assert!(
        !refreshes[1].body.contains(REFRESH),
        "the spent refresh token was sent"
    );
    let stored = stored_refresh(&redis.lock().unwrap(), &portal);
    assert_ne!(stored, REFRESH);

    // Every instance works from what is stored: a new one calls without refreshing, and both
    // share one refresh per expiry from then on.
    let second = mcp_process(redis_instance(&portal, &redis_url)).await;
    success_object(&chat_users(&second, 2935).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 2);
    let processes = [first, second];
    expiry_cycles(&portal, &processes, 2).await;
    for process in processes {
        process.cancel().await.unwrap();
    }
}

fn file_instance(portal: &DemoPortal, file: &Path) -> tokio::process::Command {
    let mut command = oauth_process(portal);
    command.env("BITRIX24_TOKEN_FILE", file);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_that_lost_a_save_locks_nobody_out() {
    let file: PathBuf = temp_dir("lost-file-save").join("tokens.json");
    let armed = Arc::new(AtomicBool::new(false));
    let saved = Arc::new(Mutex::new(Vec::new()));
    // Mid-refresh, the file is moved aside and a directory takes its place: the save fails.
    let (spoilt, aside) = (file.clone(), saved.clone());
    let observer = on_refresh(armed.clone(), move || {
        *aside.lock().unwrap() = std::fs::read(&spoilt).unwrap();
        std::fs::remove_file(&spoilt).unwrap();
        std::fs::create_dir(&spoilt).unwrap();
    });
    let portal = oauth_portal(oauth_app(), Some(observer)).await;
    let first = mcp_process(file_instance(&portal, &file)).await;
    let load = || TokenStore::new(&file).load().unwrap().unwrap();
    assert_eq!(load().tokens.refresh_token.expose(), REFRESH);

    armed.store(true, Ordering::SeqCst);
    portal.expire_access_tokens();
    success_object(&chat_users(&first, 2935).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    // The file can be written again: the next call writes the pair in use back.
    std::fs::remove_dir(&file).unwrap();
    success_object(&chat_users(&first, 2935).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
    let live = load().tokens.refresh_token.expose().to_owned();
    assert_ne!(live, REFRESH, "the live pair was not written back");

    // The old file comes back, unnoticed (a backup restored, say): it holds the spent pair. At
    // the next expiry the live pair is refreshed, not the spent one.
    std::fs::write(&file, saved.lock().unwrap().as_slice()).unwrap();
    assert_eq!(load().tokens.refresh_token.expose(), REFRESH);
    portal.expire_access_tokens();
    let users = success_object(&chat_users(&first, 2935).await);
    assert_eq!(users["user_ids"], json!([99, 1269, 1271]));
    let refreshes = portal.requests_to("/oauth/token");
    assert_eq!(refreshes.len(), 2);
    assert!(
        !refreshes[1].body.contains(REFRESH),
        "the spent refresh token was sent"
    );
    assert_ne!(load().tokens.refresh_token.expose(), REFRESH);

    let second = mcp_process(file_instance(&portal, &file)).await;
    success_object(&chat_users(&second, 2935).await);
    assert_eq!(portal.requests_to("/oauth/token").len(), 2);
    let processes = [first, second];
    expiry_cycles(&portal, &processes, 2).await;
    for process in processes {
        process.cancel().await.unwrap();
    }
}
