//! `POST /token` (RFC 6749 §4.1.3 and §6: an authorization code with its S256 verifier, or a
//! refresh token) and `POST /revoke` (RFC 7009). Clients are public: `client_id` names them, a
//! `client_secret` is ignored. Browser clients (MCP Inspector) call both, so both answer CORS.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::Signin;
use super::grants::{TokenError, TokenPair};

/// The largest request body read: a token request is a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;
const FORM: &str = "application/x-www-form-urlencoded";

pub fn routes() -> Router<Signin> {
    Router::new()
        .route("/token", post(token).options(preflight))
        .route("/revoke", post(revoke).options(preflight))
}

async fn token(State(signin): State<Signin>, headers: HeaderMap, body: Body) -> Response {
    let form = match Form::read(&headers, body).await {
        Ok(form) => form,
        Err(answer) => return answer,
    };
    let result = match form.get("grant_type") {
        None => Err(TokenError::InvalidRequest(
            "the grant_type parameter is missing",
        )),
        Some("authorization_code") => authorization_code(&signin, &form).await,
        Some("refresh_token") => refresh_token(&signin, &form).await,
        Some(_) => return unsupported_grant_type(),
    };
    match result {
        Ok(pair) => issued(&pair),
        Err(err) => refused(&err),
    }
}

async fn authorization_code(signin: &Signin, form: &Form) -> Result<TokenPair, TokenError> {
    let code = form.required("code", "the code parameter is missing")?;
    let redirect_uri = form.required("redirect_uri", "the redirect_uri parameter is missing")?;
    let verifier = form.required(
        "code_verifier",
        "the code_verifier parameter is missing (PKCE with S256 is required)",
    )?;
    let client_id = form.client_id()?;
    let resource = form.resource(signin)?;
    signin
        .grants()
        .redeem_code(code, &client_id, redirect_uri, verifier, resource)
        .await
}

async fn refresh_token(signin: &Signin, form: &Form) -> Result<TokenPair, TokenError> {
    let refresh = form.required("refresh_token", "the refresh_token parameter is missing")?;
    let client_id = form.client_id()?;
    let resource = form.resource(signin)?;
    signin.grants().refresh(refresh, &client_id, resource).await
}

/// RFC 7009: the grant of the access or refresh token is revoked. An unknown token is answered
/// 200 as well, so the answer tells nothing about which tokens exist.
async fn revoke(State(signin): State<Signin>, headers: HeaderMap, body: Body) -> Response {
    let form = match Form::read(&headers, body).await {
        Ok(form) => form,
        Err(answer) => return answer,
    };
    let Some(token) = form.get("token") else {
        return refused(&TokenError::InvalidRequest(
            "the token parameter is missing",
        ));
    };
    let grants = signin.grants();
    let found = match grants.grant_of_token(token).await {
        Ok(found) => found,
        Err(err) => return refused(&TokenError::Unavailable(err)),
    };
    if let Some(grant) = found {
        // A public client names itself; a token shown by another client's name is left alone.
        let named = form.client_id().ok();
        if named.is_none_or(|id| id == grant.client_id) {
            if let Err(err) = grants.revoke(&grant.grant_id).await {
                return refused(&TokenError::Unavailable(err));
            }
        } else {
            debug!("a token was presented for revocation under another client's name");
        }
    }
    with_cors(StatusCode::OK, json!({})).into_response()
}

async fn preflight() -> Response {
    super::metadata::cors_for(StatusCode::NO_CONTENT.into_response(), "POST, OPTIONS")
}

/// A token request's parameters, each given at most once.
struct Form {
    params: HashMap<String, String>,
    /// The client ID from HTTP Basic authentication, if the client sent one that way.
    basic_client: Option<String>,
}

impl Form {
    async fn read(headers: &HeaderMap, body: Body) -> Result<Self, Response> {
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(FORM));
        if !form_type {
            return Err(refused(&TokenError::InvalidRequest(
                "the body must be application/x-www-form-urlencoded",
            )));
        }
        let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
            let body = json!({
                "error": "invalid_request",
                "error_description": "the request body is larger than 16 KB",
            });
            return Err(with_cors(StatusCode::PAYLOAD_TOO_LARGE, body).into_response());
        };
        let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes) else {
            return Err(refused(&TokenError::InvalidRequest(
                "the body is not a valid application/x-www-form-urlencoded form",
            )));
        };
        let mut params = HashMap::new();
        for (name, value) in pairs {
            if params.contains_key(&name) {
                // RFC 6749 §3.1; RFC 8707 allows several resources, but this server is one.
                return Err(refused(&if name == "resource" {
                    TokenError::InvalidTarget("one resource only: this server's MCP endpoint")
                } else {
                    TokenError::InvalidRequest("a parameter is given more than once")
                }));
            }
            params.insert(name, value);
        }
        Ok(Self {
            params,
            basic_client: basic_client_id(headers),
        })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str, missing: &'static str) -> Result<&str, TokenError> {
        self.get(name).ok_or(TokenError::InvalidRequest(missing))
    }

    /// Who the (public) client says it is: `client_id`, or HTTP Basic's user name.
    fn client_id(&self) -> Result<String, TokenError> {
        match (self.get("client_id"), self.basic_client.as_deref()) {
            (Some(form), Some(basic)) if form != basic => Err(TokenError::InvalidRequest(
                "client_id differs from the client named in the Authorization header",
            )),
            (Some(id), _) | (None, Some(id)) => Ok(id.to_owned()),
            (None, None) => Err(TokenError::InvalidClient(
                "client_id is missing: a public client names itself with client_id",
            )),
        }
    }

    /// The `resource`, if given: it must name this server's MCP endpoint (RFC 8707).
    fn resource(&self, signin: &Signin) -> Result<Option<&str>, TokenError> {
        let resource = self.get("resource");
        if signin.settings().public.accepts_resource(resource) {
            Ok(resource)
        } else {
            Err(TokenError::InvalidTarget(
                "resource must name this server's MCP endpoint",
            ))
        }
    }
}

/// The client ID of `Authorization: Basic base64(id:secret)` (both form-encoded, RFC 6749
/// §2.3.1); the secret is ignored.
fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, _secret) = text.split_once(':')?;
    let id: String = url::form_urlencoded::parse(format!("id={id}").as_bytes())
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.into_owned())?;
    (!id.is_empty()).then_some(id)
}

fn issued(pair: &TokenPair) -> Response {
    let mut body = json!({
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    });
    if let Some(scope) = &pair.scope {
        body["scope"] = Value::String(scope.clone());
    }
    with_cors(StatusCode::OK, body).into_response()
}

fn refused(err: &TokenError) -> Response {
    let status = match err {
        TokenError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
        TokenError::Unavailable(cause) => {
            warn!(error = %cause, "a token request could not be answered: the sign-in store is unavailable");
            StatusCode::SERVICE_UNAVAILABLE
        }
        TokenError::InvalidRequest(_)
        | TokenError::InvalidGrant(_)
        | TokenError::InvalidTarget(_) => StatusCode::BAD_REQUEST,
    };
    debug!(
        error = err.code(),
        reason = err.description(),
        "token request refused"
    );
    let body = json!({"error": err.code(), "error_description": err.description()});
    with_cors(status, body).into_response()
}

fn unsupported_grant_type() -> Response {
    let body = json!({
        "error": "unsupported_grant_type",
        "error_description": "grant_type must be authorization_code or refresh_token",
    });
    with_cors(StatusCode::BAD_REQUEST, body).into_response()
}

/// A JSON answer that no cache keeps and any origin may read.
fn with_cors(status: StatusCode, body: Value) -> impl IntoResponse {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        axum::Json(body),
    )
}
