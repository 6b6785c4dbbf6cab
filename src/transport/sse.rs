//! Legacy HTTP+SSE (protocol 2024-11-05), for clients registered with `type: "sse"`. rmcp no longer
//! ships it, so this adapts rmcp's generic transport: each `GET /sse` gets a channel pair — POSTed
//! messages flow into the session's stream, the session's sink flows out as `message` events. The
//! protocol itself is rmcp's; this file only moves messages. When each person signs in, a session
//! belongs to the user who opened it: `/message` must carry the same user's token, and each
//! message carries that user on to the tools.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::{
    Extension,
    body::Bytes,
    extract::{Query, State},
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{SinkExt, Stream, StreamExt, channel::mpsc};
use rmcp::{
    ServiceExt,
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Sessions;
use crate::tools::{Acting, Bitrix24Tools};

/// Messages buffered per direction and session.
const CHANNEL_CAPACITY: usize = 64;

/// One live SSE session: the sender feeding its rmcp stream, and the user who opened it (when
/// each person signs in).
#[derive(Debug, Clone)]
struct Channel {
    sender: mpsc::Sender<ClientJsonRpcMessage>,
    owner: Option<u64>,
}

/// Live SSE sessions by ID.
#[derive(Debug)]
pub struct SseState {
    tools: Bitrix24Tools,
    sessions: RwLock<HashMap<String, Channel>>,
    limits: Arc<Sessions>,
    shutdown: CancellationToken,
    keep_alive: Duration,
    /// A session with no message from the client for this long is closed, as streamable HTTP
    /// sessions are: idle streams must not hold every slot.
    idle_timeout: Duration,
}

impl SseState {
    pub fn new(
        tools: Bitrix24Tools,
        limits: Arc<Sessions>,
        shutdown: CancellationToken,
        keep_alive: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            tools,
            sessions: RwLock::new(HashMap::new()),
            limits,
            shutdown,
            keep_alive,
            idle_timeout,
        }
    }

    fn remove(&self, id: &str) {
        let removed = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if removed.is_some() {
            self.limits.sse_closed();
        }
    }
}

/// `GET /sse`: opens a session; the first event names the endpoint to POST to.
pub async fn open(
    State(state): State<Arc<SseState>>,
    acting: Option<Extension<Acting>>,
) -> Response {
    if !state.limits.has_room().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many sessions; try again later",
        )
            .into_response();
    }
    let id = super::session_id();
    let (in_tx, in_rx) = mpsc::channel::<ClientJsonRpcMessage>(CHANNEL_CAPACITY);
    let (out_tx, out_rx) = mpsc::channel::<ServerJsonRpcMessage>(CHANNEL_CAPACITY);
    state
        .sessions
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            id.clone(),
            Channel {
                sender: in_tx,
                owner: acting.map(|Extension(acting)| acting.user_id),
            },
        );
    state.limits.sse_opened();
    let tools = state.tools.clone().in_session("sse", &id);
    let session_shutdown = state.shutdown.child_token();
    let session_id = id.clone();
    let inbound = until_idle(in_rx, state.idle_timeout, id.clone());
    tokio::spawn(async move {
        match tools.serve((out_tx, inbound)).await {
            Ok(running) => {
                tokio::select! {
                    _ = running.waiting() => {}
                    () = session_shutdown.cancelled() => {}
                }
            }
            Err(err) => {
                debug!(session = %session_id, error = %err, "sse session ended before initialize")
            }
        }
    });
    info!(transport = "sse", session = %id, "sse session opened");
    let stream = events(state.clone(), id, out_rx);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.keep_alive))
        .into_response()
}

/// The client's messages, ending after `idle` without one: the session then ends, its event
/// stream closes and its slot is freed.
fn until_idle(
    messages: mpsc::Receiver<ClientJsonRpcMessage>,
    idle: Duration,
    id: String,
) -> std::pin::Pin<Box<dyn Stream<Item = ClientJsonRpcMessage> + Send>> {
    Box::pin(futures::stream::unfold(messages, move |mut messages| {
        let id = id.clone();
        async move {
            match tokio::time::timeout(idle, messages.next()).await {
                Ok(Some(message)) => Some((message, messages)),
                Ok(None) => None,
                Err(_) => {
                    info!(transport = "sse", session = %id, "sse session idle; closing it");
                    None
                }
            }
        }
    }))
}

/// The event stream: `endpoint`, then one `message` per server message, until the session or the
/// server ends. Dropping it (the client went away) removes the session.
fn events(
    state: Arc<SseState>,
    id: String,
    out_rx: mpsc::Receiver<ServerJsonRpcMessage>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/message?sessionId={id}"));
    let closer = SessionCloser {
        state: state.clone(),
        id,
    };
    let messages = out_rx.filter_map(move |message| {
        // The closer lives as long as the stream does.
        let _keep = &closer;
        let event = match serde_json::to_string(&message) {
            Ok(json) => Some(Ok(Event::default().event("message").data(json))),
            Err(err) => {
                warn!(error = %err, "could not encode a message for the sse stream");
                None
            }
        };
        futures::future::ready(event)
    });
    futures::stream::once(futures::future::ready(Ok(endpoint)))
        .chain(messages)
        .take_until(state.shutdown.clone().cancelled_owned())
}

/// Removes a session when its event stream is dropped.
struct SessionCloser {
    state: Arc<SseState>,
    id: String,
}

impl Drop for SessionCloser {
    fn drop(&mut self) {
        self.state.remove(&self.id);
        info!(transport = "sse", session = %self.id, "sse session closed");
    }
}

#[derive(Debug, Deserialize)]
pub struct MessageQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

/// `POST /message?sessionId=…`: one JSON-RPC message into the session; answered 202, the reply
/// arrives on the event stream.
pub async fn post(
    State(state): State<Arc<SseState>>,
    Query(query): Query<MessageQuery>,
    acting: Option<Extension<Acting>>,
    body: Bytes,
) -> Response {
    let channel = state
        .sessions
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&query.session_id)
        .cloned();
    let acting = acting.map(|Extension(acting)| acting);
    // Another user's session is answered as an unknown one: nobody learns it exists.
    let owner = acting.as_ref().map(|a| a.user_id);
    let Some(mut sender) = channel.filter(|c| c.owner == owner).map(|c| c.sender) else {
        return (StatusCode::NOT_FOUND, "unknown or closed session").into_response();
    };
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a JSON-RPC message: {err}"),
            )
                .into_response();
        }
    };
    if let Some(acting) = acting {
        message.insert_extension(acting);
    }
    match sender.send(message).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "session closed").into_response(),
    }
}
