//! Newline-delimited JSON-RPC over a byte stream (stdio), with rules rmcp's own codec lacks:
//!
//! - a line is read with a hard bound ([`MAX_LINE_BYTES`]); a longer one is discarded;
//! - a line that cannot become a message (invalid UTF-8, a number beyond f64, nesting past
//!   serde's limit, the wrong shape, too long) is answered with a JSON-RPC error when its `id` can
//!   be read, and logged when it cannot — rmcp drops such lines silently, so the client waited
//!   for its own timeout;
//! - a request reusing the `id` of one still in progress is refused (rmcp would let the second
//!   answer take the place of the first, which then never answered);
//! - notifications and stray responses before the session starts are logged and ignored (rmcp
//!   ends the session on them).
//!
//! [`Framed`] is the rmcp transport doing this, with no task or channel in between.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, GetMeta, JsonRpcNotification,
    ProtocolVersion, RequestId, ServerJsonRpcMessage,
};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

/// The longest line read; past it the line is discarded (its `id` still read from its start).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// How much of an oversized line is kept to find its `id`.
const ID_PREFIX_BYTES: usize = 64 * 1024;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

/// One line as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Complete(Vec<u8>),
    /// Longer than the bound: the first bytes only.
    Oversized(Vec<u8>),
}

/// Reads lines (without their `\n`; `\r\n` tolerated) holding at most `max` bytes of each.
/// Cancel-safe: the partial line lives here, not in the future, because rmcp polls `receive`
/// inside a `select!` and drops it whenever an outgoing message is ready first.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    max: usize,
    line: Vec<u8>,
    oversized: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(reader: R, max: usize) -> Self {
        Self {
            reader,
            max,
            line: Vec::new(),
            oversized: false,
        }
    }

    /// The next line, `None` at the end of the stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let buffer = self.reader.fill_buf().await?;
            // From here to `consume` nothing awaits: a cancelled call loses no byte.
            if buffer.is_empty() {
                if self.line.is_empty() && !self.oversized {
                    return Ok(None);
                }
                return Ok(Some(self.take()));
            }
            let (chunk, consumed, complete) = match buffer.iter().position(|b| *b == b'\n') {
                Some(at) => (&buffer[..at], at + 1, true),
                None => (buffer, buffer.len(), false),
            };
            if !self.oversized && self.line.len() + chunk.len() > self.max {
                self.oversized = true;
                self.line.truncate(ID_PREFIX_BYTES);
            }
            let room = if self.oversized {
                ID_PREFIX_BYTES.saturating_sub(self.line.len())
            } else {
                chunk.len()
            };
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.reader.consume(consumed);
            if complete {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if std::mem::take(&mut self.oversized) {
            Line::Oversized(line)
        } else {
            Line::Complete(line)
        }
    }
}

/// What to do with one line.
#[derive(Debug)]
pub enum Verdict {
    /// A message for rmcp.
    Forward(Box<ClientJsonRpcMessage>),
    /// Answer this error (the line's `id` was readable).
    Answer(Value),
    /// Nothing to answer: log why.
    Ignore(String),
}

/// The per-session rules: which requests are in progress, and whether the session has started.
#[derive(Debug, Default)]
pub struct Gate {
    in_flight: HashSet<String>,
    started: bool,
}

impl Gate {
    /// Judges one line.
    pub fn judge(&mut self, line: Line) -> Verdict {
        let bytes = match line {
            Line::Oversized(prefix) => {
                return refuse(
                    &prefix,
                    INVALID_REQUEST,
                    format!("message longer than {MAX_LINE_BYTES} bytes; it was discarded"),
                );
            }
            Line::Complete(bytes) => bytes,
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return refuse(&bytes, PARSE_ERROR, "message is not valid UTF-8".to_owned());
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(err) => return refuse(&bytes, PARSE_ERROR, format!("message is not JSON: {err}")),
        };
        let message: ClientJsonRpcMessage = match serde_json::from_value(value.clone()) {
            Ok(message) => message,
            Err(err) => {
                return match readable_id(&value) {
                    Some(id) => Verdict::Answer(error_response(
                        id,
                        INVALID_REQUEST,
                        &format!("not a valid JSON-RPC message: {err}"),
                    )),
                    None => Verdict::Ignore(format!("not a JSON-RPC message, and no id: {err}")),
                };
            }
        };
        self.admit(message, &value)
    }

    fn admit(&mut self, message: ClientJsonRpcMessage, value: &Value) -> Verdict {
        match &message {
            ClientJsonRpcMessage::Request(request) => {
                let key = id_key(&request.id);
                if self.in_flight.contains(&key) {
                    return Verdict::Answer(error_response(
                        value["id"].clone(),
                        INVALID_REQUEST,
                        "a request with this id is still in progress; use a new id",
                    ));
                }
                self.in_flight.insert(key);
                if starts_session(&request.request) {
                    self.started = true;
                }
            }
            ClientJsonRpcMessage::Notification(notification) if !self.started => {
                return Verdict::Ignore(format!(
                    "notification {} before initialize",
                    value["method"].as_str().unwrap_or("?")
                ));
            }
            ClientJsonRpcMessage::Notification(notification) => {
                // A cancelled request may never be answered: its id is free again.
                if let Some(id) = cancelled_request(notification) {
                    self.in_flight.remove(&id);
                }
            }
            ClientJsonRpcMessage::Response(_) | ClientJsonRpcMessage::Error(_) if !self.started => {
                return Verdict::Ignore("a response before initialize".to_owned());
            }
            ClientJsonRpcMessage::Response(_) | ClientJsonRpcMessage::Error(_) => {}
        }
        Verdict::Forward(Box::new(message))
    }

    /// The server answered request `id`.
    pub fn answered(&mut self, message: &ServerJsonRpcMessage) {
        let id = match message {
            ServerJsonRpcMessage::Response(response) => Some(&response.id),
            ServerJsonRpcMessage::Error(error) => error.id.as_ref(),
            ServerJsonRpcMessage::Request(_) | ServerJsonRpcMessage::Notification(_) => None,
        };
        if let Some(id) = id {
            self.in_flight.remove(&id_key(id));
        }
    }
}

/// Whether rmcp picks a lifecycle on this request: `initialize`, or a request of the stateless
/// protocol (2026-07-28) carrying its metadata. Pings and discovery leave it open.
fn starts_session(request: &ClientRequest) -> bool {
    match request {
        ClientRequest::InitializeRequest(_) => true,
        ClientRequest::PingRequest(_) | ClientRequest::DiscoverRequest(_) => false,
        other => {
            let meta = other.get_meta();
            meta.protocol_version().is_some()
                && meta
                    .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                    .is_empty()
        }
    }
}

fn cancelled_request(notification: &JsonRpcNotification<ClientNotification>) -> Option<String> {
    match &notification.notification {
        ClientNotification::CancelledNotification(cancelled) => {
            cancelled.params.request_id.as_ref().map(id_key)
        }
        _ => None,
    }
}

fn id_key(id: &RequestId) -> String {
    serde_json::to_string(id).unwrap_or_default()
}

/// An error answer when the line's `id` can be read, else a note for the log.
fn refuse(bytes: &[u8], code: i64, message: String) -> Verdict {
    match scan_id(bytes) {
        Some(id) => Verdict::Answer(error_response(id, code, &message)),
        None => Verdict::Ignore(format!("{message}, and no readable id")),
    }
}

fn error_response(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A JSON-RPC id: a string or an integer.
fn readable_id(value: &Value) -> Option<Value> {
    match value.get("id")? {
        id @ Value::String(_) => Some(id.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Value::Number(n.clone())),
        _ => None,
    }
}

/// Finds the top-level `"id"` of a JSON object without parsing the rest, so a message that
/// serde refuses (a huge number, deep nesting, bad UTF-8 elsewhere, a truncated tail) can still
/// be answered. Iterative: no recursion on hostile nesting.
pub fn scan_id(bytes: &[u8]) -> Option<Value> {
    let mut at = skip_ws(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_ws(bytes, at);
        let key_start = at;
        at = skip_string(bytes, at)?;
        let key = &bytes[key_start..at];
        at = skip_ws(bytes, at);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_ws(bytes, at + 1);
        let value_start = at;
        at = skip_value(bytes, at)?;
        if key == b"\"id\"" {
            let id: Value = serde_json::from_slice(&bytes[value_start..at]).ok()?;
            return readable_id(&json!({ "id": id }));
        }
        at = skip_ws(bytes, at);
        match bytes.get(at) {
            Some(b',') => at += 1,
            _ => return None,
        }
    }
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// Past a string starting at `at` (which must be `"`).
fn skip_string(bytes: &[u8], mut at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    at += 1;
    loop {
        match bytes.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

/// Past one value of any kind; nested containers are counted rather than recursed into.
fn skip_value(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => skip_string(bytes, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                match bytes.get(at)? {
                    b'"' => {
                        at = skip_string(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let mut at = start;
            while let Some(b) = bytes.get(at) {
                if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                    break;
                }
                at += 1;
            }
            Some(at)
        }
    }
}

/// The framing as an rmcp transport: `receive` reads and judges lines (answering refused ones
/// itself), `send` writes rmcp's messages. No task or channel sits between the pipe and rmcp.
pub struct Framed<R, W> {
    lines: LineReader<R>,
    writer: Arc<tokio::sync::Mutex<W>>,
    gate: Arc<Mutex<Gate>>,
}

impl<R, W> Framed<R, W>
where
    R: AsyncBufRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    pub fn new(reader: R, writer: W) -> Self {
        Self {
            lines: LineReader::new(reader, MAX_LINE_BYTES),
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            gate: Arc::new(Mutex::new(Gate::default())),
        }
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes one of this layer's own answers in a task of its own, so that dropping `receive` (which
/// rmcp does whenever another event wins its `select!`) cannot cut a line short.
fn answer_in_background<W>(writer: Arc<tokio::sync::Mutex<W>>, mut line: String)
where
    W: AsyncWrite + Send + Unpin + 'static,
{
    line.push('\n');
    tokio::spawn(async move {
        let mut writer = writer.lock().await;
        if writer.write_all(line.as_bytes()).await.is_ok() {
            let _ = writer.flush().await;
        }
    });
}

impl<R, W> Transport<RoleServer> for Framed<R, W>
where
    R: AsyncBufRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.gate().answered(&item);
        let line = serde_json::to_string(&item).map_err(std::io::Error::other);
        let writer = self.writer.clone();
        // As rmcp's own stdio transport does: the write happens in the returned future, which the
        // service awaits to completion.
        async move {
            let mut line = line?;
            line.push('\n');
            let mut writer = writer.lock().await;
            writer.write_all(line.as_bytes()).await?;
            writer.flush().await
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            let line = match self.lines.next().await {
                Ok(Some(line)) => line,
                Ok(None) => return None,
                Err(err) => {
                    warn!(error = %err, "cannot read from stdin");
                    return None;
                }
            };
            if matches!(&line, Line::Complete(bytes) if bytes.iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            let verdict = self.gate().judge(line);
            match verdict {
                Verdict::Forward(message) => return Some(*message),
                Verdict::Answer(error) => {
                    debug!(answer = %error, "refused an incoming message");
                    answer_in_background(self.writer.clone(), error.to_string());
                }
                Verdict::Ignore(reason) => {
                    warn!(reason = %reason, "ignored an incoming message")
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.writer.lock().await.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(gate: &mut Gate, line: &[u8]) -> Verdict {
        gate.judge(Line::Complete(line.to_vec()))
    }

    fn answered_with(verdict: Verdict) -> (Value, i64) {
        match verdict {
            Verdict::Answer(answer) => (
                answer["id"].clone(),
                answer["error"]["code"].as_i64().unwrap(),
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_id_is_found_in_messages_serde_refuses() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":7,"params":{}{}}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        let huge = format!(
            r#"{{"jsonrpc":"2.0","params":{{"n":{}}},"id":"abc"}}"#,
            "9".repeat(5000)
        );
        assert_eq!(scan_id(deep.as_bytes()), Some(json!(7)));
        assert_eq!(scan_id(huge.as_bytes()), Some(json!("abc")));
        assert_eq!(scan_id(br#"{"method":"x","id":1e999999}"#), None);
        assert_eq!(scan_id(br#"{"a":"}\"","id":3,"b":"#), Some(json!(3)));
        assert_eq!(scan_id(b"[1,2]"), None);
        assert_eq!(scan_id(b"garbage"), None);
        assert_eq!(scan_id(br#"{"id":null}"#), None);
    }

    #[test]
    fn malformed_lines_with_an_id_are_answered() {
        let mut gate = Gate::default();
        let cases: Vec<(Vec<u8>, i64)> = vec![
            (br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"CHAT_ID":1e999999}}}"#.to_vec(), PARSE_ERROR),
            ([br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"s":""#.as_slice(), &[0xff, 0xfe], br#""}}"#].concat(), PARSE_ERROR),
            (br#"{"jsonrpc":"1.0","id":1}"#.to_vec(), INVALID_REQUEST),
        ];
        for (line, code) in cases {
            assert_eq!(answered_with(judge(&mut gate, &line)), (json!(1), code));
        }
        let oversized = gate.judge(Line::Oversized(
            br#"{"jsonrpc":"2.0","id":"big","method":"#.to_vec(),
        ));
        assert_eq!(answered_with(oversized), (json!("big"), INVALID_REQUEST));
        assert!(matches!(judge(&mut gate, b"not json"), Verdict::Ignore(_)));
    }

    #[test]
    fn notifications_before_initialize_are_ignored_and_requests_pass() {
        let mut gate = Gate::default();
        let cancelled =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#;
        assert!(matches!(judge(&mut gate, cancelled), Verdict::Ignore(_)));
        let init = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})).unwrap();
        assert!(matches!(judge(&mut gate, &init), Verdict::Forward(_)));
        assert!(matches!(judge(&mut gate, cancelled), Verdict::Forward(_)));
    }

    #[test]
    fn an_id_in_flight_cannot_be_reused_until_answered() {
        let mut gate = Gate::default();
        let ping = br#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;
        assert!(matches!(judge(&mut gate, ping), Verdict::Forward(_)));
        assert_eq!(
            answered_with(judge(&mut gate, ping)),
            (json!(5), INVALID_REQUEST)
        );
        let answer: ServerJsonRpcMessage =
            serde_json::from_value(json!({"jsonrpc": "2.0", "id": 5, "result": {}})).unwrap();
        gate.answered(&answer);
        assert!(matches!(judge(&mut gate, ping), Verdict::Forward(_)));
    }

    #[tokio::test]
    async fn lines_are_bounded_and_split_on_newlines() {
        let input = [b"short\r\n".as_slice(), &[b'x'; 100], b"\nlast"].concat();
        let reader = tokio::io::BufReader::with_capacity(8, input.as_slice());
        let mut lines = LineReader::new(reader, 50);
        assert_eq!(
            lines.next().await.unwrap(),
            Some(Line::Complete(b"short".to_vec()))
        );
        assert!(matches!(lines.next().await.unwrap(), Some(Line::Oversized(p)) if p.len() == 100));
        assert_eq!(
            lines.next().await.unwrap(),
            Some(Line::Complete(b"last".to_vec()))
        );
        assert_eq!(lines.next().await.unwrap(), None);
    }
}
