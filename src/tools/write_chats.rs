//! `--write-chats` (`BITRIX24_WRITE_CHATS`): the only chats any write may change. Every write
//! tool says which dialogs it changes ([`super::registry::Intent::writes_to`]); a write to one not
//! on the list, or whose target cannot be told from its arguments, is refused before anything is
//! read or sent.
//!
//! Entries are dialogs in the portal's forms: `2935` or `chat2935` (chat 2935), `sg17` (workgroup
//! 17's chat), `user1269` (the private dialog with user 1269, whose dialog ID is `1269`). Matching
//! is by form, without asking the portal: `sg17` admits writes addressed as `DIALOG_ID: "sg17"`,
//! not ones addressed by that chat's numeric ID (name both to allow both).

use std::fmt;

use super::args;
use super::error::ToolError;

/// The most entries taken: a list is for a handful of chats a team writes to.
pub const MAX_ENTRIES: usize = 200;

/// The chats writes may change, each in the portal's dialog form (`chat2935`, `sg17`, `1269`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteChats {
    dialogs: Vec<String>,
}

impl WriteChats {
    /// Reads the list (comma-separated entries, blanks ignored). An empty list is refused: a
    /// server that may write nowhere is started without `--allow-writes`.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut dialogs: Vec<String> = Vec::new();
        for entry in entries
            .iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let dialog = canonical(entry).ok_or_else(|| {
                format!(
                    "BITRIX24_WRITE_CHATS / --write-chats: {entry:?} is not a chat; use 2935 or \
                     chat2935 (a chat), sg17 (a workgroup's chat) or user1269 (the private dialog \
                     with user 1269)"
                )
            })?;
            if !dialogs.contains(&dialog) {
                dialogs.push(dialog);
            }
        }
        if dialogs.is_empty() {
            return Err(
                "BITRIX24_WRITE_CHATS / --write-chats names no chat; leave it out to \
                        allow writes to every chat the acting user may change"
                    .to_owned(),
            );
        }
        if dialogs.len() > MAX_ENTRIES {
            return Err(format!(
                "BITRIX24_WRITE_CHATS / --write-chats names {} chats; at most {MAX_ENTRIES} are taken",
                dialogs.len()
            ));
        }
        Ok(Self { dialogs })
    }

    /// Whether the dialog (in the portal's form: `chat2935`, `sg17`, `1269`) is on the list.
    pub fn allows(&self, dialog: &str) -> bool {
        self.dialogs.iter().any(|d| d == dialog)
    }

    /// Admits a write whose targets are `writes_to` (`None`: they cannot be told from its
    /// arguments), or the `CHAT_NOT_ALLOWED` refusal. `what` names the call for the message.
    pub fn admit(&self, what: &str, writes_to: Option<&[String]>) -> Result<(), ToolError> {
        let Some(targets) = writes_to else {
            return Err(ToolError::chat_not_allowed(format!(
                "{what} writes, and which chat it changes cannot be told from its parameters \
                 (no CHAT_ID or DIALOG_ID naming one); this server writes only to the chats of \
                 --write-chats ({self}), so nothing was sent"
            )));
        };
        match targets.iter().find(|t| !self.allows(t)) {
            None => Ok(()),
            Some(outside) => Err(ToolError::chat_not_allowed(format!(
                "{what} would change {}, which is not one of the chats this server may write to \
                 (--write-chats {self}); nothing was sent",
                shown(outside)
            ))),
        }
    }
}

impl fmt::Display for WriteChats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.dialogs.iter().map(|d| entry_form(d)).collect();
        f.write_str(&shown.join(","))
    }
}

/// An entry in the portal's dialog form, or `None` when it is not one.
fn canonical(entry: &str) -> Option<String> {
    let lower = entry.to_ascii_lowercase();
    let (prefix, digits) = if let Some(rest) = lower.strip_prefix("chat") {
        ("chat", rest)
    } else if let Some(rest) = lower.strip_prefix("sg") {
        ("sg", rest)
    } else if let Some(rest) = lower.strip_prefix("user") {
        ("", rest)
    } else {
        ("chat", lower.as_str())
    };
    let id = args::digits(digits).filter(|id| (1..=args::MAX_ID).contains(id))?;
    Some(format!("{prefix}{id}"))
}

/// A dialog as the list writes it: `chat2935`, `sg17`, `user1269`.
fn entry_form(dialog: &str) -> String {
    if dialog.bytes().all(|b| b.is_ascii_digit()) {
        format!("user{dialog}")
    } else {
        dialog.to_owned()
    }
}

/// A dialog in words for a message: "chat 2935", "workgroup 17's chat", "the private dialog with
/// user 1269".
pub fn shown(dialog: &str) -> String {
    if let Some(id) = dialog.strip_prefix("chat") {
        format!("chat {id}")
    } else if let Some(id) = dialog.strip_prefix("sg") {
        format!("workgroup {id}'s chat (sg{id})")
    } else {
        format!("the private dialog with user {dialog}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Result<WriteChats, String> {
        WriteChats::parse(&[text.to_owned()])
    }

    #[test]
    fn entries_are_read_in_every_form() {
        let chats = list(" 2935, chat2936 ,SG17,user1269,,2935").unwrap();
        assert_eq!(chats.to_string(), "chat2935,chat2936,sg17,user1269");
        for dialog in ["chat2935", "chat2936", "sg17", "1269"] {
            assert!(chats.allows(dialog), "{dialog}");
        }
        for dialog in ["chat17", "sg2935", "2935", "chat1269", "chat29350"] {
            assert!(!chats.allows(dialog), "{dialog}");
        }
    }

    #[test]
    fn bad_entries_and_empty_lists_are_refused() {
        for bad in [
            "chat", "sg-1", "0", "chat0", "x12", "12a", "user", "chat 12", "+5",
        ] {
            assert!(list(bad).is_err(), "{bad}");
        }
        assert!(list(" , ").is_err());
        let many: Vec<String> = (1..=201).map(|i| i.to_string()).collect();
        assert!(WriteChats::parse(&many).is_err());
    }

    #[test]
    fn writes_elsewhere_or_unknown_are_refused() {
        let chats = list("2935,sg17").unwrap();
        assert!(chats.admit("x", Some(&["chat2935".into()])).is_ok());
        assert!(
            chats
                .admit("x", Some(&["chat2935".into(), "sg17".into()]))
                .is_ok()
        );
        let err = chats
            .admit("im_message_add", Some(&["chat2935".into(), "chat1".into()]))
            .unwrap_err();
        assert_eq!(err.error, "CHAT_NOT_ALLOWED");
        assert!(err.error_description.contains("chat 1,"), "{err:?}");
        assert_eq!(
            chats.admit("x", None).unwrap_err().error,
            "CHAT_NOT_ALLOWED"
        );
    }
}
