//! The MCP authorization server for `--auth oauth`: each person signs in with their own Bitrix24
//! account, and every call runs with that person's rights. To MCP clients this server is both the
//! protected resource and the authorization server (one origin); to Bitrix24 it is an OAuth
//! client. It knows no tool.
//!
//! The parts, in the order a sign-in passes through them:
//! - [`metadata`]: the protected-resource and authorization-server documents, the 401 challenge;
//! - [`clients`]: dynamic registration, client ID metadata documents, redirect-URI matching;
//! - [`consent`]: `/authorize`, the consent page, its CSRF check and browser binding;
//! - [`upstream`]: the Bitrix24 side: the callback, the code exchange, who the user is;
//! - [`grants`] and [`token`]: codes, access and refresh tokens (hashes only), rotation,
//!   revocation; `/token`;
//! - [`users`]: each grant's own Bitrix24 client;
//! - [`store`]: where all of it lives (memory, or the state store for several instances).

pub mod clients;
pub mod consent;
pub mod grants;
pub mod metadata;
pub mod page;
pub mod records;
pub mod settings;
// Stand-ins for H1's and H2's exports until they land (see the file); delete on merge.
pub mod store;
pub mod token;
pub mod upstream;
pub mod users;

use std::sync::Arc;

use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

pub use records::{Grant, PendingAuthorization};
pub use settings::{PublicUrl, SigninSettings};
pub use store::SigninStore;

/// The sign-in, shared by every request (cheap to clone).
#[derive(Debug, Clone)]
pub struct Signin(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    settings: SigninSettings,
    store: SigninStore,
    grants: grants::Grants,
    clients: clients::Clients,
    users: users::Users,
}

impl Signin {
    pub fn new(settings: SigninSettings, store: SigninStore, users: users::Users) -> Self {
        let grants = grants::Grants::new(store.clone(), settings.public.clone());
        let clients = clients::Clients::new(store.clone(), &settings);
        Self(Arc::new(Inner {
            settings,
            store,
            grants,
            clients,
            users,
        }))
    }

    pub fn settings(&self) -> &SigninSettings {
        &self.0.settings
    }

    pub fn store(&self) -> &SigninStore {
        &self.0.store
    }

    pub fn grants(&self) -> &grants::Grants {
        &self.0.grants
    }

    pub fn clients(&self) -> &clients::Clients {
        &self.0.clients
    }

    pub fn users(&self) -> &users::Users {
        &self.0.users
    }

    /// The signed-in user and the client that acts as them, for a request's bearer token
    /// (`None`: no `Authorization: Bearer` header). A grant whose Bitrix24 side has ended is
    /// revoked here and rejected, so the client's next request gets 401 and it signs in again.
    pub async fn caller(
        &self,
        bearer: Option<&str>,
    ) -> Result<(Grant, Arc<crate::bitrix::Client>), grants::Rejection> {
        let bearer = bearer.ok_or(grants::Rejection::Missing)?;
        let grant = self.grants().authenticate(bearer).await?;
        self.client_of(grant).await
    }

    /// The client of an authenticated grant ([`Signin::caller`] after the token check). A
    /// Bitrix24 side that ended (the token server refused the pair or the app for good, or the
    /// pair is gone) revokes the grant: rejected as an invalid token.
    pub async fn client_of(
        &self,
        grant: Grant,
    ) -> Result<(Grant, Arc<crate::bitrix::Client>), grants::Rejection> {
        match self.users().client_for(&grant).await {
            Ok(client) => Ok((grant, client)),
            Err(users::Unusable::Ended) => {
                info!(
                    user_id = grant.user_id,
                    "the user's bitrix24 authorization has ended; signing them out"
                );
                if let Err(err) = self.grants().revoke(&grant.grant_id).await {
                    warn!(error = %err, "cannot revoke the ended grant");
                }
                self.users().forget(&grant.grant_id);
                Err(grants::Rejection::Invalid)
            }
            Err(users::Unusable::Unavailable(err)) => Err(grants::Rejection::Unavailable(err)),
        }
    }

    /// Every sign-in endpoint: the well-known documents, `/register`, `/authorize`,
    /// `/oauth/callback`, `/token`, `/revoke`. None of them is behind the bearer check.
    pub fn routes(&self) -> Router {
        Router::new()
            .merge(metadata::routes())
            .merge(clients::routes())
            .merge(consent::routes())
            .merge(upstream::routes())
            .merge(token::routes())
            .with_state(self.clone())
    }
}

/// A fresh unguessable value (256 bits, base64url without padding) for a code, token, state or
/// CSRF check. `None` only if the system has no randomness to give.
pub fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 of `text`, in hex: how codes, tokens and CSRF values are stored and compared.
pub fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Unix seconds now.
pub fn now() -> i64 {
    crate::bitrix::clock::unix_now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_by_digest() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(digest("abc").len(), 64);
        assert_ne!(digest(&a), a);
    }
}
