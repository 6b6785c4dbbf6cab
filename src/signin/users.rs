//! Each grant's own Bitrix24 client: built from the grant's token pair, sharing the portal's HTTP
//! connections, request-rate bucket and operating-time blocks with every other user, with its own
//! token lineage and its own shared reads.
//!
//! Where the pair lives decides how clients are kept. In memory (one instance) the cached client
//! IS where the rotated pair lives: it is never evicted while its grant lives, so the number of
//! grants is capped instead and a sign-in beyond the cap is refused. With a state store the pair
//! lives sealed in the store at [`pair_keys`]`[0]` (refreshed under the lock at `[1]` by
//! whichever instance notices the expiry first), and clients are a bounded cache, evicted freely.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::{debug, warn};

use super::records::Grant;
use super::settings::SigninSettings;
use super::store::SigninStore;
use crate::bitrix::auth::OAuthSettings;
use crate::bitrix::state::Shared;
use crate::bitrix::state::tokens::SharedTokens;
use crate::bitrix::token_store::{StoredTokens, Tokens, fingerprint};
use crate::bitrix::{Auth, BuildError, CallError, Client, ClientOptions, OAuthSession, PortalLink};

/// At most this many users may be signed in at once without a state store (each holds a client
/// with its live pair in memory).
pub const MAX_MEMORY_GRANTS: usize = 10_000;

/// With a state store, at most this many clients are kept ready; others are rebuilt from the
/// store when next used.
pub const MAX_CACHED_CLIENTS: usize = 4_096;

/// How long a stored pair outlives its last rotation: Bitrix24's refresh tokens live 180 days,
/// after which the pair is of no use.
pub const PAIR_TTL: Duration = Duration::from_secs(180 * 86_400);

/// What stands in the store at a grant's pair key in memory mode (the pair itself is in the
/// cached client): revoking the grant deletes it, which tells this cache to let the client go.
const MEMORY_MARKER: &[u8] = b"in-memory";

/// The state-store keys that hold a grant's sealed Bitrix24 pair and its refresh lock: deleted
/// when the grant is revoked.
pub fn pair_keys(store: &SigninStore, grant_id: &str) -> [String; 2] {
    [
        store.key(&["pair", grant_id, "tokens"]),
        store.key(&["pair", grant_id, "refresh-lock"]),
    ]
}

/// Why a grant has no client.
#[derive(Debug)]
pub enum Unusable {
    /// The grant's Bitrix24 side is over: the token server refused it for good, or its pair is
    /// gone (revoked on some instance, or lost with a restart in memory mode). The user must sign
    /// in again.
    Ended,
    /// The store could not be asked, or is full; the grant may be fine.
    Unavailable(CallError),
}

/// The per-grant clients.
#[derive(Debug)]
pub struct Users {
    /// The app users sign in through (its own tokens unused).
    app: OAuthSettings,
    link: PortalLink,
    store: SigninStore,
    clients: Mutex<HashMap<String, Arc<Client>>>,
}

impl Users {
    /// `options` are the portal client's; `shared` the portal's share of the state store (the
    /// bucket and blocks every user shares), when configured. With a state store the users' pairs
    /// are sealed with its key, which must then be configured.
    pub fn new(
        settings: &SigninSettings,
        options: ClientOptions,
        shared: Option<Shared>,
        store: SigninStore,
    ) -> Result<Self, BuildError> {
        if store
            .redis_store()
            .is_some_and(|s| s.sealing_key().is_none())
        {
            return Err(BuildError::Settings(
                "signed-in users' Bitrix24 tokens kept in the state store must be encrypted: set \
                 BITRIX24_STATE_KEY to 32 random bytes (`openssl rand -hex 32`), the same on \
                 every instance"
                    .into(),
            ));
        }
        let link = PortalLink::new(settings.portal.is_loopback(), options)?.sharing(shared);
        Ok(Self {
            app: OAuthSettings {
                portal: settings.portal.clone(),
                token_server: settings.token_server.clone(),
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
                access_token: None,
                refresh_token: None,
                token_file: None,
            },
            link,
            store,
            clients: Mutex::default(),
        })
    }

    /// The app users sign in through.
    pub fn app(&self) -> &OAuthSettings {
        &self.app
    }

    /// What every user's client shares.
    pub fn link(&self) -> &PortalLink {
        &self.link
    }

    /// A client acting with `pair`, kept nowhere (the sign-in uses it to ask who the user is).
    pub fn client_with(&self, pair: Tokens) -> Client {
        let session = OAuthSession::for_grant(&self.app, first_record(pair), None);
        self.link.client(Auth::OAuth(Box::new(session)))
    }

    /// Keeps a new grant's first pair: in memory, as its client; in the store, sealed. Refused
    /// when memory holds [`MAX_MEMORY_GRANTS`] live grants already.
    pub async fn store_pair(&self, grant_id: &str, pair: Tokens) -> Result<(), CallError> {
        let [record, lock] = pair_keys(&self.store, grant_id);
        let stored = first_record(pair);
        if let Some(redis) = self.store.redis_store() {
            let tokens = SharedTokens::at(redis.clone(), record, lock, PAIR_TTL);
            if !tokens.replace(None, &stored).await? {
                return Err(CallError::StateUnavailable {
                    detail: "a Bitrix24 pair is already stored for this new grant; not replaced"
                        .into(),
                });
            }
            return Ok(());
        }
        if self.live_count() >= MAX_MEMORY_GRANTS {
            self.sweep().await;
            if self.live_count() >= MAX_MEMORY_GRANTS {
                return Err(CallError::StateUnavailable {
                    detail: format!(
                        "{MAX_MEMORY_GRANTS} users are signed in, as many as this server keeps in \
                         memory; set BITRIX24_STATE_URL to keep them in a state store, or sign \
                         someone out"
                    ),
                });
            }
        }
        self.store.put(&record, MEMORY_MARKER, PAIR_TTL).await?;
        let session = OAuthSession::for_grant(&self.app, stored, None);
        let client = Arc::new(self.link.client(Auth::OAuth(Box::new(session))));
        lock_map(&self.clients).insert(grant_id.to_owned(), client);
        Ok(())
    }

    /// The client that acts as `grant`'s user.
    pub async fn client_for(&self, grant: &Grant) -> Result<Arc<Client>, Unusable> {
        let id = grant.grant_id.as_str();
        let cached = lock_map(&self.clients).get(id).cloned();
        let Some(redis) = self.store.redis_store() else {
            let [record, _] = pair_keys(&self.store, id);
            let marked = self
                .store
                .get(&record)
                .await
                .map_err(Unusable::Unavailable)?
                .is_some();
            return match cached {
                Some(client) if marked && !client.grant_ended() => Ok(client),
                _ => {
                    self.forget(id);
                    Err(Unusable::Ended)
                }
            };
        };
        if let Some(client) = cached {
            if client.grant_ended() {
                self.forget(id);
                return Err(Unusable::Ended);
            }
            return Ok(client);
        }
        let [record, lock] = pair_keys(&self.store, id);
        let tokens = SharedTokens::at(redis.clone(), record, lock, PAIR_TTL);
        let Some(stored) = tokens.load().await.map_err(Unusable::Unavailable)? else {
            return Err(Unusable::Ended);
        };
        let session = OAuthSession::for_grant(&self.app, stored.stored, Some(tokens));
        let client = Arc::new(self.link.client(Auth::OAuth(Box::new(session))));
        Ok(self.keep(id, client))
    }

    /// Lets a grant's client go (its grant was revoked).
    pub fn forget(&self, grant_id: &str) {
        lock_map(&self.clients).remove(grant_id);
    }

    /// How many grants have a client here now.
    pub fn live_count(&self) -> usize {
        lock_map(&self.clients).len()
    }

    /// Caches a client built from the store: the one already cached wins (two calls that missed
    /// at once end up sharing one client, and so its reads and refreshes). When the cache is
    /// full, a client no call is using and whose pair is saved makes room; if none can, the new
    /// client serves this call uncached.
    fn keep(&self, grant_id: &str, client: Arc<Client>) -> Arc<Client> {
        let mut clients = lock_map(&self.clients);
        if let Some(existing) = clients.get(grant_id) {
            return existing.clone();
        }
        if clients.len() >= MAX_CACHED_CLIENTS {
            let idle = clients
                .iter()
                .find(|(_, c)| Arc::strong_count(c) == 1 && !holds_unsaved_pair(c))
                .map(|(id, _)| id.clone());
            match idle {
                Some(idle) => {
                    debug!("evicting an idle user's client from the cache");
                    clients.remove(&idle);
                }
                None => {
                    warn!(
                        cached = clients.len(),
                        "every cached user's client is busy; this one is not cached"
                    );
                    return client;
                }
            }
        }
        clients.insert(grant_id.to_owned(), client.clone());
        client
    }

    /// Memory mode: drops the clients of grants revoked meanwhile (their marker is gone).
    async fn sweep(&self) {
        let ids: Vec<String> = lock_map(&self.clients).keys().cloned().collect();
        for id in ids {
            let [record, _] = pair_keys(&self.store, &id);
            if matches!(self.store.get(&record).await, Ok(None)) {
                self.forget(&id);
            }
        }
    }
}

/// The record of a pair a sign-in just obtained: the start of its own lineage.
fn first_record(pair: Tokens) -> StoredTokens {
    StoredTokens {
        seed: fingerprint(&pair.refresh_token),
        serial: Some(0),
        saved_at: crate::bitrix::clock::unix_now(),
        tokens: pair,
    }
}

fn holds_unsaved_pair(client: &Client) -> bool {
    match client.auth() {
        Auth::OAuth(session) => session.holds_unsaved_pair(),
        Auth::Webhook(_) => false,
    }
}

fn lock_map<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
