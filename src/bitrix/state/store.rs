//! The Redis (or Valkey) side: one connection manager (it reconnects by itself), bounded waits,
//! and the few atomic operations the shared state needs, each a single command or Lua script so
//! that instances never interleave inside one.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use tracing::debug;

use super::super::error::CallError;
use super::super::untrusted;
use super::StateSettings;
use super::address::StateUrl;
use super::seal::StateKey;

/// One answer from Redis may take this long before the store counts as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an instance waiting for the refresh lock looks again.
const LOCK_POLL: Duration = Duration::from_millis(25);

/// The GCRA bucket of `limits::RateLimiter`, on Redis's clock so that instances on machines
/// with different clocks agree. KEYS[1]: the bucket; KEYS[2], if given: the called method's
/// operating-time block, checked first. ARGV: interval and tolerance in µs, then the longest
/// acceptable wait in µs, or `saturate`. Answers {1, wait µs} when a slot was reserved, {0, wait
/// µs} when the wait would be too long, {2, µs left} when the method is blocked (nothing
/// reserved in either case).
///
/// The bucket is a timestamp no further ahead than a burst, a drain interval and the longest
/// wait anyone may configure (an hour): a value that is unreadable, not a number, infinite or
/// further ahead than that is not a bucket this server wrote, and counts as empty. The key always
/// ends up with a lifetime (until the bucket has drained), so nothing left in it lasts for ever.
const BUCKET: &str = r"
if KEYS[2] then
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 then
    return {2, left * 1000}
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local horizon = now + tolerance + interval + 3600000000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat ~= tat or tat > horizon then
  tat = now
end
local function lifetime(at)
  return math.max(math.ceil((at - now) / 1000), 0) + 1000
end
local function store(at)
  redis.call('SET', KEYS[1], string.format('%.0f', at), 'PX', lifetime(at))
end
if ARGV[3] == 'saturate' then
  store(math.max(tat, now + tolerance + interval))
  return {1, 0}
end
local start = math.max(tat, now)
local wait = math.max(start - tolerance - now, 0)
if wait > tonumber(ARGV[3]) then
  if redis.call('PTTL', KEYS[1]) == -1 then
    redis.call('PEXPIRE', KEYS[1], lifetime(tat))
  end
  return {0, wait}
end
store(start + interval)
return {1, wait}
";

/// Takes the lock KEYS[1] for owner ARGV[1] for ARGV[2] ms (an owner asking again renews it).
const LOCK: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Releases the lock KEYS[1] if owner ARGV[1] still holds it.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The fence: sets KEYS[1] to ARGV[2] only if it still holds ARGV[1] (`''`: only if absent),
/// to live ARGV[3] ms when given (else for ever).
const REPLACE: &str = r"
local now = redis.call('GET', KEYS[1])
if (now == false and ARGV[1] == '') or now == ARGV[1] then
  if ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
  return 1
end
return 0
";

/// A shared state store, connected lazily: a server starts while Redis is down, answers
/// `STATE_UNAVAILABLE` meanwhile, and goes on once Redis is back.
pub struct RedisStore {
    url: StateUrl,
    prefix: String,
    key: Option<StateKey>,
    lock_ttl: Duration,
    manager: ConnectionManager,
    bucket: Script,
    lock: Script,
    unlock: Script,
    replace: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What the shared bucket answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot is reserved: send after this wait.
    Go(Duration),
    /// The wait would exceed the maximum; nothing reserved.
    TooLong(Duration),
    /// The method is blocked by the operating-time limit for this long; nothing reserved.
    Blocked(Duration),
}

/// A refresh lock held in Redis. Release it with [`RedisStore::unlock`]; if the holder dies, the
/// lock expires after the configured time.
#[derive(Debug)]
pub struct RedisLock {
    key: String,
    owner: String,
}

impl RedisStore {
    /// Prepares the connection (nothing is sent yet). Must run inside the Tokio runtime.
    pub fn new(settings: &StateSettings) -> Result<Self, String> {
        let info = settings
            .url
            .connection_info()
            .map_err(|e| format!("cannot use the state store's address: {:?}", e.kind()))?;
        let client = redis::Client::open(info)
            .map_err(|e| format!("cannot use the state store's address: {:?}", e.kind()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            format!(
                "cannot prepare the state store's connection: {:?}",
                e.kind()
            )
        })?;
        Ok(Self {
            url: settings.url.clone(),
            prefix: settings.prefix.clone(),
            key: settings.key.clone(),
            lock_ttl: settings.lock_ttl,
            manager,
            bucket: Script::new(BUCKET),
            lock: Script::new(LOCK),
            unlock: Script::new(UNLOCK),
            replace: Script::new(REPLACE),
        })
    }

    /// What `check` and the logs show: the address without credentials, and the prefix.
    pub fn describe(&self) -> String {
        format!("{} (prefix {:?})", self.url, self.prefix)
    }

    /// The key that seals the tokens, if configured.
    pub fn sealing_key(&self) -> Option<&StateKey> {
        self.key.as_ref()
    }

    pub fn lock_ttl(&self) -> Duration {
        self.lock_ttl
    }

    /// A key under this server's prefix.
    pub fn name(&self, parts: &[&str]) -> String {
        let mut name = self.prefix.clone();
        for part in parts {
            name.push(':');
            name.push_str(part);
        }
        name
    }

    /// One exchange with Redis, bounded in time. A broken connection is tried once more (the
    /// manager reconnects meanwhile), so the first call after Redis comes back succeeds.
    pub(super) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, CallError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let mut last = None;
        for attempt in 0..2 {
            match tokio::time::timeout(COMMAND_TIMEOUT, op(self.manager.clone())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => {
                    let broken = err.is_io_error()
                        || err.is_connection_dropped()
                        || err.is_connection_refusal()
                        || err.is_unrecoverable_error();
                    debug!(what, attempt, error = %self.scrub(&err.to_string()), "state store request failed");
                    last = Some(self.scrub(&err.to_string()));
                    if !broken {
                        break;
                    }
                }
                Err(_) => {
                    last = Some(format!("no answer within {} s", COMMAND_TIMEOUT.as_secs()));
                    break;
                }
            }
        }
        Err(self.unavailable(last.as_deref().unwrap_or("no answer")))
    }

    /// The retryable error for a store that cannot be used now.
    pub fn unavailable(&self, reason: &str) -> CallError {
        CallError::StateUnavailable {
            detail: format!(
                "the shared state store {} is unavailable ({reason})",
                self.url
            ),
        }
    }

    fn scrub(&self, text: &str) -> String {
        let secrets: Vec<String> = self
            .url
            .password()
            .map(|p| p.expose().to_owned())
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        untrusted::sanitize(text, &secrets, 200)
    }

    /// Checks that the store answers.
    pub async fn ping(&self) -> Result<(), CallError> {
        self.run("ping", |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    /// Reserves a slot in the shared bucket unless the method's block `gate` is set.
    pub async fn reserve(
        &self,
        bucket: &str,
        gate: &str,
        interval: Duration,
        tolerance: Duration,
        max_wait: Duration,
    ) -> Result<Admission, CallError> {
        let (answer, wait_us): (i64, i64) = self
            .run("bucket", |mut conn| {
                let mut invocation = self.bucket.key(bucket);
                invocation
                    .key(gate)
                    .arg(micros(interval))
                    .arg(micros(tolerance))
                    .arg(micros(max_wait));
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        // Bounded by what we sent: at most max_wait, or the refusal's wait (clamped here).
        let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0))
            .min(super::super::clock::MAX_BLOCK);
        Ok(match answer {
            1 => Admission::Go(wait),
            2 => Admission::Blocked(wait),
            _ => Admission::TooLong(wait),
        })
    }

    /// Fills the shared bucket after a portal-side refusal.
    pub async fn saturate(
        &self,
        bucket: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Result<(), CallError> {
        self.run("bucket", |mut conn| {
            let mut invocation = self.bucket.key(bucket);
            invocation
                .arg(micros(interval))
                .arg(micros(tolerance))
                .arg("saturate");
            async move { invocation.invoke_async::<(i64, i64)>(&mut conn).await }
        })
        .await
        .map(|_| ())
    }

    /// Sets the block `key` for `duration` (at least a millisecond).
    pub async fn block(&self, key: &str, duration: Duration) -> Result<(), CallError> {
        let ms = duration.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
        self.run("gate", |mut conn| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// The raw value at `key`, if any (an empty value counts as none). At most `limit` bytes are
    /// read: a larger value is refused, not loaded.
    pub async fn get(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>, CallError> {
        let value: Vec<u8> = self
            .run("get", |mut conn| async move {
                redis::cmd("GETRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        match value.len() {
            0 => Ok(None),
            n if n > limit => Err(self.unavailable(&format!(
                "the value at {key} is larger than a token record can be ({limit} bytes)"
            ))),
            _ => Ok(Some(value)),
        }
    }

    /// Sets `key` to `new` only if it still holds `expected` (`None`: only if absent), to live
    /// `ttl` when given. Repeating it after a lost answer is harmless: the second try finds
    /// `new` and answers `false`, and the caller then reads what is there.
    pub async fn replace(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, CallError> {
        let ttl_ms = ttl.map(|ttl| ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64);
        let replaced: i64 = self
            .run("replace", |mut conn| {
                let mut invocation = self.replace.key(key);
                invocation.arg(expected.unwrap_or_default()).arg(new);
                if let Some(ms) = ttl_ms {
                    invocation.arg(ms);
                }
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(replaced == 1)
    }

    /// Takes the lock `key`, waiting at most `max_wait`; `waiting` is called once if another
    /// instance holds it.
    pub async fn lock(
        &self,
        key: &str,
        max_wait: Duration,
        waiting: impl Fn(),
    ) -> Result<RedisLock, CallError> {
        let owner = owner_token()?;
        let ttl_ms = self.lock_ttl.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
        let started = tokio::time::Instant::now();
        let mut told = false;
        loop {
            let taken: i64 = self
                .run("lock", |mut conn| {
                    let mut invocation = self.lock.key(key);
                    invocation.arg(&owner).arg(ttl_ms);
                    async move { invocation.invoke_async(&mut conn).await }
                })
                .await?;
            if taken == 1 {
                return Ok(RedisLock {
                    key: key.to_owned(),
                    owner,
                });
            }
            if started.elapsed() >= max_wait {
                return Err(CallError::StateUnavailable {
                    detail: format!(
                        "another instance has been refreshing the OAuth tokens (it holds the lock \
                         in {}) for over {} s",
                        self.url,
                        max_wait.as_secs()
                    ),
                });
            }
            if !told {
                waiting();
                told = true;
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }

    /// Releases a lock this instance holds (a lock that expired meanwhile is left alone).
    pub async fn unlock(&self, lock: RedisLock) -> Result<(), CallError> {
        self.run("unlock", |mut conn| {
            let mut invocation = self.unlock.key(&lock.key);
            invocation.arg(&lock.owner);
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        })
        .await
        .map(|_| ())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A random name for one lock holding, so only its holder releases it.
fn owner_token() -> Result<String, CallError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CallError::StateUnavailable {
        detail: format!("no random bytes for the refresh lock: {e}"),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
