//! The HTTP transport's settings: how `serve` listens, who may connect (a shared token or each
//! person's own sign-in, Origin and Host allowlists) and the session limits, validated into the
//! transport's options.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::signin::{AuthMode, SigninConfig};
use super::{ConfigError, parse_duration};
use crate::bitrix::Secret;
use crate::transport::connections::ConnectionLimits;
use crate::transport::http::HttpOptions;
use crate::transport::security::{DEFAULT_HOSTS, DEFAULT_ORIGINS, Guard, OriginPattern};

/// Flags and variables of the HTTP transport.
#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// How `serve` talks MCP: stdio, or HTTP (streamable HTTP at /mcp and legacy SSE at /sse).
    #[arg(long, env = "MCP_TRANSPORT", global = true, value_enum, default_value_t = TransportKind::Stdio,
          help_heading = "HTTP transport")]
    pub transport: TransportKind,

    /// Address to listen on with --transport http. Non-loopback addresses need --http-token.
    #[arg(
        long,
        env = "MCP_BIND",
        global = true,
        default_value = "127.0.0.1:8000",
        help_heading = "HTTP transport"
    )]
    pub bind: String,

    /// Bearer token every MCP request over HTTP must carry (Authorization: Bearer <token>).
    #[arg(
        long,
        env = "MCP_HTTP_TOKEN",
        global = true,
        hide_env_values = true,
        help_heading = "HTTP transport"
    , value_parser = super::secret)]
    pub http_token: Option<Secret>,

    /// Who may use the MCP endpoints: token (one shared bearer token, MCP_HTTP_TOKEN, or none on
    /// loopback) or oauth (each person signs in with their own Bitrix24 account) [default: token]
    #[arg(
        long,
        env = "MCP_HTTP_AUTH",
        global = true,
        value_enum,
        help_heading = "HTTP transport"
    )]
    pub auth: Option<AuthMode>,

    /// With --auth oauth: the server's public URL as clients reach it, e.g. https://mcp.example.com
    /// (https unless loopback) [default on a loopback bind: http://<bind address>]
    #[arg(
        long,
        env = "MCP_PUBLIC_URL",
        global = true,
        help_heading = "HTTP transport"
    )]
    pub public_url: Option<String>,

    /// With --auth oauth: fetch client metadata documents from private and loopback addresses
    /// too (private networks, tests); off by default, warned about at start.
    #[arg(long, env = "MCP_SIGNIN_ALLOW_PRIVATE_METADATA", global = true, help_heading = "HTTP transport",
          action = clap::ArgAction::SetTrue, value_parser = super::parse_bool)]
    pub signin_allow_private_metadata: bool,

    /// Streamable HTTP without sessions, with JSON answers: for deployments behind a load balancer.
    #[arg(long, env = "MCP_STATELESS", global = true, help_heading = "HTTP transport",
          action = clap::ArgAction::SetTrue, value_parser = super::parse_bool)]
    pub stateless: bool,

    /// Another allowed browser Origin, e.g. https://app.example.com or http://localhost:* (repeatable).
    #[arg(
        long = "allowed-origin",
        env = "MCP_ALLOWED_ORIGINS",
        global = true,
        value_delimiter = ',',
        help_heading = "HTTP transport"
    )]
    pub allowed_origins: Vec<String>,

    /// Another allowed Host header, e.g. the name a reverse proxy forwards (repeatable).
    #[arg(
        long = "allowed-host",
        env = "MCP_ALLOWED_HOSTS",
        global = true,
        value_delimiter = ',',
        help_heading = "HTTP transport"
    )]
    pub allowed_hosts: Vec<String>,

    /// Most sessions open at once (streamable HTTP and SSE together); more get 503.
    #[arg(long, env = "MCP_MAX_SESSIONS", global = true, default_value = "64",
          value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "HTTP transport")]
    pub max_sessions: u32,

    /// Sessions (streamable HTTP and SSE) idle this long are closed.
    #[arg(long, env = "MCP_SESSION_IDLE_TIMEOUT", global = true, default_value = "5m",
          value_parser = parse_duration, help_heading = "HTTP transport")]
    pub session_idle_timeout: Duration,

    /// Most connections open at once; more wait until one closes.
    #[arg(long, env = "MCP_MAX_CONNECTIONS", global = true, default_value = "256",
          value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "HTTP transport")]
    pub max_connections: u32,

    /// A connection must send each request's headers within this time, or it is closed.
    #[arg(long, env = "MCP_HEADER_READ_TIMEOUT", global = true, default_value = "10s",
          value_parser = parse_duration, help_heading = "HTTP transport")]
    pub header_read_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportKind {
    Stdio,
    Http,
}

/// How `serve` is reached.
// One value per process, built once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Transport {
    Stdio,
    Http {
        bind: SocketAddr,
        options: HttpOptions,
    },
}

impl HttpSettings {
    /// The transport, and the sign-in's settings when each person signs in.
    pub(super) fn transport(&self) -> Result<(Transport, Option<SigninConfig>), ConfigError> {
        let oauth = self.auth == Some(AuthMode::Oauth);
        if self.transport == TransportKind::Stdio {
            if oauth {
                return Err(ConfigError::Signin(
                    "people sign in through the HTTP server: add --transport http (MCP_TRANSPORT=http)"
                        .into(),
                ));
            }
            return Ok((Transport::Stdio, None));
        }
        let bind = parse_bind(&self.bind)?;
        let token =
            super::given("MCP_HTTP_TOKEN", super::exposed(&self.http_token))?.map(Secret::new);
        let signin = if oauth {
            if token.is_some() {
                return Err(ConfigError::Signin(
                    "each person signs in with their own account, so a shared MCP_HTTP_TOKEN \
                     (--http-token) has no place: unset it, or use --auth token"
                        .into(),
                ));
            }
            Some(self.signin(bind)?)
        } else {
            None
        };
        if token.is_none() && signin.is_none() && !bind.ip().is_loopback() {
            return Err(ConfigError::UnprotectedBind(bind));
        }
        // The public origin is where the consent page posts from and what clients name as Host.
        let public_origin = signin.as_ref().map(|s| s.public.issuer().to_owned());
        let origins = DEFAULT_ORIGINS
            .iter()
            .map(|o| (*o).to_owned())
            .chain(public_origin.clone())
            .chain(
                self.allowed_origins
                    .iter()
                    .filter(|o| !o.trim().is_empty())
                    .cloned(),
            )
            .map(|o| OriginPattern::parse(&o).map_err(ConfigError::Origin))
            .collect::<Result<Vec<_>, _>>()?;
        let mut hosts: Vec<String> = DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        if !bind.ip().is_unspecified() {
            hosts.push(match bind.ip() {
                IpAddr::V6(ip) => format!("[{ip}]"),
                IpAddr::V4(ip) => ip.to_string(),
            });
        }
        if let Some(host) = public_origin
            .as_deref()
            .and_then(|o| url::Url::parse(o).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
        {
            hosts.push(host);
        }
        hosts.extend(
            self.allowed_hosts
                .iter()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty()),
        );
        let transport = Transport::Http {
            bind,
            options: HttpOptions {
                stateless: self.stateless,
                guard: Guard {
                    token,
                    origins,
                    hosts,
                },
                max_sessions: self.max_sessions as usize,
                session_idle_timeout: self.session_idle_timeout,
                connections: ConnectionLimits {
                    max_connections: self.max_connections as usize,
                    header_read_timeout: self.header_read_timeout,
                },
                ..HttpOptions::default()
            },
        };
        Ok((transport, signin))
    }
}

/// `127.0.0.1:8000`, `[::1]:8000`, `0.0.0.0:8000`, or `localhost:8000`.
fn parse_bind(text: &str) -> Result<SocketAddr, ConfigError> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    match text.strip_prefix("localhost:").map(str::parse::<u16>) {
        Some(Ok(port)) => Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        _ => Err(ConfigError::Bind(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::settings;
    use super::*;

    #[test]
    fn http_binds_to_loopback_by_default_and_refuses_open_binds_without_a_token() {
        let config = settings(&["--transport", "http"]).validate().unwrap();
        let Transport::Http { bind, options } = config.transport else {
            panic!()
        };
        assert_eq!(bind, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(options.guard.token, None);
        let err = settings(&["--transport", "http", "--bind", "0.0.0.0:8000"])
            .validate()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("refusing to listen on 0.0.0.0:8000 without a token"),
            "{err}"
        );
        let open = settings(&[
            "--transport",
            "http",
            "--bind",
            "0.0.0.0:8000",
            "--http-token",
            "t0ken",
        ]);
        assert!(open.validate().is_ok());
        assert!(
            settings(&["--transport", "http", "--bind", "nowhere"])
                .validate()
                .is_err()
        );
    }

    #[test]
    fn extra_origins_and_hosts_extend_the_defaults() {
        let config = settings(&[
            "--transport",
            "http",
            "--allowed-origin",
            "https://app.example.com",
            "--allowed-host",
            "mcp.example.com",
            "--bind",
            "[::1]:9000",
        ])
        .validate()
        .unwrap();
        let Transport::Http { options, .. } = config.transport else {
            panic!()
        };
        assert_eq!(options.guard.origins.len(), 4);
        assert!(options.guard.hosts.contains(&"mcp.example.com".to_owned()));
        assert!(options.guard.hosts.contains(&"[::1]".to_owned()));
        let bad = settings(&["--transport", "http", "--allowed-origin", "app.example.com"]);
        assert!(matches!(bad.validate(), Err(ConfigError::Origin(_))));
    }
}
