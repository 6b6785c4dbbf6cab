//! The sample portal: a small HTTP server on loopback that answers like Bitrix24 per the REST
//! reference — webhook and OAuth calls, each as its own user; people's sign-in to an installed app
//! and the token server with single-use codes and rotating refresh tokens; optionally the
//! request-rate bucket — so newcomers see the product work without an account and tests exercise
//! real HTTP. Its chats have histories to read, search and post to. It records every request. It depends on nothing else in this crate.

mod chat;
mod data;
mod dates;
mod history;
mod messages;
mod oauth;
pub mod people;
mod php;
mod posting;
mod rest;
mod signin;
mod writes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use data::{PortalData, RequestObserver};
pub use history::DemoMessage;
pub use oauth::OAuthApp;
use oauth::TokenBook;
pub use people::{ChatInfo, DemoUser};

/// One request as the portal received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path, webhook code included: tests compare it with what they configured.
    pub path: String,
    pub query: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// A running sample portal. Dropping it stops the server.
#[derive(Debug)]
pub struct DemoPortal {
    addr: SocketAddr,
    state: Arc<PortalState>,
    server: JoinHandle<()>,
}

#[derive(Debug)]
struct PortalState {
    data: PortalData,
    /// Chat ID → members, as the write methods change them (starting from `data.chats`).
    membership: Mutex<BTreeMap<i64, Vec<i64>>>,
    /// The chats' messages, as the message methods change them.
    history: Mutex<history::History>,
    /// Whether a write method has run (until then, reads use `data` as it is).
    written: std::sync::atomic::AtomicBool,
    rest_root: String,
    /// The portal's `host:port`, as the sign-in's `domain`.
    host: String,
    requests: Mutex<Vec<RecordedRequest>>,
    tokens: Mutex<TokenBook>,
    /// The browser's session at the portal and the app's handler URL.
    browser: Mutex<signin::Browser>,
    bucket: Mutex<Bucket>,
    /// The token server answers this many next requests with an HTML 503, as a broken proxy would.
    token_failures: AtomicU32,
    /// The token server leaves this many next requests unanswered (and unprocessed), as a stalled
    /// one would.
    token_stalls: AtomicU32,
}

/// The portal-side leaky bucket: every accepted request adds 1, the level drains continuously.
#[derive(Debug)]
struct Bucket {
    level: f64,
    at: Instant,
    refused: u64,
}

impl DemoPortal {
    /// Starts the portal on a free loopback port.
    pub async fn start(data: PortalData) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        Self::serve(listener, data)
    }

    /// Serves on a listener the caller bound.
    pub fn serve(listener: TcpListener, data: PortalData) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let tokens = data
            .oauth
            .as_ref()
            .map(|app| TokenBook::new(app, data.webhook_user_id as i64))
            .unwrap_or_default();
        let browser = signin::Browser {
            redirect_uri: data.oauth.as_ref().and_then(|app| app.redirect_uri.clone()),
            user: None,
        };
        let state = Arc::new(PortalState {
            rest_root: format!("http://{addr}/rest/"),
            host: addr.to_string(),
            membership: Mutex::new(data.chats.clone()),
            history: Mutex::new(history::History::sample()),
            written: std::sync::atomic::AtomicBool::new(false),
            data,
            requests: Mutex::new(Vec::new()),
            tokens: Mutex::new(tokens),
            browser: Mutex::new(browser),
            bucket: Mutex::new(Bucket {
                level: 0.0,
                at: Instant::now(),
                refused: 0,
            }),
            token_failures: AtomicU32::new(0),
            token_stalls: AtomicU32::new(0),
        });
        let app = Router::new()
            .route("/rest/{*path}", any(handle_rest))
            .route("/oauth/token/", any(oauth::handle_token))
            .route("/oauth/token", any(oauth::handle_token))
            .route(
                "/oauth/authorize/",
                get(signin::authorize_page).post(signin::authorize_choice),
            )
            .route(
                "/oauth/authorize",
                get(signin::authorize_page).post(signin::authorize_choice),
            )
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            // Serving ends only when the task is aborted or the listener fails.
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "demo portal stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The webhook URL that reaches this portal. It contains the code.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}{}/{}/",
            self.state.rest_root, self.state.data.webhook_user_id, self.state.data.webhook_code
        )
    }

    /// The REST root for OAuth calls (`client_endpoint`).
    pub fn rest_root(&self) -> String {
        self.state.rest_root.clone()
    }

    /// The token server's address.
    pub fn token_url(&self) -> String {
        format!("http://{}/oauth/token/", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// Accepts one more refresh token, as if the user authorized the app again.
    pub fn add_refresh_token(&self, token: &str) {
        lock(&self.state.tokens).add_refresh_token(token);
    }

    /// Expires every access token issued so far, as an hour passing would.
    pub fn expire_access_tokens(&self) {
        lock(&self.state.tokens).expire_all();
    }

    /// Makes the token server fail its next `count` requests.
    pub fn fail_token_requests(&self, count: u32) {
        self.state.token_failures.store(count, Ordering::SeqCst);
    }

    /// Makes the token server leave its next `count` requests unanswered: they are recorded,
    /// nothing is refreshed, and the connection stays open until the client gives up.
    pub fn stall_token_requests(&self, count: u32) {
        self.state.token_stalls.store(count, Ordering::SeqCst);
    }

    /// The members of a chat now, after any writes.
    pub fn members(&self, chat_id: i64) -> Vec<i64> {
        lock(&self.state.membership)
            .get(&chat_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How many requests the bucket refused with `QUERY_LIMIT_EXCEEDED`.
    pub fn rate_limited(&self) -> u64 {
        lock(&self.state.bucket).refused
    }
}

impl Drop for DemoPortal {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle_rest(
    State(state): State<Arc<PortalState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.receive(&method, &uri, &headers, &body);
    let started = now();
    if let Some(refusal) = state.admit() {
        return refusal;
    }
    let params = params(uri.query(), &headers, &body);
    let segments: Vec<&str> = uri
        .path()
        .trim_start_matches("/rest/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let data = &state.data;
    let (caller, rest_method) = match segments.as_slice() {
        [user, code, method]
            if *user == data.webhook_user_id.to_string() && *code == data.webhook_code =>
        {
            (data.webhook_user_id as i64, method.to_ascii_lowercase())
        }
        [method] if data.oauth.is_some() => {
            let token = params.get("AUTH").and_then(Value::as_str);
            match lock(&state.tokens).caller(token) {
                Ok(caller) => (caller, method.to_ascii_lowercase()),
                Err((code, text)) => return error(StatusCode::UNAUTHORIZED, code, text),
            }
        }
        // A wrong user ID or code, or a call without credentials this portal issued.
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "NO_AUTH_FOUND",
                "Wrong authorization data",
            );
        }
    };
    let rest_method = rest_method.strip_suffix(".json").unwrap_or(&rest_method);
    if let Some(answer) = writes::dispatch_write(
        &state.membership,
        data,
        caller,
        rest_method,
        &params,
        started,
    ) {
        state.written.store(true, Ordering::SeqCst);
        return answer;
    }
    // The reads see the members as the writes left them (a copy only once something changed).
    let current = state
        .written
        .load(Ordering::SeqCst)
        .then(|| data.clone_with_members(&lock(&state.membership)));
    let data = current.as_ref().unwrap_or(data);
    if let Some(answer) = messages::dispatch(&state, data, caller, rest_method, &params, started) {
        return answer;
    }
    rest::dispatch(data, caller, rest_method, &params, started)
}

impl PortalState {
    /// Records a request (showing it to the observer first) before it is answered.
    fn receive(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
        let request = record(method, uri, headers, body);
        if let Some(observer) = &self.data.observer {
            (observer.0)(&request);
        }
        lock(&self.requests).push(request);
    }

    /// The portal's bucket: `None` to serve, or the refusal.
    fn admit(&self) -> Option<Response> {
        let (drain, burst) = self.data.rate_limit?;
        let mut bucket = lock(&self.bucket);
        let now = Instant::now();
        let drained = now.duration_since(bucket.at).as_secs_f64() * drain;
        bucket.level = (bucket.level - drained).max(0.0);
        bucket.at = now;
        if bucket.level + 1.0 > f64::from(burst) {
            bucket.refused += 1;
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "QUERY_LIMIT_EXCEEDED",
                "Too many requests",
            ));
        }
        bucket.level += 1.0;
        None
    }
}

/// Query string and body merged, names upper-cased as the portal does. A body that cannot be
/// read contributes nothing, as on the real server.
fn params(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Map<String, Value> {
    let mut params = Map::new();
    let mut add_form = |text: &str| {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text).unwrap_or_default();
        for (key, value) in pairs {
            params.insert(key.to_ascii_uppercase(), Value::String(value));
        }
    };
    if let Some(query) = query {
        add_form(query);
    }
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        add_form(&String::from_utf8_lossy(body));
    } else if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) {
        for (key, value) in object {
            params.insert(key.to_ascii_uppercase(), value);
        }
    }
    params
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = json!({"error": code, "error_description": description});
    (status, axum::Json(body)).into_response()
}

fn record(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> RecordedRequest {
    RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

/// A lock that survives a panicked holder: the portal's data stays usable for the next request.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
