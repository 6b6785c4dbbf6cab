//! The binary serving `--auth oauth` for a sample portal's application, started the way every
//! sign-in test starts it: on a free loopback port, with no other Bitrix24 identity in the
//! environment, JSON logs on a pipe that is always drained.

use std::sync::{Arc, Mutex};

use bitrix24_mcp::demo::OAuthApp;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::{BIN, listening_address};

/// `serve --transport http --auth oauth --bind 127.0.0.1:0` for the application `OAuthApp::signin(
/// OAuthApp::DEMO_CLIENT_ID, secret)` of the portal at `rest_root`, exchanging codes at
/// `token_url`, logging at `level`. Callers add arguments and variables.
pub fn command(rest_root: &str, token_url: &str, secret: &str, level: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--transport", "http", "--auth", "oauth"])
        .args(["--bind", "127.0.0.1:0"])
        .env_remove("BITRIX24_WEBHOOK_URL")
        .env_remove("BITRIX24_REFRESH_TOKEN")
        .env_remove("BITRIX24_TOKEN_FILE")
        .env_remove("BITRIX24_STATE_URL")
        .env_remove("BITRIX24_STATE_PREFIX")
        .env_remove("MCP_HTTP_TOKEN")
        .env_remove("MCP_PUBLIC_URL")
        .env("BITRIX24_PORTAL_URL", rest_root)
        .env("BITRIX24_OAUTH_TOKEN_URL", token_url)
        .env("BITRIX24_CLIENT_ID", OAuthApp::DEMO_CLIENT_ID)
        .env("BITRIX24_CLIENT_SECRET", secret)
        .env("BITRIX24_LOG_FORMAT", "json")
        .env("RUST_LOG", level)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `command` and waits until it listens: the process, its base URL, and the task that
/// drains its log into `log` (every line, the ones before listening included) until it exits.
pub async fn start(
    mut command: Command,
    log: Option<Arc<Mutex<String>>>,
) -> (Child, String, JoinHandle<()>) {
    let mut child = command.spawn().unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    let (address, so_far) = listening_address(&mut lines).await;
    if let Some(log) = &log {
        log.lock().unwrap().push_str(&so_far);
    }
    // Keep draining the log so the server never blocks on a full pipe.
    let drain = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(log) = &log {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    (child, format!("http://{address}"), drain)
}
