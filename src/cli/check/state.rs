//! The shared-state part of `check`: which store, whether it answers, and whether the key opens
//! the tokens kept there. Never shows the store's password or the key.

use serde::Serialize;

use crate::bitrix::{Auth, Client};
use crate::tools::ToolError;

use super::Problem;

/// What the state store showed. Absent from the report when no store is configured.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    /// The address without credentials, and the key prefix.
    pub store: String,
    pub reachable: bool,
    /// For an OAuth app: what the store holds for it, and whether the key opens it.
    pub tokens: Option<String>,
}

/// Pings the store and, for an OAuth app, opens its token record.
pub async fn probe(client: &Client, problems: &mut Vec<Problem>) -> Option<StateReport> {
    let store = client.state_store()?;
    let mut report = StateReport {
        store: store.describe(),
        reachable: false,
        tokens: None,
    };
    if let Err(err) = store.ping().await {
        problems.push(Problem::from(ToolError::from_call(&err)));
        return Some(report);
    }
    report.reachable = true;
    if let Auth::OAuth(session) = client.auth()
        && let Some(shared) = session.shared_tokens()
    {
        report.tokens = Some(match shared.load().await {
            Ok(Some(_)) => "stored; BITRIX24_STATE_KEY opens them".into(),
            Ok(None) => "none stored yet (the first call stores the configured ones)".into(),
            Err(err) => {
                problems.push(Problem::from(ToolError::from_call(&err)));
                "stored, but unreadable (see the problems below)".into()
            }
        });
    }
    Some(report)
}

/// The report's lines for people.
pub fn render(report: &StateReport) -> String {
    let mut out = format!("\nShared state\n  {:<15} {}\n", "store", report.store);
    out.push_str(&format!(
        "  {:<15} {}\n",
        "reachable",
        if report.reachable { "yes" } else { "no" }
    ));
    if let Some(tokens) = &report.tokens {
        out.push_str(&format!("  {:<15} {tokens}\n", "oauth tokens"));
    }
    out
}
