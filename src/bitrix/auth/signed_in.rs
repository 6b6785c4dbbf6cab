//! A signed-in user's session (sign-in mode): built from the pair their sign-in obtained, or the
//! one the state store holds for their grant, never from configuration or a token file. It
//! refreshes like the app's own session (one refresh for any number of concurrent calls, under
//! the store's lock and fence across instances); its end — the token server refusing the pair or
//! the app for good — is what ends the user's sign-in.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::super::error::{ApiError, CallError};
use super::super::state::tokens::SharedTokens;
use super::super::token_store::StoredTokens;
use super::{Generation, OAuthSession, OAuthSettings};

/// The token server's answers that no refresh can get past: the refresh token is dead
/// (`invalid_grant`), the app is unknown or uninstalled (`invalid_client`), or its subscription
/// lapsed (`PAYMENT_REQUIRED`). A user's lack of rights (`INVALID_CREDENTIALS`,
/// `ACCESS_DENIED`, `insufficient_scope`) comes from the portal, not from here, and ends nothing.
const FINAL_CODES: [&str; 3] = ["invalid_grant", "invalid_client", "PAYMENT_REQUIRED"];

impl OAuthSession {
    /// The session of one signed-in user. `app` gives the portal, the token server and the
    /// app's credentials (its tokens and token file are not used); `stored` is the user's pair;
    /// `shared`, where it lives when instances share a state store.
    pub fn for_grant(
        app: &OAuthSettings,
        stored: StoredTokens,
        shared: Option<SharedTokens>,
    ) -> Self {
        Self {
            portal: app.portal.clone(),
            token_server: app.token_server.clone(),
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone(),
            store: None,
            shared,
            seed: stored.seed.clone(),
            current: RwLock::new(Arc::new(Generation {
                tokens: stored.tokens,
                number: 0,
                previous: None,
                fresh: false,
                seed: stored.seed,
                serial: stored.serial,
            })),
            refresh_lock: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            unsaved: AtomicBool::new(false),
            grant: true,
            ended: AtomicBool::new(false),
        }
    }

    /// Whether the pair can never be refreshed again: the user must sign in anew.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Whether the pair in use exists only here (its save failed): forgetting this session now
    /// would lose the only live refresh token.
    pub fn holds_unsaved_pair(&self) -> bool {
        self.unsaved.load(Ordering::Acquire)
    }

    /// Why an ended session refuses to call: the refusal that ended it.
    pub(super) fn ended_error(&self) -> CallError {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| self.revoked_elsewhere())
    }

    /// The grant's record vanished from the store: the grant was revoked (on any instance).
    pub(super) fn revoked_elsewhere(&self) -> CallError {
        self.ended.store(true, Ordering::Release);
        CallError::TokenRefresh(Box::new(CallError::Api(ApiError::new(
            "invalid_grant",
            "this user's sign-in was revoked; sign in again",
            400,
        ))))
    }
}

/// Whether a refresh failure ends the grant.
pub(super) fn is_final(err: &CallError) -> bool {
    matches!(err, CallError::Api(api) if FINAL_CODES.contains(&api.code.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_servers_final_refusals_end_a_grant() {
        let api = |code: &str| CallError::Api(ApiError::new(code, "", 400));
        for code in FINAL_CODES {
            assert!(is_final(&api(code)), "{code}");
        }
        for code in [
            "INVALID_CREDENTIALS",
            "ACCESS_DENIED",
            "insufficient_scope",
            "invalid_request",
            "expired_token",
        ] {
            assert!(!is_final(&api(code)), "{code}");
        }
        assert!(!is_final(&CallError::Network {
            detail: "reset".into()
        }));
    }
}
