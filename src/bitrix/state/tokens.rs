//! OAuth tokens in the shared store: one sealed record per portal and app (or, with sign-in, per
//! signed-in user's grant), replaced only through a fence (the record must still be the one the
//! refresh started from), refreshed under one lock for all instances. The session in `auth`
//! decides what to do; this says how it is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::debug;

use super::super::error::CallError;
use super::super::token_store::{StoredTokens, decode, encode};
use super::{RedisLock, RedisStore, Shared};

/// A token record is a few hundred bytes; anything far larger is not ours.
const MAX_RECORD_BYTES: usize = 16 * 1024;

/// Waiting for another instance's refresh: its lock's lifetime and a little more, since a holder
/// that died leaves the lock until it expires.
const LOCK_WAIT_MARGIN: Duration = Duration::from_secs(5);

/// The token record of one portal and app, or of one grant.
#[derive(Debug)]
pub struct SharedTokens {
    store: Arc<RedisStore>,
    record: String,
    lock: String,
    /// How long a written record lives (`None`: for ever, the app's own record).
    ttl: Option<Duration>,
    /// Whether the store's record has been read (and seeded, if it had none) since start.
    synced: AtomicBool,
}

/// The record as read: the raw value (for the fence) and the pair in it.
#[derive(Debug)]
pub struct Record {
    raw: Vec<u8>,
    pub stored: StoredTokens,
}

impl SharedTokens {
    pub fn new(shared: Shared) -> Self {
        Self {
            record: shared.tokens(),
            lock: shared.refresh_lock(),
            store: shared.store,
            ttl: None,
            synced: AtomicBool::new(false),
        }
    }

    /// The record at `record`, refreshed under the lock `lock`, each write living `ttl`: a
    /// signed-in user's pair (the sign-in names the keys, so that revoking a grant deletes them).
    /// Already in sync: there is no configured pair to reconcile with.
    pub fn at(store: Arc<RedisStore>, record: String, lock: String, ttl: Duration) -> Self {
        Self {
            store,
            record,
            lock,
            ttl: Some(ttl),
            synced: AtomicBool::new(true),
        }
    }

    /// The store, as shown to users.
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// The record, if there is one. One that does not open with the key is an error naming the
    /// key, not a missing record: treating it as missing would overwrite another key's tokens.
    pub async fn load(&self) -> Result<Option<Record>, CallError> {
        let store = &self.store;
        let Some(raw) = store.get(&self.record, MAX_RECORD_BYTES).await? else {
            return Ok(None);
        };
        let key = store
            .sealing_key()
            .ok_or_else(|| store.unavailable("no BITRIX24_STATE_KEY to open the tokens with"))?;
        let plain = key.open(&raw, self.record.as_bytes()).map_err(|err| {
            CallError::StateUnreadable {
                detail: format!(
                    "the OAuth tokens in the shared state store {} cannot be read: {err}; every \
                     instance must use the same BITRIX24_STATE_KEY",
                    store.describe()
                ),
            }
        })?;
        let stored = decode(&plain).map_err(|detail| CallError::StateUnreadable {
            detail: format!(
                "the OAuth token record in {} is not valid ({detail})",
                store.describe()
            ),
        })?;
        Ok(Some(Record { raw, stored }))
    }

    /// Writes `stored` if the record is still `expected` (`None`: if there is none). `false`:
    /// another instance wrote first.
    pub async fn replace(
        &self,
        expected: Option<&Record>,
        stored: &StoredTokens,
    ) -> Result<bool, CallError> {
        let store = &self.store;
        let key = store
            .sealing_key()
            .ok_or_else(|| store.unavailable("no BITRIX24_STATE_KEY to seal the tokens with"))?;
        let sealed = key
            .seal(&encode(stored), self.record.as_bytes())
            .map_err(|err| store.unavailable(&err.to_string()))?;
        store
            .replace(
                &self.record,
                expected.map(|r| r.raw.as_slice()),
                &sealed,
                self.ttl,
            )
            .await
    }

    /// Takes the refresh lock shared by every instance.
    pub async fn lock(&self, waiting: impl Fn()) -> Result<LockGuard, CallError> {
        let store = &self.store;
        let lock = store
            .lock(&self.lock, store.lock_ttl() + LOCK_WAIT_MARGIN, waiting)
            .await?;
        Ok(LockGuard {
            lock: Some(lock),
            store: store.clone(),
        })
    }
}

/// The refresh lock, held. [`LockGuard::release`] gives it back; if the refresh is abandoned
/// instead (the call was cancelled), dropping the guard releases it in the background, so the
/// other instances need not wait for it to expire.
#[derive(Debug)]
pub struct LockGuard {
    lock: Option<RedisLock>,
    store: Arc<RedisStore>,
}

impl LockGuard {
    pub async fn release(mut self) -> Result<(), CallError> {
        match self.lock.take() {
            Some(lock) => self.store.unlock(lock).await,
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let (Some(lock), Ok(runtime)) = (self.lock.take(), tokio::runtime::Handle::try_current())
        {
            let store = self.store.clone();
            runtime.spawn(async move {
                if let Err(err) = store.unlock(lock).await {
                    debug!(error = %err, "an abandoned refresh lock could not be released; it expires by itself");
                }
            });
        }
    }
}
