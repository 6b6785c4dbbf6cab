//! Refreshing through the shared state store: one instance at a time under the store's lock,
//! the record read first and a newer pair adopted, the new pair written through the fence; and
//! the first use, which reconciles the configured pair with the stored one.

use std::sync::Arc;

use tracing::{error, info, warn};

use super::super::error::CallError;
use super::super::request::Exchange;
use super::super::state::tokens::SharedTokens;
use super::super::{Observer, Wait};
use super::{Generation, OAuthSession, Standing, is_invalid_grant};

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
        let mut record = shared.load().await?;
        match record.as_ref().map(|r| current.standing(&r.stored)) {
            Some(Standing::Newer) => {
                if let Some(adopted) = record
                    .as_ref()
                    .and_then(|r| self.adopt(current, &r.stored, "another instance"))
                {
                    return Ok(adopted);
                }
            }
            Some(Standing::Same) => {}
            // A signed-in user's record is removed only with their grant: nothing to write back.
            None if self.grant => return Err(self.revoked_elsewhere()),
            Some(Standing::Older) | None => {
                // The store lost a save (restarted between a refresh and its save, or emptied):
                // its refresh token is spent, and an instance that took it up would be locked
                // out. The pair in use goes back in before anything else.
                warn!(
                    "the shared state store lost the oauth pair in use (it holds an older pair, or none): writing it back"
                );
                shared.replace(record.as_ref(), &current.record()).await?;
                record = shared.load().await?;
                if let Some(adopted) = record
                    .as_ref()
                    .and_then(|r| self.adopt(current, &r.stored, "another instance"))
                {
                    return Ok(adopted);
                }
            }
        }
        let outcome = self
            .request_tokens(exchange, &current.tokens.refresh_token)
            .await;
        // Refused: another instance rotated the pair in use, whatever number its record has.
        if is_invalid_grant(&outcome)
            && let Ok(Some(now)) = shared.load().await
            && current.standing(&now.stored) != Standing::Same
        {
            return Ok(self.take(current, &now.stored, "another instance"));
        }
        if let Ok(tokens) = &outcome {
            let stored = current.successor(tokens);
            match shared.replace(record.as_ref(), &stored).await {
                Ok(true) => {}
                Ok(false) => {
                    // The fence held: someone replaced the record since it was read (this
                    // instance's lock had expired). Theirs is what the others use.
                    warn!(
                        "the shared tokens changed while this instance refreshed; using the stored pair"
                    );
                    if let Ok(Some(now)) = shared.load().await
                        && current.standing(&now.stored) != Standing::Same
                    {
                        return Ok(self.take(current, &now.stored, "another instance"));
                    }
                }
                Err(err) => {
                    error!(error = %err, "the refreshed tokens could not be saved in the shared state store; they live in memory only until a later call saves them");
                    self.mark_unsaved();
                }
            }
        }
        self.settle(current, outcome)
    }

    /// After a failed save: under the store's lock, the pair in use goes back into the store
    /// unless another instance stored a newer one (then that is adopted). Whether the store and
    /// this instance agree now.
    pub(super) async fn write_back_shared(
        &self,
        shared: &SharedTokens,
        current: &Arc<Generation>,
        observer: Observer<'_>,
    ) -> bool {
        let Ok(lock) = shared.lock(|| observer(Wait::TokenRefresh)).await else {
            return false;
        };
        let agreed = match shared.load().await {
            Ok(Some(record)) if current.standing(&record.stored) != Standing::Older => {
                self.adopt(current, &record.stored, "another instance");
                true
            }
            Ok(record) => {
                info!("writing the oauth pair in use back into the shared state store");
                shared
                    .replace(record.as_ref(), &current.record())
                    .await
                    .is_ok_and(|written| written)
            }
            Err(_) => false,
        };
        if let Err(err) = lock.release().await {
            warn!(error = %err, "the refresh lock could not be released; it expires by itself");
        }
        agreed
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
        let ours = current.record();
        let written = match &record {
            Some(record)
                if record.stored.seed == self.seed
                    || record.stored.tokens.refresh_token == current.tokens.refresh_token =>
            {
                match current.standing(&record.stored) {
                    Standing::Older => {
                        // The token file seeding this instance is ahead of the store, which
                        // lost a save: the file's pair goes back in.
                        info!(
                            "the shared state store is behind the token file: writing the newer pair"
                        );
                        shared.replace(Some(record), &ours).await?
                    }
                    Standing::Newer | Standing::Same => {
                        self.adopt(&current, &record.stored, "the shared state store");
                        true
                    }
                }
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
            self.adopt(&current, &now.stored, "the shared state store");
        }
        shared.mark_synced();
        Ok(())
    }
}
