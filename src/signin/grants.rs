//! Grants and what is issued for them: authorization codes, access and refresh tokens. Stored
//! only as SHA-256 hashes; refresh tokens rotate on every use; a reused code or refresh token
//! revokes its grant. (H1 fills this in.)

use super::settings::PublicUrl;
use super::store::SigninStore;

/// The grants and their codes and tokens.
#[derive(Debug)]
pub struct Grants {
    store: SigninStore,
    public: PublicUrl,
}

impl Grants {
    pub fn new(store: SigninStore, public: PublicUrl) -> Self {
        Self { store, public }
    }

    pub fn store(&self) -> &SigninStore {
        &self.store
    }

    pub fn public(&self) -> &PublicUrl {
        &self.public
    }
}
