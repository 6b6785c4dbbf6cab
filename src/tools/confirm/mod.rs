//! Typed confirmation of destructive writes. A tool asks a [`Question`] — what will happen, in
//! words, and the value the user must type (a chat ID, a method name) — and this module asks the
//! user in whatever way the client's protocol allows:
//!
//! - up to 2025-11-25: an `elicitation/create` form request during the call;
//! - 2026-07-28 (stateless): an input-required result carrying the form and a sealed state
//!   ([`sealed`]: the tool, its arguments, the portal, the session, a one-time ID, a 10-minute
//!   expiry); the retry must carry the typed value, and the arguments are taken from the sealed
//!   state, not the retry. A state answers once: when the typed value matches, its ID is spent
//!   (in the state store when there is one, so on every instance) before anything is sent; a
//!   refusal spends nothing. It answers only in the session (or connection) that asked, where
//!   there is one.
//!
//! Whether the client can be asked at all is decided before anything is read from the portal;
//! only then are the targets named ([`targets`]). A yes/no button would not do: Codex accepts an
//! empty form by itself in full-auto mode. Declined, cancelled, mismatched, expired or already
//! used: `NOT_CONFIRMED`. A client without form elicitation: `CONFIRMATION_UNAVAILABLE`. Nothing
//! is sent to the portal in either case.

pub mod sealed;
pub mod targets;

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationSchema, InputRequest,
    InputRequests, InputRequiredResult, InputResponses, JsonObject, ProtocolVersion,
};
use rmcp::service::{ElicitationMode, RequestContext};
use serde_json::Value;

use super::acting::Acting;
use super::error::ToolError;
use super::registry::Intent;
use crate::bitrix::Client;
use crate::bitrix::clock::unix_now;
use crate::bitrix::state::{Shared, Spend, SpentMarks};
use sealed::{Sealed, Sealer};

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

/// The confirmations of one server: how states are sealed and where spent ones are recorded.
#[derive(Debug, Clone)]
pub struct Confirmations {
    sealer: Sealer,
    spent: SpentMarks,
}

impl Confirmations {
    /// With a state store and `BITRIX24_STATE_KEY`, states sealed by any instance open on every
    /// other, and are spent once across all; otherwise both stay in this process.
    pub fn new(shared: Option<&Shared>) -> Self {
        let sealer = shared
            .and_then(|shared| shared.derived_key(sealed::PURPOSE))
            .map_or_else(Sealer::random, Sealer::with_key);
        Self {
            sealer,
            spent: SpentMarks::new(shared),
        }
    }
}

impl Default for Confirmations {
    fn default() -> Self {
        Self::new(None)
    }
}

/// What the confirmation needs from the call.
pub struct Call<'a> {
    pub tool: &'a str,
    pub arguments: &'a JsonObject,
    pub request_state: Option<&'a str>,
    pub input_responses: Option<&'a InputResponses>,
    /// The MCP session or connection the call came through (empty where there is none, as on
    /// the stateless protocol over HTTP): a state sealed in one answers only there.
    pub session: &'a str,
    /// Who the write acts as, when each person signs in: the question names them.
    pub acting: Option<&'a Acting>,
}

/// How the user will be asked.
enum Channel<'a> {
    /// An `elicitation/create` request during the call.
    Elicitation(&'a RequestContext<RoleServer>),
    /// An input-required result and a retry.
    InputRequired,
}

impl Confirmations {
    /// Asks the user to confirm `question` (the write `intent`), as the client's protocol allows.
    pub async fn confirm(
        &self,
        client: &Client,
        context: Option<&RequestContext<RoleServer>>,
        call: Call<'_>,
        intent: &Intent,
        mut question: Question,
        skip: bool,
    ) -> Verdict {
        if let Some(state) = call.request_state {
            return self.answered(client, &call, state).await;
        }
        if skip {
            return Verdict::Confirmed {
                how: "not asked (--skip-write-confirmation)",
                arguments: call.arguments.clone(),
            };
        }
        // Before any read of the portal: a client that cannot be asked costs nothing.
        let channel = match channel(context) {
            Ok(channel) => channel,
            Err(refusal) => return Verdict::Refused(refusal),
        };
        if let Some(acting) = call.acting {
            question.message = format!("{}\n\n{}", question.message, targets::acting_as(acting));
        }
        if let Some(names) = targets::describe(client, intent).await {
            // A paragraph of its own, after the server's words: the portal's never lead.
            question.message = format!("{}\n\n{names}", question.message);
        }
        match channel {
            Channel::InputRequired => self.ask_statelessly(client, &call, question),
            Channel::Elicitation(context) => elicit(context, &call, &question).await,
        }
    }

    /// The stateless path's first round: the form, and the sealed call.
    fn ask_statelessly(&self, client: &Client, call: &Call<'_>, question: Question) -> Verdict {
        let state = self.sealer.seal(&Sealed {
            id: sealed::fresh_id(),
            tool: call.tool.to_owned(),
            arguments: call.arguments.clone(),
            expected: question.expected.clone(),
            expires_at: unix_now().saturating_add(STATE_LIFETIME_SECS),
            portal: client.portal_host(),
            session: call.session.to_owned(),
        });
        let mut requests = InputRequests::new();
        requests.insert(
            FIELD.to_owned(),
            InputRequest::Elicitation(ElicitRequest::new(form(&question))),
        );
        Verdict::Ask(InputRequiredResult::new(Some(requests), Some(state)))
    }

    /// The stateless path's second round: the sealed call, spent once, and the typed value.
    async fn answered(&self, client: &Client, call: &Call<'_>, state: &str) -> Verdict {
        let refuse = |why: &str| Verdict::Refused(ToolError::not_confirmed(why));
        let now = unix_now();
        let sealed = match self.sealer.open(state, now) {
            Ok(sealed) => sealed,
            Err(why) => {
                return refuse(&format!(
                    "the confirmation state is {why}; call the tool again to be asked anew"
                ));
            }
        };
        if sealed.tool != call.tool {
            return refuse("the confirmation was for another tool");
        }
        if sealed.portal != client.portal_host() {
            return refuse("the confirmation was for another portal");
        }
        if sealed.session != call.session {
            return refuse(
                "the confirmation was asked in another session; call the tool again in this one \
                 to be asked anew",
            );
        }
        // The answer is judged before the state is spent: only a write spends one. A refusal
        // that spent would let any client fill the book of spent states with answers mistyped
        // on purpose (a full book refuses every user) at no cost, while a write costs a request
        // to the portal.
        let response = call
            .input_responses
            .and_then(|responses| responses.get(FIELD))
            .and_then(|value| {
                serde_json::from_value::<rmcp::model::ElicitResult>(value.clone()).ok()
            });
        let Some(response) = response else {
            return refuse("no answer to the confirmation came back");
        };
        if let Err(why) = judge(response.action, response.content.as_ref(), &sealed.expected) {
            return refuse(why);
        }
        // Remembered for as long as the state could still open, on a clock running up to a
        // lifetime behind this one.
        let remaining = sealed.expires_at.saturating_sub(now).max(0);
        let ttl = Duration::from_secs((remaining + STATE_LIFETIME_SECS) as u64);
        match self.spent.spend(&sealed.id, ttl).await {
            Ok(Spend::First) => {}
            Ok(Spend::Again) => {
                return refuse(
                    "this confirmation was already used (each is good for one write); call the \
                     tool again to be asked anew",
                );
            }
            Ok(Spend::Full) => {
                return refuse(
                    "this server already remembers as many used confirmations as it keeps (each for at \
                     most 20 minutes), so it cannot take another now; nothing was sent: try again \
                     later",
                );
            }
            Err(err) => return Verdict::Refused(ToolError::from_call(&err)),
        }
        Verdict::Confirmed {
            how: "typed confirmation (input required)",
            arguments: sealed.arguments,
        }
    }
}

/// How the client can be asked, decided from what it declared alone.
fn channel(context: Option<&RequestContext<RoleServer>>) -> Result<Channel<'_>, ToolError> {
    let Some(context) = context else {
        return Err(ToolError::confirmation_unavailable(
            "this way of calling (the call command) cannot ask the user",
        ));
    };
    let stateless = context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
    let form = if stateless {
        context
            .meta
            .client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.form.is_some() || e.url.is_none())
    } else {
        context
            .peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Form)
    };
    match (form, stateless) {
        (false, _) => Err(ToolError::confirmation_unavailable(
            "the client does not offer form elicitation",
        )),
        (true, true) => Ok(Channel::InputRequired),
        (true, false) => Ok(Channel::Elicitation(context)),
    }
}

/// The form during the call, and its answer.
async fn elicit(
    context: &RequestContext<RoleServer>,
    call: &Call<'_>,
    question: &Question,
) -> Verdict {
    let asked = context
        .peer
        .create_elicitation_with_timeout(form(question), Some(ELICITATION_TIMEOUT))
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
