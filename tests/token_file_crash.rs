//! The token file survives crashes: the real binary, refreshing tokens as fast as the sample
//! portal lets it, is killed with SIGKILL at arbitrary moments, again and again. After every kill
//! the file must be complete and loadable — the old pair or the new one, never a torn write.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use bitrix24_mcp::bitrix::token_store::TokenStore;
use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const ROUNDS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_file_is_always_complete_after_a_kill_during_refreshes() {
    let mut app = oauth_app();
    // Every issued access token is already expired: each call refreshes, twice.
    app.access_ttl_secs = 0.0;
    let portal = oauth_portal(app, None).await;
    let file = temp_dir("crash").join("tokens.json");
    let mut refreshes_seen = 0;
    for round in 0..ROUNDS {
        // A fresh authorization each round, so every run starts from a token the portal accepts.
        let seed = format!("seed-refresh-{round}");
        portal.add_refresh_token(&seed);
        let mut child = Command::new(BIN)
            .env_clear()
            .env("BITRIX24_PORTAL_URL", portal.rest_root())
            .env("BITRIX24_OAUTH_TOKEN_URL", portal.token_url())
            .env("BITRIX24_CLIENT_ID", CLIENT_ID)
            .env("BITRIX24_CLIENT_SECRET", CLIENT_SECRET)
            .env("BITRIX24_REFRESH_TOKEN", &seed)
            .env("BITRIX24_TOKEN_FILE", &file)
            .env("BITRIX24_MAX_RETRIES", "0")
            .env("BITRIX24_RATE_LIMIT", "1000")
            .env("BITRIX24_RATE_BURST", "1000")
            .env("RUST_LOG", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Calls one after another, each waiting for its answer, so every call refreshes anew
        // (concurrent calls would share one refresh).
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let driver = tokio::spawn(async move {
            let initialize = initialize();
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            if stdin
                .write_all(format!("{initialize}\n{initialized}\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            let _ = stdout.next_line().await;
            for id in 1.. {
                let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": 2935}}});
                if stdin
                    .write_all(format!("{call}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                // Ends when the process is killed.
                if !matches!(stdout.next_line().await, Ok(Some(_))) {
                    return;
                }
            }
        });

        // Wait until this run has refreshed a few times, then kill it at a random moment.
        let target = refreshes_seen + 1 + fastrand::usize(0..4);
        let deadline = Instant::now() + Duration::from_secs(20);
        while portal.requests_to("/oauth/token").len() < target {
            assert!(
                Instant::now() < deadline,
                "round {round}: the server made no refresh"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        driver.await.unwrap();
        refreshes_seen = portal.requests_to("/oauth/token").len();

        let stored = TokenStore::new(&file)
            .load()
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
            .unwrap_or_else(|| panic!("round {round}: no token file"));
        assert!(
            !stored.tokens.refresh_token.expose().is_empty(),
            "round {round}"
        );
        assert!(
            !stored.tokens.access_token.expose().is_empty() || stored.tokens.expires_at == Some(0)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "round {round}");
        }
    }
    eprintln!("{ROUNDS} kills across {refreshes_seen} refreshes; the file was whole every time");
}
