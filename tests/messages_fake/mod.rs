//! A fake portal for the message read tools (wiremock on loopback) that behaves as the wire
//! contract of issue 17 says (reference §20–21): `im.dialog.messages.get` answers newest first in
//! snake_case, with `FIRST_ID`'s own message, the unread messages beyond `LIMIT`, `params: []`
//! when empty, and an empty answer for a cursor that is no message of the chat;
//! `im.dialog.messages.search` answers newest first in camelCase (both namings on messages),
//! pages with `LAST_ID`, ignores a SEARCH_MESSAGE of 2 characters or fewer, and says when the
//! plan's history limit hid older matches. Its history can grow between calls.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};

use bitrix24_mcp::tools::Bitrix24Tools;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::common::{fast_options, webhook_client};

const BASE_PATH: &str = "/rest/1/t0p53cr3tc0de42x/";
/// The chat the acting user is in.
pub const CHAT: i64 = 2935;

/// One message of the fake's history.
#[derive(Debug, Clone)]
pub struct Msg {
    pub id: i64,
    pub author: i64,
    pub date: String,
    pub text: String,
    pub params: Value,
    pub unread: bool,
}

/// What the fake holds; tests may change it between calls.
#[derive(Debug, Default)]
pub struct State {
    /// Oldest first.
    pub messages: Vec<Msg>,
    /// The plan's history limit: messages before this ID are hidden from search.
    pub history_from: Option<i64>,
}

pub struct Fake {
    pub server: MockServer,
    state: Arc<Mutex<State>>,
    tools: Bitrix24Tools,
}

/// The text of the `n`th message: about 60 characters, one line.
pub fn text(n: usize) -> String {
    format!("Message {n}: shall we meet at ten to go over the launch plan?")
}

/// The `n`th message (from 1): IDs grow with gaps, as one portal-wide sequence does.
pub fn message(n: usize) -> Msg {
    let minutes = n - 1;
    Msg {
        id: 1000 + 3 * n as i64,
        author: if n % 2 == 1 { 503 } else { 547 },
        date: format!(
            "2026-03-04T{:02}:{:02}:00+03:00",
            10 + minutes / 60,
            minutes % 60
        ),
        text: text(n),
        params: json!([]),
        unread: false,
    }
}

impl Fake {
    /// `n` ordinary messages, oldest first.
    pub fn history(n: usize) -> Vec<Msg> {
        (1..=n).map(message).collect()
    }

    pub async fn start(messages: Vec<Msg>) -> Self {
        let state = Arc::new(Mutex::new(State {
            messages,
            history_from: None,
        }));
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(Portal(state.clone()))
            .mount(&server)
            .await;
        Self::around(server, state)
    }

    /// A portal that answers every request with this error.
    pub async fn start_failing(code: &str, status: u16) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(
                json!({"error": code, "error_description": format!("{code} from the portal")}),
            ))
            .mount(&server)
            .await;
        Self::around(server, Arc::default())
    }

    /// A portal that answers every request with `body`.
    pub async fn start_answering(body: Value) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
        Self::around(server, Arc::default())
    }

    fn around(server: MockServer, state: Arc<Mutex<State>>) -> Self {
        let tools = Bitrix24Tools::new(Some(webhook_client(&server.uri(), fast_options())));
        Self {
            server,
            state,
            tools,
        }
    }

    /// The tool set bound to this portal.
    pub fn tools(&self) -> Bitrix24Tools {
        self.tools.clone()
    }

    pub async fn call(&self, tool: &str, arguments: Value) -> CallToolResult {
        self.tools
            .call(tool, arguments.as_object())
            .await
            .expect("known tool")
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Every message ID, oldest first.
    pub fn ids(&self) -> Vec<i64> {
        self.state().messages.iter().map(|m| m.id).collect()
    }

    /// `n` new messages arrive.
    pub fn arrive(&self, n: usize) {
        let mut state = self.state();
        let start = state.messages.len() + 1;
        state.messages.extend((start..start + n).map(message));
    }

    /// Every request the portal received: the method and the JSON body.
    pub async fn received(&self) -> Vec<(String, Value)> {
        self.server
            .received_requests()
            .await
            .expect("recording is on")
            .iter()
            .map(|request| {
                let method = request
                    .url
                    .path()
                    .strip_prefix(BASE_PATH)
                    .expect("the webhook's path")
                    .to_owned();
                (method, serde_json::from_slice(&request.body).expect("JSON"))
            })
            .collect()
    }
}

struct Portal(Arc<Mutex<State>>);

impl Respond for Portal {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let state = self.0.lock().unwrap();
        let answer = match request.url.path().strip_prefix(BASE_PATH) {
            Some("im.dialog.messages.get") => get(&state, &body),
            Some("im.dialog.messages.search") => search(&state, &body),
            _ => Err((404, "ERROR_METHOD_NOT_FOUND", "Method not found")),
        };
        match answer {
            Ok(result) => ResponseTemplate::new(200).set_body_json(json!({"result": result,
                "time": {"start": 1.0, "finish": 1.01, "duration": 0.01}})),
            Err((status, code, description)) => ResponseTemplate::new(status)
                .set_body_json(json!({"error": code, "error_description": description})),
        }
    }
}

type Answer = Result<Value, (u16, &'static str, &'static str)>;

fn integer(body: &Value, name: &str) -> Result<Option<i64>, ()> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(drop),
        Some(_) => Err(()),
    }
}

fn get(state: &State, body: &Value) -> Answer {
    let dialog = match body.get("DIALOG_ID") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if dialog.is_empty() {
        return Err((400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty"));
    }
    let last = integer(body, "LAST_ID")
        .map_err(|()| (400, "LAST_ID_STRING", "Last ID can't be string"))?;
    let first = integer(body, "FIRST_ID")
        .map_err(|()| (400, "FIRST_ID_STRING", "First ID can't be string"))?;
    if dialog != format!("chat{CHAT}") {
        return Err((
            403,
            "ACCESS_ERROR",
            "You do not have access to the specified dialog",
        ));
    }
    let limit = integer(body, "LIMIT")
        .ok()
        .flatten()
        .unwrap_or(20)
        .clamp(1, 50) as usize;
    let all = &state.messages;
    let exists = |id: i64| all.iter().any(|m| m.id == id);
    let mut chosen: Vec<&Msg> = match (last, first) {
        (Some(l), _) if !exists(l) => Vec::new(),
        (None, Some(f)) if !exists(f) => Vec::new(),
        (Some(l), _) => {
            let before: Vec<&Msg> = all.iter().filter(|m| m.id < l).collect();
            let cut = before.len().saturating_sub(limit);
            let mut page: Vec<&Msg> = before[..cut].iter().copied().filter(|m| m.unread).collect();
            page.extend(&before[cut..]);
            page
        }
        (None, Some(f)) => {
            let mut page: Vec<&Msg> = all.iter().filter(|m| m.id == f).collect();
            let after: Vec<&Msg> = all.iter().filter(|m| m.id > f).collect();
            page.extend(after.iter().take(limit));
            page.extend(after.iter().skip(limit).filter(|m| m.unread));
            page
        }
        (None, None) => {
            let cut = all.len().saturating_sub(limit);
            let mut page: Vec<&Msg> = all[..cut].iter().filter(|m| m.unread).collect();
            page.extend(&all[cut..]);
            page
        }
    };
    chosen.sort_by_key(|m| std::cmp::Reverse(m.id));
    let messages: Vec<Value> = chosen
        .iter()
        .map(|m| {
            json!({"id": m.id, "chat_id": CHAT, "author_id": m.author, "date": m.date,
                   "text": m.text, "unread": m.unread,
                   "uuid": if m.author == 0 { Value::Null } else { json!(format!("uuid-{}", m.id)) },
                   "replaces": [], "params": m.params, "disappearing_date": null})
        })
        .collect();
    let users: Vec<Value> = authors(&chosen)
        .into_iter()
        .map(|(id, first, last)| {
            json!({"id": id, "active": true, "name": format!("{first} {last}"), "first_name": first,
                   "last_name": last, "bot": false, "status": "online",
                   "mobile_last_date": false, "phones": false, "type": "user"})
        })
        .collect();
    Ok(json!({"chat_id": CHAT, "messages": messages, "users": users, "files": files(&chosen)}))
}

fn search(state: &State, body: &Value) -> Answer {
    let chat = integer(body, "CHAT_ID").ok().flatten().unwrap_or(0);
    if chat == 0 {
        return Err((400, "CHAT_ID_EMPTY", "Chat ID can't be empty"));
    }
    if chat != CHAT {
        return Err((403, "ACCESS_ERROR", "You do not have access to this chat"));
    }
    let limit = integer(body, "LIMIT")
        .ok()
        .flatten()
        .unwrap_or(50)
        .clamp(1, 200) as usize;
    let last = integer(body, "LAST_ID").ok().flatten();
    let phrase = body["SEARCH_MESSAGE"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let day = |name: &str| {
        body[name]
            .as_str()
            .map(|d| d.chars().take(10).collect::<String>())
    };
    let (from, to, on) = (day("DATE_FROM"), day("DATE_TO"), day("DATE"));
    let matches = |m: &&Msg| {
        let date = &m.date[..10];
        (phrase.chars().count() <= 2 || m.text.to_lowercase().contains(&phrase))
            && from.as_deref().is_none_or(|f| date >= f)
            && to.as_deref().is_none_or(|t| date <= t)
            && on.as_deref().is_none_or(|d| date == d)
    };
    let floor = state.history_from.unwrap_or(i64::MIN);
    let found: Vec<&Msg> = state.messages.iter().filter(matches).collect();
    let hidden = found.iter().any(|m| m.id < floor);
    let chosen: Vec<&Msg> = found
        .into_iter()
        .rev()
        .filter(|m| m.id >= floor && last.is_none_or(|l| m.id < l))
        .take(limit)
        .collect();
    let messages: Vec<Value> = chosen
        .iter()
        .map(|m| {
            json!({"id": m.id, "chatId": CHAT, "chat_id": CHAT, "authorId": m.author,
                   "author_id": m.author, "date": m.date, "text": m.text,
                   "isSystem": m.author == 0, "uuid": null, "forward": null, "params": m.params,
                   "viewedByOthers": true, "block": null, "unread": m.unread, "viewed": true,
                   "viewedCount": 1})
        })
        .collect();
    let users: Vec<Value> = authors(&chosen)
        .into_iter()
        .map(|(id, first, last)| {
            json!({"id": id, "active": true, "name": format!("{first} {last}"), "firstName": first,
                   "lastName": last, "bot": false, "lastActivityDate": false, "type": "user"})
        })
        .collect();
    Ok(
        json!({"messages": messages, "users": users, "files": files(&chosen),
              "additionalMessages": [], "copilot": null, "stickers": [], "reactions": [],
              "tariffRestrictions": {"isHistoryLimitExceeded": hidden}, "usersShort": []}),
    )
}

/// The known authors of `messages`: Klaus Weber (503) and Anna Weber (547).
fn authors(messages: &[&Msg]) -> Vec<(i64, &'static str, &'static str)> {
    [(503, "Klaus", "Weber"), (547, "Anna", "Weber")]
        .into_iter()
        .filter(|(id, _, _)| messages.iter().any(|m| m.author == *id))
        .collect()
}

/// The files `messages` name in `params.FILE_ID`, camelCase as both methods send them.
fn files(messages: &[&Msg]) -> Vec<Value> {
    let named = |id: i64| {
        messages.iter().any(|m| {
            m.params["FILE_ID"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|f| f.as_i64() == Some(id)))
        })
    };
    [
        (5255, "image", "image.png", 2144),
        (5256, "file", "invoice 1663.pdf", 80311),
    ]
    .into_iter()
    .filter(|(id, ..)| named(*id))
    .map(|(id, kind, name, size)| {
        json!({"id": id, "chatId": CHAT, "type": kind, "name": name, "size": size,
                   "status": "done", "authorId": 503,
                   "urlDownload": format!("https://portal.example/disk/{id}?_esd=x")})
    })
    .collect()
}
