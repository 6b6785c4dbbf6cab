//! The refresh grant itself: the request to the token server and the reading of its answer,
//! every field of which is checked and bounded.

use serde_json::Value;
use tracing::warn;

use super::super::clock::unix_now;
use super::super::error::{ApiError, CallError};
use super::super::request::{self, Exchange};
use super::super::response;
use super::super::secret::Secret;
use super::super::token_store::Tokens;
use super::super::untrusted;
use super::{MAX_TOKEN_LIFETIME_SECS, OAuthSession};

impl OAuthSession {
    /// The refresh request: a form-encoded POST, so no secret lands in a URL or a server log.
    pub(super) async fn request_tokens(
        &self,
        exchange: &Exchange<'_>,
        refresh_token: &Secret,
    ) -> Result<Tokens, CallError> {
        let form = token_form(
            "refresh_token",
            &self.client_id,
            &self.client_secret,
            refresh_token,
        )?;
        let secrets = self.secrets();
        let exchange = exchange.for_host(self.token_server.host(), &secrets);
        let builder = exchange
            .http
            .post(self.token_server.url().clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form);
        let (status, body) = request::send(&exchange, builder).await?;
        self.parse_tokens(status, &body, &secrets)
    }

    fn parse_tokens(
        &self,
        status: u16,
        body: &[u8],
        secrets: &[String],
    ) -> Result<Tokens, CallError> {
        let (value, tokens) = read_pair(status, body, secrets)?;
        if let Some(endpoint) = value.get("client_endpoint").and_then(Value::as_str) {
            self.check_endpoint(endpoint);
        }
        Ok(tokens)
    }

    /// Tokens go only to the portal the user configured: a `client_endpoint` elsewhere is noted
    /// and ignored.
    fn check_endpoint(&self, offered: &str) {
        let host = url::Url::parse(offered)
            .map(|u| untrusted::bounded(&super::super::endpoint::authority(&u), 260));
        match host {
            Ok(host) if host == self.portal.host() => {}
            Ok(host) => warn!(
                configured = %self.portal.host(),
                offered = %host,
                "the token server named another portal host as client_endpoint; keeping the configured one"
            ),
            Err(_) => warn!("the token server sent an unreadable client_endpoint; ignoring it"),
        }
    }
}

/// The token server's answer (to a refresh or a code exchange), and the pair in it: its error
/// body as an [`ApiError`], scrubbed and bounded; anything but a JSON object with both tokens as
/// an unexpected answer that quotes no secret.
/// The form a token-server request sends: the grant, the app's credentials, and the grant's own
/// secret: `code` for `authorization_code`, else `refresh_token`.
pub(super) fn token_form(
    grant_type: &str,
    client_id: &str,
    client_secret: &Secret,
    grant: &Secret,
) -> Result<String, CallError> {
    let field = if grant_type == "authorization_code" {
        "code"
    } else {
        "refresh_token"
    };
    serde_urlencoded::to_string([
        ("grant_type", grant_type),
        ("client_id", client_id),
        ("client_secret", client_secret.expose()),
        (field, grant.expose()),
    ])
    .map_err(|e| CallError::Network {
        detail: format!("cannot encode the {grant_type} request: {e}"),
    })
}

pub(super) fn read_pair(
    status: u16,
    body: &[u8],
    secrets: &[String],
) -> Result<(Value, Tokens), CallError> {
    let unexpected = |detail: String| CallError::UnexpectedResponse { status, detail };
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        unexpected(format!(
            "the token server's answer is not JSON: \"{}\"",
            untrusted::excerpt(&String::from_utf8_lossy(body), secrets)
        ))
    })?;
    if let Some(code) = value.get("error") {
        let code = code
            .as_str()
            .map_or_else(|| code.to_string(), str::to_owned);
        let description = value
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(CallError::Api(ApiError::new(
            untrusted::sanitize(&code, secrets, untrusted::MAX_CODE_CHARS),
            untrusted::sanitize(description, secrets, untrusted::MAX_DESCRIPTION_CHARS),
            status,
        )));
    }
    let text = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(access), Some(refresh)) = (text("access_token"), text("refresh_token")) else {
        return Err(unexpected(
            "the token server's answer lacks access_token or refresh_token".into(),
        ));
    };
    let number = |name: &str| value.get(name).and_then(response::lenient_integer);
    let expires_at = plausible_expiry(number("expires"), number("expires_in"), unix_now());
    let tokens = Tokens {
        access_token: Secret::new(access),
        refresh_token: Secret::new(refresh),
        expires_at,
    };
    Ok((value, tokens))
}

/// The access token's expiry from a refresh answer: `expires` (absolute) when it lies in the
/// plausible future, else `expires_in` (relative) when plausible, else unknown — the token is then
/// used until the portal says `expired_token`. A past, absurd or hostile value never turns into a
/// refresh on every call or an overflow.
fn plausible_expiry(expires: Option<i64>, expires_in: Option<i64>, now: i64) -> Option<i64> {
    let horizon = now.saturating_add(MAX_TOKEN_LIFETIME_SECS);
    expires
        .filter(|at| *at > now && *at <= horizon)
        .or_else(|| {
            expires_in
                .filter(|secs| (1..=MAX_TOKEN_LIFETIME_SECS).contains(secs))
                .map(|secs| now + secs)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plausible_expiry_is_believed() {
        let now = 1_800_000_000;
        assert_eq!(
            plausible_expiry(Some(now + 3600), None, now),
            Some(now + 3600)
        );
        assert_eq!(plausible_expiry(None, Some(3600), now), Some(now + 3600));
        assert_eq!(
            plausible_expiry(Some(-1), Some(3600), now),
            Some(now + 3600)
        );
        assert_eq!(plausible_expiry(Some(i64::MAX), None, now), None);
        assert_eq!(plausible_expiry(Some(now - 5), None, now), None);
        assert_eq!(plausible_expiry(None, Some(-1), now), None);
        assert_eq!(plausible_expiry(None, Some(i64::MAX), now), None);
        assert_eq!(plausible_expiry(None, None, now), None);
    }
}
