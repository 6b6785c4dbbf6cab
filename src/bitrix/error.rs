//! What can go wrong with one REST call, as data: Bitrix24's own `{error, error_description}`
//! body, and the transport, protocol and limit failures around it. Classification for the
//! assistant (category, hint) lives in the tool layer; this module only says what happened.

use std::time::Duration;

/// An error body from the portal (or the OAuth server): `{"error": CODE, "error_description":
/// TEXT}` with the HTTP status it came with. Match on `code`, never on `description` (wording
/// varies by portal version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub description: String,
    pub status: u16,
    /// When the portal may be asked again, if we know (rate and operating limits).
    pub retry_after: Option<Duration>,
}

/// What an error code means for the client's own machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// `QUERY_LIMIT_EXCEEDED`: the request-rate bucket overflowed.
    QueryLimit,
    /// `OPERATION_TIME_LIMIT`: the method is blocked until its window resets.
    OperationLimit,
    /// `INTERNAL_SERVER_ERROR`, `ERROR_UNEXPECTED_ANSWER`.
    ServerFault,
    /// `expired_token`, `invalid_token`: refresh, then repeat once.
    TokenExpired,
    Other,
}

impl ApiError {
    pub fn new(code: impl Into<String>, description: impl Into<String>, status: u16) -> Self {
        Self {
            code: code.into(),
            description: description.into(),
            status,
            retry_after: None,
        }
    }

    pub fn kind(&self) -> ApiErrorKind {
        match self.code.as_str() {
            "QUERY_LIMIT_EXCEEDED" => ApiErrorKind::QueryLimit,
            "OPERATION_TIME_LIMIT" => ApiErrorKind::OperationLimit,
            "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => ApiErrorKind::ServerFault,
            "expired_token" | "invalid_token" => ApiErrorKind::TokenExpired,
            _ => ApiErrorKind::Other,
        }
    }
}

/// Every way one call can fail. Messages carry no URL and no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The portal answered with an error body (any HTTP status).
    #[error("bitrix24 error {} (HTTP {}): {}", .0.code, .0.status, .0.description)]
    Api(ApiError),
    /// No connection could be made (refused, DNS, TLS handshake, connect timeout): nothing was
    /// sent, so even a write may be repeated.
    #[error("network error: {detail}")]
    Unreachable { detail: String },
    /// The connection broke after it was made: the request may have reached the portal.
    #[error("network error: {detail}")]
    Network { detail: String },
    /// No complete answer within the configured time.
    #[error("no complete answer within {}", humanize(*.after))]
    Timeout { after: Duration },
    /// The portal answered 3xx: its address changed. Redirects are not followed, since that
    /// would re-send the credentials to a host nobody configured.
    #[error("the portal answered HTTP {status} redirecting to {}", .location_host.as_deref().unwrap_or("an unnamed location"))]
    Redirect {
        status: u16,
        location_host: Option<String>,
    },
    /// A body that is not a Bitrix24 envelope: not JSON, empty, too large, or of the wrong shape.
    #[error("unexpected response (HTTP {status}): {detail}")]
    UnexpectedResponse { status: u16, detail: String },
    /// The OAuth access token could not be refreshed; the inner error says why.
    #[error("token refresh failed: {0}")]
    TokenRefresh(Box<CallError>),
    /// The method is blocked by the portal's operating-time limit; no request was sent.
    #[error("{method} is blocked by the operating-time limit for {} more", humanize(*.retry_after))]
    OperationBlocked {
        method: String,
        retry_after: Duration,
    },
    /// Waiting for a slot in the request-rate bucket would take longer than allowed.
    #[error("the request-rate limit would delay this call by {}", humanize(*.retry_after))]
    RateLimited { retry_after: Duration },
    /// The state shared with other processes or instances (the token file's lock, the state
    /// store) could not be used: busy too long, unreachable, or unreadable with this key. Nothing
    /// was sent.
    #[error("{detail}")]
    StateUnavailable { detail: String },
    /// The OAuth tokens in the state store do not open with this server's key (another key wrote
    /// them, or the record is damaged): retrying cannot help. Nothing was sent.
    #[error("{detail}")]
    StateUnreadable { detail: String },
    /// The state kept on disk is not what it must be (the token file's lock is a directory or a
    /// link): retrying cannot help until the user fixes what `detail` names. Nothing was sent.
    #[error("{detail}")]
    StateMisconfigured { detail: String },
    /// Retries ran out; `last` is the final failure.
    #[error("{last} (gave up after {attempts} attempts)")]
    RetriesExhausted { attempts: u32, last: Box<CallError> },
}

impl CallError {
    /// The HTTP status of the answer, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CallError::Api(api) => Some(api.status),
            CallError::Redirect { status, .. } | CallError::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            CallError::TokenRefresh(inner) | CallError::RetriesExhausted { last: inner, .. } => {
                inner.http_status()
            }
            CallError::Network { .. }
            | CallError::Unreachable { .. }
            | CallError::Timeout { .. }
            | CallError::OperationBlocked { .. }
            | CallError::RateLimited { .. }
            | CallError::StateUnavailable { .. }
            | CallError::StateUnreadable { .. }
            | CallError::StateMisconfigured { .. } => None,
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else if d < Duration::from_secs(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
