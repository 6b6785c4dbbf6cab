//! The command line as clap defines it: the commands, and the settings shared by all of them
//! with the environment variable behind each flag, noting which were typed as flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::values::{parse_rate, secret};
use super::{HttpSettings, LogFormat, parse_bool, parse_duration, state};
use crate::bitrix::Secret;

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
    pub(super) fn name(
        &self,
        id: &str,
        flag: &'static str,
        variable: &'static str,
    ) -> &'static str {
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

    /// With --allow-writes: the only chats writes may change (comma-separated: 2935 or chat2935,
    /// sg17 for a workgroup's chat, user1269 for a private dialog); others answer CHAT_NOT_ALLOWED.
    #[arg(
        long,
        env = "BITRIX24_WRITE_CHATS",
        global = true,
        value_delimiter = ','
    )]
    pub write_chats: Vec<String>,

    /// A line added under every message the assistant posts (im_message_add), e.g. "Posted by an
    /// AI assistant"; off by default.
    #[arg(long, env = "BITRIX24_MESSAGE_FOOTER", global = true)]
    pub message_footer: Option<String>,

    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub state: state::StateArgs,

    /// Which of the above were typed as flags (filled in by [`Cli::read_from`]).
    #[arg(skip)]
    pub typed: Typed,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::tests::{OAUTH, settings};
    use super::*;

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
    fn global_flags_go_after_the_subcommand_too() {
        let cli = Cli::try_parse_from(["bitrix24-mcp", "call", "x", "{}", "--demo"]).unwrap();
        assert!(cli.settings.demo);
    }
}
