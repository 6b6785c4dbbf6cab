//! Tool errors as the assistant reads them: one JSON object with the code, what happened, a
//! category, whether retrying can help, and a one-sentence next step. Codes the server knows come
//! from the table in [`super::codes`]; everything else passes through as `upstream`.

use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;

use super::codes::{CodeInfo, REFRESH_CODES, lookup};
use crate::bitrix::{ApiError, CallError, clock::whole_seconds};
use Category::*;

/// What kind of problem an error is, so the assistant can decide between fixing its input,
/// asking the user to fix the setup, waiting, or giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    InvalidInput,
    Authentication,
    Permission,
    RateLimit,
    Upstream,
    Network,
    Configuration,
}

/// One tool error, serialised as the text of an `isError` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolError {
    pub error: String,
    pub error_description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub category: Category,
    pub retryable: bool,
    /// Seconds to wait before calling again, when known (rate and operating limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// How many requests were made, when the server retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// For a write that failed after its request went out: `"unknown"` — the portal may have
    /// executed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub hint: String,
}

impl ToolError {
    /// The arguments cannot be used; nothing was sent.
    pub fn invalid_argument(description: impl Into<String>) -> Self {
        Self {
            error: "INVALID_ARGUMENT".into(),
            error_description: description.into(),
            http_status: None,
            category: InvalidInput,
            retryable: false,
            retry_after_secs: None,
            attempts: None,
            outcome: None,
            hint: "Call again with the argument in the form error_description gives (the tool's input schema lists them); nothing was sent to the portal.".into(),
        }
    }

    /// A write tool, or a write through bitrix24_call, while writes are off. Nothing was sent.
    pub fn writes_disabled(what: &str) -> Self {
        Self::own(
            "WRITES_DISABLED",
            format!(
                "{what} changes the portal, and this server was started without --allow-writes; nothing was sent."
            ),
            None,
            Configuration,
            false,
            "Writes are off until the server is started with --allow-writes (or BITRIX24_ALLOW_WRITES=true); the read tools work as they are.",
        )
    }

    /// A write to a chat outside `--write-chats`, or one whose chat cannot be told. Nothing was
    /// read or sent.
    pub fn chat_not_allowed(description: String) -> Self {
        Self::own(
            "CHAT_NOT_ALLOWED",
            description,
            None,
            Configuration,
            false,
            "This server writes only to the chats its operator listed in --write-chats (BITRIX24_WRITE_CHATS); reads work everywhere. Tell the user which chat you meant to change: only they can add it to the list and restart the server.",
        )
    }

    /// A message to edit or delete is not in the chat the call named (or the acting user cannot
    /// see it there). Nothing was changed.
    pub fn message_not_found(message_id: i64, dialog: &str) -> Self {
        Self::own(
            "MESSAGE_NOT_FOUND",
            format!(
                "Message {message_id} is not in {} as the acting user sees it; nothing was changed.",
                super::write_chats::shown(dialog)
            ),
            None,
            InvalidInput,
            false,
            "Take the message ID from im_dialog_messages_get of that chat (or name the chat the message is in); do not retry with the same pair.",
        )
    }

    /// The user did not confirm a destructive write (declined, cancelled, typed something else, or
    /// the confirmation expired). Nothing was sent.
    pub fn not_confirmed(why: &str) -> Self {
        Self::own(
            "NOT_CONFIRMED",
            format!("The write was not confirmed: {why}; nothing was sent."),
            None,
            Permission,
            false,
            "The user did not confirm this change; do not repeat it unless the user asks for it again.",
        )
    }

    /// The client cannot ask the user (no form elicitation). Nothing was sent.
    pub fn confirmation_unavailable(why: &str) -> Self {
        Self::own(
            "CONFIRMATION_UNAVAILABLE",
            format!(
                "This write needs the user to type a confirmation, but {why}; nothing was sent."
            ),
            None,
            Configuration,
            false,
            "Use a client with form elicitation, or start the server with --skip-write-confirmation (BITRIX24_SKIP_WRITE_CONFIRMATION=true) to rely on the client's own approval prompt alone.",
        )
    }

    /// A result past the size an assistant should be handed.
    pub fn result_too_large(description: String) -> Self {
        Self::own(
            "RESULT_TOO_LARGE",
            description,
            None,
            InvalidInput,
            false,
            "Narrow the request: select only the fields needed (params.select), filter (params.filter), or page with params.start (list methods give 50 items a page).",
        )
    }

    /// A write failed after its request went out: it may have been executed.
    pub fn outcome_unknown(self) -> Self {
        Self {
            retryable: false,
            outcome: Some("unknown".into()),
            hint: "The portal may have executed this write before the failure; check with a read tool (e.g. im_chat_user_list or im_dialog_users_list) before trying again, and do not repeat it blindly.".into(),
            ..self
        }
    }

    /// The server itself failed during the call (a bug); the session goes on.
    pub fn internal() -> Self {
        Self {
            error: "INTERNAL_ERROR".into(),
            error_description: "The server failed while handling this call; nothing is known about whether a request reached the portal.".into(),
            http_status: None,
            category: Upstream,
            retryable: false,
            retry_after_secs: None,
            attempts: None,
            outcome: None,
            hint: "This is a bug in bitrix24-mcp: report it with the server's log, and do not repeat the call in a loop.".into(),
        }
    }

    /// No portal is configured; the server runs so the tool can be listed.
    pub fn not_configured() -> Self {
        Self {
            error: "NOT_CONFIGURED".into(),
            error_description: "No Bitrix24 portal is configured for this server.".into(),
            http_status: None,
            category: Configuration,
            retryable: false,
            retry_after_secs: None,
            attempts: None,
            outcome: None,
            hint: "BITRIX24_WEBHOOK_URL (https://<portal>/rest/<user_id>/<code>/), or an OAuth app's BITRIX24_PORTAL_URL, CLIENT_ID, CLIENT_SECRET and REFRESH_TOKEN, must be set in the server's environment and the server restarted; --demo starts a sample portal instead.".into(),
        }
    }

    /// Classifies a failed call. Exhaustive on purpose: a new kind of failure must be placed here.
    pub fn from_call(err: &CallError) -> Self {
        match err {
            CallError::Api(api) => Self::from_api(api, lookup(&api.code)),
            CallError::Network { detail } | CallError::Unreachable { detail } => Self::own(
                "NETWORK_ERROR",
                detail.clone(),
                None,
                Network,
                true,
                "The portal could not be reached; retry in a moment, and if it persists, the portal address and the network need checking.",
            ),
            CallError::Timeout { .. } => Self::own(
                "TIMEOUT",
                err.to_string(),
                None,
                Network,
                true,
                "The portal answered too slowly; retry in a moment, and if it keeps happening, --request-timeout can be raised.",
            ),
            CallError::Redirect {
                status,
                location_host,
            } => Self::own(
                "PORTAL_MOVED",
                format!(
                    "The portal address changed: it answers HTTP {status} pointing to {}. Redirects are not followed, to keep credentials from going to a host nobody configured.",
                    location_host.as_deref().unwrap_or("an unnamed location")
                ),
                Some(*status),
                Configuration,
                false,
                "The configured portal address (BITRIX24_WEBHOOK_URL or BITRIX24_PORTAL_URL) must be updated and the server restarted; do not retry before that.",
            ),
            CallError::UnexpectedResponse { status, detail } => {
                let server_side = *status >= 500;
                Self::own(
                    "UNEXPECTED_RESPONSE",
                    format!("The answer is not a Bitrix24 response: {detail}."),
                    Some(*status),
                    Upstream,
                    server_side,
                    if server_side {
                        "The portal or a proxy in front of it failed; retry after a few seconds, and if it persists the portal may be down."
                    } else {
                        "Something other than the Bitrix24 REST API answered: the configured address must point at the portal itself."
                    },
                )
            }
            CallError::TokenRefresh(inner) => Self::from_refresh(inner),
            CallError::OperationBlocked { retry_after, .. } => Self {
                retry_after_secs: Some(whole_seconds(*retry_after)),
                ..Self::own(
                    "OPERATION_TIME_LIMIT",
                    format!("{err}; no request was sent."),
                    None,
                    RateLimit,
                    true,
                    "The portal blocked this method after it used its execution-time budget; call it again after retry_after_secs, other methods still work.",
                )
            },
            CallError::RateLimited { retry_after } => Self {
                retry_after_secs: Some(whole_seconds(*retry_after)),
                ..Self::own(
                    "RATE_LIMITED",
                    format!("{err}, longer than allowed; no request was sent."),
                    None,
                    RateLimit,
                    true,
                    "Too many calls are queued for the portal's request-rate limit; wait retry_after_secs and make fewer parallel calls.",
                )
            },
            CallError::StateUnavailable { detail } => Self::own(
                "STATE_UNAVAILABLE",
                format!("{detail}; nothing was sent."),
                None,
                Upstream,
                true,
                "The state this server shares with other processes or instances (the token file's lock, or the state store) was busy or unreachable; retry in a few seconds, and if it persists check that the state store is running and reachable.",
            ),
            CallError::StateUnreadable { detail } => Self::own(
                "STATE_KEY_MISMATCH",
                format!("{detail}; nothing was sent."),
                None,
                Configuration,
                false,
                "Every instance sharing a state store must use the same BITRIX24_STATE_KEY: give this server the key the others use and restart it; retrying cannot help.",
            ),
            CallError::StateMisconfigured { detail } => Self::own(
                "STATE_MISCONFIGURED",
                format!("{detail}; nothing was sent."),
                None,
                Configuration,
                false,
                "Something in the way of the state this server keeps on disk: the description names the path and what to change; retrying cannot help until that is fixed.",
            ),
            CallError::RetriesExhausted { attempts, last } => {
                let inner = Self::from_call(last);
                Self {
                    error_description: format!(
                        "{} (gave up after {attempts} attempts)",
                        inner.error_description
                    ),
                    attempts: Some(*attempts),
                    ..inner
                }
            }
        }
    }

    /// A refresh failed: the OAuth server's verdict, or why it could not be asked.
    fn from_refresh(inner: &CallError) -> Self {
        let base = match inner {
            CallError::Api(api) => {
                let known = REFRESH_CODES.iter().find(|info| info.code == api.code);
                let mut error = Self::from_api(api, known);
                if known.is_none() {
                    error.category = Authentication;
                    error.hint = "The OAuth server refused to refresh the access token: the app's credentials need checking, and the app may need to be authorized again.".into();
                }
                error
            }
            CallError::Network { .. } | CallError::Unreachable { .. } | CallError::Timeout { .. } => Self {
                hint: "The OAuth server could not be reached to refresh the access token; retry in a moment.".into(),
                ..Self::from_call(inner)
            },
            other => Self::from_call(other),
        };
        Self {
            error_description: format!("Token refresh failed: {}", base.error_description),
            ..base
        }
    }

    fn own(
        code: &str,
        description: String,
        http_status: Option<u16>,
        category: Category,
        retryable: bool,
        hint: &str,
    ) -> Self {
        Self {
            error: code.to_owned(),
            error_description: description,
            http_status,
            category,
            retryable,
            retry_after_secs: None,
            attempts: None,
            outcome: None,
            hint: hint.to_owned(),
        }
    }

    fn from_api(api: &ApiError, known: Option<&CodeInfo>) -> Self {
        let description = match (api.description.trim(), known) {
            ("", Some(info)) => info.meaning.to_owned(),
            ("", None) => "(no description given)".to_owned(),
            (text, _) => text.to_owned(),
        };
        let (category, retryable, hint) = match known {
            Some(info) => (info.category, info.retryable, info.hint.to_owned()),
            None => (
                Upstream,
                api.status >= 500,
                "Bitrix24 returned an error code this server does not know; read error_description and retry only if it describes a temporary failure.".to_owned(),
            ),
        };
        Self {
            error: api.code.clone(),
            error_description: description,
            http_status: Some(api.status),
            category,
            retryable,
            retry_after_secs: api.retry_after.map(whole_seconds),
            attempts: None,
            outcome: None,
            hint,
        }
    }

    /// The JSON object the assistant parses.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and bools cannot fail; fall back to a fixed
        // text rather than panic all the same.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"error":"INTERNAL","error_description":"error could not be encoded"}"#.to_owned()
        })
    }

    /// The error as one plain sentence: code, what happened, whether to retry, and the hint.
    pub fn sentence(&self) -> String {
        let description = self.error_description.trim_end();
        let stop = if description.ends_with(['.', '!', '?']) {
            ""
        } else {
            "."
        };
        let retry = match (self.retryable, self.retry_after_secs) {
            (false, _) => "Retrying will not help.".to_owned(),
            (true, None) => "Retrying may help.".to_owned(),
            (true, Some(secs)) => format!("Retrying may help after {secs} s."),
        };
        format!(
            "Error {}: {description}{stop} {retry} Hint: {}",
            self.error, self.hint
        )
    }

    /// An `isError` result with no `structuredContent` (clients validate that against the
    /// success schema): first the error as a plain sentence, then the JSON object. The sentence
    /// comes first because some clients (Gemini CLI) turn a first text item that parses as JSON
    /// into structured content, validate it against the tool's output schema and show the model
    /// only the failed validation.
    pub fn into_result(self) -> CallToolResult {
        CallToolResult::error(vec![
            ContentBlock::text(self.sentence()),
            ContentBlock::text(self.to_json()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::super::codes::BITRIX_CODES;
    use super::*;

    fn api(code: &str, status: u16, description: &str) -> ToolError {
        ToolError::from_call(&CallError::Api(ApiError::new(code, description, status)))
    }

    /// Expected classification of every documented code, written out independently of the table.
    const EXPECTED: &[(&str, u16, Category, bool)] = &[
        ("CHAT_ID_EMPTY", 400, InvalidInput, false),
        ("ACCESS_ERROR", 403, Permission, false),
        ("ACCESS_DENIED_EXTEND", 403, Permission, false),
        ("ACCESS_DENIED_KICK", 403, Permission, false),
        ("USER_NOT_FOUND", 400, InvalidInput, false),
        ("USER_ID_EMPTY", 400, InvalidInput, false),
        ("DIALOG_ID_EMPTY", 400, InvalidInput, false),
        ("FIRST_ID_STRING", 400, InvalidInput, false),
        ("LAST_ID_STRING", 400, InvalidInput, false),
        ("FIND_SHORT", 400, InvalidInput, false),
        ("INVALID_FORMAT", 400, InvalidInput, false),
        ("ID_EMPTY", 400, InvalidInput, false),
        ("USER_NOT_EXISTS", 400, InvalidInput, false),
        ("INTERNAL_SERVER_ERROR", 500, Upstream, true),
        ("ERROR_UNEXPECTED_ANSWER", 500, Upstream, true),
        ("QUERY_LIMIT_EXCEEDED", 503, RateLimit, true),
        ("OPERATION_TIME_LIMIT", 429, RateLimit, true),
        ("ERROR_BATCH_METHOD_NOT_ALLOWED", 405, Upstream, false),
        ("ERROR_BATCH_LENGTH_EXCEEDED", 400, Upstream, false),
        ("NO_AUTH_FOUND", 401, Authentication, false),
        ("INVALID_REQUEST", 400, Configuration, false),
        ("OVERLOAD_LIMIT", 503, RateLimit, false),
        ("ACCESS_DENIED", 403, Permission, false),
        ("INVALID_CREDENTIALS", 403, Permission, false),
        ("ERROR_MANIFEST_IS_NOT_AVAILABLE", 404, Upstream, false),
        ("insufficient_scope", 403, Permission, false),
        ("expired_token", 401, Authentication, false),
        ("invalid_token", 401, Authentication, false),
        ("user_access_error", 403, Permission, false),
        ("PORTAL_DELETED", 500, Configuration, false),
        ("ERROR_METHOD_NOT_FOUND", 404, Configuration, false),
        ("MESSAGE_EMPTY", 400, InvalidInput, false),
        ("MESSAGE_ID_ERROR", 400, InvalidInput, false),
        ("CANT_EDIT_MESSAGE", 403, Permission, false),
        ("REPLY_ACCESS_ERROR", 400, Permission, false),
        ("REPLY_FROM_OTHER_CHAT_ERROR", 400, InvalidInput, false),
        ("PARAMS_ERROR", 400, InvalidInput, false),
    ];

    #[test]
    fn every_documented_code_has_its_category_retry_flag_and_hint() {
        assert_eq!(EXPECTED.len(), BITRIX_CODES.len());
        for &(code, status, category, retryable) in EXPECTED {
            let e = api(code, status, "portal text");
            assert_eq!(e.error, code);
            assert_eq!(e.http_status, Some(status), "{code}");
            assert_eq!(e.category, category, "{code}");
            assert_eq!(e.retryable, retryable, "{code}");
            assert_eq!(e.error_description, "portal text");
            assert!(
                e.hint.ends_with('.') && e.hint.len() > 30,
                "{code}: {}",
                e.hint
            );
        }
    }

    #[test]
    fn tables_have_no_duplicate_codes() {
        for table in [BITRIX_CODES, REFRESH_CODES] {
            for (i, a) in table.iter().enumerate() {
                assert!(
                    table[i + 1..].iter().all(|b| b.code != a.code),
                    "{}",
                    a.code
                );
            }
        }
    }

    #[test]
    fn insufficient_scope_tells_to_add_the_im_scope() {
        let e = api("insufficient_scope", 403, "");
        assert!(e.hint.contains("lacks the im scope"), "{}", e.hint);
        assert_eq!(
            e.error_description,
            "The webhook or application lacks the required scope"
        );
    }

    #[test]
    fn codes_are_case_sensitive_and_unknown_ones_pass_through_as_upstream() {
        let e = api("chat_id_empty", 400, "odd");
        assert_eq!(
            (e.error.as_str(), e.category, e.retryable),
            ("chat_id_empty", Upstream, false)
        );
        let e = api("SOMETHING_NEW", 502, "");
        assert_eq!((e.category, e.retryable), (Upstream, true));
        assert_eq!(e.error_description, "(no description given)");
    }

    #[test]
    fn transport_failures_have_our_own_codes() {
        let cases = [
            (
                CallError::Network { detail: "x".into() },
                "NETWORK_ERROR",
                Network,
                true,
                None,
            ),
            (
                CallError::Timeout {
                    after: std::time::Duration::from_secs(30),
                },
                "TIMEOUT",
                Network,
                true,
                None,
            ),
            (
                CallError::Redirect {
                    status: 302,
                    location_host: Some("new.bitrix24.com".into()),
                },
                "PORTAL_MOVED",
                Configuration,
                false,
                Some(302),
            ),
            (
                CallError::UnexpectedResponse {
                    status: 502,
                    detail: "html".into(),
                },
                "UNEXPECTED_RESPONSE",
                Upstream,
                true,
                Some(502),
            ),
            (
                CallError::UnexpectedResponse {
                    status: 200,
                    detail: "html".into(),
                },
                "UNEXPECTED_RESPONSE",
                Upstream,
                false,
                Some(200),
            ),
        ];
        for (err, code, category, retryable, status) in cases {
            let e = ToolError::from_call(&err);
            assert_eq!(
                (e.error.as_str(), e.category, e.retryable, e.http_status),
                (code, category, retryable, status)
            );
        }
    }

    #[test]
    fn limit_failures_carry_retry_after_secs() {
        let blocked = ToolError::from_call(&CallError::OperationBlocked {
            method: "im.chat.user.list".into(),
            retry_after: std::time::Duration::from_millis(41_500),
        });
        assert_eq!(
            (
                blocked.error.as_str(),
                blocked.category,
                blocked.retryable,
                blocked.retry_after_secs
            ),
            ("OPERATION_TIME_LIMIT", RateLimit, true, Some(42))
        );
        let queued = ToolError::from_call(&CallError::RateLimited {
            retry_after: std::time::Duration::from_secs(31),
        });
        assert_eq!(
            (queued.error.as_str(), queued.retry_after_secs),
            ("RATE_LIMITED", Some(31))
        );
    }

    #[test]
    fn exhausted_retries_keep_the_last_code_and_count_attempts() {
        let mut last = ApiError::new("QUERY_LIMIT_EXCEEDED", "Too many requests", 503);
        last.retry_after = Some(std::time::Duration::from_millis(500));
        let e = ToolError::from_call(&CallError::RetriesExhausted {
            attempts: 4,
            last: Box::new(CallError::Api(last)),
        });
        assert_eq!(e.error, "QUERY_LIMIT_EXCEEDED");
        assert_eq!(e.attempts, Some(4));
        assert_eq!(e.retry_after_secs, Some(1));
        assert_eq!(
            e.error_description,
            "Too many requests (gave up after 4 attempts)"
        );
    }

    #[test]
    fn refresh_failures_say_what_to_do() {
        let refresh =
            |inner: CallError| ToolError::from_call(&CallError::TokenRefresh(Box::new(inner)));
        let grant = refresh(CallError::Api(ApiError::new("invalid_grant", "", 400)));
        assert_eq!((grant.category, grant.retryable), (Authentication, false));
        assert!(
            grant.hint.contains("the app must be authorized again"),
            "{}",
            grant.hint
        );
        assert!(
            grant
                .error_description
                .starts_with("Token refresh failed: ")
        );
        let client = refresh(CallError::Api(ApiError::new("invalid_client", "", 401)));
        assert!(client.hint.contains("BITRIX24_CLIENT_SECRET"));
        let offline = refresh(CallError::Network {
            detail: "refused".into(),
        });
        assert_eq!(
            (offline.error.as_str(), offline.category, offline.retryable),
            ("NETWORK_ERROR", Network, true)
        );
        let odd = refresh(CallError::Api(ApiError::new("weird", "", 400)));
        assert_eq!(odd.category, Authentication);
    }

    #[test]
    fn an_error_result_is_a_sentence_that_is_not_json_then_the_object() {
        let error = ToolError::from_call(&CallError::Api(ApiError::new(
            "QUERY_LIMIT_EXCEEDED",
            "Too many requests",
            503,
        )));
        let result = error.clone().into_result();
        assert_eq!(result.is_error, Some(true));
        assert!(result.structured_content.is_none());
        let texts: Vec<&str> = result
            .content
            .iter()
            .map(|c| c.as_text().unwrap().text.as_str())
            .collect();
        assert_eq!(texts.len(), 2);
        assert!(serde_json::from_str::<serde_json::Value>(texts[0]).is_err());
        assert_eq!(
            texts[0],
            format!(
                "Error QUERY_LIMIT_EXCEEDED: Too many requests. Retrying may help. Hint: {}",
                error.hint
            )
        );
        assert_eq!(texts[1], error.to_json());
        let waits = ToolError {
            retry_after_secs: Some(7),
            ..error
        };
        assert!(
            waits
                .sentence()
                .contains("Retrying may help after 7 s. Hint: ")
        );
        let fixed = ToolError::not_configured().sentence();
        assert!(fixed.starts_with("Error NOT_CONFIGURED: No Bitrix24 portal is configured for this server. Retrying will not help. Hint: BITRIX24_WEBHOOK_URL"), "{fixed}");
    }

    #[test]
    fn json_omits_http_status_when_there_was_none() {
        let json: serde_json::Value =
            serde_json::from_str(&ToolError::not_configured().to_json()).unwrap();
        assert!(json.get("http_status").is_none());
        assert_eq!(json["category"], "configuration");
        assert_eq!(json["retryable"], false);
        assert!(
            json["hint"]
                .as_str()
                .unwrap()
                .contains("BITRIX24_WEBHOOK_URL")
        );
    }
}
