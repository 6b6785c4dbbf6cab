//! How calls are authorised: an incoming webhook (the code is in the URL) or an installed OAuth
//! application (a token in the body). The OAuth side owns the tokens: it refreshes them when
//! their expiry has passed or the portal says `expired_token`/`invalid_token`, one refresh for
//! any number of concurrent callers, and writes every rotated pair to the token file before
//! anyone uses it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tracing::{debug, info, warn};

use super::Observer;
use super::clock::unix_now;
use super::endpoint::{ServiceUrl, WebhookUrl};
use super::error::CallError;
use super::request::Exchange;
use super::secret::Secret;
use super::state::Shared;
use super::state::tokens::SharedTokens;
use super::token_store::{LockError, StoreError, StoredTokens, TokenStore, Tokens, fingerprint};

mod exchange;
mod file;
mod grant;
mod lineage;
mod shared;
mod signed_in;

pub use exchange::{CodeGrant, exchange_code};
use lineage::Standing;

/// How the client authenticates.
#[derive(Debug)]
pub enum Auth {
    Webhook(WebhookUrl),
    OAuth(Box<OAuthSession>),
}

impl From<WebhookUrl> for Auth {
    fn from(webhook: WebhookUrl) -> Self {
        Auth::Webhook(webhook)
    }
}

impl Auth {
    /// The portal's host, safe to show.
    pub fn portal_host(&self) -> String {
        match self {
            Auth::Webhook(webhook) => webhook.host(),
            Auth::OAuth(session) => session.portal.host(),
        }
    }

    pub fn is_loopback(&self) -> bool {
        match self {
            Auth::Webhook(webhook) => webhook.is_loopback(),
            Auth::OAuth(session) => session.portal.is_loopback(),
        }
    }

    /// Every secret in play now, for scrubbing text that came back from the network.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Auth::Webhook(webhook) => vec![webhook.code().to_owned()],
            Auth::OAuth(session) => session.secrets(),
        }
    }
}

/// An installed application's settings, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The portal's REST root (`client_endpoint`).
    pub portal: ServiceUrl,
    pub token_server: ServiceUrl,
    pub client_id: String,
    pub client_secret: Secret,
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "no refresh token: set BITRIX24_REFRESH_TOKEN, or point BITRIX24_TOKEN_FILE at a file \
         this server wrote before"
    )]
    NoRefreshToken,
}

/// One token pair in use, numbered so that concurrent callers can tell whether it was replaced.
#[derive(Debug)]
pub struct Generation {
    pub tokens: Tokens,
    pub number: u64,
    /// The pair before, still worth scrubbing from answers to requests made with it.
    previous: Option<Tokens>,
    /// Issued by the token server to this process just now. A pair adopted from the token file
    /// or the state store (or configured) may already be expired at the portal.
    pub fresh: bool,
    /// The fingerprint of the refresh token this pair descends from, and how many refreshes it
    /// is from it (`None`: not known, as in a record an older version wrote): what tells a newer
    /// stored pair from an older one.
    seed: String,
    serial: Option<u64>,
}

/// The longest a refresh waits for another process's refresh (which is one request to the token
/// server, itself bounded by the request timeout).
const FILE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(45);

/// A token this close to its expiry is refreshed before use rather than sent to fail.
const EXPIRY_MARGIN_SECS: i64 = 30;

/// Access tokens live an hour; an expiry further out than this is not believed.
const MAX_TOKEN_LIFETIME_SECS: i64 = 7 * 86_400;

/// The live OAuth state of one installed application.
#[derive(Debug)]
pub struct OAuthSession {
    portal: ServiceUrl,
    token_server: ServiceUrl,
    client_id: String,
    client_secret: Secret,
    store: Option<TokenStore>,
    /// The shared state store, when tokens live there (then the token file only seeds it).
    shared: Option<SharedTokens>,
    /// Fingerprint of the refresh token the token file was seeded from.
    seed: String,
    current: RwLock<Arc<Generation>>,
    /// Held for the whole refresh: the single flight.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Refresh attempts so far, and the last failure, so callers queued behind a failed refresh
    /// share its outcome instead of each trying again.
    attempts: AtomicU64,
    last_failure: Mutex<Option<CallError>>,
    /// A refreshed pair could not be saved (the store was down, the file unwritable): the next
    /// call writes it back, so other processes are not left with a spent pair.
    unsaved: AtomicBool,
    /// The pair is a signed-in user's (sign-in mode), not the configured app's: its record gone
    /// from the store means the grant was revoked, not that a save was lost.
    grant: bool,
    /// The token server refused the pair or the app for good (`invalid_grant`, `invalid_client`,
    /// `PAYMENT_REQUIRED`), or the grant's record was removed: no refresh can help.
    ended: AtomicBool,
}

impl OAuthSession {
    /// Chooses the starting tokens: the token file's when it holds a pair derived from the
    /// configured refresh token (or none is configured), else the configured ones — a refresh
    /// token that differs from both the file's and its seed means the user authorized anew.
    pub fn open(settings: OAuthSettings) -> Result<Self, SetupError> {
        Self::open_with(settings, None)
    }

    /// [`OAuthSession::open`], keeping the tokens in a shared state store when one is given:
    /// the token file and the environment then only seed the store, by the same rule, on first
    /// use (the store may be down at start).
    pub fn open_with(settings: OAuthSettings, shared: Option<Shared>) -> Result<Self, SetupError> {
        let store = settings.token_file.map(TokenStore::new);
        if let Some(removed) = store
            .as_ref()
            .map(TokenStore::remove_stale_temps)
            .filter(|n| *n > 0)
        {
            info!(
                removed,
                "removed temp files an interrupted save left beside the token file"
            );
        }
        let stored = match &store {
            Some(store) => store.load()?,
            None => None,
        };
        if let Some(store) = &store {
            match store.make_private() {
                Ok(Some(mode)) => warn!(
                    path = %store.path().display(),
                    mode = format!("{mode:o}"),
                    "the token file was readable by others; its mode is now 600"
                ),
                Ok(None) => {}
                Err(err) => {
                    warn!(error = %err, "the token file is readable by others and its mode could not be fixed")
                }
            }
        }
        let configured = settings.refresh_token.clone().map(|refresh| Tokens {
            // No access token yet: expired from the start, so the first call refreshes.
            expires_at: if settings.access_token.is_some() {
                None
            } else {
                Some(0)
            },
            access_token: settings.access_token.clone().unwrap_or_default(),
            refresh_token: refresh,
        });
        // A configured pair starts its lineage: no refresh yet.
        let (tokens, seed, serial, save_now) = match (stored, configured) {
            (Some(file), Some(env))
                if file.seed == fingerprint(&env.refresh_token)
                    || file.tokens.refresh_token == env.refresh_token =>
            {
                info!("using the tokens from the token file (newer than the configured ones)");
                (file.tokens, file.seed, file.serial, false)
            }
            (Some(_), Some(env)) => {
                info!("the configured refresh token is new: it replaces the token file's");
                let seed = fingerprint(&env.refresh_token);
                (env, seed, Some(0), true)
            }
            (Some(file), None) => (file.tokens, file.seed, file.serial, false),
            (None, Some(env)) => {
                let seed = fingerprint(&env.refresh_token);
                (env, seed, Some(0), store.is_some())
            }
            (None, None) => return Err(SetupError::NoRefreshToken),
        };
        let shared = shared.map(SharedTokens::new);
        if let Some(store) = store.as_ref().filter(|_| shared.is_none()) {
            // Refused at start, like the token file itself: the lock is needed at every refresh.
            store.check_lock_path()?;
        }
        if let Some(shared) = &shared {
            info!(store = %shared.describe(), "oauth tokens are shared through the state store");
            if let Some(store) = &store {
                info!(
                    path = %store.path().display(),
                    "with a state store the token file only seeds it on first use; it is not written"
                );
            }
        } else if store.is_none() {
            warn!(
                "no BITRIX24_TOKEN_FILE: refreshed tokens live in memory only and are lost on \
                 restart, after which the configured refresh token no longer works; and several \
                 processes on the same app (two assistants, say) lock each other out, since each \
                 rotates the refresh token behind the others' backs: set BITRIX24_TOKEN_FILE to \
                 the same file for all of them"
            );
        }
        let session = Self {
            portal: settings.portal,
            token_server: settings.token_server,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            // With a shared store the file is a seed, never written or locked.
            store: if shared.is_some() { None } else { store },
            shared,
            seed: seed.clone(),
            current: RwLock::new(Arc::new(Generation {
                tokens,
                number: 0,
                previous: None,
                fresh: false,
                seed,
                serial,
            })),
            refresh_lock: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            unsaved: AtomicBool::new(false),
            grant: false,
            ended: AtomicBool::new(false),
        };
        if save_now && session.shared.is_none() {
            // Durable from the start: a crash before the first refresh must not lose the seed.
            session.save(&session.current().record())?;
        }
        Ok(session)
    }

    pub fn portal(&self) -> &ServiceUrl {
        &self.portal
    }

    /// The tokens' record in the shared state store, when they live there.
    pub fn shared_tokens(&self) -> Option<&SharedTokens> {
        self.shared.as_ref()
    }

    /// The pair in use now.
    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A pair to send now: refreshed first when its known expiry has passed.
    pub async fn usable(
        &self,
        exchange: &Exchange<'_>,
        observer: Observer<'_>,
    ) -> Result<Arc<Generation>, CallError> {
        if self.grant && self.ended() {
            // A signed-in user's ended pair is not sent again: the sign-in is over.
            return Err(self.ended_error());
        }
        if let Some(shared) = self.shared.as_ref().filter(|s| !s.is_synced()) {
            self.sync(shared).await?;
        }
        if self.unsaved.load(Ordering::Acquire) {
            self.write_back(observer).await;
        }
        let generation = self.current();
        match generation.tokens.expires_at {
            Some(expires) if unix_now() >= expires.saturating_sub(EXPIRY_MARGIN_SECS) => {
                debug!("access token expired by its stored expiry");
                self.refresh(exchange, generation.number, observer).await
            }
            _ => Ok(generation),
        }
    }

    fn mark_unsaved(&self) {
        self.unsaved.store(true, Ordering::Release);
    }

    /// Saves the pair in use after its save failed, if the store takes it now; the call goes on
    /// either way (it needs the pair, not the save).
    async fn write_back(&self, observer: Observer<'_>) {
        let _flight = self.refresh_lock.lock().await;
        if !self.unsaved.load(Ordering::Acquire) {
            return;
        }
        let current = self.current();
        let agreed = match &self.shared {
            Some(shared) => self.write_back_shared(shared, &current, observer).await,
            None => self.write_back_file(&current, observer).await,
        };
        if agreed {
            info!("the oauth pair in use is saved again");
            self.unsaved.store(false, Ordering::Release);
        }
    }

    /// Replaces generation `seen` with a fresh pair. Callers that find it already replaced get the
    /// replacement; callers that were waiting while a refresh failed get that failure.
    ///
    /// With a token file, the refresh runs under the file's lock, shared with every process on
    /// the same file: under it the file is read first, and a pair another process saved since is
    /// adopted instead of refreshing (the old refresh token is dead at the portal by then).
    pub async fn refresh(
        &self,
        exchange: &Exchange<'_>,
        seen: u64,
        observer: Observer<'_>,
    ) -> Result<Arc<Generation>, CallError> {
        let attempts_before = self.attempts.load(Ordering::Acquire);
        let _flight = self.refresh_lock.lock().await;
        let current = self.current();
        if current.number != seen {
            return Ok(current);
        }
        if self.attempts.load(Ordering::Acquire) != attempts_before {
            let failure = self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(failure) = failure {
                return Err(failure);
            }
        }
        match &self.shared {
            Some(shared) => {
                self.refresh_shared(shared, exchange, &current, observer)
                    .await
            }
            None => self.refresh_file(exchange, &current, observer).await,
        }
    }

    /// Makes `stored` the next generation when it is newer than the pair in use.
    fn adopt(
        &self,
        current: &Generation,
        stored: &StoredTokens,
        from: &str,
    ) -> Option<Arc<Generation>> {
        (current.standing(stored) == Standing::Newer).then(|| self.take(current, stored, from))
    }

    /// Makes `stored` the next generation.
    fn take(&self, current: &Generation, stored: &StoredTokens, from: &str) -> Arc<Generation> {
        let next = Arc::new(Generation {
            number: current.number + 1,
            previous: Some(current.tokens.clone()),
            tokens: stored.tokens.clone(),
            fresh: false,
            seed: stored.seed.clone(),
            serial: stored.serial,
        });
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next.clone();
        info!(
            generation = next.number,
            from, "adopted the oauth tokens another refresh saved"
        );
        next
    }

    /// Publishes a refresh's outcome (already saved): the new pair, or the failure. Counted when
    /// finished: callers that were already waiting share this outcome, callers that come later
    /// make their own attempt.
    fn settle(
        &self,
        current: &Generation,
        outcome: Result<Tokens, CallError>,
    ) -> Result<Arc<Generation>, CallError> {
        let result = self.publish(current, outcome);
        self.attempts.fetch_add(1, Ordering::AcqRel);
        result
    }

    fn publish(
        &self,
        current: &Generation,
        outcome: Result<Tokens, CallError>,
    ) -> Result<Arc<Generation>, CallError> {
        match outcome {
            Ok(tokens) => {
                let next = Arc::new(Generation {
                    number: current.number + 1,
                    previous: Some(current.tokens.clone()),
                    serial: current.successor(&tokens).serial,
                    seed: current.seed.clone(),
                    tokens,
                    fresh: true,
                });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = next.clone();
                info!(generation = next.number, "oauth tokens refreshed");
                Ok(next)
            }
            Err(err) => {
                warn!(error = %err, "oauth token refresh failed");
                if signed_in::is_final(&err) {
                    self.ended.store(true, Ordering::Release);
                }
                let err = CallError::TokenRefresh(Box::new(err));
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(err.clone());
                Err(err)
            }
        }
    }

    fn save(&self, stored: &StoredTokens) -> Result<(), StoreError> {
        match &self.store {
            Some(store) => store.save(stored),
            None => Ok(()),
        }
    }

    fn secrets(&self) -> Vec<String> {
        let generation = self.current();
        let mut secrets = vec![self.client_secret.expose().to_owned()];
        for tokens in std::iter::once(&generation.tokens).chain(generation.previous.as_ref()) {
            secrets.push(tokens.access_token.expose().to_owned());
            secrets.push(tokens.refresh_token.expose().to_owned());
        }
        secrets.retain(|s| !s.is_empty());
        secrets
    }
}

fn is_invalid_grant(outcome: &Result<Tokens, CallError>) -> bool {
    matches!(outcome, Err(CallError::Api(api)) if api.code == "invalid_grant")
}
