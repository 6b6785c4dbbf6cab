//! Authorization codes and the tokens they are exchanged for: a code is single-use and bound to
//! its client, redirect URI, PKCE challenge, resource and grant; a refresh token rotates on every
//! use. A replayed code or an old refresh token is taken as theft: the grant is revoked.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};

use super::{
    ACCESS_TTL, CODE_TTL, CODE_USED_TTL, Grants, REFRESH_TTL, grant_id_in, json, parse, random,
};
use crate::bitrix::CallError;
use crate::signin::records::{Grant, PendingAuthorization};
use crate::signin::{digest, now};

/// What a code was issued for (stored under its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CodeRecord {
    grant_id: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    resource: String,
    scope: Option<String>,
}

/// What an access token is for (stored under its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct AccessRecord {
    pub grant_id: String,
    pub resource: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What a refresh token is for (stored under its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RefreshRecord {
    grant_id: String,
    resource: String,
    scope: Option<String>,
    /// The hash of the access token issued with it: rotation ends that token, so a grant has
    /// one live access token however often it refreshes (absent in records written before).
    #[serde(default)]
    access: Option<String>,
}

/// Tokens just issued: shown once to the client, never stored or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why `/token` refused (RFC 6749 §5.2). Descriptions never quote what the client sent.
#[derive(Debug)]
pub enum TokenError {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest(&'static str),
    /// The client did not say who it is.
    InvalidClient(&'static str),
    /// The code or refresh token is unknown, expired, used, revoked, or not this client's, or
    /// the PKCE verifier or redirect URI does not match.
    InvalidGrant(&'static str),
    /// The `resource` is not this server's MCP endpoint, or not the one the grant is for.
    InvalidTarget(&'static str),
    /// The store could not be asked: nothing was decided; the client may try again.
    Unavailable(CallError),
}

impl TokenError {
    /// The OAuth `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::InvalidTarget(_) => "invalid_target",
            Self::Unavailable(_) => "temporarily_unavailable",
        }
    }

    /// The `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidRequest(text)
            | Self::InvalidClient(text)
            | Self::InvalidGrant(text)
            | Self::InvalidTarget(text) => text,
            Self::Unavailable(_) => {
                "the server's sign-in store is unavailable right now; try again shortly"
            }
        }
    }
}

impl From<CallError> for TokenError {
    fn from(err: CallError) -> Self {
        Self::Unavailable(err)
    }
}

const CODE_UNKNOWN: &str = "the authorization code is unknown or expired; sign in again";
const CODE_REUSED: &str =
    "the authorization code was already used; the sign-in it belongs to is revoked: sign in again";
const REFRESH_UNKNOWN: &str = "the refresh token is unknown or expired; sign in again";
const REFRESH_REUSED: &str = "the refresh token was already used (refresh tokens rotate); the \
                              sign-in is revoked: sign in again";
/// How many of a grant's spent refresh tokens are remembered (their reuse revokes the grant).
const MAX_SPENT_MARKS: usize = 10;

const REVOKED: &str = "the sign-in was revoked; sign in again";
const OTHER_AUDIENCE: &str =
    "the grant is for another resource than this server's MCP endpoint; sign in again";

impl Grants {
    /// Issues a code for `grant_id`, bound to what the client asked at `/authorize`.
    pub async fn issue_code(
        &self,
        grant_id: &str,
        request: &PendingAuthorization,
    ) -> Result<String, CallError> {
        let code = random()?;
        let record = CodeRecord {
            grant_id: grant_id.to_owned(),
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            resource: request.resource.clone(),
            scope: request.scope.clone(),
        };
        self.store
            .put(&self.key("code", &digest(&code)), &json(&record), CODE_TTL)
            .await?;
        Ok(code)
    }

    /// Exchanges a code for tokens (`grant_type=authorization_code`). `resource`, when the
    /// client sends one, has already been accepted as naming this server.
    pub async fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        code_verifier: &str,
        resource: Option<&str>,
    ) -> Result<TokenPair, TokenError> {
        let hash = digest(code);
        let taken = self.store.take(&self.key("code", &hash)).await?;
        let Some(record) = taken.and_then(|raw| parse::<CodeRecord>("code", &raw)) else {
            return Err(self
                .replayed("code-used", &hash, CODE_UNKNOWN, CODE_REUSED)
                .await?);
        };
        // Marked before anything else is checked: a code is spent by its first presentation.
        self.store
            .put(
                &self.key("code-used", &hash),
                record.grant_id.as_bytes(),
                CODE_USED_TTL,
            )
            .await?;
        if !same(&record.client_id, client_id) {
            return Err(TokenError::InvalidGrant(
                "the authorization code was issued to another client",
            ));
        }
        if !same(&record.redirect_uri, redirect_uri) {
            return Err(TokenError::InvalidGrant(
                "redirect_uri differs from the one the authorization code was issued for",
            ));
        }
        if !verifier_matches(code_verifier, &record.code_challenge) {
            return Err(TokenError::InvalidGrant(
                "the code_verifier does not match the code_challenge (S256)",
            ));
        }
        self.check_audience(&record.resource, resource)?;
        let grant = self.live_grant(&record.grant_id, client_id).await?;
        let pair = self
            .issue_pair(&grant.grant_id, &record.resource, record.scope)
            .await?;
        info!(user_id = grant.user_id, client = %grant.client_name, "tokens issued for a sign-in");
        Ok(pair)
    }

    /// Exchanges a refresh token for a new pair (`grant_type=refresh_token`); the old one is
    /// spent, and presenting it again revokes the grant.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
        resource: Option<&str>,
    ) -> Result<TokenPair, TokenError> {
        let hash = digest(refresh_token);
        let taken = self.store.take(&self.key("refresh", &hash)).await?;
        let Some(record) = taken.and_then(|raw| parse::<RefreshRecord>("refresh", &raw)) else {
            return Err(self
                .replayed("refresh-used", &hash, REFRESH_UNKNOWN, REFRESH_REUSED)
                .await?);
        };
        self.store
            .put(
                &self.key("refresh-used", &hash),
                record.grant_id.as_bytes(),
                REFRESH_TTL,
            )
            .await?;
        self.remember_spent(&record.grant_id, &hash).await?;
        self.check_audience(&record.resource, resource)?;
        let grant = self.live_grant(&record.grant_id, client_id).await?;
        if let Some(previous) = &record.access {
            self.store.delete(&self.key("access", previous)).await?;
            super::lock(&self.cache).remove(previous);
        }
        self.extend(&grant).await?;
        let pair = self
            .issue_pair(&grant.grant_id, &record.resource, record.scope)
            .await?;
        debug!(user_id = grant.user_id, "tokens rotated");
        Ok(pair)
    }

    /// Notes `hash` as the newest spent refresh token of `grant_id`, and drops the mark of the
    /// oldest beyond [`MAX_SPENT_MARKS`]: a client refreshing in a loop cannot fill the store with
    /// 30-day marks. (A token spent that many rotations ago is then merely unknown.) Concurrent
    /// rotations of one grant may lose an entry of the list; its mark then just expires.
    async fn remember_spent(&self, grant_id: &str, hash: &str) -> Result<(), CallError> {
        let key = self.key("spent", grant_id);
        let mut spent: Vec<String> = self.read("spent", &key).await?.unwrap_or_default();
        spent.retain(|h| h != hash);
        spent.push(hash.to_owned());
        let excess = spent.len().saturating_sub(MAX_SPENT_MARKS);
        for old in spent.drain(..excess) {
            self.store.delete(&self.key("refresh-used", &old)).await?;
        }
        self.store.put(&key, &json(&spent), REFRESH_TTL).await
    }

    /// The grant an access or refresh token belongs to, if it is one of ours and still
    /// stored (for `/revoke`). The token itself is not spent.
    pub async fn grant_of_token(&self, token: &str) -> Result<Option<Grant>, CallError> {
        let hash = digest(token);
        let access_key = self.key("access", &hash);
        if let Some(record) = self.read::<AccessRecord>("access", &access_key).await? {
            return self.get(&record.grant_id).await;
        }
        let refresh_key = self.key("refresh", &hash);
        match self.read::<RefreshRecord>("refresh", &refresh_key).await? {
            Some(record) => self.get(&record.grant_id).await,
            None => Ok(None),
        }
    }

    /// A code or refresh token that is not (or no longer) there: if it was spent, the grant it
    /// belonged to is revoked. Returns the error to answer.
    async fn replayed(
        &self,
        mark: &str,
        hash: &str,
        unknown: &'static str,
        reused: &'static str,
    ) -> Result<TokenError, CallError> {
        let Some(raw) = self.store.get(&self.key(mark, hash)).await? else {
            return Ok(TokenError::InvalidGrant(unknown));
        };
        let Some(grant_id) = grant_id_in(&raw) else {
            return Ok(TokenError::InvalidGrant(unknown));
        };
        let revoked = self.revoke(&grant_id).await?;
        warn!(
            user_id = revoked.as_ref().map(|g| g.user_id),
            client = revoked.as_ref().map(|g| g.client_name.as_str()),
            presented = mark.trim_end_matches("-used"),
            "a spent code or refresh token was presented again: the sign-in is revoked"
        );
        Ok(TokenError::InvalidGrant(reused))
    }

    /// The tokens' resource must be this server's canonical one, and so must any the client
    /// names now.
    fn check_audience(&self, bound: &str, asked: Option<&str>) -> Result<(), TokenError> {
        let (Some(public), Some(canonical)) = (&self.public, self.canonical()) else {
            return Err(TokenError::InvalidTarget(OTHER_AUDIENCE));
        };
        if bound != canonical {
            return Err(TokenError::InvalidTarget(OTHER_AUDIENCE));
        }
        if !public.accepts_resource(asked) {
            return Err(TokenError::InvalidTarget(
                "resource must name this server's MCP endpoint",
            ));
        }
        Ok(())
    }

    /// The grant, if it still exists and is `client_id`'s.
    async fn live_grant(&self, grant_id: &str, client_id: &str) -> Result<Grant, TokenError> {
        let grant = self
            .get(grant_id)
            .await?
            .ok_or(TokenError::InvalidGrant(REVOKED))?;
        if !same(&grant.client_id, client_id) {
            return Err(TokenError::InvalidGrant(
                "the token was issued to another client",
            ));
        }
        Ok(grant)
    }

    /// Keeps a refreshed grant for another [`REFRESH_TTL`]. A revocation that deleted the record
    /// meanwhile left its mark first, so a rewrite that lands after it is undone here.
    pub(super) async fn extend(&self, grant: &Grant) -> Result<(), TokenError> {
        let key = self.grant_key(&grant.grant_id);
        let mut stored = grant.clone();
        // The last use lives beside the record (see `touch`).
        stored.last_used_at = 0;
        self.store.put(&key, &json(&stored), REFRESH_TTL).await?;
        if self
            .store
            .get(&self.key("revoked", &grant.grant_id))
            .await?
            .is_some()
        {
            self.store.delete(&key).await?;
            return Err(TokenError::InvalidGrant(REVOKED));
        }
        Ok(())
    }

    async fn issue_pair(
        &self,
        grant_id: &str,
        resource: &str,
        scope: Option<String>,
    ) -> Result<TokenPair, CallError> {
        let access_token = random()?;
        let refresh_token = random()?;
        let refresh = RefreshRecord {
            grant_id: grant_id.to_owned(),
            resource: resource.to_owned(),
            scope: scope.clone(),
            access: Some(digest(&access_token)),
        };
        self.store
            .put(
                &self.key("refresh", &digest(&refresh_token)),
                &json(&refresh),
                REFRESH_TTL,
            )
            .await?;
        let access = AccessRecord {
            grant_id: grant_id.to_owned(),
            resource: resource.to_owned(),
            expires_at: now().saturating_add(ACCESS_TTL.as_secs() as i64),
        };
        self.store
            .put(
                &self.key("access", &digest(&access_token)),
                &json(&access),
                ACCESS_TTL,
            )
            .await?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: ACCESS_TTL.as_secs(),
            scope,
        })
    }
}

/// PKCE S256 (RFC 7636 §4.6): BASE64URL(SHA256(verifier)) equals the challenge, compared in
/// constant time. A verifier outside the RFC's 43..128 unreserved characters never matches.
pub(super) fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let computed =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
    same(&computed, challenge)
}

/// Constant-time equality (the length is not secret).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
