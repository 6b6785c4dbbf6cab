//! Transports: wiring between a byte stream and the tool set, with no logic of their own. The
//! shutdown signal is passed in, so tests can stop a server without sending it a real signal.

pub mod stdio;

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
