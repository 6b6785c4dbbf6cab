//! The one list of tools. Each entry is a tool's definition, its argument check and its run; the
//! `tools`, `call` and `tools/list` paths and the `--tools`/`--exclude-tools` choice all read it.
//! Adding a tool touches its own file and one line of [`TOOLS`].

use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

use super::confirm::Question;
use super::error::ToolError;
use super::write_chats::WriteChats;
use super::{
    call, chat_get, chat_leave, chat_user_add, chat_user_delete, chat_user_list, dialog_get,
    dialog_messages_get, dialog_messages_search, dialog_users_list, message_add, message_delete,
    message_update, recent_list, search_chat_list, user_list_get,
};
use crate::bitrix::retry::{WriteFate, write_fate};
use crate::bitrix::{CallError, Client, Envelope, Observer, untrusted};

/// Runs a tool whose arguments passed its check: the portal call(s) and the shaped answer, which
/// becomes `structuredContent`.
/// `writes` carries the server's write settings a write may need (the message footer).
pub type Run = for<'a> fn(
    &'a Client,
    &'a JsonObject,
    Observer<'a>,
    &'a Writes,
) -> BoxFuture<'a, Result<Value, ToolError>>;

/// Whether a tool reads or changes the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Changes the portal: served only with `--allow-writes`.
    Write {
        destructive: bool,
        idempotent: bool,
    },
    /// Reads or writes depending on its arguments (`bitrix24_call`): always served, its writes
    /// only with `--allow-writes`.
    Either,
}

/// What a write call will do: for the confirmation, if it needs one, and for the write log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// What will change, in words, e.g. "remove user 1271 from chat 2935".
    pub summary: String,
    /// The typed confirmation it needs; `None` for a write that is not destructive.
    pub confirm: Option<Question>,
    /// The chat and user it targets, named to the user in the confirmation when they can be
    /// looked up (a confirmation of IDs alone is easy to get wrong): see `confirm::targets`.
    pub chat: Option<i64>,
    pub user: Option<i64>,
    /// A message it changes or removes, in `chat` or `writes_to`'s one dialog: its first line is
    /// quoted (as the portal's text) in the confirmation.
    pub message: Option<i64>,
    /// The dialogs it changes, in the portal's form (`chat2935`, `sg17`, `1269`), for
    /// `--write-chats`; `None` when they cannot be told from the arguments (such a write is
    /// refused while a list is set).
    pub writes_to: Option<Vec<String>>,
}

/// Checks the arguments and says what a call would change: `None` for a read.
pub type IntentFn = fn(&JsonObject) -> Result<Option<Intent>, ToolError>;

/// The intent of every call of a read-only tool: none, once the arguments pass.
pub fn reads_only(_arguments: &JsonObject) -> Result<Option<Intent>, ToolError> {
    Ok(None)
}

/// One tool.
#[derive(Debug)]
pub struct ToolEntry {
    pub name: &'static str,
    /// The REST method it calls.
    pub method: &'static str,
    /// The scope the portal must grant for it.
    pub scope: &'static str,
    pub access: Access,
    pub intent: IntentFn,
    /// A short title and the description the assistant reads.
    pub title: &'static str,
    pub description: &'static str,
    /// The input and output schemas, written out rather than derived: the inputs accept more
    /// than a schema admits (numeric strings, dialog IDs), and clients choke on the `format`
    /// keywords and nullable unions a derive would add.
    pub input: fn() -> Value,
    pub output: fn() -> Value,
    /// Checks the arguments, without I/O.
    pub check: fn(&JsonObject) -> Result<(), ToolError>,
    pub run: Run,
}

/// Every tool this server has, in listing order.
pub const TOOLS: &[ToolEntry] = &[
    search_chat_list::ENTRY,
    chat_get::ENTRY,
    dialog_get::ENTRY,
    dialog_users_list::ENTRY,
    chat_user_list::ENTRY,
    user_list_get::ENTRY,
    recent_list::ENTRY,
    dialog_messages_get::ENTRY,
    dialog_messages_search::ENTRY,
    message_add::ENTRY,
    message_update::ENTRY,
    message_delete::ENTRY,
    chat_user_add::ENTRY,
    chat_user_delete::ENTRY,
    chat_leave::ENTRY,
    call::ENTRY,
];

impl ToolEntry {
    /// The tool as listed, annotated by its access: read-only tools (and `bitrix24_call` while
    /// writes are off) as reads that reach the user's portal; write tools as their kind says.
    pub fn definition(&self) -> Tool {
        let (read_only, destructive, idempotent) = match self.access {
            Access::Read | Access::Either => (true, false, true),
            Access::Write {
                destructive,
                idempotent,
            } => (false, destructive, idempotent),
        };
        Tool::new(
            self.name,
            self.description,
            Arc::new(object((self.input)())),
        )
        .with_title(self.title)
        .with_raw_output_schema(Arc::new(object((self.output)())))
        .with_annotations(
            ToolAnnotations::with_title(self.title)
                .read_only(read_only)
                .destructive(destructive)
                .idempotent(idempotent)
                .open_world(true),
        )
    }
}

/// The tool of this name, if the server has one.
pub fn find(name: &str) -> Option<&'static ToolEntry> {
    TOOLS.iter().find(|tool| tool.name == name)
}

/// A read of the portal, shared with identical concurrent reads, its failure as a tool error.
pub async fn read(
    client: &Client,
    method: &str,
    params: &Value,
    observer: Observer<'_>,
) -> Result<Envelope, ToolError> {
    client
        .read(method, params, observer)
        .await
        .map_err(|err| ToolError::from_call(&err))
}

/// A write to the portal (never repeated blindly), its failure as a tool error that says when the
/// write may have happened anyway.
pub async fn write(
    client: &Client,
    method: &str,
    params: &Value,
    observer: Observer<'_>,
) -> Result<Envelope, ToolError> {
    client
        .write(method, params, observer)
        .await
        .map_err(|err| write_failed(&err))
}

/// A write whose documented answer is `true`: anything else leaves its outcome unknown.
pub async fn write_true(
    client: &Client,
    method: &str,
    params: &Value,
    observer: Observer<'_>,
) -> Result<(), ToolError> {
    let envelope = write(client, method, params, observer).await?;
    match envelope.result {
        Value::Bool(true) => Ok(()),
        other => Err(unexpected(client, format!("{method} answered {other}")).outcome_unknown()),
    }
}

/// A failed write as a tool error: with `outcome: "unknown"` when the portal may have run it.
pub fn write_failed(err: &CallError) -> ToolError {
    let error = ToolError::from_call(err);
    match write_fate(err) {
        WriteFate::Unknown => error.outcome_unknown(),
        WriteFate::NotExecuted => error,
    }
}

/// The portal answered, but not in the documented shape. The detail quotes the answer: it is
/// shortened and scrubbed of the client's secrets like any other upstream text.
pub fn unexpected(client: &Client, detail: String) -> ToolError {
    ToolError::from_call(&CallError::UnexpectedResponse {
        status: 200,
        detail: untrusted::excerpt(&detail, &client.auth().secrets()),
    })
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        // Every schema is written as an object literal.
        _ => JsonObject::new(),
    }
}

/// Which tools a server offers, and whether writes are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    served: Vec<&'static str>,
    writes: Writes,
}

/// The write switches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Writes {
    /// `--allow-writes`: write tools are served, writes through `bitrix24_call` allowed.
    pub allowed: bool,
    /// `--skip-write-confirmation`: destructive writes go without the typed confirmation.
    pub skip_confirmation: bool,
    /// `--write-chats`: the only chats writes may change; `None` for any.
    pub chats: Option<WriteChats>,
    /// `--message-footer`: a line added under every message the assistant posts; `None` for none.
    pub footer: Option<String>,
}

/// A tool name given in `--tools` or `--exclude-tools` that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tool {name:?} in {setting}; the tools are: {known}")]
pub struct UnknownToolName {
    pub name: String,
    pub setting: &'static str,
    pub known: String,
}

impl Default for Selection {
    fn default() -> Self {
        Self::all()
    }
}

impl Selection {
    /// Every read tool (and `bitrix24_call`, for reads); writes off.
    pub fn all() -> Self {
        Self {
            served: TOOLS.iter().map(|t| t.name).collect(),
            writes: Writes::default(),
        }
    }

    /// The same choice of tools with these write switches.
    pub fn with_writes(self, writes: Writes) -> Self {
        Self { writes, ..self }
    }

    pub fn writes(&self) -> &Writes {
        &self.writes
    }

    /// `only` (all when empty), less `exclude`. Names are exact; an unknown one is an error.
    pub fn choose(only: &[String], exclude: &[String]) -> Result<Self, UnknownToolName> {
        let check = |names: &[String], setting: &'static str| {
            for name in names {
                if find(name.trim()).is_none() {
                    return Err(UnknownToolName {
                        name: name.trim().to_owned(),
                        setting,
                        known: names_list(),
                    });
                }
            }
            Ok(())
        };
        check(only, "BITRIX24_TOOLS / --tools")?;
        check(exclude, "BITRIX24_EXCLUDE_TOOLS / --exclude-tools")?;
        let wanted = |name: &str| {
            (only.is_empty() || only.iter().any(|o| o.trim() == name))
                && !exclude.iter().any(|e| e.trim() == name)
        };
        Ok(Self {
            served: TOOLS.iter().map(|t| t.name).filter(|n| wanted(n)).collect(),
            writes: Writes::default(),
        })
    }

    /// The served tools, in listing order: write tools only when writes are on.
    pub fn entries(&self) -> impl Iterator<Item = &'static ToolEntry> + '_ {
        TOOLS.iter().filter(|t| {
            self.served.contains(&t.name)
                && (self.writes.allowed || !matches!(t.access, Access::Write { .. }))
        })
    }

    /// A tool that exists and was chosen but is held back because writes are off.
    pub fn held_back(&self, name: &str) -> Option<&'static ToolEntry> {
        find(name).filter(|t| {
            !self.writes.allowed
                && matches!(t.access, Access::Write { .. })
                && self.served.contains(&t.name)
        })
    }

    /// A served tool's definition, its annotations following the write mode for tools whose
    /// access depends on their arguments.
    pub fn definition(&self, tool: &ToolEntry) -> Tool {
        let definition = tool.definition();
        match (tool.access, self.writes.allowed) {
            (Access::Either, true) => {
                let title = definition.title.clone().unwrap_or_default();
                definition.with_annotations(
                    ToolAnnotations::with_title(title)
                        .read_only(false)
                        .destructive(true)
                        .idempotent(false)
                        .open_world(true),
                )
            }
            _ => definition,
        }
    }

    /// The served tool of this name.
    pub fn find(&self, name: &str) -> Option<&'static ToolEntry> {
        self.entries().find(|t| t.name == name)
    }

    pub fn names(&self) -> String {
        self.entries()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every tool's name, for messages.
pub fn names_list() -> String {
    TOOLS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_mirror_their_method() {
        for (i, tool) in TOOLS.iter().enumerate() {
            assert!(TOOLS[i + 1..].iter().all(|t| t.name != tool.name));
            if tool.access != Access::Either {
                assert_eq!(tool.name, tool.method.replace('.', "_"));
            }
            assert_eq!(tool.definition().name, tool.name);
        }
    }

    #[test]
    fn choosing_tools_keeps_the_listing_order_and_refuses_unknown_names() {
        let chosen = Selection::choose(
            &["im_dialog_get".into(), "im_chat_get".into()],
            &["im_dialog_get".into()],
        )
        .unwrap();
        assert_eq!(chosen.names(), "im_chat_get");
        let err = Selection::choose(&["im_chat_gett".into()], &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown tool \"im_chat_gett\" in BITRIX24_TOOLS")
        );
        assert!(err.to_string().contains("im_chat_user_list"));
        assert_eq!(Selection::choose(&[], &[]).unwrap(), Selection::all());
    }
}
