//! Each grant's own Bitrix24 client: built on demand from the grant's sealed token pair, sharing
//! the portal's HTTP connections, request-rate bucket and operating-time blocks with every other
//! user, with its own token lineage and its own shared reads. (H3 fills this in.)

use std::sync::Arc;

use super::records::Grant;
use super::settings::SigninSettings;
use super::store::SigninStore;
use crate::bitrix::ClientOptions;
use crate::bitrix::state::Shared;
use crate::bitrix::{BuildError, CallError, Client};

/// The state-store keys that hold a grant's sealed Bitrix24 pair and its refresh lock: deleted
/// when the grant is revoked.
pub fn pair_keys(store: &SigninStore, grant_id: &str) -> [String; 2] {
    [
        store.key(&["pair", grant_id, "tokens"]),
        store.key(&["pair", grant_id, "refresh-lock"]),
    ]
}

/// The per-grant clients.
#[derive(Debug)]
pub struct Users {
    store: SigninStore,
}

impl Users {
    /// `options` are the portal client's; `shared` the portal's share of the state store (the
    /// bucket and blocks every user shares), when configured.
    pub fn new(
        settings: &SigninSettings,
        options: ClientOptions,
        shared: Option<Shared>,
        store: SigninStore,
    ) -> Result<Self, BuildError> {
        let _ = (settings, options, shared);
        Ok(Self { store })
    }

    /// The client that acts as `grant`'s user. (H3.)
    pub async fn client_for(&self, grant: &Grant) -> Result<Arc<Client>, CallError> {
        let _ = (grant, &self.store);
        Err(CallError::StateUnavailable {
            detail: "not yet".to_owned(),
        })
    }
}
