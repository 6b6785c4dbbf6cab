//! The sample portal: a small HTTP server on loopback that answers like Bitrix24 per the REST
//! reference, so newcomers see the product work without an account and tests exercise real HTTP.
//! It records every request it receives. It depends on nothing else in this crate.

mod php;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::any,
};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The portal's data: who the webhook acts as, and which chats exist with whom.
#[derive(Debug, Clone)]
pub struct PortalData {
    /// The employee the webhook was created by.
    pub webhook_user_id: u64,
    /// The webhook's code. Only requests carrying it are served.
    pub webhook_code: String,
    /// Scopes granted to the webhook (answered by the `scope` method).
    pub scopes: Vec<String>,
    /// Chat ID → participant IDs.
    pub chats: BTreeMap<i64, Vec<i64>>,
    /// The portal's general chat: `im.chat.user.list` refuses it with `ACCESS_ERROR`.
    pub general_chat_id: i64,
}

impl PortalData {
    /// The sample data of the docs: chat 2935 has users 99, 1269 and 1271, and the webhook acts
    /// as user 99. Chat 2936 exists without user 99, so it answers an empty list. Chat 1 is the
    /// general chat.
    pub fn sample(webhook_code: impl Into<String>) -> Self {
        Self {
            webhook_user_id: 99,
            webhook_code: webhook_code.into(),
            scopes: vec!["im".into(), "user_basic".into()],
            chats: BTreeMap::from([
                (1, vec![1, 99, 1269, 1271]),
                (2935, vec![99, 1269, 1271]),
                (2936, vec![1269, 1271]),
            ]),
            general_chat_id: 1,
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
    requests: Mutex<Vec<RecordedRequest>>,
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
        let state = Arc::new(PortalState {
            data,
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/rest/{*path}", any(handle))
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
            "http://{}/rest/{}/{}/",
            self.addr, self.state.data.webhook_user_id, self.state.data.webhook_code
        )
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for DemoPortal {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    State(state): State<Arc<PortalState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(record(&method, &uri, &headers, &body));
    let started = now();
    let segments: Vec<&str> = uri
        .path()
        .trim_start_matches("/rest/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let data = &state.data;
    let rest_method = match segments.as_slice() {
        [user, code, method]
            if *user == data.webhook_user_id.to_string() && *code == data.webhook_code =>
        {
            method.to_ascii_lowercase()
        }
        // A wrong user ID or code, or an OAuth-style call without a token this portal issued.
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "NO_AUTH_FOUND",
                "Wrong authorization data",
            );
        }
    };
    let rest_method = rest_method.strip_suffix(".json").unwrap_or(&rest_method);
    let params = params(uri.query(), &headers, &body);
    match rest_method {
        "im.chat.user.list" => chat_user_list(data, &params, started),
        "scope" => success(json!(data.scopes), started),
        _ => error(
            StatusCode::NOT_FOUND,
            "ERROR_METHOD_NOT_FOUND",
            "Method not found!",
        ),
    }
}

/// `im.chat.user.list` as the server implements it: `CHAT_ID` through PHP `intval` (or the
/// undocumented `DIALOG_ID=chatNNN`), the general chat refused, unknown or foreign chats empty.
fn chat_user_list(data: &PortalData, params: &Map<String, Value>, started: f64) -> Response {
    let chat_id = match params.get("CHAT_ID") {
        Some(value) => php::intval(value),
        None => params
            .get("DIALOG_ID")
            .and_then(Value::as_str)
            .and_then(|d| d.strip_prefix("chat"))
            .map_or(0, |id| php::intval(&Value::String(id.to_owned()))),
    };
    if chat_id <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "CHAT_ID_EMPTY",
            "Chat ID can't be empty",
        );
    }
    if chat_id == data.general_chat_id {
        return error(StatusCode::FORBIDDEN, "ACCESS_ERROR", "Action unavailable");
    }
    let caller = data.webhook_user_id as i64;
    let visible = data
        .chats
        .get(&chat_id)
        .filter(|members| members.contains(&caller))
        .cloned()
        .unwrap_or_default();
    success(json!(visible), started)
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

fn success(result: Value, started: f64) -> Response {
    let finished = now();
    let reset_at = started.floor() as i64 + 600;
    let body = json!({
        "result": result,
        "time": {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": 0,
            "date_start": php::iso8601(started as i64),
            "date_finish": php::iso8601(finished as i64),
            "operating_reset_at": reset_at,
            "operating": 0,
        }
    });
    (StatusCode::OK, axum::Json(body)).into_response()
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

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
