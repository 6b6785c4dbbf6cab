//! Who may sign in through this server: clients registered dynamically (`/register`, RFC 7591)
//! or named by a client ID metadata document (an https `client_id` whose document we fetch), and
//! which redirect URIs each may use.
//!
//! - [`register`]: `POST /register`, its limits and rate limit, the stored registrations;
//! - [`cimd`]: metadata documents: what they must say, their cache, pinned copies;
//! - [`fetch`]: fetching one safely;
//! - [`limiter`]: how often registrations and sign-ins may be started;
//! - [`redirect`]: what a redirect URI may be, and how a requested one is matched.

pub mod cimd;
pub mod fetch;
pub mod limiter;
pub mod redirect;
pub mod register;

use std::net::IpAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::Signin;
use super::settings::SigninSettings;
use super::store::SigninStore;
use crate::bitrix::CallError;

/// How long a dynamic registration lives after its last use.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(30 * 86_400);

/// A client that may sign in, as the consent page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: String,
    /// Cleaned for display (no control or direction characters, capped).
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub known_by: KnownBy,
}

/// How the server knows a client, which is how far the consent page can vouch for its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KnownBy {
    /// It registered itself here: anyone can register any name ("unverified").
    Registered,
    /// Its metadata document is published at `https://<host>/...`: the host vouches for it.
    MetadataDocument { host: String },
}

/// What looking a client up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Known(ClientInfo),
    /// Never registered, or its registration expired.
    Unknown,
    /// A metadata-document `client_id` whose document could not be used; says why.
    Unusable(String),
}

/// Registered clients and fetched metadata documents.
#[derive(Debug)]
pub struct Clients {
    store: SigninStore,
    fetcher: fetch::Fetcher,
    /// Dynamic registrations.
    registrations: limiter::RateLimiter,
    /// Consent pages shown: each leaves a 10-minute record, so their rate bounds how many live
    /// (at most 10 × [`PAGES_PER_MINUTE`]).
    pages: limiter::RateLimiter,
}

/// Consent pages one source address may open a minute.
pub const PAGES_PER_SOURCE_PER_MINUTE: u32 = 30;
/// Consent pages the whole process shows a minute.
pub const PAGES_PER_MINUTE: u32 = 600;

impl Clients {
    pub fn new(store: SigninStore, settings: &SigninSettings) -> Self {
        Self {
            store,
            fetcher: fetch::Fetcher::new(settings.allow_private_metadata),
            registrations: limiter::RateLimiter::new(
                register::PER_SOURCE_PER_MINUTE,
                register::GLOBAL_PER_MINUTE,
                Duration::from_secs(60),
            ),
            pages: limiter::RateLimiter::new(
                PAGES_PER_SOURCE_PER_MINUTE,
                PAGES_PER_MINUTE,
                Duration::from_secs(60),
            ),
        }
    }

    pub fn store(&self) -> &SigninStore {
        &self.store
    }

    /// The metadata-document fetcher (to trust a private CA's certificate, or pin a host).
    pub fn fetcher(&self) -> &fetch::Fetcher {
        &self.fetcher
    }

    /// The client with this `client_id`, if it may sign in. `Err` only when the store cannot be
    /// reached; a metadata document that cannot be fetched (and has no pinned copy) is `None`.
    pub async fn find(&self, client_id: &str) -> Result<Option<ClientInfo>, CallError> {
        Ok(match self.lookup(client_id).await? {
            Lookup::Known(info) => Some(info),
            Lookup::Unknown | Lookup::Unusable(_) => None,
        })
    }

    /// Like [`Clients::find`], saying why a metadata document could not be used.
    pub async fn lookup(&self, client_id: &str) -> Result<Lookup, CallError> {
        if client_id.starts_with("https://") {
            return cimd::lookup(&self.store, &self.fetcher, client_id).await;
        }
        register::find(&self.store, client_id).await
    }

    /// Counts one consent page shown to `source`, or says how long until another may be.
    pub fn admit_page(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        self.pages.admit(source)
    }

    /// Counts one registration from `source`, or says how long until another may be made.
    pub fn admit_registration(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        self.registrations.admit(source)
    }

    /// Whether `uri` is one of `client`'s redirect URIs (loopback ones on any port).
    pub fn redirect_allowed(&self, client: &ClientInfo, uri: &str) -> bool {
        redirect::matches(&client.redirect_uris, uri)
    }
}

pub fn routes() -> Router<Signin> {
    Router::new().route(
        "/register",
        post(register::register).options(register::preflight),
    )
}
