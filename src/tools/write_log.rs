//! The write log: one info line per write, with the tool, what changes, the outcome, how it was
//! confirmed, the transport and the session, and the Bitrix24 user it ran as (the person signed
//! in, with their name, or the webhook's user) — never a secret. A write under way is logged even
//! when its caller goes away (a cancelled call, a closed connection): its outcome is then
//! unknown, since the request may already have reached the portal.

use tracing::info;

use super::acting::Acting;
use super::error::ToolError;
use crate::bitrix::{Auth, Client};

/// A write that has started. [`WriteLog::finished`] logs its outcome; dropped before that, it
/// logs the outcome as unknown.
#[derive(Debug)]
pub struct WriteLog {
    pub tool: String,
    /// What changes, e.g. "remove user 1271 from chat 2935".
    pub change: String,
    pub confirmed: &'static str,
    pub transport: &'static str,
    pub session: String,
    /// The Bitrix24 user the write ran as (ID and name), when each person signs in.
    pub user: Option<(u64, String)>,
    logged: bool,
}

impl WriteLog {
    /// Opens the entry for a write about to be sent.
    pub fn start(
        tool: &str,
        change: String,
        confirmed: &'static str,
        transport: &'static str,
        session: &str,
    ) -> Self {
        Self {
            tool: tool.to_owned(),
            change,
            confirmed,
            transport,
            session: session.to_owned(),
            user: None,
            logged: false,
        }
    }

    /// Names the user the write runs as.
    pub fn as_user(mut self, acting: Option<&Acting>) -> Self {
        self.user = acting.map(|a| (a.user_id, a.user_name.clone()));
        self
    }

    /// Names the webhook's user when no signed-in person is named: the webhook URL says who it
    /// acts as (by ID; the name would cost a request). An OAuth application's user is not known
    /// without asking the portal, so such a write is logged without one.
    pub fn or_webhook_user(mut self, client: &Client) -> Self {
        if self.user.is_none()
            && let Auth::Webhook(webhook) = client.auth()
        {
            self.user = Some((webhook.user_id(), String::new()));
        }
        self
    }

    /// Logs how the write ended.
    pub fn finished<T>(mut self, outcome: &Result<T, ToolError>) {
        let outcome = match outcome {
            Ok(_) => "done".to_owned(),
            Err(error) if error.outcome.is_some() => format!("unknown ({})", error.error),
            Err(error) => format!("failed ({})", error.error),
        };
        self.log(&outcome);
    }

    fn log(&mut self, outcome: &str) {
        self.logged = true;
        let (user_id, user_name) = match &self.user {
            Some((id, name)) => (Some(*id), Some(name.as_str()).filter(|n| !n.is_empty())),
            None => (None, None),
        };
        info!(tool = self.tool.as_str(), change = %self.change, outcome = %outcome, confirmed = self.confirmed, transport = self.transport, session = %self.session, user_id, user_name, "write");
    }
}

impl Drop for WriteLog {
    fn drop(&mut self) {
        if !self.logged {
            self.log("unknown (the call ended before the portal answered: cancelled by the client or its connection closed)");
        }
    }
}
