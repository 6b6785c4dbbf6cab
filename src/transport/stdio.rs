//! MCP over stdio: newline-delimited JSON-RPC on stdin/stdout, framed by [`super::framing`], until
//! the client closes stdin or a shutdown signal arrives.

use std::future::Future;

use rmcp::{ServiceExt, service::ServerInitializeError};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use super::framing;
use crate::tools::Bitrix24Tools;

/// The session could not start.
#[derive(Debug, thiserror::Error)]
#[error("MCP session failed to start: {0}")]
pub struct ServeError(Box<ServerInitializeError>);

/// Serves on the process's stdin and stdout.
pub async fn serve(
    tools: Bitrix24Tools,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_io(tools, tokio::io::stdin(), tokio::io::stdout(), shutdown).await
}

/// Serves one MCP session on any byte stream pair until it closes or `shutdown` resolves.
///
/// After a signal, a read on a still-open stdin keeps Tokio's runtime from shutting down, so the
/// caller should exit the process once this returns.
pub async fn serve_io<R, W>(
    tools: Bitrix24Tools,
    reader: R,
    writer: W,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let transport = framing::Framed::new(tokio::io::BufReader::new(reader), writer);
    let session = async {
        let running = match tools.serve(transport).await {
            Ok(running) => running,
            // The client went away before `initialize`: nothing to serve, nothing wrong.
            Err(ServerInitializeError::ConnectionClosed(_)) => {
                info!("client closed the connection before initializing");
                return Ok(());
            }
            Err(err) => return Err(ServeError(Box::new(err))),
        };
        info!(transport = "stdio", "mcp session started");
        match running.waiting().await {
            Ok(reason) => info!(?reason, "mcp session ended"),
            Err(err) => warn!(error = %err, "mcp session task failed"),
        }
        Ok(())
    };
    tokio::select! {
        result = session => result,
        () = shutdown => Ok(()),
    }
}
