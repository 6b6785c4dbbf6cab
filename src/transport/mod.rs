//! Transports: wiring between the network or a byte stream and the tool set, with no logic of
//! their own — stdio, streamable HTTP and legacy SSE, plus the HTTP guard. Shutdown signals are
//! passed in, so tests can stop a server without sending it a real signal.

pub mod connections;
pub mod framing;
pub mod gate;
pub mod http;
pub mod priming;
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

    /// Whether a streamable HTTP session with this ID is open.
    pub async fn has_streamable(&self, id: &str) -> bool {
        self.streamable.sessions.read().await.contains_key(id)
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

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// The shell's convention for a process ended by this signal: 128 + its number.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that resolves on the first
/// of them (Ctrl-C elsewhere). Installing at once, before any I/O, leaves no window in which a
/// signal that a client sends right after `initialize` would kill the process by default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = Signal> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::interrupt()).and_then(|interrupt| {
            signal(SignalKind::terminate()).map(|terminate| (interrupt, terminate))
        });
        async move {
            match handlers {
                Ok((mut interrupt, mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {
                            tracing::info!(signal = "SIGINT", "shutting down");
                            Signal::Interrupt
                        }
                        _ = terminate.recv() => {
                            tracing::info!(signal = "SIGTERM", "shutting down");
                            Signal::Terminate
                        }
                    }
                }
                Err(err) => {
                    // The process still dies of the default action; it just cannot clean up.
                    tracing::warn!(error = %err, "cannot install signal handlers");
                    std::future::pending::<Signal>().await
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!(signal = "ctrl-c", "shutting down");
                Signal::Interrupt
            } else {
                std::future::pending::<Signal>().await
            }
        }
    }
}
