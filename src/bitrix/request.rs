//! One HTTP exchange with the portal or the token server: send, refuse redirects, read a capped
//! body, and turn reqwest's failures into URL-free, secret-free [`CallError`]s.

use reqwest::header::{CONTENT_LENGTH, LOCATION};

use super::ClientOptions;
use super::error::CallError;
use super::untrusted;

/// What one exchange needs: the HTTP client, its limits, the host for messages and the secrets to
/// scrub from anything quoted back.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    pub http: &'a reqwest::Client,
    pub options: &'a ClientOptions,
    pub host: String,
    pub secrets: Vec<String>,
}

impl<'a> Exchange<'a> {
    /// The same client and limits, talking to another host.
    pub fn for_host(&self, host: String, secrets: &[String]) -> Exchange<'a> {
        Exchange {
            http: self.http,
            options: self.options,
            host,
            secrets: secrets.to_vec(),
        }
    }
}

/// Sends a request and returns the status and the complete body.
pub async fn send(
    exchange: &Exchange<'_>,
    request: reqwest::RequestBuilder,
) -> Result<(u16, Vec<u8>), CallError> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(exchange, e))?;
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        return Err(CallError::Redirect {
            status,
            location_host: location_host(&response),
        });
    }
    let body = read_capped(exchange, response, status).await?;
    Ok((status, body))
}

async fn read_capped(
    exchange: &Exchange<'_>,
    mut response: reqwest::Response,
    status: u16,
) -> Result<Vec<u8>, CallError> {
    let cap = exchange.options.max_body_bytes;
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
    // One buffer of the declared size (already checked against the cap): no doubling, no copies.
    let mut body = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(exchange, e))?
    {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps a reqwest failure to a URL-free, secret-free error.
fn transport_error(exchange: &Exchange<'_>, err: reqwest::Error) -> CallError {
    let host = &exchange.host;
    let clean = |detail: String| {
        untrusted::sanitize(&detail, &exchange.secrets, untrusted::MAX_DESCRIPTION_CHARS)
    };
    if err.is_connect() {
        // Nothing reached the portal: the difference matters to writes.
        let detail = if err.is_timeout() {
            format!(
                "cannot connect to {host}: no connection within {} s",
                exchange.options.connect_timeout.as_secs_f64()
            )
        } else {
            format!("cannot connect to {host}: {}", root_cause(&err))
        };
        return CallError::Unreachable {
            detail: clean(detail),
        };
    }
    if err.is_timeout() {
        return CallError::Timeout {
            after: exchange.options.request_timeout,
        };
    }
    let cause = root_cause(&err);
    let detail = if err.is_body() || err.is_decode() {
        format!("the connection to {host} broke while reading the answer: {cause}")
    } else {
        format!("request to {host} failed: {cause}")
    };
    CallError::Network {
        detail: clean(detail),
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
    target.host()?;
    // A host name is at most 253 characters; a longer one is not worth quoting in full.
    Some(untrusted::bounded(
        &super::endpoint::authority(&target),
        260,
    ))
}
