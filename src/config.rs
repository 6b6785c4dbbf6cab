//! The command line and environment (clap), and their validation into a [`Config`]. Secrets stay
//! wrapped from the moment they are read; no message made here contains one.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bitrix::{ClientOptions, EndpointError, HttpPolicy, WebhookUrl};

/// An MCP server that gives AI coding assistants live Bitrix24 data.
#[derive(Debug, Parser)]
#[command(name = "bitrix24-mcp", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
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
    )]
    pub webhook_url: Option<String>,

    /// Allow plain http:// to a non-loopback portal (self-hosted portals without TLS).
    #[arg(long, env = "BITRIX24_ALLOW_INSECURE_HTTP", global = true,
          action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
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
    /// The built-in sample portal, started on loopback at run time.
    Demo,
    /// Nothing configured: tools are listed, calls answer `NOT_CONFIGURED`.
    Unconfigured,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub portal: Portal,
    pub client: ClientOptions,
    pub http_policy: HttpPolicy,
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("BITRIX24_WEBHOOK_URL / --webhook-url: {0}")]
    Webhook(#[from] EndpointError),
    #[error(
        "BITRIX24_WEBHOOK_URL holds an unexpanded placeholder {0:?}: the MCP client did not \
         substitute it; Claude Code expands ${{NAME}}, Cursor expands ${{env:NAME}}"
    )]
    Placeholder(String),
}

impl Settings {
    /// Checks everything that can be checked before the first call.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let http_policy = if self.allow_insecure_http {
            HttpPolicy::AllowInsecure
        } else {
            HttpPolicy::HttpsOnly
        };
        // An empty variable is how `${BITRIX24_WEBHOOK_URL}` expands when the user has not set
        // it: treat it as absent rather than as a malformed URL.
        let webhook = self.webhook_url.as_deref().filter(|u| !u.trim().is_empty());
        let portal = match (self.demo, webhook) {
            (true, _) => Portal::Demo,
            (false, Some(raw)) if raw.trim_start().starts_with("${") => {
                let placeholder: String = raw.trim().chars().take_while(|c| *c != '}').collect();
                return Err(ConfigError::Placeholder(format!("{placeholder}}}")));
            }
            (false, Some(raw)) => Portal::Webhook(WebhookUrl::parse(raw, http_policy)?),
            (false, None) => Portal::Unconfigured,
        };
        Ok(Config {
            portal,
            client: ClientOptions {
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                ..ClientOptions::default()
            },
            http_policy,
            log_format: self.log_format,
        })
    }
}

/// A duration as people write it: `30s`, `500ms`, `2m`, or bare seconds (`10`, `1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_secs) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 30s, 500ms or 2m"))?;
    let secs = value * unit_secs;
    if !(0.001..=3600.0).contains(&secs) {
        return Err(format!("{text:?} is out of range: use 1ms to 60m"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["bitrix24-mcp"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
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
        assert_eq!(
            err,
            ConfigError::Placeholder("${BITRIX24_WEBHOOK_URL}".into())
        );
        assert!(err.to_string().contains("${env:NAME}"), "{err}");
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

    #[test]
    fn global_flags_go_after_the_subcommand_too() {
        let cli = Cli::try_parse_from(["bitrix24-mcp", "call", "x", "{}", "--demo"]).unwrap();
        assert!(cli.settings.demo);
    }
}
