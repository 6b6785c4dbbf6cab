//! The Bitrix24 REST client. It knows the portal's wire conventions, authentication, limits and
//! retry rules, and nothing of MCP. [`Client::call`] is the one way out to the portal:
//!
//! operating gate → rate bucket → authenticated request (refresh and repeat once on an expired
//! token) → envelope → retry policy → the answer or one [`CallError`].

pub mod auth;
pub mod bounded;
pub mod clock;
pub mod endpoint;
pub mod error;
mod flight;
pub mod limits;
mod link;
pub mod memory;
mod request;
pub mod response;
pub mod retry;
pub mod secret;
pub mod state;
pub mod token_store;
pub mod untrusted;

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use tracing::{debug, warn};

pub use auth::{Auth, OAuthSession, OAuthSettings};
pub use endpoint::{EndpointError, HttpPolicy, ServiceUrl, WebhookUrl};
pub use error::{ApiError, ApiErrorKind, CallError};
pub use limits::{OperatingGate, RateLimiter};
pub use link::PortalLink;
pub use response::{Envelope, Timing};
pub use retry::{Decision, RetryPolicy};
pub use secret::Secret;

use clock::{MAX_BLOCK, clamped_secs, unix_now_f64};
use request::Exchange;

/// At most this many refreshes for one attempt: an adopted pair may be expired, a pair refreshed
/// after it is not.
const MAX_REFRESHES_PER_ATTEMPT: u32 = 3;

/// Sent with every request, so portal admins can tell our traffic apart.
pub const USER_AGENT: &str = concat!("bitrix24-mcp/", env!("CARGO_PKG_VERSION"));

/// The client-side request-rate bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateOptions {
    /// Drain rate, requests per second (Bitrix24: 2, Enterprise 5).
    pub per_second: f64,
    /// Bucket size (Bitrix24: 50, Enterprise 250).
    pub burst: u32,
    /// Longest a call waits for a slot before failing with a rate-limit error.
    pub max_wait: Duration,
}

impl Default for RateOptions {
    fn default() -> Self {
        Self {
            per_second: 2.0,
            burst: 50,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// Knobs of the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// The whole exchange, body included. Cloud portals stop a request at 60 s themselves.
    pub request_timeout: Duration,
    /// Larger bodies are refused unread: no Bitrix24 answer of ours comes near it, a runaway
    /// proxy page might.
    pub max_body_bytes: usize,
    pub rate: RateOptions,
    pub retry: RetryPolicy,
    /// Shortest block of a method after `OPERATION_TIME_LIMIT`, whatever reset time is reported.
    pub min_operating_block: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 4 * 1024 * 1024,
            rate: RateOptions::default(),
            retry: RetryPolicy::default(),
            min_operating_block: limits::MIN_BLOCK,
        }
    }
}

/// Why a call is waiting, reported to an observer so a user can see why it is slow.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    /// Waiting for a slot in the request-rate bucket.
    RateLimit(Duration),
    /// Waiting for another process (on the token file) or instance (on the state store) to
    /// finish refreshing the tokens.
    TokenRefresh,
    /// Waiting before retry number `retry` after a failure.
    Backoff {
        retry: u32,
        delay: Duration,
        reason: String,
    },
}

/// Whether a call reads or changes the portal: it decides how failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

/// Receives [`Wait`] notices during a call.
pub type Observer<'a> = &'a (dyn Fn(Wait) + Send + Sync);

/// A client bound to one portal, acting as one identity (a webhook's user, the app, or one
/// signed-in user).
#[derive(Debug)]
pub struct Client {
    /// Connections, bucket, blocks and state-store share: one for every client of the portal.
    link: PortalLink,
    auth: Auth,
    /// Identical reads in flight, shared: this client's own, never another identity's.
    flights: flight::Flights,
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The TLS backend failed to initialise.
    #[error("cannot initialise the HTTP client: {0}")]
    Http(String),
    /// The settings cannot work together (the message says which and what to change).
    #[error("{0}")]
    Settings(String),
}

impl Client {
    pub fn new(auth: Auth, options: ClientOptions) -> Result<Self, BuildError> {
        Ok(PortalLink::new(auth.is_loopback(), options)?.client(auth))
    }

    /// Shares the request-rate bucket and the operating-time blocks through a state store, when
    /// one is given.
    pub fn sharing(mut self, shared: Option<state::Shared>) -> Self {
        self.link.shared = shared;
        self
    }

    /// A client of the same portal acting with `auth`: it shares this one's connections,
    /// request-rate bucket, operating-time blocks and state-store share; its tokens and its
    /// shared reads are its own.
    pub fn for_auth(&self, auth: Auth) -> Client {
        self.link.client(auth)
    }

    /// What this client shares with every other client of its portal.
    pub fn link(&self) -> &PortalLink {
        &self.link
    }

    /// Whether the OAuth grant behind this client has ended for good (the token server refused
    /// its refresh token or the app, or its pair was removed): the user must sign in again.
    pub fn grant_ended(&self) -> bool {
        match &self.auth {
            Auth::OAuth(session) => session.ended(),
            Auth::Webhook(_) => false,
        }
    }

    /// This portal's share of the state store, if one is configured.
    pub fn shared_state(&self) -> Option<&state::Shared> {
        self.link.shared.as_ref()
    }

    /// The shared state store, if any.
    pub fn state_store(&self) -> Option<&state::RedisStore> {
        self.link.shared.as_ref().map(|s| &*s.store)
    }

    /// The portal's host, safe to show.
    pub fn portal_host(&self) -> String {
        self.auth.portal_host()
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Calls a REST method with JSON parameters (an object) and returns the parsed envelope.
    pub async fn call(&self, method: &str, params: &Value) -> Result<Envelope, CallError> {
        self.call_observed(method, params, &|_| {}).await
    }

    /// [`Client::call`], telling `observer` whenever the call has to wait.
    pub async fn call_observed(
        &self,
        method: &str,
        params: &Value,
        observer: Observer<'_>,
    ) -> Result<Envelope, CallError> {
        self.attempts(method, params, observer, Kind::Read).await
    }

    /// Attempts a call until it succeeds or the retry policy for its kind gives up.
    async fn attempts(
        &self,
        method: &str,
        params: &Value,
        observer: Observer<'_>,
        kind: Kind,
    ) -> Result<Envelope, CallError> {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match self.attempt(method, params, observer).await {
                Ok(envelope) => {
                    self.link.gate.record(method, &envelope.time);
                    debug!(
                        method,
                        attempts,
                        elapsed_ms = elapsed_ms(started),
                        "bitrix24 call succeeded"
                    );
                    return Ok(envelope);
                }
                Err(err) => self.note_limits(method, err).await,
            };
            let policy = &self.link.options.retry;
            let decision = match kind {
                Kind::Read => policy.decide(&err, attempts, started.elapsed()),
                Kind::Write => policy.decide_write(&err, attempts, started.elapsed()),
            };
            match decision {
                Decision::Retry(delay) => {
                    warn!(method, attempts, write = kind == Kind::Write, delay_ms = delay.as_millis() as u64, error = %err, "bitrix24 call failed; retrying");
                    observer(Wait::Backoff {
                        retry: attempts,
                        delay,
                        reason: err.to_string(),
                    });
                    tokio::time::sleep(delay).await;
                }
                Decision::GiveUp => {
                    warn!(method, attempts, write = kind == Kind::Write, elapsed_ms = elapsed_ms(started), status = err.http_status(), error = %err, "bitrix24 call failed");
                    return Err(if attempts > 1 {
                        CallError::RetriesExhausted {
                            attempts,
                            last: Box::new(err),
                        }
                    } else {
                        err
                    });
                }
            }
        }
    }

    /// A call of a read-only method: concurrent calls with the same method and parameters share
    /// one request and its answer (only the first caller's `observer` hears about waits).
    pub async fn read(
        &self,
        method: &str,
        params: &Value,
        observer: Observer<'_>,
    ) -> Result<Envelope, CallError> {
        let key = format!("{method} {params}");
        self.flights
            .share(key, || self.call_observed(method, params, observer))
            .await
    }

    /// A call of a method that changes something. It is repeated only when the portal certainly
    /// did not execute it (a rate-limit refusal, a connection never made); any other failure is
    /// returned at once, and [`retry::write_fate`] tells whether the write may have happened.
    pub async fn write(
        &self,
        method: &str,
        params: &Value,
        observer: Observer<'_>,
    ) -> Result<Envelope, CallError> {
        self.attempts(method, params, observer, Kind::Write).await
    }

    /// `im.chat.user.list`: the IDs of a chat's participants, in the portal's order.
    pub async fn chat_user_list(
        &self,
        chat_id: i64,
        observer: Observer<'_>,
    ) -> Result<Vec<i64>, CallError> {
        Ok(self.chat_members(chat_id, usize::MAX, observer).await?.0)
    }

    /// [`Client::chat_user_list`], at most `most` IDs, and whether the portal listed more (or
    /// more than were read: see [`bounded`]).
    pub async fn chat_members(
        &self,
        chat_id: i64,
        most: usize,
        observer: Observer<'_>,
    ) -> Result<(Vec<i64>, bool), CallError> {
        let envelope = self
            .read(
                "im.chat.user.list",
                &json!({ "CHAT_ID": chat_id }),
                observer,
            )
            .await?;
        let mut ids = id_list(&envelope.result).ok_or_else(|| CallError::UnexpectedResponse {
            status: 200,
            detail: format!(
                "\"result\" is not a list of user IDs: \"{}\"",
                untrusted::excerpt(&envelope.result.to_string(), &self.auth.secrets())
            ),
        })?;
        let more = envelope.cut || ids.len() > most;
        ids.truncate(most);
        Ok((ids, more))
    }

    /// One try: the operating gate, a bucket slot, and the authenticated request — with one
    /// refresh and repeat when an OAuth token turns out to be expired.
    async fn attempt(
        &self,
        method: &str,
        params: &Value,
        observer: Observer<'_>,
    ) -> Result<Envelope, CallError> {
        if let Err(wait) = self.link.gate.check(method, unix_now_f64()) {
            return Err(CallError::OperationBlocked {
                method: method.to_owned(),
                retry_after: clamped_secs(wait, MAX_BLOCK),
            });
        }
        match &self.auth {
            Auth::Webhook(webhook) => {
                self.throttle(method, observer).await?;
                let url = webhook.method_url(method).map_err(|_| bad_method(method))?;
                self.post(&self.exchange(), url, params.clone()).await
            }
            Auth::OAuth(session) => {
                let mut generation = session.usable(&self.exchange(), observer).await?;
                // A rejected token is refreshed and the call repeated. A pair adopted from
                // another process or instance may be expired too (the portal expired it before
                // anyone refreshed), so its rejection refreshes once more; a pair the token server
                // just issued is not refreshed again (that would only rotate it in vain).
                let mut refreshes = 0;
                loop {
                    self.throttle(method, observer).await?;
                    let token = &generation.tokens.access_token;
                    match self.post_oauth(session, token, method, params).await {
                        Err(CallError::Api(api))
                            if api.kind() == ApiErrorKind::TokenExpired
                                && refreshes < MAX_REFRESHES_PER_ATTEMPT
                                && (refreshes == 0 || !generation.fresh) =>
                        {
                            debug!(method, code = %api.code, refreshes, "access token rejected; refreshing");
                            refreshes += 1;
                            generation = session
                                .refresh(&self.exchange(), generation.number, observer)
                                .await?;
                        }
                        other => return other,
                    }
                }
            }
        }
    }

    async fn post_oauth(
        &self,
        session: &OAuthSession,
        token: &Secret,
        method: &str,
        params: &Value,
    ) -> Result<Envelope, CallError> {
        let url = session
            .portal()
            .method_url(method)
            .map_err(|_| bad_method(method))?;
        let mut body = params.clone();
        if let Value::Object(map) = &mut body {
            map.insert("auth".into(), Value::String(token.expose().to_owned()));
        }
        // Built after any refresh, so the scrub list holds the tokens in use.
        self.post(&self.exchange(), url, body).await
    }

    async fn post(
        &self,
        exchange: &Exchange<'_>,
        url: url::Url,
        body: Value,
    ) -> Result<Envelope, CallError> {
        let builder = self
            .link
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body.to_string());
        let (status, body) = request::send(exchange, builder).await?;
        response::parse(status, &body, &exchange.secrets)
    }

    /// Waits for a slot in the bucket, or fails when the wait would be too long. A shared bucket
    /// also says whether another instance saw `method` blocked.
    async fn throttle(&self, method: &str, observer: Observer<'_>) -> Result<(), CallError> {
        let max_wait = self.link.options.rate.max_wait;
        let reserved = match &self.link.shared {
            None => self.link.limiter.reserve(max_wait),
            Some(shared) => {
                let (interval, tolerance) = self.link.limiter.shape();
                match shared
                    .store
                    .reserve(
                        shared.bucket(),
                        &shared.gate(method),
                        interval,
                        tolerance,
                        max_wait,
                    )
                    .await?
                {
                    state::Admission::Go(wait) => Ok(wait),
                    state::Admission::TooLong(wait) => Err(wait),
                    state::Admission::Blocked(retry_after) => {
                        return Err(CallError::OperationBlocked {
                            method: method.to_owned(),
                            retry_after,
                        });
                    }
                }
            }
        };
        match reserved {
            Ok(wait) if wait.is_zero() => Ok(()),
            Ok(wait) => {
                debug!(
                    wait_ms = wait.as_millis() as u64,
                    "waiting for the request-rate limit"
                );
                observer(Wait::RateLimit(wait));
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Err(retry_after) => Err(CallError::RateLimited { retry_after }),
        }
    }

    /// Lets the limits learn from a failure: a portal-side rate refusal fills our bucket, an
    /// operating-time refusal blocks the method (for every instance, when they share state).
    /// Adds the wait to the error.
    async fn note_limits(&self, method: &str, err: CallError) -> CallError {
        let CallError::Api(mut api) = err else {
            return err;
        };
        match api.kind() {
            ApiErrorKind::QueryLimit => {
                self.link.limiter.saturate();
                if let Some(shared) = &self.link.shared {
                    let (interval, tolerance) = self.link.limiter.shape();
                    if let Err(err) = shared
                        .store
                        .saturate(shared.bucket(), interval, tolerance)
                        .await
                    {
                        warn!(error = %err, "could not mark the shared bucket full");
                    }
                }
                api.retry_after = Some(clamped_secs(
                    1.0 / self.link.options.rate.per_second,
                    MAX_BLOCK,
                ));
            }
            ApiErrorKind::OperationLimit => {
                let wait = clamped_secs(self.link.gate.block(method, unix_now_f64()), MAX_BLOCK);
                if let Some(shared) = &self.link.shared
                    && let Err(err) = shared.store.block(&shared.gate(method), wait).await
                {
                    warn!(method, error = %err, "could not share the method's block with other instances");
                }
                api.retry_after = Some(wait);
            }
            ApiErrorKind::ServerFault | ApiErrorKind::TokenExpired | ApiErrorKind::Other => {}
        }
        CallError::Api(api)
    }

    fn exchange(&self) -> Exchange<'_> {
        Exchange {
            http: &self.link.http,
            options: &self.link.options,
            host: self.auth.portal_host(),
            secrets: self.auth.secrets(),
        }
    }
}

/// A method name `Url::join` refuses: nothing is sent. Tools check names before they get here.
fn bad_method(method: &str) -> CallError {
    CallError::Unreachable {
        detail: format!(
            "{:?} is not a valid method name",
            untrusted::bounded(method, 100)
        ),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// A list of IDs as integers or numeric strings; anything else is not a list of IDs.
fn id_list(result: &Value) -> Option<Vec<i64>> {
    result
        .as_array()?
        .iter()
        .map(response::lenient_integer)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_list_accepts_integers_and_numeric_strings_in_order() {
        assert_eq!(
            id_list(&json!([99, "1269", 1271])),
            Some(vec![99, 1269, 1271])
        );
        assert_eq!(id_list(&json!([])), Some(vec![]));
        assert_eq!(id_list(&json!({"0": 99})), None);
        assert_eq!(id_list(&json!([99, "x"])), None);
        assert_eq!(id_list(&json!(true)), None);
    }
}
