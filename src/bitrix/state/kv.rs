//! Plain key-value operations on the state store, for records that are not tokens, buckets or
//! locks: the sign-in's clients, consents, codes and grants. Each is one bounded round trip.

use std::time::Duration;

use super::store::RedisStore;
use crate::bitrix::error::CallError;

/// How many keys one scan returns at most: listing is for people, not for bulk export.
pub const MAX_SCAN: usize = 10_000;

impl RedisStore {
    /// Sets `key` to `value` for `ttl` (at least a millisecond).
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CallError> {
        let ms = millis(ttl);
        self.run("put", |mut conn| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Sets `key` only if it is absent; `false` when it was there.
    pub async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CallError> {
        let ms = millis(ttl);
        let set: Option<String> = self
            .run("put_new", |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    /// Reads and deletes `key` in one step (so only one reader ever gets it). A value longer
    /// than `limit` is deleted and refused.
    pub async fn take(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>, CallError> {
        let value: Option<Vec<u8>> = self
            .run("take", |mut conn| async move {
                redis::cmd("GETDEL").arg(key).query_async(&mut conn).await
            })
            .await?;
        match value {
            Some(v) if v.len() > limit => Err(self.unavailable(&format!(
                "the value at {key} is larger than such a record can be ({limit} bytes)"
            ))),
            Some(v) if v.is_empty() => Ok(None),
            other => Ok(other),
        }
    }

    /// Deletes `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), CallError> {
        self.run("delete", |mut conn| async move {
            redis::cmd("DEL")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map(|_| ())
    }

    /// The remaining time to live of `key`, `None` when it is absent or has none.
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>, CallError> {
        let ms: i64 = self
            .run("ttl", |mut conn| async move {
                redis::cmd("PTTL").arg(key).query_async(&mut conn).await
            })
            .await?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    /// Keys that start with `prefix` (a literal: glob characters in it are escaped), at most
    /// [`MAX_SCAN`].
    pub async fn scan(&self, prefix: &str) -> Result<Vec<String>, CallError> {
        let pattern = format!("{}*", escape_glob(prefix));
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let pattern = pattern.as_str();
            let (next, batch): (u64, Vec<String>) = self
                .run("scan", |mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            keys.extend(batch);
            if next == 0 || keys.len() >= MAX_SCAN {
                keys.truncate(MAX_SCAN);
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(u32::MAX)) as u64
}

/// `prefix` with Redis glob characters escaped.
fn escape_glob(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("a:b"), "a:b");
        assert_eq!(escape_glob("a*[?]\\"), "a\\*\\[\\?\\]\\\\");
    }
}
