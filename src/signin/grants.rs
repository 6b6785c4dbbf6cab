//! Grants and what is issued for them: authorization codes, access and refresh tokens. Stored
//! only as SHA-256 hashes; refresh tokens rotate on every use; a reused code or refresh token
//! revokes its grant. (H1 fills this in.)

use super::records::Grant;
use super::settings::PublicUrl;
use super::store::SigninStore;
use crate::bitrix::CallError;

/// Why a bearer token was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Unknown, expired, revoked, or for another resource.
    Invalid,
    /// The store could not be asked (answered 503, not 401: the token may be fine).
    Unavailable(CallError),
}

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

    /// The grant an access token (the text after `Bearer `) belongs to. (H1: hash, cache, store.)
    pub async fn authenticate(&self, bearer: &str) -> Result<Grant, Rejection> {
        let _ = bearer;
        Err(Rejection::Invalid)
    }
}
