//! The sign-in's settings (`--auth oauth`): the mode, the server's public URL (given, or this
//! machine's address on a loopback bind) and the opt-in for client metadata documents on private
//! addresses. The Bitrix24 application people sign in through is configured with the portal.

use std::net::SocketAddr;

use clap::ValueEnum;

use super::ConfigError;
use super::http::HttpSettings;
use crate::signin::PublicUrl;

/// How MCP requests over HTTP are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// One bearer token shared by every client (`MCP_HTTP_TOKEN`), or none on loopback: every
    /// call acts as the one configured Bitrix24 identity.
    Token,
    /// Each person signs in with their own Bitrix24 account, and every call acts as them.
    Oauth,
}

/// The sign-in's settings from the HTTP transport's (`--auth oauth`); the Bitrix24 application
/// comes with the portal's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigninConfig {
    pub public: PublicUrl,
    /// The public URL was not given: it is this machine's listening address (loopback), known
    /// for sure only once bound (`--bind 127.0.0.1:0` picks a port then).
    pub public_from_bind: bool,
    pub allow_private_metadata: bool,
}

impl HttpSettings {
    /// `--auth oauth`: the public URL (given, or this machine's address on a loopback bind).
    pub(super) fn signin(&self, bind: SocketAddr) -> Result<SigninConfig, ConfigError> {
        let given = super::given("MCP_PUBLIC_URL", self.public_url.as_deref())?;
        let public = match given {
            Some(text) => PublicUrl::parse(text).map_err(ConfigError::PublicUrl)?,
            None if bind.ip().is_loopback() => {
                PublicUrl::parse(&format!("http://{bind}")).map_err(ConfigError::PublicUrl)?
            }
            None => {
                return Err(ConfigError::PublicUrl(format!(
                    "MCP_PUBLIC_URL (--public-url) is required with --auth oauth on {bind}: the \
                     https:// address clients and the browser reach this server at, e.g. \
                     https://mcp.example.com"
                )));
            }
        };
        Ok(SigninConfig {
            public,
            public_from_bind: given.is_none(),
            allow_private_metadata: self.signin_allow_private_metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::settings;
    use super::super::{ConfigError, Transport};
    use crate::transport::security::OriginPattern;

    const APP: [&str; 6] = [
        "--portal-url",
        "https://acme.bitrix24.com",
        "--client-id",
        "local.app",
        "--client-secret",
        "s3cret",
    ];

    fn oauth(extra: &[&str]) -> Result<crate::config::Config, ConfigError> {
        let mut args = vec!["--transport", "http", "--auth", "oauth"];
        args.extend_from_slice(&APP);
        args.extend_from_slice(extra);
        settings(&args).validate()
    }

    #[test]
    fn oauth_on_loopback_defaults_the_public_url_to_the_bind_address() {
        let config = oauth(&[]).unwrap();
        let signin = config.signin.unwrap();
        assert_eq!(signin.public.issuer(), "http://127.0.0.1:8000");
        assert!(!signin.allow_private_metadata);
        let crate::config::Portal::OAuth(app) = config.portal else {
            panic!("{:?}", config.portal)
        };
        assert_eq!(app.client_id, "local.app");
        assert_eq!(app.refresh_token, None);
        let v6 = oauth(&["--bind", "[::1]:9000"]).unwrap().signin.unwrap();
        assert_eq!(v6.public.issuer(), "http://[::1]:9000");
    }

    #[test]
    fn oauth_on_an_open_address_needs_an_https_public_url_and_no_shared_token() {
        let err = oauth(&["--bind", "0.0.0.0:8000"]).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "MCP_PUBLIC_URL (--public-url) is required with --auth oauth on 0.0.0.0:8000"
            ),
            "{err}"
        );
        let err = oauth(&[
            "--bind",
            "0.0.0.0:8000",
            "--public-url",
            "http://mcp.example.com",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("MCP_PUBLIC_URL must be https:// for a host that is not loopback"),
            "{err}"
        );
        let config = oauth(&[
            "--bind",
            "0.0.0.0:8000",
            "--public-url",
            "https://MCP.example.com/",
            "--signin-allow-private-metadata",
        ])
        .unwrap();
        let Transport::Http { options, .. } = config.transport else {
            panic!()
        };
        assert_eq!(options.guard.token, None);
        assert!(options.guard.hosts.contains(&"mcp.example.com".to_owned()));
        assert!(
            options
                .guard
                .origins
                .contains(&OriginPattern::parse("https://mcp.example.com").unwrap())
        );
        let signin = config.signin.unwrap();
        assert_eq!(signin.public.issuer(), "https://mcp.example.com");
        assert!(signin.allow_private_metadata);
        let err = oauth(&["--http-token", "h77p"]).unwrap_err().to_string();
        assert!(err.contains("a shared MCP_HTTP_TOKEN"), "{err}");
        assert!(!err.contains("h77p"), "{err}");
    }

    #[test]
    fn oauth_refuses_one_persons_identity_and_names_what_the_app_lacks() {
        let cases: [(&[&str], &str); 4] = [
            (
                &["--webhook-url", "https://acme.bitrix24.com/rest/1/c0de/"],
                "a webhook (--webhook-url) would act as one person for everybody",
            ),
            (
                &["--refresh-token", "r3fresh"],
                "--refresh-token holds one person's sign-in",
            ),
            (
                &["--access-token", "acc3ss"],
                "--access-token holds one person's sign-in",
            ),
            (
                &["--token-file", "/tmp/t.json"],
                "--token-file holds one person's sign-in",
            ),
        ];
        for (extra, expected) in cases {
            let err = oauth(extra).unwrap_err().to_string();
            assert!(
                err.starts_with("--auth oauth (MCP_HTTP_AUTH=oauth): "),
                "{err}"
            );
            assert!(err.contains(expected), "{extra:?}: {err}");
            for secret in ["c0de", "r3fresh", "acc3ss", "s3cret"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
        let err = settings(&["--transport", "http", "--auth", "oauth", "--client-id", "x"])
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--auth oauth (MCP_HTTP_AUTH=oauth): the Bitrix24 application people sign in through \
             is incomplete: BITRIX24_PORTAL_URL, BITRIX24_CLIENT_SECRET missing"
        );
        let err = settings(&["--auth", "oauth", "--demo"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("add --transport http"), "{err}");
        let err = oauth(&["--state-url", "redis://127.0.0.1:6379/0"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("BITRIX24_STATE_KEY / --state-key: "),
            "{err}"
        );
    }

    #[test]
    fn the_demo_signs_in_on_loopback_with_nothing_else_set() {
        let config = settings(&["--demo", "--transport", "http", "--auth", "oauth"])
            .validate()
            .unwrap();
        assert_eq!(config.portal, crate::config::Portal::Demo);
        assert_eq!(
            config.signin.unwrap().public.issuer(),
            "http://127.0.0.1:8000"
        );
    }

    #[test]
    fn token_mode_is_the_default_and_unchanged() {
        for args in [
            &["--transport", "http"][..],
            &["--transport", "http", "--auth", "token"][..],
        ] {
            let config = settings(args).validate().unwrap();
            assert_eq!(config.signin, None);
        }
        let err = settings(&[
            "--transport",
            "http",
            "--auth",
            "token",
            "--bind",
            "0.0.0.0:1",
        ])
        .validate()
        .unwrap_err();
        assert!(matches!(err, ConfigError::UnprotectedBind(_)), "{err}");
    }
}
