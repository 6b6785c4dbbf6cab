//! `bitrix24-mcp check` as a user runs it: ready against the demo portal, and for each broken
//! setup a non-zero exit naming the cause and the fix — never printing a secret.

mod common;

use std::process::Output;

use bitrix24_mcp::demo::{DemoPortal, PortalData};
use common::*;
use serde_json::{Value, json};
use tokio::process::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn check(webhook_url: Option<&str>, extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.arg("check").args(extra);
    for var in [
        "BITRIX24_WEBHOOK_URL",
        "BITRIX24_PORTAL_URL",
        "BITRIX24_REFRESH_TOKEN",
        "BITRIX24_CLIENT_ID",
        "BITRIX24_CLIENT_SECRET",
        "BITRIX24_ACCESS_TOKEN",
        "BITRIX24_TOKEN_FILE",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    if let Some(url) = webhook_url {
        command.env("BITRIX24_WEBHOOK_URL", url);
    }
    command
}

/// Runs it as text and as JSON; checks both agree on readiness and leak nothing.
async fn run(webhook_url: Option<&str>, extra: &[&str]) -> (i32, String, Value) {
    let text: Output = check(webhook_url, extra).output().await.unwrap();
    let mut json_args = extra.to_vec();
    json_args.push("--json");
    let json: Output = check(webhook_url, &json_args).output().await.unwrap();
    let all = format!(
        "{}{}{}{}",
        String::from_utf8_lossy(&text.stdout),
        String::from_utf8_lossy(&text.stderr),
        String::from_utf8_lossy(&json.stdout),
        String::from_utf8_lossy(&json.stderr)
    );
    assert!(!all.contains(CODE), "a secret was printed:\n{all}");
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let code = text.status.code().unwrap();
    assert_eq!(json.status.code().unwrap(), code);
    assert_eq!(report["ready"], code == 0);
    (
        code,
        String::from_utf8_lossy(&text.stdout).into_owned(),
        report,
    )
}

fn problem(report: &Value) -> (String, String) {
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    (
        problems[0]["code"].as_str().unwrap().to_owned(),
        problems[0]["fix"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_demo_portal_checks_clean() {
    let (code, text, report) = run(None, &["--demo"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Ready: the 10 served tools can work."),
        "{text}"
    );
    assert!(!text.contains("Problems"), "{text}");
    assert_eq!(report["portal"]["reachable"], true);
    assert_eq!(report["portal"]["authenticated"], true);
    assert_eq!(report["portal"]["im_scope"], true);
    assert_eq!(report["portal"]["scopes"], json!(["im", "user_basic"]));
    assert_eq!(report["portal"]["operating_ms"], 0);
    assert!(report["portal"]["round_trip_ms"].is_u64());
    assert_eq!(report["settings"]["rate_per_second"], 2.0);
    assert_eq!(report["settings"]["rate_burst"], 50);
    assert_eq!(report["settings"]["request_timeout_ms"], 30_000);
    for key in report["settings"].as_object().unwrap().keys() {
        assert!(
            key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{key} is not snake_case"
        );
    }
    assert_eq!(report["settings"]["transport"], "stdio");
}

#[tokio::test]
async fn a_webhook_without_the_im_scope_in_its_list_is_not_ready() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/rest/1/{CODE}/scope")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": ["crm", "user"]})))
        .mount(&server)
        .await;
    let url = format!("{}/rest/1/{CODE}/", server.uri());
    let (code, text, report) = run(Some(&url), &[]).await;
    assert_eq!(code, 1);
    assert_eq!(report["portal"]["authenticated"], true);
    assert_eq!(report["portal"]["im_scope"], false);
    let (cause, fix) = problem(&report);
    assert_eq!(cause, "SCOPE_MISSING");
    assert!(fix.contains("\"im\" scope"), "{fix}");
    assert!(text.contains("granted: crm, user"), "{text}");
    assert!(
        text.contains("which im_search_chat_list, im_chat_get"),
        "{text}"
    );
    assert!(
        text.contains("tools           10 served, 1 allowed; not allowed: im_search_chat_list"),
        "{text}"
    );
    assert!(text.contains("webhook code    set (hidden)"), "{text}");
    let tools = report["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 10);
    // The chat tools need im; bitrix24_call's scope depends on the method it is given.
    for tool in tools {
        let general = tool["name"] == "bitrix24_call";
        assert_eq!(tool["allowed"], general, "{tool}");
        assert_eq!(tool["scope"], if general { "" } else { "im" }, "{tool}");
    }
}

#[tokio::test]
async fn insufficient_scope_is_not_ready() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the webhook token"}),
        ))
        .mount(&server)
        .await;
    let (code, _, report) = run(Some(&format!("{}/rest/1/{CODE}/", server.uri())), &[]).await;
    assert_eq!(code, 1);
    assert_eq!(report["portal"]["im_scope"], false);
    let (cause, fix) = problem(&report);
    assert_eq!(cause, "insufficient_scope");
    assert!(
        fix.starts_with("The webhook lacks the im scope: the \"im\" scope (Chat and notifications) must be added"),
        "{fix}"
    );
}

#[tokio::test]
async fn an_unreachable_host_is_not_ready() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/rest/1/{CODE}/", listener.local_addr().unwrap());
    drop(listener);
    let (code, text, report) = run(Some(&url), &[]).await;
    assert_eq!(code, 1);
    assert_eq!(report["portal"]["reachable"], false);
    assert_eq!(problem(&report).0, "NETWORK_ERROR");
    assert!(text.contains("Connection refused"), "{text}");
    assert!(text.contains("reachable       no"), "{text}");
}

/// A host name that does not resolve (`.invalid` never does) is a wrong address or a DNS
/// problem: the fix says what to check, and does not advise retrying.
#[tokio::test]
async fn a_host_that_does_not_resolve_is_not_ready_and_not_retried() {
    let url = format!("https://no-such-portal.invalid/rest/1/{CODE}/");
    let (code, text, report) = run(Some(&url), &[]).await;
    assert_eq!(code, 1, "{text}");
    assert_eq!(report["portal"]["reachable"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    let cause = problems[0]["cause"].as_str().unwrap();
    let fix = problems[0]["fix"].as_str().unwrap();
    assert_eq!(problems[0]["code"], "NETWORK_ERROR");
    assert!(
        cause.starts_with("the portal's host name no-such-portal.invalid does not resolve"),
        "{cause}"
    );
    assert!(fix.contains("BITRIX24_WEBHOOK_URL"), "{fix}");
    assert!(fix.contains("DNS"), "{fix}");
    assert!(fix.contains("retrying will not help"), "{fix}");
    assert!(!fix.to_lowercase().contains("retry in"), "{fix}");
    assert!(text.contains("does not resolve"), "{text}");
}

#[tokio::test]
async fn a_wrong_webhook_code_is_not_ready() {
    let portal = DemoPortal::start(PortalData::sample("the-right-code"))
        .await
        .unwrap();
    let url = portal.webhook_url().replace("the-right-code", CODE);
    let (code, _, report) = run(Some(&url), &[]).await;
    assert_eq!(code, 1);
    assert_eq!(report["portal"]["reachable"], true);
    assert_eq!(report["portal"]["authenticated"], false);
    let (cause, fix) = problem(&report);
    assert_eq!(cause, "NO_AUTH_FOUND");
    assert!(fix.contains("BITRIX24_WEBHOOK_URL"), "{fix}");
}

#[tokio::test]
async fn nothing_configured_is_not_ready() {
    let (code, _, report) = run(None, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(problem(&report).0, "NOT_CONFIGURED");
}

#[tokio::test]
async fn an_oauth_app_with_an_expired_token_is_refreshed_first() {
    let portal = oauth_portal(oauth_app(), None).await;
    let file = temp_dir("check").join("tokens.json");
    let output = check(None, &["--json"])
        .env("BITRIX24_PORTAL_URL", portal.rest_root())
        .env("BITRIX24_OAUTH_TOKEN_URL", portal.token_url())
        .env("BITRIX24_CLIENT_ID", CLIENT_ID)
        .env("BITRIX24_CLIENT_SECRET", CLIENT_SECRET)
        .env("BITRIX24_REFRESH_TOKEN", REFRESH)
        .env("BITRIX24_TOKEN_FILE", &file)
        .output()
        .await
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in OAUTH_SECRETS {
        assert!(!all.contains(secret), "a secret was printed:\n{all}");
    }
    assert_eq!(output.status.code(), Some(0), "{all}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["settings"]["auth"], "OAuth application");
    assert_eq!(report["settings"]["client_secret"], "set (hidden)");
    assert_eq!(
        report["settings"]["access_token"],
        "expired (refreshed on first use)"
    );
    assert!(
        report["settings"]["token_file"]
            .as_str()
            .unwrap()
            .contains("saved"),
        "{report}"
    );
    assert_eq!(portal.requests_to("/oauth/token").len(), 1);
}
