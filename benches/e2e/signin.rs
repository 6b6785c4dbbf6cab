//! What signing each person in costs: the same call over streamable HTTP to a server with one
//! static token (`--auth token`) and to one where the caller signed in (`--auth oauth`),
//! interleaved, against one sample portal; and the signed-in server's throughput at 64 concurrent
//! callers with its sign-ins, grants and bucket in Redis.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use tokio::process::{Child, Command};

use super::{
    BIN, Plan, UNLIMITED, free_port, load, median, redis_server, timed_call, wait_for_health,
};

/// The headless browser the sign-in tests use, included as it is.
#[path = "../../tests/common/signin.rs"]
mod browser;

const SECRET: &str = "bench-app-secret-0001";
const STATE_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";

pub struct Signin {
    /// Sequential call latencies, interleaved: static token, then signed in.
    pub token: Vec<f64>,
    pub signed_in: Vec<f64>,
    /// Calls per second at 64 callers with Redis; `None` without `redis-server`.
    pub redis_calls_per_second: Option<f64>,
}

pub async fn measure(plan: &Plan) -> Signin {
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin("benchmarkcode0004", app))
        .await
        .expect("fake portal");
    portal.sign_in_browser_as(99);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .no_proxy()
        .build()
        .expect("client");

    let (mut token_server, token_base) = spawn(&portal, &[], Mode::Token).await;
    wait_for_health(&http, &token_base).await;
    let (mut signin_server, signin_base) = spawn(&portal, &[], Mode::Signin).await;
    wait_for_health(&http, &signin_base).await;
    let access = sign_in(&portal, &signin_base).await;

    let calls = plan.calls / 2;
    let (mut token, mut signed_in) = (Vec::new(), Vec::new());
    for id in 0..(calls as u64 + 50) {
        let a = timed_call(&http, &format!("{token_base}/mcp"), "bench-token", id).await;
        let b = timed_call(&http, &format!("{signin_base}/mcp"), &access, id).await;
        // The first calls warm connections and caches up.
        if id >= 50 {
            token.push(a);
            signed_in.push(b);
        }
    }
    stop(&mut token_server).await;
    stop(&mut signin_server).await;

    let redis_calls_per_second = match redis_server::RedisServer::start("bench-signin") {
        None => None,
        Some(redis) => {
            let (mut server, base) = spawn(
                &portal,
                &[("BITRIX24_STATE_URL", redis.url())],
                Mode::Signin,
            )
            .await;
            wait_for_health(&http, &base).await;
            let access = sign_in(&portal, &base).await;
            let url = Arc::new(format!("{base}/mcp"));
            load(&http, &url, &access, 64, Duration::from_millis(300)).await;
            let (count, _, elapsed) = load(
                &http,
                &url,
                &access,
                64,
                Duration::from_secs_f64(plan.load_seconds),
            )
            .await;
            stop(&mut server).await;
            Some(count as f64 / elapsed)
        }
    };
    Signin {
        token,
        signed_in,
        redis_calls_per_second,
    }
}

impl Signin {
    /// The added cost of a signed-in call at p50.
    pub fn added_p50(&self) -> f64 {
        median(&self.signed_in) - median(&self.token)
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Token,
    Signin,
}

async fn spawn(portal: &DemoPortal, extra: &[(&str, String)], mode: Mode) -> (Child, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(BIN);
    command
        .args([
            "serve",
            "--transport",
            "http",
            "--stateless",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env_clear()
        .env("BITRIX24_RATE_LIMIT", UNLIMITED.0.to_string())
        .env("BITRIX24_RATE_BURST", UNLIMITED.1.to_string())
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match mode {
        Mode::Token => {
            command
                .env("BITRIX24_WEBHOOK_URL", portal.webhook_url())
                .env("MCP_HTTP_TOKEN", "bench-token");
        }
        Mode::Signin => {
            portal.set_redirect_uri(format!("{base}/oauth/callback"));
            command
                .args(["--auth", "oauth", "--public-url", &base])
                .env("BITRIX24_PORTAL_URL", portal.rest_root())
                .env("BITRIX24_OAUTH_TOKEN_URL", portal.token_url())
                .env("BITRIX24_CLIENT_ID", OAuthApp::DEMO_CLIENT_ID)
                .env("BITRIX24_CLIENT_SECRET", SECRET);
        }
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    if extra.iter().any(|(name, _)| *name == "BITRIX24_STATE_URL") {
        command.env("BITRIX24_STATE_KEY", STATE_KEY);
    }
    (command.spawn().expect("spawn the HTTP server"), base)
}

async fn sign_in(portal: &DemoPortal, base: &str) -> String {
    portal.set_redirect_uri(format!("{base}/oauth/callback"));
    let mut browser = browser::Browser::new();
    browser.sign_in(base).await.access_token
}

async fn stop(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}
