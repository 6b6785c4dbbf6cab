//! The sample portal's data: who the webhook acts as, the people and who of them may sign in,
//! which chats exist with whom, the installed app; and the sample itself.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::people::{self, ChatInfo, DemoUser};
use super::{OAuthApp, RecordedRequest};

/// The portal's data: who the webhook acts as, which chats exist with whom, the installed app.
#[derive(Debug, Clone)]
pub struct PortalData {
    /// The employee the webhook (and the OAuth app's seed tokens) act as.
    pub webhook_user_id: u64,
    /// The webhook's code. Only requests carrying it are served.
    pub webhook_code: String,
    /// Scopes granted (answered by the `scope` method).
    pub scopes: Vec<String>,
    /// Chat ID → participant IDs.
    pub chats: BTreeMap<i64, Vec<i64>>,
    /// Chat ID → what the chat is (chats without an entry get a plain default).
    pub chat_info: BTreeMap<i64, ChatInfo>,
    /// The people, by ID.
    pub users: BTreeMap<i64, DemoUser>,
    /// Each user's recent list, newest first, as dialog IDs (may repeat); none for the others.
    pub recent: BTreeMap<i64, Vec<String>>,
    /// The people the sign-in page offers, in order.
    pub signin_users: Vec<i64>,
    /// The portal's administrators (`profile` answers `ADMIN: true`).
    pub admins: Vec<i64>,
    /// The portal's general chat: `im.chat.user.list` refuses it with `ACCESS_ERROR`.
    pub general_chat_id: i64,
    /// An installed OAuth application, when calls by token and people's sign-in are to be served.
    pub oauth: Option<OAuthApp>,
    /// The request-rate bucket (drain per second, burst) the portal enforces, if any.
    pub rate_limit: Option<(f64, u32)>,
    /// Called with each request (REST and token server) as it arrives, before it is answered.
    pub observer: Option<RequestObserver>,
}

/// A callback that sees each REST request as it arrives (tests use it to check what was true at
/// that moment).
#[derive(Clone)]
pub struct RequestObserver(pub Arc<dyn Fn(&RecordedRequest) + Send + Sync>);

impl fmt::Debug for RequestObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestObserver")
    }
}

impl PortalData {
    /// These settings with the chats' current members.
    pub(super) fn clone_with_members(&self, members: &BTreeMap<i64, Vec<i64>>) -> Self {
        Self {
            chats: members.clone(),
            ..self.clone()
        }
    }

    /// What the sample data offers to try first, as the start-up log says it. Each clause is
    /// checked against the running demo portal by a test (tests/first_hour.rs).
    pub const SAMPLE_SUMMARY: &'static str = "chat 2935 has users 99, 1269, 1271; chat 1 is refused; \
         chat 2939 hides its members; chat 2936 does not include the webhook's user, so it answers \
         an empty list";

    /// The sample data of the docs: chat 2935 ("Marketing team") has users 99, 1269 and 1271, and
    /// the webhook acts as user 99 (Anna Petrova). Chat 2936 exists without user 99, so it answers
    /// an empty list. Chat 1 is the general chat. Also: 2937, the discussion chat of deal 1663
    /// (with a bot); 2938, workgroup 17's chat (with an extranet user); 2939, whose members are
    /// hidden; 2940, a chat of 450; private dialogs with 1269 and 1271. Anna (99) and Maria
    /// (1271, in fewer chats) can sign in; Olga (1) is the administrator. See [`people`].
    pub fn sample(webhook_code: impl Into<String>) -> Self {
        Self {
            webhook_user_id: 99,
            webhook_code: webhook_code.into(),
            scopes: vec!["im".into(), "user_basic".into()],
            chats: people::chats(),
            chat_info: people::chat_info(),
            users: people::users(),
            recent: people::recent(),
            signin_users: people::signin_users(),
            admins: people::admins(),
            general_chat_id: 1,
            oauth: None,
            rate_limit: None,
            observer: None,
        }
    }

    /// The sample data with `app` installed for people's sign-in, as `--demo --auth oauth` runs
    /// it (see [`OAuthApp::signin`]).
    pub fn sample_with_signin(webhook_code: impl Into<String>, app: OAuthApp) -> Self {
        Self {
            oauth: Some(app),
            ..Self::sample(webhook_code)
        }
    }
}
