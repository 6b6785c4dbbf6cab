//! What the sign-in is configured with: the server's public URL (issuer and protected resource
//! at once), and the Bitrix24 application that users sign in through.

use std::net::IpAddr;

use url::Url;

use crate::bitrix::{Secret, ServiceUrl};

/// The server's public origin, as MCP clients reach it: `https://host[:port]` (plain http only on
/// loopback). The authorization server's issuer is this origin; the protected resource is its
/// `/mcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lower case, no trailing slash.
    origin: String,
    https: bool,
}

impl PublicUrl {
    /// Parses a public URL: an origin (a trailing `/` is fine), https unless the host is
    /// loopback.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text.trim()).map_err(|e| {
            format!("MCP_PUBLIC_URL {text:?} is not a URL like https://mcp.example.com ({e})")
        })?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(format!(
                    "MCP_PUBLIC_URL must be https:// (plain http only on loopback), not {other}://"
                ));
            }
        };
        let Some(host) = url.host_str() else {
            return Err("MCP_PUBLIC_URL has no host".to_owned());
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("MCP_PUBLIC_URL must not carry a user name or password".to_owned());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "MCP_PUBLIC_URL must be an origin without a path, query or fragment, like \
                 https://mcp.example.com (the server answers at /mcp under it), not {text:?}"
            ));
        }
        if !https && !is_loopback_host(host) {
            return Err(format!(
                "MCP_PUBLIC_URL must be https:// for a host that is not loopback ({host}): \
                 sign-in codes and tokens would travel unencrypted; put the server behind TLS"
            ));
        }
        let origin = url.origin().ascii_serialization().to_ascii_lowercase();
        Ok(Self { origin, https })
    }

    /// The issuer: the origin, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.origin
    }

    /// The canonical protected resource, `<origin>/mcp`.
    pub fn resource(&self) -> String {
        format!("{}/mcp", self.origin)
    }

    /// An absolute URL on this server; `path` starts with `/`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// Whether a client's `resource` names this server's MCP endpoint: absent, `/mcp`, `/mcp/`,
    /// the legacy `/sse`, the origin alone (some clients send it), any case of host and scheme.
    /// The tokens are bound to the canonical `/mcp` either way: one server, one audience.
    pub fn accepts_resource(&self, given: Option<&str>) -> bool {
        let Some(given) = given.filter(|g| !g.is_empty()) else {
            return true;
        };
        let Ok(url) = Url::parse(given) else {
            return false;
        };
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return false;
        }
        let origin = url.origin().ascii_serialization().to_ascii_lowercase();
        origin == self.origin && matches!(url.path(), "/" | "/mcp" | "/mcp/" | "/sse" | "/sse/")
    }
}

/// Whether `host` (from a URL: IPv6 in brackets) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Everything the sign-in needs.
#[derive(Debug, Clone)]
pub struct SigninSettings {
    pub public: PublicUrl,
    /// The portal's REST root (`https://portal/rest/`); users authorize at its `/oauth/authorize/`.
    pub portal: ServiceUrl,
    /// The Bitrix24 OAuth server codes are exchanged at (and only there).
    pub token_server: ServiceUrl,
    pub client_id: String,
    pub client_secret: Secret,
    /// Client metadata documents may be fetched from private and loopback addresses (tests,
    /// private networks). Off by default; the server warns at start when on.
    pub allow_private_metadata: bool,
}

impl SigninSettings {
    /// The portal's authorize page: `https://portal/oauth/authorize/`.
    pub fn portal_authorize_url(&self) -> String {
        let url = self.portal.url();
        format!("{}/oauth/authorize/", url.origin().ascii_serialization())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_origins_over_https_or_loopback() {
        let url = PublicUrl::parse("https://MCP.example.com/").unwrap();
        assert_eq!(url.issuer(), "https://mcp.example.com");
        assert_eq!(url.resource(), "https://mcp.example.com/mcp");
        assert!(PublicUrl::parse("http://127.0.0.1:8080").is_ok());
        assert!(PublicUrl::parse("http://localhost:8080").is_ok());
        assert!(PublicUrl::parse("http://[::1]:8080").is_ok());
        assert!(PublicUrl::parse("http://mcp.example.com").is_err());
        assert!(PublicUrl::parse("https://mcp.example.com/base").is_err());
        assert!(PublicUrl::parse("ftp://mcp.example.com").is_err());
    }

    #[test]
    fn resources_naming_this_server_are_accepted() {
        let url = PublicUrl::parse("https://mcp.example.com").unwrap();
        for ok in [
            None,
            Some(""),
            Some("https://mcp.example.com/mcp"),
            Some("https://mcp.example.com/mcp/"),
            Some("https://MCP.EXAMPLE.COM/mcp"),
            Some("https://mcp.example.com/"),
            Some("https://mcp.example.com:443/mcp"),
            Some("https://mcp.example.com/sse"),
        ] {
            assert!(url.accepts_resource(ok), "{ok:?}");
        }
        for bad in [
            "https://other.example.com/mcp",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/other",
            "https://mcp.example.com:8443/mcp",
            "https://mcp.example.com/mcp?x=1",
            "mcp",
        ] {
            assert!(!url.accepts_resource(Some(bad)), "{bad}");
        }
    }
}
