//! The Bitrix24 REST client. It knows the portal's wire conventions (JSON POST, envelope, error
//! bodies, redirects, body limits) and nothing of MCP. `Client::call` is the one way out to the
//! network; typed method wrappers sit on top of it.

pub mod endpoint;
pub mod error;
pub mod response;

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use tracing::{debug, warn};

pub use endpoint::{EndpointError, HttpPolicy, WebhookUrl};
pub use error::{ApiError, CallError};
pub use response::{Envelope, Timing};

/// Sent with every request, so portal admins can tell our traffic apart.
pub const USER_AGENT: &str = concat!("bitrix24-mcp/", env!("CARGO_PKG_VERSION"));

/// Knobs of the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// The whole exchange, body included. Cloud portals stop a request at 60 s themselves.
    pub request_timeout: Duration,
    /// Larger bodies are refused unread: no Bitrix24 answer of ours comes near it, a runaway
    /// proxy page might.
    pub max_body_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A client bound to one portal through one webhook.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    webhook: WebhookUrl,
    options: ClientOptions,
}

/// The client could not be built (the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("cannot initialise the HTTP client: {0}")]
pub struct BuildError(String);

impl Client {
    pub fn new(webhook: WebhookUrl, options: ClientOptions) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            // A 3xx means the portal moved; following it could turn the POST into a GET and
            // would hand the webhook code to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none());
        if webhook.is_loopback() {
            // An HTTP(S)_PROXY in the environment must not capture traffic to this machine.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| BuildError(e.without_url().to_string()))?;
        Ok(Self {
            http,
            webhook,
            options,
        })
    }

    /// The portal's host, safe to show.
    pub fn portal_host(&self) -> String {
        self.webhook.host()
    }

    /// Calls a REST method with JSON parameters and returns the parsed envelope.
    pub async fn call(&self, method: &str, params: &Value) -> Result<Envelope, CallError> {
        let started = Instant::now();
        let outcome = self.exchange(method, params).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Ok(_) => debug!(method, elapsed_ms, "bitrix24 call succeeded"),
            Err(err) => warn!(
                method,
                elapsed_ms,
                status = err.http_status(),
                error = %err,
                "bitrix24 call failed"
            ),
        }
        outcome
    }

    /// `im.chat.user.list`: the IDs of a chat's participants, in the portal's order.
    pub async fn chat_user_list(&self, chat_id: i64) -> Result<Vec<i64>, CallError> {
        let envelope = self
            .call("im.chat.user.list", &json!({ "CHAT_ID": chat_id }))
            .await?;
        id_list(&envelope.result).ok_or_else(|| CallError::UnexpectedResponse {
            status: 200,
            detail: format!(
                "\"result\" is not a list of user IDs: \"{}\"",
                response::excerpt(&envelope.result.to_string(), &self.webhook.secrets())
            ),
        })
    }

    async fn exchange(&self, method: &str, params: &Value) -> Result<Envelope, CallError> {
        let url = self
            .webhook
            .method_url(method)
            .map_err(|_| CallError::Network {
                detail: format!("{method:?} is not a valid method name"),
            })?;
        let body = serde_json::to_vec(params).map_err(|e| CallError::Network {
            detail: format!("cannot encode the parameters: {e}"),
        })?;
        debug!(method, portal = %self.webhook.host(), "calling bitrix24");
        let response = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(CallError::Redirect {
                status,
                location_host: location_host(&response),
            });
        }
        let body = self.read_capped(response, status).await?;
        response::parse(status, &body, &self.webhook.secrets())
    }

    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        status: u16,
    ) -> Result<Vec<u8>, CallError> {
        let cap = self.options.max_body_bytes;
        let too_large = || CallError::UnexpectedResponse {
            status,
            detail: format!("body larger than the {cap}-byte limit"),
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > cap as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Maps a reqwest failure to a URL-free, secret-free error.
    fn transport_error(&self, err: reqwest::Error) -> CallError {
        if err.is_timeout() {
            let after = if err.is_connect() {
                self.options.connect_timeout
            } else {
                self.options.request_timeout
            };
            return CallError::Timeout { after };
        }
        let host = self.webhook.host();
        let cause = root_cause(&err);
        let detail = if err.is_connect() {
            format!("cannot connect to {host}: {cause}")
        } else if err.is_body() || err.is_decode() {
            format!("the connection to {host} broke while reading the answer: {cause}")
        } else {
            format!("request to {host} failed: {cause}")
        };
        CallError::Network {
            detail: response::scrub(&detail, &self.webhook.secrets()),
        }
    }
}

/// The innermost error's text: the useful part ("Connection refused (os error 111)"), and free of
/// the URL that reqwest adds to its outer layer.
fn root_cause(err: &reqwest::Error) -> String {
    let mut innermost: Option<&dyn std::error::Error> = None;
    let mut next = std::error::Error::source(err);
    while let Some(cause) = next {
        innermost = Some(cause);
        next = cause.source();
    }
    innermost.map_or_else(|| "no further detail".to_owned(), ToString::to_string)
}

/// The host a redirect points to: enough to tell the user where the portal went, without the
/// path (which would carry the webhook code).
fn location_host(response: &reqwest::Response) -> Option<String> {
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    let target = response.url().join(location).ok()?;
    let host = target.host_str()?.to_owned();
    Some(match target.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
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
