//! Refreshing through the shared state store: one instance at a time under the store's lock,
//! the record read first and a newer pair adopted, the new pair written through the fence; and
//! the first use, which reconciles the configured pair with the stored one.

use std::sync::Arc;

use tracing::{error, info, warn};

use super::super::clock::unix_now;
use super::super::error::CallError;
use super::super::request::Exchange;
use super::super::state::tokens::SharedTokens;
use super::super::token_store::StoredTokens;
use super::super::{Observer, Wait};
use super::{Generation, OAuthSession, is_invalid_grant};

impl OAuthSession {
    /// A refresh under the shared store's lock: the record is read first and a pair another
    /// instance stored is adopted; a new pair replaces the record only if it is still the one the
    /// refresh started from.
    pub(super) async fn refresh_shared(
        &self,
        shared: &SharedTokens,
        exchange: &Exchange<'_>,
        current: &Arc<Generation>,
        observer: Observer<'_>,
    ) -> Result<Arc<Generation>, CallError> {
        let lock = shared.lock(|| observer(Wait::TokenRefresh)).await?;
        let result = self.refresh_locked(shared, exchange, current).await;
        if let Err(err) = lock.release().await {
            warn!(error = %err, "the refresh lock could not be released; it expires by itself");
        }
        result
    }

    async fn refresh_locked(
        &self,
        shared: &SharedTokens,
        exchange: &Exchange<'_>,
        current: &Arc<Generation>,
    ) -> Result<Arc<Generation>, CallError> {
        let record = shared.load().await?;
        if let Some(record) = &record
            && let Some(adopted) = self.adopt(current, &record.stored.tokens, "another instance")
        {
            return Ok(adopted);
        }
        let outcome = self
            .request_tokens(exchange, &current.tokens.refresh_token)
            .await;
        if is_invalid_grant(&outcome)
            && let Ok(Some(now)) = shared.load().await
            && let Some(adopted) = self.adopt(current, &now.stored.tokens, "another instance")
        {
            return Ok(adopted);
        }
        if let Ok(tokens) = &outcome {
            let stored = StoredTokens {
                tokens: tokens.clone(),
                seed: record
                    .as_ref()
                    .map_or_else(|| self.seed.clone(), |r| r.stored.seed.clone()),
                saved_at: unix_now(),
            };
            match shared.replace(record.as_ref(), &stored).await {
                Ok(true) => {}
                Ok(false) => {
                    // The fence held: someone replaced the record since it was read (this
                    // instance's lock had expired). Theirs is what the others use.
                    warn!(
                        "the shared tokens changed while this instance refreshed; using the stored pair"
                    );
                    if let Ok(Some(now)) = shared.load().await
                        && let Some(adopted) =
                            self.adopt(current, &now.stored.tokens, "another instance")
                    {
                        return Ok(adopted);
                    }
                }
                Err(err) => {
                    error!(error = %err, "the refreshed tokens could not be saved in the shared state store; they live in memory only")
                }
            }
        }
        self.settle(current, outcome)
    }

    /// First use with a shared store: its record wins when it descends from the same refresh
    /// token as ours (it is newer); ours replaces it when it is a new authorization; an empty
    /// store is seeded with ours.
    pub(super) async fn sync(&self, shared: &SharedTokens) -> Result<(), CallError> {
        let _flight = self.refresh_lock.lock().await;
        if shared.is_synced() {
            return Ok(());
        }
        let current = self.current();
        let record = shared.load().await?;
        let ours = StoredTokens {
            tokens: current.tokens.clone(),
            seed: self.seed.clone(),
            saved_at: unix_now(),
        };
        let written = match &record {
            Some(record)
                if record.stored.seed == self.seed
                    || record.stored.tokens.refresh_token == current.tokens.refresh_token =>
            {
                self.adopt(&current, &record.stored.tokens, "the shared state store");
                true
            }
            Some(record) => {
                info!("the configured refresh token is new: it replaces the shared store's");
                shared.replace(Some(record), &ours).await?
            }
            None => {
                info!("seeding the shared state store with the configured oauth tokens");
                shared.replace(None, &ours).await?
            }
        };
        if !written && let Some(now) = shared.load().await? {
            // Another instance seeded it first.
            self.adopt(&current, &now.stored.tokens, "the shared state store");
        }
        shared.mark_synced();
        Ok(())
    }
}
