//! How the parsed [`Settings`] become a [`Config`]: the portal and how calls authenticate
//! (webhook, OAuth application, demo, or each person's sign-in), the client's timeouts, rate and
//! retries, the tools served, the transport and the shared state.

use super::values::{exposed, given, nonempty};
use super::{Config, ConfigError, Portal, Settings};
use crate::bitrix::{
    ClientOptions, HttpPolicy, OAuthSettings, RateOptions, RetryPolicy, Secret, ServiceUrl,
    WebhookUrl,
};
use crate::tools::registry::{Selection, Writes};
use crate::tools::write_chats::WriteChats;

/// The longest `--message-footer`: one line under a message, not a second message.
const MAX_FOOTER_CHARS: usize = 200;

/// Where Bitrix24's OAuth server lives (east-region apps use https://oauth.bitrix24.tech/).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth.bitrix.info/oauth/token/";

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
                .with_writes(self.writes()?),
        })
    }

    /// The write switches, the chats writes may change and the footer of posted messages.
    fn writes(&self) -> Result<Writes, ConfigError> {
        // Given but naming no chat (`--write-chats " , "`) is refused, not read as "any chat": a
        // list meant to limit writes must not lift the limit by being empty. An empty variable
        // (`BITRIX24_WRITE_CHATS=`) is an unset one, as for every other setting.
        let chats = if self.write_chats.is_empty() || self.write_chats == [String::new()] {
            None
        } else {
            Some(WriteChats::parse(&self.write_chats).map_err(ConfigError::Writes)?)
        };
        let footer = match self.message_footer.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(footer) if footer.chars().count() > MAX_FOOTER_CHARS => {
                return Err(ConfigError::Writes(format!(
                    "BITRIX24_MESSAGE_FOOTER / --message-footer is {} characters; at most \
                     {MAX_FOOTER_CHARS} are taken",
                    footer.chars().count()
                )));
            }
            Some(footer) => Some(footer.to_owned()),
        };
        Ok(Writes {
            allowed: self.allow_writes,
            skip_confirmation: self.skip_write_confirmation,
            chats,
            footer,
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
    use std::time::Duration;

    use super::super::tests::{OAUTH, settings};
    use super::super::values::placeholder;
    use clap::Parser;

    use super::super::{Cli, LogFormat};
    use super::*;

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
    fn write_chats_and_the_footer_are_read_and_checked() {
        let writes = |args: &[&str]| settings(args).validate().map(|c| c.tools.writes().clone());
        let listed =
            writes(&["--write-chats", "2935,sg17", "--message-footer", " By AI "]).unwrap();
        assert_eq!(listed.chats.unwrap().to_string(), "chat2935,sg17");
        assert_eq!(listed.footer.as_deref(), Some("By AI"));
        let unset = writes(&["--write-chats", "", "--message-footer", ""]).unwrap();
        assert_eq!((unset.chats, unset.footer), (None, None));
        // A list that names no chat must not lift the limit it was meant to set.
        for blank in [" , ", ",", " "] {
            let err = writes(&["--write-chats", blank]).unwrap_err();
            assert!(
                err.to_string().contains("names no chat"),
                "{blank:?}: {err}"
            );
        }
        let err = writes(&["--write-chats", "2935,general"]).unwrap_err();
        assert!(
            err.to_string().contains("\"general\" is not a chat"),
            "{err}"
        );
        let long = "x".repeat(201);
        let err = writes(&["--message-footer", &long]).unwrap_err();
        assert!(err.to_string().contains("201 characters"), "{err}");
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
}
