//! `bitrix24-mcp check`: the configuration as it takes effect (secrets masked), one call to the
//! portal's `scope` method, and a verdict — can `im_chat_user_list` work, and if not, what to do.

mod settings;
mod state;

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::bitrix::{CallError, Client};
use crate::config::{Config, Portal};
use crate::tools::ToolError;

use settings::{human, settings};
use state::StateReport;

/// The scope the chat tools need; an `insufficient_scope` answer to `scope` means it is missing.
const REQUIRED_SCOPE: &str = "im";

/// Everything `check` found, as text or as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: &'static str,
    #[serde(serialize_with = "settings_as_object")]
    pub settings: Vec<Setting>,
    pub portal: PortalReport,
    /// The state store shared with other instances, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateReport>,
    /// The served tools and whether the portal's scopes allow each.
    pub tools: Vec<ToolAccess>,
    pub problems: Vec<Problem>,
    /// True only when every served tool can work.
    pub ready: bool,
}

/// One served tool and whether the portal grants the scope it needs (`None`: not known).
#[derive(Debug, Clone, Serialize)]
pub struct ToolAccess {
    pub name: &'static str,
    pub scope: &'static str,
    pub allowed: Option<bool>,
}

/// Settings in JSON: one object with snake_case keys and typed values (durations in
/// milliseconds), in display order.
fn settings_as_object<S: serde::Serializer>(
    settings: &[Setting],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(settings.len()))?;
    for setting in settings {
        for (key, value) in &setting.json {
            map.serialize_entry(key, value)?;
        }
    }
    map.end()
}

/// One line of the settings: its label and text for people, its keys and values for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub label: &'static str,
    pub text: String,
    #[serde(skip)]
    pub json: Vec<(&'static str, Value)>,
}

/// What the `scope` call showed. `None` where the check could not get that far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PortalReport {
    pub reachable: Option<bool>,
    pub authenticated: Option<bool>,
    pub scopes: Option<Vec<String>>,
    pub im_scope: Option<bool>,
    pub round_trip_ms: Option<u64>,
    /// Execution time used in the method's 10-minute window, when the portal reports it.
    pub operating_ms: Option<u64>,
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
    let mut state = None;
    match client {
        None => problems.push(Problem::from(ToolError::not_configured())),
        Some(client) => {
            state = state::probe(client, &mut problems).await;
            // Without its state store a call cannot get to the portal: one problem is enough.
            if state.as_ref().is_none_or(|s| s.reachable) {
                probe(config, client, &mut portal, &mut problems).await;
            }
        }
    }
    let tools: Vec<ToolAccess> = config
        .tools
        .entries()
        .map(|tool| ToolAccess {
            name: tool.name,
            scope: tool.scope,
            allowed: match (&portal.scopes, portal.im_scope) {
                // bitrix24_call: the scope depends on the method it is given.
                _ if tool.scope.is_empty() => Some(true),
                (Some(scopes), _) => Some(scopes.iter().any(|s| s == tool.scope)),
                (None, Some(false)) if tool.scope == REQUIRED_SCOPE => Some(false),
                _ => None,
            },
        })
        .collect();
    if let Some(scopes) = &portal.scopes {
        problems.extend(missing_scopes(&tools, scopes));
    }
    let ready = problems.is_empty() && tools.iter().all(|t| t.allowed == Some(true));
    Report {
        version: env!("CARGO_PKG_VERSION"),
        settings,
        portal,
        state,
        tools,
        problems,
        ready,
    }
}

/// One problem per scope that served tools need and the portal does not grant.
fn missing_scopes(tools: &[ToolAccess], granted: &[String]) -> Vec<Problem> {
    let mut needed: Vec<&str> = tools
        .iter()
        .filter(|t| t.allowed == Some(false))
        .map(|t| t.scope)
        .collect();
    needed.dedup();
    needed
        .into_iter()
        .map(|scope| {
            let users: Vec<&str> = tools
                .iter()
                .filter(|t| t.scope == scope)
                .map(|t| t.name)
                .collect();
            Problem {
                code: "SCOPE_MISSING".into(),
                cause: format!(
                    "the portal does not grant the \"{scope}\" scope, which {} need{} (granted: {})",
                    users.join(", "),
                    if users.len() == 1 { "s" } else { "" },
                    if granted.is_empty() {
                        "none".to_owned()
                    } else {
                        granted.join(", ")
                    }
                ),
                fix: format!(
                    "Add the \"{scope}\" scope in the portal's webhook or application settings, or \
                     leave those tools out with --exclude-tools"
                ),
            }
        })
        .collect()
}

/// Calls `scope` once (no retries: a check should say what happens now) and reads the answer.
async fn probe(
    config: &Config,
    client: &Client,
    portal: &mut PortalReport,
    problems: &mut Vec<Problem>,
) {
    let started = Instant::now();
    let outcome = client
        .call("scope", &Value::Object(Default::default()))
        .await;
    let round_trip = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(envelope) => {
            portal.reachable = Some(true);
            portal.authenticated = Some(true);
            portal.round_trip_ms = Some(round_trip);
            portal.operating_ms = envelope
                .time
                .operating
                .map(|secs| (secs * 1000.0).round() as u64);
            let scopes: Vec<String> = envelope
                .result
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            portal.im_scope = Some(scopes.iter().any(|s| s == REQUIRED_SCOPE));
            portal.scopes = Some(scopes);
        }
        Err(err) => {
            record_failure(&err, portal, round_trip);
            let unresolved = match err {
                CallError::Unreachable { .. } => unresolved(config).await,
                _ => None,
            };
            problems.push(unresolved.unwrap_or_else(|| Problem::from(ToolError::from_call(&err))));
        }
    }
}

/// When the portal could not be reached, whether its host name resolves from here. A name that
/// does not resolve is a wrong address or a DNS problem: retrying will not help, so the fix says
/// what to check instead. `None` when it resolves, when it cannot be told (a proxy resolves names
/// for us), or for the demo portal.
async fn unresolved(config: &Config) -> Option<Problem> {
    let (authority, setting) = match &config.portal {
        Portal::Webhook(webhook) => (webhook.host(), "BITRIX24_WEBHOOK_URL (--webhook-url)"),
        Portal::OAuth(oauth) => (oauth.portal.host(), "BITRIX24_PORTAL_URL (--portal-url)"),
        Portal::Demo | Portal::Unconfigured => return None,
    };
    let proxied = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
    // An IP address needs no lookup; a bracketed IPv6 authority always ends in `]` or `]:port`.
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority.as_str(),
    };
    if proxied || host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let failure = match tokio::net::lookup_host((host, 443))
        .await
        .map(|mut a| a.next())
    {
        Ok(Some(_)) => return None,
        Ok(None) => "no address".to_owned(),
        Err(err) => err.to_string(),
    };
    Some(Problem {
        code: "NETWORK_ERROR".into(),
        cause: format!("the portal's host name {host} does not resolve ({failure})"),
        fix: format!(
            "Check the portal address in {setting} for a typo, and this machine's DNS \
             (e.g. `getent hosts {host}`); retrying will not help until the name resolves"
        ),
    })
}

/// What a failed `scope` call says about reachability, authentication and scope.
fn record_failure(err: &CallError, portal: &mut PortalReport, round_trip: u64) {
    match err {
        CallError::Network { .. } | CallError::Unreachable { .. } | CallError::Timeout { .. } => {
            portal.reachable = Some(false)
        }
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
        | CallError::StateUnavailable { .. }
        | CallError::StateUnreadable { .. }
        | CallError::StateMisconfigured { .. }
        | CallError::RetriesExhausted { .. } => {}
    }
}

impl From<ToolError> for Problem {
    /// Hints are written for both readers, the assistant and the person running `check`, so
    /// they are shown as they are.
    fn from(error: ToolError) -> Self {
        Self {
            cause: error.error_description.trim_end_matches('.').to_owned(),
            fix: error.hint.trim_end_matches('.').to_owned(),
            code: error.error,
        }
    }
}

/// The report for people.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "bitrix24-mcp {} — configuration check\n\nSettings\n",
        report.version
    );
    for setting in &report.settings {
        out.push_str(&format!("  {:<15} {}\n", setting.label, setting.text));
    }
    let portal = &report.portal;
    let yes_no = |value: Option<bool>, yes: &str, no: &str| match value {
        Some(true) => yes.to_owned(),
        Some(false) => no.to_owned(),
        None => "not checked".to_owned(),
    };
    out.push_str("\nPortal\n");
    let reachable = match (portal.reachable, portal.round_trip_ms) {
        (Some(true), Some(ms)) => format!("yes (round trip {ms} ms)"),
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
    if let Some(operating) = portal.operating_ms {
        out.push_str(&format!(
            "  {:<15} {} used in the current 10-minute window\n",
            "operating time",
            human(Duration::from_millis(operating))
        ));
    }
    let allowed = report
        .tools
        .iter()
        .filter(|t| t.allowed == Some(true))
        .count();
    let refused: Vec<&str> = report
        .tools
        .iter()
        .filter(|t| t.allowed == Some(false))
        .map(|t| t.name)
        .collect();
    let tools = match (
        refused.is_empty(),
        report.tools.iter().any(|t| t.allowed.is_none()),
    ) {
        (_, true) => format!("{} served, not checked", report.tools.len()),
        (true, false) => format!("{allowed} served, all allowed by the portal's scopes"),
        (false, false) => format!(
            "{} served, {allowed} allowed; not allowed: {}",
            report.tools.len(),
            refused.join(", ")
        ),
    };
    out.push_str(&format!("  {:<15} {tools}\n", "tools"));
    if let Some(state) = &report.state {
        out.push_str(&state::render(state));
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
        format!(
            "\nReady: the {} served tool{} can work.\n",
            report.tools.len(),
            if report.tools.len() == 1 { "" } else { "s" }
        )
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
    use super::settings::human_seconds;
    use super::*;
    use crate::bitrix::ApiError;
    use crate::tools::codes::{BITRIX_CODES, REFRESH_CODES};

    /// Every hint the server can give: the code tables and the server's own errors.
    fn every_hint() -> Vec<String> {
        let own = [
            CallError::Network { detail: "x".into() },
            CallError::Unreachable { detail: "x".into() },
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

    /// Hints are shown to the person running `check` exactly as the assistant gets them, so each
    /// must read well for both: no instructions about "the user", a capital, a full stop.
    #[test]
    fn every_hint_reads_well_for_both_readers() {
        for hint in every_hint() {
            let lower = hint.to_lowercase();
            for phrase in ["ask the user", "the user must", "the user can", "their "] {
                assert!(!lower.contains(phrase), "{hint:?} contains {phrase:?}");
            }
            assert!(hint.starts_with(char::is_uppercase), "{hint:?}");
            assert!(hint.ends_with('.'), "{hint:?}");
        }
    }

    #[test]
    fn durations_are_shown_exactly() {
        let cases = [
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(150), "2m30s"),
            (Duration::from_millis(60_500), "60500ms"),
        ];
        for (duration, expected) in cases {
            assert_eq!(human(duration), expected);
        }
        assert_eq!(human_seconds(150), "2m30s");
        assert_eq!(human_seconds(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(human_seconds(-5), "0s");
    }
}
