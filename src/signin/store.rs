//! Where the sign-in keeps its records: in this process's memory (one instance), or in the state
//! store (Redis), so that a sign-in begun on one instance finishes on another and any instance
//! serves any user. The same few operations either way; every value is bounded in size, and the
//! memory store in count, refusing new records when full rather than growing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::bitrix::CallError;
use crate::bitrix::state::{MAX_SCAN, RedisStore};

/// The largest record the sign-in writes or reads (a client metadata document is the largest).
pub const MAX_RECORD: usize = 96 * 1024;

/// How many records the memory store holds at most (expired ones are dropped first).
pub const MEMORY_CAPACITY: usize = 100_000;

/// The sign-in's key-value store.
#[derive(Debug, Clone)]
pub enum SigninStore {
    Memory(Arc<Memory>),
    Redis(Arc<RedisStore>),
}

/// Records in this process, each with its expiry.
#[derive(Debug, Default)]
pub struct Memory {
    entries: Mutex<Records>,
}

/// The records, and how many of each kind anyone can make there are (expired ones included until
/// dropped).
#[derive(Debug, Default)]
struct Records {
    map: HashMap<String, (Vec<u8>, Instant)>,
    open: HashMap<&'static str, usize>,
    /// When the expired records were last dropped: a walk over all of them, done at most once a
    /// second however many writes are refused meanwhile.
    swept_at: Option<Instant>,
}

impl Records {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn get(&self, key: &str) -> Option<&(Vec<u8>, Instant)> {
        self.map.get(key)
    }

    fn insert(&mut self, key: &str, record: (Vec<u8>, Instant)) {
        if self.map.insert(key.to_owned(), record).is_none()
            && let Some((kind, _)) = open_share(key)
        {
            *self.open.entry(kind).or_default() += 1;
        }
    }

    fn remove(&mut self, key: &str) -> Option<(Vec<u8>, Instant)> {
        let removed = self.map.remove(key)?;
        if let Some((kind, _)) = open_share(key)
            && let Some(count) = self.open.get_mut(kind)
        {
            *count = count.saturating_sub(1);
        }
        Some(removed)
    }

    fn count(&self, kind: &str) -> usize {
        self.open.get(kind).copied().unwrap_or(0)
    }

    /// Drops the expired records (unless that was done less than a second ago).
    fn retain_live(&mut self, now: Instant) {
        if self
            .swept_at
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.swept_at = Some(now);
        self.map.retain(|_, (_, expiry)| *expiry > now);
        self.open.clear();
        for key in self.map.keys() {
            if let Some((kind, _)) = open_share(key) {
                *self.open.entry(kind).or_default() += 1;
            }
        }
    }
}

impl SigninStore {
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    pub fn redis(store: Arc<RedisStore>) -> Self {
        Self::Redis(store)
    }

    /// Whether records are shared with other instances.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// The full key of a record: under the store's prefix in Redis, `signin:` in memory.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut all = vec!["signin"];
        all.extend_from_slice(parts);
        match self {
            Self::Memory(_) => all.join(":"),
            Self::Redis(store) => store.name(&all),
        }
    }

    /// Sets `key` to `value` for `ttl`.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CallError> {
        check_size(key, value)?;
        match self {
            Self::Memory(memory) => memory.put(key, value, ttl, false).map(|_| ()),
            Self::Redis(store) => store.put(key, value, ttl).await,
        }
    }

    /// Sets `key` only if absent; `false` when it was there.
    pub async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CallError> {
        check_size(key, value)?;
        match self {
            Self::Memory(memory) => memory.put(key, value, ttl, true),
            Self::Redis(store) => store.put_new(key, value, ttl).await,
        }
    }

    /// The value at `key`, if present and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CallError> {
        match self {
            Self::Memory(memory) => Ok(memory.get(key, false)),
            Self::Redis(store) => store.get(key, MAX_RECORD).await,
        }
    }

    /// Reads and deletes `key` at once: of any number of concurrent takers, one gets the value.
    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CallError> {
        match self {
            Self::Memory(memory) => Ok(memory.get(key, true)),
            Self::Redis(store) => store.take(key, MAX_RECORD).await,
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), CallError> {
        match self {
            Self::Memory(memory) => {
                lock(&memory.entries).remove(key);
                Ok(())
            }
            Self::Redis(store) => store.delete(key).await,
        }
    }

    /// Keys starting with `prefix` (a full key prefix, from [`SigninStore::key`]), at most
    /// [`MAX_SCAN`].
    pub async fn scan(&self, prefix: &str) -> Result<Vec<String>, CallError> {
        match self {
            Self::Memory(memory) => {
                let now = Instant::now();
                let entries = lock(&memory.entries);
                Ok(entries
                    .map
                    .iter()
                    .filter(|(k, (_, expiry))| k.starts_with(prefix) && *expiry > now)
                    .map(|(k, _)| k.clone())
                    .take(MAX_SCAN)
                    .collect())
            }
            Self::Redis(store) => store.scan(prefix).await,
        }
    }

    /// The state store behind this one, when shared.
    pub fn redis_store(&self) -> Option<&Arc<RedisStore>> {
        match self {
            Self::Redis(store) => Some(store),
            Self::Memory(_) => None,
        }
    }
}

impl Memory {
    fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        only_new: bool,
    ) -> Result<bool, CallError> {
        let now = Instant::now();
        let mut entries = lock(&self.entries);
        let live = entries.get(key).is_some_and(|(_, expiry)| *expiry > now);
        if only_new && live {
            return Ok(false);
        }
        if !live
            && let Some((kind, share)) = open_share(key)
            && entries.count(kind) >= share
        {
            entries.retain_live(now);
            if entries.count(kind) >= share {
                if kind != "cimd" {
                    return Err(CallError::StateUnavailable {
                        detail: format!(
                            "the sign-in records in memory hold {share} {kind} records, their \
                             share; set BITRIX24_STATE_URL to keep them in a state store"
                        ),
                    });
                }
                // Fetched documents are a cache: the one closest to expiry makes room.
                let oldest = entries
                    .map
                    .iter()
                    .filter(|(k, _)| kind_of(k) == Some(kind))
                    .min_by_key(|(_, (_, expiry))| *expiry)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        if !live && entries.len() >= MEMORY_CAPACITY {
            entries.retain_live(now);
            if entries.len() >= MEMORY_CAPACITY {
                return Err(CallError::StateUnavailable {
                    detail: format!(
                        "the sign-in records in memory are at their limit ({MEMORY_CAPACITY}); \
                         set BITRIX24_STATE_URL to keep them in a state store"
                    ),
                });
            }
        }
        let expiry = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        entries.insert(key, (value.to_vec(), expiry));
        Ok(true)
    }

    fn get(&self, key: &str, remove: bool) -> Option<Vec<u8>> {
        let now = Instant::now();
        let mut entries = lock(&self.entries);
        let live = entries.get(key).is_some_and(|(_, expiry)| *expiry > now);
        if !live {
            entries.remove(key);
            return None;
        }
        if remove {
            entries.remove(key).map(|(value, _)| value)
        } else {
            entries.get(key).map(|(value, _)| value.clone())
        }
    }
}

/// The records anyone can make this server keep without signing in (a registration, a fetched
/// metadata document, a consent page, an approval on its way through Bitrix24), and how many of
/// each the memory store holds at most: together half of [`MEMORY_CAPACITY`], so that however
/// many are made, the grants and tokens of signed-in users always have room.
const OPEN_SHARES: [(&str, usize); 4] = [
    ("client", MEMORY_CAPACITY / 5),
    ("cimd", MEMORY_CAPACITY / 10),
    ("pending", MEMORY_CAPACITY / 10),
    ("upstream", MEMORY_CAPACITY / 10),
];

/// The kind of a memory key (`signin:<kind>:...`).
fn kind_of(key: &str) -> Option<&str> {
    key.strip_prefix("signin:")?.split(':').next()
}

/// The kind of `key` and its share, if anyone can make records of that kind.
fn open_share(key: &str) -> Option<(&'static str, usize)> {
    let kind = kind_of(key)?;
    OPEN_SHARES.iter().copied().find(|(open, _)| *open == kind)
}

fn check_size(key: &str, value: &[u8]) -> Result<(), CallError> {
    if value.len() > MAX_RECORD || key.len() > 1024 {
        return Err(CallError::StateUnavailable {
            detail: format!("a sign-in record is larger than {MAX_RECORD} bytes; not stored"),
        });
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn memory_records_expire_and_are_taken_once() {
        let store = SigninStore::memory();
        let key = store.key(&["code", "abc"]);
        assert_eq!(key, "signin:code:abc");
        store.put(&key, b"v", Duration::from_secs(5)).await.unwrap();
        assert!(
            !store
                .put_new(&key, b"w", Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(store.take(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(store.take(&key).await.unwrap(), None);
        store.put(&key, b"v", Duration::from_secs(5)).await.unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(store.get(&key).await.unwrap(), None);
        assert!(
            store
                .put_new(&key, b"w", Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert_eq!(store.scan("signin:code:").await.unwrap(), vec![key.clone()]);
    }

    #[tokio::test]
    async fn oversized_records_are_refused() {
        let store = SigninStore::memory();
        let big = vec![0u8; MAX_RECORD + 1];
        assert!(store.put("k", &big, Duration::from_secs(1)).await.is_err());
        assert_eq!(store.get("k").await.unwrap(), None);
    }
}
