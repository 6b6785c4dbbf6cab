//! Logs at trace hold no secret of a sign-in: not Bitrix24's code, not the app's secret, not the
//! user's access or refresh tokens (first or rotated), not the browser binding, state or the
//! client's code — whatever the portal echoes back. One test per binary: it owns the process's
//! log subscriber.

mod common;
mod signin_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bitrix24_mcp::signin::SigninStore;
use common::*;
use serde_json::json;
use signin_support::*;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BITRIX_CODE: &str = "b1trixC0deRedaction";
const FIRST_ACCESS: &str = "acc3ssFirstRedaction";
const FIRST_REFRESH: &str = "r3freshFirstRedaction";
const ROTATED_ACCESS: &str = "acc3ssRotatedRedaction";
const ROTATED_REFRESH: &str = "r3freshRotatedRedaction";
const STATE: &str = "st4teRedaction0123456789";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn answer(access: &str, refresh: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access, "refresh_token": refresh, "expires_in": 3600,
        "member_id": "m-0123", "client_endpoint": "https://elsewhere.example/rest/"
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_and_a_refresh_leave_no_secret_in_trace_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,wiremock=off"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let portal = MockServer::start().await;
    let echo = format!(
        "<html>bad gateway: grant_type=refresh_token&client_secret={CLIENT_SECRET}\
         &refresh_token={FIRST_REFRESH}&auth={FIRST_ACCESS}</html>"
    );
    // The exchange; then a refresh a broken proxy answers by echoing the refresh request (which
    // holds the app secret and the pair, never the spent code); then one that
    // works.
    Mock::given(method("POST"))
        .and(path("/oauth/token/"))
        .and(body_string_contains("authorization_code"))
        .respond_with(answer(FIRST_ACCESS, FIRST_REFRESH))
        .mount(&portal)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token/"))
        .and(body_string_contains("refresh_token"))
        .respond_with(ResponseTemplate::new(502).set_body_string(echo.clone()))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&portal)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token/"))
        .and(body_string_contains("refresh_token"))
        .respond_with(answer(ROTATED_ACCESS, ROTATED_REFRESH))
        .with_priority(2)
        .mount(&portal)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/profile"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": {"ID": "99", "NAME": "Anna", "LAST_NAME": "Petrova"}
        })))
        .mount(&portal)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/im.chat.user.list"))
        .and(body_string_contains(ROTATED_ACCESS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [99]})))
        .mount(&portal)
        .await;
    // The first token is expired by the time of the call, and the portal echoes it back.
    Mock::given(method("POST"))
        .and(path("/rest/im.chat.user.list"))
        .and(body_string_contains(FIRST_ACCESS))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "expired_token",
            "error_description": format!("The access token {FIRST_ACCESS} has expired.")
        })))
        .mount(&portal)
        .await;

    let rest_root = format!("{}/rest/", portal.uri());
    let served = serve(
        &rest_root,
        &format!("{}/oauth/token/", portal.uri()),
        SigninStore::memory(),
    )
    .await;
    seed_state(&served, STATE, &portal.address().to_string()).await;
    let response = callback(
        &served,
        &query(
            BITRIX_CODE,
            STATE,
            &portal.address().to_string(),
            "&server_domain=oauth.bitrix.info",
        ),
        Some(BINDING),
    )
    .await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let grant = grants(&served.signin).await.remove(0);
    let client = served.signin.users().client_for(&grant).await.unwrap();
    let failed = unshared_chat_user_list(&client)
        .await
        .unwrap_err()
        .to_string();
    let succeeded = unshared_chat_user_list(&client).await.unwrap();
    assert_eq!(succeeded, json!([99]));

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("a user signed in"),
        "the test saw the sign-in"
    );
    assert!(logs.contains("oauth tokens refreshed"), "and the refresh");
    for secret in [
        CLIENT_SECRET,
        BITRIX_CODE,
        FIRST_ACCESS,
        FIRST_REFRESH,
        ROTATED_ACCESS,
        ROTATED_REFRESH,
        BINDING,
        STATE,
        code.as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret in the logs: {secret}");
        assert!(!failed.contains(secret), "a secret in the error: {failed}");
    }
    // Wherever a secret's field name shows, its value is redacted (or it is a structured field
    // holding an error code such as `code=expired_token`, never a token: tokens have digits).
    for pattern in ["client_secret=", "refresh_token=", "auth=", "code="] {
        for line in logs.lines().filter(|l| l.contains(pattern)) {
            for value in line.split(pattern).skip(1) {
                let word: String = value
                    .trim_start_matches(['"', '\\'])
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, '&' | '"' | '\\'))
                    .collect();
                assert!(
                    word.starts_with("<redacted>")
                        || word.chars().all(|c| c.is_ascii_alphabetic() || c == '_'),
                    "{pattern} followed by {word:?}: {line}"
                );
            }
        }
    }
}
