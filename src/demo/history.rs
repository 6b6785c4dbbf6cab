//! The sample portal's chat histories: messages with IDs from one portal-wide sequence that grows
//! with time, dates at the portal's offset in late November 2026, files, and where each user has
//! read up to. The deal 1663 chat (2937) holds a decision with a system message, a bot's post, a
//! file, an edited and a deleted message, a mention and a reply; Marketing (2935) holds 120
//! messages to page through, with Maria's invoice notes, a link whose text differs from its
//! target, one message carrying invisible characters and an instruction aimed at assistants, and
//! five messages Anna has not read yet. The all-hands chat (2940) and the general chat have old
//! messages beyond the plan's search history (see [`history_cutoff`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::dates;

mod sample;

/// The ID of the sample's first message; later ones follow in date order.
pub const FIRST_MESSAGE_ID: i64 = 84_100;

/// The text a soft delete leaves.
pub const DELETED_TEXT: &str = "This message was deleted.";

/// The sample plan's history limit: in open chats (the general chat, 2940), search finds nothing
/// older than 2026-10-01 00:00 at the portal, and says so with `isHistoryLimitExceeded`.
pub fn history_cutoff() -> i64 {
    dates::at(2026, 10, 1, 0, 0)
}

/// One message as the portal stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoMessage {
    pub id: i64,
    pub chat_id: i64,
    /// 0 for a system message.
    pub author_id: i64,
    /// Who posted it: the author, the caller of a `SYSTEM=Y` post, or 0 for the portal's own.
    pub poster: i64,
    /// Unix time.
    pub date: i64,
    /// BBCode, as written.
    pub text: String,
    /// `params` as stored (sent as `[]` when empty).
    pub params: Map<String, Value>,
}

impl DemoMessage {
    pub fn is_deleted(&self) -> bool {
        self.params.get("IS_DELETED").and_then(Value::as_str) == Some("Y")
    }

    /// The file IDs in `params.FILE_ID`.
    pub fn file_ids(&self) -> Vec<i64> {
        match self.params.get("FILE_ID") {
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_i64).collect(),
            _ => Vec::new(),
        }
    }
}

/// A file on the portal's drive, attached to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoFile {
    pub id: i64,
    pub chat_id: i64,
    pub author_id: i64,
    pub date: i64,
    pub name: String,
    /// `image`, `video`, `audio` or `file`.
    pub kind: String,
    pub size: i64,
}

/// Every chat's messages (in ID order) and files, and what each user has read.
#[derive(Debug, Clone)]
pub struct History {
    pub messages: Vec<DemoMessage>,
    pub files: Vec<DemoFile>,
    /// `(chat, user)` → the last message the user has read there, where it differs from
    /// `read_baseline`.
    read: BTreeMap<(i64, i64), i64>,
    /// Everyone has read every message up to this ID unless `read` says otherwise.
    read_baseline: i64,
}

impl History {
    /// Whether `user` has not read message `m` yet (their own messages are read).
    pub fn unread(&self, m: &DemoMessage, user: i64) -> bool {
        let read_up_to = self
            .read
            .get(&(m.chat_id, user))
            .copied()
            .unwrap_or(self.read_baseline);
        m.poster != user && m.id > read_up_to
    }

    /// Adds a message now (never before the newest message, so IDs and dates grow together) and
    /// marks the chat read for its poster. Returns its ID.
    pub fn push(&mut self, mut message: DemoMessage, now: i64) -> i64 {
        let last = self.messages.last();
        message.id = last.map_or(FIRST_MESSAGE_ID, |m| m.id + 1);
        message.date = now.max(last.map_or(now, |m| m.date + 1));
        self.read
            .insert((message.chat_id, message.poster), message.id);
        let id = message.id;
        self.messages.push(message);
        id
    }

    pub fn find(&self, id: i64) -> Option<&DemoMessage> {
        self.messages
            .binary_search_by_key(&id, |m| m.id)
            .ok()
            .map(|at| &self.messages[at])
    }

    pub fn find_mut(&mut self, id: i64) -> Option<&mut DemoMessage> {
        let at = self.messages.binary_search_by_key(&id, |m| m.id).ok()?;
        self.messages.get_mut(at)
    }

    /// The sample histories.
    pub fn sample() -> Self {
        let mut drafts = sample::drafts();
        // IDs follow the dates; a stable sort keeps a chat's own order for equal dates.
        drafts.sort_by_key(|d| d.date);
        let mut keys = BTreeMap::new();
        let mut messages = Vec::with_capacity(drafts.len());
        for (id, draft) in (FIRST_MESSAGE_ID..).zip(&drafts) {
            if let Some(key) = draft.key {
                keys.insert(key, id);
            }
            let mut params = draft.params.clone();
            if let Some(target) = draft.reply_to.and_then(|key| keys.get(key)) {
                params.insert("REPLY_ID".into(), json!(target));
            }
            messages.push(DemoMessage {
                id,
                chat_id: draft.chat,
                author_id: draft.author,
                poster: draft.author,
                date: draft.date,
                text: draft.text.clone(),
                params,
            });
        }
        let read_baseline = messages.last().map_or(0, |m| m.id);
        // Anna has not read Marketing's last five messages.
        let marketing: Vec<i64> = messages
            .iter()
            .filter(|m| m.chat_id == 2935)
            .map(|m| m.id)
            .collect();
        let mut read = BTreeMap::new();
        if let Some(read_up_to) = marketing.iter().rev().nth(UNREAD_IN_MARKETING) {
            read.insert((2935, 99), *read_up_to);
        }
        Self {
            messages,
            files: sample::files(),
            read,
            read_baseline,
        }
    }
}

/// How many of Marketing's newest messages Anna (99) has not read.
pub const UNREAD_IN_MARKETING: usize = 5;
