//! Dynamic client registration (`POST /register`, RFC 7591), kept for clients without a metadata
//! document (Cursor, older clients): public clients only (`none`), bounded in size, rate-limited
//! per process, expiring 30 days after last use.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{ClientInfo, KnownBy, Lookup, REGISTRATION_TTL, redirect};
use crate::bitrix::CallError;
use crate::signin::metadata::with_cors;
use crate::signin::page::clean_name;
use crate::signin::store::SigninStore;
use crate::signin::{Signin, now, random_token};

/// The largest registration request read.
pub const MAX_BODY: usize = 16 * 1024;
pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_CLIENT_NAME: usize = 200;
/// Registrations one source address may make a minute (when the server knows the address).
pub const PER_SOURCE_PER_MINUTE: u32 = 20;
/// Registrations the whole process accepts a minute, whatever their source.
pub const GLOBAL_PER_MINUTE: u32 = 100;

/// A registration as stored (`client:<client_id>`): what the client asked for, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredClient {
    pub client_id: String,
    pub client_id_issued_at: i64,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub application_type: Option<String>,
    pub scope: Option<String>,
}

impl RegisteredClient {
    fn info(&self) -> ClientInfo {
        ClientInfo {
            client_id: self.client_id.clone(),
            client_name: self
                .client_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "Unnamed client".to_owned()),
            redirect_uris: self.redirect_uris.clone(),
            known_by: KnownBy::Registered,
        }
    }
}

/// A registered client, its registration kept alive by this use.
pub(super) async fn find(store: &SigninStore, client_id: &str) -> Result<Lookup, CallError> {
    if client_id.is_empty() || client_id.len() > 100 {
        return Ok(Lookup::Unknown);
    }
    let key = store.key(&["client", client_id]);
    let Some(bytes) = store.get(&key).await? else {
        return Ok(Lookup::Unknown);
    };
    let Ok(client) = serde_json::from_slice::<RegisteredClient>(&bytes) else {
        return Ok(Lookup::Unknown);
    };
    store.put(&key, &bytes, REGISTRATION_TTL).await?;
    Ok(Lookup::Known(client.info()))
}

/// `POST /register`.
pub(super) async fn register(State(signin): State<Signin>, request: Request) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_client_metadata",
                &format!("the registration request is larger than {MAX_BODY} bytes"),
            );
        }
    };
    let asked: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(asked)) => asked,
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                "the registration request must be a JSON object (RFC 7591)",
            );
        }
    };
    let client = match checked(&asked) {
        Ok(client) => client,
        Err((code, detail)) => return refuse(StatusCode::BAD_REQUEST, code, &detail),
    };
    if let Err(wait) = signin.clients().admit_registration(source) {
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
            "too many client registrations; try again in a minute",
        );
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let Some(client_id) = random_token() else {
        return unavailable();
    };
    let client = RegisteredClient {
        client_id,
        client_id_issued_at: now(),
        ..client
    };
    let store = signin.store();
    let key = store.key(&["client", &client.client_id]);
    let stored = match serde_json::to_vec(&client) {
        Ok(bytes) => store.put_new(&key, &bytes, REGISTRATION_TTL).await,
        Err(_) => return unavailable(),
    };
    if !matches!(stored, Ok(true)) {
        return unavailable();
    }
    tracing::info!(
        client_name = client.client_name.as_deref().unwrap_or(""),
        "client registered"
    );
    let mut answer = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.client_id_issued_at,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": client.response_types,
        "token_endpoint_auth_method": "none",
    });
    for (field, value) in [
        ("client_name", &client.client_name),
        ("application_type", &client.application_type),
        ("scope", &client.scope),
    ] {
        if let Some(value) = value {
            answer[field] = json!(value);
        }
    }
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cors(response)
}

pub(super) async fn preflight() -> Response {
    with_cors(StatusCode::NO_CONTENT.into_response())
}

type Refusal = (&'static str, String);

/// The registration a request asks for, or the RFC 7591 error code and what is wrong.
fn checked(asked: &Map<String, Value>) -> Result<RegisteredClient, Refusal> {
    let metadata = |detail: String| ("invalid_client_metadata", detail);
    let uris = match asked.get("redirect_uris") {
        Some(Value::Array(uris)) if !uris.is_empty() => uris,
        _ => {
            return Err((
                "invalid_redirect_uri",
                "redirect_uris must be a non-empty array of URIs".to_owned(),
            ));
        }
    };
    if uris.len() > MAX_REDIRECT_URIS {
        return Err((
            "invalid_redirect_uri",
            format!("at most {MAX_REDIRECT_URIS} redirect URIs may be registered"),
        ));
    }
    let mut redirect_uris = Vec::with_capacity(uris.len());
    for uri in uris {
        let Some(uri) = uri.as_str() else {
            return Err((
                "invalid_redirect_uri",
                "every redirect URI must be a string".to_owned(),
            ));
        };
        redirect::check(uri).map_err(|detail| ("invalid_redirect_uri", detail))?;
        redirect_uris.push(uri.to_owned());
    }
    let client_name = match asked.get("client_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if name.chars().count() <= MAX_CLIENT_NAME => {
            Some(clean_name(name))
        }
        Some(Value::String(_)) => {
            return Err(metadata(format!(
                "client_name is longer than {MAX_CLIENT_NAME} characters"
            )));
        }
        Some(_) => return Err(metadata("client_name must be a string".to_owned())),
    };
    let application_type = match optional_text(asked, "application_type")? {
        Some(kind) if kind != "native" && kind != "web" => {
            return Err(metadata(format!(
                "application_type must be \"native\" or \"web\", not {kind:?}"
            )));
        }
        kind => kind,
    };
    // Only public clients: a client asking for a secret is answered with `none`, as RFC 7591
    // lets a server replace a value it does not support.
    optional_text(asked, "token_endpoint_auth_method")?;
    let grant_types = subset(
        asked,
        "grant_types",
        &["authorization_code", "refresh_token"],
        &["authorization_code", "refresh_token"],
    )?;
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(metadata(
            "grant_types must include \"authorization_code\"".to_owned(),
        ));
    }
    let response_types = subset(asked, "response_types", &["code"], &["code"])?;
    let scope = optional_text(asked, "scope")?;
    if scope.as_ref().is_some_and(|s| s.len() > 1_000) {
        return Err(metadata("scope is longer than 1000 characters".to_owned()));
    }
    Ok(RegisteredClient {
        client_id: String::new(),
        client_id_issued_at: 0,
        client_name,
        redirect_uris,
        grant_types,
        response_types,
        application_type,
        scope,
    })
}

fn optional_text(asked: &Map<String, Value>, field: &str) -> Result<Option<String>, Refusal> {
    match asked.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() <= 1_000 => Ok(Some(text.clone())),
        Some(_) => Err((
            "invalid_client_metadata",
            format!("{field} must be a string of at most 1000 characters"),
        )),
    }
}

/// A list field that must name only `supported` values; `default` when absent.
fn subset(
    asked: &Map<String, Value>,
    field: &str,
    supported: &[&str],
    default: &[&str],
) -> Result<Vec<String>, Refusal> {
    let Some(given) = asked.get(field) else {
        return Ok(default.iter().map(|s| (*s).to_owned()).collect());
    };
    let wrong = || {
        (
            "invalid_client_metadata",
            format!(
                "{field} must be a non-empty list of {}",
                supported
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    let Value::Array(items) = given else {
        return Err(wrong());
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        match item.as_str() {
            Some(value) if supported.contains(&value) => {
                if !out.iter().any(|o| o == value) {
                    out.push(value.to_owned());
                }
            }
            _ => return Err(wrong()),
        }
    }
    if out.is_empty() {
        return Err(wrong());
    }
    Ok(out)
}

fn refuse(status: StatusCode, error: &str, detail: &str) -> Response {
    let body = json!({"error": error, "error_description": detail});
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cors(response)
}

fn unavailable() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the server could not store the registration; try again in a minute",
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn registrations_live_thirty_days_after_their_last_use() {
        let store = SigninStore::memory();
        let client = RegisteredClient {
            client_id: "abc".to_owned(),
            client_id_issued_at: 0,
            client_name: Some("Cursor".to_owned()),
            redirect_uris: vec!["cursor://anysphere.cursor-mcp/oauth/callback".to_owned()],
            grant_types: vec!["authorization_code".to_owned()],
            response_types: vec!["code".to_owned()],
            application_type: None,
            scope: None,
        };
        let key = store.key(&["client", "abc"]);
        let bytes = serde_json::to_vec(&client).unwrap();
        store.put(&key, &bytes, REGISTRATION_TTL).await.unwrap();
        let day = Duration::from_secs(86_400);
        tokio::time::advance(day * 29).await;
        let Lookup::Known(info) = find(&store, "abc").await.unwrap() else {
            panic!("used within 30 days");
        };
        assert_eq!(info.known_by, KnownBy::Registered);
        assert_eq!(info.client_name, "Cursor");
        tokio::time::advance(day * 29).await;
        assert!(matches!(
            find(&store, "abc").await.unwrap(),
            Lookup::Known(_)
        ));
        tokio::time::advance(day * 31).await;
        assert_eq!(find(&store, "abc").await.unwrap(), Lookup::Unknown);
    }

    #[test]
    fn registrations_are_checked_field_by_field() {
        let ask = |v: Value| checked(v.as_object().unwrap()).map_err(|(code, _)| code);
        let ok = ask(
            json!({"redirect_uris": ["http://localhost/cb"], "application_type": "native",
            "token_endpoint_auth_method": "client_secret_basic"}),
        )
        .unwrap();
        assert_eq!(ok.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(ask(json!({})), Err("invalid_redirect_uri"));
        assert_eq!(
            ask(json!({"redirect_uris": ["javascript:alert(1)"]})),
            Err("invalid_redirect_uri")
        );
        assert_eq!(
            ask(json!({"redirect_uris": ["http://localhost/cb"], "application_type": "tv"})),
            Err("invalid_client_metadata")
        );
        assert_eq!(
            ask(json!({"redirect_uris": ["http://localhost/cb"], "grant_types": ["implicit"]})),
            Err("invalid_client_metadata")
        );
        assert_eq!(
            ask(json!({"redirect_uris": ["http://localhost/cb"], "response_types": ["token"]})),
            Err("invalid_client_metadata")
        );
        assert_eq!(
            ask(json!({"redirect_uris": ["http://localhost/cb"], "client_name": "x".repeat(201)})),
            Err("invalid_client_metadata")
        );
    }
}
