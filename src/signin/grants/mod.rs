//! Grants: one user's sign-in through one client, and what is issued for it. This module owns the
//! grant records (create, list, revoke, last use); [`issue`] the codes and tokens (PKCE, rotation,
//! reuse → revocation); [`verify`] the bearer check on every MCP request (with its cache).
//!
//! Only SHA-256 hashes of codes and tokens are keys; no raw value is stored or logged. A grant
//! whose record is gone is dead: every code and token of it is refused, wherever it was issued.

mod issue;
mod verify;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{info, warn};

pub use issue::{TokenError, TokenPair};
pub use verify::Rejection;

use super::records::Grant;
use super::settings::PublicUrl;
use super::store::SigninStore;
use crate::bitrix::CallError;

/// An authorization code lives this long (RFC 6749 recommends at most 10 minutes).
pub const CODE_TTL: Duration = Duration::from_secs(5 * 60);
/// A used code is remembered this long, so that a replay revokes its grant.
pub const CODE_USED_TTL: Duration = Duration::from_secs(10 * 60);
/// An access token lives an hour.
pub const ACCESS_TTL: Duration = Duration::from_secs(3600);
/// A refresh token lives 30 days; so does a grant after its last refresh. A used refresh token
/// is remembered as long as it could have lived, so that any later reuse revokes the grant.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How long a revoked grant stays marked as revoked: longer than any refresh or code exchange
/// still in flight when it was revoked can take (each store request gives up after seconds).
const REVOKED_TTL: Duration = Duration::from_secs(3600);
/// How long an accepted bearer token is trusted without asking the store again. Revocation
/// reaches every instance within this (plus one store round trip).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(2);
/// How many accepted tokens, and last-use marks, one instance remembers.
pub const CACHE_CAPACITY: usize = 10_000;
/// The longest user or client name kept with a grant.
const MAX_NAME: usize = 200;
/// Last use is written at most this often per grant and instance.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// What a new grant is made of: who signed in, through which client, for which resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub user_id: u64,
    pub user_name: String,
    pub member_id: String,
    pub client_id: String,
    pub client_name: String,
    /// The canonical resource (`PublicUrl::resource`).
    pub resource: String,
    pub scope: Option<String>,
}

/// The grants and their codes and tokens.
#[derive(Debug)]
pub struct Grants {
    store: SigninStore,
    /// `None` for [`Grants::in_store`]: such a handle accepts no token and exchanges no code.
    public: Option<PublicUrl>,
    cache_ttl: Duration,
    /// Accepted tokens (by hash) and the grant each belongs to, with when that was last checked
    /// in the store. A std mutex: it is held for a lookup or an insert, never across an await.
    cache: Mutex<HashMap<String, verify::Cached>>,
    /// When this instance last wrote each grant's last use.
    touched: Mutex<HashMap<String, Instant>>,
}

impl Grants {
    pub fn new(store: SigninStore, public: PublicUrl) -> Self {
        Self {
            public: Some(public),
            ..Self::in_store(store)
        }
    }

    /// The grants kept in `store`, to list and revoke them (`bitrix24-mcp grants`), without a
    /// server: no token is accepted and no code exchanged through this handle.
    pub fn in_store(store: SigninStore) -> Self {
        Self {
            store,
            public: None,
            cache_ttl: DEFAULT_CACHE_TTL,
            cache: Mutex::default(),
            touched: Mutex::default(),
        }
    }

    /// The same, trusting an accepted token for `ttl` before asking the store again (zero: ask
    /// every time).
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    pub fn store(&self) -> &SigninStore {
        &self.store
    }

    /// The server's public URL (`None` for [`Grants::in_store`]).
    pub fn public(&self) -> Option<&PublicUrl> {
        self.public.as_ref()
    }

    /// The canonical resource every token must be for; `None` accepts nothing.
    fn canonical(&self) -> Option<String> {
        self.public.as_ref().map(PublicUrl::resource)
    }

    /// Records a new grant and returns its ID (random, not a secret: it opens nothing by
    /// itself). `last_used_at` is 0 until the first MCP request.
    pub async fn create(&self, new: NewGrant) -> Result<String, CallError> {
        let grant_id = random()?;
        let grant = Grant {
            grant_id: grant_id.clone(),
            user_id: new.user_id,
            user_name: bounded(&new.user_name),
            member_id: new.member_id,
            client_id: new.client_id,
            client_name: bounded(&new.client_name),
            resource: new.resource,
            scope: new.scope,
            created_at: super::now(),
            last_used_at: 0,
        };
        self.store
            .put(&self.grant_key(&grant_id), &json(&grant), REFRESH_TTL)
            .await?;
        info!(
            user_id = grant.user_id,
            client = %grant.client_name,
            "sign-in granted"
        );
        Ok(grant_id)
    }

    /// The grant `grant_id`, if it exists (a malformed record counts as absent).
    pub async fn get(&self, grant_id: &str) -> Result<Option<Grant>, CallError> {
        self.read("grant", &self.grant_key(grant_id)).await
    }

    /// Every grant (at most `MAX_SCAN`), oldest first, with its last use.
    pub async fn list(&self) -> Result<Vec<Grant>, CallError> {
        let prefix = self.store.key(&["grant", ""]);
        let mut grants = Vec::new();
        for key in self.store.scan(&prefix).await? {
            let Some(mut grant) = self.read::<Grant>("grant", &key).await? else {
                continue;
            };
            if let Some(used) = self.last_use(&grant.grant_id).await? {
                grant.last_used_at = used;
            }
            grants.push(grant);
        }
        grants.sort_by_key(|g| (g.created_at, g.user_id));
        Ok(grants)
    }

    /// Ends a grant: its record, last use and Bitrix24 pair are deleted, so every code and
    /// token issued for it is refused from now on (on other instances within the cache time).
    /// Returns the grant if it existed.
    pub async fn revoke(&self, grant_id: &str) -> Result<Option<Grant>, CallError> {
        let grant = self.get(grant_id).await?;
        // First the mark, then the deletion: a refresh that rewrites the record meanwhile sees
        // the mark afterwards and deletes it again (see `issue::extend`).
        self.store
            .put(&self.key("revoked", grant_id), b"1", REVOKED_TTL)
            .await?;
        self.store.delete(&self.grant_key(grant_id)).await?;
        self.store.delete(&self.key("last-use", grant_id)).await?;
        self.store.delete(&self.key("spent", grant_id)).await?;
        for key in super::users::pair_keys(&self.store, grant_id) {
            self.store.delete(&key).await?;
        }
        self.forget(grant_id);
        if let Some(grant) = &grant {
            info!(user_id = grant.user_id, client = %grant.client_name, "sign-in revoked");
        }
        Ok(grant)
    }

    /// Ends every grant of one Bitrix24 user; returns how many there were.
    pub async fn revoke_user(&self, user_id: u64) -> Result<usize, CallError> {
        // The user's own list (kept by each sign-in) as well as a scan of every grant: the scan
        // stops at MAX_SCAN keys, the list may miss a grant two sign-ins wrote at once.
        let index = self.key("user-grants", &user_id.to_string());
        let mut ids: std::collections::BTreeSet<String> = match self.store.get(&index).await? {
            Some(bytes) => serde_json::from_slice::<Vec<String>>(&bytes)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            None => Default::default(),
        };
        ids.extend(
            self.list()
                .await?
                .into_iter()
                .filter(|grant| grant.user_id == user_id)
                .map(|grant| grant.grant_id),
        );
        let mut count = 0;
        for id in ids {
            if self.revoke(&id).await?.is_some() {
                count += 1;
            }
        }
        self.store.delete(&index).await?;
        Ok(count)
    }

    /// Ends every grant; returns how many there were.
    pub async fn revoke_all(&self) -> Result<usize, CallError> {
        let mut count = 0;
        for grant in self.list().await? {
            if self.revoke(&grant.grant_id).await?.is_some() {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Notes that `grant_id` was used now. Written at most once a minute per grant (and
    /// instance), beside the grant rather than into it, so that it never races a revocation
    /// or a refresh.
    pub async fn touch(&self, grant_id: &str) -> Result<(), CallError> {
        let now = Instant::now();
        {
            let mut touched = lock(&self.touched);
            if touched
                .get(grant_id)
                .is_some_and(|at| now.duration_since(*at) < TOUCH_INTERVAL)
            {
                return Ok(());
            }
            if touched.len() >= CACHE_CAPACITY {
                touched.retain(|_, at| now.duration_since(*at) < TOUCH_INTERVAL);
                if touched.len() >= CACHE_CAPACITY {
                    touched.clear();
                }
            }
            touched.insert(grant_id.to_owned(), now);
        }
        let at = super::now().to_string();
        self.store
            .put(&self.key("last-use", grant_id), at.as_bytes(), REFRESH_TTL)
            .await
    }

    async fn last_use(&self, grant_id: &str) -> Result<Option<i64>, CallError> {
        let raw = self.store.get(&self.key("last-use", grant_id)).await?;
        Ok(raw.and_then(|raw| std::str::from_utf8(&raw).ok()?.trim().parse().ok()))
    }

    /// Drops what this instance remembers of a grant.
    fn forget(&self, grant_id: &str) {
        lock(&self.cache).retain(|_, cached| cached.grant.grant_id != grant_id);
        lock(&self.touched).remove(grant_id);
    }

    fn key(&self, kind: &str, id: &str) -> String {
        self.store.key(&[kind, id])
    }

    fn grant_key(&self, grant_id: &str) -> String {
        self.key("grant", grant_id)
    }

    /// A JSON record; a malformed one is logged (by kind only, never its content) and counts
    /// as absent. Its size is bounded by the store.
    async fn read<T: DeserializeOwned>(
        &self,
        kind: &'static str,
        key: &str,
    ) -> Result<Option<T>, CallError> {
        let Some(raw) = self.store.get(key).await? else {
            return Ok(None);
        };
        Ok(parse(kind, &raw))
    }
}

fn parse<T: DeserializeOwned>(kind: &'static str, raw: &[u8]) -> Option<T> {
    match serde_json::from_slice(raw) {
        Ok(value) => Some(value),
        Err(_) => {
            warn!(
                record = kind,
                "a malformed sign-in record was ignored (treated as absent)"
            );
            None
        }
    }
}

/// A grant ID held in a `code-used:` or `refresh-used:` mark (our own base64url values).
fn grant_id_in(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Some(text.to_owned())
    } else {
        warn!(
            record = "used mark",
            "a malformed sign-in record was ignored (treated as absent)"
        );
        None
    }
}

/// A name from outside (the portal's profile, a client's registration), at most
/// [`MAX_NAME`] characters.
fn bounded(name: &str) -> String {
    name.chars().take(MAX_NAME).collect()
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain records (strings and numbers) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn random() -> Result<String, CallError> {
    super::random_token().ok_or_else(|| CallError::StateUnavailable {
        detail: "the system gave no random bytes for a sign-in code or token".to_owned(),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
