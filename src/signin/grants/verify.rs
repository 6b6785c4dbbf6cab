//! The bearer check on every MCP request: the token's hash, then this instance's cache of
//! accepted tokens, re-checked against the store once its entry is older than the cache time, so
//! that a revocation on any instance reaches this one within that time.

use tokio::time::Instant;
use tracing::{debug, trace};

use super::issue::AccessRecord;
use super::{CACHE_CAPACITY, Grants, lock};
use crate::bitrix::CallError;
use crate::signin::records::Grant;
use crate::signin::{digest, now};

/// The longest bearer value looked at: ours are 43 characters; anything far longer is not one.
const MAX_BEARER: usize = 512;

/// Why a bearer token was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Unknown, expired, revoked, or for another resource.
    Invalid,
    /// The store could not be asked (answered 503, not 401: the token may be fine).
    Unavailable(CallError),
}

/// An accepted token's grant, and when the store last confirmed it.
#[derive(Debug)]
pub(super) struct Cached {
    pub grant: Grant,
    checked_at: Instant,
    /// Unix seconds: the token's own end, whatever the cache time.
    expires_at: i64,
}

impl Grants {
    /// The grant an access token (the text after `Bearer `) belongs to: it must be one this
    /// server issued, unexpired, for this server's canonical resource, and its grant must still
    /// exist. Records the grant's last use (at most once a minute).
    pub async fn authenticate(&self, bearer: &str) -> Result<Grant, Rejection> {
        if bearer.is_empty() || bearer.len() > MAX_BEARER {
            return Err(Rejection::Invalid);
        }
        let hash = digest(bearer);
        if let Some(grant) = self.cached(&hash) {
            return Ok(grant);
        }
        let grant = self
            .check(&hash)
            .await
            .map_err(Rejection::Unavailable)?
            .ok_or(Rejection::Invalid)?;
        if let Err(err) = self.touch(&grant.grant_id).await {
            // The request goes on: its last use will be written by a later one.
            debug!(error = %err, "could not record a sign-in's last use");
        }
        Ok(grant)
    }

    /// The grant of a token accepted less than the cache time ago.
    fn cached(&self, hash: &str) -> Option<Grant> {
        let cache = lock(&self.cache);
        let entry = cache.get(hash)?;
        let fresh = entry.checked_at.elapsed() < self.cache_ttl && entry.expires_at > now();
        if fresh {
            trace!("bearer token accepted from the cache");
            Some(entry.grant.clone())
        } else {
            None
        }
    }

    /// Asks the store: the access record, then its grant. Remembers what it found.
    async fn check(&self, hash: &str) -> Result<Option<Grant>, CallError> {
        let found = self.lookup(hash).await?;
        let mut cache = lock(&self.cache);
        match &found {
            Some((grant, expires_at)) => {
                if cache.len() >= CACHE_CAPACITY && !cache.contains_key(hash) {
                    let ttl = self.cache_ttl;
                    cache.retain(|_, c| c.checked_at.elapsed() < ttl);
                    if cache.len() >= CACHE_CAPACITY {
                        cache.clear();
                    }
                }
                cache.insert(
                    hash.to_owned(),
                    Cached {
                        grant: grant.clone(),
                        checked_at: Instant::now(),
                        expires_at: *expires_at,
                    },
                );
            }
            None => {
                cache.remove(hash);
            }
        }
        Ok(found.map(|(grant, _)| grant))
    }

    async fn lookup(&self, hash: &str) -> Result<Option<(Grant, i64)>, CallError> {
        let Some(access) = self
            .read::<AccessRecord>("access", &self.key("access", hash))
            .await?
        else {
            trace!("bearer token unknown or expired");
            return Ok(None);
        };
        let Some(canonical) = self.canonical() else {
            return Ok(None);
        };
        if access.resource != canonical || access.expires_at <= now() {
            trace!("bearer token for another resource, or expired");
            return Ok(None);
        }
        let Some(grant) = self.get(&access.grant_id).await? else {
            trace!("bearer token of a revoked sign-in");
            return Ok(None);
        };
        if grant.resource != canonical {
            return Ok(None);
        }
        trace!(
            user_id = grant.user_id,
            "bearer token accepted by the store"
        );
        Ok(Some((grant, access.expires_at)))
    }
}
