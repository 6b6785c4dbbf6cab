//! Typed confirmation of destructive writes. A tool asks a [`Question`] — what will happen, in
//! words, and the value the user must type (a chat ID, a method name) — and this module asks the
//! user in whatever way the client's protocol allows:
//!
//! - up to 2025-11-25: an `elicitation/create` form request during the call;
//! - 2026-07-28 (stateless): an input-required result carrying the form and a sealed state (HMAC
//!   with a random per-process key, 10-minute expiry, the tool and its arguments); the retry must
//!   carry the typed value, and the arguments are taken from the sealed state, not the retry.
//!
//! A yes/no button would not do: Codex accepts an empty form by itself in full-auto mode. Declined,
//! cancelled, mismatched or expired: `NOT_CONFIRMED`. A client without form elicitation:
//! `CONFIRMATION_UNAVAILABLE`. Nothing is sent to the portal in either case.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationSchema, InputRequest,
    InputRequests, InputRequiredResult, InputResponses, JsonObject, ProtocolVersion,
};
use rmcp::service::{ElicitationMode, RequestContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::error::ToolError;
use crate::bitrix::clock::unix_now;

/// What the user is asked to confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// What will happen, in words, ending with what to type.
    pub message: String,
    /// The value the user must type, exactly (surrounding spaces aside).
    pub expected: String,
}

/// How a confirmation ended.
#[derive(Debug)]
pub enum Verdict {
    /// Go ahead with these arguments (from the sealed state on the stateless path). `how` says
    /// how it was confirmed, for the write log.
    Confirmed {
        how: &'static str,
        arguments: JsonObject,
    },
    /// Stateless protocol: return this, the client asks the user and calls again.
    Ask(InputRequiredResult),
    /// Not confirmed (or not askable): answer this error, send nothing.
    Refused(ToolError),
}

/// The key of the form field and of the input request.
const FIELD: &str = "confirm";
/// How long a sealed confirmation stays valid.
const STATE_LIFETIME_SECS: i64 = 600;
/// How long the user has to answer an elicitation during a call.
const ELICITATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Seals and opens the stateless path's request state.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

/// What the sealed state holds.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sealed {
    tool: String,
    arguments: JsonObject,
    expected: String,
    expires_at: i64,
}

impl Sealer {
    /// A sealer with a fresh random key: states do not outlive the process.
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            // No OS randomness is a broken machine; fall back to the process's hasher keys,
            // which are randomly seeded too.
            for (i, chunk) in key.chunks_mut(8).enumerate() {
                use std::hash::{BuildHasher, Hasher};
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_usize(i);
                chunk.copy_from_slice(&hasher.finish().to_le_bytes());
            }
        }
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()))
    }

    fn seal(&self, sealed: &Sealed) -> String {
        let payload = serde_json::to_vec(sealed).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    fn open(&self, state: &str, now: i64) -> Result<Sealed, &'static str> {
        let (payload, tag) = state.split_once('.').ok_or("malformed")?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "malformed")?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| "malformed")?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag)
            .map_err(|_| "not sealed by this server")?;
        let sealed: Sealed = serde_json::from_slice(&payload).map_err(|_| "malformed")?;
        if sealed.expires_at < now {
            return Err("expired");
        }
        Ok(sealed)
    }
}

impl Default for Sealer {
    fn default() -> Self {
        Self::new()
    }
}

/// What the confirmation needs from the call.
pub struct Call<'a> {
    pub tool: &'a str,
    pub arguments: &'a JsonObject,
    pub request_state: Option<&'a str>,
    pub input_responses: Option<&'a InputResponses>,
}

/// Asks the user to confirm `question`, as the client's protocol allows.
pub async fn confirm(
    sealer: &Sealer,
    context: Option<&RequestContext<RoleServer>>,
    call: Call<'_>,
    question: Question,
    skip: bool,
) -> Verdict {
    if let Some(state) = call.request_state {
        return answered(sealer, &call, state);
    }
    if skip {
        return Verdict::Confirmed {
            how: "not asked (--skip-write-confirmation)",
            arguments: call.arguments.clone(),
        };
    }
    let Some(context) = context else {
        return Verdict::Refused(ToolError::confirmation_unavailable(
            "this way of calling (the call command) cannot ask the user",
        ));
    };
    let stateless = context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
    if stateless {
        let form = context
            .meta
            .client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.form.is_some() || e.url.is_none());
        if !form {
            return Verdict::Refused(ToolError::confirmation_unavailable(
                "the client does not offer form elicitation",
            ));
        }
        return ask_statelessly(sealer, &call, question);
    }
    if !context
        .peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
    {
        return Verdict::Refused(ToolError::confirmation_unavailable(
            "the client does not offer form elicitation",
        ));
    }
    let asked = context
        .peer
        .create_elicitation_with_timeout(form(&question), Some(ELICITATION_TIMEOUT))
        .await;
    match asked {
        Ok(result) => match judge(result.action, result.content.as_ref(), &question.expected) {
            Ok(()) => Verdict::Confirmed {
                how: "typed confirmation (elicitation)",
                arguments: call.arguments.clone(),
            },
            Err(why) => Verdict::Refused(ToolError::not_confirmed(why)),
        },
        // The question never reached the user (a stateless HTTP deployment cannot send the
        // client a request, or the client failed): nobody declined, the client could not ask.
        Err(err) => Verdict::Refused(ToolError::confirmation_unavailable(&format!(
            "asking the client failed ({})",
            crate::bitrix::untrusted::bounded(&err.to_string(), 200)
        ))),
    }
}

fn form(question: &Question) -> ElicitRequestParams {
    let schema = ElicitationSchema::builder()
        .required_string_property(FIELD, |s| {
            s.description(format!("Type {} to confirm", question.expected))
        })
        .build()
        // One required string property is always a valid schema.
        .unwrap_or_else(|_| ElicitationSchema::new(Default::default()));
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: question.message.clone(),
        requested_schema: schema,
    }
}

/// The stateless path's first round: the form, and the sealed call.
fn ask_statelessly(sealer: &Sealer, call: &Call<'_>, question: Question) -> Verdict {
    let state = sealer.seal(&Sealed {
        tool: call.tool.to_owned(),
        arguments: call.arguments.clone(),
        expected: question.expected.clone(),
        expires_at: unix_now().saturating_add(STATE_LIFETIME_SECS),
    });
    let mut requests = InputRequests::new();
    requests.insert(
        FIELD.to_owned(),
        InputRequest::Elicitation(ElicitRequest::new(form(&question))),
    );
    Verdict::Ask(InputRequiredResult::new(Some(requests), Some(state)))
}

/// The stateless path's second round: the sealed call and the typed value.
fn answered(sealer: &Sealer, call: &Call<'_>, state: &str) -> Verdict {
    let sealed = match sealer.open(state, unix_now()) {
        Ok(sealed) if sealed.tool == call.tool => sealed,
        Ok(_) => {
            return Verdict::Refused(ToolError::not_confirmed(
                "the confirmation was for another tool",
            ));
        }
        Err(why) => {
            return Verdict::Refused(ToolError::not_confirmed(&format!(
                "the confirmation state is {why}; call the tool again to be asked anew"
            )));
        }
    };
    let response = call
        .input_responses
        .and_then(|responses| responses.get(FIELD))
        .and_then(|value| serde_json::from_value::<rmcp::model::ElicitResult>(value.clone()).ok());
    let Some(response) = response else {
        return Verdict::Refused(ToolError::not_confirmed(
            "no answer to the confirmation came back",
        ));
    };
    match judge(response.action, response.content.as_ref(), &sealed.expected) {
        Ok(()) => Verdict::Confirmed {
            how: "typed confirmation (input required)",
            arguments: sealed.arguments,
        },
        Err(why) => Verdict::Refused(ToolError::not_confirmed(why)),
    }
}

/// Whether the user accepted and typed the expected value.
fn judge(
    action: ElicitationAction,
    content: Option<&Value>,
    expected: &str,
) -> Result<(), &'static str> {
    match action {
        ElicitationAction::Accept => {}
        ElicitationAction::Decline => return Err("the user declined"),
        ElicitationAction::Cancel => return Err("the user cancelled"),
        // A newer protocol's answer this server does not know is no acceptance.
        _ => return Err("the answer was not an acceptance"),
    }
    let typed = content
        .and_then(|c| c.get(FIELD))
        .and_then(Value::as_str)
        .map(str::trim);
    match typed {
        Some(typed) if typed == expected => Ok(()),
        Some(_) => Err("the value typed does not match"),
        None => Err("nothing was typed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealed() -> Sealed {
        Sealed {
            tool: "im_chat_leave".into(),
            arguments: json!({"CHAT_ID": 7}).as_object().unwrap().clone(),
            expected: "7".into(),
            expires_at: 1000,
        }
    }

    #[test]
    fn a_sealed_state_opens_only_untampered_unexpired_and_here() {
        let sealer = Sealer::new();
        let state = sealer.seal(&sealed());
        assert_eq!(sealer.open(&state, 999), Ok(sealed()));
        assert_eq!(sealer.open(&state, 1001), Err("expired"));
        assert_eq!(
            Sealer::new().open(&state, 999),
            Err("not sealed by this server")
        );
        let (payload, tag) = state.split_once('.').unwrap();
        let mut forged: Sealed =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        forged.arguments = json!({"CHAT_ID": 8}).as_object().unwrap().clone();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap())
        );
        assert_eq!(sealer.open(&forged, 999), Err("not sealed by this server"));
        assert_eq!(sealer.open("garbage", 999), Err("malformed"));
    }

    #[test]
    fn only_an_accepted_exact_value_confirms() {
        let typed = |v: &str| json!({"confirm": v});
        assert_eq!(
            judge(ElicitationAction::Accept, Some(&typed(" 7 ")), "7"),
            Ok(())
        );
        assert!(judge(ElicitationAction::Accept, Some(&typed("8")), "7").is_err());
        assert!(judge(ElicitationAction::Accept, Some(&json!({})), "7").is_err());
        assert!(judge(ElicitationAction::Accept, None, "7").is_err());
        assert!(judge(ElicitationAction::Decline, Some(&typed("7")), "7").is_err());
        assert!(judge(ElicitationAction::Cancel, Some(&typed("7")), "7").is_err());
    }
}
