//! The gate in front of the MCP endpoints when each person signs in (`--auth oauth`): the
//! request's bearer token names its user ([`Callers`]), whose [`Acting`] then travels with the
//! request to the tools; a missing or unknown token gets the 401 challenge that starts a client's
//! sign-in (never a redirect). A streamable HTTP session belongs to the user who opened it: the
//! same session ID with another user's token is answered as an unknown session and never reaches
//! rmcp. The sign-in's own endpoints are not behind this gate.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::future::BoxFuture;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;
use tracing::{debug, warn};

use super::security::bearer_token;
use crate::signin::{PublicUrl, Signin, grants::Rejection};
use crate::tools::Acting;

/// Why a request is not let through.
#[derive(Debug)]
pub enum Refusal {
    /// No token, or one that is unknown, expired, revoked or for another resource: 401 with the
    /// challenge, so the client signs in (again).
    Unauthenticated,
    /// The sign-in's store could not be asked: 503, since the token may well be good. The reason
    /// goes to the log only.
    Unavailable(String),
}

/// Who calls: what the transport needs of the sign-in. [`Signin`] is the one the server uses.
pub trait Callers: Send + Sync + fmt::Debug + 'static {
    /// The sign-in's own endpoints (metadata, registration, authorize, callback, token), served
    /// without a bearer token.
    fn routes(&self) -> Router;
    /// The user an `Authorization: Bearer` token (`None`: no such header) acts as.
    fn caller<'a>(&'a self, bearer: Option<&'a str>) -> BoxFuture<'a, Result<Acting, Refusal>>;
    /// The 401 answer that sends a client to sign in, for a request to `path`.
    fn challenge(&self, path: &str) -> Response;
    /// Whether the store the sign-in keeps its grants in answers (`/healthz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), String>>;
}

impl Callers for Signin {
    fn routes(&self) -> Router {
        Signin::routes(self)
    }

    fn caller<'a>(&'a self, bearer: Option<&'a str>) -> BoxFuture<'a, Result<Acting, Refusal>> {
        Box::pin(async move {
            match Signin::caller(self, bearer).await {
                Ok((grant, client)) => Ok(Acting {
                    client,
                    user_id: grant.user_id,
                    user_name: grant.user_name,
                }),
                Err(Rejection::Missing | Rejection::Invalid) => Err(Refusal::Unauthenticated),
                Err(Rejection::Unavailable(err)) => Err(Refusal::Unavailable(err.to_string())),
            }
        })
    }

    fn challenge(&self, path: &str) -> Response {
        challenge(&self.settings().public, path)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match self.store().redis_store() {
                Some(store) => store.ping().await.map_err(|err| err.to_string()),
                None => Ok(()),
            }
        })
    }
}

/// The 401 of the MCP authorization spec, which clients follow to the protected-resource
/// metadata and on to sign-in: the sign-in's own ([`crate::signin::metadata::challenge`]).
pub fn challenge(public: &PublicUrl, path: &str) -> Response {
    use crate::signin::metadata::{SSE_RESOURCE_METADATA_PATH, challenge_for};
    if path.starts_with("/sse") || path.starts_with("/message") {
        // The legacy SSE endpoints name their own document: an SSE client checks that the
        // document's resource is the URL it was given.
        challenge_for(public, SSE_RESOURCE_METADATA_PATH)
    } else {
        crate::signin::metadata::challenge(public)
    }
}

/// The 400 for a request carrying more than one credential: `invalid_request` of RFC 6750, not
/// the 401 challenge (signing in again would not make the request well-formed).
fn ambiguous_credentials() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(
            header::WWW_AUTHENTICATE,
            r#"Bearer error="invalid_request", error_description="more than one Authorization header""#,
        )],
        axum::Json(json!({
            "error": "invalid_request",
            "error_description": "send one Authorization header with one bearer token"
        })),
    )
        .into_response()
}

/// The gate's state: who calls, and who owns each streamable HTTP session.
#[derive(Debug)]
pub struct Gate {
    callers: Arc<dyn Callers>,
    owners: Owners,
}

impl Gate {
    pub fn new(callers: Arc<dyn Callers>, sessions: Arc<LocalSessionManager>) -> Self {
        Self {
            callers,
            owners: Owners {
                by_session: Mutex::new(HashMap::new()),
                sessions,
            },
        }
    }
}

/// Streamable HTTP session ID → the Bitrix24 user who opened it. Only sessions still open are
/// kept (closed ones are dropped whenever one opens), so it is bounded by the session limit.
#[derive(Debug)]
struct Owners {
    by_session: Mutex<HashMap<String, u64>>,
    sessions: Arc<LocalSessionManager>,
}

impl Owners {
    fn owner(&self, session: &str) -> Option<u64> {
        self.by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session)
            .copied()
    }

    async fn record(&self, session: String, user_id: u64) {
        let open = self.sessions.sessions.read().await;
        let mut owners = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        owners.retain(|id, _| open.contains_key(id.as_str()));
        owners.insert(session, user_id);
    }
}

/// The axum middleware in front of `/mcp`, `/mcp/`, `/sse` and `/message`.
pub async fn gate(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    // Two `Authorization` headers name two credentials: which one counts would be this server's
    // guess (a proxy in front may well guess the other), so neither does (RFC 6750 3.1).
    if request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        debug!(path = %request.uri().path(), "refused: more than one Authorization header");
        return ambiguous_credentials();
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .filter(|token| !token.is_empty());
    let acting = match gate.callers.caller(bearer).await {
        Ok(acting) => acting,
        Err(Refusal::Unauthenticated) => {
            debug!(path = %request.uri().path(), "refused: no valid access token");
            return gate.callers.challenge(request.uri().path());
        }
        Err(Refusal::Unavailable(reason)) => {
            warn!(error = %reason, "cannot check an access token: the sign-in store is unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "error": "the server cannot check access tokens right now; try again shortly"
                })),
            )
                .into_response();
        }
    };
    let user_id = acting.user_id;
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|id| id.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && gate.owners.owner(id).is_some_and(|owner| owner != user_id)
    {
        // Answered exactly as an unknown session: nobody learns that another user's session
        // exists, and a client that changed users simply starts a session of its own.
        debug!(user_id, "refused: a session opened by another user");
        return (StatusCode::NOT_FOUND, "unknown or closed session").into_response();
    }
    request.extensions_mut().insert(acting);
    let response = next.run(request).await;
    if session.is_none()
        && let Some(opened) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|id| id.to_str().ok())
    {
        gate.owners.record(opened.to_owned(), user_id).await;
    }
    response
}
