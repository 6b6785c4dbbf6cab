//! `bitrix24-mcp check`: the configuration as it takes effect (secrets masked), one call to the
//! portal's `scope` method, and a verdict — can `im_chat_user_list` work, and if not, what to do.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::bitrix::token_store::TokenStore;
use crate::bitrix::{Auth, CallError, Client};
use crate::config::{Config, Portal, Transport};
use crate::tools::ToolError;

/// The scope `im_chat_user_list` needs.
const REQUIRED_SCOPE: &str = "im";

/// Everything `check` found, as text or as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: &'static str,
    #[serde(serialize_with = "settings_as_object")]
    pub settings: Vec<Setting>,
    pub portal: PortalReport,
    pub problems: Vec<Problem>,
    /// True only when the tool can work.
    pub ready: bool,
}

/// Settings in JSON: one object, in display order.
fn settings_as_object<S: serde::Serializer>(
    settings: &[Setting],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(settings.len()))?;
    for setting in settings {
        map.serialize_entry(setting.name, &setting.value)?;
    }
    map.end()
}

#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub name: &'static str,
    pub value: String,
}

/// What the `scope` call showed. `None` where the check could not get that far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PortalReport {
    pub reachable: Option<bool>,
    pub authenticated: Option<bool>,
    pub scopes: Option<Vec<String>>,
    pub im_scope: Option<bool>,
    pub round_trip_ms: Option<f64>,
    /// Seconds of execution time used in the method's window, when the portal reports it.
    pub operating: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub code: String,
    pub cause: String,
    pub fix: String,
}

/// Runs the check. `client` is `None` when no portal is configured.
pub async fn run(config: &Config, client: Option<&Client>) -> Report {
    let settings = settings(config, client);
    let mut portal = PortalReport::default();
    let mut problems = Vec::new();
    match client {
        None => problems.push(Problem::from(ToolError::not_configured())),
        Some(client) => probe(client, &mut portal, &mut problems).await,
    }
    let ready = problems.is_empty() && portal.im_scope == Some(true);
    Report {
        version: env!("CARGO_PKG_VERSION"),
        settings,
        portal,
        problems,
        ready,
    }
}

/// Calls `scope` once (no retries: a check should say what happens now) and reads the answer.
async fn probe(client: &Client, portal: &mut PortalReport, problems: &mut Vec<Problem>) {
    let started = Instant::now();
    let outcome = client
        .call("scope", &Value::Object(Default::default()))
        .await;
    let round_trip = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(envelope) => {
            portal.reachable = Some(true);
            portal.authenticated = Some(true);
            portal.round_trip_ms = Some(round_trip);
            portal.operating = envelope.time.operating;
            let scopes: Vec<String> = envelope
                .result
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let granted = scopes.iter().any(|s| s == REQUIRED_SCOPE);
            portal.im_scope = Some(granted);
            if !granted {
                problems.push(Problem {
                    code: "SCOPE_MISSING".into(),
                    cause: format!(
                        "the portal does not grant the \"im\" scope (granted: {})",
                        if scopes.is_empty() { "none".to_owned() } else { scopes.join(", ") }
                    ),
                    fix: "Add the \"im\" scope (Chat and notifications) in the portal's webhook or application settings".into(),
                });
            }
            portal.scopes = Some(scopes);
        }
        Err(err) => {
            record_failure(&err, portal, round_trip);
            problems.push(Problem::from(ToolError::from_call(&err)));
        }
    }
}

/// What a failed `scope` call says about reachability, authentication and scope.
fn record_failure(err: &CallError, portal: &mut PortalReport, round_trip: f64) {
    match err {
        CallError::Network { .. } | CallError::Timeout { .. } => portal.reachable = Some(false),
        CallError::Api(api) => {
            portal.reachable = Some(true);
            portal.round_trip_ms = Some(round_trip);
            match api.code.as_str() {
                "insufficient_scope" => {
                    portal.authenticated = Some(true);
                    portal.im_scope = Some(false);
                }
                "NO_AUTH_FOUND"
                | "expired_token"
                | "invalid_token"
                | "INVALID_CREDENTIALS"
                | "user_access_error" => portal.authenticated = Some(false),
                _ => {}
            }
        }
        CallError::TokenRefresh(inner) => {
            let reached = matches!(
                **inner,
                CallError::Api(_) | CallError::UnexpectedResponse { .. }
            );
            portal.reachable = Some(reached);
            portal.authenticated = Some(false);
        }
        CallError::Redirect { .. } | CallError::UnexpectedResponse { .. } => {
            portal.reachable = Some(true);
            portal.round_trip_ms = Some(round_trip);
        }
        CallError::OperationBlocked { .. }
        | CallError::RateLimited { .. }
        | CallError::RetriesExhausted { .. } => {}
    }
}

impl From<ToolError> for Problem {
    fn from(error: ToolError) -> Self {
        Self {
            cause: error.error_description.trim_end_matches('.').to_owned(),
            fix: addressed_to_the_user(&error.hint),
            code: error.error,
        }
    }
}

/// Tool hints are written for the assistant ("ask the user to check …"); here the user reads them.
fn addressed_to_the_user(hint: &str) -> String {
    let direct = hint
        .replace("Ask the user to ", "")
        .replace("ask the user to ", "")
        .replace("ask the user for ", "get ")
        .replace("the user must ", "")
        .replace("the user can ", "you can ");
    let mut chars = direct.trim_end_matches('.').chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The effective settings, secrets masked.
fn settings(config: &Config, client: Option<&Client>) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, value: String| out.push(Setting { name, value });
    match &config.portal {
        Portal::Webhook(webhook) => {
            add("auth", "incoming webhook".into());
            add("portal", webhook.host());
            add("webhook user", webhook.user_id().to_string());
            add("webhook code", "set (hidden)".into());
        }
        Portal::OAuth(oauth) => {
            add("auth", "OAuth application".into());
            add("portal", oauth.portal.host());
            add("client id", oauth.client_id.clone());
            add("client secret", "set (hidden)".into());
            add("token server", oauth.token_server.host());
            add("token file", token_file(oauth.token_file.as_deref()));
        }
        Portal::Demo => {
            add("auth", "demo portal (incoming webhook on loopback)".into());
            if let Some(client) = client {
                add("portal", client.portal_host());
            }
        }
        Portal::Unconfigured => add("auth", "none configured".into()),
    }
    if let Some(Auth::OAuth(session)) = client.map(Client::auth) {
        let expires = session.current().tokens.expires_at;
        add(
            "access token",
            match expires {
                Some(at) if at <= crate::bitrix::clock::unix_now() => {
                    "expired (refreshed on first use)".into()
                }
                Some(at) => format!(
                    "valid for {} more",
                    human_seconds(at - crate::bitrix::clock::unix_now())
                ),
                None => "set, expiry unknown".into(),
            },
        );
    }
    let client_options = &config.client;
    add(
        "rate limit",
        format!(
            "{}/s, burst {}",
            client_options.rate.per_second, client_options.rate.burst
        ),
    );
    add(
        "retries",
        format!(
            "up to {}, within {}",
            client_options.retry.max_retries,
            human(client_options.retry.deadline)
        ),
    );
    add(
        "timeouts",
        format!(
            "connect {}, request {}",
            human(client_options.connect_timeout),
            human(client_options.request_timeout)
        ),
    );
    add(
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
    );
    out
}

fn token_file(path: Option<&std::path::Path>) -> String {
    let Some(path) = path else {
        return "none (refreshed tokens are lost on restart)".into();
    };
    match TokenStore::new(path).load() {
        Ok(Some(stored)) if stored.saved_at > 0 => format!(
            "{}, saved {} ago",
            path.display(),
            human_seconds(crate::bitrix::clock::unix_now() - stored.saved_at)
        ),
        Ok(Some(_)) => format!("{}, present", path.display()),
        Ok(None) => format!("{}, not written yet", path.display()),
        Err(err) => format!("{}: {err}", path.display()),
    }
}

fn human(duration: std::time::Duration) -> String {
    human_seconds(duration.as_secs() as i64)
}

fn human_seconds(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The report for people.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "bitrix24-mcp {} — configuration check\n\nSettings\n",
        report.version
    );
    for setting in &report.settings {
        out.push_str(&format!("  {:<15} {}\n", setting.name, setting.value));
    }
    let portal = &report.portal;
    let yes_no = |value: Option<bool>, yes: &str, no: &str| match value {
        Some(true) => yes.to_owned(),
        Some(false) => no.to_owned(),
        None => "not checked".to_owned(),
    };
    out.push_str("\nPortal\n");
    let reachable = match (portal.reachable, portal.round_trip_ms) {
        (Some(true), Some(ms)) => format!("yes (round trip {ms:.0} ms)"),
        (value, _) => yes_no(value, "yes", "no"),
    };
    out.push_str(&format!("  {:<15} {reachable}\n", "reachable"));
    out.push_str(&format!(
        "  {:<15} {}\n",
        "authentication",
        yes_no(portal.authenticated, "accepted", "rejected")
    ));
    let scope = match (&portal.im_scope, &portal.scopes) {
        (Some(true), Some(scopes)) => format!("granted (scopes: {})", scopes.join(", ")),
        (value, _) => yes_no(*value, "granted", "missing"),
    };
    out.push_str(&format!("  {:<15} {scope}\n", "scope im"));
    if let Some(operating) = portal.operating {
        out.push_str(&format!(
            "  {:<15} {operating} s used in the current 10-minute window\n",
            "operating time"
        ));
    }
    if !report.problems.is_empty() {
        out.push_str("\nProblems\n");
        for problem in &report.problems {
            out.push_str(&format!(
                "  - {}: {}. Fix: {}.\n",
                problem.code, problem.cause, problem.fix
            ));
        }
    }
    out.push_str(&if report.ready {
        "\nReady: im_chat_user_list can work.\n".to_owned()
    } else {
        let count = report.problems.len().max(1);
        format!(
            "\nNot ready: {count} problem{} to fix.\n",
            if count == 1 { "" } else { "s" }
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitrix::ApiError;
    use crate::tools::codes::{BITRIX_CODES, REFRESH_CODES};

    /// Every hint the server can give: the code tables and the server's own errors.
    fn every_hint() -> Vec<String> {
        let own = [
            CallError::Network { detail: "x".into() },
            CallError::Timeout {
                after: std::time::Duration::from_secs(1),
            },
            CallError::Redirect {
                status: 302,
                location_host: None,
            },
            CallError::UnexpectedResponse {
                status: 502,
                detail: "x".into(),
            },
            CallError::UnexpectedResponse {
                status: 200,
                detail: "x".into(),
            },
            CallError::OperationBlocked {
                method: "m".into(),
                retry_after: std::time::Duration::from_secs(1),
            },
            CallError::RateLimited {
                retry_after: std::time::Duration::from_secs(1),
            },
            CallError::TokenRefresh(Box::new(CallError::Api(ApiError::new("weird", "", 400)))),
            CallError::TokenRefresh(Box::new(CallError::Network { detail: "x".into() })),
            CallError::Api(ApiError::new("UNKNOWN_CODE", "", 400)),
        ];
        BITRIX_CODES
            .iter()
            .chain(REFRESH_CODES)
            .map(|info| info.hint.to_owned())
            .chain(own.iter().map(|err| ToolError::from_call(err).hint))
            .chain([
                ToolError::not_configured().hint,
                ToolError::invalid_argument("x").hint,
            ])
            .collect()
    }

    /// The rewording is a special case on top of the shared hints: this keeps it complete, so a
    /// hint phrased some new way fails here rather than reaching a user half-reworded.
    #[test]
    fn every_hint_reads_as_an_instruction_to_the_user() {
        for hint in every_hint() {
            let fix = addressed_to_the_user(&hint);
            assert!(
                !fix.to_lowercase().contains("the user"),
                "{hint:?} became {fix:?}"
            );
            assert!(fix.starts_with(char::is_uppercase), "{fix:?}");
        }
    }

    #[test]
    fn hints_for_the_assistant_become_instructions_for_the_user() {
        assert_eq!(
            addressed_to_the_user(
                "The webhook lacks the im scope; ask the user to add the \"im\" scope in the portal's webhook settings, then retry."
            ),
            "The webhook lacks the im scope; add the \"im\" scope in the portal's webhook settings, then retry"
        );
        assert_eq!(
            addressed_to_the_user("Ask the user to set BITRIX24_WEBHOOK_URL and restart it."),
            "Set BITRIX24_WEBHOOK_URL and restart it"
        );
    }
}
