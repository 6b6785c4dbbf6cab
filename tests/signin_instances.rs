//! Several instances on one state store behind a balancer that sends each request to the next
//! instance in turn: a sign-in whose steps land on different instances (consent shown by one,
//! approved on another, the callback on a third, the token from a fourth) finishes, and any
//! instance serves the signed-in user.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use common::redis_server::{RedisServer, STATE_KEY};
use common::signin::{Browser, mcp};
use common::signin_server;
use common::*;
use serde_json::{Value, json};

const SECRET: &str = "instances-app-s3cret";
const INSTANCES: usize = 4;

/// A round-robin balancer on loopback: each request goes to the next instance; it records which.
struct Balancer {
    instances: Vec<String>,
    next: AtomicUsize,
    served: Mutex<Vec<(usize, String)>>,
    http: reqwest::Client,
}

async fn forward(State(balancer): State<Arc<Balancer>>, request: Request) -> Response {
    let index = balancer.next.fetch_add(1, Ordering::SeqCst) % balancer.instances.len();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let step = format!("{} {}", parts.method, parts.uri.path());
    balancer.served.lock().unwrap().push((index, step));
    let mut outgoing = balancer.http.request(
        parts.method.clone(),
        format!("{}{target}", balancer.instances[index]),
    );
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let answer = outgoing.body(body).send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    response
        .body(Body::from(answer.bytes().await.unwrap()))
        .unwrap()
}

/// One instance on `public` (the balancer's address) and the store; its own address.
async fn instance(
    portal: &DemoPortal,
    public: &str,
    redis: &str,
) -> (tokio::process::Child, String) {
    let mut command =
        signin_server::command(&portal.rest_root(), &portal.token_url(), SECRET, "info");
    command
        .args(["--stateless", "--public-url", public])
        .env("BITRIX24_STATE_URL", redis)
        .env("BITRIX24_STATE_KEY", STATE_KEY);
    let (child, base, _) = signin_server::start(command, None).await;
    (child, base)
}

fn call(chat_id: i64, id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": chat_id}}})
}

#[tokio::test]
async fn a_sign_in_spread_over_four_instances_finishes_and_any_instance_serves_the_user() {
    let Some(redis) = RedisServer::start("signin-instances") else {
        return;
    };
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    portal.set_redirect_uri(format!("{public}/oauth/callback"));
    let mut children = Vec::new();
    let mut addresses = Vec::new();
    for _ in 0..INSTANCES {
        let (child, address) = instance(&portal, &public, &redis.url()).await;
        children.push(child);
        addresses.push(address);
    }
    let balancer = Arc::new(Balancer {
        instances: addresses,
        next: AtomicUsize::new(0),
        served: Mutex::default(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap(),
    });
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(balancer.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    portal.sign_in_browser_as(99);
    let anna = Browser::new().sign_in(&public).await.access_token;
    let steps = balancer.served.lock().unwrap().clone();
    let on = |step: &str| {
        steps
            .iter()
            .find(|(_, s)| s == step)
            .unwrap_or_else(|| panic!("{step} in {steps:?}"))
            .0
    };
    let spread = [
        on("GET /authorize"),
        on("POST /authorize"),
        on("GET /oauth/callback"),
        on("POST /token"),
    ];
    let mut distinct = spread.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        INSTANCES,
        "each step on its own instance: {steps:?}"
    );

    // Every instance, in turn, answers Anna as Anna.
    for id in 0..INSTANCES as u64 {
        let (status, body) = mcp(&public, &anna, &call(5001, id + 2)).await;
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            answer["result"]["structuredContent"]["user_ids"],
            json!([99, 1269]),
            "{body}"
        );
    }
    let served: Vec<usize> = balancer
        .served
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, step)| step == "POST /mcp")
        .map(|(index, _)| *index)
        .collect();
    let mut distinct = served.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), INSTANCES, "{served:?}");
    for mut child in children {
        child.kill().await.unwrap();
    }
}
