//! Portal addresses: the incoming webhook (whose code is a password, kept out of every message and
//! `Debug` output), the OAuth client endpoint and the token server, all under one https rule:
//! https everywhere, plain http only on loopback or when explicitly allowed.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// Why a webhook URL was refused. Messages show the expected shape and the offending part,
/// never the code itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("invalid {what}: {reason}; expected {expected}")]
    Malformed {
        what: &'static str,
        reason: String,
        expected: &'static str,
    },
    #[error(
        "refusing plain http:// for the non-loopback host {host:?}: Bitrix24 requires https; \
         use https://, or pass --allow-insecure-http for a self-hosted portal without TLS"
    )]
    InsecureScheme { host: String },
}

const SHAPE: &str = "https://<portal>/rest/<user_id>/<code>/";
const PORTAL_SHAPE: &str = "https://<portal>/rest/ (the app's client_endpoint)";
const TOKEN_SHAPE: &str = "https://oauth.bitrix.info/oauth/token/";

/// Whether plain `http://` is acceptable for a non-loopback host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpPolicy {
    /// https everywhere, http only on loopback (tests and the demo portal).
    #[default]
    HttpsOnly,
    /// http allowed anywhere: self-hosted portals without TLS, opted into explicitly.
    AllowInsecure,
}

/// A validated webhook: `https://{portal}/rest/{user_id}/{code}/`.
///
/// The full URL embeds the code, so it is only reachable through [`WebhookUrl::method_url`],
/// and `Debug` shows the portal and user ID alone.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    base: Url,
    user_id: u64,
    code: String,
}

impl WebhookUrl {
    /// Parses and validates a webhook URL as a user pastes it: with or without the trailing slash,
    /// surrounding whitespace ignored.
    pub fn parse(raw: &str, policy: HttpPolicy) -> Result<Self, EndpointError> {
        let malformed = |reason: &str| malformed("webhook URL", SHAPE, reason);
        let url = validate_base(raw, policy, "webhook URL", SHAPE)?;
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|seg| !seg.is_empty()).collect())
            .unwrap_or_default();
        let Some(rest_at) = segments.iter().rposition(|s| *s == "rest") else {
            return Err(malformed("its path has no /rest/ segment"));
        };
        let after = &segments[rest_at + 1..];
        let (user, code) = match after {
            [user, code] => (*user, *code),
            [] | [_] => {
                return Err(malformed(
                    "the path must continue after /rest/ with the user ID and the webhook code",
                ));
            }
            [_, _, rest @ ..] => {
                return Err(malformed(&format!(
                    "the path has {} segment{} after the code (such as a method name like \
                     profile.json); remove everything after the code",
                    rest.len(),
                    if rest.len() == 1 { "" } else { "s" }
                )));
            }
        };
        // Neither segment is quoted: when they are swapped, the "user ID" is the code.
        let user_id = match user.parse::<u64>() {
            Ok(id) if id > 0 => id,
            _ => {
                return Err(malformed(&format!(
                    "the first segment after /rest/ must be the user ID, a positive number, but \
                     it is {} (are the user ID and the code swapped?)",
                    describe_segment(user)
                )));
            }
        };
        if !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(malformed(
                "the webhook code may only contain letters, digits, '_' and '-'",
            ));
        }
        let prefix: String = segments[..rest_at]
            .iter()
            .map(|s| format!("/{s}"))
            .collect();
        let mut base = url.clone();
        base.set_path(&format!("{prefix}/rest/{user_id}/{code}/"));
        Ok(Self {
            base,
            user_id,
            code: code.to_owned(),
        })
    }

    /// The URL of a REST method under this webhook. It contains the code: pass it to the HTTP
    /// layer only, never to a log or message.
    pub fn method_url(&self, method: &str) -> Result<Url, url::ParseError> {
        self.base.join(method)
    }

    /// The portal's host (and port when not the default), safe to show.
    pub fn host(&self) -> String {
        authority(&self.base)
    }

    /// The ID of the employee the webhook acts as.
    pub fn user_id(&self) -> u64 {
        self.user_id
    }

    /// Whether the portal is on this machine, where plain http and no proxy are right.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.base)
    }

    /// Whether the connection is unencrypted.
    pub fn is_plain_http(&self) -> bool {
        self.base.scheme() == "http"
    }

    /// The webhook code, for scrubbing text that came back from the network.
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookUrl")
            .field("portal", &self.host())
            .field("user_id", &self.user_id)
            .field("code", &"<redacted>")
            .finish()
    }
}

/// A validated, non-secret service address: the portal's OAuth client endpoint or the token server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    url: Url,
}

impl ServiceUrl {
    /// The portal's REST root for OAuth calls: `https://x.bitrix24.com`, `.../rest` and `.../rest/`
    /// all mean `https://x.bitrix24.com/rest/`.
    pub fn portal(raw: &str, policy: HttpPolicy) -> Result<Self, EndpointError> {
        let mut url = validate_base(raw, policy, "portal URL", PORTAL_SHAPE)?;
        let path = url.path().trim_end_matches('/').to_owned();
        let root = if path.ends_with("/rest") {
            format!("{path}/")
        } else {
            format!("{path}/rest/")
        };
        url.set_path(&root);
        Ok(Self { url })
    }

    /// The OAuth token server, taken as given.
    pub fn token_server(raw: &str, policy: HttpPolicy) -> Result<Self, EndpointError> {
        let url = validate_base(raw, policy, "OAuth token URL", TOKEN_SHAPE)?;
        Ok(Self { url })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL of a REST method under this root.
    pub fn method_url(&self, method: &str) -> Result<Url, url::ParseError> {
        self.url.join(method)
    }

    /// Host and non-default port, as shown in messages.
    pub fn host(&self) -> String {
        authority(&self.url)
    }

    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.url)
    }

    pub fn is_plain_http(&self) -> bool {
        self.url.scheme() == "http"
    }
}

fn malformed(what: &'static str, expected: &'static str, reason: &str) -> EndpointError {
    EndpointError::Malformed {
        what,
        reason: reason.to_owned(),
        expected,
    }
}

/// The checks every address shares: absolute, a host, https (or loopback/allowed http), no user
/// info, no query or fragment. Error texts never echo the input, which may hold a secret.
fn validate_base(
    raw: &str,
    policy: HttpPolicy,
    what: &'static str,
    expected: &'static str,
) -> Result<Url, EndpointError> {
    let malformed = |reason: &str| malformed(what, expected, reason);
    // The url crate's own error text never echoes the input, so it is safe to show.
    let url = Url::parse(raw.trim())
        .map_err(|e| malformed(&format!("it is not an absolute URL ({e})")))?;
    let host = match url.host() {
        Some(host) => host_text(&host),
        None => return Err(malformed("it has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if policy == HttpPolicy::AllowInsecure || is_loopback(&url) => {}
        "http" => return Err(EndpointError::InsecureScheme { host }),
        other => return Err(malformed(&format!("the scheme is {other:?}, not https"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(malformed(
            "it carries a user name or password before the host",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(malformed("it has a query string or fragment"));
    }
    Ok(url)
}

/// Host and port (when not the scheme's default) of a URL.
pub fn authority(url: &Url) -> String {
    let host = url.host().map(|h| host_text(&h)).unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn host_text(host: &Host<&str>) -> String {
    match host {
        Host::Domain(d) => (*d).to_owned(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => format!("[{ip}]"),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// What a segment looks like, without quoting it: it may be the webhook code.
fn describe_segment(segment: &str) -> String {
    let chars = segment.chars().count();
    let digits = segment.chars().filter(char::is_ascii_digit).count();
    match (digits, chars) {
        (_, 0) => "empty".to_owned(),
        (d, n) if d == n => "zero".to_owned(),
        (0, 1) => "1 character without digits".to_owned(),
        (0, n) => format!("{n} characters without digits"),
        (_, n) => format!("{n} characters of letters and digits"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "x9k2m4q7w1e5r8t3";

    fn parse(raw: &str) -> Result<WebhookUrl, EndpointError> {
        WebhookUrl::parse(raw, HttpPolicy::HttpsOnly)
    }

    #[test]
    fn accepts_the_documented_shape_with_and_without_trailing_slash() {
        for raw in [
            format!("https://acme.bitrix24.com/rest/1/{CODE}/"),
            format!("https://acme.bitrix24.com/rest/1/{CODE}"),
            format!("  https://acme.bitrix24.com/rest/1/{CODE}/\n"),
        ] {
            let hook = parse(&raw).unwrap();
            assert_eq!(hook.host(), "acme.bitrix24.com");
            assert_eq!(hook.user_id(), 1);
            assert_eq!(
                hook.method_url("im.chat.user.list").unwrap().as_str(),
                format!("https://acme.bitrix24.com/rest/1/{CODE}/im.chat.user.list")
            );
        }
    }

    #[test]
    fn keeps_a_path_prefix_and_port_of_a_self_hosted_portal() {
        let hook = parse(&format!(
            "https://intranet.example:8443/portal/rest/7/{CODE}"
        ))
        .unwrap();
        assert_eq!(hook.host(), "intranet.example:8443");
        assert_eq!(
            hook.method_url("scope").unwrap().as_str(),
            format!("https://intranet.example:8443/portal/rest/7/{CODE}/scope")
        );
    }

    #[test]
    fn allows_plain_http_on_loopback_only() {
        for host in ["127.0.0.1:8080", "127.3.4.5", "localhost:9", "[::1]:80"] {
            let hook = parse(&format!("http://{host}/rest/1/{CODE}/")).unwrap();
            assert!(hook.is_loopback() && hook.is_plain_http(), "{host}");
        }
        let err = parse(&format!("http://acme.example/rest/1/{CODE}/")).unwrap_err();
        assert_eq!(
            err,
            EndpointError::InsecureScheme {
                host: "acme.example".into()
            }
        );
        let allowed = WebhookUrl::parse(
            &format!("http://acme.example/rest/1/{CODE}/"),
            HttpPolicy::AllowInsecure,
        );
        assert!(allowed.unwrap().is_plain_http());
    }

    #[test]
    fn rejects_malformed_urls_without_echoing_the_code() {
        let cases = [
            (
                format!("acme.bitrix24.com/rest/1/{CODE}/"),
                "not an absolute URL",
            ),
            (
                format!("ftp://acme.bitrix24.com/rest/1/{CODE}/"),
                "the scheme is \"ftp\"",
            ),
            (
                format!("https://acme.bitrix24.com/api/1/{CODE}/"),
                "no /rest/ segment",
            ),
            (
                "https://acme.bitrix24.com/rest/1/".to_owned(),
                "must continue after /rest/",
            ),
            (
                format!("https://acme.bitrix24.com/rest/abc/{CODE}/"),
                "user ID, a positive number, but it is 3 characters without digits",
            ),
            (
                format!("https://acme.bitrix24.com/rest/0/{CODE}/"),
                "it is zero",
            ),
            (
                format!("https://acme.bitrix24.com/rest/{CODE}/1/"),
                "it is 16 characters of letters and digits (are the user ID and the code swapped?)",
            ),
            (
                format!("https://acme.bitrix24.com/rest/1/{CODE}/profile.json"),
                "1 segment after the code",
            ),
            (
                format!("https://acme.bitrix24.com/rest/1/x/{CODE}"),
                "1 segment after the code",
            ),
            (
                format!("https://acme.bitrix24.com/rest/1/{CODE}/?x=1"),
                "query string",
            ),
            (
                format!("https://u:p@acme.bitrix24.com/rest/1/{CODE}/"),
                "user name or password",
            ),
            (
                "https://acme.bitrix24.com/rest/1/co%20de/".to_owned(),
                "may only contain",
            ),
        ];
        for (raw, expected) in cases {
            let message = parse(&raw).unwrap_err().to_string();
            assert!(message.contains(expected), "{raw}: {message}");
            assert!(message.contains(SHAPE), "{raw}: {message}");
            assert!(!message.contains(CODE), "{raw} leaked the code: {message}");
        }
    }

    #[test]
    fn portal_urls_are_normalised_to_the_rest_root() {
        for raw in [
            "https://acme.bitrix24.com",
            "https://acme.bitrix24.com/",
            "https://acme.bitrix24.com/rest",
            "https://acme.bitrix24.com/rest/",
        ] {
            let portal = ServiceUrl::portal(raw, HttpPolicy::HttpsOnly).unwrap();
            assert_eq!(
                portal.url().as_str(),
                "https://acme.bitrix24.com/rest/",
                "{raw}"
            );
            assert_eq!(
                portal.method_url("im.chat.user.list").unwrap().as_str(),
                "https://acme.bitrix24.com/rest/im.chat.user.list"
            );
        }
        let err = ServiceUrl::portal("http://acme.bitrix24.com/rest/", HttpPolicy::HttpsOnly);
        assert!(matches!(err, Err(EndpointError::InsecureScheme { .. })));
        let err = ServiceUrl::token_server("https://t?x=1", HttpPolicy::HttpsOnly).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid OAuth token URL"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_redacts_the_code() {
        let hook = parse(&format!("https://acme.bitrix24.com/rest/1/{CODE}/")).unwrap();
        let debug = format!("{hook:?}");
        assert!(!debug.contains(CODE), "{debug}");
        assert!(debug.contains("acme.bitrix24.com"), "{debug}");
    }
}
