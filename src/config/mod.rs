//! The command line and environment (clap), and their validation into a [`Config`]: portal and
//! authentication here, the HTTP transport's settings in [`http`] (the sign-in's in `signin`),
//! the shared state store's in `state`, the reading of single values in `values`. Secrets stay
//! wrapped from the moment they are read; no message made here contains one.

mod http;
mod signin;
mod state;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bitrix::state::StateSettings;
use crate::bitrix::{
    ClientOptions, EndpointError, HttpPolicy, OAuthSettings, RateOptions, RetryPolicy, Secret,
    ServiceUrl, WebhookUrl,
};
use crate::tools::registry::{Selection, UnknownToolName, Writes};
pub use http::{HttpSettings, Transport, TransportKind};
pub use signin::{AuthMode, SigninConfig};
pub use values::{explain_parse_error, parse_bool, parse_duration};
use values::{exposed, given, nonempty, parse_rate, secret};

/// Where Bitrix24's OAuth server lives (east-region apps use https://oauth.bitrix24.tech/).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth.bitrix.info/oauth/token/";

/// An MCP server that gives AI coding assistants live Bitrix24 data.
#[derive(Debug, Parser)]
#[command(name = "bitrix24-mcp", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// Parses the command line (and the variables behind it) as `main` does, noting which
    /// settings were typed as flags so that messages name what the user wrote.
    pub fn read_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        cli.settings.typed = Typed::from_matches(&matches);
        Ok(cli)
    }
}

/// The settings given as flags on the command line rather than through their variables. A
/// message about a setting names the one the user wrote: `--webhook-url` or
/// `BITRIX24_WEBHOOK_URL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Typed(Vec<String>);

impl Typed {
    fn from_matches(matches: &clap::ArgMatches) -> Self {
        // Global flags may be typed after the subcommand; clap keeps them in its matches too.
        let all = std::iter::successors(Some(matches), |m| m.subcommand().map(|(_, sub)| sub));
        let mut typed = Vec::new();
        for level in all {
            for id in level.ids() {
                let on_line = matches!(
                    level.value_source(id.as_str()),
                    Some(clap::parser::ValueSource::CommandLine)
                );
                if on_line && !typed.iter().any(|t| t == id.as_str()) {
                    typed.push(id.as_str().to_owned());
                }
            }
        }
        Self(typed)
    }

    /// `flag` when the setting `id` was typed, else `variable`.
    fn name(&self, id: &str, flag: &'static str, variable: &'static str) -> &'static str {
        if self.0.iter().any(|t| t == id) {
            flag
        } else {
            variable
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio (the default).
    Serve,
    /// Run one tool call and print its result as JSON (exit 1 when the tool reports an error).
    Call {
        /// The tool's name, e.g. im_chat_user_list.
        tool: String,
        /// The arguments as a JSON object, e.g. '{"CHAT_ID":2935}'.
        #[arg(default_value = "{}")]
        arguments: String,
    },
    /// Print the tool definitions as the server lists them.
    Tools,
    /// Check the configuration and the portal: reachable, authenticated, scope im granted.
    Check {
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show who is signed in (`--auth oauth`), or sign users out; grants live in the state store.
    Grants {
        #[command(subcommand)]
        action: GrantsAction,
    },
}

/// What `grants` does.
#[derive(Debug, Clone, Subcommand)]
pub enum GrantsAction {
    /// List who is signed in: user, client, since, last use (no secret).
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a Bitrix24 user out of every client, or everyone with --all.
    Revoke {
        /// The Bitrix24 user ID, as `grants list` shows it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        user_id: Option<u64>,
        /// Sign everyone out.
        #[arg(long)]
        all: bool,
    },
}

/// Settings shared by every command. Each flag also reads an environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Incoming webhook URL: https://<portal>/rest/<user_id>/<code>/
    #[arg(
        long,
        env = "BITRIX24_WEBHOOK_URL",
        global = true,
        hide_env_values = true
    , value_parser = secret)]
    pub webhook_url: Option<Secret>,

    /// OAuth app: the portal's REST address (client_endpoint), e.g. https://x.bitrix24.com/rest/
    #[arg(long, env = "BITRIX24_PORTAL_URL", global = true)]
    pub portal_url: Option<String>,

    /// OAuth app: the current access token (optional; refreshed when missing or expired).
    #[arg(
        long,
        env = "BITRIX24_ACCESS_TOKEN",
        global = true,
        hide_env_values = true
    , value_parser = secret)]
    pub access_token: Option<Secret>,

    /// OAuth app: the refresh token to start from.
    #[arg(
        long,
        env = "BITRIX24_REFRESH_TOKEN",
        global = true,
        hide_env_values = true
    , value_parser = secret)]
    pub refresh_token: Option<Secret>,

    /// OAuth app: client ID (application code).
    #[arg(long, env = "BITRIX24_CLIENT_ID", global = true)]
    pub client_id: Option<String>,

    /// OAuth app: client secret (application key).
    #[arg(
        long,
        env = "BITRIX24_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    , value_parser = secret)]
    pub client_secret: Option<Secret>,

    /// OAuth token server [default: https://oauth.bitrix.info/oauth/token/]
    #[arg(long, env = "BITRIX24_OAUTH_TOKEN_URL", global = true)]
    pub oauth_token_url: Option<String>,

    /// OAuth app: file that keeps the rotated tokens across restarts (written atomically, 0600).
    #[arg(long, env = "BITRIX24_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,

    /// Client-side request rate per second (Bitrix24: 2; Enterprise: 5).
    #[arg(long, env = "BITRIX24_RATE_LIMIT", global = true, default_value = "2",
          value_parser = parse_rate)]
    pub rate_limit: f64,

    /// Client-side burst (Bitrix24: 50; Enterprise: 250).
    #[arg(long, env = "BITRIX24_RATE_BURST", global = true, default_value = "50",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_burst: u32,

    /// Longest a call waits for the rate limit before failing with RATE_LIMITED.
    #[arg(long, env = "BITRIX24_MAX_RATE_WAIT", global = true, default_value = "30s",
          value_parser = parse_duration)]
    pub max_rate_wait: Duration,

    /// Retries for rate-limit refusals and network failures (server errors: at most 1).
    #[arg(long, env = "BITRIX24_MAX_RETRIES", global = true, default_value = "3",
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub max_retries: u32,

    /// No retry starts after this long since the call began.
    #[arg(long, env = "BITRIX24_RETRY_DEADLINE", global = true, default_value = "60s",
          value_parser = parse_duration)]
    pub retry_deadline: Duration,

    /// Allow plain http:// to a non-loopback portal (self-hosted portals without TLS).
    #[arg(long, env = "BITRIX24_ALLOW_INSECURE_HTTP", global = true,
          action = clap::ArgAction::SetTrue, value_parser = parse_bool)]
    pub allow_insecure_http: bool,

    /// Time allowed to connect to the portal, e.g. 10s or 500ms.
    #[arg(long, env = "BITRIX24_CONNECT_TIMEOUT", global = true, default_value = "10s",
          value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time allowed for a whole request, answer included, e.g. 30s.
    #[arg(long, env = "BITRIX24_REQUEST_TIMEOUT", global = true, default_value = "30s",
          value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Log format on stderr.
    #[arg(long, env = "BITRIX24_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Start the built-in sample portal on loopback and use it instead of a real one.
    #[arg(long, global = true)]
    pub demo: bool,

    /// Serve only these tools (comma-separated names), e.g. im_search_chat_list,im_dialog_users_list.
    #[arg(long, env = "BITRIX24_TOOLS", global = true, value_delimiter = ',')]
    pub tools: Vec<String>,

    /// Do not serve these tools (comma-separated names).
    #[arg(
        long,
        env = "BITRIX24_EXCLUDE_TOOLS",
        global = true,
        value_delimiter = ','
    )]
    pub exclude_tools: Vec<String>,

    /// Serve the write tools and allow writes through bitrix24_call (off by default).
    #[arg(long, env = "BITRIX24_ALLOW_WRITES", global = true,
          action = clap::ArgAction::SetTrue, value_parser = parse_bool)]
    pub allow_writes: bool,

    /// Make destructive writes without the user's typed confirmation: the client's own approval
    /// prompt is then the only guard.
    #[arg(long, env = "BITRIX24_SKIP_WRITE_CONFIRMATION", global = true,
          action = clap::ArgAction::SetTrue, value_parser = parse_bool)]
    pub skip_write_confirmation: bool,

    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub state: state::StateArgs,

    /// Which of the above were typed as flags (filled in by [`Cli::read_from`]).
    #[arg(skip)]
    pub typed: Typed,
}

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
}

impl Settings {
    /// Checks everything that can be checked before the first call.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let http_policy = if self.allow_insecure_http {
            HttpPolicy::AllowInsecure
        } else {
            HttpPolicy::HttpsOnly
        };
        let webhook_name = self
            .typed
            .name("webhook_url", "--webhook-url", "BITRIX24_WEBHOOK_URL");
        let webhook = given(webhook_name, exposed(&self.webhook_url))?;
        let oauth_named: Vec<&str> = self
            .oauth_values()
            .iter()
            .filter(|(_, value)| value.is_some_and(|v| !v.trim().is_empty()))
            .map(|(name, _)| *name)
            .collect();
        let (transport, signin) = self.http.transport()?;
        let portal = match (self.demo, webhook, oauth_named.is_empty()) {
            _ if signin.is_some() => self.per_user_portal(webhook, http_policy)?,
            (true, _, _) => Portal::Demo,
            (false, Some(_), false) => return Err(ConfigError::Conflict(oauth_named.join(", "))),
            (false, Some(raw), true) => Portal::Webhook(
                WebhookUrl::parse(raw, http_policy)
                    .map_err(|e| ConfigError::Address(webhook_name, e))?,
            ),
            (false, None, false) => Portal::OAuth(self.oauth(http_policy, false)?),
            (false, None, true) => Portal::Unconfigured,
        };
        // Tokens live in the store with an application's own token, and users' with sign-in.
        let state = self
            .state
            .settings(matches!(portal, Portal::OAuth(_)) || signin.is_some())?;
        Ok(Config {
            state,
            signin,
            portal,
            client: ClientOptions {
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                rate: RateOptions {
                    per_second: self.rate_limit,
                    burst: self.rate_burst,
                    max_wait: self.max_rate_wait,
                },
                retry: RetryPolicy {
                    max_retries: self.max_retries,
                    deadline: self.retry_deadline,
                    ..RetryPolicy::default()
                },
                ..ClientOptions::default()
            },
            http_policy,
            log_format: self.log_format,
            transport,
            tools: Selection::choose(&nonempty(&self.tools), &nonempty(&self.exclude_tools))?
                .with_writes(Writes {
                    allowed: self.allow_writes,
                    skip_confirmation: self.skip_write_confirmation,
                }),
        })
    }

    fn oauth_values(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("BITRIX24_PORTAL_URL", self.portal_url.as_deref()),
            ("BITRIX24_ACCESS_TOKEN", exposed(&self.access_token)),
            ("BITRIX24_REFRESH_TOKEN", exposed(&self.refresh_token)),
            ("BITRIX24_CLIENT_ID", self.client_id.as_deref()),
            ("BITRIX24_CLIENT_SECRET", exposed(&self.client_secret)),
            ("BITRIX24_OAUTH_TOKEN_URL", self.oauth_token_url.as_deref()),
            (
                "BITRIX24_TOKEN_FILE",
                self.token_file.as_deref().and_then(|p| p.to_str()),
            ),
        ]
    }

    /// The portal with `--auth oauth`: the Bitrix24 application everyone signs in through (or
    /// the demo's), and no identity of its own — each person brings theirs.
    fn per_user_portal(
        &self,
        webhook: Option<&str>,
        policy: HttpPolicy,
    ) -> Result<Portal, ConfigError> {
        if self.demo {
            return Ok(Portal::Demo);
        }
        let name = |id, flag, variable| self.typed.name(id, flag, variable);
        if webhook.is_some() {
            return Err(ConfigError::Signin(format!(
                "each person signs in with their own Bitrix24 account, and a webhook ({}) would \
                 act as one person for everybody: unset it, or use --auth token",
                name("webhook_url", "--webhook-url", "BITRIX24_WEBHOOK_URL")
            )));
        }
        let one_person = [
            (
                exposed(&self.refresh_token),
                name("refresh_token", "--refresh-token", "BITRIX24_REFRESH_TOKEN"),
            ),
            (
                exposed(&self.access_token),
                name("access_token", "--access-token", "BITRIX24_ACCESS_TOKEN"),
            ),
            (
                self.token_file.as_deref().and_then(|p| p.to_str()),
                name("token_file", "--token-file", "BITRIX24_TOKEN_FILE"),
            ),
        ];
        if let Some((_, setting)) = one_person
            .iter()
            .find(|(value, _)| value.is_some_and(|v| !v.trim().is_empty()))
        {
            return Err(ConfigError::Signin(format!(
                "{setting} holds one person's sign-in, and each person brings their own: unset \
                 it, or use --auth token"
            )));
        }
        Ok(Portal::OAuth(self.oauth(policy, true)?))
    }

    /// The OAuth application's settings; `per_user`: without a token of its own (`--auth oauth`).
    fn oauth(&self, policy: HttpPolicy, per_user: bool) -> Result<OAuthSettings, ConfigError> {
        let name = |id, flag, variable| self.typed.name(id, flag, variable);
        let portal_name = name("portal_url", "--portal-url", "BITRIX24_PORTAL_URL");
        let token_url_name = name(
            "oauth_token_url",
            "--oauth-token-url",
            "BITRIX24_OAUTH_TOKEN_URL",
        );
        let portal = given(portal_name, self.portal_url.as_deref())?;
        let client_id = given(
            name("client_id", "--client-id", "BITRIX24_CLIENT_ID"),
            self.client_id.as_deref(),
        )?;
        let client_secret = given(
            name("client_secret", "--client-secret", "BITRIX24_CLIENT_SECRET"),
            exposed(&self.client_secret),
        )?;
        let refresh_token = given(
            name("refresh_token", "--refresh-token", "BITRIX24_REFRESH_TOKEN"),
            exposed(&self.refresh_token),
        )?;
        let access_token = given(
            name("access_token", "--access-token", "BITRIX24_ACCESS_TOKEN"),
            exposed(&self.access_token),
        )?;
        let token_url = given(token_url_name, self.oauth_token_url.as_deref())?;
        let token_file = self
            .token_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        let mut missing = Vec::new();
        if portal.is_none() {
            missing.push("BITRIX24_PORTAL_URL");
        }
        if client_id.is_none() {
            missing.push("BITRIX24_CLIENT_ID");
        }
        if client_secret.is_none() {
            missing.push("BITRIX24_CLIENT_SECRET");
        }
        if refresh_token.is_none() && token_file.is_none() && !per_user {
            missing.push("BITRIX24_REFRESH_TOKEN (or a BITRIX24_TOKEN_FILE holding one)");
        }
        let (Some(portal), Some(client_id), Some(client_secret), true) =
            (portal, client_id, client_secret, missing.is_empty())
        else {
            if per_user {
                return Err(ConfigError::Signin(format!(
                    "the Bitrix24 application people sign in through is incomplete: {} missing",
                    missing.join(", ")
                )));
            }
            return Err(ConfigError::IncompleteOAuth(missing.join(", ")));
        };
        Ok(OAuthSettings {
            portal: ServiceUrl::portal(portal, policy)
                .map_err(|e| ConfigError::Address(portal_name, e))?,
            token_server: ServiceUrl::token_server(token_url.unwrap_or(DEFAULT_TOKEN_URL), policy)
                .map_err(|e| ConfigError::Address(token_url_name, e))?,
            client_id: client_id.trim().to_owned(),
            client_secret: Secret::new(client_secret.trim()),
            access_token: access_token.map(|t| Secret::new(t.trim())),
            refresh_token: refresh_token.map(|t| Secret::new(t.trim())),
            token_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::values::placeholder;
    use super::*;

    /// Parses a command line the way `main` does (also used by the `http` module's tests).
    pub(super) fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["bitrix24-mcp"];
        argv.extend_from_slice(args);
        Cli::read_from(argv).unwrap().settings
    }

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0").unwrap_err().contains("out of range"));
        assert!(parse_duration("-1s").unwrap_err().contains("out of range"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn defaults_are_ten_and_thirty_seconds_and_unconfigured() {
        let config = settings(&[]).validate().unwrap();
        assert_eq!(config.client.connect_timeout, Duration::from_secs(10));
        assert_eq!(config.client.request_timeout, Duration::from_secs(30));
        assert_eq!(config.log_format, LogFormat::Text);
        // The environment of the test run may set the variable; only check when it does not.
        if std::env::var_os("BITRIX24_WEBHOOK_URL").is_none() {
            assert_eq!(config.portal, Portal::Unconfigured);
        }
    }

    #[test]
    fn an_empty_webhook_url_counts_as_unset_and_a_bad_one_is_refused() {
        assert_eq!(
            settings(&["--webhook-url", " "]).validate().unwrap().portal,
            Portal::Unconfigured
        );
        let err = settings(&["--webhook-url", "http://acme.example/rest/1/secretcode/"])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("plain http://"), "{err}");
        assert!(!err.to_string().contains("secretcode"), "{err}");
    }

    #[test]
    fn an_unexpanded_placeholder_is_named() {
        let err = settings(&["--webhook-url", "${BITRIX24_WEBHOOK_URL}"])
            .validate()
            .unwrap_err();
        let ConfigError::Placeholder(name, shown, _) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            (*name, shown.as_str()),
            ("--webhook-url", "${BITRIX24_WEBHOOK_URL}")
        );
        assert!(err.to_string().contains("${env:NAME}"), "{err}");
    }

    /// An unexpanded placeholder has two causes that look the same here; the message says both,
    /// leading with the one the environment points to.
    #[test]
    fn an_unexpanded_placeholder_says_unset_and_unexpanded() {
        use super::values::unexpanded_because;
        let unset = unexpanded_because("${BITRIX24_WEBHOOK_URL}", |_| false);
        assert!(
            unset.starts_with("BITRIX24_WEBHOOK_URL is not set where the MCP client started"),
            "{unset}"
        );
        assert!(unset.contains("does not expand this form"), "{unset}");
        let set = unexpanded_because("${env:BITRIX24_WEBHOOK_URL}", |var| {
            var == "BITRIX24_WEBHOOK_URL"
        });
        assert!(
            set.starts_with(
                "BITRIX24_WEBHOOK_URL is set, but the MCP client did not substitute it"
            ),
            "{set}"
        );
        let unnamed = unexpanded_because("${s3cr3t value}", |_| true);
        assert!(
            unnamed.contains("not set where the MCP client started"),
            "{unnamed}"
        );
        assert!(unnamed.contains("does not expand this form"), "{unnamed}");
        assert!(!unnamed.contains("s3cr3t"), "{unnamed}");
    }

    #[test]
    fn a_placeholder_with_a_default_is_described_without_the_default() {
        let cases = [
            (
                "${BITRIX24_WEBHOOK_URL:-https://x.bitrix24.com/rest/1/s3cr3t/}",
                "${BITRIX24_WEBHOOK_URL:-…} (its default is not shown)",
            ),
            ("${env:BITRIX24_WEBHOOK_URL}", "${env:BITRIX24_WEBHOOK_URL}"),
            ("${s3cr3tvalue}", "${…} (not shown)"),
            (
                "${MCP_HTTP_TOKEN-s3cr3t}",
                "${MCP_HTTP_TOKEN:-…} (its default is not shown)",
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(placeholder(raw), expected, "{raw}");
        }
        for args in [
            vec![
                "--webhook-url",
                "${BITRIX24_WEBHOOK_URL:-https://x.bitrix24.com/rest/1/s3cr3t/}",
            ],
            vec![
                "--transport",
                "http",
                "--http-token",
                "${MCP_HTTP_TOKEN:-s3cr3t}",
            ],
        ] {
            let err = settings(&args).validate().unwrap_err().to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
            assert!(err.contains("default is not shown"), "{err}");
        }
    }

    #[test]
    fn insecure_http_is_allowed_when_asked_and_demo_wins() {
        let config = settings(&[
            "--allow-insecure-http",
            "--webhook-url",
            "http://acme.example/rest/1/abc/",
        ])
        .validate()
        .unwrap();
        assert!(matches!(config.portal, Portal::Webhook(_)));
        let demo = settings(&["--demo", "--webhook-url", "https://a.b/rest/1/abc/"]);
        assert_eq!(demo.validate().unwrap().portal, Portal::Demo);
    }

    const OAUTH: [&str; 8] = [
        "--portal-url",
        "https://acme.bitrix24.com",
        "--client-id",
        "app.123",
        "--client-secret",
        "s3cret",
        "--refresh-token",
        "r3fresh",
    ];

    #[test]
    fn a_complete_oauth_set_is_accepted_with_the_default_token_server() {
        let config = settings(&OAUTH).validate().unwrap();
        let Portal::OAuth(oauth) = config.portal else {
            panic!("{:?}", config.portal)
        };
        assert_eq!(
            oauth.portal.url().as_str(),
            "https://acme.bitrix24.com/rest/"
        );
        assert_eq!(oauth.token_server.url().as_str(), DEFAULT_TOKEN_URL);
        assert_eq!(oauth.access_token, None);
        assert_eq!(oauth.refresh_token, Some(Secret::new("r3fresh")));
    }

    #[test]
    fn an_incomplete_oauth_set_names_what_is_missing() {
        let err = settings(&["--client-id", "app.123"])
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "incomplete OAuth settings: BITRIX24_PORTAL_URL, BITRIX24_CLIENT_SECRET, \
             BITRIX24_REFRESH_TOKEN (or a BITRIX24_TOKEN_FILE holding one) missing"
        );
        let mut with_file = OAUTH[..6].to_vec();
        with_file.extend(["--token-file", "/tmp/tokens.json"]);
        assert!(settings(&with_file).validate().is_ok());
    }

    #[test]
    fn webhook_and_oauth_together_are_refused() {
        let mut args = OAUTH.to_vec();
        args.extend(["--webhook-url", "https://a.bitrix24.com/rest/1/abc/"]);
        let err = settings(&args).validate().unwrap_err().to_string();
        assert!(err.starts_with("both a webhook"), "{err}");
        assert!(err.contains("BITRIX24_CLIENT_SECRET"), "{err}");
        assert!(!err.contains("s3cret") && !err.contains("r3fresh"), "{err}");
    }

    #[test]
    fn rate_and_retry_settings_reach_the_client_options() {
        let config = settings(&[
            "--rate-limit",
            "5",
            "--rate-burst",
            "250",
            "--max-retries",
            "0",
        ])
        .validate()
        .unwrap();
        assert_eq!(config.client.rate.per_second, 5.0);
        assert_eq!(config.client.rate.burst, 250);
        assert_eq!(config.client.retry.max_retries, 0);
        assert!(Cli::try_parse_from(["bitrix24-mcp", "--rate-limit", "0"]).is_err());
        assert!(Cli::try_parse_from(["bitrix24-mcp", "--rate-burst", "0"]).is_err());
    }

    #[test]
    fn debug_output_of_the_parsed_settings_shows_no_secret() {
        let mut args = OAUTH.to_vec();
        args.extend(["--access-token", "acc3ss", "--http-token", "h77p"]);
        let debug = format!("{:?}", settings(&args));
        for secret in ["s3cret", "r3fresh", "acc3ss", "h77p"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        let webhook = format!(
            "{:?}",
            settings(&["--webhook-url", "https://a.b/rest/1/c0de/"])
        );
        assert!(!webhook.contains("c0de"), "{webhook}");
    }

    #[test]
    fn tools_are_chosen_by_name_and_unknown_names_refused() {
        let config = settings(&["--tools", "im_chat_get, im_dialog_get,"])
            .validate()
            .unwrap();
        assert_eq!(config.tools.names(), "im_chat_get, im_dialog_get");
        let config = settings(&["--exclude-tools", "im_recent_list"])
            .validate()
            .unwrap();
        assert!(!config.tools.names().contains("im_recent_list"));
        let err = settings(&["--tools", "im_chat_gett"])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("the tools are: "), "{err}");
    }

    #[test]
    fn global_flags_go_after_the_subcommand_too() {
        let cli = Cli::try_parse_from(["bitrix24-mcp", "call", "x", "{}", "--demo"]).unwrap();
        assert!(cli.settings.demo);
    }
}
