//! Two instances of the binary on one real Redis, logging at trace: a person signs in through one
//! and calls through the other. The store, read raw (every key, every value of whatever type) as
//! it stands before each step of the sign-in and afterwards, holds none of the secrets the sign-in
//! handled: our codes and tokens, Bitrix24's code and tokens, the app's client secret, the state
//! key, the PKCE verifier, the consent's request and CSRF values, the upstream state, the cookies.
//! Neither process's log holds any either. A refresh token rotated on one instance is refused on
//! the other, and `bitrix24-mcp grants revoke` makes both refuse the person's token within 5 s.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use common::redis_server::{RedisServer, STATE_KEY};
use common::signin::{Browser, Tokens, hidden_fields, mcp, pkce};
use common::signin_server;
use common::*;
use serde_json::{Value, json};

const SECRET: &str = "store-raw-app-s3cret-0001";
const PREFIX: &str = "bitrix24-mcp:";

/// Every key of the store with its type and values (a string's one value, a hash's fields and
/// values, a list's or set's members, a sorted set's members and scores).
type Snapshot = Vec<(String, String, Vec<Vec<u8>>)>;

/// A reverse proxy on loopback: sends each request to the instance the test chose, records which
/// served what, and (for the public address) reads the store raw before forwarding each request,
/// so that the records that live only between two steps of a sign-in are read too.
struct Proxy {
    targets: Vec<String>,
    target: AtomicUsize,
    served: Mutex<Vec<(usize, String)>>,
    /// The answers' bodies (the token server's: Bitrix24's tokens).
    answers: Mutex<Vec<String>>,
    store: Option<String>,
    snapshots: Mutex<Vec<(String, Snapshot)>>,
    http: reqwest::Client,
}

impl Proxy {
    fn new(targets: Vec<String>, store: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            targets,
            target: AtomicUsize::new(0),
            served: Mutex::default(),
            answers: Mutex::default(),
            store,
            snapshots: Mutex::default(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
        })
    }

    /// Serves on a loopback listener; its address.
    async fn start(self: &Arc<Self>, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    fn to(&self, index: usize) {
        self.target.store(index, Ordering::SeqCst);
    }

    /// The instances that served requests whose "METHOD /path" is `step`.
    fn served(&self, step: &str) -> Vec<usize> {
        let served = self.served.lock().unwrap();
        served
            .iter()
            .filter(|(_, s)| s == step)
            .map(|(index, _)| *index)
            .collect()
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let index = proxy.target.load(Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let step = format!("{} {}", parts.method, parts.uri.path());
    if let Some(url) = proxy.store.clone() {
        let snapshot = tokio::task::spawn_blocking(move || read_raw(&url))
            .await
            .unwrap();
        proxy
            .snapshots
            .lock()
            .unwrap()
            .push((format!("before {step}"), snapshot));
    }
    proxy.served.lock().unwrap().push((index, step));
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = proxy.http.request(
        parts.method.clone(),
        format!("{}{target}", proxy.targets[index]),
    );
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let answer = outgoing.body(body).send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let bytes = answer.bytes().await.unwrap();
    proxy
        .answers
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&bytes).into_owned());
    response.body(Body::from(bytes)).unwrap()
}

/// The store as anyone with access to it sees it: SCAN every key, then TYPE and the value(s).
fn read_raw(url: &str) -> Snapshot {
    let mut connection = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(&mut connection)
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    let mut snapshot = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut connection).unwrap();
        let command = |name: &str, args: &[&str]| {
            let mut command = redis::cmd(name);
            command.arg(&key);
            for arg in args {
                command.arg(*arg);
            }
            command
        };
        let values: Vec<Vec<u8>> = match kind.as_str() {
            // Expired between SCAN and TYPE.
            "none" => continue,
            "string" => {
                let value: Option<Vec<u8>> = command("GET", &[]).query(&mut connection).unwrap();
                value.into_iter().collect()
            }
            "hash" => command("HGETALL", &[]).query(&mut connection).unwrap(),
            "list" => command("LRANGE", &["0", "-1"])
                .query(&mut connection)
                .unwrap(),
            "set" => command("SMEMBERS", &[]).query(&mut connection).unwrap(),
            "zset" => command("ZRANGE", &["0", "-1", "WITHSCORES"])
                .query(&mut connection)
                .unwrap(),
            other => panic!("{key}: a {other} in the store, which this test cannot read"),
        };
        snapshot.push((key, kind, values));
    }
    snapshot
}

/// One instance on `public`; its address. Its whole log (trace, JSON lines) collects in `log`.
async fn instance(
    portal: &DemoPortal,
    public: &str,
    redis: &str,
    token_url: &str,
    log: Arc<Mutex<String>>,
) -> (tokio::process::Child, String, tokio::task::JoinHandle<()>) {
    let mut command = signin_server::command(&portal.rest_root(), token_url, SECRET, "trace");
    command
        .args(["--stateless", "--public-url", public])
        .env("BITRIX24_STATE_URL", redis)
        .env("BITRIX24_STATE_KEY", STATE_KEY);
    signin_server::start(command, Some(log)).await
}

fn call(chat_id: i64, id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "im_chat_user_list", "arguments": {"CHAT_ID": chat_id}}})
}

/// Chat `chat_id`'s members as the token's owner sees them, through instance `index`.
async fn members(proxy: &Proxy, public: &str, index: usize, token: &str, chat_id: i64) -> Value {
    proxy.to(index);
    let (status, body) = mcp(public, token, &call(chat_id, 7)).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["result"]["structuredContent"]["user_ids"].clone()
}

/// How long a revocation may take to reach both instances before the test calls it a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Asks instance A and B in turn until both refuse `token` with 401 (each, once refusing, must
/// keep refusing); panics past `deadline`, a guard against a hang only. That a revocation is seen
/// within 5 seconds follows from each instance re-checking an accepted token after the cache
/// time (2 s), which `signin::grants` tests with paused time; a wall-clock bound here would depend
/// on the machine's speed.
async fn until_both_refuse(proxy: &Proxy, public: &str, token: &str, deadline: Instant) {
    let mut refused = [false, false];
    while refused != [true, true] {
        for (index, done) in refused.iter_mut().enumerate() {
            proxy.to(index);
            let (status, body) = mcp(public, token, &call(5001, 9)).await;
            match status {
                401 => *done = true,
                200 if !*done => {}
                _ => panic!("instance {index} answered {status} (refused before: {done}): {body}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "refused within the deadline by instance A, B: {refused:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The values a query string or form carries under `name`.
fn param(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_trace_logs_hold_no_secret_and_rotation_and_revocation_cross_instances() {
    let Some(redis) = RedisServer::start("signin-store-raw") else {
        return;
    };
    let app = OAuthApp::signin(OAuthApp::DEMO_CLIENT_ID, SECRET);
    let portal = DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap();
    // Bitrix24's token server behind a recording proxy: its answers hold Bitrix24's tokens.
    let token_proxy = Proxy::new(vec![format!("http://{}", portal.addr())], None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_url = format!("http://{}/oauth/token/", listener.local_addr().unwrap());
    token_proxy.start(listener).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    portal.set_redirect_uri(format!("{public}/oauth/callback"));
    let logs = [Arc::new(Mutex::default()), Arc::new(Mutex::default())];
    let (mut child_a, a, drain_a) =
        instance(&portal, &public, &redis.url(), &token_url, logs[0].clone()).await;
    let (mut child_b, b, drain_b) =
        instance(&portal, &public, &redis.url(), &token_url, logs[1].clone()).await;
    let proxy = Proxy::new(vec![a, b], Some(redis.url()));
    proxy.start(listener).await;
    const A: usize = 0;
    const B: usize = 1;

    // Anna signs in through A, step by step, so that every value the browser handles is known.
    portal.sign_in_browser_as(99);
    proxy.to(A);
    let mut browser = Browser::new();
    let client_id = browser.register(&public, "Store test client").await;
    let (verifier, challenge) = pkce();
    let code = browser.authorize(&public, &client_id, &challenge).await;
    let anna = browser
        .exchange(&public, &client_id, &code, &verifier)
        .await;
    for step in [
        "POST /register",
        "GET /authorize",
        "POST /authorize",
        "GET /oauth/callback",
        "POST /token",
    ] {
        assert_eq!(proxy.served(step), [A], "{step}");
    }

    // Anna calls through B.
    assert_eq!(
        members(&proxy, &public, B, &anna.access_token, 2937).await,
        json!([99, 1269, 1300])
    );
    assert_eq!(proxy.served("POST /mcp"), [B]);
    // Her Bitrix24 access token expires: B refreshes her pair (Bitrix24's refresh token is sent).
    portal.expire_access_tokens();
    assert_eq!(
        members(&proxy, &public, B, &anna.access_token, 5001).await,
        json!([99, 1269])
    );
    assert_eq!(portal.refreshes(99), 1);

    // Rotation across instances: refreshed through B, the old refresh token is refused by A, and
    // using it revokes the grant: both instances then refuse the new access token.
    proxy.to(B);
    let answer = browser.refresh(&public, &anna).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    let renewed = Tokens {
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
        client_id: client_id.clone(),
    };
    assert_eq!(
        members(&proxy, &public, A, &renewed.access_token, 5001).await,
        json!([99, 1269])
    );
    proxy.to(A);
    let reused = browser.refresh(&public, &anna).await;
    assert_eq!(reused.status(), 400);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    until_both_refuse(
        &proxy,
        &public,
        &renewed.access_token,
        Instant::now() + HANG_GUARD,
    )
    .await;

    // Anna and Maria sign in again (through A); both instances serve them (and remember their
    // tokens); `grants revoke 99` signs Anna out everywhere within 5 seconds, and only her.
    proxy.to(A);
    let mut again = Browser::new();
    let anna_again = again.sign_in(&public).await;
    portal.sign_in_browser_as(1271);
    let mut marias = Browser::new();
    let maria = marias.sign_in(&public).await;
    for index in [A, B] {
        assert_eq!(
            members(&proxy, &public, index, &anna_again.access_token, 2937).await,
            json!([99, 1269, 1300])
        );
        assert_eq!(
            members(&proxy, &public, index, &maria.access_token, 2937).await,
            json!([])
        );
    }
    let started = Instant::now();
    let revoke = std::process::Command::new(BIN)
        .env_clear()
        .env("BITRIX24_STATE_URL", redis.url())
        .env("RUST_LOG", "trace")
        .args(["grants", "revoke", "99"])
        .output()
        .unwrap();
    let revoke_out = String::from_utf8(revoke.stdout).unwrap();
    let revoke_err = String::from_utf8(revoke.stderr).unwrap();
    assert_eq!(revoke.status.code(), Some(0), "{revoke_out}{revoke_err}");
    assert_eq!(
        revoke_out,
        "signed out user 99: 1 sign-in ended; running servers refuse their tokens within 5 \
         seconds\n"
    );
    until_both_refuse(
        &proxy,
        &public,
        &anna_again.access_token,
        started + HANG_GUARD,
    )
    .await;
    for index in [A, B] {
        assert_eq!(
            members(&proxy, &public, index, &maria.access_token, 2937).await,
            json!([])
        );
    }
    let end = read_raw(&redis.url());

    // Every secret the sign-ins handled, learned from the browsers, the portal and its token
    // server.
    let mut secrets: Vec<(String, String)> = vec![
        ("client secret".into(), SECRET.into()),
        ("state key".into(), STATE_KEY.into()),
        ("PKCE verifier".into(), verifier.clone()),
        ("our code".into(), code.clone()),
    ];
    for (who, tokens) in [
        ("anna", &anna),
        ("anna renewed", &renewed),
        ("anna again", &anna_again),
        ("maria", &maria),
    ] {
        secrets.push((
            format!("{who}: our access token"),
            tokens.access_token.clone(),
        ));
        secrets.push((
            format!("{who}: our refresh token"),
            tokens.refresh_token.clone(),
        ));
    }
    for (who, browser) in [
        ("anna", &browser),
        ("anna again", &again),
        ("maria", &marias),
    ] {
        for page in &browser.pages {
            for (name, value) in hidden_fields(page) {
                secrets.push((format!("{who}: consent field {name}"), value));
            }
        }
        for (name, value) in &browser.cookies_set {
            if !value.is_empty() {
                secrets.push((format!("{who}: cookie {name}"), value.clone()));
            }
        }
        for address in &browser.visited {
            let query = address.split_once('?').map_or("", |(_, q)| q);
            if address.starts_with(&portal.authorize_url()) {
                let state = param(query, "state").expect("the upstream state");
                secrets.push((format!("{who}: upstream state"), state));
            } else if address.starts_with(&format!("{public}/oauth/callback")) {
                let code = param(query, "code").expect("Bitrix24's code");
                secrets.push((format!("{who}: Bitrix24 code"), code));
            } else if address.starts_with(common::signin::REDIRECT) {
                let code = param(query, "code").expect("our code");
                secrets.push((format!("{who}: our code"), code));
            } else {
                panic!("an unexpected redirect to {address}");
            }
        }
    }
    for request in portal.requests() {
        let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
        if let Some(token) = body["auth"].as_str() {
            secrets.push(("Bitrix24 access token (REST)".into(), token.to_owned()));
        }
        let form = request.query.clone().unwrap_or_default() + "&" + &request.body;
        for name in ["refresh_token", "code", "client_secret"] {
            if let Some(value) = param(&form, name) {
                secrets.push((format!("Bitrix24 token server: {name}"), value));
            }
        }
    }
    for answer in token_proxy.answers.lock().unwrap().iter() {
        let answer: Value = serde_json::from_str(answer).unwrap();
        for name in ["access_token", "refresh_token"] {
            let value = answer[name].as_str().expect("a token answer");
            secrets.push((format!("Bitrix24 {name}"), value.to_owned()));
        }
    }
    secrets.sort();
    secrets.dedup();
    let kinds = |label: &str| secrets.iter().filter(|(l, _)| l.contains(label)).count();
    // Three sign-ins and one Bitrix24 refresh: the test knows what it looks for.
    assert_eq!(kinds("upstream state"), 3, "{secrets:?}");
    assert_eq!(kinds("Bitrix24 code"), 3, "{secrets:?}");
    assert_eq!(kinds("Bitrix24 access_token"), 4, "{secrets:?}");
    assert_eq!(kinds("Bitrix24 refresh_token"), 4, "{secrets:?}");
    assert_eq!(kinds("consent field csrf"), 3, "{secrets:?}");
    assert_eq!(kinds("Bitrix24 token server: refresh_token"), 1);
    for (label, value) in &secrets {
        assert!(
            value.len() >= 16,
            "{label}: {value:?} is too short to look for"
        );
    }

    // The store, read raw before every step and at the end.
    let mut snapshots = proxy.snapshots.lock().unwrap().clone();
    snapshots.push(("at the end".into(), end));
    let seen = |kind: &str| {
        snapshots.iter().any(|(_, snapshot)| {
            snapshot
                .iter()
                .any(|(key, _, _)| key.starts_with(&format!("{PREFIX}signin:{kind}:")))
        })
    };
    for kind in [
        "client", "pending", "upstream", "code", "grant", "access", "refresh",
    ] {
        assert!(seen(kind), "a {kind} record was read");
    }
    for (when, snapshot) in &snapshots {
        for (key, kind, values) in snapshot {
            assert!(
                key.starts_with(PREFIX),
                "{when}: {key} is outside the prefix"
            );
            for (label, secret) in &secrets {
                assert!(
                    !key.contains(secret.as_str()),
                    "{when}: the key {key} holds {label}"
                );
                for value in values {
                    assert!(
                        !contains(value, secret),
                        "{when}: the {kind} at {key} holds {label}: {}",
                        String::from_utf8_lossy(value)
                    );
                }
            }
        }
    }

    // The logs, at trace, of both instances and of the revoke command.
    // Stopped, each log is read to its end.
    for (child, drain) in [(&mut child_a, drain_a), (&mut child_b, drain_b)] {
        child.kill().await.unwrap();
        drain.await.unwrap();
    }
    let logs: Vec<(&str, String)> = vec![
        ("instance A", logs[0].lock().unwrap().clone()),
        ("instance B", logs[1].lock().unwrap().clone()),
        ("grants revoke", revoke_out + &revoke_err),
    ];
    for (name, log) in &logs[..2] {
        assert!(log.contains(r#""level":"TRACE""#), "{name} logged at trace");
    }
    for (name, log) in &logs {
        for (label, secret) in &secrets {
            if let Some(at) = log.find(secret.as_str()) {
                let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = log[at..].find('\n').map_or(log.len(), |i| at + i);
                panic!("{name}'s log holds {label}: {}", &log[line_start..line_end]);
            }
        }
    }
}
