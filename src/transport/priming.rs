//! SSE priming events only for clients whose protocol defines them. rmcp starts every event stream
//! of streamable HTTP with an empty event (`data:` with an `id` and a `retry`), the priming event of
//! protocol 2025-11-25 (SEP-1699). A client of an older revision reads every `data:` as a JSON-RPC
//! message; Gemini CLI fails to parse the empty one and drops the connection. This middleware
//! learns the protocol version of each request (the `MCP-Protocol-Version` header, or the
//! `initialize` body that opens a session) and strips the data-less events from the answer when
//! that version predates priming.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::Stream;
use serde::Deserialize;

/// The first protocol revision that defines priming events.
const PRIMING_SINCE: &str = "2025-11-25";

/// Revision assumed for a request that names none (what the specification tells servers to assume).
const ASSUMED_VERSION: &str = "2025-03-26";

/// Whether a protocol version (a `YYYY-MM-DD` date) defines priming events. Anything that is not
/// such a date does not: a stream without priming is valid under every revision.
fn defines_priming(version: &str) -> bool {
    let well_formed = version.len() == 10
        && version.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    // Dates of this shape order as their text does.
    well_formed && version >= PRIMING_SINCE
}

/// The part of an `initialize` request that names the client's protocol version.
#[derive(Deserialize)]
struct Initialize {
    method: String,
    params: Option<InitializeParams>,
}

#[derive(Deserialize)]
struct InitializeParams {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
}

/// Axum middleware for `/mcp`: `max_body_bytes` bounds the body it reads to learn the version.
pub async fn only_where_defined(
    axum::extract::State(max_body_bytes): axum::extract::State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let header_version = request
        .headers()
        .get("mcp-protocol-version")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let (version, request) = match header_version {
        Some(version) => (version, request),
        // Without the header only an `initialize` names a version, in its body.
        None if request.method() == axum::http::Method::POST => {
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, max_body_bytes).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
            };
            let version = serde_json::from_slice::<Initialize>(&bytes)
                .ok()
                .filter(|message| message.method == "initialize")
                .and_then(|message| message.params)
                .map_or_else(
                    || ASSUMED_VERSION.to_owned(),
                    |params| params.protocol_version,
                );
            (version, Request::from_parts(parts, Body::from(bytes)))
        }
        None => (ASSUMED_VERSION.to_owned(), request),
    };
    let response = next.run(request).await;
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if defines_priming(&version) || !is_stream {
        return response;
    }
    let (parts, body) = response.into_parts();
    let stream = WithoutPriming {
        inner: body.into_data_stream(),
        pending: Vec::new(),
        scanned: 0,
        ended: false,
    };
    Response::from_parts(parts, Body::from_stream(stream))
}

/// An SSE body with its data-less events removed; every other event and comment passes unchanged,
/// each as soon as it is complete.
struct WithoutPriming<S> {
    inner: S,
    /// Bytes of an event not yet complete. Bounded by the largest event the server writes.
    pending: Vec<u8>,
    /// How far `pending` is known to hold no event end, so a long event is scanned once.
    scanned: usize,
    ended: bool,
}

/// Whether one complete SSE event (without its blank line) is a priming event: it has `data`
/// lines, all empty, and no event type. rmcp writes events with LF line ends.
fn is_priming(event: &[u8]) -> bool {
    let mut has_data = false;
    for line in event.split(|b| *b == b'\n') {
        if let Some(value) = line.strip_prefix(b"data:") {
            if !value.iter().all(|b| *b == b' ' || *b == b'\r') {
                return false;
            }
            has_data = true;
        } else if line.starts_with(b"event:") {
            return false;
        }
    }
    has_data
}

impl<S> WithoutPriming<S> {
    /// Takes every complete event out of `pending`, keeping those that are not priming.
    fn complete_events(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(end) = self.pending[from..]
            .windows(2)
            .position(|pair| pair == b"\n\n")
            .map(|at| from + at)
        {
            let event = &self.pending[start..end];
            if !is_priming(event) {
                out.extend_from_slice(&self.pending[start..end + 2]);
            }
            start = end + 2;
            from = start;
        }
        self.pending.drain(..start);
        // The last byte may begin an event end that the next chunk completes.
        self.scanned = self.pending.len().saturating_sub(1);
        out
    }
}

impl<S> Stream for WithoutPriming<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(Some(Ok(chunk))) => {
                    this.pending.extend_from_slice(&chunk);
                    let out = this.complete_events();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(out))));
                    }
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    // An unfinished last event passes as it is: it was never a whole event.
                    let rest = std::mem::take(&mut this.pending);
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(rest))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn only_dated_versions_from_2025_11_25_define_priming() {
        assert!(defines_priming("2025-11-25"));
        assert!(defines_priming("2026-07-28"));
        assert!(!defines_priming("2025-06-18"));
        assert!(!defines_priming("2025-03-26"));
        assert!(!defines_priming("2024-11-05"));
        assert!(!defines_priming("9999"));
        assert!(!defines_priming("2025-11-25x"));
        assert!(!defines_priming(""));
    }

    #[tokio::test]
    async fn priming_events_go_and_everything_else_stays_whatever_the_chunking() {
        let body = "data:\nid: 0\nretry: 3000\n\n:\n\ndata: {\"id\":1}\nid: 0/1\n\n\
                    data:\nretry: 3000\n\nevent: message\ndata:\n\ndata: {\"id\":2}\n\n";
        let expected =
            ":\n\ndata: {\"id\":1}\nid: 0/1\n\nevent: message\ndata:\n\ndata: {\"id\":2}\n\n";
        for size in [1, 2, 3, 7, body.len()] {
            let chunks: Vec<Result<Bytes, axum::Error>> = body
                .as_bytes()
                .chunks(size)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let stream = WithoutPriming {
                inner: futures::stream::iter(chunks),
                pending: Vec::new(),
                scanned: 0,
                ended: false,
            };
            let out: Vec<u8> = stream.map(|chunk| chunk.unwrap().to_vec()).concat().await;
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "chunks of {size}"
            );
        }
    }
}
