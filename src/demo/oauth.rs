//! The sample portal's OAuth side: the token server (`/oauth/token/`) that rotates refresh tokens
//! as Bitrix24's does, and the access-token check for `/rest/{method}` calls.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{error, now};

/// An installed application the sample portal knows.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime of issued access tokens, in seconds (Bitrix24: 3600).
    pub access_ttl_secs: f64,
    /// Refresh tokens valid at start.
    pub refresh_tokens: Vec<String>,
    /// Access tokens valid at start, with their expiry (Unix time).
    pub access_tokens: Vec<(String, f64)>,
    /// What the token server answers as `client_endpoint`; the portal's own address when `None`.
    pub client_endpoint: Option<String>,
}

impl OAuthApp {
    /// An app with one refresh token to start from.
    pub fn new(client_id: &str, client_secret: &str, refresh_token: &str) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            access_ttl_secs: 3600.0,
            refresh_tokens: vec![refresh_token.into()],
            access_tokens: Vec::new(),
            client_endpoint: None,
        }
    }
}

/// Which tokens are valid now.
#[derive(Debug, Default)]
pub struct TokenBook {
    access: HashMap<String, f64>,
    refresh: HashSet<String>,
}

impl TokenBook {
    pub fn new(app: &OAuthApp) -> Self {
        Self {
            access: app.access_tokens.iter().cloned().collect(),
            refresh: app.refresh_tokens.iter().cloned().collect(),
        }
    }

    /// Accepts one more refresh token (as if the app were authorized again).
    pub fn add_refresh_token(&mut self, token: &str) {
        self.refresh.insert(token.to_owned());
    }

    /// Makes every access token issued so far expired, as an hour passing would.
    pub fn expire_all(&mut self) {
        for expiry in self.access.values_mut() {
            *expiry = 0.0;
        }
    }

    /// The portal's refusal when the token may not call, `None` when it may.
    pub fn refusal(&self, token: Option<&str>) -> Option<Response> {
        match token.and_then(|t| self.access.get(t)) {
            Some(expires) if *expires > now() => None,
            Some(_) => Some(error(
                StatusCode::UNAUTHORIZED,
                "expired_token",
                "The access token provided has expired.",
            )),
            None => Some(error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token provided is invalid.",
            )),
        }
    }

    /// `grant_type=refresh_token`: checks the app, spends the refresh token, issues a new pair.
    pub fn refresh(
        &mut self,
        app: &OAuthApp,
        params: &Map<String, Value>,
        rest_root: &str,
    ) -> Response {
        let field = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or_default();
        if field("CLIENT_ID") != app.client_id || field("CLIENT_SECRET") != app.client_secret {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Invalid client credentials",
            );
        }
        if field("GRANT_TYPE") != "refresh_token" {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Unsupported grant type",
            );
        }
        // Rotation: the old refresh token stops working the moment a new one is issued.
        if !self.refresh.remove(field("REFRESH_TOKEN")) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid refresh token",
            );
        }
        let (access, refresh) = (random_token(), random_token());
        let issued = now();
        let expires = (issued + app.access_ttl_secs).floor();
        self.access.insert(access.clone(), expires);
        self.refresh.insert(refresh.clone());
        let endpoint = app
            .client_endpoint
            .clone()
            .unwrap_or_else(|| rest_root.to_owned());
        let body = json!({
            "access_token": access,
            "expires": expires as i64,
            "expires_in": app.access_ttl_secs as i64,
            "scope": "app",
            "domain": "oauth.bitrix.info",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "client_endpoint": endpoint,
            "member_id": "0123456789abcdef0123456789abcdef",
            "user_id": 99,
            "refresh_token": refresh,
        });
        (StatusCode::OK, axum::Json(body)).into_response()
    }
}

/// A fresh random token, 32 hex digits.
fn random_token() -> String {
    let mut out = String::new();
    for _ in 0..2 {
        let hasher = std::collections::hash_map::RandomState::new().build_hasher();
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}
