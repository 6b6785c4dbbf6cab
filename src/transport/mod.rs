//! Transports: wiring between the network or a byte stream and the tool set, with no logic of
//! their own — stdio, streamable HTTP and legacy SSE, plus the HTTP guard. Shutdown signals are
//! passed in, so tests can stop a server without sending it a real signal.

pub mod http;
pub mod security;
pub mod sse;
pub mod stdio;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

/// Open sessions across the HTTP transports, against one limit.
#[derive(Debug)]
pub struct Sessions {
    max: usize,
    streamable: Arc<LocalSessionManager>,
    sse: AtomicUsize,
}

impl Sessions {
    pub fn new(max: usize, streamable: Arc<LocalSessionManager>) -> Self {
        Self {
            max,
            streamable,
            sse: AtomicUsize::new(0),
        }
    }

    /// Whether one more session may open.
    pub async fn has_room(&self) -> bool {
        let open = self.streamable.sessions.read().await.len() + self.sse.load(Ordering::Acquire);
        open < self.max
    }

    pub fn sse_opened(&self) {
        self.sse.fetch_add(1, Ordering::AcqRel);
    }

    pub fn sse_closed(&self) {
        self.sse.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A session ID nobody can guess: 128 bits from the process's random hasher keys.
pub fn session_id() -> String {
    let mut id = String::with_capacity(32);
    for _ in 0..2 {
        let hasher = std::collections::hash_map::RandomState::new().build_hasher();
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id
}

/// Resolves on the first SIGINT or SIGTERM (Ctrl-C elsewhere).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
                    _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                }
            }
            _ => {
                // Without signal handlers the process still dies of the default action.
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!(signal = "ctrl-c", "shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}
