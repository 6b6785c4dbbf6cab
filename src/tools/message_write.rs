//! What the three message writes share (`im_message_add`, `im_message_update`,
//! `im_message_delete`): the text a caller gives (BBCode, checked before any request) and how a
//! question quotes it, whether it notifies everyone, the check that a message is in the dialog
//! named, and the answer.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::args::{self, Args};
use super::call::quote::quote_bounded;
use super::dialog_get::ChatRef;
use super::error::ToolError;
use super::messages;
use super::registry::Writes;
use crate::bitrix::{Client, Observer};

/// The longest message the portal keeps whole (longer ones it cuts, adding ` (...)`: reference
/// §22): refused here instead, footer included, before anything is sent.
pub const MAX_MESSAGE_CHARS: usize = 20_000;

/// How much of the caller's text a question quotes.
const MAX_QUOTED_CHARS: usize = 160;

/// The hint of a message write whose outcome is unknown: what to read before trying again.
const CHECK_FIRST: &str = "The portal may have made this change before the failure; read the chat with im_dialog_messages_get before trying again, and do not repeat it blindly.";

/// The answer of every message write; the output schema is derived from it. `chat_id` is null
/// for a workgroup's chat (`sg17`) and a private dialog.
#[derive(Serialize, JsonSchema)]
pub struct Written {
    pub ok: bool,
    pub message_id: i64,
    #[schemars(required, extend("type" = ["integer", "null"]))]
    pub chat_id: Option<i64>,
    pub dialog_id: String,
}

impl Written {
    pub fn answer(message_id: i64, chat: &ChatRef) -> Result<Value, ToolError> {
        let written = Self {
            ok: true,
            message_id,
            chat_id: chat.chat(),
            dialog_id: chat.dialog(),
        };
        serde_json::to_value(written).map_err(|_| ToolError::internal())
    }
}

/// The required `MESSAGE`: a string with something besides white space, at most
/// [`MAX_MESSAGE_CHARS`] characters, sent as given. `empty` says what to do instead of an empty
/// text.
pub fn text(args: &Args<'_>, empty: &str) -> Result<String, ToolError> {
    let expected = format!("the message text in BBCode, 1 to {MAX_MESSAGE_CHARS} characters");
    let value = args.required("MESSAGE", &expected)?;
    let Value::String(text) = value else {
        return Err(args::wrong("MESSAGE", &expected, value));
    };
    if text.trim().is_empty() {
        return Err(ToolError::invalid_argument(format!(
            "MESSAGE is empty; {empty}"
        )));
    }
    within_limit(text, "MESSAGE")?;
    Ok(text.clone())
}

/// Refuses a text over [`MAX_MESSAGE_CHARS`]; `what` names it in the message.
pub fn within_limit(text: &str, what: &str) -> Result<(), ToolError> {
    // Counting stops just past the limit: a huge text costs no more than a long one.
    let chars = text.chars().take(MAX_MESSAGE_CHARS + 1).count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(ToolError::invalid_argument(format!(
            "{what} is {} characters; Bitrix24 keeps at most {MAX_MESSAGE_CHARS} (it would cut \
             the rest): split it into several messages",
            text.chars().count()
        )));
    }
    Ok(())
}

/// The text as posted: with the server's footer, if it has one, as an italic paragraph.
pub fn with_footer(text: &str, writes: &Writes) -> String {
    match &writes.footer {
        Some(footer) => format!("{text}\n\n[i]{footer}[/i]"),
        None => text.to_owned(),
    }
}

/// Whether a text mentions everyone (`[user=all]`, in any letter case, with white space allowed
/// inside the brackets, and with words after `all` as in `[USER=all REPLACE]`): the portal then
/// notifies every member of the chat.
pub fn notifies_everyone(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.match_indices('[').any(|(at, _)| {
        let rest = lower[at + 1..].trim_start();
        let Some(rest) = rest.strip_prefix("user") else {
            return false;
        };
        let Some(rest) = rest.trim_start().strip_prefix('=') else {
            return false;
        };
        let Some(rest) = rest.trim_start().strip_prefix("all") else {
            return false;
        };
        // `[USER=all REPLACE]`, the system form, or any other word after `all` before `]`: the
        // portal's mention may still notify everyone, so it is asked about like `[user=all]`.
        rest.starts_with(char::is_whitespace) || rest.starts_with(']')
    })
}

/// The caller's text as a question quotes it: escaped onto one line, shortened with its length.
pub fn quoted(text: &str) -> String {
    quote_bounded(text, MAX_QUOTED_CHARS)
}

/// Checks, with one read, that message `message_id` is in `dialog` before it is changed: a wrong
/// ID then changes nothing, and `--write-chats` (which judged the dialog) holds.
pub async fn ensure_in(
    client: &Client,
    dialog: &str,
    message_id: i64,
    observer: Observer<'_>,
) -> Result<(), ToolError> {
    match messages::find(client, dialog, message_id, observer).await? {
        Some(_) => Ok(()),
        None => Err(ToolError::message_not_found(message_id, dialog)),
    }
}

/// Points an outcome-unknown error at the chat's messages.
pub fn outcome_hint(error: ToolError) -> ToolError {
    if error.outcome.is_some() {
        ToolError {
            hint: CHECK_FIRST.to_owned(),
            ..error
        }
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_is_mentioned_in_any_case_and_spacing() {
        for text in [
            "[user=all] hi",
            "hi [USER=ALL]",
            "[User = All]",
            "x [ user\t=\nall ] y",
            "[[user=all]",
            "[USER=all REPLACE]Everyone[/USER]",
            "[user=all replace]",
        ] {
            assert!(notifies_everyone(text), "{text:?}");
        }
        for text in [
            "[user=1269]all[/user]",
            "user=all",
            "[user=alll]",
            "[users=all]",
            "[user=all",
            "[user:all]",
            "",
        ] {
            assert!(!notifies_everyone(text), "{text:?}");
        }
    }

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        assert!(within_limit(&"ж".repeat(MAX_MESSAGE_CHARS), "MESSAGE").is_ok());
        let err = within_limit(&"a".repeat(MAX_MESSAGE_CHARS + 1), "MESSAGE").unwrap_err();
        assert!(
            err.error_description
                .contains("MESSAGE is 20001 characters; Bitrix24 keeps at most 20000"),
            "{err:?}"
        );
    }
}
