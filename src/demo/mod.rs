//! The sample portal: a small HTTP server on loopback that answers like Bitrix24 per the REST
//! reference — webhook and OAuth calls, each as its own user; people's sign-in to an installed app
//! and the token server with single-use codes and rotating refresh tokens; optionally the
//! request-rate bucket — so newcomers see the product work without an account and tests exercise
//! real HTTP. It records every request. It depends on nothing else in this crate.

mod chat;
mod oauth;
pub mod people;
mod php;
mod rest;
mod signin;
mod writes;

use std::collections::BTreeMap;
use std::fmt;
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

pub use oauth::OAuthApp;
use oauth::TokenBook;
pub use people::{ChatInfo, DemoUser};

/// The portal's data: who the webhook acts as, which chats exist with whom, the installed app.
#[derive(Debug, Clone)]
pub struct PortalData {
    /// The employee the webhook (and the OAuth app's seed tokens) act as.
    pub webhook_user_id: u64,
    /// The webhook's code. Only requests carrying it are served.
    pub webhook_code: String,
    /// Scopes granted (answered by the `scope` method).
    pub scopes: Vec<String>,
    /// Chat ID → participant IDs.
    pub chats: BTreeMap<i64, Vec<i64>>,
    /// Chat ID → what the chat is (chats without an entry get a plain default).
    pub chat_info: BTreeMap<i64, ChatInfo>,
    /// The people, by ID.
    pub users: BTreeMap<i64, DemoUser>,
    /// Each user's recent list, newest first, as dialog IDs (may repeat); none for the others.
    pub recent: BTreeMap<i64, Vec<String>>,
    /// The people the sign-in page offers, in order.
    pub signin_users: Vec<i64>,
    /// The portal's administrators (`profile` answers `ADMIN: true`).
    pub admins: Vec<i64>,
    /// The portal's general chat: `im.chat.user.list` refuses it with `ACCESS_ERROR`.
    pub general_chat_id: i64,
    /// An installed OAuth application, when calls by token and people's sign-in are to be served.
    pub oauth: Option<OAuthApp>,
    /// The request-rate bucket (drain per second, burst) the portal enforces, if any.
    pub rate_limit: Option<(f64, u32)>,
    /// Called with each request (REST and token server) as it arrives, before it is answered.
    pub observer: Option<RequestObserver>,
}

/// A callback that sees each REST request as it arrives (tests use it to check what was true at
/// that moment).
#[derive(Clone)]
pub struct RequestObserver(pub Arc<dyn Fn(&RecordedRequest) + Send + Sync>);

impl fmt::Debug for RequestObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestObserver")
    }
}

impl PortalData {
    /// These settings with the chats' current members.
    fn clone_with_members(&self, members: &BTreeMap<i64, Vec<i64>>) -> Self {
        Self {
            chats: members.clone(),
            ..self.clone()
        }
    }

    /// What the sample data offers to try first, as the start-up log says it. Each clause is
    /// checked against the running demo portal by a test (tests/first_hour.rs).
    pub const SAMPLE_SUMMARY: &'static str = "chat 2935 has users 99, 1269, 1271; chat 1 is refused; \
         chat 2939 hides its members; chat 2936 does not include the webhook's user, so it answers \
         an empty list";

    /// The sample data of the docs: chat 2935 ("Marketing team") has users 99, 1269 and 1271, and
    /// the webhook acts as user 99 (Anna Petrova). Chat 2936 exists without user 99, so it answers
    /// an empty list. Chat 1 is the general chat. Also: 2937, the discussion chat of deal 1663
    /// (with a bot); 2938, workgroup 17's chat (with an extranet user); 2939, whose members are
    /// hidden; 2940, a chat of 450; private dialogs with 1269 and 1271. Anna (99) and Maria
    /// (1271, in fewer chats) can sign in; Olga (1) is the administrator. See [`people`].
    pub fn sample(webhook_code: impl Into<String>) -> Self {
        Self {
            webhook_user_id: 99,
            webhook_code: webhook_code.into(),
            scopes: vec!["im".into(), "user_basic".into()],
            chats: people::chats(),
            chat_info: people::chat_info(),
            users: people::users(),
            recent: people::recent(),
            signin_users: people::signin_users(),
            admins: people::admins(),
            general_chat_id: 1,
            oauth: None,
            rate_limit: None,
            observer: None,
        }
    }

    /// The sample data with `app` installed for people's sign-in, as `--demo --auth oauth` runs
    /// it (see [`OAuthApp::signin`]).
    pub fn sample_with_signin(webhook_code: impl Into<String>, app: OAuthApp) -> Self {
        Self {
            oauth: Some(app),
            ..Self::sample(webhook_code)
        }
    }
}

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
    if state.written.load(Ordering::SeqCst) {
        // The reads see the members as the writes left them (a copy only once something changed).
        let current = data.clone_with_members(&lock(&state.membership));
        return rest::dispatch(&current, caller, rest_method, &params, started);
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
