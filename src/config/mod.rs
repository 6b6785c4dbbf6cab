//! The command line and environment (clap), and their validation into a [`Config`]: the flags
//! in `flags`, their validation in `validate` (portal and authentication), the HTTP transport's
//! settings in [`http`] (the sign-in's in `signin`), the shared state store's in `state`, the
//! reading of single values in `values`. Here: the validated results. Secrets stay wrapped from
//! the moment they are read; no message made here contains one.

mod flags;
mod http;
mod signin;
mod state;
mod validate;
mod values;

use std::net::SocketAddr;

use clap::ValueEnum;

use crate::bitrix::state::StateSettings;
use crate::bitrix::{ClientOptions, EndpointError, HttpPolicy, OAuthSettings, WebhookUrl};
use crate::tools::registry::{Selection, UnknownToolName};
pub use flags::{Cli, Command, GrantsAction, Settings, Typed};
pub use http::{HttpSettings, Transport, TransportKind};
pub use signin::{AuthMode, SigninConfig};
pub use validate::DEFAULT_TOKEN_URL;
pub use values::{explain_parse_error, parse_bool, parse_duration};
use values::{exposed, given, secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Portal {
    /// A real portal through an incoming webhook.
    Webhook(WebhookUrl),
    /// A real portal through an installed OAuth application.
    OAuth(OAuthSettings),
    /// The built-in sample portal, started on loopback at run time.
    Demo,
    /// Nothing configured: tools are listed, calls answer `NOT_CONFIGURED`.
    Unconfigured,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub portal: Portal,
    pub client: ClientOptions,
    pub http_policy: HttpPolicy,
    pub log_format: LogFormat,
    pub transport: Transport,
    /// The tools served.
    pub tools: Selection,
    /// The store shared with other instances, if any.
    pub state: Option<StateSettings>,
    /// Each person signs in (`--auth oauth`): the public URL and its options. The Bitrix24
    /// application is then `portal` ([`Portal::OAuth`] without a token of its own, or the demo).
    pub signin: Option<SigninConfig>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("BITRIX24_WEBHOOK_URL / --webhook-url: {0}")]
    Webhook(#[from] EndpointError),
    #[error("{0}: {1}")]
    Address(&'static str, EndpointError),
    /// The setting, the placeholder as it may be shown, and why it was not expanded.
    #[error("{0} holds an unexpanded placeholder {1:?}: {2}")]
    Placeholder(&'static str, String, String),
    #[error(
        "both a webhook (BITRIX24_WEBHOOK_URL) and OAuth settings ({0}) are set: configure one \
         way to authenticate"
    )]
    Conflict(String),
    #[error("incomplete OAuth settings: {0} missing")]
    IncompleteOAuth(String),
    #[error("MCP_BIND / --bind: {0:?} is not an address like 127.0.0.1:8000")]
    Bind(String),
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could use your \
         Bitrix24 credentials; set MCP_HTTP_TOKEN (or --http-token), or bind to 127.0.0.1"
    )]
    UnprotectedBind(SocketAddr),
    #[error("MCP_ALLOWED_ORIGINS / --allowed-origin: {0}")]
    Origin(String),
    #[error(transparent)]
    Tools(#[from] UnknownToolName),
    #[error("{0}: {1}")]
    State(&'static str, String),
    #[error("--auth oauth (MCP_HTTP_AUTH=oauth): {0}")]
    Signin(String),
    #[error("{0}")]
    PublicUrl(String),
    #[error("{0}")]
    Writes(String),
}

/// What the tests of every part of the configuration share.
#[cfg(test)]
mod tests {
    use super::{Cli, Settings};

    /// Parses a command line the way `main` does (also used by the `http` module's tests).
    pub(super) fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["bitrix24-mcp"];
        argv.extend_from_slice(args);
        Cli::read_from(argv).unwrap().settings
    }

    /// A complete OAuth application with a refresh token.
    pub(super) const OAUTH: [&str; 8] = [
        "--portal-url",
        "https://acme.bitrix24.com",
        "--client-id",
        "app.123",
        "--client-secret",
        "s3cret",
        "--refresh-token",
        "r3fresh",
    ];
}
