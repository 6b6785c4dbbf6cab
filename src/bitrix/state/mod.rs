//! Where state shared with other instances lives. Without a state store each process keeps its
//! own rate bucket and operating-time blocks, and its tokens in memory or in the token file (which
//! processes on one machine share under a lock). With Redis (or Valkey), every instance that points
//! at the same store and prefix shares all three, per portal: the bucket by portal host (the
//! portal counts per host), blocks and tokens by portal and app. Chosen once at start; the rest of
//! the client asks [`Shared`] and does not know more.

mod address;
mod kv;
mod seal;
mod spent;
mod store;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

pub use address::StateUrl;
pub use kv::MAX_SCAN;
pub use seal::{SealError, StateKey};
pub use spent::{Spend, SpentMarks};
pub use store::{Admission, RedisLock, RedisStore};

/// The prefix of every key, unless configured.
pub const DEFAULT_PREFIX: &str = "bitrix24-mcp";

/// How the state store is reached, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSettings {
    pub url: StateUrl,
    pub prefix: String,
    /// Seals the tokens at rest; required when OAuth tokens live in the store.
    pub key: Option<StateKey>,
    /// How long a refresh lock outlives a holder that died.
    pub lock_ttl: Duration,
}

/// One portal's (and app's) share of the store: the names of its keys.
#[derive(Debug, Clone)]
pub struct Shared {
    pub store: Arc<RedisStore>,
    bucket: String,
    app: String,
}

impl Shared {
    /// `portal` is the portal's host; `app` names who the operating-time budget belongs to (the
    /// OAuth client ID, or the webhook's user). Neither holds a secret.
    pub fn new(store: Arc<RedisStore>, portal: &str, app: &str) -> Self {
        let portal = key_part(portal);
        Self {
            bucket: store.name(&[&portal, "bucket"]),
            app: store.name(&[&portal, &key_part(app)]),
            store,
        }
    }

    /// The portal's request-rate bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The operating-time block of one method, by the name the portal resolves (lower case), so
    /// that every spelling of a blocked method finds the block.
    pub fn gate(&self, method: &str) -> String {
        format!(
            "{}:blocked:{}",
            self.app,
            key_part(&super::limits::method_key(method))
        )
    }

    /// The sealed token record.
    pub fn tokens(&self) -> String {
        format!("{}:tokens", self.app)
    }

    /// The refresh lock.
    pub fn refresh_lock(&self) -> String {
        format!("{}:refresh-lock", self.app)
    }

    /// A key for `purpose` derived from `BITRIX24_STATE_KEY` (never that key itself), the same
    /// on every instance configured alike; `None` when no key is configured.
    pub fn derived_key(&self, purpose: &str) -> Option<[u8; 32]> {
        self.store.sealing_key().map(|key| key.derive(purpose))
    }
}

/// A name made safe for a key: printable ASCII without `:` or spaces, at most 200 characters.
fn key_part(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() && c != ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_are_printable_and_bounded() {
        assert_eq!(key_part("x.bitrix24.com"), "x.bitrix24.com");
        assert_eq!(key_part("127.0.0.1:8080"), "127.0.0.1_8080");
        assert_eq!(key_part("a b\n"), "a_b_");
        assert_eq!(key_part(&"m".repeat(500)).len(), 200);
    }
}
