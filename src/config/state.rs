//! Where state shared by several instances lives: the Redis (or Valkey) address, its password,
//! the key that seals tokens at rest, the key prefix and the refresh lock's lifetime.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, parse_duration};
use crate::bitrix::Secret;
use crate::bitrix::state::{DEFAULT_PREFIX, StateKey, StateSettings, StateUrl};

/// Flags and variables of the shared state store.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Redis or Valkey shared by several instances, redis://HOST:PORT/DB (rediss:// for TLS):
    /// tokens, the rate budget and operating-time blocks are then shared.
    #[arg(long, env = "BITRIX24_STATE_URL", global = true, hide_env_values = true,
          value_parser = super::secret, help_heading = "Shared state")]
    pub state_url: Option<Secret>,

    /// The state store's password (instead of one in the URL, and winning over it).
    #[arg(long, env = "BITRIX24_STATE_PASSWORD", global = true, hide_env_values = true,
          value_parser = super::secret, help_heading = "Shared state")]
    pub state_password: Option<Secret>,

    /// 32 bytes (64 hex digits or base64) that encrypt the OAuth tokens in the state store;
    /// the same on every instance. Make one with `openssl rand -hex 32`.
    #[arg(long, env = "BITRIX24_STATE_KEY", global = true, hide_env_values = true,
          value_parser = super::secret, help_heading = "Shared state")]
    pub state_key: Option<Secret>,

    /// Prefix of every key in the state store (instances share state only under the same one).
    #[arg(long, env = "BITRIX24_STATE_PREFIX", global = true, default_value = DEFAULT_PREFIX,
          help_heading = "Shared state")]
    pub state_prefix: String,

    /// How long a refresh lock outlives an instance that died holding it.
    #[arg(long, env = "BITRIX24_STATE_LOCK_TTL", global = true, default_value = "60s",
          value_parser = parse_duration, help_heading = "Shared state")]
    pub state_lock_ttl: Duration,
}

impl StateArgs {
    /// The store's settings, or `None` without `--state-url`. `oauth`: whether tokens would live
    /// in the store (then the key is required).
    pub fn settings(&self, oauth: bool) -> Result<Option<StateSettings>, ConfigError> {
        let error = |name: &'static str, reason: String| ConfigError::State(name, reason);
        let url = super::given("BITRIX24_STATE_URL", super::exposed(&self.state_url))?;
        let key = super::given("BITRIX24_STATE_KEY", super::exposed(&self.state_key))?;
        let password = super::given(
            "BITRIX24_STATE_PASSWORD",
            super::exposed(&self.state_password),
        )?;
        let Some(url) = url else {
            if key.is_some() || password.is_some() {
                return Err(error(
                    "BITRIX24_STATE_URL / --state-url",
                    "BITRIX24_STATE_KEY or BITRIX24_STATE_PASSWORD is set, but no state store: \
                     set BITRIX24_STATE_URL too, or unset them"
                        .into(),
                ));
            }
            return Ok(None);
        };
        let url = StateUrl::parse(url, password.map(Secret::new))
            .map_err(|reason| error("BITRIX24_STATE_URL / --state-url", reason))?;
        let key = key
            .map(StateKey::parse)
            .transpose()
            .map_err(|reason| error("BITRIX24_STATE_KEY / --state-key", reason))?;
        if oauth && key.is_none() {
            return Err(error(
                "BITRIX24_STATE_KEY / --state-key",
                "OAuth tokens kept in the state store must be encrypted: set BITRIX24_STATE_KEY \
                 to 32 random bytes (`openssl rand -hex 32`), the same on every instance"
                    .into(),
            ));
        }
        let prefix = self.state_prefix.trim();
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix.chars().all(|c| c.is_ascii_graphic() && c != ':')
        {
            return Err(error(
                "BITRIX24_STATE_PREFIX / --state-prefix",
                "use 1 to 64 printable characters without spaces or ':', e.g. bitrix24-mcp".into(),
            ));
        }
        if self.state_lock_ttl < Duration::from_secs(1) {
            return Err(error(
                "BITRIX24_STATE_LOCK_TTL / --state-lock-ttl",
                "the refresh lock must last at least 1 s (longer than one token request)".into(),
            ));
        }
        Ok(Some(StateSettings {
            url,
            prefix: prefix.to_owned(),
            key,
            lock_ttl: self.state_lock_ttl,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::settings;
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const OAUTH: [&str; 8] = [
        "--portal-url",
        "https://x.bitrix24.com/rest/",
        "--client-id",
        "app",
        "--client-secret",
        "s3cr3t",
        "--refresh-token",
        "r3fr3sh",
    ];

    fn with_oauth(extra: &[&str]) -> Result<crate::config::Config, ConfigError> {
        let mut args = OAUTH.to_vec();
        args.extend_from_slice(extra);
        settings(&args).validate()
    }

    #[test]
    fn without_a_state_url_nothing_is_shared() {
        assert_eq!(settings(&[]).validate().unwrap().state, None);
    }

    #[test]
    fn oauth_tokens_in_a_store_need_a_key() {
        let err = with_oauth(&["--state-url", "redis://127.0.0.1:6379/0"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("BITRIX24_STATE_KEY / --state-key: "),
            "{err}"
        );
        assert!(err.to_string().contains("openssl rand -hex 32"));
        let config = with_oauth(&[
            "--state-url",
            "redis://127.0.0.1:6379/0",
            "--state-key",
            KEY,
        ])
        .unwrap();
        let state = config.state.unwrap();
        assert_eq!(state.url.to_string(), "redis://127.0.0.1:6379/0");
        assert_eq!(state.prefix, "bitrix24-mcp");
        assert_eq!(state.lock_ttl, Duration::from_secs(60));
        assert!(state.key.is_some());
    }

    #[test]
    fn a_webhook_shares_its_bucket_without_a_key() {
        let config = settings(&[
            "--webhook-url",
            "https://x.bitrix24.com/rest/1/abcdefgh12345678/",
            "--state-url",
            "rediss://:pw@cache:6380/3",
            "--state-prefix",
            "team-a",
            "--state-lock-ttl",
            "5s",
        ])
        .validate()
        .unwrap();
        let state = config.state.unwrap();
        assert_eq!(state.url.to_string(), "rediss://cache:6380/3");
        assert_eq!(state.url.password().unwrap().expose(), "pw");
        assert_eq!(state.prefix, "team-a");
        assert_eq!(state.lock_ttl, Duration::from_secs(5));
        assert_eq!(state.key, None);
    }

    #[test]
    fn bad_state_settings_are_refused_by_name_without_quoting_secrets() {
        let cases: [(&[&str], &str); 6] = [
            (
                &["--state-url", "http://:hunter2@h/0"],
                "BITRIX24_STATE_URL",
            ),
            (
                &["--state-url", "redis://h/0", "--state-key", "hunter2"],
                "BITRIX24_STATE_KEY",
            ),
            (
                &["--state-url", "redis://h/0", "--state-prefix", "a b"],
                "BITRIX24_STATE_PREFIX",
            ),
            (
                &["--state-url", "redis://h/0", "--state-prefix", "a:b"],
                "BITRIX24_STATE_PREFIX",
            ),
            (
                &["--state-url", "redis://h/0", "--state-lock-ttl", "500ms"],
                "BITRIX24_STATE_LOCK_TTL",
            ),
            (&["--state-key", KEY], "BITRIX24_STATE_URL"),
        ];
        for (args, name) in cases {
            let err = settings(args).validate().unwrap_err().to_string();
            assert!(err.starts_with(name), "{args:?}: {err}");
            assert!(!err.contains("hunter2"), "{args:?}: {err}");
            assert!(!err.contains(KEY), "{args:?}: {err}");
        }
    }
}
