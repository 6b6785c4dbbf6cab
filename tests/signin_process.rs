//! The binary with `--auth oauth`: its configuration refused with clear messages, `--demo` serving
//! the sign-in on loopback with no other setting (its start-up log naming the mode, the public
//! URL, the handler URL and where grants live), the challenge at `/mcp`, and `/healthz` asking
//! the sign-in's store.

mod common;
#[path = "signin_http/people.rs"]
mod people;

use common::*;
use people::{browser, post_json};
use reqwest::StatusCode;
use serde_json::Value;

/// The binary with `args`, its environment cleared of every setting a test run might carry.
fn binary(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command.args(args);
    for variable in [
        "BITRIX24_WEBHOOK_URL",
        "BITRIX24_PORTAL_URL",
        "BITRIX24_CLIENT_ID",
        "BITRIX24_CLIENT_SECRET",
        "BITRIX24_REFRESH_TOKEN",
        "BITRIX24_ACCESS_TOKEN",
        "BITRIX24_TOKEN_FILE",
        "BITRIX24_STATE_URL",
        "BITRIX24_STATE_KEY",
        "MCP_HTTP_TOKEN",
        "MCP_HTTP_AUTH",
        "MCP_PUBLIC_URL",
        "MCP_TRANSPORT",
        "MCP_BIND",
    ] {
        command.env_remove(variable);
    }
    command
}

#[test]
fn oauth_mode_refuses_a_plain_http_public_url_off_loopback_and_a_webhook() {
    let app = [
        "--portal-url",
        "https://acme.bitrix24.com/rest/",
        "--client-id",
        "local.app",
        "--client-secret",
        "s3cretOfTheApp",
    ];
    let cases: [(&[&str], &str); 3] = [
        (
            &["--public-url", "http://mcp.example.com"],
            "MCP_PUBLIC_URL must be https:// for a host that is not loopback (mcp.example.com)",
        ),
        (
            &[
                "--webhook-url",
                "https://acme.bitrix24.com/rest/1/w3bh00kc0de/",
            ],
            "a webhook (--webhook-url) would act as one person for everybody",
        ),
        (
            &["--bind", "0.0.0.0:8000"],
            "MCP_PUBLIC_URL (--public-url) is required with --auth oauth on 0.0.0.0:8000",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["serve", "--transport", "http", "--auth", "oauth"];
        args.extend_from_slice(&app);
        args.extend_from_slice(extra);
        let output = binary(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        for secret in ["s3cretOfTheApp", "w3bh00kc0de"] {
            assert!(!stderr.contains(secret), "{stderr}");
        }
    }
}

/// `--demo serve --transport http --auth oauth` on a free loopback port, with `extra` settings:
/// the process, the base URL it serves, its log up to "listening".
async fn demo_signin_process(extra: &[&str]) -> (tokio::process::Child, String, String) {
    let mut args = vec![
        "--demo",
        "serve",
        "--transport",
        "http",
        "--auth",
        "oauth",
        "--bind",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut child = tokio::process::Command::from(binary(&args))
        .env("RUST_LOG", "info")
        .env("BITRIX24_LOG_FORMAT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    let (address, logs) = listening_address(&mut lines).await;
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{address}"), logs)
}

#[tokio::test]
async fn the_health_check_asks_the_sign_in_store() {
    let Some(mut redis) = common::redis_server::RedisServer::start("signin-health") else {
        return;
    };
    let url = redis.url();
    let (mut child, base, logs) = demo_signin_process(&[
        "--state-url",
        &url,
        "--state-key",
        common::redis_server::STATE_KEY,
    ])
    .await;
    assert!(logs.contains("in the state store"), "{logs}");
    let health = || browser().get(format!("{base}/healthz")).send();
    assert_eq!(health().await.unwrap().status(), StatusCode::OK);
    redis.stop();
    let down = health().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_demo_serves_sign_in_on_loopback_with_no_other_setting() {
    let (mut child, base, logs) = demo_signin_process(&[]).await;
    let started: Value = serde_json::Deserializer::from_str(&logs)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .find(|entry| entry["fields"]["auth"] == "oauth")
        .expect("the start-up log names the mode");
    assert_eq!(started["fields"]["public_url"], base);
    assert_eq!(started["fields"]["mcp_url"], format!("{base}/mcp"));
    assert!(
        started["fields"]["grants"]
            .as_str()
            .unwrap()
            .starts_with("in this process's memory"),
        "{started}"
    );
    let response = post_json(&format!("{base}/mcp"), None, &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"].to_str().unwrap(),
        format!(
            r#"Bearer error="invalid_token", resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#
        )
    );
    let health = browser()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    child.kill().await.unwrap();
}

#[test]
fn call_and_check_have_nobody_to_act_as_when_each_person_signs_in() {
    for command in [
        &["call", "im_chat_user_list", r#"{"CHAT_ID":2935}"#][..],
        &["check"][..],
    ] {
        let mut args = command.to_vec();
        args.extend(["--demo", "--transport", "http", "--auth", "oauth"]);
        let output = binary(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "with --auth oauth each person signs in through the HTTP server, and `{}` has \
                 nobody to act as",
                command[0]
            )),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn the_public_url_s_host_is_allowed_and_other_hosts_are_not_even_for_the_sign_in() {
    let (mut child, base, _) =
        demo_signin_process(&["--public-url", "https://MCP.example.com"]).await;
    let document = |host: &'static str| {
        browser()
            .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
            .header("host", host)
            .send()
    };
    let allowed = document("mcp.example.com").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let body: Value = allowed.json().await.unwrap();
    assert_eq!(body["resource"], "https://mcp.example.com/mcp");
    assert_eq!(
        document("evil.example").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // The MCP endpoint behind the public name asks for sign-in with the public URL.
    let response = post_json(&format!("{base}/mcp"), None, &initialize())
        .header("host", "mcp.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"].to_str().unwrap(),
        r#"Bearer error="invalid_token", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
    );
    child.kill().await.unwrap();
}
