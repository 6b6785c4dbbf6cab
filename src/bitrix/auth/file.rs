//! Refreshing with a token file: under the file's lock, shared with every process on the same
//! file, the file is read first — a pair another process saved since is adopted instead of
//! refreshing, and a file that lost a save gets the pair in use back — then the new pair is
//! saved before anyone uses it.

use std::sync::Arc;

use tracing::{error, warn};

use super::super::error::CallError;
use super::super::request::Exchange;
use super::super::token_store::{LockError, StoredTokens};
use super::super::{Observer, Wait};
use super::{FILE_LOCK_WAIT, Generation, OAuthSession, Standing, is_invalid_grant};

impl OAuthSession {
    /// A refresh under the token file's lock (when there is a file).
    pub(super) async fn refresh_file(
        &self,
        exchange: &Exchange<'_>,
        current: &Arc<Generation>,
        observer: Observer<'_>,
    ) -> Result<Arc<Generation>, CallError> {
        let _file_lock = match &self.store {
            Some(store) => Some(
                store
                    .lock(FILE_LOCK_WAIT, || observer(Wait::TokenRefresh))
                    .await
                    .map_err(|err| match err {
                        LockError::NotRegular { .. } => CallError::StateMisconfigured {
                            detail: err.to_string(),
                        },
                        LockError::Open { .. } | LockError::Busy { .. } => {
                            CallError::StateUnavailable {
                                detail: err.to_string(),
                            }
                        }
                    })?,
            ),
            None => None,
        };
        if let Some(adopted) = self.reconcile_file(current) {
            return Ok(adopted);
        }
        let outcome = self
            .request_tokens(exchange, &current.tokens.refresh_token)
            .await;
        // The refresh token was refused: if another process rotated it meanwhile (one that does
        // not take the lock, say an older version), its pair is in the file, whatever its number.
        if is_invalid_grant(&outcome)
            && let Some(stored) = self.load_file()
            && current.standing(&stored) != Standing::Same
        {
            return Ok(self.take(current, &stored, "another process (token file)"));
        }
        if let Ok(tokens) = &outcome
            && let Err(err) = self.save(&current.successor(tokens))
        {
            // The old refresh token is already dead at the portal: losing the new one from
            // memory too would lock the user out, so keep going, say so loudly, and save it at
            // the next call.
            error!(error = %err, "the refreshed tokens could not be saved; they live in memory only until a later call saves them");
            self.mark_unsaved();
        }
        self.settle(current, outcome)
    }

    /// Compares the token file with the pair in use: a newer pair there (another process
    /// refreshed) becomes the next generation; an older one, or none, means a save was lost, and
    /// the pair in use is written back — the file's refresh token is spent, and a process that
    /// took it up would be locked out.
    fn reconcile_file(&self, current: &Generation) -> Option<Arc<Generation>> {
        let store = self.store.as_ref()?;
        let standing = match store.load() {
            Ok(Some(stored)) => match current.standing(&stored) {
                Standing::Newer => {
                    return Some(self.take(current, &stored, "another process (token file)"));
                }
                standing => Some(standing),
            },
            Ok(None) => None,
            Err(err) => {
                warn!(error = %err, "cannot read the token file to look for a newer pair");
                return None;
            }
        };
        if standing != Some(Standing::Same) {
            warn!(
                "the token file lost the pair in use (it holds an older pair, or none): writing it back"
            );
            if let Err(err) = self.save(&current.record()) {
                error!(error = %err, "the pair in use could not be written back to the token file");
            }
        }
        None
    }

    /// After a failed save: under the file's lock, the pair in use goes back into the file
    /// unless another process saved a newer one (then that is adopted). Whether the file and
    /// this process agree now.
    pub(super) async fn write_back_file(
        &self,
        current: &Arc<Generation>,
        observer: Observer<'_>,
    ) -> bool {
        let Some(store) = &self.store else {
            return true;
        };
        let Ok(_file_lock) = store
            .lock(FILE_LOCK_WAIT, || observer(Wait::TokenRefresh))
            .await
        else {
            return false;
        };
        self.reconcile_file(current).is_some()
            || self
                .load_file()
                .is_some_and(|stored| current.standing(&stored) == Standing::Same)
    }

    /// The token file's pair, if it can be read.
    fn load_file(&self) -> Option<StoredTokens> {
        match self.store.as_ref()?.load() {
            Ok(stored) => stored,
            Err(err) => {
                warn!(error = %err, "cannot read the token file to look for a newer pair");
                None
            }
        }
    }
}
