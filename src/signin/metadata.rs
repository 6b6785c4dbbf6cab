//! The documents MCP clients discover the sign-in with: protected-resource metadata (RFC 9728, at
//! the path-suffixed URL and the root), authorization-server metadata (RFC 8414), both readable
//! from browsers (CORS); and the 401 challenge that points a client at them.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::Signin;
use super::settings::PublicUrl;

/// Where the protected-resource document lives, relative to the public URL.
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// The same for the legacy SSE endpoint: clients check that a document's `resource` is the URL
/// they were given, and an SSE client was given `…/sse`.
pub const SSE_RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource/sse";

pub fn routes() -> Router<Signin> {
    Router::new()
        .route(
            RESOURCE_METADATA_PATH,
            get(protected_resource).options(preflight),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(protected_resource).options(preflight),
        )
        .route(
            SSE_RESOURCE_METADATA_PATH,
            get(sse_protected_resource).options(preflight),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(authorization_server).options(preflight),
        )
}

/// The protected-resource document: this server's `/mcp`, signed in through itself.
pub fn protected_resource_document(public: &PublicUrl) -> Value {
    resource_document(public, public.resource())
}

/// The protected-resource document naming `resource` (`/mcp`, or the legacy `/sse`): the same
/// server, the same tokens.
fn resource_document(public: &PublicUrl, resource: String) -> Value {
    json!({
        "resource": resource,
        "authorization_servers": [public.issuer()],
        "bearer_methods_supported": ["header"],
        "resource_name": "Bitrix24 MCP server",
    })
}

/// The authorization-server document. No `scopes_supported`: scopes are Bitrix24's, chosen in
/// the application's settings, and listing `offline_access` makes some clients ask for it.
pub fn authorization_server_document(public: &PublicUrl) -> Value {
    json!({
        "issuer": public.issuer(),
        "authorization_endpoint": public.join("/authorize"),
        "token_endpoint": public.join("/token"),
        "registration_endpoint": public.join("/register"),
        "revocation_endpoint": public.join("/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    })
}

async fn protected_resource(State(signin): State<Signin>) -> Response {
    with_cors(Json(protected_resource_document(&signin.settings().public)).into_response())
}

async fn sse_protected_resource(State(signin): State<Signin>) -> Response {
    let public = &signin.settings().public;
    with_cors(Json(resource_document(public, public.join("/sse"))).into_response())
}

async fn authorization_server(State(signin): State<Signin>) -> Response {
    with_cors(Json(authorization_server_document(&signin.settings().public)).into_response())
}

async fn preflight() -> Response {
    with_cors(StatusCode::NO_CONTENT.into_response())
}

/// Lets browser-based clients (MCP Inspector) read a sign-in answer. None of these endpoints uses
/// cookies or ambient credentials, so any origin may read them.
pub fn with_cors(response: Response) -> Response {
    cors_for(response, "GET, POST, OPTIONS")
}

/// [`with_cors`] for endpoints that take only the given `methods`.
pub fn cors_for(mut response: Response, methods: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, mcp-protocol-version"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

/// The answer to a request for `/mcp` without a valid access token: 401, with the
/// protected-resource document's URL so the client can start signing in.
pub fn challenge(public: &PublicUrl) -> Response {
    challenge_for(public, RESOURCE_METADATA_PATH)
}

/// [`challenge`] naming the document at `metadata_path` (the legacy SSE endpoints name theirs).
pub fn challenge_for(public: &PublicUrl, metadata_path: &str) -> Response {
    let value = format!(
        "Bearer error=\"invalid_token\", resource_metadata=\"{}\"",
        public.join(metadata_path)
    );
    let body = json!({
        "error": "invalid_token",
        "error_description": "sign in first: this server needs an access token from its own \
                              sign-in (missing, expired or revoked)",
    });
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    // The public URL is an ASCII origin checked at start, so the header value is always valid.
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response.headers_mut().insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("www-authenticate"),
    );
    with_cors(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_challenge_names_the_path_suffixed_resource_document() {
        let public = PublicUrl::parse("https://mcp.example.com/").unwrap();
        let response = challenge(&public);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "invalid_token");
    }

    #[test]
    fn the_issuer_is_the_authorization_server_named_by_the_resource() {
        let public = PublicUrl::parse("https://mcp.example.com/").unwrap();
        let resource = protected_resource_document(&public);
        let server = authorization_server_document(&public);
        assert_eq!(resource["authorization_servers"][0], server["issuer"]);
        assert_eq!(server["issuer"], "https://mcp.example.com");
        assert!(!server.to_string().contains("offline_access"));
    }
}
