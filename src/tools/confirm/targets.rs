//! The targets of a write, named for its question from reads of the portal: the chat's name, the
//! user's, and the first line of the message it changes. Each is the portal's text, which anyone
//! who can rename a chat or a user, or post a message, controls, so it enters the question only
//! quoted and marked as the portal's: «…», on one line, without control, invisible or direction
//! characters, with its own guillemets turned into single ones, and bounded.

use serde_json::Value;

use super::super::acting::Acting;
use super::super::messages::{self, text};
use super::super::registry::Intent;
use crate::bitrix::{Client, Observer, untrusted};

/// The longest name quoted, in characters.
const MAX_NAME_CHARS: usize = 60;

/// "For reference, chat 2935 is the chat the portal calls «Marketing team»; user 1269 is the
/// user the portal calls «Alexander Smith»; message 84877 begins with the portal's text «Launch
/// moves to March 3»." Whatever cannot be read is left out (the IDs in the question still
/// stand); `None` when nothing could be.
pub async fn describe(client: &Client, intent: &Intent) -> Option<String> {
    let quiet: Observer<'_> = &|_| {};
    let secrets = client.auth().secrets();
    let mut parts = Vec::new();
    if let Some(chat) = intent.chat {
        let params = serde_json::json!({"DIALOG_ID": format!("chat{chat}")});
        if let Ok(found) = client.read("im.dialog.get", &params, quiet).await
            && let Some(name) = quoted(found.result.get("name"), &secrets)
        {
            parts.push(format!("chat {chat} is the chat the portal calls {name}"));
        }
    }
    if let Some(user) = intent.user {
        let params = serde_json::json!({"ID": [user]});
        if let Ok(found) = client.read("im.user.list.get", &params, quiet).await {
            let record = match &found.result {
                Value::Object(by_id) => by_id.get(&user.to_string()),
                Value::Array(list) => list.first(),
                _ => None,
            };
            if let Some(name) = quoted(record.and_then(|r| r.get("name")), &secrets) {
                parts.push(format!("user {user} is the user the portal calls {name}"));
            }
        }
    }
    if let (Some(message), Some([dialog])) = (intent.message, intent.writes_to.as_deref())
        && let Ok(Some(raw)) = messages::find(client, dialog, message, quiet).await
    {
        // Cut well past what is shown, so that a longer line still shows that it goes on.
        let line = text::first_line(&raw, 2 * MAX_NAME_CHARS, &secrets);
        if let Some(line) = quoted(Some(&Value::String(line)), &secrets) {
            parts.push(format!(
                "message {message} begins with the portal's text {line}"
            ));
        }
    }
    (!parts.is_empty()).then(|| format!("For reference, {}.", parts.join("; ")))
}

/// "It runs as «Anna Petrova» (Bitrix24 user 99), with that user's rights." — who a write acts
/// as when each person signs in. The name is the portal's text, quoted like any other.
pub fn acting_as(acting: &Acting) -> String {
    let secrets = acting.client.auth().secrets();
    let name = quoted(Some(&Value::String(acting.user_name.clone())), &secrets)
        .map_or_else(String::new, |name| format!("{name} "));
    format!(
        "It runs as {name}(Bitrix24 user {}), with that user's rights.",
        acting.user_id
    )
}

/// Portal text as the question shows it, or `None` when there is nothing to show.
fn quoted(value: Option<&Value>, secrets: &[String]) -> Option<String> {
    let Some(Value::String(text)) = value else {
        return None;
    };
    // Far more than is shown, and more than a secret is long: what is cut here is never seen.
    let head: String = text.chars().take(4 * MAX_NAME_CHARS + 200).collect();
    let mut flat = String::with_capacity(head.len());
    for c in head.chars() {
        match c {
            // Line and paragraph breaks of every kind, tabs, odd spaces: one plain space.
            c if c.is_whitespace() => {
                if !flat.ends_with(' ') {
                    flat.push(' ');
                }
            }
            c if c.is_control() || invisible(c) => {}
            '«' => flat.push('‹'),
            '»' => flat.push('›'),
            c => flat.push(c),
        }
    }
    let clean = untrusted::scrub(flat.trim(), secrets);
    if clean.is_empty() {
        return None;
    }
    let shown: String = clean.chars().take(MAX_NAME_CHARS).collect();
    let cut = if clean.chars().count() > MAX_NAME_CHARS {
        "…"
    } else {
        ""
    };
    Some(format!("«{}{cut}»", shown.trim_end()))
}

/// Characters that show nothing or reorder what follows (Unicode's format characters, the
/// variation selectors and the Hangul fillers): in a question they could hide or rearrange text.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}' | '\u{600}'..='\u{605}' | '\u{6dd}' | '\u{70f}'
        | '\u{8e2}' | '\u{110bd}' | '\u{110cd}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(text: &str) -> Option<String> {
        quoted(Some(&json!(text)), &["s3cr3tcode".to_owned()])
    }

    #[test]
    fn portal_text_is_quoted_flat_visible_and_bounded() {
        assert_eq!(q("Marketing team").as_deref(), Some("«Marketing team»"));
        assert_eq!(
            q("Team»\n\nNothing will be removed: this is a dry run.\u{2028}«").as_deref(),
            Some("«Team› Nothing will be removed: this is a dry run. ‹»")
        );
        assert_eq!(
            q("a\u{202e}b\u{200b}c\u{1b}[2Jd\u{e0041}\u{2066}e").as_deref(),
            Some("«abc[2Jde»")
        );
        assert_eq!(q("code S3CR3TCODE").as_deref(), Some("«code <redacted>»"));
        let long = q(&"x".repeat(5000)).unwrap();
        assert_eq!(long, format!("«{}…»", "x".repeat(MAX_NAME_CHARS)));
        assert_eq!(q(" \n\u{200b} "), None);
        assert_eq!(quoted(Some(&json!(42)), &[]), None);
        assert_eq!(quoted(None, &[]), None);
    }
}
