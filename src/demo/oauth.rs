//! The sample portal's OAuth side: the installed application, the token server (`/oauth/token/`)
//! that exchanges sign-in codes and rotates refresh tokens as Bitrix24's does, and the check of
//! `auth=` tokens on `/rest/{method}` calls, which says whose call it is. Every token, code and
//! count belongs to a user.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{PortalState, error, lock, now, params};

/// Live sign-in codes the portal holds at most; past it the sign-in page refuses for a while
/// (codes live seconds, so the count drains by itself).
const MAX_LIVE_CODES: usize = 1_000;

/// Tokens (access or refresh) the portal holds at most; past it, code exchanges are refused.
const MAX_TOKENS: usize = 100_000;

/// The OAuth server's own name, as the callback's `server_domain` and the token answer's `domain`.
pub const OAUTH_SERVER: &str = "oauth.bitrix.info";

/// An installed application the sample portal knows.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime of issued access tokens, in seconds (Bitrix24: 3600).
    pub access_ttl_secs: f64,
    /// Refresh tokens valid at start; they belong to the webhook's user.
    pub refresh_tokens: Vec<String>,
    /// Access tokens valid at start, with their expiry (Unix time); they belong to the webhook's
    /// user.
    pub access_tokens: Vec<(String, f64)>,
    /// What the token server answers as `client_endpoint`; the portal's own address when `None`.
    pub client_endpoint: Option<String>,
    /// The handler (redirect) URL from the app's settings: where the sign-in sends the browser
    /// back with a code. Bitrix24 takes it from the settings, never from the request. With none,
    /// the portal shows the code for the user to copy.
    pub redirect_uri: Option<String>,
    /// The portal's stable ID, as the callback and the token server report it.
    pub member_id: String,
    /// Lifetime of sign-in codes, in seconds (Bitrix24: 30). A code is valid while its age is
    /// below this, so 0 makes every code expired at once.
    pub code_ttl_secs: f64,
}

impl OAuthApp {
    /// A local application's ID in Bitrix24's shape, for the demo's own sign-in.
    pub const DEMO_CLIENT_ID: &'static str = "local.demo0000000000.00000000";

    /// An app with one refresh token (the webhook user's) to start from.
    pub fn new(client_id: &str, client_secret: &str, refresh_token: &str) -> Self {
        Self {
            refresh_tokens: vec![refresh_token.into()],
            ..Self::signin(client_id, client_secret)
        }
    }

    /// An app that people sign in to: no tokens until someone signs in, no redirect URL until
    /// the caller sets one (here or with `DemoPortal::set_redirect_uri`).
    pub fn signin(client_id: &str, client_secret: &str) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            access_ttl_secs: 3600.0,
            refresh_tokens: Vec::new(),
            access_tokens: Vec::new(),
            client_endpoint: None,
            redirect_uri: None,
            member_id: "0123456789abcdef0123456789abcdef".into(),
            code_ttl_secs: 30.0,
        }
    }
}

/// An access token: whose, and until when (Unix time).
#[derive(Debug, Clone, Copy)]
struct Issued {
    user: i64,
    expires: f64,
}

/// How often a user's tokens were obtained.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    exchanges: u64,
    refreshes: u64,
}

/// Which tokens and codes are valid now, and whose they are.
#[derive(Debug)]
pub struct TokenBook {
    /// The user the seed tokens (and [`TokenBook::add_refresh_token`]) belong to.
    owner: i64,
    access: HashMap<String, Issued>,
    refresh: HashMap<String, i64>,
    codes: HashMap<String, Issued>,
    counts: HashMap<i64, Counts>,
    installed: bool,
}

impl Default for TokenBook {
    /// No application installed: nothing is valid.
    fn default() -> Self {
        Self {
            owner: 0,
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            counts: HashMap::new(),
            installed: false,
        }
    }
}

impl TokenBook {
    /// The app's seed tokens, belonging to `owner` (the webhook's user).
    pub fn new(app: &OAuthApp, owner: i64) -> Self {
        let seed = |expires| Issued {
            user: owner,
            expires,
        };
        Self {
            owner,
            access: app
                .access_tokens
                .iter()
                .map(|(token, expires)| (token.clone(), seed(*expires)))
                .collect(),
            refresh: app
                .refresh_tokens
                .iter()
                .map(|token| (token.clone(), owner))
                .collect(),
            installed: true,
            ..Self::default()
        }
    }

    /// Whether the application is installed (until [`TokenBook::uninstall`]).
    pub fn installed(&self) -> bool {
        self.installed
    }

    /// Accepts one more refresh token of the webhook's user (as if the app were authorized again).
    pub fn add_refresh_token(&mut self, token: &str) {
        self.refresh.insert(token.to_owned(), self.owner);
    }

    /// Makes every access token issued so far expired, as an hour passing would.
    pub fn expire_all(&mut self) {
        for issued in self.access.values_mut() {
            issued.expires = 0.0;
        }
    }

    /// Uninstalls the app: every token and code stops working, and the token server stops
    /// knowing the app.
    pub fn uninstall(&mut self) {
        self.installed = false;
        self.access.clear();
        self.refresh.clear();
        self.codes.clear();
    }

    /// The user a token (access or refresh) belongs to, while the portal knows it.
    pub fn token_user(&self, token: &str) -> Option<i64> {
        self.access
            .get(token)
            .map(|issued| issued.user)
            .or_else(|| self.refresh.get(token).copied())
    }

    /// Successful code exchanges and refreshes of a user.
    pub fn counts(&self, user: i64) -> (u64, u64) {
        let counts = self.counts.get(&user).copied().unwrap_or_default();
        (counts.exchanges, counts.refreshes)
    }

    /// Whose call a REST request with this `auth` token is, or the code and description of the
    /// portal's 401.
    pub fn caller(&self, token: Option<&str>) -> Result<i64, (&'static str, &'static str)> {
        match token.and_then(|t| self.access.get(t)) {
            Some(issued) if issued.expires > now() => Ok(issued.user),
            Some(_) => Err(("expired_token", "The access token provided has expired.")),
            None => Err(("invalid_token", "The access token provided is invalid.")),
        }
    }

    /// A fresh single-use code for `user`, living `app.code_ttl_secs`; `None` when too many are
    /// live.
    pub fn issue_code(&mut self, app: &OAuthApp, user: i64) -> Option<String> {
        let now = now();
        self.codes.retain(|_, code| code.expires > now);
        if self.codes.len() >= MAX_LIVE_CODES {
            return None;
        }
        let code = random_token();
        let expires = now + app.code_ttl_secs;
        self.codes.insert(code.clone(), Issued { user, expires });
        Some(code)
    }

    /// The token server: checks the app, then `grant_type=authorization_code` spends a code and
    /// `grant_type=refresh_token` spends a refresh token, each for a new pair of the same user.
    pub fn grant(
        &mut self,
        app: &OAuthApp,
        params: &Map<String, Value>,
        rest_root: &str,
    ) -> Response {
        let field = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or_default();
        if !self.installed
            || field("CLIENT_ID") != app.client_id
            || field("CLIENT_SECRET") != app.client_secret
        {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Invalid client credentials",
            );
        }
        let refreshing = match field("GRANT_TYPE") {
            "refresh_token" => true,
            "authorization_code" => false,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Unsupported grant type",
                );
            }
        };
        if self.access.len() >= MAX_TOKENS {
            let now = now();
            self.access.retain(|_, issued| issued.expires > now);
        }
        // A refresh replaces a refresh token, so only an exchange can grow the book.
        if !refreshing && (self.access.len() >= MAX_TOKENS || self.refresh.len() >= MAX_TOKENS) {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Too many tokens",
            );
        }
        let user = if refreshing {
            // Rotation: the old refresh token stops working the moment a new one is issued.
            match self.refresh.remove(field("REFRESH_TOKEN")) {
                Some(user) => user,
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid refresh token",
                    );
                }
            }
        } else {
            // Single use: a code is gone once presented, valid or not.
            match self.codes.remove(field("CODE")) {
                Some(code) if code.expires > now() => code.user,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid authorization code",
                    );
                }
            }
        };
        let counts = self.counts.entry(user).or_default();
        if refreshing {
            counts.refreshes += 1;
        } else {
            counts.exchanges += 1;
        }
        self.issue(app, user, refreshing, rest_root)
    }

    /// A new pair for `user` in Bitrix24's shape. `user_id` is documented only for refreshes, so
    /// the exchange answer leaves it out (the app learns the user from `profile`).
    fn issue(
        &mut self,
        app: &OAuthApp,
        user: i64,
        with_user_id: bool,
        rest_root: &str,
    ) -> Response {
        let (access, refresh) = (random_token(), random_token());
        let expires = (now() + app.access_ttl_secs).floor();
        self.access.insert(access.clone(), Issued { user, expires });
        self.refresh.insert(refresh.clone(), user);
        let endpoint = app
            .client_endpoint
            .clone()
            .unwrap_or_else(|| rest_root.to_owned());
        let mut body = json!({
            "access_token": access,
            "expires": expires as i64,
            "expires_in": app.access_ttl_secs as i64,
            "scope": "app",
            "domain": OAUTH_SERVER,
            "server_endpoint": format!("https://{OAUTH_SERVER}/rest/"),
            "status": "L",
            "client_endpoint": endpoint,
            "member_id": app.member_id,
        });
        if with_user_id {
            body["user_id"] = json!(user);
        }
        body["refresh_token"] = json!(refresh);
        (StatusCode::OK, axum::Json(body)).into_response()
    }
}

/// `/oauth/token/` (GET query or POST form), with the test knobs that make it fail or stall.
pub(super) async fn handle_token(
    State(state): State<Arc<PortalState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.receive(&method, &uri, &headers, &body);
    let Some(app) = &state.data.oauth else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "No application installed",
        );
    };
    let failing = state
        .token_failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let stalling = state
        .token_stalls
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if stalling {
        std::future::pending::<()>().await;
    }
    if failing {
        let page = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>";
        return (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
    }
    let params = params(uri.query(), &headers, &body);
    lock(&state.tokens).grant(app, &params, &state.rest_root)
}

/// A fresh random token, 32 hex digits, from the OS's randomness.
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: per-call hasher keys still give distinct, unpredictable-enough tokens
        // for a loopback sample.
        for chunk in bytes.chunks_mut(8) {
            let hasher = std::collections::hash_map::RandomState::new().build_hasher();
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
