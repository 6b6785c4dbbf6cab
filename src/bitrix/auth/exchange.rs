//! A sign-in's authorization-code grant: Bitrix24's code (it lives 30 seconds) exchanged once, by
//! a form POST, at the configured token server only, for the user's first pair. Nothing the
//! callback says about servers is consulted.

use std::time::Duration;

use serde_json::Value;

use super::super::error::CallError;
use super::super::link::PortalLink;
use super::super::request::{self, Exchange};
use super::super::secret::Secret;
use super::super::token_store::Tokens;
use super::super::untrusted;
use super::OAuthSettings;
use super::grant::{read_pair, token_form};

/// The token server's answer to a code is a few hundred bytes; this is plenty.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the token server answered to a code.
#[derive(Debug)]
pub struct CodeGrant {
    pub tokens: Tokens,
    /// The portal's stable ID, bounded and printable, when given.
    pub member_id: Option<String>,
    /// The REST root the token server named, bounded and printable, when given (never used to
    /// send anything: calls go to the configured portal).
    pub client_endpoint: Option<String>,
}

/// Exchanges `code` at `app.token_server` (and nowhere else), waiting at most `timeout`.
pub async fn exchange_code(
    link: &PortalLink,
    app: &OAuthSettings,
    code: &Secret,
    timeout: Duration,
) -> Result<CodeGrant, CallError> {
    let form = token_form(
        "authorization_code",
        &app.client_id,
        &app.client_secret,
        code,
    )?;
    let mut options = *link.options();
    options.request_timeout = options.request_timeout.min(timeout);
    options.connect_timeout = options.connect_timeout.min(timeout);
    options.max_body_bytes = options.max_body_bytes.min(MAX_ANSWER_BYTES);
    let secrets: Vec<String> = [app.client_secret.expose(), code.expose()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let exchange = Exchange {
        http: link.http(),
        options: &options,
        host: app.token_server.host(),
        secrets: secrets.clone(),
    };
    let builder = link
        .http()
        .post(app.token_server.url().clone())
        .timeout(options.request_timeout)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(form);
    let (status, body) = request::send(&exchange, builder).await?;
    let (value, tokens) = read_pair(status, &body, &secrets)?;
    let text = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| untrusted::sanitize(s, &secrets, 260))
    };
    Ok(CodeGrant {
        member_id: text("member_id"),
        client_endpoint: text("client_endpoint"),
        tokens,
    })
}
