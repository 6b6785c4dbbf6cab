//! Who may sign in through this server: clients registered dynamically (`/register`) or named by
//! a client ID metadata document, and which redirect URIs each may use. (H2 fills this in.)

use axum::Router;

use super::Signin;
use super::settings::SigninSettings;
use super::store::SigninStore;

/// Registered clients and fetched metadata documents.
#[derive(Debug)]
pub struct Clients {
    store: SigninStore,
}

impl Clients {
    pub fn new(store: SigninStore, _settings: &SigninSettings) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &SigninStore {
        &self.store
    }
}

pub fn routes() -> Router<Signin> {
    Router::new()
}
