//! What every client of one portal shares, whoever it acts as: the HTTP connection pool, the
//! request-rate bucket, the operating-time blocks, and the portal's share of the state store.
//! With sign-in there is one client per signed-in user; the portal counts requests and blocks
//! methods per portal and application, not per user, so these are one for all of them. What a
//! client does not share is its authentication (each user's own token lineage) and its shared
//! reads (identical reads are merged within one user only, never across users).

use std::sync::Arc;

use super::auth::Auth;
use super::limits::{OperatingGate, RateLimiter};
use super::{BuildError, Client, ClientOptions, USER_AGENT, memory, state};

/// The parts of a client shared by every client of one portal (cheap to clone).
#[derive(Debug, Clone)]
pub struct PortalLink {
    pub(super) http: reqwest::Client,
    pub(super) options: ClientOptions,
    pub(super) limiter: Arc<RateLimiter>,
    pub(super) gate: Arc<OperatingGate>,
    /// The bucket and operating-time blocks shared with other instances, when configured.
    pub(super) shared: Option<state::Shared>,
}

impl PortalLink {
    /// A link to a portal; `loopback` when the portal is this machine (then no proxy from the
    /// environment may capture the traffic).
    pub fn new(loopback: bool, options: ClientOptions) -> Result<Self, BuildError> {
        memory::configure();
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            // A 3xx means the portal moved; following it could turn the POST into a GET and
            // would hand the credentials to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none());
        if loopback {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| BuildError::Http(e.without_url().to_string()))?;
        Ok(Self {
            http,
            limiter: Arc::new(RateLimiter::new(
                options.rate.per_second,
                options.rate.burst,
            )),
            gate: Arc::new(OperatingGate::new(options.min_operating_block)),
            shared: None,
            options,
        })
    }

    /// Shares the request-rate bucket and the operating-time blocks through a state store, when
    /// one is given.
    pub fn sharing(mut self, shared: Option<state::Shared>) -> Self {
        self.shared = shared;
        self
    }

    /// The portal's share of the state store, if one is configured.
    pub fn shared_state(&self) -> Option<&state::Shared> {
        self.shared.as_ref()
    }

    /// The HTTP client (its connection pool is shared by every clone).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// A client of this portal acting with `auth`, with reads shared only among its own calls.
    pub fn client(&self, auth: Auth) -> Client {
        Client {
            link: self.clone(),
            auth,
            flights: super::flight::Flights::default(),
        }
    }
}
