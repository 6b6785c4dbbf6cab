//! The sign-in's token traffic at trace level, with the grants in a real Redis: no code, token or
//! verifier in any log line. Alone in its binary: a test running beside it without a subscriber
//! could leave tracing's callsites switched off for this one's.

mod common;
#[path = "signin/server.rs"]
mod server;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitrix24_mcp::bitrix::state::{RedisStore, StateSettings, StateUrl};
use bitrix24_mcp::signin::SigninStore;
use common::redis_server::RedisServer;
use reqwest::StatusCode;
use serde_json::Value;
use server::*;

/// Everything logged on this test's thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A whole sign-in's token traffic at trace level, with the grants in a real Redis: exchange,
/// bearer checks, rotation, reuse, replay and revocation. No code, token or verifier is logged.
/// (A current-thread runtime: the server's tasks log into this thread's subscriber too.)
#[tokio::test]
async fn at_trace_level_no_code_or_token_is_logged() {
    let Some(redis) = RedisServer::start("tokens-trace") else {
        return;
    };
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let settings = StateSettings {
        url: StateUrl::parse(&redis.url(), None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: Some(bitrix24_mcp::bitrix::state::StateKey::parse(&"7".repeat(64)).unwrap()),
        lock_ttl: Duration::from_secs(5),
    };
    let store = SigninStore::redis(Arc::new(RedisStore::new(&settings).unwrap()));
    let server = Server::start(store).await;
    let mut secrets = vec![VERIFIER.to_owned()];
    let code = server.code(None).await;
    let (_, _, first) = server.exchange(&code).await;
    let (_, _, replay) = server.exchange(&code).await;
    assert_eq!(replay["error"], "invalid_grant");
    secrets.push(code);
    let code = server.code(None).await;
    let (_, _, second) = server.exchange(&code).await;
    secrets.push(code);
    let grants = server.signin.grants();
    let access = second["access_token"].as_str().unwrap();
    grants.authenticate(access).await.unwrap();
    grants.authenticate(access).await.unwrap();
    let refresh_form = |token: &Value| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.as_str().unwrap().to_owned()),
            ("client_id", CLIENT.to_owned()),
        ]
    };
    let form = refresh_form(&second["refresh_token"]);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, third) = server.post("/token", &form).await;
    let (_, _, reuse) = server.post("/token", &form).await;
    assert_eq!(reuse["error"], "invalid_grant");
    let code = server.code(None).await;
    let (_, _, fourth) = server.exchange(&code).await;
    secrets.push(code);
    let (status, _, _) = server
        .post(
            "/revoke",
            &[("token", fourth["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(grants.authenticate("not-a-token").await.is_err());
    for pair in [&first, &second, &third, &fourth] {
        for field in ["access_token", "refresh_token"] {
            secrets.push(pair[field].as_str().unwrap().to_owned());
        }
    }

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("TRACE"), "trace logs were on");
    assert!(
        text.contains("sign-in revoked"),
        "the revocations were logged: {text}"
    );
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a code or token was logged"
        );
    }
}
