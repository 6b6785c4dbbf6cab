//! bitrix24-mcp: a Model Context Protocol server that gives AI coding assistants live Bitrix24
//! data.
//!
//! The map, in dependency order (each layer knows only those below it):
//!
//! - [`bitrix`] — the Bitrix24 REST client: webhook endpoint, requests, envelope parsing, errors.
//!   Knows nothing of MCP.
//! - [`tools`] — the MCP face: tool definitions, argument coercion, the table that turns Bitrix24
//!   errors into errors an assistant can act on. Knows nothing of transports.
//! - [`transport`] — wiring from stdio or HTTP (streamable HTTP, legacy SSE) to the tools, and
//!   the HTTP guard (Host, Origin, bearer token).
//! - [`cli`] — one-shot commands (`call`, `tools`) over the same tool path.
//! - [`config`] — flags and environment, validated into a [`config::Config`].
//! - [`signin`] — the MCP sign-in for `--auth oauth`: each person with their own Bitrix24 account.
//!   Knows no tool.
//! - [`demo`] — the sample portal on loopback, used by `--demo` and by the tests.
//! - [`logging`] — stderr logging.
//!
//! [`run`] ties them together for `main`; `team` does so for `serve --auth oauth`.

// Production code handles every failure; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bitrix;
pub mod cli;
pub mod config;
pub mod demo;
pub mod logging;
pub mod signin;
mod team;
pub mod tools;
pub mod transport;

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use tracing::{info, warn};

use crate::bitrix::state::{RedisStore, Shared};
use crate::bitrix::{Auth, Client, OAuthSession, WebhookUrl};
use crate::config::{Command, Config, Portal, Transport};
use crate::demo::{DemoPortal, PortalData};
use crate::tools::Bitrix24Tools;
use crate::transport::Signal;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the demo portal: {0}")]
    Demo(std::io::Error),
    #[error("the demo portal's address was refused: {0}")]
    DemoAddress(bitrix::EndpointError),
    #[error(transparent)]
    Client(#[from] bitrix::BuildError),
    #[error(transparent)]
    OAuth(#[from] bitrix::auth::SetupError),
    #[error(transparent)]
    Serve(#[from] transport::stdio::ServeError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("{0}")]
    State(String),
    #[error(
        "with --auth oauth each person signs in through the HTTP server, and `{0}` has nobody to \
         act as: run it with a webhook (BITRIX24_WEBHOOK_URL) or without --auth oauth"
    )]
    NobodyToActAs(&'static str),
}

/// Runs a command to completion and returns the process exit code. `shutdown` ends a server
/// cleanly (exit 0) and interrupts a one-shot command (exit 130 or 143, as the shell expects).
pub async fn run(
    command: Command,
    config: Config,
    shutdown: impl Future<Output = Signal> + Send + 'static,
) -> Result<i32, RunError> {
    if matches!(command, Command::Serve) {
        return execute(command, config, async {
            shutdown.await;
        })
        .await;
    }
    tokio::select! {
        result = execute(command, config, std::future::pending()) => result,
        signal = shutdown => Ok(signal.exit_code()),
    }
}

async fn execute(
    command: Command,
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<i32, RunError> {
    // The check reports the settings as configured, but probes with one attempt: retries would
    // hide what happens now.
    let configured = config.clone();
    if matches!(command, Command::Check { .. }) {
        config.client.retry.max_retries = 0;
    }
    if matches!(command, Command::Tools) {
        // The definitions need no portal: nothing is started, nothing is warned about.
        return Ok(print_tools(&config.tools));
    }
    if let Command::Grants { action } = &command {
        // Grants live in the state store: no portal is needed.
        return Ok(cli::grants::run(action, config.state.as_ref()).await);
    }
    if let Some(signin) = config.signin.clone() {
        match command {
            Command::Serve => return team::serve_signed_in(config, signin, shutdown).await,
            Command::Call { .. } => return Err(RunError::NobodyToActAs("call")),
            Command::Check { .. } => return Err(RunError::NobodyToActAs("check")),
            _ => {}
        }
    }
    // Kept alive for the whole run: dropping it stops the sample portal.
    let (client, _demo) = connect(&config, matches!(command, Command::Serve)).await?;
    let tools = Bitrix24Tools::new(client).serving(config.tools.clone());
    if matches!(command, Command::Serve) {
        announce_writes(config.tools.writes());
        if config.tools.writes().allowed && config.state.as_ref().is_some_and(|s| s.key.is_none()) {
            warn!(
                "a state store without BITRIX24_STATE_KEY: a confirmation asked on MCP 2026-07-28 \
                 can be answered only by the instance that asked; set BITRIX24_STATE_KEY (the \
                 same on every instance) so that any instance can take the answer"
            );
        }
    }
    match command {
        Command::Serve => {
            match config.transport {
                Transport::Stdio => transport::stdio::serve(tools, shutdown).await?,
                Transport::Http { bind, options } => {
                    let listener = tokio::net::TcpListener::bind(bind)
                        .await
                        .map_err(|source| RunError::Bind {
                            address: bind,
                            source,
                        })?;
                    transport::http::serve(tools, listener, options, shutdown)
                        .await
                        .map_err(RunError::Http)?;
                }
            }
            Ok(0)
        }
        Command::Call { tool, arguments } => {
            let outcome = cli::call(&tools, &tool, &arguments).await;
            Ok(cli::print(&outcome))
        }
        Command::Tools => Ok(print_tools(&config.tools)),
        Command::Grants { action } => Ok(cli::grants::run(&action, config.state.as_ref()).await),
        Command::Check { json } => {
            let report = cli::check::run(&configured, tools.client()).await;
            let text = if json {
                serde_json::to_string_pretty(&report).unwrap_or_default()
            } else {
                cli::check::render(&report)
            };
            if let Err(code) = cli::print_stdout(text.trim_end()) {
                return Ok(code);
            }
            Ok(if report.ready {
                0
            } else {
                cli::EXIT_TOOL_ERROR
            })
        }
    }
}

/// The start-up log says whether writes are possible, and warns when nothing but the client's
/// own approval prompt guards the destructive ones.
pub(crate) fn announce_writes(writes: &tools::registry::Writes) {
    if !writes.allowed {
        info!(
            writes = "off",
            "read-only: write tools are not served; --allow-writes turns them on"
        );
        return;
    }
    info!(
        writes = "on",
        "writes allowed: destructive ones need the user's typed confirmation"
    );
    match &writes.chats {
        Some(chats) => info!(write_chats = %chats, "writes only to these chats (--write-chats)"),
        None => info!("writes to any chat the acting user may change; --write-chats limits them"),
    }
    if writes.skip_confirmation {
        warn!(
            "--skip-write-confirmation: destructive writes are made without a typed confirmation; \
             the client's own approval prompt is the only guard"
        );
    }
}

fn print_tools(selection: &tools::Selection) -> i32 {
    cli::print(&cli::tools(selection))
}

/// Builds the portal client the configuration asks for, starting the demo portal if needed. A
/// server warns when no portal is configured; one-shot commands say so in their own output.
async fn connect(
    config: &Config,
    serving: bool,
) -> Result<(Option<Client>, Option<DemoPortal>), RunError> {
    match &config.portal {
        Portal::Webhook(webhook) => {
            info!(portal = %webhook.host(), user_id = webhook.user_id(), "using bitrix24 webhook");
            if webhook.is_plain_http() && !webhook.is_loopback() {
                warn!(portal = %webhook.host(), "plain http to a remote portal: the webhook code travels unencrypted");
            }
            Ok((Some(webhook_client(webhook.clone(), config)?), None))
        }
        Portal::OAuth(settings) => {
            info!(portal = %settings.portal.host(), "using an oauth application");
            if settings.portal.is_plain_http() && !settings.portal.is_loopback() {
                warn!(portal = %settings.portal.host(), "plain http to a remote portal: tokens travel unencrypted");
            }
            let shared = shared_state(config, &settings.portal.host(), &settings.client_id)?;
            let session = OAuthSession::open_with(settings.clone(), shared.clone())?;
            let client = Client::new(Auth::OAuth(Box::new(session)), config.client)?;
            Ok((Some(client.sharing(shared)), None))
        }
        Portal::Demo => {
            let portal = DemoPortal::start(PortalData::sample(random_code()))
                .await
                .map_err(RunError::Demo)?;
            let webhook = WebhookUrl::parse(&portal.webhook_url(), config.http_policy)
                .map_err(RunError::DemoAddress)?;
            info!(
                portal = %portal.addr(),
                "demo portal started: {}", PortalData::SAMPLE_SUMMARY
            );
            Ok((Some(webhook_client(webhook, config)?), Some(portal)))
        }
        Portal::Unconfigured => {
            if !serving {
                return Ok((None, None));
            }
            warn!(
                "no portal configured: set BITRIX24_WEBHOOK_URL, or start with --demo; tool calls will answer NOT_CONFIGURED"
            );
            Ok((None, None))
        }
    }
}

/// The state store's share for one portal and app, when a store is configured. Nothing is sent
/// yet: the store may be down at start, and calls then answer `STATE_UNAVAILABLE` until it is
/// back.
pub(crate) fn shared_state(
    config: &Config,
    portal: &str,
    app: &str,
) -> Result<Option<Shared>, RunError> {
    let Some(settings) = &config.state else {
        return Ok(None);
    };
    let store = RedisStore::new(settings).map_err(RunError::State)?;
    info!(store = %store.describe(), "sharing state with other instances through the state store");
    if !settings.url.is_loopback() && !settings.url.is_tls() {
        warn!(store = %settings.url, "the state store is reached without TLS (redis://); use rediss:// across a network");
    }
    Ok(Some(Shared::new(Arc::new(store), portal, app)))
}

/// A client for a webhook, sharing its bucket and operating-time blocks when a store is
/// configured (the budget belongs to the webhook's user; the code is never part of a key).
fn webhook_client(webhook: WebhookUrl, config: &Config) -> Result<Client, RunError> {
    let app = format!("webhook-{}", webhook.user_id());
    let shared = shared_state(config, &webhook.host(), &app)?;
    Ok(Client::new(webhook.into(), config.client)?.sharing(shared))
}

impl RunError {
    /// Setup problems the user must fix exit like configuration errors (2); others with 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::OAuth(_)
            | RunError::Bind { .. }
            | RunError::State(_)
            | RunError::NobodyToActAs(_) => 2,
            RunError::Demo(_)
            | RunError::DemoAddress(_)
            | RunError::Client(_)
            | RunError::Serve(_)
            | RunError::Http(_) => 1,
        }
    }
}

/// A fresh code for each demo run, so even the sample portal's credentials are not a constant.
pub(crate) fn random_code() -> String {
    let hasher = std::collections::hash_map::RandomState::new().build_hasher();
    format!("demo{:016x}", hasher.finish())
}
