//! The guard in front of every MCP endpoint over HTTP: `Host` and `Origin` allowlists (against DNS
//! rebinding and cross-site requests from browsers) and the optional bearer token, compared in
//! constant time. `/healthz` does not pass through it.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::debug;
use url::Url;

use crate::bitrix::Secret;

/// An allowed origin: `scheme://host:port`, with `*` for any port; without a port, the scheme's
/// default. `*` alone allows every origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    Any,
    Exact {
        scheme: String,
        host: String,
        port: Option<u16>,
    },
}

impl OriginPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(Self::Any);
        }
        let (base, any_port) = match text.strip_suffix(":*") {
            Some(base) => (base, true),
            None => (text, false),
        };
        let url = Url::parse(base)
            .map_err(|e| format!("origin {text:?} is not scheme://host[:port] ({e})"))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("origin {text:?} has no host"))?
            .to_ascii_lowercase();
        if url.path() != "/" || url.query().is_some() {
            return Err(format!("origin {text:?} must not have a path"));
        }
        Ok(Self::Exact {
            scheme: url.scheme().to_owned(),
            host,
            port: if any_port {
                None
            } else {
                url.port_or_known_default()
            },
        })
    }

    fn matches(&self, origin: &Url) -> bool {
        match self {
            Self::Any => true,
            Self::Exact { scheme, host, port } => {
                origin.scheme() == scheme
                    && origin
                        .host_str()
                        .is_some_and(|h| h.eq_ignore_ascii_case(host))
                    && port.is_none_or(|p| origin.port_or_known_default() == Some(p))
            }
        }
    }
}

/// Loopback origins are always allowed: a local client's web view or inspector.
pub const DEFAULT_ORIGINS: [&str; 3] =
    ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

/// Loopback host names are always allowed.
pub const DEFAULT_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

/// What the guard lets through.
#[derive(Debug, Clone)]
pub struct Guard {
    pub token: Option<Secret>,
    pub origins: Vec<OriginPattern>,
    /// Host names, optionally with `:port`; `*` allows every host.
    pub hosts: Vec<String>,
}

impl Guard {
    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        // HTTP/1.1 requires Host; a request without one is not from a browser we must protect
        // against.
        let Some(host) = headers.get(header::HOST) else {
            return true;
        };
        let Some(host) = host.to_str().ok().map(str::to_ascii_lowercase) else {
            return false;
        };
        // A Host that is not `name[:port]` (e.g. `[::1].evil.com`) matches nothing.
        let Some(name) = host_name(&host) else {
            return false;
        };
        self.hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            allowed == "*" || allowed == host || allowed == name
        })
    }

    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Some(origin) = origin.to_str().ok().and_then(|o| Url::parse(o).ok()) else {
            return false;
        };
        self.origins.iter().any(|pattern| pattern.matches(&origin))
    }

    fn token_accepted(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or_default();
        // Digests of equal length are compared, so the time taken says nothing about the
        // expected token's length (comparing the raw bytes stops early on a length mismatch).
        let presented = Sha256::digest(presented.as_bytes());
        let expected = Sha256::digest(expected.expose().as_bytes());
        presented.as_slice().ct_eq(expected.as_slice()).into()
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme name is case-insensitive
/// (RFC 7235) and may be followed by several spaces.
pub(super) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// The name part of a well-formed `Host` header: `example.com:8000` → `example.com`, `[::1]:80`
/// → `[::1]`; `None` for anything else.
fn host_name(host: &str) -> Option<&str> {
    let valid_port = |port: &str| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
    };
    if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        return match rest.strip_prefix(':') {
            None if rest.is_empty() => Some(&host[..=end]),
            Some(port) if valid_port(port) => Some(&host[..=end]),
            _ => None,
        };
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    (name_ok && port.is_none_or(valid_port)).then_some(name)
}

/// The axum middleware.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !guard.host_allowed(headers) {
        debug!(path = %request.uri().path(), "refused: Host not allowed");
        return refuse(
            StatusCode::FORBIDDEN,
            "Host not allowed; add it with --allowed-host",
        );
    }
    if !guard.origin_allowed(headers) {
        debug!(path = %request.uri().path(), "refused: Origin not allowed");
        return refuse(
            StatusCode::FORBIDDEN,
            "Origin not allowed; add it with --allowed-origin",
        );
    }
    if !guard.token_accepted(headers) {
        debug!(path = %request.uri().path(), "refused: missing or wrong bearer token");
        let mut response = refuse(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="bitrix24-mcp""#),
        );
        return response;
    }
    next.run(request).await
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: Option<&str>) -> Guard {
        Guard {
            token: token.map(Secret::new),
            origins: DEFAULT_ORIGINS
                .iter()
                .chain(&["https://app.example.com"])
                .map(|o| OriginPattern::parse(o).unwrap())
                .collect(),
            hosts: DEFAULT_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .chain(["mcp.example.com".into()])
                .collect(),
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn origins_match_scheme_host_and_port() {
        let g = guard(None);
        for ok in [
            "http://localhost:5173",
            "http://127.0.0.1:1",
            "http://[::1]:8080",
            "https://app.example.com",
        ] {
            assert!(g.origin_allowed(&headers(&[(header::ORIGIN, ok)])), "{ok}");
        }
        for bad in [
            "https://localhost:5173",
            "http://evil.example",
            "https://app.example.com:8443",
            "http://app.example.com",
            "null",
        ] {
            assert!(
                !g.origin_allowed(&headers(&[(header::ORIGIN, bad)])),
                "{bad}"
            );
        }
        assert!(
            g.origin_allowed(&HeaderMap::new()),
            "no Origin: not a browser"
        );
    }

    #[test]
    fn hosts_match_by_name_or_name_and_port() {
        let g = guard(None);
        for ok in [
            "127.0.0.1:8000",
            "localhost",
            "[::1]:8000",
            "MCP.example.com",
        ] {
            assert!(g.host_allowed(&headers(&[(header::HOST, ok)])), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.1.evil.example:80",
            "10.0.0.5:8000",
            "[::1].evil.com",
            "[::1]x:80",
            "localhost:80:80",
            "localhost:http",
            "local host",
        ] {
            assert!(!g.host_allowed(&headers(&[(header::HOST, bad)])), "{bad}");
        }
    }

    #[test]
    fn the_token_must_match_exactly() {
        let g = guard(Some("s3cret"));
        for good in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert!(
                g.token_accepted(&headers(&[(header::AUTHORIZATION, good)])),
                "{good}"
            );
        }
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearers3cret",
            "s3cret",
            "Basic s3cret",
            "Bearer ",
        ] {
            assert!(
                !g.token_accepted(&headers(&[(header::AUTHORIZATION, bad)])),
                "{bad}"
            );
        }
        assert!(!g.token_accepted(&HeaderMap::new()));
        assert!(guard(None).token_accepted(&HeaderMap::new()));
    }

    #[test]
    fn origin_patterns_are_validated() {
        assert_eq!(OriginPattern::parse("*"), Ok(OriginPattern::Any));
        assert!(OriginPattern::parse("localhost:3000").is_err());
        assert!(OriginPattern::parse("https://a.example/path").is_err());
    }
}
