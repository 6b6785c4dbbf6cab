//! Which dialogs a `bitrix24_call`'s writes change, for `--write-chats`: read from each write's
//! `CHAT_ID` or `DIALOG_ID` as the portal will read them (names in any ASCII letter case, a batch
//! command's query decoded), and only where that is certain — anything else is "cannot be told",
//! which a list refuses.

use serde_json::{Map, Value};

use super::plan::{Plan, fold};
use crate::tools::args;

/// The writes whose `CHAT_ID` or `DIALOG_ID` is the one chat they change (reference §11–14,
/// §22–24, and the im module's REST handlers), in lower case. Any other method proves nothing by
/// naming a chat: `im.chat.add` creates a new one whatever `CHAT_ID` says, `im.chat.url.delete`
/// removes the link `LINK_ID` wherever it is, `im.message.delete` takes the message's `ID`, and
/// `crm.deal.delete` changes a deal.
const CHAT_TARGETED: [&str; 23] = [
    "im.chat.leave",
    "im.chat.mute",
    "im.chat.setmanager",
    "im.chat.setowner",
    "im.chat.updateavatar",
    "im.chat.updatecolor",
    "im.chat.updatetitle",
    "im.chat.user.add",
    "im.chat.user.delete",
    "im.dialog.read",
    "im.dialog.unread",
    "im.dialog.writing",
    "im.disk.file.commit",
    "im.message.add",
    "imbot.chat.leave",
    "imbot.chat.setmanager",
    "imbot.chat.setowner",
    "imbot.chat.updateavatar",
    "imbot.chat.updatecolor",
    "imbot.chat.updatetitle",
    "imbot.chat.user.add",
    "imbot.chat.user.delete",
    "imbot.message.add",
];

/// Parameters that make the portal look past `CHAT_ID` and `DIALOG_ID`: a message's ID (the
/// portal finds the message wherever it is), and in `im.message.add` a `USER_ID`, which wins
/// over both (a private message to that user).
const RETARGETING: [&str; 5] = ["MESSAGE_ID", "ID", "USER_ID", "TO_USER_ID", "FROM_USER_ID"];

/// The methods where a user parameter names a member of the chat, not another dialog.
fn names_members(method: &str) -> bool {
    method.contains(".chat.")
}

/// The dialogs a call's writes change, in the portal's form (`chat2935`, `sg17`, `1269`), read
/// from each write's `CHAT_ID` or `DIALOG_ID` (names folded as the portal folds them); `None`
/// when any write's target cannot be told so. For `--write-chats`: a write that may change
/// anything else is refused while a list is set.
pub fn writes_to(plan: &Plan, params: &Map<String, Value>) -> Option<Vec<String>> {
    let mut dialogs: Vec<String> = Vec::new();
    let mut add = |dialog: String| {
        if !dialogs.contains(&dialog) {
            dialogs.push(dialog);
        }
    };
    match plan {
        Plan::Single { read: true, .. } => {}
        Plan::Single { method, .. } => {
            let given = params.iter().map(|(k, v)| (k.as_str(), Given::Json(v)));
            add(target(method, given)?);
        }
        Plan::Batch(commands) => {
            for command in commands.iter().filter(|c| !c.read) {
                let given = command
                    .params
                    .iter()
                    .map(|(k, v)| (k.as_str(), Given::Query(v)));
                add(target(&command.method, given)?);
            }
        }
    }
    Some(dialogs)
}

/// A parameter's value as the call gives it: JSON (a single call) or a decoded query value (a
/// batch command, where `$result[…]` is filled in by the portal).
#[derive(Clone, Copy)]
enum Given<'a> {
    Json(&'a Value),
    Query(&'a str),
}

/// The one dialog a write names, or `None`: a method outside [`CHAT_TARGETED`], no `CHAT_ID` or
/// `DIALOG_ID`, one that is not a literal dialog, two that disagree, or a [`RETARGETING`]
/// parameter (the portal then looks past the dialog named, so that proves nothing).
fn target<'a>(method: &str, params: impl Iterator<Item = (&'a str, Given<'a>)>) -> Option<String> {
    let method = method.to_ascii_lowercase();
    if !CHAT_TARGETED.contains(&method.as_str()) {
        return None;
    }
    let mut found: Option<String> = None;
    for (name, value) in params {
        let folded = fold(name);
        // The portal upper-cases a name byte by byte (ASCII only) and, in a JSON body, changes
        // nothing else: `chat_ıd` (dotless i), ` chat_id` or `chat.id` fold to `CHAT_ID` here but
        // are unknown names there, so they name no chat the portal will use (it may take the
        // dialog from another parameter, e.g. a legacy `USER_ID`).
        if folded != name.to_ascii_uppercase()
            && ["CHAT_ID", "DIALOG_ID"]
                .iter()
                .chain(RETARGETING.iter())
                .any(|n| folded.starts_with(n))
        {
            return None;
        }
        // `CHAT_ID[]` or `CHAT_ID[x]` (a batch query's list or map) is no single dialog.
        let base = folded.split('[').next().unwrap_or_default();
        let dialog = match base {
            "USER_ID" if names_members(&method) => continue,
            name if RETARGETING.contains(&name) => return None,
            "CHAT_ID" | "DIALOG_ID" if base != folded => return None,
            "CHAT_ID" => chat_param(value)?,
            "DIALOG_ID" => dialog_param(value)?,
            _ => continue,
        };
        match &found {
            Some(earlier) if *earlier != dialog => return None,
            _ => found = Some(dialog),
        }
    }
    found
}

/// `CHAT_ID`: a chat by number (2935 or "2935") is `chat2935`.
fn chat_param(value: Given<'_>) -> Option<String> {
    number(value).map(|id| format!("chat{id}"))
}

/// `DIALOG_ID`: `chat2935` and `sg17` (any letter case) as they are, a user's ID (1269 or
/// "1269") as the user's private dialog `1269`.
fn dialog_param(value: Given<'_>) -> Option<String> {
    if let Some(id) = number(value) {
        return Some(id.to_string());
    }
    let text = match value {
        Given::Json(Value::String(text)) => text.as_str(),
        Given::Query(text) => text,
        Given::Json(_) => return None,
    };
    let lower = text.to_ascii_lowercase();
    ["chat", "sg"].into_iter().find_map(|prefix| {
        let id = digits(lower.strip_prefix(prefix)?)?;
        Some(format!("{prefix}{id}"))
    })
}

/// A positive integer given literally: a JSON integer, or a string of digits alone. Anything
/// else (white space, signs, `$result[…]`, an array, an object, a float) is not one.
fn number(value: Given<'_>) -> Option<i64> {
    match value {
        Given::Json(Value::Number(n)) => n.as_i64().filter(|id| (1..=args::MAX_ID).contains(id)),
        Given::Json(Value::String(text)) => digits(text),
        Given::Query(text) => digits(text),
        Given::Json(_) => None,
    }
}

/// Digits alone, as an ID.
fn digits(text: &str) -> Option<i64> {
    args::digits(text).filter(|id| (1..=args::MAX_ID).contains(id))
}

#[cfg(test)]
mod tests {
    use super::super::plan::classify;
    use super::*;
    use serde_json::json;

    fn dialogs(method: &str, params: Value) -> Option<Vec<String>> {
        let params = params.as_object().unwrap().clone();
        let plan = classify(method, &params).unwrap();
        writes_to(&plan, &params)
    }

    fn one(method: &str, params: Value) -> Option<String> {
        dialogs(method, params).map(|d| d.join(","))
    }

    #[test]
    fn a_single_writes_target_is_read_in_every_literal_form() {
        for (params, expected) in [
            (json!({"DIALOG_ID": "chat2935", "MESSAGE": "x"}), "chat2935"),
            (json!({"dialog_id": "CHAT2935", "MESSAGE": "x"}), "chat2935"),
            (json!({"Dialog_Id": "sg17", "MESSAGE": "x"}), "sg17"),
            (json!({"DIALOG_ID": "chat02935"}), "chat2935"),
            (json!({"DIALOG_ID": 1269}), "1269"),
            (json!({"DIALOG_ID": "1269"}), "1269"),
            (json!({"CHAT_ID": 2935}), "chat2935"),
            (json!({"chat_id": "2935"}), "chat2935"),
            (
                json!({"CHAT_ID": 2935, "DIALOG_ID": "chat2935"}),
                "chat2935",
            ),
        ] {
            assert_eq!(
                one("im.message.add", params.clone()).as_deref(),
                Some(expected),
                "{params}"
            );
        }
        assert_eq!(
            one("IM.CHAT.LEAVE", json!({"CHAT_ID": 42})).as_deref(),
            Some("chat42")
        );
    }

    #[test]
    fn a_write_whose_target_is_not_certain_has_none() {
        for params in [
            json!({"MESSAGE": "x"}),
            json!({"CHAT_ID": 1, "DIALOG_ID": "chat2935"}),
            json!({"CHAT_ID": 1269, "DIALOG_ID": 1269}),
            json!({"CHAT_ID": [2935]}),
            json!({"CHAT_ID": {"0": 2935}}),
            json!({"DIALOG_ID": ["chat2935"]}),
            json!({"CHAT_ID": 2935.5}),
            json!({"CHAT_ID": -2935}),
            json!({"CHAT_ID": 0}),
            json!({"CHAT_ID": null}),
            json!({"CHAT_ID": true}),
            json!({"CHAT_ID": " 2935"}),
            json!({"CHAT_ID": "2935abc"}),
            json!({"CHAT_ID": "chat2935"}),
            json!({"DIALOG_ID": "chat"}),
            json!({"DIALOG_ID": "chat-1"}),
            json!({"DIALOG_ID": "crm|DEAL|1"}),
            json!({"DIALOG_ID": "$result[a]"}),
            json!({"DIALOG_ID": "chat2935", "MESSAGE_ID": 5}),
        ] {
            assert_eq!(one("im.message.add", params.clone()), None, "{params}");
        }
        assert_eq!(one("im.message.delete", json!({"MESSAGE_ID": 5})), None);
        assert_eq!(
            one(
                "im.message.update",
                json!({"message_id": 5, "CHAT_ID": 2935})
            ),
            None
        );
        // The portal's own aliases and precedence: `ID` is the message's ID, `USER_ID` wins over
        // CHAT_ID and DIALOG_ID in im.message.add (a private message to that user).
        for (method, params) in [
            (
                "im.message.add",
                json!({"DIALOG_ID": "chat2935", "USER_ID": 1269, "MESSAGE": "x"}),
            ),
            (
                "im.message.add",
                json!({"CHAT_ID": 2935, "user_id": "1269", "MESSAGE": "x"}),
            ),
            (
                "imbot.message.add",
                json!({"DIALOG_ID": "chat2935", "TO_USER_ID": 1269}),
            ),
            ("im.message.delete", json!({"ID": 84895, "CHAT_ID": 2935})),
            (
                "im.message.update",
                json!({"id": 84895, "DIALOG_ID": "chat2935", "MESSAGE": "x"}),
            ),
            (
                "im.message.like",
                json!({"ID": 84895, "DIALOG_ID": "chat2935"}),
            ),
            ("im.chat.url.delete", json!({"LINK_ID": 5, "CHAT_ID": 2935})),
            (
                "im.chat.favorite.add",
                json!({"MESSAGE_ID": 5, "CHAT_ID": 2935}),
            ),
            (
                "im.disk.file.delete",
                json!({"DISK_ID": 5, "CHAT_ID": 2935}),
            ),
        ] {
            assert_eq!(one(method, params.clone()), None, "{method} {params}");
        }
        // A member named beside the chat it joins or leaves is no other target.
        assert_eq!(
            one(
                "im.chat.user.delete",
                json!({"CHAT_ID": 2935, "USER_ID": 1269})
            )
            .as_deref(),
            Some("chat2935")
        );
        // A chat named beside a write of something else proves nothing.
        assert_eq!(
            one("crm.deal.delete", json!({"ID": 5, "CHAT_ID": 2935})),
            None
        );
        assert_eq!(
            one(
                "im.notify.personal.add",
                json!({"USER_ID": 5, "CHAT_ID": 2935})
            ),
            None
        );
    }

    #[test]
    fn a_chat_named_beside_a_method_that_ignores_it_proves_nothing() {
        // im.chat.add creates a new chat (with its USERS and first MESSAGE) whatever CHAT_ID says.
        for (method, params) in [
            (
                "im.chat.add",
                json!({"CHAT_ID": 2935, "TITLE": "x", "USERS": [5], "MESSAGE": "hi"}),
            ),
            (
                "IM.CHAT.ADD",
                json!({"DIALOG_ID": "chat2935", "TITLE": "x"}),
            ),
            (
                "imbot.chat.add",
                json!({"CHAT_ID": 2935, "BOT_ID": 1, "USERS": [5]}),
            ),
            ("im.dialog.read.all", json!({"DIALOG_ID": "chat2935"})),
        ] {
            assert_eq!(one(method, params.clone()), None, "{method} {params}");
        }
        let batch = json!({"cmd": {"a": "im.chat.add?CHAT_ID=2935&TITLE=x&USERS[]=5&MESSAGE=hi"}});
        assert_eq!(dialogs("batch", batch), None);
    }

    #[test]
    fn a_name_the_portal_does_not_fold_to_a_chat_names_none() {
        // PHP upper-cases ASCII only: the portal sees `CHAT_ıD` as an unknown name and takes the
        // dialog from USER_ID, while Unicode upper-casing read it as CHAT_ID 2935.
        for params in [
            json!({"chat_\u{131}d": 2935, "USER_ID": 1269, "MESSAGE": "x"}),
            json!({"d\u{131}alog_id": "chat2935", "USER_ID": 1269, "MESSAGE": "x"}),
            json!({" CHAT_ID": 2935, "USER_ID": 1269, "MESSAGE": "x"}),
            json!({"chat.id": 2935, "USER_ID": 1269, "MESSAGE": "x"}),
            json!({"DIALOG ID": "chat2935", "USER_ID": 1269, "MESSAGE": "x"}),
            json!({"Dialog.Id": "sg17", "MESSAGE": "x"}),
        ] {
            assert_eq!(one("im.message.add", params.clone()), None, "{params}");
        }
        let batch =
            json!({"cmd": {"a": "im.message.add?CHAT_%C4%B1D=2935&USER_ID=1269&MESSAGE=x"}});
        assert_eq!(dialogs("batch", batch), None);
    }

    #[test]
    fn a_read_changes_no_dialog() {
        assert_eq!(
            dialogs("im.dialog.messages.get", json!({"DIALOG_ID": "chat1"})),
            Some(vec![])
        );
    }

    #[test]
    fn a_batch_names_every_writes_target_from_its_query() {
        let batch = |cmd: Value| dialogs("batch", json!({"cmd": cmd}));
        assert_eq!(
            batch(json!({
                "a": "im.dialog.messages.get?DIALOG_ID=chat1",
                "b": "im.message.add?DIALOG_ID=chat2935&MESSAGE=hi",
                "c": "im.chat.user.add?chat%5Fid=2935&USERS[]=5",
                "d": "im.message.add?DIALOG_ID=SG17&MESSAGE=hi",
            })),
            Some(vec!["chat2935".to_owned(), "sg17".to_owned()])
        );
        for cmd in [
            json!({"a": "user.get?ID=1", "b": "im.message.add?MESSAGE=hi"}),
            json!({"a": "im.message.add?DIALOG_ID=chat2935", "b": "crm.deal.add?CHAT_ID=2935"}),
            json!({"a": "im.chat.add?TITLE=x", "b": "im.chat.user.add?CHAT_ID=$result[a]"}),
            json!({"a": "im.chat.user.add?CHAT_ID[]=2935&USERS[]=5"}),
            json!({"a": "im.chat.user.add?CHAT_ID[x]=2935&USERS[]=5"}),
            json!({"a": "im.message.add?CHAT_ID=1&DIALOG_ID=chat2935"}),
            json!({"a": "im.message.delete?MESSAGE_ID=5"}),
            json!({"a": "im.message.add?DIALOG_ID=chat2935%20"}),
        ] {
            assert_eq!(batch(cmd.clone()), None, "{cmd}");
        }
    }
}
