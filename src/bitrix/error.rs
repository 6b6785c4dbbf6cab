//! What can go wrong with one REST call, as data: Bitrix24's own `{error, error_description}`
//! body, and the transport and protocol failures around it. Classification for the assistant
//! (category, hint) lives in the tool layer; this module only says what happened.

use std::time::Duration;

/// An error body from the portal: `{"error": CODE, "error_description": TEXT}` with the HTTP
/// status it came with. Match on `code`, never on `description` (wording varies by portal version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub description: String,
    pub status: u16,
}

/// Every way one call can fail. Messages carry no URL and no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The portal answered with an error body (any HTTP status).
    #[error("bitrix24 error {} (HTTP {}): {}", .0.code, .0.status, .0.description)]
    Api(ApiError),
    /// The connection could not be made or broke: refused, reset, DNS, TLS.
    #[error("network error: {detail}")]
    Network { detail: String },
    /// No complete answer within the configured time.
    #[error("no complete answer from the portal within {}", humanize(*.after))]
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
}

impl CallError {
    /// The HTTP status of the answer, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CallError::Api(api) => Some(api.status),
            CallError::Redirect { status, .. } | CallError::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            CallError::Network { .. } | CallError::Timeout { .. } => None,
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
