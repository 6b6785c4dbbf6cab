//! The settings part of `check`: each effective setting as a line for people and as typed JSON
//! values, secrets masked; and the exact rendering of durations and ages.

use std::time::Duration;

use serde_json::{Value, json};

use super::Setting;
use crate::bitrix::clock::unix_now;
use crate::bitrix::token_store::TokenStore;
use crate::bitrix::{Auth, Client};
use crate::config::{Config, Portal, Transport};

/// The effective settings, secrets masked.
pub(super) fn settings(config: &Config, client: Option<&Client>) -> Vec<Setting> {
    let text = |label: &'static str, key: &'static str, value: String| {
        (label, value.clone(), vec![(key, Value::String(value))])
    };
    let mut lines = Vec::new();
    match &config.portal {
        Portal::Webhook(webhook) => {
            lines.push(text("auth", "auth", "incoming webhook".into()));
            lines.push(text("portal", "portal", webhook.host()));
            lines.push((
                "webhook user",
                webhook.user_id().to_string(),
                vec![("webhook_user", json!(webhook.user_id()))],
            ));
            lines.push(text("webhook code", "webhook_code", "set (hidden)".into()));
        }
        Portal::OAuth(oauth) => {
            lines.push(text("auth", "auth", "OAuth application".into()));
            lines.push(text("portal", "portal", oauth.portal.host()));
            lines.push(text("client id", "client_id", oauth.client_id.clone()));
            lines.push(text(
                "client secret",
                "client_secret",
                "set (hidden)".into(),
            ));
            lines.push(text(
                "token server",
                "token_server",
                oauth.token_server.host(),
            ));
            lines.push(text(
                "token file",
                "token_file",
                token_file(oauth.token_file.as_deref()),
            ));
        }
        Portal::Demo => {
            lines.push(text(
                "auth",
                "auth",
                "demo portal (incoming webhook on loopback)".into(),
            ));
            if let Some(client) = client {
                lines.push(text("portal", "portal", client.portal_host()));
            }
        }
        Portal::Unconfigured => lines.push(text("auth", "auth", "none configured".into())),
    }
    if let Some(Auth::OAuth(session)) = client.map(Client::auth) {
        let now = unix_now();
        let expires = session.current().tokens.expires_at;
        let state: String = match expires {
            Some(at) if at <= now => "expired (refreshed on first use)".into(),
            Some(at) => format!("valid for {} more", human_seconds(at.saturating_sub(now))),
            None => "set, expiry unknown".into(),
        };
        lines.push((
            "access token",
            state.clone(),
            vec![
                ("access_token", json!(state)),
                ("access_token_expires_at", json!(expires)),
            ],
        ));
    }
    lines.push(text(
        "state",
        "state_store",
        match (client.and_then(Client::state_store), &config.portal) {
            (Some(store), _) => format!("shared through {}", store.describe()),
            (None, Portal::OAuth(oauth)) if oauth.token_file.is_some() => {
                "tokens shared through the token file by processes on this machine; rate \
                 budget per process"
                    .into()
            }
            (None, _) => "this process only".into(),
        },
    ));
    let options = &config.client;
    lines.push((
        "rate limit",
        format!(
            "{}/s, burst {}",
            options.rate.per_second, options.rate.burst
        ),
        vec![
            ("rate_per_second", json!(options.rate.per_second)),
            ("rate_burst", json!(options.rate.burst)),
        ],
    ));
    lines.push((
        "retries",
        format!(
            "up to {}, within {}",
            options.retry.max_retries,
            human(options.retry.deadline)
        ),
        vec![
            ("max_retries", json!(options.retry.max_retries)),
            ("retry_deadline_ms", json!(millis(options.retry.deadline))),
        ],
    ));
    lines.push((
        "timeouts",
        format!(
            "connect {}, request {}",
            human(options.connect_timeout),
            human(options.request_timeout)
        ),
        vec![
            ("connect_timeout_ms", json!(millis(options.connect_timeout))),
            ("request_timeout_ms", json!(millis(options.request_timeout))),
        ],
    ));
    let writes = config.tools.writes();
    lines.push(text(
        "writes",
        "writes",
        match (writes.allowed, writes.skip_confirmation) {
            (false, _) => "off (read-only; --allow-writes turns them on)".into(),
            (true, false) => "on; destructive ones need a typed confirmation".into(),
            (true, true) => "on; destructive ones WITHOUT a typed confirmation".into(),
        },
    ));
    lines.push(text(
        "transport",
        "transport",
        match &config.transport {
            Transport::Stdio => "stdio".into(),
            Transport::Http { bind, options } => format!(
                "http on {bind}{}{}",
                if options.stateless { ", stateless" } else { "" },
                if options.guard.token.is_some() {
                    ", token required"
                } else {
                    ", no token"
                }
            ),
        },
    ));
    lines
        .into_iter()
        .map(|(label, text, json)| Setting { label, text, json })
        .collect()
}

fn token_file(path: Option<&std::path::Path>) -> String {
    let Some(path) = path else {
        return "none (refreshed tokens are lost on restart)".into();
    };
    match TokenStore::new(path).load() {
        Ok(Some(stored)) if stored.saved_at > 0 => format!(
            "{}, saved {} ago",
            path.display(),
            human_seconds(unix_now().saturating_sub(stored.saved_at))
        ),
        Ok(Some(_)) => format!("{}, present", path.display()),
        Ok(None) => format!("{}, not written yet", path.display()),
        Err(err) => format!("{}: {err}", path.display()),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A configured duration, exactly: `500ms`, `1.5s`, `30s`, `2m`, `2m30s`.
pub(super) fn human(duration: Duration) -> String {
    let ms = millis(duration);
    match ms {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms % 1000 != 0 && ms < 60_000 => format!("{}s", ms as f64 / 1000.0),
        ms if ms % 1000 != 0 => format!("{}ms", ms),
        ms => {
            let secs = ms / 1000;
            match (secs / 60, secs % 60) {
                (0, s) => format!("{s}s"),
                (m, 0) => format!("{m}m"),
                (m, s) => format!("{m}m{s}s"),
            }
        }
    }
}

/// An age or a remaining time, to the two largest units: `45s`, `2m30s`, `3h5m`, `2d4h`.
pub(super) fn human_seconds(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => two_units(s / 60, "m", s % 60, "s"),
        s if s < 86_400 => two_units(s / 3600, "h", s % 3600 / 60, "m"),
        s => two_units(s / 86_400, "d", s % 86_400 / 3600, "h"),
    }
}

fn two_units(big: i64, big_unit: &str, small: i64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}
