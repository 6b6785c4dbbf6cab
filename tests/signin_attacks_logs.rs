//! Log forging through the Bitrix24 callback: what the callback says is logged escaped, one event
//! per line. Alone in its binary: a test running beside it without a subscriber could leave
//! tracing's callsites switched off for this one's.

mod common;
mod signin_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bitrix24_mcp::signin::SigninStore;
use signin_support::*;

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

/// A user with their own sign-in under way (any registered client will do) comes back to the
/// callback with `domain` holding a line break and a fake log line: the refusal was logged with
/// the domain as text, so the fake line stood in the log as if the server had written it.
#[tokio::test]
async fn a_line_break_in_the_callbacks_domain_cannot_forge_a_log_line() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Nothing is contacted: the callback is refused before any exchange.
    let served = serve(
        "https://portal.example.com/rest/",
        "https://oauth.bitrix.info/oauth/token/",
        SigninStore::memory(),
    )
    .await;
    seed_state(&served, "st4te-log", "portal.example.com").await;
    let forged = "evil.example%0D%0A2026-01-01T00:00:00Z%20INFO%20FORGED%20a%20user%20signed%20in";
    let response = callback(
        &served,
        &query("c0de", "st4te-log", forged, ""),
        Some(BINDING),
    )
    .await;
    assert_eq!(response.status(), 400);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("FORGED"), "the refusal is logged: {text}");
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("2026-01-01T00:00:00Z"),
            "a forged line: {text}"
        );
    }
    assert!(!text.contains('\r'), "{text:?}");
}
